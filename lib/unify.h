/* unify: move every eligible file of guests' upper layers into the pool
 * and their lower layers without changing what any guest sees.
 *
 * Three phases: scan (stat walk of each upper, policy classes, hard-link
 * groups), hash (parallel, sparse-aware), and per guest apply in batches:
 * objects written to POOL/tmp and made durable, renamed to their names,
 * references recorded, lower entries placed, and only then the upper
 * copies removed.  At every instant each path shows either its upper copy
 * or an equal lower entry, so a crash loses nothing and a re-run finishes
 * the work (docs/DESIGN.md, "Crash safety"). */
#ifndef VUNIFY_UNIFY_H
#define VUNIFY_UNIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"

struct unify_progress {
	const char *phase; /* "hash", "store" */
	uint64_t files_done, files_total;
	uint64_t bytes_done, bytes_total;
	double elapsed; /* seconds since the phase began */
};

struct replica_session;

struct unify_options {
	bool dry_run;
	/* Replicated unify (SPEC invariant 7; NULL: local only).  Each batch's
	 * objects are made durable on every replica before any lower entry
	 * points at them; a file whose object a replica lacks (it could not
	 * be reached, or is full) stays in the upper, counted in the
	 * session's files_kept of that replica. */
	struct replica_session *replicas;
	/* Link layout: keep HOME/vunify-lower (lowerlist.h) describing the
	 * lower layer, so that the guest can fail over with its partition.
	 * Set when the pool has replicas, even with --no-replicas. */
	bool describe_lower;
	/* unify --online: a guest that is mounted is not refused; its next
	 * lower layer is prepared beside the current one (online.h) and the
	 * switch happens at its next mount.  Guests not mounted are unified
	 * as usual. */
	bool online;
	unsigned jobs; /* hashing threads; 0 = number of CPUs */
	/* Called from the calling thread a few times a second, and once at
	 * the end of each phase; may be NULL. */
	void (*progress)(const struct unify_progress *pr, void *userdata);
	void *progress_userdata;
};

struct unify_guest_result {
	char name[65];
	uint64_t files_scanned; /* regular files seen in the upper */
	uint64_t files_unified; /* paths moved to the lower layer in this run */
	uint64_t bytes_unified; /* their sizes, hard links counted once */
	uint64_t files_skipped; /* chosen but left in the upper (see docs) */
	uint64_t new_objects; /* objects this guest added to the pool */
	uint64_t new_object_bytes;
	uint64_t whiteouts_folded; /* whiteouts whose lower entries were removed */
	uint64_t opaque_folded; /* opaque directories made plain again */
	bool prepared; /* --online, mounted: files_unified are in its prepared
	                * lower (dry run: would be), their upper copies go at the
	                * switch */
	bool switched; /* a pending switch was carried out first */
	uint64_t switch_purged; /* by that switch: upper copies removed */
	struct guest_stats stats; /* figures after the run */
};

struct unify_result {
	struct unify_guest_result *guests;
	size_t n_guests;
	uint64_t new_objects, new_object_bytes;
	uint64_t bytes_hashed;
};

/* Unify the NAMES (all registered guests when n == 0).  On failure
 * *ret_what names the guest or path concerned (malloc'd).  Returns 0 or
 * -errno (-EBUSY: a guest is mounted; -ENOENT: unknown guest or home not
 * attached; -ENOSPC: out of space, with every guest's view intact). */
int unify_run(struct pool *p, char *const *names, size_t n, const struct unify_options *o,
              struct unify_result *ret, char **ret_what);
void unify_result_free(struct unify_result *r);

/* Recompute and record a guest's figures and references from its lower
 * layer; the upper's disk usage is UPPER_BYTES when known, else measured.
 * Returns 0 or -errno. */
int guest_refresh_stats(struct pool *p, struct guest *g, int home_fd, const uint64_t *upper_bytes);

/* Replicated unify: one session for the run in o->replicas (every replica
 * asked what it holds, once), and the objects GUESTS already reference
 * sent first to the replicas that lack them; o->describe_lower set when
 * the pool has replicas.  NO_REPLICAS: no session.  Returns 0 or -errno
 * (replica_send.c). */
int unify_replicas_prepare(struct pool *p, char *const *guests, size_t n, bool no_replicas,
                           struct unify_options *o);

#endif
