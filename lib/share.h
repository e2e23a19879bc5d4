/* SPEC's sharing decision, "share what is shared": which hashed files the
 * store moves into the pool.  A content is shared when two or more of the
 * run's guests hold it, or the pool held it before the run; the policy's
 * system class is unified even when only one guest holds it, the never
 * class not at all. */
#ifndef VUNIFY_SHARE_H
#define VUNIFY_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash_intern.h"
#include "pool.h"

/* A sorted set of content hashes (HASH_LEN bytes each). */
struct hash_set {
	unsigned char *v;
	size_t n, cap;
};

/* The content hashes the pool holds (sorted; free with hash_set_free):
 * every object name's hash, from one readdir of objects/. */
int hash_set_load(struct pool *p, struct hash_set *ret);

/* Of the hashes in T, those the pool holds as an object named by the hash
 * alone (layout_ops.names_by_content): one stat each, so the cost and the
 * memory follow the run's contents, not the pool's.  For every hash of T,
 * hash_set_has answers as it would on hash_set_load's set. */
int hash_set_load_held(struct pool *p, const struct hash_intern *t, struct hash_set *ret);
bool hash_set_has(const struct hash_set *s, const unsigned char *h);
void hash_set_free(struct hash_set *s);

/* One hashed file for the decision. */
struct share_item {
	const unsigned char *hash;
	uint32_t guest; /* index of its guest in the run */
	uint8_t cls; /* enum policy_class */
	bool settle; /* chosen whatever the rule says (a half-adopted file
	              * must be settled: store.c, settle_half_adopted) */
	bool chosen; /* out: to be unified */
	void *ud; /* the caller's */
};

/* Sort V by content, then guest, and set each item's .chosen.  POOL_SET:
 * the content hashes the pool held before this run. */
void share_decide(struct share_item *v, size_t n, const struct hash_set *pool_set);

/* qsort order of share_decide: by content, then guest. */
int share_item_cmp(const void *a, const void *b);

/* Sort V by share_item_cmp, in place (no copy of V: it has an item for
 * every hashed file of a run). */
void share_sort(struct share_item *v, size_t n);

#endif
