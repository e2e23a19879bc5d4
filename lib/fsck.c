/* fsck: the checks and repairs behind 'vunify fsck'.
 *
 * Order: the pool's directories (owner, mode), POOL/tmp's leftovers, every
 * object re-hashed against its name (and its owner and mode checked by the
 * layout), then each guest: its home's leftovers, whether it is mounted
 * (a mounted guest's layers are never changed: SPEC invariant 6), upper
 * files that are pool objects, the lower layer's entries, and the pool's
 * record of the objects the lower layer references.  Every finding goes to
 * the caller's callback as one line; the counts are in struct fsck_result.
 * Repairs change one entry each, each of them safe to die after: a relink
 * or an unsharing copy goes through the home's staging directory and a
 * rename, a rewritten record is written atomically. */
#define _GNU_SOURCE
#include "fsck.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy.h"
#include "hash.h"
#include "layout.h"
#include "lower.h"
#include "meta_image.h"
#include "overlay.h"
#include "online.h"
#include "remove_tree.h"
#include "unify.h"
#include "util.h"
#include "walk.h"
#include "banned.h"

struct fsck {
	struct pool *p;
	const struct fsck_ops *ops;
	void *ud;
	struct fsck_result *res;
	struct fsck_progress pr;
	bool repair;
	const char *guest; /* being checked */
	bool readonly; /* the guest is mounted (or may be): change nothing of it */
	int upper_fd; /* of the guest being checked, or -1 */
	int home_fd; /* its home */
	int staging_fd; /* HOME/staging of the guest being checked, or -1 */
	bool image_record; /* its lower layer checked is HOME/meta.img's tree */
	dev_t objects_dev;
	const struct object_map *map;
};

static void say(struct fsck *f, enum fsck_scope scope, const char *name, enum fsck_verdict verdict,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* One finding to the caller; a line too long for the buffer is cut. */
static void say(struct fsck *f, enum fsck_scope scope, const char *name, enum fsck_verdict verdict,
                const char *fmt, ...)
{
	char text[PATH_MAX + 512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	f->ops->finding(
	        &(struct fsck_finding){.scope = scope, .name = name, .verdict = verdict, .text = text},
	        f->ud);
}

static int check_object(int fan_fd, const char *name, const struct stat *st, void *ud)
{
	struct fsck *f = ud;
	unsigned char h[HASH_LEN];
	char hex[HASH_HEX_LEN + 1];
	_cleanup_close_ int fd = -1;
	int r;

	if (!S_ISREG(st->st_mode) || strlen(name) < HASH_HEX_LEN || !hash_is_hex(name)) {
		say(f, FSCK_OBJECT, name, FSCK_PROBLEM, "not an object (unexpected entry in objects/)");
		f->res->problems++;
		return 0;
	}
	fd = openat(fan_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		say(f, FSCK_OBJECT, name, FSCK_PROBLEM, "cannot open: %s", strerror(errno));
		f->res->problems++;
		return 0;
	}
	r = hash_fd(fd, (uint64_t)st->st_size, h);
	if (r < 0) {
		say(f, FSCK_OBJECT, name, FSCK_PROBLEM, "cannot read: %s", strerror(-r));
		f->res->problems++;
		return 0;
	}
	f->pr.bytes_done += (uint64_t)st->st_size;
	if (f->ops->progress)
		f->ops->progress(&f->pr, false, f->ud);
	hash_to_hex(h, hex);
	if (memcmp(hex, name, HASH_HEX_LEN)) {
		say(f, FSCK_OBJECT, name, FSCK_PROBLEM,
		    "content does not match its name (content hashes to %s)", hex);
		f->res->problems++;
	} else {
		const char *what = NULL;
		bool fixed = false;
		r = layout_check_object(f->p, fd, name, f->repair, &what, &fixed);
		if (r < 0) {
			say(f, FSCK_OBJECT, name, FSCK_PROBLEM, "cannot check its owner and mode: %s",
			    strerror(-r));
			f->res->problems++;
		} else if (r == 1) {
			say(f, FSCK_OBJECT, name, fixed ? FSCK_REPAIRED : FSCK_PROBLEM, "%s%s", what,
			    fixed ? ": repaired" : "");
			if (fixed)
				f->res->repaired++;
			else
				f->res->problems++;
		}
	}
	f->res->checked++;
	f->pr.checked = f->res->checked;
	return 0;
}

static void on_pool_dir(const char *what, const char *problem, bool fixed, void *ud)
{
	struct fsck *f = ud;

	say(f, FSCK_POOL, NULL, fixed ? FSCK_REPAIRED : FSCK_PROBLEM, "%s: %s%s", what, problem,
	    fixed ? ": repaired" : "");
	if (fixed)
		f->res->repaired++;
	else
		f->res->problems++;
}

/* An upper file that is also a pool object (same device and inode: a
 * same-filesystem adoption stopped between linking the object and removing
 * the upper name) would be written in place by the guest, changing every
 * guest that shares the object.  Repair gives it an inode of its own. */
static int upper_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct fsck *f = ud;
	const char *obj;
	int r;

	if (ev != WALK_ENTRY || !S_ISREG(e->st.st_mode) || e->st.st_nlink < 2 ||
	    e->st.st_dev != f->objects_dev || !(obj = object_map_find(f->map, e->st.st_ino)))
		return 0;
	if (!f->repair || f->readonly) {
		say(f, FSCK_GUEST, f->guest, FSCK_PROBLEM,
		    "upper file /%s is the pool object %s (a write through the guest would change it for "
		    "every guest sharing it)%s",
		    e->path, obj, f->readonly ? "; not repaired: guest is mounted" : "");
		f->res->problems++;
		return 0;
	}
	r = copy_file_unshare(e->parent_fd, e->name, f->staging_fd);
	if (r < 0) {
		say(f, FSCK_GUEST, f->guest, FSCK_PROBLEM,
		    "upper file /%s is the pool object %s; repair failed: %s", e->path, obj, strerror(-r));
		f->res->problems++;
		return 0;
	}
	say(f, FSCK_GUEST, f->guest, FSCK_REPAIRED,
	    "upper file /%s was the pool object %s: repaired (a copy of its own)", e->path, obj);
	f->res->repaired++;
	return 0;
}

/* Is PATH hidden by an entry of the guest's upper layer? */
static bool hidden_by_upper(struct fsck *f, const char *path)
{
	const char *name;
	struct stat st;
	_cleanup_close_ int dfd =
	        f->upper_fd >= 0 ? open_parent_beneath(f->upper_fd, path, false, &name) : -1;

	return dfd >= 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* lower_scan's reporter: returns 1 if repaired (lower_scan does not count
 * it), 0 if not (lower_scan counts it as a problem). */
static int on_lower_problem(const struct walk_entry *e, enum lower_problem kind, const char *problem,
                            void *ud)
{
	struct fsck *f = ud;

	/* In an image (written whole: no stub in it is torn), an entry naming
	 * an object that does not exist yet, hidden by its upper copy: a unify
	 * killed after renaming the image in and before adopting that copy as
	 * the object (store.c, finish_lower); or a torn stub an older pool's
	 * stubs carried in, hidden the same way.  The guest sees its upper
	 * copy; the next unify writes the entry again.  Not a problem. */
	if (f->image_record && (kind == LOWER_MALFORMED || kind == LOWER_MISSING_OBJECT) &&
	    hidden_by_upper(f, e->path)) {
		say(f, FSCK_GUEST, f->guest, FSCK_NOTE,
		    "/%s: %s, hidden by its upper copy (left for the next unify)", e->path, problem);
		return 1;
	}
	/* A stub torn by a killed unify is written in place under the upper
	 * copy that hides it: a leftover, removed, not a problem. */
	if (kind == LOWER_MALFORMED && !f->readonly && !f->image_record && hidden_by_upper(f, e->path)) {
		/* a change to HOME/meta: its image goes first (lib/meta_image.h);
		 * the next unify writes it again */
		if ((!layout_ops_for(f->p)->lower_image || meta_image_drop(f->home_fd) == 0) &&
		    unlinkat(e->parent_fd, e->name, 0) == 0) {
			f->res->leftovers++;
			return 1;
		}
	}

	if (f->repair && f->readonly) {
		say(f, FSCK_GUEST, f->guest, FSCK_PROBLEM, "/%s: %s; not repaired: guest is mounted", e->path,
		    problem);
		return 0;
	}
	if (f->repair && kind == LOWER_UNLINKED) {
		int r = link_relink(f->p, e->parent_fd, e->name);
		if (r == 0) {
			say(f, FSCK_GUEST, f->guest, FSCK_REPAIRED,
			    "/%s: %s: repaired (made an object again)", e->path, problem);
			f->res->repaired++;
			return 1;
		}
		say(f, FSCK_GUEST, f->guest, FSCK_PROBLEM, "/%s: %s; repair failed: %s", e->path, problem,
		    strerror(-r));
		return 0;
	}
	say(f, FSCK_GUEST, f->guest, FSCK_PROBLEM, "/%s: %s", e->path, problem);
	return 0;
}

/* Is every object the lower references in the pool's record?  Returns 1
 * when the record must be rewritten (repair), 0, or -errno. */
static int check_record(struct fsck *f, const struct guest *g, const struct lower_stats *ls)
{
	struct guest_refs gr;
	uint64_t missing = 0;
	size_t k = 0;
	int r = pool_guest_read_refs(f->p, g->name, &gr);

	if (r < 0)
		return r;
	/* both lists are sorted: one merge pass */
	for (size_t i = 0; i < ls->n_refs; i++) {
		int cmp = 1;
		while (k < gr.n && (cmp = strcmp(gr.v[k], ls->refs[i])) < 0)
			k++;
		missing += k == gr.n || cmp != 0;
	}
	guest_refs_free(&gr);
	if (!missing)
		return 0;
	if (f->repair) {
		say(f, FSCK_GUEST, g->name, FSCK_REPAIRED,
		    "%" PRIu64 " referenced objects missing from the pool's record: repaired", missing);
		f->res->repaired++;
		return 1;
	}
	say(f, FSCK_GUEST, g->name, FSCK_PROBLEM,
	    "%" PRIu64 " referenced objects missing from the pool's record (gc could delete them; "
	    "run fsck --repair)",
	    missing);
	f->res->problems++;
	return 0;
}

/* The lower layer fsck checks: the record.  Format 4 (redirect): the
 * metadata image where there is one (*ret_image), read-only; else, and in
 * older pools, the stubs (their image is checked against them by
 * check_image).  Returns an fd or -errno (-ENOENT: never unified). */
static int open_record(struct pool *p, const struct guest *g, int hfd, bool *ret_image)
{
	const char *name;
	_cleanup_close_ int base = -1;
	int fd;

	*ret_image = false;
	if (layout_ops_for(p)->lower_image && p->format >= 4) {
		fd = meta_image_open(hfd, 0);
		if (fd != -ENOENT) {
			*ret_image = fd >= 0;
			return fd;
		}
	}
	base = layout_ops_for(p)->open_lower_parent(p, g, hfd, &name);
	if (base < 0)
		return base;
	fd = openat(base, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? neg_errno() : fd;
}

/* Close the fds of the guest being checked. */
static void guest_done(struct fsck *f)
{
	if (f->upper_fd >= 0)
		close(f->upper_fd);
	if (f->staging_fd >= 0)
		close(f->staging_fd);
	f->upper_fd = f->staging_fd = -1;
	f->guest = NULL;
}

/* The metadata image must hold exactly what HOME/meta holds (images are
 * deterministic: written again, they must be equal byte for byte); a
 * missing one is no problem (mount takes the stubs), a differing one is
 * written again with --repair. */
static void check_image(struct fsck *f, const struct guest *g, int hfd)
{
	struct stat st;
	int r;

	/* a mount point left by a killed mount (the overlay holds its own
	 * reference to the image) */
	if (!f->readonly && unlinkat(hfd, HOME_META_IMAGE_MNT, AT_REMOVEDIR) == 0)
		f->res->leftovers++;
	if (f->image_record) {
		/* format 4: the image is the record (checked by the scan of
		 * its tree); stubs beside it are what a unify killed before
		 * removing them left (pool.h) */
		if (fstatat(hfd, HOME_META, &st, AT_SYMLINK_NOFOLLOW) == 0 && f->readonly) {
			say(f, FSCK_GUEST, g->name, FSCK_PROBLEM,
			    "stubs beside its metadata image (a leftover); not removed: guest is mounted");
			f->res->problems++;
		} else if (fstatat(hfd, HOME_META, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			r = remove_tree_at(hfd, HOME_META);
			if (r == 0)
				r = fsync_dir(hfd);
			if (r == 0)
				f->res->leftovers++;
			else
				say(f, FSCK_GUEST, g->name, FSCK_NOTE,
				    "cannot remove meta/ beside its image: %s", strerror(-r));
		}
		return;
	}
	r = meta_image_check(hfd);
	if (r == 1 || r == -ENOENT)
		return;
	if (r < 0) {
		say(f, FSCK_GUEST, g->name, FSCK_PROBLEM, "cannot check its metadata image: %s",
		    strerror(-r));
		f->res->problems++;
		return;
	}
	if (!f->repair || f->readonly) {
		say(f, FSCK_GUEST, g->name, FSCK_PROBLEM, "metadata image differs from meta/%s",
		    f->repair ? "; not repaired: guest is mounted" : " (run fsck --repair)");
		f->res->problems++;
		return;
	}
	r = meta_image_build(hfd);
	if (r == 0) {
		say(f, FSCK_GUEST, g->name, FSCK_REPAIRED,
		    "metadata image differed from meta/: repaired (written again)");
		f->res->repaired++;
	} else {
		say(f, FSCK_GUEST, g->name, FSCK_PROBLEM,
		    "metadata image differs from meta/; repair failed: %s", strerror(-r));
		f->res->problems++;
	}
}

/* Set f->readonly: a mounted guest's layers are not changed (SPEC
 * invariant 6); not knowing counts as mounted. */
static void check_mounted(struct fsck *f, const struct guest *g)
{
	_cleanup_free_ char *upper = path_join(g->home, HOME_UPPER), *at = NULL;
	int m = upper ? overlay_find_mounts(upper, &at) : -ENOMEM;

	f->readonly = m != 0;
	if (m > 0)
		say(f, FSCK_GUEST, g->name, FSCK_NOTE, "mounted at '%s': checked only, nothing changed", at);
	else if (m < 0)
		say(f, FSCK_GUEST, g->name, FSCK_NOTE,
		    "cannot tell whether it is mounted (%s): checked only, nothing changed", strerror(-m));
}

/* A lower prepared by unify --online (switch pending): every entry must
 * point at a live, intact object, as in the lower itself.  It is no layer
 * of any mount and the guest's view never depends on it, so a repair
 * discards it whole (the next --online prepares it again). */
static void check_prepared(struct fsck *f, const struct guest *g, int hfd)
{
	struct lower_stats ls = {0};
	uint64_t probs = 0;
	bool readonly = f->readonly, repair = f->repair;
	_cleanup_close_ int nfd = online_open_next(f->p, g, hfd);
	int r;

	if (nfd == -ENOENT)
		return;
	if (nfd < 0) {
		say(f, FSCK_GUEST, g->name, FSCK_PROBLEM,
		    "switch pending, but its prepared lower layer cannot be opened: %s", strerror(-nfd));
		f->res->problems++;
		return;
	}
	say(f, FSCK_GUEST, g->name, FSCK_NOTE,
	    "switch pending (unify --online): prepared lower layer checked too");
	f->readonly = true; /* nothing of it is removed as a leftover */
	f->repair = false; /* (repaired below, as a whole) */
	f->upper_fd = -1;
	r = lower_scan(f->p, nfd, layout_ops_for(f->p)->refs_by_inode ? f->map : NULL, true, on_lower_problem,
	               f, &ls, &probs);
	f->readonly = readonly;
	f->repair = repair;
	lower_stats_free(&ls);
	if (r < 0) {
		say(f, FSCK_GUEST, g->name, FSCK_PROBLEM, "cannot scan its prepared lower layer: %s",
		    strerror(-r));
		probs++;
	}
	if (probs && f->repair) {
		r = online_discard(f->p, g, hfd);
		if (r == 0) {
			say(f, FSCK_GUEST, g->name, FSCK_REPAIRED,
			    "prepared lower layer discarded (unify --online prepares it again)");
			f->res->repaired++;
			return;
		}
		say(f, FSCK_GUEST, g->name, FSCK_NOTE, "cannot discard its prepared lower layer: %s",
		    strerror(-r));
	}
	f->res->problems += probs;
}

static void check_guest(struct fsck *f, const char *name)
{
	struct guest *g = NULL;
	struct lower_stats ls = {0};
	uint64_t probs = 0;
	_cleanup_close_ int hfd = -1, lfd = -1;
	int r = pool_guest_load(f->p, name, &g);

	if (r < 0) {
		say(f, FSCK_GUEST, name, FSCK_PROBLEM, "not registered");
		f->res->problems++;
		return;
	}
	hfd = guest_open_home(f->p, g);
	if (hfd < 0) {
		say(f, FSCK_GUEST, g->name, FSCK_NOTE, "home '%s' not attached (%s): skipped", g->home,
		    strerror(-hfd));
		guest_free(g);
		return;
	}
	r = remove_contents_at(hfd, HOME_STAGING, &f->res->leftovers);
	if (r == 0)
		r = remove_tree_at(hfd, HOME_UPPER ".new");
	if (r == 0)
		/* an online switch's copy of the image killed before its rename */
		r = remove_tree_at(hfd, "." HOME_META ".from-image");
	if (r == 0 && unlinkat(hfd, "." HOME_META_IMAGE ".tmp", 0) == 0)
		f->res->leftovers++; /* an image unify did not finish */
	if (r < 0)
		say(f, FSCK_GUEST, g->name, FSCK_NOTE, "cannot clean leftovers: %s", strerror(-r));
	f->guest = g->name;
	f->home_fd = hfd;
	check_mounted(f, g);
	f->upper_fd = openat(hfd, HOME_UPPER, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	f->staging_fd = openat(hfd, HOME_STAGING, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (f->upper_fd >= 0 && f->staging_fd >= 0) {
		r = walk_tree(f->upper_fd, upper_cb, f);
		if (r < 0) {
			say(f, FSCK_GUEST, g->name, FSCK_PROBLEM, "cannot walk its upper layer: %s",
			    strerror(-r));
			f->res->problems++;
		}
	}
	if (f->staging_fd >= 0)
		close(f->staging_fd);
	f->staging_fd = -1;
	lfd = open_record(f->p, g, hfd, &f->image_record);
	if (lfd == -ENOENT)
		goto out; /* never unified */
	if (lfd < 0) {
		say(f, FSCK_GUEST, g->name, FSCK_PROBLEM, "cannot open lower layer: %s", strerror(-lfd));
		f->res->problems++;
		goto out;
	}
	r = lower_scan(f->p, lfd, layout_ops_for(f->p)->refs_by_inode ? f->map : NULL, true, on_lower_problem,
	               f, &ls, &probs);
	if (f->upper_fd >= 0)
		close(f->upper_fd);
	f->upper_fd = -1;
	if (r < 0) {
		say(f, FSCK_GUEST, g->name, FSCK_PROBLEM, "cannot scan lower layer: %s", strerror(-r));
		f->res->problems++;
	} else if (check_record(f, g, &ls) == 1 || f->res->repaired) {
		r = guest_refresh_stats(f->p, g, hfd, NULL);
		if (r < 0)
			say(f, FSCK_GUEST, g->name, FSCK_NOTE, "cannot rewrite its record: %s", strerror(-r));
	}
	if (layout_ops_for(f->p)->lower_image)
		check_image(f, g, hfd);
	f->res->problems += probs;
	lower_stats_free(&ls);
	check_prepared(f, g, hfd);
out:
	guest_done(f);
	guest_free(g);
}

/* Contract in fsck.h. */
int fsck_run(struct pool *p, char *const *names, size_t n, unsigned flags, const struct fsck_ops *ops,
             void *ud, struct fsck_result *ret)
{
	struct fsck f = {.p = p,
	                 .ops = ops,
	                 .ud = ud,
	                 .res = ret,
	                 .repair = flags & FSCK_REPAIR,
	                 .upper_fd = -1,
	                 .home_fd = -1,
	                 .staging_fd = -1};
	struct object_map *map = NULL;
	char **all = NULL;
	struct stat ost;
	int r;

	*ret = (struct fsck_result){0};
	/* opening for writing already put the directories' owner and modes
	 * right (pool_open): count what it found, then check what is left */
	if (p->dirs_fixed) {
		say(&f, FSCK_POOL, NULL, FSCK_REPAIRED,
		    "%u directories had a wrong owner or mode, or were missing: repaired (%s)", p->dirs_fixed,
		    p->dirs_fixed_first);
		ret->repaired += p->dirs_fixed;
		if (!f.repair)
			ret->problems += p->dirs_fixed;
	}
	ret->stage = FSCK_STAGE_DIRS;
	r = pool_check_dirs(p, f.repair, on_pool_dir, &f);
	if (r < 0)
		return r;
	ret->stage = FSCK_STAGE_OBJECTS;
	if (fstat(p->objects_fd, &ost) < 0)
		return neg_errno();
	f.objects_dev = ost.st_dev;
	ret->stage = FSCK_STAGE_TMP;
	r = remove_contents_at(p->fd, "tmp", &ret->leftovers);
	if (r < 0)
		return r;
	ret->stage = FSCK_STAGE_OBJECTS;
	if (ops->progress) {
		struct object_info oi = {0};
		if (objects_scan(p, &oi, NULL, NULL, NULL) == 0) {
			f.pr.objects_total = oi.objects;
			f.pr.bytes_total = oi.bytes;
		}
	}
	r = objects_scan(p, NULL, &map, check_object, &f);
	f.map = map;
	if (ops->progress)
		ops->progress(&f.pr, true, ud);
	if (r < 0)
		goto out;
	if (n == 0) {
		int k = pool_guest_names(p, &all);
		if (k < 0 || !all) {
			ret->stage = FSCK_STAGE_GUESTS;
			r = k < 0 ? k : -ENOMEM;
			goto out;
		}
		names = all;
		n = (size_t)k;
	}
	for (size_t i = 0; i < n; i++)
		check_guest(&f, names[i]);
	r = 0;
out:
	object_map_free(map);
	names_free(all);
	return r;
}
