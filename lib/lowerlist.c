/* HOME/vunify-lower: the link layout's lower layer described in the home
 * (see lowerlist.h). */
#define _GNU_SOURCE
#include "lowerlist.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

#include "layout.h"
#include "lower.h"
#include "object.h"
#include "replica.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

/* lowerlist_write writes version 2; replay reads 1 (file and deletion
 * records only) and 2 (also directory and symlink records). */
#define HEADER "vunify-lower 2\n"
#define HEADER_V1 "vunify-lower 1\n"

int lowerlist_exists(int home_fd)
{
	struct stat st;

	if (fstatat(home_fd, HOME_LOWERLIST, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return S_ISREG(st.st_mode) ? 1 : -EUCLEAN;
	return errno == ENOENT ? 0 : neg_errno();
}

/* A growing buffer of records. */
struct record_buf {
	char *b;
	size_t len, cap;
};

static int rec_reserve(struct record_buf *rb, size_t need)
{
	if (rb->len + need > rb->cap) {
		size_t nc = MAX(rb->cap * 2, rb->len + need + 4096);
		char *nb = realloc(rb->b, nc);
		if (!nb)
			return -ENOMEM;
		rb->b = nb;
		rb->cap = nc;
	}
	return 0;
}

static int rec_add(struct record_buf *rb, const char *name, const char *path)
{
	size_t nl = name ? strlen(name) : 1, pl = strlen(path), need = nl + pl + 2;

	if (rec_reserve(rb, need) < 0)
		return -ENOMEM;
	memcpy(rb->b + rb->len, name ? name : "-", nl);
	rb->b[rb->len + nl] = '\t';
	memcpy(rb->b + rb->len + nl + 1, path, pl + 1); /* with its NUL */
	rb->len += need;
	return 0;
}

int lowerlist_append(int home_fd, const char *const *names, const char *const *paths, size_t n)
{
	struct record_buf rb = {0};
	_cleanup_close_ int fd = -1;
	int r = 0;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n && r == 0; i++)
		r = rec_add(&rb, names[i], paths[i]);
	if (r == 0) {
		fd = openat(home_fd, HOME_LOWERLIST, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			r = neg_errno();
	}
	/* a torn append (crash) leaves a last record without its NUL, which
	 * replay ignores: those paths' upper copies were still there */
	if (r == 0)
		r = write_all(fd, rb.b, rb.len);
	if (r == 0 && fdatasync(fd) < 0)
		r = neg_errno();
	free(rb.b);
	return r;
}

struct describe_walk {
	struct record_buf rb;
	struct record_buf attrs; /* the record's first field being built */
	struct object_map *map;
};

static int field_printf(struct record_buf *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int field_printf(struct record_buf *f, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (rec_reserve(f, 128) < 0)
		return -ENOMEM;
	va_start(ap, fmt);
	n = vsnprintf(f->b + f->len, f->cap - f->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= f->cap - f->len)
		return -EOVERFLOW;
	f->len += (size_t)n;
	return 0;
}

static int field_hex(struct record_buf *f, const void *v, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = v;

	if (rec_reserve(f, 2 * n + 1) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		f->b[f->len++] = digits[b[i] >> 4];
		f->b[f->len++] = digits[b[i] & 15];
	}
	f->b[f->len] = '\0';
	return 0;
}

/* ":UID:GID:ASEC:ANSEC:MSEC:MNSEC" */
static int field_owner_times(struct record_buf *f, const struct stat *st)
{
	return field_printf(f, ":%u:%u:%lld:%ld:%lld:%ld", (unsigned)st->st_uid, (unsigned)st->st_gid,
	                    (long long)st->st_atim.tv_sec, (long)st->st_atim.tv_nsec,
	                    (long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec);
}

/* ":NAMEHEX=VALUEHEX,..." of the xattrs of FD (trusted.overlay.* aside) */
static int field_xattrs(struct record_buf *f, int fd, bool o_path)
{
	struct xattr_list xl = {0};
	int r = xattr_list_read(fd, o_path, XATTR_SKIP_OVERLAY, &xl);

	if (r == 0)
		r = field_printf(f, ":");
	for (size_t i = 0; i < xl.n && r == 0; i++) {
		r = i ? field_printf(f, ",") : 0;
		if (r == 0)
			r = field_hex(f, xl.v[i].name, strlen(xl.v[i].name));
		if (r == 0)
			r = field_printf(f, "=");
		if (r == 0)
			r = field_hex(f, xl.v[i].value, xl.v[i].size);
	}
	xattr_list_free(&xl);
	return r;
}

/* A directory's record "d:MODE:UID:GID:ASEC:ANSEC:MSEC:MNSEC:XATTRS"
 * comes after everything below it (made after them, its times stay). */
static int describe_dir(struct describe_walk *d, const struct walk_entry *e)
{
	int r;

	d->attrs.len = 0;
	r = field_printf(&d->attrs, "d:%o", (unsigned)(e->st.st_mode & 07777));
	if (r == 0)
		r = field_owner_times(&d->attrs, &e->st);
	if (r == 0)
		r = field_xattrs(&d->attrs, e->fd, false);
	return r < 0 ? r : rec_add(&d->rb, d->attrs.b, e->path);
}

/* A symlink's record "l:UID:GID:ASEC:ANSEC:MSEC:MNSEC:TARGETHEX:XATTRS". */
static int describe_link(struct describe_walk *d, const struct walk_entry *e)
{
	char target[PATH_MAX];
	_cleanup_close_ int fd = -1;
	ssize_t n = readlink_at(e->parent_fd, e->name, target, sizeof(target));
	int r;

	if (n < 0)
		return (int)n;
	fd = openat(e->parent_fd, e->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	d->attrs.len = 0;
	r = field_printf(&d->attrs, "l");
	if (r == 0)
		r = field_owner_times(&d->attrs, &e->st);
	if (r == 0)
		r = field_printf(&d->attrs, ":");
	if (r == 0)
		r = field_hex(&d->attrs, target, (size_t)n);
	if (r == 0)
		r = field_xattrs(&d->attrs, fd, true);
	return r < 0 ? r : rec_add(&d->rb, d->attrs.b, e->path);
}

static int describe_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct describe_walk *d = ud;
	const char *name;

	/* the lower layer's directories and symlinks: unify may have pruned
	 * the upper ones (prune.h), so the lower ones show */
	if (ev == WALK_DIR_POST && e->depth > 0)
		return describe_dir(d, e);
	if (ev == WALK_ENTRY && S_ISLNK(e->st.st_mode))
		return describe_link(d, e);
	if (ev != WALK_ENTRY || !S_ISREG(e->st.st_mode))
		return 0;
	name = object_map_find(d->map, e->st.st_ino);
	if (!name)
		return 0; /* not linked to an object: fsck's business */
	return rec_add(&d->rb, name, e->path);
}

int lowerlist_write(struct pool *p, int home_fd, int lower_fd)
{
	struct describe_walk d = {0};
	int r;

	r = objects_scan(p, NULL, &d.map, NULL, NULL);
	if (r < 0)
		return r;
	d.rb.b = malloc(sizeof(HEADER));
	if (!d.rb.b) {
		object_map_free(d.map);
		return -ENOMEM;
	}
	memcpy(d.rb.b, HEADER, sizeof(HEADER) - 1);
	d.rb.len = sizeof(HEADER) - 1;
	d.rb.cap = sizeof(HEADER);
	if (r == 0)
		r = walk_tree(lower_fd, describe_cb, &d);
	if (r == 0)
		r = write_file_atomic_at(home_fd, HOME_LOWERLIST, d.rb.b, d.rb.len, 0600);
	free(d.rb.b);
	free(d.attrs.b);
	object_map_free(d.map);
	return r;
}

/* ---- replay ---- */

struct missing_objects {
	struct nameset seen;
	char **v;
	size_t n;
};

static int note_missing(struct missing_objects *m, const char *name)
{
	char **nv;
	int r = nameset_add(&m->seen, name);

	if (r <= 0)
		return r;
	nv = realloc(m->v, (m->n + 2) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	m->v = nv;
	m->v[m->n] = strdup(name);
	if (!m->v[m->n])
		return -ENOMEM;
	m->v[++m->n] = NULL;
	return 0;
}

/* Parsing a record's first field: each returns 0 and moves *S past the
 * field and its ':' (or the end), or -EBADMSG. */
static int parse_num(const char **s, int base, bool is_signed, long long min, long long max, long long *ret)
{
	char *end;

	if (!**s || **s == ':' || (!is_signed && **s == '-'))
		return -EBADMSG;
	errno = 0;
	*ret = is_signed ? strtoll(*s, &end, base) : (long long)strtoul(*s, &end, base);
	if (errno || *ret < min || *ret > max || (*end != ':' && *end))
		return -EBADMSG;
	*s = *end ? end + 1 : end;
	return 0;
}

static int unhex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Hex digits up to one of STOP (or the end) into a new buffer (NUL added). */
static int parse_hex(const char **s, const char *stop, unsigned char **ret, size_t *ret_len)
{
	size_t n = strcspn(*s, stop);
	unsigned char *b;

	if (n % 2)
		return -EBADMSG;
	b = malloc(n / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = unhex_digit((*s)[2 * i]), lo = unhex_digit((*s)[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(b);
			return -EBADMSG;
		}
		b[i] = (unsigned char)(hi << 4 | lo);
	}
	b[n / 2] = '\0';
	*s += n;
	*ret = b;
	*ret_len = n / 2;
	return 0;
}

struct entry_attrs {
	long long mode, uid, gid;
	struct timespec ts[2];
	struct xattr_list xl;
	unsigned char *target; /* symlinks */
};

static void entry_attrs_free(struct entry_attrs *a)
{
	xattr_list_free(&a->xl);
	free(a->target);
}

static int parse_owner_times(const char **s, struct entry_attrs *a)
{
	long long v[4];
	int r = parse_num(s, 10, false, 0, UINT32_MAX, &a->uid);

	if (r == 0)
		r = parse_num(s, 10, false, 0, UINT32_MAX, &a->gid);
	for (int i = 0; i < 4 && r == 0; i++)
		r = parse_num(s, 10, i % 2 == 0, i % 2 ? 0 : INT64_MIN, i % 2 ? 999999999 : INT64_MAX, &v[i]);
	if (r == 0) {
		a->ts[0] = (struct timespec){.tv_sec = (time_t)v[0], .tv_nsec = (long)v[1]};
		a->ts[1] = (struct timespec){.tv_sec = (time_t)v[2], .tv_nsec = (long)v[3]};
	}
	return r;
}

/* The last field: "NAMEHEX=VALUEHEX,..." (maybe empty). */
static int parse_xattrs(const char *s, struct xattr_list *xl)
{
	while (*s) {
		struct xattr *nv = realloc(xl->v, (xl->n + 1) * sizeof(*nv));
		unsigned char *name = NULL;
		size_t nl;
		int r;
		if (!nv)
			return -ENOMEM;
		xl->v = nv;
		r = parse_hex(&s, "=,", &name, &nl);
		if (r < 0)
			return r;
		xl->v[xl->n++] = (struct xattr){.name = (char *)name};
		/* never written: those steer overlayfs (a description that
		 * names one is not vunify's) */
		if (*s != '=' || nl == 0 || memchr(name, '\0', nl) ||
		    !strncmp((char *)name, "trusted.overlay.", 16))
			return -EBADMSG;
		s++;
		r = parse_hex(&s, ",", &xl->v[xl->n - 1].value, &xl->v[xl->n - 1].size);
		if (r < 0)
			return r;
		if (*s == ',' && !*++s)
			return -EBADMSG;
	}
	return 0;
}

/* Give the entry LEAF in PARENT (open as FD; O_PATH for a symlink) the
 * recorded owner, xattrs (only these), mode (directories) and times, in
 * that order: an ACL sets group bits, each change sets the times. */
static int apply_attrs(int parent, const char *leaf, int fd, bool o_path, const struct entry_attrs *a)
{
	struct xattr_list old = {0};
	int r;

	if (fchownat(parent, leaf, (uid_t)a->uid, (gid_t)a->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	r = xattr_list_read(fd, o_path, XATTR_SKIP_OVERLAY, &old);
	for (size_t i = 0; i < old.n && r == 0; i++) {
		bool keep = false;
		for (size_t k = 0; k < a->xl.n && !keep; k++)
			keep = !strcmp(old.v[i].name, a->xl.v[k].name);
		if (!keep)
			r = xattr_remove(fd, o_path, old.v[i].name);
	}
	xattr_list_free(&old);
	if (r == 0)
		r = xattr_list_apply(fd, o_path, &a->xl);
	if (r == 0 && !o_path && fchmod(fd, (mode_t)a->mode) < 0)
		r = neg_errno();
	if (r == 0 && utimensat(parent, leaf, a->ts, AT_SYMLINK_NOFOLLOW) < 0)
		r = neg_errno();
	return r;
}

/* "d:..." or "l:..." (FIELD) at PATH: the directory, made where none is,
 * or the symlink, made anew, with the recorded attributes. */
static int replay_attrs(int dir_fd, const char *field, const char *path)
{
	struct entry_attrs a = {0};
	const char *s = field + 2, *leaf;
	_cleanup_close_ int parent = -1, fd = -1;
	bool dir = field[0] == 'd';
	size_t tl = 0;
	int r = 0;

	if (dir)
		r = parse_num(&s, 8, false, 0, 07777, &a.mode);
	if (r == 0)
		r = parse_owner_times(&s, &a);
	if (r == 0 && !dir) {
		r = parse_hex(&s, ":", &a.target, &tl);
		if (r == 0 && (tl == 0 || tl >= PATH_MAX || memchr(a.target, '\0', tl) || *s != ':'))
			r = -EBADMSG;
		if (r == 0)
			s++;
	}
	if (r == 0)
		r = parse_xattrs(s, &a.xl);
	if (r == 0) {
		parent = layout_open_parent(dir_fd, path, &leaf);
		r = parent < 0 ? parent : 0;
	}
	if (r == 0 && dir) {
		fd = layout_open_dir(parent, leaf);
		r = fd < 0 ? fd : 0;
	} else if (r == 0) {
		r = layout_clear_entry(parent, leaf);
		if (r == 0 && symlinkat((const char *)a.target, parent, leaf) < 0)
			r = neg_errno();
		if (r == 0 && (fd = openat(parent, leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
			r = neg_errno();
	}
	if (r == 0)
		r = apply_attrs(parent, leaf, fd, !dir, &a);
	entry_attrs_free(&a);
	return r;
}

static int replay_one(struct pool *p, int dir_fd, const char *name, const char *path,
                      struct missing_objects *m)
{
	_cleanup_close_ int parent = -1, obj = -1;
	const char *leaf;
	char rel[OBJECT_NAME_MAX + 4];

	if (!*path || path[0] == '/' || strstr(path, "//"))
		return -EBADMSG;
	if (name && (name[0] == 'd' || name[0] == 'l') && name[1] == ':')
		return replay_attrs(dir_fd, name, path);
	if (!name) {
		/* a deletion: whatever is there, if its directory is */
		parent = open_parent_beneath(dir_fd, path, false, &leaf);
		if (parent == -ENOENT || parent == -ENOTDIR)
			return 0;
		if (parent < 0)
			return parent;
		return layout_clear_entry(parent, leaf);
	}
	if (!hash_is_hex(name) || strlen(name) >= OBJECT_NAME_MAX || strchr(name, '/'))
		return -EBADMSG;
	obj = openat(p->objects_fd, object_relpath(name, rel), O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (obj < 0)
		return errno == ENOENT ? note_missing(m, name) : neg_errno();
	parent = layout_open_parent(dir_fd, path, &leaf);
	if (parent < 0)
		return parent;
	return layout_link_in_place(obj, parent, leaf);
}

int lowerlist_replay(struct pool *p, int home_fd, int dir_fd, char ***ret_missing, size_t *ret_n_missing)
{
	_cleanup_free_ char *buf = NULL;
	struct missing_objects m = {0};
	size_t len = 0;
	bool v1;
	int r;

	r = read_file_at(home_fd, HOME_LOWERLIST, SIZE_MAX / 2, &buf, &len);
	if (r < 0)
		return r;
	if (len < sizeof(HEADER) - 1 ||
	    (memcmp(buf, HEADER, sizeof(HEADER) - 1) && memcmp(buf, HEADER_V1, sizeof(HEADER_V1) - 1)))
		return strncmp(buf, "vunify-lower ", 13) ? -EBADMSG : -EPROTONOSUPPORT;
	v1 = buf[13] == '1';
	for (size_t off = sizeof(HEADER) - 1; off < len && r == 0;) {
		char *rec = buf + off, *end = memchr(rec, '\0', len - off), *tab;
		if (!end)
			break; /* torn last append: ignored (see lowerlist_append) */
		off = (size_t)(end - buf) + 1;
		tab = strchr(rec, '\t');
		if (!tab)
			return -EBADMSG;
		*tab = '\0';
		if (v1 && rec[0] && rec[1] == ':')
			r = -EBADMSG; /* attribute records came with version 2 */
		else
			r = replay_one(p, dir_fd, strcmp(rec, "-") ? rec : NULL, tab + 1, &m);
	}
	nameset_free(&m.seen);
	if (r < 0) {
		names_free(m.v);
		return r;
	}
	*ret_missing = m.v;
	*ret_n_missing = m.n;
	return 0;
}

int guest_describe_lower(struct pool *p, const char *name)
{
	struct guest *g = NULL;
	_cleanup_close_ int home_fd = -1, lower_fd = -1;
	int r;

	if (!layout_ops_for(p)->describes_lower)
		return 0;
	r = pool_guest_load(p, name, &g);
	if (r < 0)
		return r;
	home_fd = guest_open_home(p, g);
	if (home_fd < 0) {
		guest_free(g);
		return home_fd;
	}
	/* unify rewrites the description after the pool's record of the
	 * guest (refs); one at least as new as that record is current */
	{
		struct stat sd, sr;
		_cleanup_close_ int gfd =
		        openat(p->guests_fd, g->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (gfd >= 0 && fstatat(home_fd, HOME_LOWERLIST, &sd, AT_SYMLINK_NOFOLLOW) == 0 &&
		    fstatat(gfd, "refs", &sr, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (sd.st_mtim.tv_sec > sr.st_mtim.tv_sec ||
		     (sd.st_mtim.tv_sec == sr.st_mtim.tv_sec && sd.st_mtim.tv_nsec >= sr.st_mtim.tv_nsec))) {
			guest_free(g);
			return 0;
		}
	}
	lower_fd = guest_open_lower(p, g, home_fd, true);
	guest_free(g);
	if (lower_fd < 0)
		return lower_fd;
	return lowerlist_write(p, home_fd, lower_fd);
}
