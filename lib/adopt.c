/* adopt (see adopt.h).
 *
 * Checks first, changes last, in this order (each step safe to die after):
 *   1. read the home's id file: format and layout must be ours;
 *   2. find every object the lower layer references: the redirect layout
 *      reads the stubs' redirects in HOME/meta; the link layout replays
 *      HOME/vunify-lower into POOL/roots/.adopt.NAME (hard links: nothing
 *      is copied), noting names that are not here; with VERIFY, re-hash
 *      exactly those objects.  Anything missing or corrupt: undo the
 *      staging tree, report, change nothing.  Killed here: a staging tree
 *      nobody references (the next adopt of NAME removes it);
 *   3. write the home's id (this pool, NAME) atomically.  Killed after:
 *      the home is bound here but no guest is registered; re-running adopt
 *      finishes (the old pool's id is no longer needed: the home moved);
 *   4. link layout: syncfs, rename the staging tree to roots/NAME;
 *   5. write the guest's reference record, then register it (the home
 *      file, written last: until then NAME is an unfinished add that adopt
 *      or add may complete), then its figures.
 * A guest that comes back (registered here with this very home, which
 * another pool adopted since) is re-bound the same way: its record is
 * rewritten, its registration kept. */
#define _GNU_SOURCE
#include "adopt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "layout.h"
#include "lower.h"
#include "lowerlist.h"
#include "object.h"
#include "overlay.h"
#include "remove_tree.h"
#include "unify.h"
#include "util.h"
#include "banned.h"

void adopt_report_free(struct adopt_report *r)
{
	names_free(r->missing);
	names_free(r->corrupt);
	*r = (struct adopt_report){0};
}

/* The value of "KEY value" in the id file, or NULL. */
static const char *id_value(const char *text, const char *key, char *buf, size_t size)
{
	size_t kl = strlen(key);

	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t ll = nl ? (size_t)(nl - line) : strlen(line);
		if (ll > kl && !strncmp(line, key, kl) && line[kl] == ' ' && ll - kl - 1 < size) {
			memcpy(buf, line + kl + 1, ll - kl - 1);
			buf[ll - kl - 1] = '\0';
			return buf;
		}
		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

static int check_home_id(struct pool *p, int home_fd)
{
	_cleanup_free_ char *id = NULL;
	char v[64];
	uint64_t fmt;
	int r = read_file_at(home_fd, HOME_ID, 4096, &id, NULL);

	if (r == -ENOENT)
		return -ENOMEDIUM;
	if (r < 0)
		return r;
	if (!id_value(id, "pool", v, sizeof(v)) || !id_value(id, "guest", v, sizeof(v)))
		return -ENOMEDIUM;
	/* homes written before the format line are format 1 */
	if (id_value(id, "format", v, sizeof(v)) && (parse_u64(v, &fmt) < 0 || fmt != HOME_FORMAT))
		return -EPROTONOSUPPORT;
	if (id_value(id, "layout", v, sizeof(v)) && strcmp(v, layout_name(p->layout)))
		return -EPROTOTYPE;
	return 0;
}

static int add_name(char ***v, size_t *n, const char *name)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(name);
	if (!nv[*n])
		return -ENOMEM;
	nv[++*n] = NULL;
	return 0;
}

/* Re-hash an object; 1 if it hashes to its name, 0 if not, or -errno. */
static int object_intact(struct pool *p, const char *name)
{
	char rel[OBJECT_NAME_MAX + 4], hex[HASH_HEX_LEN + 1];
	unsigned char h[HASH_LEN];
	struct stat st;
	_cleanup_close_ int fd = openat(p->objects_fd, object_relpath(name, rel),
	                                O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &st) < 0)
		return neg_errno();
	if (!S_ISREG(st.st_mode))
		return 0;
	r = hash_fd(fd, (uint64_t)st.st_size, h);
	if (r < 0)
		return r == -EIO ? 0 : r;
	hash_to_hex(h, hex);
	return !strncmp(hex, name, HASH_HEX_LEN);
}

int guest_adopt(struct pool *p, const char *name, const char *home, bool verify, struct adopt_report *ret)
{
	struct adopt_report rep = {0};
	struct lower_stats ls = {0};
	struct object_map *map = NULL;
	const struct layout_ops *ops = layout_ops_for(p);
	struct adopt_staging staging = {.dir_fd = -1};
	_cleanup_free_ char *abs = NULL, *upper = NULL;
	_cleanup_close_ int home_fd = -1, lower_fd = -1;
	struct guest *g = NULL;
	char idbuf[256];
	bool rebind = false;
	int r;

	if (!guest_name_valid(name))
		return -EINVAL;
	abs = realpath(home, NULL);
	if (!abs)
		return neg_errno();
	r = pool_guest_load(p, name, &g);
	if (r == 0) {
		/* A name clash, unless this is the guest coming back: the same
		 * home, which was adopted by another pool since (its id no
		 * longer names this one). */
		int h = strcmp(g->home, abs) ? 0 : guest_open_home(p, g);
		guest_free(g);
		g = NULL;
		if (h >= 0) {
			if (h > 0)
				close(h);
			return -EEXIST;
		}
		if (h != -ESTALE)
			return h;
		rebind = true;
	} else if (r != -ENOENT) {
		return r;
	}
	home_fd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (home_fd < 0)
		return neg_errno();
	r = check_home_id(p, home_fd);
	if (r < 0)
		return r;
	upper = path_join(abs, HOME_UPPER);
	if (!upper)
		return -ENOMEM;
	r = overlay_find_mounts(upper, NULL);
	if (r != 0)
		return r > 0 ? -EBUSY : r;

	/* 2. what the lower layer references, and whether it is all here
	 * (the layout opens it, or rebuilds it from the home's description) */
	r = ops->adopt_open_lower(p, home_fd, name, &staging, &rep.missing, &rep.n_missing, &lower_fd);
	if (r == 0 && lower_fd >= 0) {
		if (ops->refs_by_inode)
			r = objects_scan(p, NULL, &map, NULL, NULL);
		if (r == 0)
			r = lower_scan(p, lower_fd, map, false, NULL, NULL, &ls, NULL);
		object_map_free(map);
	}
	/* (references by inode are objects here by construction) */
	for (size_t i = 0; !ops->refs_by_inode && i < ls.n_refs && r == 0; i++) {
		int e = pool_object_stat(p, ls.refs[i], NULL);
		if (e == 0)
			r = add_name(&rep.missing, &rep.n_missing, ls.refs[i]);
		else if (e < 0)
			r = e;
	}
	rep.needed = ls.n_refs + rep.n_missing;
	for (size_t i = 0; verify && r == 0 && i < ls.n_refs; i++) {
		int e = object_intact(p, ls.refs[i]);
		if (e == 0)
			r = add_name(&rep.corrupt, &rep.n_corrupt, ls.refs[i]);
		else if (e < 0 && e != -ENOENT)
			r = e;
	}
	if (r == 0 && rep.n_missing)
		r = -ENODATA;
	else if (r == 0 && rep.n_corrupt)
		r = -EBADMSG;
	if (r < 0)
		goto fail;

	/* 3. the home is ours from now on */
	snprintf(idbuf, sizeof(idbuf), "pool %s\nguest %s\nformat %d\nlayout %s\n", p->id, name, HOME_FORMAT,
	         layout_name(p->layout));
	r = write_file_atomic_at(home_fd, HOME_ID, idbuf, strlen(idbuf), 0644);
	/* 4. a lower layer rebuilt in the pool: durable, under its name */
	if (r == 0 && staging.name)
		r = ops->adopt_commit_lower(p, name, &staging);
	/* 5. the pool's record, then the registration */
	if (r == 0 && mkdirat(p->guests_fd, name, 0700) < 0 && errno != EEXIST)
		r = neg_errno();
	if (r == 0)
		r = pool_guest_save_refs(p, name, ls.refs, ls.n_refs);
	if (r == 0 && !rebind)
		r = pool_guest_register(p, name, abs);
	if (r == 0 && pool_guest_load(p, name, &g) == 0) {
		(void)guest_refresh_stats(p, g, home_fd, NULL);
		guest_free(g);
	}
	if (r < 0)
		goto fail;
	adopt_staging_free(&staging);
	lower_stats_free(&ls);
	*ret = rep;
	return 0;
fail:
	adopt_staging_free(&staging);
	lower_stats_free(&ls);
	*ret = rep;
	return r;
}
