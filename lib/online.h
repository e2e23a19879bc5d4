/* Online unify: re-unify a guest while it runs, switch at its next mount.
 *
 * `unify --online` never writes a layer of a mounted overlay.  It reads
 * the guest's upper (read-only), stores objects by copying, and builds the
 * guest's NEXT lower layer beside the current one (a copy of it plus the
 * new entries): HOME/meta.next (redirect) or POOL/roots/.next.GUEST (link).
 * Last it writes HOME/online-switch, the manifest of the upper copies the
 * switch will purge, each with the (inode, size, mtime, ctime) seen when it
 * was hashed.  The manifest is the commit point: a prepared lower without
 * one is garbage.
 *
 * The switch (online_switch) runs when the guest is not mounted, at its
 * next `vunify mount` (or before an offline unify): entries the guest has
 * since deleted or renamed are dropped from the prepared lower, the
 * prepared lower is exchanged with the current one in one
 * renameat2(RENAME_EXCHANGE), and the upper copies still exactly as hashed
 * are unlinked.  The order and why each step is safe to die after is
 * written at online_switch (lib/online.c) and in docs/DESIGN.md. */
#ifndef VUNIFY_ONLINE_H
#define VUNIFY_ONLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "pool.h"

/* In HOME: what the switch will purge (docs/FORMAT.md). */
#define HOME_ONLINE_MANIFEST "online-switch"

/* One upper file the prepared lower now also holds. */
struct online_entry {
	const char *path; /* relative to the upper */
	struct stat st; /* as hashed: st_ino, st_size, st_mtim, st_ctim count */
};

/* The prepared lower's name beside the lower layer (in the directory that
 * layout_ops->open_lower_parent opens) into BUF.  Returns 0 or -errno. */
int online_next_name(struct pool *p, const struct guest *g, char *buf, size_t size);

/* 1 if HOME holds a manifest (a switch is pending), 0 if not, or -errno. */
int online_pending(int home_fd);

/* Forget a preparation: the manifest goes first (made durable), then the
 * prepared lower.  Also removes a prepared lower left without manifest (a
 * killed preparation, or the old lower a switch left).  Never touches the
 * guest's layers, so it is safe while the guest is mounted.  HOME_FD may
 * be -1 (home not attached: the pool's part only).  Returns 0 or -errno. */
int online_discard(struct pool *p, const struct guest *g, int home_fd);

/* Begin a preparation: discard any earlier one, then copy the current
 * lower layer (read only) into the prepared lower's name: stubs as new
 * stubs with the same metadata and xattrs (redirect), hard links to the
 * same objects (link), directories with their metadata.  Returns an fd of
 * the prepared lower's root or -errno. */
int online_prepare_begin(struct pool *p, const struct guest *g, int home_fd);

/* Commit a preparation: the prepared lower NEXT_FD made durable, then the
 * manifest of the N entries written atomically (temp, fsync, rename, fsync
 * HOME).  Returns 0 or -errno. */
int online_prepare_commit(int home_fd, int next_fd, const struct online_entry *v, size_t n);

struct online_switch_result {
	bool switched; /* a prepared lower went in (or had gone in) */
	bool discarded; /* the manifest named no prepared lower here: dropped */
	uint64_t files_purged; /* upper copies removed */
	uint64_t files_kept; /* changed since hashed: stay in the upper */
	uint64_t entries_dropped; /* deleted/renamed since: left out of the lower */
	double seconds; /* the switch itself, manifest check to purge synced */
};

/* Carry out a pending switch of a guest that is NOT mounted (the caller
 * checks that, and holds the pool's exclusive lock).  Nothing pending:
 * returns 0 with ret->switched false.  The old lower layer is left under
 * the prepared lower's name for online_cleanup (the switch is downtime;
 * removing a tree is not needed for the mount).  Re-running after a kill
 * finishes the switch.  Returns 0 or -errno. */
int online_switch(struct pool *p, const struct guest *g, int home_fd, struct online_switch_result *ret);

/* After a switch: remove the old lower layer it left (or a prepared lower
 * without manifest), and with REFRESH record the guest's figures and
 * references from its new lower layer.  Safe while the
 * guest is mounted (the old lower is no layer of any mount).  Returns 0 or
 * -errno. */
int online_cleanup(struct pool *p, struct guest *g, int home_fd, bool refresh);

/* An fd of the prepared lower when a switch is pending (for gc, fsck,
 * status), -ENOENT if none.  HOME_FD may be -1 (home not attached:
 * -ENOENT). */
int online_open_next(struct pool *p, const struct guest *g, int home_fd);

#endif
