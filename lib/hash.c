/* Content hashing.  The read loop is sparse-aware: it asks the filesystem
 * where data lives and feeds zeros for holes, so a sparse disk image hashes
 * at memory speed and nothing is read twice. */
#define _GNU_SOURCE
#include "hash.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

#include "sparse.h"
#include "util.h"
#include "banned.h"

#define READ_CHUNK (1 << 20)

struct hash_ctx {
	EVP_MD_CTX *md;
	bool started;
};

struct hash_ctx *hash_new(void)
{
	struct hash_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->md = EVP_MD_CTX_new();
	if (!c->md) {
		free(c);
		return NULL;
	}
	return c;
}

void hash_free(struct hash_ctx *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->md);
	free(c);
}

static int hash_start(struct hash_ctx *c)
{
	if (c->started)
		return 0;
	if (EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
		return -EIO;
	c->started = true;
	return 0;
}

int hash_update(struct hash_ctx *c, const void *buf, size_t len)
{
	int r = hash_start(c);

	if (r < 0)
		return r;
	if (len && EVP_DigestUpdate(c->md, buf, len) != 1)
		return -EIO;
	return 0;
}

int hash_final(struct hash_ctx *c, unsigned char ret[HASH_LEN])
{
	unsigned int n = 0;
	int r = hash_start(c);

	if (r < 0)
		return r;
	c->started = false;
	if (EVP_DigestFinal_ex(c->md, ret, &n) != 1 || n != HASH_LEN)
		return -EIO;
	return 0;
}

int hash_buffer(const void *buf, size_t len, unsigned char ret[HASH_LEN])
{
	struct hash_ctx *c = hash_new();
	int r;

	if (!c)
		return -ENOMEM;
	r = hash_update(c, buf, len);
	if (r == 0)
		r = hash_final(c, ret);
	hash_free(c);
	return r;
}

static int hash_zeros(struct hash_ctx *c, const unsigned char *zeros, uint64_t n)
{
	while (n > 0) {
		size_t k = (size_t)MIN(n, (uint64_t)READ_CHUNK);
		int r = hash_update(c, zeros, k);
		if (r < 0)
			return r;
		n -= k;
	}
	return 0;
}

static int hash_range(struct hash_ctx *c, int fd, unsigned char *buf, uint64_t off, uint64_t end)
{
	while (off < end) {
		size_t want = (size_t)MIN(end - off, (uint64_t)READ_CHUNK);
		ssize_t n = pread_data(fd, buf, want, off);
		int r;
		if (n < 0)
			return (int)n; /* -E_CHANGED: shrank under us */
		r = hash_update(c, buf, (size_t)n);
		if (r < 0)
			return r;
		off += (uint64_t)n;
	}
	return 0;
}

/* Files that fit the buffer: one read of size+1 bytes proves the length
 * (a short read means it shrank, a long one that it grew) and holes read
 * as zeros, so no SEEK_DATA/SEEK_HOLE or probes are needed. */
static int hash_small(struct hasher *h, int fd, uint64_t size, unsigned char ret[HASH_LEN])
{
	int r = hasher_read_small(h, fd, size);

	if (r == 0)
		r = hash_update(h->c, h->buf, (size_t)size);
	return r < 0 ? r : hash_final(h->c, ret);
}

int hasher_read_small(struct hasher *h, int fd, uint64_t size)
{
	size_t want = (size_t)size + 1, got = 0;

	if (size >= READ_CHUNK)
		return -EFBIG;
	while (got < want) {
		ssize_t n = pread_data(fd, h->buf + got, want - got, got);
		if (n == -E_CHANGED)
			break; /* end of file */
		if (n < 0)
			return (int)n;
		got += (size_t)n;
		if ((size_t)n < want - (got - (size_t)n))
			break; /* a short read of a regular file: end of file */
	}
	return got == size ? 0 : -E_CHANGED; /* shrank or grew */
}

int hasher_init(struct hasher *h)
{
	h->buf = malloc(READ_CHUNK + 1);
	h->c = hash_new();
	if (!h->buf || !h->c) {
		hasher_release(h);
		return -ENOMEM;
	}
	return 0;
}

void hasher_release(struct hasher *h)
{
	free(h->buf);
	hash_free(h->c);
	h->buf = NULL;
	h->c = NULL;
}

int hash_fd(int fd, uint64_t size, unsigned char ret[HASH_LEN])
{
	struct hasher h;
	int r = hasher_init(&h);

	if (r < 0)
		return r;
	r = hasher_fd(&h, fd, size, ret);
	hasher_release(&h);
	return r;
}

struct hash_walk {
	struct hasher *h;
	int fd;
	unsigned char *zeros; /* READ_CHUNK zero bytes, allocated at the first hole */
};

/* sparse_walk's step: holes hash as zeros without being read */
static int hash_extent(uint64_t start, uint64_t end, bool data, void *ud)
{
	struct hash_walk *w = ud;

	if (data)
		return hash_range(w->h->c, w->fd, w->h->buf, start, end);
	if (!w->zeros && !(w->zeros = calloc(1, READ_CHUNK)))
		return -ENOMEM;
	return hash_zeros(w->h->c, w->zeros, end - start);
}

int hasher_fd(struct hasher *h, int fd, uint64_t size, unsigned char ret[HASH_LEN])
{
	struct hash_walk w = {.h = h, .fd = fd};
	int r;

	if (size < READ_CHUNK)
		return hash_small(h, fd, size, ret);
	/* The file must end exactly at SIZE: SEEK_DATA reports ENXIO past
	 * the end as for a trailing hole, so a short file would otherwise hash
	 * as zero-padded.  Nor may it have grown. */
	r = sparse_walk(fd, size, SPARSE_EXACT, hash_extent, &w);
	free(w.zeros);
	if (r == 0)
		r = hash_final(h->c, ret);
	else
		(void)hash_final(h->c, ret); /* reset the context for the next file */
	return r;
}

void hash_to_hex(const unsigned char h[HASH_LEN], char out[HASH_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < HASH_LEN; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 15];
	}
	out[HASH_HEX_LEN] = '\0';
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int hash_is_hex(const char *s)
{
	for (size_t i = 0; i < HASH_HEX_LEN; i++)
		if (hexval(s[i]) < 0)
			return 0;
	return 1;
}

int hash_from_hex(const char *hex, unsigned char ret[HASH_LEN])
{
	if (strlen(hex) != HASH_HEX_LEN || !hash_is_hex(hex))
		return -EINVAL;
	for (size_t i = 0; i < HASH_LEN; i++)
		ret[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
	return 0;
}
