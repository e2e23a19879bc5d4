/* Remembered content hashes of a guest's upper files, so that re-unifying
 * a guest whose upper did not change costs a stat walk, not a re-hash.
 * Kept in HOME/vunify-hashes (the inode numbers belong to the home's
 * filesystem); an entry counts only while inode, size, mtime and ctime are
 * all unchanged (any write or xattr change moves ctime). */
#ifndef VUNIFY_HASHCACHE_H
#define VUNIFY_HASHCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "hash.h"

#define HASHCACHE_NAME "vunify-hashes"

struct hashcache_entry {
	uint64_t ino, size;
	int64_t mtime_sec, mtime_nsec, ctime_sec, ctime_nsec;
	unsigned char hash[HASH_LEN];
};

struct hashcache {
	struct hashcache_entry *v;
	size_t n, cap;
};

/* Load HOME/vunify-hashes; a missing or malformed file gives an empty
 * cache.  Returns 0 or -errno (-ENOMEM). */
int hashcache_load(int home_fd, struct hashcache *ret);
/* The remembered hash of st's file, or NULL. */
const unsigned char *hashcache_find(const struct hashcache *c, const struct stat *st);
/* Append an entry (call hashcache_save to sort and write).  Returns 0 or
 * -ENOMEM. */
int hashcache_add(struct hashcache *c, const struct stat *st, const unsigned char hash[HASH_LEN]);
/* Replace HOME/vunify-hashes atomically.  Returns 0 or -errno. */
int hashcache_save(int home_fd, struct hashcache *c);
void hashcache_free(struct hashcache *c);

#endif
