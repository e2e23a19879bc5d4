/* Pool on-disk state.  vunify.conf is written last by init, so a pool
 * without it is an unfinished init that may be completed.  Registry files
 * are small and always replaced atomically (write_file_atomic_at). */
#define _GNU_SOURCE
#include "pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "overlay.h"
#include "remove_tree.h"
#include "util.h"
#include "banned.h"

#define CONF_NAME "vunify.conf"
#define POLICY_NAME "policy.conf"

const char *layout_name(enum layout_kind k)
{
	return k == LAYOUT_LINK ? "link" : "redirect";
}

int layout_from_name(const char *s, enum layout_kind *ret)
{
	if (!strcmp(s, "redirect"))
		*ret = LAYOUT_REDIRECT;
	else if (!strcmp(s, "link"))
		*ret = LAYOUT_LINK;
	else
		return -EINVAL;
	return 0;
}

bool guest_name_valid(const char *name)
{
	size_t n = strlen(name);
	static const char extra[] = "._-";

	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || !strchr(extra, c)))
			return false;
	}
	return true;
}

static int mkdirat_ok(int dfd, const char *name, mode_t mode)
{
	if (mkdirat(dfd, name, mode) < 0 && errno != EEXIST)
		return neg_errno();
	return 0;
}

/* mkdir -p for the pool path itself (an admin-given path, trusted). */
static int mkdir_parents(const char *path)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return neg_errno();
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return neg_errno();
	return 0;
}

/* ---- owner and modes of the pool's directories ----
 *
 * Everything under the pool is root's alone: the pool directory, guests/,
 * tmp/, roots/, objects/ and its fan-out directories are root:root, mode
 * 0700.  Objects hold guests' files (a guest's 0600 file under /etc; in
 * the link layout, the guest's own setuid binaries and file capabilities,
 * kept because the object inode *is* the file the guest sees), so no other
 * host user may reach them.  Overlayfs reads the layers with the
 * mounter's credentials (root), so guests are not affected.  Enforced by
 * init (also on an existing directory), on every exclusive open (every
 * writer: add, unify, gc, remove, fsck), and checked by fsck. */

#define POOL_DIR_MODE 0700

struct dir_check {
	bool repair;
	pool_problem_fn fn;
	void *ud;
	unsigned problems;
};

static void dir_problem(struct dir_check *c, const char *what, const char *problem, bool fixed)
{
	c->problems++;
	if (c->fn)
		c->fn(what, problem, fixed, c->ud);
}

/* Check (and with repair fix) one directory's owner and mode; with CREATE
 * a missing one is created.  Returns 0 or -errno (errors other than what
 * it reports). */
static int check_dir_at(struct dir_check *c, int parent, const char *name, const char *what, bool create)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	char buf[96];

	if (name)
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	else
		fd = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && name) {
		if (!create || !c->repair) {
			dir_problem(c, what, "missing", false);
			return 0;
		}
		if (mkdirat(parent, name, POOL_DIR_MODE) < 0 && errno != EEXIST)
			return neg_errno();
		dir_problem(c, what, "missing", true);
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		if (errno == ENOTDIR || errno == ELOOP) {
			dir_problem(c, what, "not a directory", false);
			return 0;
		}
		return neg_errno();
	}
	if (fstat(fd, &st) < 0)
		return neg_errno();
	if (st.st_uid == 0 && st.st_gid == 0 && (st.st_mode & 07777) == POOL_DIR_MODE)
		return 0;
	snprintf(buf, sizeof(buf), "owner %u:%u mode %04o, must be 0:0 mode %04o", (unsigned)st.st_uid,
	         (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777), POOL_DIR_MODE);
	if (c->repair) {
		/* mode first: while the owner is still wrong, nobody but root
		 * may enter any more */
		if (fchmod(fd, POOL_DIR_MODE) < 0 || fchown(fd, 0, 0) < 0 || fchmod(fd, POOL_DIR_MODE) < 0)
			return neg_errno();
	}
	dir_problem(c, what, buf, c->repair);
	return 0;
}

static int check_dirs_at(int pool_fd, struct dir_check *c)
{
	static const char *const subdirs[] = {"guests", "tmp", "roots", "objects"};
	_cleanup_close_ int ofd = -1;
	int r = check_dir_at(c, pool_fd, NULL, ".", false);

	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(subdirs); i++)
		r = check_dir_at(c, pool_fd, subdirs[i], subdirs[i], true);
	if (r < 0)
		return r;
	ofd = openat(pool_fd, "objects", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ofd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 : neg_errno();
	for (unsigned i = 0; r == 0 && i < 256; i++) {
		char fan[3], what[16];
		snprintf(fan, sizeof(fan), "%02x", i);
		snprintf(what, sizeof(what), "objects/%s", fan);
		r = check_dir_at(c, ofd, fan, what, true);
	}
	return r;
}

/* Contract in pool.h. */
int pool_check_dirs(struct pool *p, bool repair, pool_problem_fn fn, void *ud)
{
	struct dir_check c = {.repair = repair, .fn = fn, .ud = ud};
	int r = check_dirs_at(p->fd, &c);

	return r < 0 ? r : (int)c.problems;
}

static void note_fixed(const char *what, const char *problem, bool fixed, void *ud)
{
	struct pool *p = ud;

	if (!fixed)
		return;
	if (p->dirs_fixed++ == 0)
		snprintf(p->dirs_fixed_first, sizeof(p->dirs_fixed_first), "%s: %s", what, problem);
}

/* Everything of a new pool but vunify.conf; returns the pool dir's fd. */
static int init_dirs(const char *path)
{
	_cleanup_close_ int fd = -1, ofd = -1;
	_cleanup_free_ char *policy = NULL;
	struct stat st;
	int r;

	r = mkdir_parents(path);
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstatat(fd, CONF_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	{
		/* Refuse a non-empty directory that is not an unfinished pool,
		 * so init never scribbles over someone's data. */
		_cleanup_closedir_ DIR *d = NULL;
		int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct dirent *de;
		static const char *const ours[] = {"objects", "guests", "roots", "tmp", "lock", POLICY_NAME};
		if (dfd < 0)
			return neg_errno();
		d = fdopendir(dfd);
		if (!d) {
			r = neg_errno();
			close(dfd);
			return r;
		}
		while ((de = readdir(d))) {
			bool known = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
			             !strncmp(de->d_name, ".tmp.", 5) || !strcmp(de->d_name, "lost+found");
			for (size_t i = 0; i < ARRAY_SIZE(ours) && !known; i++)
				known = !strcmp(de->d_name, ours[i]);
			if (!known)
				return -ENOTEMPTY;
		}
	}
	if ((r = mkdirat_ok(fd, "objects", POOL_DIR_MODE)) < 0 ||
	    (r = mkdirat_ok(fd, "guests", POOL_DIR_MODE)) < 0 ||
	    (r = mkdirat_ok(fd, "roots", POOL_DIR_MODE)) < 0 ||
	    (r = mkdirat_ok(fd, "tmp", POOL_DIR_MODE)) < 0)
		return r;
	ofd = openat(fd, "objects", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ofd < 0)
		return neg_errno();
	for (unsigned i = 0; i < 256; i++) {
		char fan[3];
		snprintf(fan, sizeof(fan), "%02x", i);
		r = mkdirat_ok(ofd, fan, POOL_DIR_MODE);
		if (r < 0)
			return r;
	}
	{
		/* an existing directory (or an unfinished init) gets the same
		 * owner and modes as a new one */
		struct dir_check c = {.repair = true};
		r = check_dirs_at(fd, &c);
		if (r < 0)
			return r;
	}
	if (fsync(ofd) < 0)
		return neg_errno();
	{
		int lfd = openat(fd, "lock", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (lfd < 0)
			return neg_errno();
		close(lfd);
	}
	if (fstatat(fd, POLICY_NAME, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		policy = policy_default_text();
		if (!policy)
			return -ENOMEM;
		r = write_file_atomic_at(fd, POLICY_NAME, policy, strlen(policy), 0644);
		if (r < 0)
			return r;
	}
	return steal_fd(&fd);
}

/* vunify.conf, written last: it makes the directory a pool. */
static int write_conf(int fd, enum layout_kind layout)
{
	unsigned char rnd[16];
	char id[40], conf[256];

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return neg_errno();
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(id + 2 * i, 3, "%02x", rnd[i]);
	snprintf(conf, sizeof(conf), "# vunify pool; see docs/FORMAT.md\nformat %d\nlayout %s\nid %s\n",
	         POOL_FORMAT, layout_name(layout), id);
	return write_file_atomic_at(fd, CONF_NAME, conf, strlen(conf), 0644);
}

int pool_init(const char *path, enum layout_kind layout)
{
	_cleanup_close_ int fd = init_dirs(path);

	return fd < 0 ? fd : write_conf(fd, layout);
}

int pool_create(const char *path, bool auto_layout, enum layout_kind *kind, int *ret_probe)
{
	_cleanup_close_ int fd = init_dirs(path);

	if (fd < 0)
		return fd;
	/* on the pool's own filesystem: where the data-only layer will live */
	*ret_probe = overlay_probe_data_only(fd);
	if (auto_layout)
		*kind = *ret_probe == 1 ? LAYOUT_REDIRECT : LAYOUT_LINK;
	else {
		const struct pool new_pool = {.layout = *kind, .format = POOL_FORMAT};
		if (layout_ops_for(&new_pool)->data_layer && *ret_probe != 1)
			return -EOPNOTSUPP;
	}
	return write_conf(fd, *kind);
}

static char *conf_value(char *text, const char *key)
{
	size_t kl = strlen(key);

	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(line, key, kl) && line[kl] == ' ') {
			char *v = strdup(line + kl + 1);
			if (nl)
				*nl = '\n';
			return v;
		}
		if (nl)
			*nl = '\n';
		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

void pool_close(struct pool *p)
{
	if (!p)
		return;
	if (p->fd >= 0)
		close(p->fd);
	if (p->objects_fd >= 0)
		close(p->objects_fd);
	if (p->guests_fd >= 0)
		close(p->guests_fd);
	if (p->tmp_fd >= 0)
		close(p->tmp_fd);
	if (p->lock_fd >= 0)
		close(p->lock_fd); /* releases the flock */
	policy_free(&p->policy);
	free(p->path);
	free(p);
}

static int open_subdir(int fd, const char *name)
{
	int r = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return r < 0 ? neg_errno() : r;
}

int pool_open(const char *path, enum pool_lock lock, bool wait, struct pool **ret, unsigned *ret_line)
{
	struct pool *p;
	_cleanup_free_ char *conf = NULL, *fmt = NULL, *lay = NULL, *id = NULL, *pol = NULL;
	uint64_t format;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->fd = p->objects_fd = p->guests_fd = p->tmp_fd = p->lock_fd = -1;
	p->path = realpath(path, NULL);
	if (!p->path) {
		r = neg_errno();
		goto fail;
	}
	p->fd = open(p->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->fd < 0) {
		r = neg_errno();
		goto fail;
	}
	r = read_file_at(p->fd, CONF_NAME, 65536, &conf, NULL);
	if (r < 0)
		goto fail;
	fmt = conf_value(conf, "format");
	lay = conf_value(conf, "layout");
	id = conf_value(conf, "id");
	if (!fmt || !lay || !id || parse_u64(fmt, &format) < 0 || layout_from_name(lay, &p->layout) < 0 ||
	    strlen(id) >= sizeof(p->id)) {
		r = -EBADMSG;
		goto fail;
	}
	if (format < POOL_FORMAT_MIN || format > POOL_FORMAT) {
		r = -EPROTO;
		goto fail;
	}
	p->format = (unsigned)format;
	memcpy(p->id, id, strlen(id) + 1);
	p->lock_fd = openat(p->fd, "lock", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (p->lock_fd < 0) {
		r = neg_errno();
		goto fail;
	}
	if (flock(p->lock_fd, (lock == POOL_LOCK_EXCLUSIVE ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) < 0) {
		r = neg_errno();
		goto fail;
	}
	if ((p->objects_fd = open_subdir(p->fd, "objects")) < 0 ||
	    (p->guests_fd = open_subdir(p->fd, "guests")) < 0 ||
	    (p->tmp_fd = open_subdir(p->fd, "tmp")) < 0) {
		r = p->objects_fd < 0 ? p->objects_fd : p->guests_fd < 0 ? p->guests_fd : p->tmp_fd;
		goto fail;
	}
	if (lock == POOL_LOCK_EXCLUSIVE) {
		/* every writer puts owner and modes right (see pool_check_dirs) */
		r = pool_check_dirs(p, true, note_fixed, p);
		if (r < 0)
			goto fail;
	}
	r = policy_default(&p->policy);
	if (r < 0)
		goto fail;
	r = read_file_at(p->fd, POLICY_NAME, 1 << 20, &pol, NULL);
	if (r == 0) {
		unsigned line = 0;
		/* The file starts from the defaults written at init; parse it
		 * on an empty policy so removing a line removes the rule. */
		policy_free(&p->policy);
		p->policy = (struct policy){.min_size = 1, .max_size = POLICY_MAX_SIZE_DEFAULT};
		r = policy_parse(&p->policy, pol, &line);
		if (r < 0) {
			if (ret_line)
				*ret_line = line;
			r = -EBADMSG;
			goto fail;
		}
	} else if (r != -ENOENT) {
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	if (p->fd >= 0 && r == -ENOENT && faccessat(p->fd, CONF_NAME, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		r = -ENOENT;
	pool_close(p);
	return r;
}

int pool_clean_tmp(struct pool *p)
{
	return remove_contents_at(p->fd, "tmp", NULL);
}

int pool_object_dir(struct pool *p, const char *name)
{
	char fan[3] = {name[0], name[1], '\0'};

	if (!hash_is_hex(name))
		return -EINVAL;
	return open_subdir(p->objects_fd, fan);
}

/* Contract in pool.h. */
bool object_name_valid(const char *n)
{
	size_t l = strlen(n);

	if (!hash_is_hex(n))
		return false;
	if (l == HASH_HEX_LEN)
		return true;
	if ((l != HASH_HEX_LEN + 1 + HASH_HEX_LEN && l != HASH_HEX_LEN + 1 + LINK_KEY_HEX_V1) ||
	    n[HASH_HEX_LEN] != '.')
		return false;
	for (size_t i = HASH_HEX_LEN + 1; i < l; i++)
		if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
			return false;
	return true;
}

int pool_object_stat(struct pool *p, const char *name, struct stat *ret_st)
{
	char rel[OBJECT_NAME_MAX + 4];
	struct stat st;

	if (!object_name_valid(name))
		return -EINVAL;
	snprintf(rel, sizeof(rel), "%c%c/%s", name[0], name[1], name);
	if (fstatat(p->objects_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : neg_errno();
	if (!S_ISREG(st.st_mode))
		return -EUCLEAN;
	if (ret_st)
		*ret_st = st;
	return 1;
}

/* ---- registry ---- */

void guest_free(struct guest *g)
{
	if (!g)
		return;
	free(g->name);
	free(g->home);
	free(g);
}

void names_free(char **names)
{
	if (!names)
		return;
	for (char **n = names; *n; n++)
		free(*n);
	free(names);
}

int pool_guest_register(struct pool *p, const char *name, const char *home)
{
	_cleanup_close_ int gfd = -1;
	_cleanup_free_ char *line = NULL;
	size_t len;
	int r;

	if (!guest_name_valid(name))
		return -EINVAL;
	if (mkdirat(p->guests_fd, name, 0700) < 0) {
		if (errno != EEXIST)
			return neg_errno();
		/* A directory without a home file is an unfinished add. */
		if (faccessat(p->guests_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			_cleanup_close_ int t = open_subdir(p->guests_fd, name);
			if (t >= 0 && faccessat(t, "home", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
				return -EEXIST;
		}
	}
	gfd = open_subdir(p->guests_fd, name);
	if (gfd < 0)
		return gfd;
	len = strlen(home) + 2;
	line = malloc(len);
	if (!line)
		return -ENOMEM;
	snprintf(line, len, "%s\n", home);
	r = write_file_atomic_at(gfd, "home", line, strlen(line), 0600);
	if (r < 0)
		return r;
	return fsync_dir(p->guests_fd);
}

static void parse_stats(char *text, struct guest_stats *s)
{
	struct {
		const char *key;
		uint64_t *v;
	} keys[] = {
	        {"files_unified", &s->files_unified}, {"bytes_unified", &s->bytes_unified},
	        {"upper_bytes", &s->upper_bytes},     {"objects_referenced", &s->objects_referenced},
	        {"unified_at", &s->unified_at},
	};

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		_cleanup_free_ char *v = conf_value(text, keys[i].key);
		if (v)
			(void)parse_u64(v, keys[i].v);
	}
}

int pool_guest_load(struct pool *p, const char *name, struct guest **ret)
{
	_cleanup_close_ int gfd = -1;
	_cleanup_free_ char *home = NULL, *stats = NULL;
	struct guest *g;
	size_t len;
	int r;

	if (!guest_name_valid(name))
		return -EINVAL;
	gfd = open_subdir(p->guests_fd, name);
	if (gfd < 0)
		return gfd == -ENOTDIR ? -ENOENT : gfd;
	r = read_file_at(gfd, "home", PATH_MAX * 4, &home, &len);
	if (r < 0)
		return r;
	if (len == 0 || home[len - 1] != '\n' || home[0] != '/')
		return -EBADMSG;
	home[len - 1] = '\0';
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->name = strdup(name);
	g->home = steal_pointer(&home);
	if (!g->name) {
		guest_free(g);
		return -ENOMEM;
	}
	if (read_file_at(gfd, "stats", 65536, &stats, NULL) == 0)
		parse_stats(stats, &g->stats);
	*ret = g;
	return 0;
}

int pool_guest_names(struct pool *p, char ***ret_names)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	int fd = openat(p->guests_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return neg_errno();
	d = fdopendir(fd);
	if (!d) {
		int r = neg_errno();
		close(fd);
		return r;
	}
	names = calloc(1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	while ((de = readdir(d))) {
		char **nn;
		_cleanup_close_ int gfd = -1;
		if (!guest_name_valid(de->d_name))
			continue;
		gfd = open_subdir(p->guests_fd, de->d_name);
		if (gfd < 0 || faccessat(gfd, "home", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* unfinished add */
		nn = realloc(names, (n + 2) * sizeof(*names));
		if (!nn) {
			names_free(names);
			return -ENOMEM;
		}
		names = nn;
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			names_free(names);
			return -ENOMEM;
		}
		names[++n] = NULL;
	}
	qsort(names, n, sizeof(*names), cmp_strp);
	*ret_names = names;
	return (int)n;
}

int pool_guest_save_stats(struct pool *p, const struct guest *g)
{
	_cleanup_close_ int gfd = open_subdir(p->guests_fd, g->name);
	char buf[512];
	int n;

	if (gfd < 0)
		return gfd;
	n = snprintf(buf, sizeof(buf),
	             "files_unified %" PRIu64 "\nbytes_unified %" PRIu64 "\nupper_bytes %" PRIu64
	             "\nobjects_referenced %" PRIu64 "\n",
	             g->stats.files_unified, g->stats.bytes_unified, g->stats.upper_bytes,
	             g->stats.objects_referenced);
	if (g->stats.unified_at)
		snprintf(buf + n, sizeof(buf) - (size_t)n, "unified_at %" PRIu64 "\n", g->stats.unified_at);
	return write_file_atomic_at(gfd, "stats", buf, strlen(buf), 0600);
}

int pool_guest_mark_unified(struct pool *p, const char *name, uint64_t when)
{
	struct guest *g = NULL;
	int r = pool_guest_load(p, name, &g);

	if (r < 0)
		return r;
	g->stats.unified_at = when;
	r = pool_guest_save_stats(p, g);
	guest_free(g);
	return r;
}

static int write_refs(int gfd, char *const *refs, size_t n)
{
	size_t len = 0;
	_cleanup_free_ char *buf = NULL;
	char *w;

	for (size_t i = 0; i < n; i++)
		len += strlen(refs[i]) + 1;
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	w = buf;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(refs[i]);
		memcpy(w, refs[i], l);
		w[l] = '\n';
		w += l + 1;
	}
	return write_file_atomic_at(gfd, "refs", buf, len, 0600);
}

int pool_guest_save_refs(struct pool *p, const char *name, char *const *refs, size_t n)
{
	_cleanup_close_ int gfd = open_subdir(p->guests_fd, name);

	if (gfd < 0)
		return gfd;
	return write_refs(gfd, refs, n);
}

int pool_guest_read_refs(struct pool *p, const char *name, struct guest_refs *ret)
{
	_cleanup_close_ int gfd = open_subdir(p->guests_fd, name);
	struct guest_refs gr = {0};
	size_t len = 0, cap = 1;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (gfd < 0)
		return gfd;
	r = read_file_at(gfd, "refs", SIZE_MAX / 2, &gr.buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (size_t i = 0; i < len; i++)
		cap += gr.buf[i] == '\n';
	gr.v = malloc(cap * sizeof(*gr.v));
	if (!gr.v) {
		free(gr.buf);
		return -ENOMEM;
	}
	/* one name a line; an empty line names nothing */
	for (char *s = gr.buf; *s;) {
		char *nl = strchr(s, '\n');
		if (nl)
			*nl = '\0';
		if (*s)
			gr.v[gr.n++] = s;
		if (!nl)
			break;
		s = nl + 1;
	}
	*ret = gr;
	return 1;
}

void guest_refs_free(struct guest_refs *r)
{
	free(r->buf);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

int pool_guest_add_refs(struct pool *p, const char *name, char *const *refs, size_t n)
{
	_cleanup_close_ int gfd = open_subdir(p->guests_fd, name);
	struct guest_refs old;
	_cleanup_free_ char **all = NULL;
	size_t m = 0;
	int r;

	if (gfd < 0)
		return gfd;
	r = pool_guest_read_refs(p, name, &old);
	if (r < 0)
		return r;
	all = malloc((old.n + n + 1) * sizeof(*all));
	if (!all) {
		guest_refs_free(&old);
		return -ENOMEM;
	}
	for (size_t i = 0; i < old.n; i++)
		all[m++] = old.v[i];
	for (size_t i = 0; i < n; i++)
		all[m++] = refs[i];
	qsort(all, m, sizeof(*all), cmp_strp);
	{
		size_t k = 0;
		for (size_t i = 0; i < m; i++)
			if (k == 0 || strcmp(all[k - 1], all[i]))
				all[k++] = all[i];
		m = k;
	}
	r = write_refs(gfd, all, m);
	guest_refs_free(&old);
	return r;
}

int pool_guest_unregister(struct pool *p, const char *name)
{
	static const char *const files[] = {"stats", "refs", "home"};
	_cleanup_close_ int gfd = open_subdir(p->guests_fd, name);

	int r;

	if (!guest_name_valid(name))
		return -EINVAL;
	if (gfd < 0)
		return gfd;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if (unlinkat(gfd, files[i], 0) < 0 && errno != ENOENT)
			return neg_errno();
	/* also what a crash left behind (write_file_atomic_at temp files) */
	r = remove_tree_at(p->guests_fd, name);
	if (r < 0)
		return r;
	return fsync_dir(p->guests_fd);
}

int guest_open_home(struct pool *p, const struct guest *g)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *id = NULL;
	char want[256];
	int r;

	fd = open(g->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	r = read_file_at(fd, HOME_ID, 4096, &id, NULL);
	if (r < 0)
		return r == -ENOENT ? -ESTALE : r;
	/* "pool ID\nguest NAME\n", then (homes adopted from another pool)
	 * "format N" and "layout L" lines, which adopt checks */
	snprintf(want, sizeof(want), "pool %s\nguest %s\n", p->id, g->name);
	if (strncmp(id, want, strlen(want)))
		return -ESTALE;
	return steal_fd(&fd);
}

int guest_open_lower(struct pool *p, const struct guest *g, int home_fd, bool create)
{
	const char *name;
	_cleanup_close_ int base = layout_ops_for(p)->open_lower_parent(p, g, home_fd, &name);

	if (base < 0)
		return base;
	if (create && mkdirat(base, name, 0755) < 0 && errno != EEXIST)
		return neg_errno();
	return open_subdir(base, name);
}
