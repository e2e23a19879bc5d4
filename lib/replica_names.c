/* Object names: name sets, asking a replica what it holds, and the
 * objects a set of guests references (see replica.h). */
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

/* ---- name sets ---- */

static size_t name_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;

	for (int i = 0; i < 16 && s[i]; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static int nameset_grow(struct nameset *s)
{
	size_t nc = s->cap ? s->cap * 2 : 1024;
	char **nv = calloc(nc, sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->v[i])
			continue;
		size_t k = name_hash(s->v[i]) & (nc - 1);
		while (nv[k])
			k = (k + 1) & (nc - 1);
		nv[k] = s->v[i];
	}
	free(s->v);
	s->v = nv;
	s->cap = nc;
	return 0;
}

int nameset_add(struct nameset *s, const char *name)
{
	size_t k;

	if (nameset_has(s, name))
		return 0;
	if ((s->n + 1) * 2 > s->cap) {
		int r = nameset_grow(s);
		if (r < 0)
			return r;
	}
	k = name_hash(name) & (s->cap - 1);
	while (s->v[k])
		k = (k + 1) & (s->cap - 1);
	s->v[k] = strdup(name);
	if (!s->v[k])
		return -ENOMEM;
	s->n++;
	return 1;
}

bool nameset_has(const struct nameset *s, const char *name)
{
	if (!s->cap)
		return false;
	for (size_t k = name_hash(name) & (s->cap - 1); s->v[k]; k = (k + 1) & (s->cap - 1))
		if (!strcmp(s->v[k], name))
			return true;
	return false;
}

void nameset_free(struct nameset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct nameset){0};
}

/* ---- asking a replica what it holds ---- */

static int add_name_cb(const char *name, void *ud)
{
	int r = nameset_add(ud, name);
	return r < 0 ? r : 0;
}

int replica_names(const struct target *t, enum layout_kind layout, struct nameset *ret, int *ret_status)
{
	return replica_names_at(t, layout, ret, NULL, ret_status);
}

int replica_names_at(const struct target *t, enum layout_kind layout, struct nameset *ret, char **ret_path,
                     int *ret_status)
{
	struct nameset s = {0};
	_cleanup_free_ char *path = NULL;
	int r, status = 0;

	if (!t->host) {
		struct pool *rp = NULL;
		r = pool_open(t->dir, POOL_LOCK_SHARED, true, &rp, NULL);
		if (r < 0)
			return r;
		if (rp->layout != layout)
			r = -EPROTOTYPE;
		else
			r = objects_names(rp, add_name_cb, &s);
		if (r == 0 && !(path = strdup(rp->path)))
			r = -ENOMEM;
		pool_close(rp);
	} else {
		char *with_pool[] = {"vunify", "-p", t->dir, "objects", NULL};
		char *remote_default[] = {"vunify", "objects", NULL};
		char **cmd = t->dir && *t->dir ? with_pool : remote_default;
		char **argv = NULL;
		_cleanup_free_ char *out = NULL;
		size_t len = 0;
		r = ssh_remote_argv(t, cmd, &argv);
		if (r < 0)
			return r;
		r = run_process(argv, NULL, 0, &out, &len, &status);
		strv_free(argv);
		if (r < 0)
			return r;
		if (ret_status)
			*ret_status = status;
		if (status != 0)
			return -EHOSTUNREACH;
		/* "vunify-objects 1\nlayout L\n" then one name a line */
		{
			char want[64];
			snprintf(want, sizeof(want), "vunify-objects 1\nlayout %s\n", layout_name(layout));
			if (strncmp(out, "vunify-objects 1\n", 17))
				return -EPROTO;
			if (strncmp(out, want, strlen(want)))
				return -EPROTOTYPE;
			for (char *line = out + strlen(want); *line && r == 0;) {
				char *nl = strchr(line, '\n');
				if (!nl)
					break;
				*nl = '\0';
				if (!strncmp(line, "pool ", 5)) {
					free(path);
					if (!(path = strdup(line + 5)))
						r = -ENOMEM;
				} else if (*line) {
					r = add_name_cb(line, &s);
				}
				line = nl + 1;
			}
		}
	}
	if (r < 0) {
		nameset_free(&s);
		return r;
	}
	if (ret_path)
		*ret_path = steal_pointer(&path);
	*ret = s;
	return 0;
}

/* ---- what guests need ---- */

int guests_objects(struct pool *p, char *const *guests, size_t n, char ***ret, size_t *ret_n)
{
	char **all = NULL, **v = NULL;
	size_t nv = 0, cap = 0;
	struct nameset seen = {0};
	int r = 0;

	if (n == 0) {
		r = pool_guest_names(p, &all);
		if (r < 0)
			return r;
		n = (size_t)r;
		guests = all;
		r = 0;
	}
	for (size_t g = 0; g < n && r == 0; g++) {
		_cleanup_close_ int gfd = -1;
		struct guest_refs refs;
		if (!guest_name_valid(guests[g])) {
			r = -EINVAL;
			break;
		}
		gfd = openat(p->guests_fd, guests[g], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (gfd < 0 || faccessat(gfd, "home", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -ENOENT;
			break;
		}
		r = name_list_read_at(gfd, "refs", &refs);
		if (r > 0)
			r = 0;
		for (size_t i = 0; r == 0 && i < refs.n; i++) {
			const char *line = refs.v[i];
			if (!nameset_has(&seen, line)) {
				/* the record is a superset: keep what exists here */
				r = nameset_add(&seen, line);
				if (r >= 0)
					r = pool_object_stat(p, line, NULL);
				if (r == 1) {
					if (nv == cap) {
						size_t nc = cap ? cap * 2 : 1024;
						char **nn = realloc(v, (nc + 1) * sizeof(*v));
						if (!nn) {
							r = -ENOMEM;
							break;
						}
						v = nn;
						cap = nc;
					}
					v[nv] = strdup(line);
					r = v[nv] ? 0 : -ENOMEM;
					nv += r == 0;
				} else if (r == -EINVAL) {
					r = 0; /* not an object name */
				}
			}
		}
		guest_refs_free(&refs);
	}
	nameset_free(&seen);
	names_free(all);
	if (r < 0) {
		for (size_t i = 0; i < nv; i++)
			free(v[i]);
		free(v);
		return r;
	}
	if (!v && !(v = malloc(sizeof(*v))))
		return -ENOMEM;
	v[nv] = NULL;
	qsort(v, nv, sizeof(*v), cmp_strp);
	*ret = v;
	*ret_n = nv;
	return 0;
}
