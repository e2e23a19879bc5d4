/* Lower-layer and object-store scans.  Both are plain stat walks: they
 * never read file data, so status stays cheap on large pools. */
#define _GNU_SOURCE
#include "lower.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ino_map.h"
#include "object.h"
#include "overlay.h"
#include "util.h"
#include "walk.h"
#include "banned.h"

struct object_map {
	char (*names)[OBJECT_NAME_MAX];
	size_t n, cap;
	struct ino_map by_ino; /* inode -> index in names */
};

void object_map_free(struct object_map *m)
{
	if (!m)
		return;
	free(m->names);
	ino_map_free(&m->by_ino);
	free(m);
}

const char *object_map_find(const struct object_map *m, ino_t ino)
{
	const uint64_t *i = ino_map_find(&m->by_ino, 0, ino);

	return i ? m->names[*i] : NULL;
}

/* Call fn for every entry of objects/00 .. objects/ff but "." names, with
 * the fan-out directory's fd and name; stops at fn's first error. */
typedef int (*fanout_fn)(int dir_fd, const char *fan, const struct dirent *de, void *ud);

static int objects_each(struct pool *p, fanout_fn fn, void *ud)
{
	int r = 0;

	for (unsigned i = 0; i < 256 && r == 0; i++) {
		char fan[3];
		_cleanup_closedir_ DIR *d = NULL;
		struct dirent *de;

		snprintf(fan, sizeof(fan), "%02x", i);
		r = opendir_at(p->objects_fd, fan, &d);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		if (r < 0)
			return r;
		while (r == 0 && (de = readdir(d)))
			if (de->d_name[0] != '.')
				r = fn(dirfd(d), fan, de, ud);
	}
	return r;
}

struct scan_state {
	struct object_info info;
	struct object_map *m;
	object_fn on_object;
	void *ud;
};

static int scan_entry(int fd, const char *fan, const struct dirent *de, void *ud)
{
	struct scan_state *s = ud;
	struct object_map *m = s->m;
	struct stat st;
	int r;

	if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	if (s->on_object) {
		r = s->on_object(fd, de->d_name, &st, s->ud);
		if (r < 0)
			return r;
	}
	if (!S_ISREG(st.st_mode) || !object_name_valid(de->d_name) || strncmp(de->d_name, fan, 2))
		return 0;
	s->info.objects++;
	s->info.bytes += (uint64_t)st.st_size;
	if (!m)
		return 0;
	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 1024;
		char(*nv)[OBJECT_NAME_MAX] = realloc(m->names, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		m->names = nv;
		m->cap = nc;
	}
	r = ino_map_add(&m->by_ino, 0, st.st_ino, m->n, NULL);
	if (r < 0)
		return r;
	memcpy(m->names[m->n], de->d_name, strlen(de->d_name) + 1);
	m->n++;
	return 0;
}

int objects_scan(struct pool *p, struct object_info *ret_info, struct object_map **ret_map,
                 object_fn on_object, void *ud)
{
	struct scan_state s = {.on_object = on_object, .ud = ud};
	int r;

	if (ret_map) {
		s.m = calloc(1, sizeof(*s.m));
		if (!s.m)
			return -ENOMEM;
	}
	r = objects_each(p, scan_entry, &s);
	if (r < 0) {
		object_map_free(s.m);
		return r;
	}
	if (s.m)
		*ret_map = s.m;
	if (ret_info)
		*ret_info = s.info;
	return 0;
}

struct names_state {
	int (*fn)(const char *name, void *ud);
	void *ud;
};

static int name_entry(int fd, const char *fan, const struct dirent *de, void *ud)
{
	struct names_state *s = ud;

	(void)fd;
	(void)fan;
	if ((de->d_type != DT_REG && de->d_type != DT_UNKNOWN) || !object_name_valid(de->d_name))
		return 0;
	return s->fn(de->d_name, s->ud);
}

int objects_names(struct pool *p, int (*fn)(const char *name, void *ud), void *ud)
{
	struct names_state s = {.fn = fn, .ud = ud};

	return objects_each(p, name_entry, &s);
}

struct lower_walk {
	struct pool *p;
	const struct layout_ops *ops;
	const struct object_map *map;
	bool check;
	lower_problem_fn on_problem;
	void *ud;
	struct ino_map inos;
	struct lower_stats st;
	size_t refs_cap;
	uint64_t problems;
};

/* Returns 1 if the caller repaired the entry, 0 if it stays a problem,
 * or -errno. */
static int problem(struct lower_walk *s, const struct walk_entry *e, enum lower_problem kind,
                   const char *what)
{
	int r = s->on_problem ? s->on_problem(e, kind, what, s->ud) : 0;

	if (r == 0)
		s->problems++;
	return r;
}

static int lower_walk_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct lower_walk *s = ud;
	char name[OBJECT_NAME_MAX];
	int r, added;

	if (ev != WALK_ENTRY)
		return 0;
	/* the guest's symlinks, where unify moved them (prune.h) */
	if (S_ISLNK(e->st.st_mode))
		return 0;
	if (!S_ISREG(e->st.st_mode)) {
		if (s->check)
			return MIN(problem(s, e, LOWER_BAD_TYPE, "not a regular file in the lower layer"), 0);
		return 0;
	}
	r = s->ops->lower_ref(s->p, s->map, e->parent_fd, e->name, &e->st, name);
	/* (a repaired entry is counted again by the next scan) */
	if (r == -EBADMSG)
		return MIN(problem(s, e, s->ops->bad_ref, s->ops->bad_ref_what), 0);
	if (r < 0)
		return r;
	if (r == 0)
		return 0;
	s->st.files++;
	added = e->st.st_nlink > 1 ? ino_map_add(&s->inos, 0, e->st.st_ino, 0, NULL) : 1;
	if (added < 0)
		return added;
	if (added)
		s->st.bytes += (uint64_t)e->st.st_size;
	if (s->check && s->ops->check_ref) {
		enum lower_problem kind;
		const char *what;
		r = s->ops->check_ref(s->p, e, name, &kind, &what);
		if (r < 0)
			return r;
		/* 2: the entry references nothing; 1: it still references NAME */
		if (r == 2)
			return MIN(problem(s, e, kind, what), 0);
		if (r == 1 && (r = problem(s, e, kind, what)) < 0)
			return r;
	}
	if (s->st.n_refs + 1 >= s->refs_cap) {
		size_t nc = s->refs_cap ? s->refs_cap * 2 : 1024;
		char **nv = realloc(s->st.refs, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		s->st.refs = nv;
		s->refs_cap = nc;
	}
	s->st.refs[s->st.n_refs] = strdup(name);
	if (!s->st.refs[s->st.n_refs])
		return -ENOMEM;
	s->st.n_refs++;
	s->st.refs[s->st.n_refs] = NULL;
	return 0;
}

void lower_stats_free(struct lower_stats *s)
{
	for (size_t i = 0; i < s->n_refs; i++)
		free(s->refs[i]);
	free(s->refs);
	s->refs = NULL;
	s->n_refs = 0;
}

int lower_scan(struct pool *p, int lower_fd, const struct object_map *map, bool check,
               lower_problem_fn on_problem, void *ud, struct lower_stats *ret, uint64_t *ret_problems)
{
	struct lower_walk s = {.p = p,
	                       .ops = layout_ops_for(p),
	                       .map = map,
	                       .check = check,
	                       .on_problem = on_problem,
	                       .ud = ud};
	int r = walk_tree(lower_fd, lower_walk_cb, &s);

	ino_map_free(&s.inos);
	if (r < 0) {
		lower_stats_free(&s.st);
		return r;
	}
	if (s.st.n_refs > 1) {
		size_t k = 0;
		qsort(s.st.refs, s.st.n_refs, sizeof(*s.st.refs), cmp_strp);
		for (size_t i = 0; i < s.st.n_refs; i++) {
			if (k > 0 && !strcmp(s.st.refs[k - 1], s.st.refs[i]))
				free(s.st.refs[i]);
			else
				s.st.refs[k++] = s.st.refs[i];
		}
		s.st.n_refs = k;
		s.st.refs[k] = NULL;
	}
	*ret = s.st;
	if (ret_problems)
		*ret_problems = s.problems;
	return 0;
}

struct disk_usage {
	struct ino_map inos;
	uint64_t bytes;
	uint64_t limit, over;
};

static int du_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct disk_usage *d = ud;
	int added = 1;

	if (ev == WALK_DIR_POST)
		return 0;
	if (!S_ISDIR(e->st.st_mode) && e->st.st_nlink > 1)
		added = ino_map_add(&d->inos, 0, e->st.st_ino, 0, NULL);
	if (added < 0)
		return added;
	if (added)
		d->bytes += (uint64_t)e->st.st_blocks * 512;
	if (added && d->limit && S_ISREG(e->st.st_mode) && (uint64_t)e->st.st_size > d->limit)
		d->over++;
	return 0;
}

int tree_disk_usage_over(int dir_fd, uint64_t limit, uint64_t *ret_bytes, uint64_t *ret_over)
{
	struct disk_usage d = {.limit = limit};
	int r = walk_tree(dir_fd, du_cb, &d);

	ino_map_free(&d.inos);
	if (r == 0) {
		*ret_bytes = d.bytes;
		if (ret_over)
			*ret_over = d.over;
	}
	return r;
}

int tree_disk_usage(int dir_fd, uint64_t *ret_bytes)
{
	return tree_disk_usage_over(dir_fd, 0, ret_bytes, NULL);
}
