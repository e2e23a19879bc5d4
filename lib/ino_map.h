/* The hash table of the code base for inodes: (device, inode number) to a
 * 64-bit value, with open addressing.  Used for hard-link maps (an inode
 * seen before), inode sets (counted once) and the object map (inode ->
 * object).  Sorted files on disk (the hash cache) are searched in place
 * instead.  (The other table, hash_intern.h, stores a unify run's content
 * hashes once each: 4-byte indices where a per-file record would hold
 * 32 bytes.) */
#ifndef VUNIFY_INO_MAP_H
#define VUNIFY_INO_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ino_map {
	struct ino_map_slot {
		dev_t dev;
		ino_t ino;
		uint64_t value; /* INO_MAP_FREE: an empty slot */
	} * v;
	size_t n, cap; /* cap: 0 or a power of two, at least twice n */
};
#define INO_MAP_FREE UINT64_MAX

/* The value stored for (DEV, INO), or NULL.  Valid until the next add. */
uint64_t *ino_map_find(const struct ino_map *m, dev_t dev, ino_t ino);

/* Store VALUE (not INO_MAP_FREE) for (DEV, INO) unless it is there.
 * *ret_value (if non-NULL) points at the value stored, new or old, until
 * the next add.  Returns 1 if added, 0 if it was there, or -ENOMEM. */
int ino_map_add(struct ino_map *m, dev_t dev, ino_t ino, uint64_t value, uint64_t **ret_value);

/* Free the table (not what values point to); *m is empty afterwards. */
void ino_map_free(struct ino_map *m);

#endif
