/* What the pool's files share (pool.c opens a pool and finds objects,
 * pool_create.c makes one, pool_dirs.c keeps its directories root's alone,
 * guest_registry.c is the registry of guests under guests/). */
#ifndef VUNIFY_POOL_INTERNAL_H
#define VUNIFY_POOL_INTERNAL_H

#include <stdbool.h>

#include "pool.h"

#define CONF_NAME "vunify.conf"
#define POLICY_NAME "policy.conf"

/* Owner and mode of every directory of the pool (pool_dirs.c). */
#define POOL_DIR_MODE 0700

/* pool_check_dirs on the pool directory POOL_FD.  Returns the number of
 * problems found or -errno. */
int pool_check_dirs_at(int pool_fd, bool repair, pool_problem_fn fn, void *ud);

/* Open directory NAME under FD (no symlink followed).  Returns an fd or
 * -errno. */
int pool_open_subdir(int fd, const char *name);

/* The value of "KEY value" lines in TEXT (malloc'd), NULL when absent or
 * out of memory.  TEXT is modified. */
char *pool_conf_value(char *text, const char *key);

#endif
