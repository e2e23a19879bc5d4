/* The replica's side of a batch (step 2 of the order in replica_send.c):
 * staged files re-hashed, renamed to their object names only if their
 * content matches, made durable before the sender hears of success. */
#define _GNU_SOURCE
#include "replica.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "lower.h"
#include "object.h"
#include "remove_tree.h"
#include "util.h"
#include "banned.h"

/* Commit one staged object: verify, name.  Returns 0, -EBADMSG (content
 * does not match the name) or -errno. */
static int commit_one(struct pool *p, struct hasher *h, int fan_fd, const char *fan, const char *name,
                      bool *ret_dropped)
{
	char rel[OBJECT_NAME_MAX + 4], hex[HASH_HEX_LEN + 1];
	unsigned char sum[HASH_LEN];
	struct stat st;
	size_t l = strlen(name);
	_cleanup_close_ int fd = -1;
	int r;

	*ret_dropped = false;
	/* HASH, or (link layout) HASH.METAKEY: the names a pool makes */
	if (!hash_is_hex(name) || strncmp(name, fan, 2) ||
	    (l != HASH_HEX_LEN && (l != 2 * HASH_HEX_LEN + 1 || name[HASH_HEX_LEN] != '.' ||
	                           !hash_is_hex(name + HASH_HEX_LEN + 1))))
		return -EBADMSG;
	fd = openat(fan_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &st) < 0)
		return neg_errno();
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	r = hasher_fd(h, fd, (uint64_t)st.st_size, sum);
	if (r < 0)
		return r;
	hash_to_hex(sum, hex);
	if (strncmp(hex, name, HASH_HEX_LEN))
		return -EBADMSG;
	if (renameat2(fan_fd, name, p->objects_fd, object_relpath(name, rel), RENAME_NOREPLACE) < 0) {
		if (errno != EEXIST)
			return neg_errno();
		*ret_dropped = true; /* an object of that name is there: it wins */
	}
	return 0;
}

/* Append NAMES (LEN bytes, one name a line) to POOL/held and fsync it.
 * One write(2) with O_APPEND, so concurrent receivers (each holds the
 * pool's shared lock) never interleave inside a line.  Returns 0 or
 * -errno. */
static int held_append(struct pool *p, const char *names, size_t len)
{
	_cleanup_close_ int fd = -1;
	ssize_t w;

	if (!len)
		return 0;
	fd = openat(p->fd, "held", O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return neg_errno();
	w = write(fd, names, len);
	if (w < 0)
		return neg_errno();
	if ((size_t)w != len)
		return -EIO;
	if (fsync(fd) < 0)
		return neg_errno();
	return 0;
}

int replica_commit(struct pool *p, const char *stage, uint64_t *ret_n)
{
	struct hasher h;
	_cleanup_close_ int sfd = -1;
	_cleanup_free_ char *held = NULL;
	size_t held_len = 0, held_cap = 0;
	uint64_t n = 0;
	int r = 0, bad = 0;

	if (strncmp(stage, "in.", 3) || strchr(stage, '/') || strstr(stage, ".."))
		return -EINVAL;
	sfd = openat(p->tmp_fd, stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return errno == ENOENT ? 0 : neg_errno(); /* nothing was sent */
	/* 1. the staged data durable before any of it is named */
	if (syncfs(sfd) < 0)
		return neg_errno();
	r = hasher_init(&h);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < 256 && r == 0; i++) {
		char fan[3];
		_cleanup_closedir_ DIR *d = NULL;
		struct dirent *de;
		int fd;
		snprintf(fan, sizeof(fan), "%02x", i);
		r = opendir_at(sfd, fan, &d);
		if (r == -ENOENT)
			r = 0; /* no object of this fan-out was sent */
		if (!d)
			continue; /* to the next, or out on an error */
		fd = dirfd(d);
		/* 2. each verified, then named (an existing object wins) */
		while (r == 0 && (de = readdir(d))) {
			bool dropped = false;
			int e;
			if (de->d_name[0] == '.')
				continue;
			e = commit_one(p, &h, fd, fan, de->d_name, &dropped);
			if (e == -EBADMSG)
				bad++;
			else if (e < 0)
				r = e;
			else
				n += !dropped;
			if (e == 0) {
				size_t l = strlen(de->d_name) + 1;
				if (held_len + l > held_cap) {
					size_t nc = held_cap ? held_cap * 2 : 65536;
					char *nb;
					while (nc < held_len + l)
						nc *= 2;
					nb = realloc(held, nc);
					if (!nb) {
						r = -ENOMEM;
						break;
					}
					held = nb;
					held_cap = nc;
				}
				memcpy(held + held_len, de->d_name, l - 1);
				held[held_len + l - 1] = '\n';
				held_len += l;
			}
		}
	}
	hasher_release(&h);
	/* 3. the names durable; the staging directory is garbage now */
	if (r == 0 && syncfs(p->objects_fd) < 0)
		r = neg_errno();
	/* 4. the names recorded as held for another host, durably, before
	 * the sender hears of success: this pool's gc keeps them although
	 * none of its own guests references them (a kill before this step
	 * leaves named objects the sender does not count on yet) */
	if (r == 0)
		r = held_append(p, held, held_len);
	(void)remove_tree_at(p->tmp_fd, stage);
	if (r == 0 && bad)
		r = -EBADMSG;
	if (ret_n)
		*ret_n = n;
	return r;
}
