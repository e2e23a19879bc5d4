/* The link layout's lower layer, described in the guest's home.
 *
 * In the link layout a guest's lower layer, POOL/roots/GUEST, lives on the
 * pool's partition, not on the guest's.  So that the guest can fail over
 * with its partition alone, its home carries HOME/vunify-lower: the line
 * "vunify-lower 2\n", then records "NAME\tPATH\0" (PATH shows object NAME),
 * "-\tPATH\0" (PATH, and everything below it, is gone), and the lower
 * layer's directories and symlinks with their attributes, "d:...\tPATH\0"
 * and "l:...\tPATH\0" (docs/FORMAT.md: unify prunes the upper ones, so the
 * lower ones show), applied in order.  Version 1 (no d:/l: records) is
 * read too.  `adopt` on another host replays it to rebuild the roots from
 * that host's objects.
 *
 * The file is written only for pools with replicas (failover needs them):
 * replicated unify appends the records of a batch, durably, before the
 * batch's upper copies are removed (and the deletions of folded whiteouts
 * before the whiteouts go), so at every instant the description plus the
 * upper shows what the guest sees; at the end of unify (after the prune's
 * lower directories and symlinks are durable, before the upper ones go:
 * store.c, finish_lower) and on `replicate` it is rewritten compactly from
 * the roots (temp file, fsync, rename). */
#ifndef VUNIFY_LOWERLIST_H
#define VUNIFY_LOWERLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "pool.h"

#define HOME_LOWERLIST "vunify-lower"

/* Append records to HOME/vunify-lower and fdatasync it.  NAMES[i] NULL
 * means PATHS[i] was deleted.  The file must exist (lowerlist_write).
 * Returns 0 or -errno. */
int lowerlist_append(int home_fd, const char *const *names, const char *const *paths, size_t n);

/* Write HOME/vunify-lower afresh from the lower layer at lower_fd (the
 * guest's roots): temp file, fsync, rename, fsync of the home.  Returns 0
 * or -errno. */
int lowerlist_write(struct pool *p, int home_fd, int lower_fd);

/* Write the description of guest NAME's roots into its home (link layout;
 * a no-op in the redirect layout, whose lower layer is in the home).
 * Returns 0 or -errno (-ENOENT/-ESTALE: home not attached here). */
int guest_describe_lower(struct pool *p, const char *name);

/* Does the home have a description?  1, 0 or -errno. */
int lowerlist_exists(int home_fd);

/* Rebuild a lower layer under dir_fd (an empty directory) by replaying
 * the home's description with hard links to this pool's objects.  Object
 * names that are not here are collected in *ret_missing (malloc'd,
 * NULL-terminated, unique) and skipped.  Returns 0 or -errno (-EBADMSG:
 * malformed file; -EPROTONOSUPPORT: unknown version). */
int lowerlist_replay(struct pool *p, int home_fd, int dir_fd, char ***ret_missing, size_t *ret_n_missing);

#endif
