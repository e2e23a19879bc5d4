/* Helpers for small files and numbers.  Small files (config, registry) are
 * always replaced atomically so a crash leaves either the old or the new
 * version, never a torn one. */
#define _GNU_SOURCE
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "banned.h"

char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p;

	if (la == 0)
		return strdup(b);
	if (a[la - 1] == '/')
		la--; /* "/" + "x" is "/x", not "//x" */
	p = malloc(la + lb + 2);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	return p;
}

ssize_t pread_data(int fd, void *buf, size_t len, uint64_t off)
{
	for (;;) {
		ssize_t n = pread(fd, buf, len, (off_t)off);
		if (n > 0)
			return n;
		if (n == 0)
			return -E_CHANGED;
		if (errno != EINTR)
			return neg_errno();
	}
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int fsync_dir(int dirfd)
{
	if (fsync(dirfd) < 0 && errno != EINVAL && errno != EROFS)
		return neg_errno();
	return 0;
}

int publish_tree(int fs_fd, int dir_fd, const char *tmp, const char *name)
{
	if (syncfs(fs_fd) < 0 || renameat2(dir_fd, tmp, dir_fd, name, RENAME_NOREPLACE) < 0)
		return neg_errno();
	return fsync_dir(dir_fd);
}

int open_regular_at(int dir_fd, const char *name, int flags, struct stat *ret_st)
{
	_cleanup_close_ int pfd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	char path[64];
	struct stat st;
	int fd;

	if (pfd < 0)
		return neg_errno();
	if (fstat(pfd, &st) < 0)
		return neg_errno();
	if (S_ISLNK(st.st_mode))
		return -ELOOP;
	if (!S_ISREG(st.st_mode))
		return -E_CHANGED;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", pfd);
	/* (no O_NOFOLLOW here: /proc/self/fd/N is a magic link to PFD's inode) */
	fd = open(path, (flags & ~O_NOFOLLOW) | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == EPERM && (flags & O_NOATIME))
		fd = open(path, (flags & ~(O_NOATIME | O_NOFOLLOW)) | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (ret_st && fstat(fd, ret_st) < 0) {
		int r = neg_errno();
		close(fd);
		return r;
	}
	return fd;
}

int read_file_at(int dirfd, const char *name, size_t max, char **ret_buf, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap;

	max = MIN(max, SIZE_MAX / 2);
	cap = MIN((size_t)4096, max);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return neg_errno();
	buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;
		if (len == cap) {
			char *nb;
			if (cap >= max) {
				/* MAX bytes read: one more decides between
				 * the end and a file that is too big */
				char probe;
				n = read(fd, &probe, 1);
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0)
					return neg_errno();
				if (n > 0)
					return -EFBIG;
				break;
			}
			cap = MIN(cap * 2, max);
			nb = realloc(buf, cap + 1);
			if (!nb)
				return -ENOMEM;
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	*ret_buf = steal_pointer(&buf);
	return 0;
}

ssize_t readlink_at(int dir_fd, const char *name, char *buf, size_t size)
{
	ssize_t n;

	if (size == 0)
		return -ENAMETOOLONG;
	n = readlinkat(dir_fd, name, buf, size);
	if (n < 0)
		return neg_errno();
	/* n == size: the target may have been cut short; the NUL needs one more */
	if ((size_t)n >= size)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return n;
}

int opendir_at(int dir_fd, const char *name, DIR **ret_dir)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;

	if (fd < 0)
		return neg_errno();
	d = fdopendir(fd);
	if (!d) {
		int r = neg_errno();
		close(fd);
		return r;
	}
	*ret_dir = d;
	return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *buf, size_t len, mode_t mode)
{
	char tmp[256];
	_cleanup_close_ int fd = -1;
	int r;

	if (snprintf(tmp, sizeof(tmp), ".tmp.%s.%ld", name, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return neg_errno();
	r = write_all(fd, buf, len);
	if (r == 0 && fsync(fd) < 0)
		r = neg_errno();
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = neg_errno();
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	return fsync_dir(dirfd);
}

int parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return 0;
}

const char *format_bytes(uint64_t n, char *buf, size_t size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%" PRIu64 " B", n);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}
