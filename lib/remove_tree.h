/* Removing trees safely (no symlink followed, any depth). */
#ifndef VUNIFY_REMOVE_TREE_H
#define VUNIFY_REMOVE_TREE_H

#include <stdint.h>

/* Remove NAME under dir_fd and everything beneath it.  A missing NAME is
 * not an error.  Returns 0 or -errno. */
int remove_tree_at(int dir_fd, const char *name);

/* Empty the directory NAME under dir_fd (it stays); a missing NAME is not
 * an error.  Adds the number of entries removed to *ret_count when
 * non-NULL.  Returns 0 or -errno. */
int remove_contents_at(int dir_fd, const char *name, uint64_t *ret_count);

#endif
