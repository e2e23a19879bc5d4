/* Shared by online unify's preparation (online.c) and its switch
 * (online_switch.c); not part of the library's interface. */
#ifndef VUNIFY_ONLINE_INTERNAL_H
#define VUNIFY_ONLINE_INTERNAL_H

#include <stddef.h>

#include "pool.h"

/* The manifest's first line: this, a space, the prepared lower's inode. */
#define MANIFEST_MAGIC "vunify-online-switch 1"
/* a manifest is at most this big (about 100 bytes an entry) */
#define MANIFEST_MAX (1ULL << 31)

/* The prepared lower's parent directory (returned as an fd, or -errno),
 * its name into NEXT (SIZE bytes) and the current lower's name into
 * *RET_LOWER. */
int online_open_next_parent(struct pool *p, const struct guest *g, int home_fd, char *next, size_t size,
                            const char **ret_lower);

#endif
