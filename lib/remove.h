/* Removing trees safely (no symlink followed, any depth). */
#ifndef VUNIFY_REMOVE_H
#define VUNIFY_REMOVE_H

/* Remove NAME under dir_fd and everything beneath it.  A missing NAME is
 * not an error.  Returns 0 or -errno. */
int remove_tree_at(int dir_fd, const char *name);

#endif
