/* Content hashes stored once (hash_intern.h). */
#define _GNU_SOURCE
#include "hash_intern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

_Static_assert(HASH_INTERN_CHUNK0 == 1u << 12, "hash_intern_get's shift");

int hash_intern_init(struct hash_intern *t)
{
	memset(t, 0, sizeof(*t));
	return -pthread_mutex_init(&t->lock, NULL);
}

void hash_intern_free(struct hash_intern *t)
{
	for (unsigned k = 0; k < HASH_INTERN_CHUNKS; k++)
		free(t->chunks[k]);
	free(t->slots);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
}

/* A SHA-256 is uniform already: its first 8 bytes pick the slot. */
static size_t slot_of(const unsigned char *h, size_t n_slots)
{
	uint64_t k;

	memcpy(&k, h, sizeof(k));
	return (size_t)(k & (n_slots - 1));
}

/* Double the slots (under the lock). */
static int grow(struct hash_intern *t)
{
	size_t ns = t->n_slots ? t->n_slots * 2 : 1024;
	uint32_t *nv = calloc(ns, sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_slots; i++) {
		uint32_t idx = t->slots[i];
		if (idx == HASH_NONE)
			continue;
		size_t s = slot_of(hash_intern_get(t, idx), ns);
		while (nv[s] != HASH_NONE)
			s = (s + 1) & (ns - 1);
		nv[s] = idx;
	}
	free(t->slots);
	t->slots = nv;
	t->n_slots = ns;
	return 0;
}

static int add_locked(struct hash_intern *t, const unsigned char *h, uint32_t *ret_idx)
{
	size_t s;
	int r;

	if ((size_t)t->n + 1 > t->n_slots / 2) {
		r = grow(t);
		if (r < 0)
			return r;
	}
	for (s = slot_of(h, t->n_slots); t->slots[s] != HASH_NONE; s = (s + 1) & (t->n_slots - 1))
		if (!memcmp(hash_intern_get(t, t->slots[s]), h, HASH_LEN)) {
			*ret_idx = t->slots[s];
			return 0;
		}
	if (t->n >= UINT32_MAX - 1)
		return -EOVERFLOW;
	{
		uint32_t idx = t->n + 1;
		uint64_t i = (uint64_t)t->n + HASH_INTERN_CHUNK0;
		unsigned k = 63u - (unsigned)__builtin_clzll(i) - 12u;
		if (!t->chunks[k]) {
			/* chunk k holds 4096 << k hashes */
			t->chunks[k] = malloc(((size_t)HASH_INTERN_CHUNK0 << k) * HASH_LEN);
			if (!t->chunks[k])
				return -ENOMEM;
		}
		memcpy(t->chunks[k] + (i - ((uint64_t)HASH_INTERN_CHUNK0 << k)) * HASH_LEN, h, HASH_LEN);
		t->n++;
		t->slots[s] = idx;
		*ret_idx = idx;
	}
	return 0;
}

int hash_intern_add(struct hash_intern *t, const unsigned char *h, uint32_t *ret_idx)
{
	int r;

	pthread_mutex_lock(&t->lock);
	r = add_locked(t, h, ret_idx);
	pthread_mutex_unlock(&t->lock);
	return r;
}
