/* Open addressing with linear probing, kept at most half full; the key is
 * mixed with the splitmix64 finaliser, so inode numbers handed out in
 * sequence do not cluster. */
#define _GNU_SOURCE
#include "ino_map.h"

#include <errno.h>
#include <stdlib.h>

#include "banned.h"

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* The slot holding (DEV, INO), or the free slot where it would go. */
static struct ino_map_slot *slot(const struct ino_map *m, dev_t dev, ino_t ino)
{
	size_t i = (size_t)mix64((uint64_t)ino ^ mix64((uint64_t)dev)) & (m->cap - 1);

	while (m->v[i].value != INO_MAP_FREE && !(m->v[i].ino == ino && m->v[i].dev == dev))
		i = (i + 1) & (m->cap - 1);
	return &m->v[i];
}

uint64_t *ino_map_find(const struct ino_map *m, dev_t dev, ino_t ino)
{
	struct ino_map_slot *s;

	if (m->cap == 0)
		return NULL;
	s = slot(m, dev, ino);
	return s->value == INO_MAP_FREE ? NULL : &s->value;
}

static int grow(struct ino_map *m)
{
	struct ino_map nm = {.cap = m->cap ? m->cap * 2 : 256, .n = m->n};

	if (nm.cap < m->cap || !(nm.v = malloc(nm.cap * sizeof(*nm.v))))
		return -ENOMEM;
	for (size_t i = 0; i < nm.cap; i++)
		nm.v[i].value = INO_MAP_FREE;
	for (size_t i = 0; i < m->cap; i++)
		if (m->v[i].value != INO_MAP_FREE)
			*slot(&nm, m->v[i].dev, m->v[i].ino) = m->v[i];
	free(m->v);
	*m = nm;
	return 0;
}

int ino_map_add(struct ino_map *m, dev_t dev, ino_t ino, uint64_t value, uint64_t **ret_value)
{
	struct ino_map_slot *s;

	if ((m->n + 1) * 2 > m->cap && grow(m) < 0)
		return -ENOMEM;
	s = slot(m, dev, ino);
	if (s->value == INO_MAP_FREE) {
		*s = (struct ino_map_slot){.dev = dev, .ino = ino, .value = value};
		m->n++;
		if (ret_value)
			*ret_value = &s->value;
		return 1;
	}
	if (ret_value)
		*ret_value = &s->value;
	return 0;
}

void ino_map_free(struct ino_map *m)
{
	free(m->v);
	*m = (struct ino_map){0};
}
