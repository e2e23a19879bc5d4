/* overlayfs glue.  Paths in lowerdir= need ',' ':' and '\' escaped with a
 * backslash; mountinfo escapes its fields as \ooo octal. */
#define _GNU_SOURCE
#include "overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

static size_t escape_into(char *out, const char *in)
{
	size_t n = 0;

	for (; *in; in++) {
		if (*in == ',' || *in == ':' || *in == '\\') {
			if (out)
				out[n] = '\\';
			n++;
		}
		if (out)
			out[n] = *in;
		n++;
	}
	return n;
}

char *overlay_options(const char *lower, const char *data, const char *upper, const char *work)
{
	size_t len = escape_into(NULL, lower) + (data ? escape_into(NULL, data) + 2 : 0) +
	             escape_into(NULL, upper) + escape_into(NULL, work) + sizeof(OVL_FIXED_OPTIONS) + 64;
	char *s = malloc(len), *w;

	if (!s)
		return NULL;
	w = s;
	w += snprintf(w, len, "lowerdir=");
	w += escape_into(w, lower);
	if (data) {
		*w++ = ':';
		*w++ = ':';
		w += escape_into(w, data);
	}
	w += snprintf(w, len - (size_t)(w - s), ",upperdir=");
	w += escape_into(w, upper);
	w += snprintf(w, len - (size_t)(w - s), ",workdir=");
	w += escape_into(w, work);
	snprintf(w, len - (size_t)(w - s), ",%s", OVL_FIXED_OPTIONS);
	return s;
}

char *overlay_options_readonly(const char *upper, const char *lower, const char *data)
{
	size_t len = escape_into(NULL, upper) + escape_into(NULL, lower) +
	             (data ? escape_into(NULL, data) + 2 : 0) + sizeof(OVL_FIXED_OPTIONS) + 32;
	char *s = malloc(len), *w;

	if (!s)
		return NULL;
	w = s;
	w += snprintf(w, len, "lowerdir=");
	w += escape_into(w, upper);
	*w++ = ':';
	w += escape_into(w, lower);
	if (data) {
		*w++ = ':';
		*w++ = ':';
		w += escape_into(w, data);
	}
	snprintf(w, len - (size_t)(w - s), ",%s", OVL_FIXED_OPTIONS);
	return s;
}

int overlay_mount(const char *options, const char *target)
{
	return overlay_mount_flags(options, target, 0);
}

int overlay_mount_flags(const char *options, const char *target, unsigned long flags)
{
	if (mount("vunify", target, "overlay", flags, options) < 0)
		return neg_errno();
	return 0;
}

int overlay_umount(const char *target)
{
	if (umount2(target, UMOUNT_NOFOLLOW) < 0)
		return neg_errno();
	return 0;
}

/* Undo \ooo escapes in place. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* Undo overlayfs' own backslash escapes in place: the kernel shows
 * lowerdir/upperdir/workdir as they were given, e.g. "a\,b" for "a,b". */
static void unescape_backslash(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (*s == '\\' && s[1])
			s++;
		*w++ = *s;
	}
	*w = '\0';
}

/* Find "key=" in a comma-separated option list, honouring backslash
 * escapes of commas; copies the raw value into a malloc'd string. */
static char *option_value(const char *opts, const char *key)
{
	size_t kl = strlen(key);
	const char *p = opts;

	while (*p) {
		const char *start = p, *e = p;
		while (*e && *e != ',') {
			if (*e == '\\' && e[1])
				e++;
			e++;
		}
		if ((size_t)(e - start) > kl && !strncmp(start, key, kl) && start[kl] == '=')
			return strndup(start + kl + 1, (size_t)(e - start - (ptrdiff_t)kl - 1));
		p = *e ? e + 1 : e;
	}
	return NULL;
}

int overlay_find_mounts(const char *upper, char **ret_target)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return neg_errno();
	while (getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *fstype, *source, *opts, *save = NULL, *mp, *val;
		if (!sep)
			continue;
		fstype = strtok_r(sep + 3, " ", &save);
		source = strtok_r(NULL, " ", &save);
		opts = strtok_r(NULL, " \n", &save);
		if (!fstype || !source || !opts || strcmp(fstype, "overlay"))
			continue;
		val = option_value(opts, "upperdir");
		if (!val)
			continue;
		unescape_octal(val);
		unescape_backslash(val);
		if (!strcmp(val, upper)) {
			if (found == 0 && ret_target) {
				/* field 5 is the mount point */
				char *s2 = NULL, *tok = strtok_r(line, " ", &s2);
				for (int i = 1; tok && i < 5; i++)
					tok = strtok_r(NULL, " ", &s2);
				mp = tok ? strdup(tok) : NULL;
				if (mp)
					unescape_octal(mp);
				*ret_target = mp;
			}
			found++;
		}
		free(val);
	}
	return found;
}

static int probe_write(int dfd, const char *name, const char *content)
{
	_cleanup_close_ int fd =
	        openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0)
		return neg_errno();
	return write_all(fd, content, strlen(content));
}

static void rm_rf_probe(const char *dir)
{
	static const char *const files[] = {"meta/f", "data/ab/obj", "upper/f", "work/work", "work/index"};
	static const char *const dirs[] = {"data/ab", "meta", "data", "upper", "work", "mnt"};
	char p[4096];

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		if (snprintf(p, sizeof(p), "%s/%s", dir, files[i]) >= (int)sizeof(p))
			continue;
		unlink(p);
		rmdir(p);
	}
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if (snprintf(p, sizeof(p), "%s/%s", dir, dirs[i]) < (int)sizeof(p))
			rmdir(p);
	rmdir(dir);
}

int overlay_probe_data_only(int dir_fd)
{
	static const char content[] = "vunify data-only probe\n";
	char dir[64], path[4096], buf[64];
	_cleanup_free_ char *opts = NULL;
	_cleanup_free_ char *base = NULL;
	char lower[4200], data[4200], upper[4200], work[4200], mnt[4200];
	ssize_t n;
	int r, result = 0, fd;

	snprintf(dir, sizeof(dir), "probe.%ld", (long)getpid());
	snprintf(path, sizeof(path), "/proc/self/fd/%d", dir_fd);
	base = realpath(path, NULL);
	if (!base)
		return neg_errno();
	if (snprintf(path, sizeof(path), "%s/%s", base, dir) >= (int)sizeof(path) - 16)
		return -ENAMETOOLONG;
	rm_rf_probe(path);
	if (mkdir(path, 0700) < 0)
		return neg_errno();
	snprintf(lower, sizeof(lower), "%s/meta", path);
	snprintf(data, sizeof(data), "%s/data", path);
	snprintf(upper, sizeof(upper), "%s/upper", path);
	snprintf(work, sizeof(work), "%s/work", path);
	snprintf(mnt, sizeof(mnt), "%s/mnt", path);
	r = 0;
	if (mkdir(lower, 0755) < 0 || mkdir(data, 0755) < 0 || mkdir(upper, 0755) < 0 ||
	    mkdir(work, 0755) < 0 || mkdir(mnt, 0755) < 0)
		r = neg_errno();
	if (r == 0) {
		char ab[4300];
		snprintf(ab, sizeof(ab), "%s/ab", data);
		if (mkdir(ab, 0755) < 0)
			r = neg_errno();
	}
	if (r == 0) {
		int dfd = open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			r = neg_errno();
		else {
			r = probe_write(dfd, "ab/obj", content);
			close(dfd);
		}
	}
	if (r == 0) {
		char stub[4300];
		snprintf(stub, sizeof(stub), "%s/f", lower);
		fd = open(stub, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			r = neg_errno();
		else {
			if (ftruncate(fd, (off_t)strlen(content)) < 0 ||
			    fsetxattr(fd, OVL_XATTR_METACOPY, "", 0, 0) < 0 ||
			    fsetxattr(fd, OVL_XATTR_REDIRECT, "/ab/obj", 7, 0) < 0)
				r = neg_errno();
			close(fd);
		}
	}
	if (r < 0)
		goto out;
	opts = overlay_options(lower, data, upper, work);
	if (!opts) {
		r = -ENOMEM;
		goto out;
	}
	if (overlay_mount(opts, mnt) < 0) {
		result = 0; /* the kernel refused data-only layers */
		goto out;
	}
	{
		char f[4300];
		snprintf(f, sizeof(f), "%s/f", mnt);
		fd = open(f, O_RDONLY | O_CLOEXEC);
		n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
		if (fd >= 0)
			close(fd);
		result = n == (ssize_t)strlen(content) && !memcmp(buf, content, (size_t)n);
	}
	if (umount2(mnt, 0) < 0)
		umount2(mnt, MNT_DETACH);
out:
	rm_rf_probe(path);
	return r < 0 ? r : result;
}
