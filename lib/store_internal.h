/* Private to the store phase: store_batch.c runs a batch, store_object.c
 * holds the steps it takes for one file (adopt, place, remove the upper). */
#ifndef VUNIFY_STORE_INTERNAL_H
#define VUNIFY_STORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "hash.h"
#include "object.h"
#include "unify_internal.h"

/* An object this batch creates.  ADOPT: the upper file is on the pool's
 * filesystem and becomes the object itself (no data copied): in the link
 * layout by a hard link before the lower entries are made, in the redirect
 * layout by renaming it into objects/ after its stub is durable. */
struct pending {
	char tmp[OBJECT_TMP_MAX];
	char name[OBJECT_NAME_MAX];
	struct scanned_file *adopt;
};

struct batch {
	uint32_t *slots; /* PEND_SLOTS: index into pend[] or UINT32_MAX */
	struct scanned_file **files;
	char (*names)[OBJECT_NAME_MAX];
	size_t n;
	struct pending *pend;
	size_t n_pend;
	uint64_t bytes;
};

struct apply {
	const struct hash_set *pool_set; /* contents the pool held before the run */
	struct hasher hasher; /* for copies into the pool */
	struct pool *p;
	const struct layout_ops *ops;
	struct guest_scan *gs;
	struct dircache upper_dc, lower_dc;
	bool same_fs; /* upper and objects/ on one filesystem */
	struct replica_session *replicas; /* replicated unify, or NULL */
};

/* store_object.c; each returns 0 or -errno (-ESTALE: the upper file
 * changed), adopt_object 1 when the upper name was moved (see there). */
int restat_upper(struct dircache *dc, const struct guest_scan *gs, struct scanned_file *f);
int place_adopter(struct apply *a, struct scanned_file *f);
int adopt_object(struct apply *a, struct pending *pe);
void plain_object(struct pool *p, const struct pending *pe);
int remove_upper(struct apply *a, struct scanned_file *f, bool adopted);

#endif
