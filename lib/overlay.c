/* overlayfs glue.  Paths in lowerdir= need ',' ':' and '\' escaped with a
 * backslash; mountinfo escapes its fields as \ooo octal. */
#define _GNU_SOURCE
#include "overlay.h"

#include <dirent.h>
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

/* The directories that identify a guest's layers: its upper and the work
 * directory beside it (absent work: st_ino 0, matches nothing). */
struct layer_ids {
	struct stat upper, work;
};

static int layer_ids_get(const char *upper, struct layer_ids *ret)
{
	_cleanup_free_ char *work = NULL;
	const char *slash = strrchr(upper, '/');

	if (stat(upper, &ret->upper) < 0)
		return neg_errno();
	memset(&ret->work, 0, sizeof(ret->work));
	if (!slash)
		return -EINVAL;
	if (asprintf(&work, "%.*s/work", (int)(slash - upper), upper) < 0)
		return -ENOMEM;
	if (stat(work, &ret->work) < 0 || !S_ISDIR(ret->work.st_mode))
		memset(&ret->work, 0, sizeof(ret->work));
	return 0;
}

static bool same_dir(const struct stat *a, const struct stat *b)
{
	return b->st_ino && a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Does the overlay option KEY (a path as the mounter gave it, resolved
 * from ROOT_FD, the mounting process's root) name one of IDS's directories? */
static bool option_names_layer(const char *opts, const char *key, int root_fd, const struct layer_ids *ids)
{
	_cleanup_free_ char *val = option_value(opts, key);
	const char *rel;
	struct stat st;

	if (!val)
		return false;
	unescape_octal(val);
	unescape_backslash(val);
	for (rel = val; *rel == '/'; rel++)
		;
	if (fstatat(root_fd, *rel ? rel : ".", &st, *rel ? 0 : AT_EMPTY_PATH) < 0)
		return false;
	return same_dir(&st, &ids->upper) || same_dir(&st, &ids->work);
}

/* Count the overlay mounts in one mount namespace (read through pid's
 * /proc entry) whose upperdir or workdir is one of IDS's directories; the
 * first one's mount point goes to *ret_target (when NULL so far). */
static int ns_find_mounts(const char *pid, bool ours, const struct layer_ids *ids, char **ret_target)
{
	char path[64];
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_close_ int root_fd = -1;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%s/root", pid);
	root_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%s/mountinfo", pid);
	f = fopen(path, "re");
	if (!f || root_fd < 0) {
		/* another process may be gone; our own table must be read */
		if (!ours && (errno == ENOENT || errno == ESRCH || errno == EACCES))
			return 0;
		return neg_errno();
	}
	while (getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *fstype, *source, *opts, *save = NULL;
		if (!sep)
			continue;
		fstype = strtok_r(sep + 3, " ", &save);
		source = strtok_r(NULL, " ", &save);
		opts = strtok_r(NULL, " \n", &save);
		if (!fstype || !source || !opts || strcmp(fstype, "overlay"))
			continue;
		if (!option_names_layer(opts, "upperdir", root_fd, ids) &&
		    !option_names_layer(opts, "workdir", root_fd, ids))
			continue;
		if (found++ == 0 && ret_target && !*ret_target) {
			/* field 5 is the mount point */
			char *s2 = NULL, *tok = strtok_r(line, " ", &s2);
			for (int i = 1; tok && i < 5; i++)
				tok = strtok_r(NULL, " ", &s2);
			if (tok) {
				unescape_octal(tok);
				if (ours)
					*ret_target = strdup(tok);
				else if (asprintf(ret_target, "%s in the mount namespace of pid %s", tok,
				                  pid) < 0)
					*ret_target = NULL;
			}
		}
	}
	return found;
}

int overlay_find_local_mounts(const char *upper, char **ret_target)
{
	struct layer_ids ids;
	int r = layer_ids_get(upper, &ids);

	if (ret_target)
		*ret_target = NULL;
	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	return r < 0 ? r : ns_find_mounts("self", true, &ids, ret_target);
}

/* overlayfs keeps an in-use mark on the upper directory of every live
 * overlay superblock (since Linux 4.13), whatever the namespace, and also
 * after a lazy unmount while files stay open.  A new overlay with
 * index=on on that upper fails with EBUSY while the mark is set.  The probe
 * never becomes a mount: it only asks the kernel to build a superblock
 * (fsopen/fsconfig, no fsmount), with a work directory on another mount
 * (/proc), which the kernel refuses (EINVAL) right after the upper's
 * in-use check and before it writes anything.  The kernel logs either
 * refusal (one line in dmesg), so only commands about to change a guest's
 * layers probe, not status.  Returns 1 (in use), 0 (not
 * in use, or the probe cannot run here: not root, no overlayfs), or
 * -errno. */
static int upper_in_use_probe(const char *upper)
{
	_cleanup_close_ int ufd = open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int fsfd = -1;
	char up[64];

	if (ufd < 0)
		return neg_errno();
	fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return errno == EPERM || errno == ENODEV || errno == ENOSYS ? 0 : neg_errno();
	snprintf(up, sizeof(up), "/proc/self/fd/%d", ufd);
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir", "/proc", 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", up, 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", "/proc", 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_SET_STRING, "index", "on", 0) < 0)
		return 0; /* this kernel takes other options: no probe */
	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
		return 0; /* cannot happen (work on another mount); never mounted */
	return errno == EBUSY;
}

static int find_mounts(const char *upper, bool probe, char **ret_target)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct layer_ids ids;
	ino_t *seen = NULL;
	size_t n_seen = 0, cap = 0;
	struct dirent *de;
	int found = 0, r;

	if (ret_target)
		*ret_target = NULL;
	r = layer_ids_get(upper, &ids);
	if (r == -ENOENT || r == -ENOTDIR)
		return 0; /* no such upper here: the home is not attached */
	if (r < 0)
		return r;
	/* every mount namespace once: ours first, then each process's */
	d = opendir("/proc");
	if (!d)
		return neg_errno();
	r = 0;
	for (bool self = true; r >= 0; self = false) {
		char path[300];
		const char *pid;
		struct stat st;
		bool dup = false;
		if (self) {
			pid = "self";
		} else {
			de = readdir(d);
			if (!de)
				break;
			if (de->d_name[0] < '1' || de->d_name[0] > '9')
				continue;
			pid = de->d_name;
		}
		snprintf(path, sizeof(path), "/proc/%s/ns/mnt", pid);
		if (stat(path, &st) < 0) {
			if (self) {
				r = neg_errno(); /* no /proc here: cannot tell */
				break;
			}
			continue; /* gone, or a kernel thread */
		}
		for (size_t i = 0; i < n_seen && !dup; i++)
			dup = seen[i] == st.st_ino;
		if (dup)
			continue;
		if (n_seen == cap) {
			ino_t *nv = realloc(seen, (cap ? 2 * cap : 16) * sizeof(*nv));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			seen = nv;
			cap = cap ? 2 * cap : 16;
		}
		seen[n_seen++] = st.st_ino;
		r = ns_find_mounts(pid, self, &ids, ret_target);
		if (r > 0)
			found += r;
	}
	free(seen);
	if (r < 0)
		goto fail;
	if (found || !probe)
		return found;
	/* no mount table shows it: detached, or in a namespace no process
	 * of ours can read; the kernel's own mark still tells */
	r = upper_in_use_probe(upper);
	if (r <= 0)
		goto fail;
	if (ret_target && !(*ret_target = strdup("a detached mount still in use")))
		return -ENOMEM;
	return 1;
fail:
	if (ret_target) {
		free(*ret_target);
		*ret_target = NULL;
	}
	return r;
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

int overlay_find_mounts(const char *upper, char **ret_target)
{
	return find_mounts(upper, true, ret_target);
}

int overlay_list_mounts(const char *upper, char **ret_target)
{
	return find_mounts(upper, false, ret_target);
}
