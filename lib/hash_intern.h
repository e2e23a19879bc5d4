/* Content hashes stored once per content, each named by a 32-bit index.
 *
 * A unify run holds one record per file of every guest from the scan to
 * the end of the store; most of those files share their content with other
 * guests' files (80 % in the synthetic guests of `make bench-scale`).  A
 * record keeps the index of its hash here (4 bytes) instead of the hash
 * (32 bytes); each distinct hash costs its 32 bytes once plus 8 to 16
 * bytes of index slots.
 *
 * The hashes live in chunks that never move (chunk k holds 4096 << k of
 * them), so a pointer from hash_intern_get stays valid until
 * hash_intern_free.  hash_intern_add may be called from several threads at
 * once (the hash phase); hash_intern_get of an index that add returned
 * needs no lock. */
#ifndef VUNIFY_HASH_INTERN_H
#define VUNIFY_HASH_INTERN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

/* An index add never returns: a record that has no hash yet. */
#define HASH_NONE 0u

#define HASH_INTERN_CHUNK0 4096u
#define HASH_INTERN_CHUNKS 20 /* 4096 * (2^20 - 1) hashes: more than UINT32_MAX */

struct hash_intern {
	unsigned char *chunks[HASH_INTERN_CHUNKS];
	uint32_t n; /* hashes stored; index i (1..n) is the (i-1)th */
	uint32_t *slots; /* open addressing: an index, or HASH_NONE */
	size_t n_slots; /* 0 or a power of two, at least twice n */
	pthread_mutex_t lock;
};

/* An empty table.  Returns 0 or -errno. */
int hash_intern_init(struct hash_intern *t);

/* The index of hash H (HASH_LEN bytes), added if it was not there.
 * Returns 0 or -ENOMEM (-EOVERFLOW past UINT32_MAX - 1 hashes). */
int hash_intern_add(struct hash_intern *t, const unsigned char *h, uint32_t *ret_idx);

/* The hash of index IDX (returned by hash_intern_add; not HASH_NONE). */
static inline const unsigned char *hash_intern_get(const struct hash_intern *t, uint32_t idx)
{
	uint64_t i = (uint64_t)idx - 1 + HASH_INTERN_CHUNK0;
	unsigned k = 63u - (unsigned)__builtin_clzll(i) - 12u; /* log2(HASH_INTERN_CHUNK0) */

	return t->chunks[k] + (i - ((uint64_t)HASH_INTERN_CHUNK0 << k)) * HASH_LEN;
}

/* Free everything; *t is unusable until hash_intern_init. */
void hash_intern_free(struct hash_intern *t);

#endif
