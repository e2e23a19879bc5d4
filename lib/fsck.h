/* fsck: re-hash every object, check each guest's lower layer and the
 * pool's record of what it references, clean leftovers of killed commands,
 * and with FSCK_REPAIR fix what can be fixed without guessing.  The
 * library finds and repairs; it reports each finding through a callback
 * and never prints (src/cmd_fsck.c does). */
#ifndef VUNIFY_FSCK_H
#define VUNIFY_FSCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

enum fsck_flags {
	FSCK_REPAIR = 1 << 0, /* rewrite incomplete records, relink, unshare */
};

/* What a finding is about: "pool: TEXT", "object NAME: TEXT",
 * "guest NAME: TEXT". */
enum fsck_scope {
	FSCK_POOL,
	FSCK_OBJECT,
	FSCK_GUEST,
};

enum fsck_verdict {
	FSCK_PROBLEM, /* counted in problems */
	FSCK_REPAIRED, /* put right; counted in repaired */
	FSCK_NOTE, /* said, not counted (skipped, checked only, counted elsewhere) */
};

struct fsck_finding {
	enum fsck_scope scope;
	const char *name; /* object or guest name; NULL for the pool */
	enum fsck_verdict verdict;
	const char *text; /* one line, no newline */
};

struct fsck_progress {
	uint64_t checked, objects_total;
	uint64_t bytes_done, bytes_total;
};

struct fsck_ops {
	/* Each finding, in the order found.  Required. */
	void (*finding)(const struct fsck_finding *f, void *ud);
	/* After each object hashed and once at the end of the objects
	 * (FINAL); NULL: no progress, and objects/ is not counted first. */
	void (*progress)(const struct fsck_progress *pr, bool final, void *ud);
};

/* The step fsck_run stopped at when it fails. */
enum fsck_stage {
	FSCK_STAGE_DIRS, /* the pool's directories */
	FSCK_STAGE_TMP, /* cleaning POOL/tmp */
	FSCK_STAGE_OBJECTS, /* objects/ */
	FSCK_STAGE_GUESTS, /* the list of guests */
};

struct fsck_result {
	uint64_t problems, checked, repaired, leftovers;
	enum fsck_stage stage; /* set when fsck_run fails */
};

/* Check pool P (opened with POOL_LOCK_EXCLUSIVE: leftovers of other
 * writers are only garbage while no writer runs), and the guests NAMES
 * (N of them), or every registered guest when N is 0.  A mounted guest is
 * checked, never changed.  Fills *ret (also on failure, with ret->stage).
 * Returns 0 when the check ran to its end (problems or not), or -errno
 * when it could not. */
int fsck_run(struct pool *p, char *const *names, size_t n, unsigned flags, const struct fsck_ops *ops,
             void *ud, struct fsck_result *ret);

#endif
