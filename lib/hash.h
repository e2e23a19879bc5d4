/* SHA-256 of file content through OpenSSL's EVP interface (which uses the
 * CPU's SHA extensions where present). */
#ifndef VUNIFY_HASH_H
#define VUNIFY_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HASH_LEN 32
#define HASH_HEX_LEN 64

struct hash_ctx;

/* Allocate a streaming context; NULL on failure. */
struct hash_ctx *hash_new(void);
void hash_free(struct hash_ctx *c);
int hash_update(struct hash_ctx *c, const void *buf, size_t len);
/* Finish into ret (HASH_LEN bytes); the context may be reused after. */
int hash_final(struct hash_ctx *c, unsigned char ret[HASH_LEN]);

/* Hash SIZE bytes of an open regular file from offset 0.  Holes (found with
 * SEEK_DATA/SEEK_HOLE) are hashed as zeros without being read, so a sparse
 * multi-GiB file costs only its data.  Fails with -E_CHANGED when the file
 * is not SIZE bytes long (it changed under us); a read error is returned
 * as itself (-EIO from the disk is not a change).  Returns 0 or -errno. */
int hash_fd(int fd, uint64_t size, unsigned char ret[HASH_LEN]);

/* A reusable hashing context with its read buffer (one per thread), so
 * hashing many small files allocates nothing per file. */
struct hasher {
	struct hash_ctx *c;
	unsigned char *buf;
};
int hasher_init(struct hasher *h);
void hasher_release(struct hasher *h);
/* Read a file of SIZE bytes (below 1 MiB) whole into h->buf with one
 * read of size+1 bytes, which also proves its length.  Returns 0, -E_CHANGED
 * if the file is not exactly SIZE bytes long, -EFBIG if SIZE is too large for
 * the buffer, or -errno. */
int hasher_read_small(struct hasher *h, int fd, uint64_t size);

/* As hash_fd, with h's context and buffer. */
int hasher_fd(struct hasher *h, int fd, uint64_t size, unsigned char ret[HASH_LEN]);

/* Hash a memory buffer.  Returns 0 or -EIO. */
int hash_buffer(const void *buf, size_t len, unsigned char ret[HASH_LEN]);

/* Lower-case hex; out must hold HASH_HEX_LEN + 1 bytes. */
void hash_to_hex(const unsigned char h[HASH_LEN], char out[HASH_HEX_LEN + 1]);
/* Parse exactly HASH_HEX_LEN lower-case hex digits.  Returns 0 or -EINVAL. */
int hash_from_hex(const char *hex, unsigned char ret[HASH_LEN]);
/* True if s starts with HASH_HEX_LEN lower-case hex digits. */
int hash_is_hex(const char *s);

#endif
