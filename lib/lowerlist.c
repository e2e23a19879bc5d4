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
#include <unistd.h>

#include "layout.h"
#include "lower.h"
#include "object.h"
#include "replica.h"
#include "util.h"
#include "walk.h"
#include "banned.h"

#define HEADER "vunify-lower 1\n"

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

static int rec_add(struct record_buf *rb, const char *name, const char *path)
{
	size_t nl = name ? strlen(name) : 1, pl = strlen(path), need = nl + pl + 2;

	if (rb->len + need > rb->cap) {
		size_t nc = MAX(rb->cap * 2, rb->len + need + 4096);
		char *nb = realloc(rb->b, nc);
		if (!nb)
			return -ENOMEM;
		rb->b = nb;
		rb->cap = nc;
	}
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
	struct object_map *map;
};

static int describe_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct describe_walk *d = ud;
	const char *name;

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

static int replay_one(struct pool *p, int dir_fd, const char *name, const char *path,
                      struct missing_objects *m)
{
	_cleanup_close_ int parent = -1, obj = -1;
	const char *leaf;
	char rel[OBJECT_NAME_MAX + 4];

	if (!*path || path[0] == '/' || strstr(path, "//"))
		return -EBADMSG;
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
	int r;

	r = read_file_at(home_fd, HOME_LOWERLIST, SIZE_MAX / 2, &buf, &len);
	if (r < 0)
		return r;
	if (len < sizeof(HEADER) - 1 || memcmp(buf, HEADER, sizeof(HEADER) - 1))
		return strncmp(buf, "vunify-lower ", 13) ? -EBADMSG : -EPROTONOSUPPORT;
	for (size_t off = sizeof(HEADER) - 1; off < len && r == 0;) {
		char *rec = buf + off, *end = memchr(rec, '\0', len - off), *tab;
		if (!end)
			break; /* torn last append: ignored (see lowerlist_append) */
		off = (size_t)(end - buf) + 1;
		tab = strchr(rec, '\t');
		if (!tab)
			return -EBADMSG;
		*tab = '\0';
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
