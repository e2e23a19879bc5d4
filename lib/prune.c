/* Upper directories that hold nothing of the guest's own: see prune.h for
 * the order and why each step is safe to die after. */
#define _GNU_SOURCE
#include "prune.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layout.h"
#include "overlay.h"
#include "policy.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

/* Deeper entries are left in the upper (prepare_cb). */
#define PRUNE_MAX_DEPTH 64

struct prune {
	struct fdlevels lower; /* the lower counterparts, by depth */
	bool *clean; /* by depth: nothing of the guest's own so far */
	enum policy_class *cls; /* by depth */
	size_t clean_cap;
	const struct policy *pol;
	int (*will_change)(void *ud);
	void *ud;
	bool changed;
	struct prune_list *out;
};

static int will_change(struct prune *pr)
{
	int r;

	if (pr->changed)
		return 0;
	r = pr->will_change ? pr->will_change(pr->ud) : 0;
	if (r == 0)
		pr->changed = true;
	return r;
}

static int clean_at(struct prune *pr, unsigned depth, bool v)
{
	if (depth >= pr->clean_cap) {
		size_t nc = MAX(depth + 1, pr->clean_cap * 2);
		bool *n = realloc(pr->clean, nc * sizeof(*n));
		enum policy_class *c;
		if (!n)
			return -ENOMEM;
		pr->clean = n;
		c = realloc(pr->cls, nc * sizeof(*c));
		if (!c)
			return -ENOMEM;
		pr->cls = c;
		pr->clean_cap = nc;
	}
	pr->clean[depth] = v;
	return 0;
}

static enum policy_class classify(const struct prune *pr, const char *relpath, enum policy_class parent)
{
	size_t l = strlen(relpath);
	_cleanup_free_ char *abs = NULL;

	if (!pr->pol)
		return parent;
	abs = malloc(l + 2);
	if (!abs)
		return POLICY_NEVER; /* out of memory: the safe answer */
	abs[0] = '/';
	memcpy(abs + 1, relpath, l + 1);
	return policy_classify(pr->pol, abs, parent);
}

/* A symlink's target, owner, mtime and xattrs. */
struct link_attrs {
	char target[PATH_MAX];
	struct stat st;
	struct xattr_list xl;
};

/* Read the symlink NAME in DIR_FD into *A.  Returns 0, -EINVAL if it is
 * not a symlink, or -errno. */
static int read_link(int dir_fd, const char *name, struct link_attrs *a)
{
	ssize_t n;

	if (fstatat(dir_fd, name, &a->st, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	if (!S_ISLNK(a->st.st_mode))
		return -EINVAL;
	n = readlink_at(dir_fd, name, a->target, sizeof(a->target));
	if (n < 0)
		return (int)n;
	return xattr_list_read_at(dir_fd, name, XATTR_SKIP_OVERLAY, &a->xl);
}

static bool same_link(const struct link_attrs *a, const struct link_attrs *b)
{
	return !strcmp(a->target, b->target) && a->st.st_uid == b->st.st_uid &&
	       a->st.st_gid == b->st.st_gid && a->st.st_mtim.tv_sec == b->st.st_mtim.tv_sec &&
	       a->st.st_mtim.tv_nsec == b->st.st_mtim.tv_nsec && xattr_list_equal(&a->xl, &b->xl);
}

/* Give the lower directory LFD a symlink equal to the upper symlink E.
 * Returns 1 if the lower shows an equal symlink now, 0 if it cannot (the
 * upper one stays), or -errno. */
static int sync_link(struct prune *pr, const struct walk_entry *e, int lfd)
{
	struct link_attrs *u = calloc(1, sizeof(*u)), *l = calloc(1, sizeof(*l));
	struct timespec ts[2];
	_cleanup_close_ int fd = -1;
	int r, res = 0;

	if (!u || !l) {
		r = -ENOMEM;
		goto out;
	}
	r = read_link(e->parent_fd, e->name, u);
	if (r < 0)
		goto out;
	ts[0] = u->st.st_atim;
	ts[1] = u->st.st_mtim;
	r = read_link(lfd, e->name, l);
	if (r == 0 && same_link(u, l)) {
		res = 1;
		goto out;
	}
	if (r < 0 && r != -ENOENT && r != -EINVAL)
		goto out;
	xattr_list_free(&l->xl);
	/* made at its own name, which the upper symlink hides until
	 * prune_apply: no temp name ever shows in the view */
	r = will_change(pr);
	if (r == 0)
		r = layout_clear_entry(lfd, e->name);
	if (r == 0 && symlinkat(u->target, lfd, e->name) < 0)
		r = neg_errno();
	if (r == 0 && fchownat(lfd, e->name, u->st.st_uid, u->st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		r = neg_errno();
	if (r == 0 && u->xl.n) {
		fd = openat(lfd, e->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		r = fd < 0 ? neg_errno() : xattr_list_apply(fd, true, &u->xl);
		if (r == -EOPNOTSUPP || r == -ENOSPC || r == -E2BIG || r == -ERANGE || r == -EPERM) {
			r = 0; /* not representable there: this one stays */
			goto out;
		}
	}
	if (r == 0 && utimensat(lfd, e->name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		r = neg_errno();
	if (r == 0)
		r = read_link(lfd, e->name, l);
	if (r == 0)
		res = same_link(u, l);
out:
	if (u)
		xattr_list_free(&u->xl);
	if (l)
		xattr_list_free(&l->xl);
	free(u);
	free(l);
	return r < 0 ? r : res;
}

static bool same_attrs(const struct stat *a, const struct xattr_list *ax, const struct stat *b,
                       const struct xattr_list *bx)
{
	return (a->st_mode & 07777) == (b->st_mode & 07777) && a->st_uid == b->st_uid &&
	       a->st_gid == b->st_gid && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && xattr_list_equal(ax, bx);
}

/* Give the lower directory LFD the attributes of the upper directory UFD
 * (stat UST).  Returns 1 if they are equal afterwards, 0 if the lower
 * filesystem would not take them, or -errno. */
static int sync_attrs(struct prune *pr, int ufd, const struct stat *ust, int lfd)
{
	struct xattr_list ux = {0}, lx = {0};
	struct timespec ts[2] = {ust->st_atim, ust->st_mtim};
	struct stat lst;
	int r = xattr_list_read(ufd, false, XATTR_SKIP_OVERLAY, &ux), res = 0;

	if (r == 0)
		r = xattr_list_read(lfd, false, XATTR_SKIP_OVERLAY, &lx);
	if (r == 0 && fstat(lfd, &lst) < 0)
		r = neg_errno();
	if (r < 0)
		goto out;
	if (same_attrs(ust, &ux, &lst, &lx)) {
		res = 1;
		goto out;
	}
	r = will_change(pr);
	if (r < 0)
		goto out;
	/* owner, then xattrs (an ACL sets group bits), then the mode, then
	 * the times (each change above sets them) */
	if (fchown(lfd, ust->st_uid, ust->st_gid) < 0) {
		r = neg_errno();
		goto out;
	}
	for (size_t i = 0; i < lx.n && r == 0; i++) {
		bool keep = false;
		for (size_t k = 0; k < ux.n && !keep; k++)
			keep = !strcmp(lx.v[i].name, ux.v[k].name);
		if (!keep)
			r = xattr_remove(lfd, false, lx.v[i].name);
	}
	if (r == 0)
		r = xattr_list_apply(lfd, false, &ux);
	if (r == -EOPNOTSUPP || r == -ENOSPC || r == -E2BIG || r == -ERANGE) {
		r = 0; /* not representable there: this one stays in the upper */
		goto out;
	}
	if (r == 0 && fchmod(lfd, ust->st_mode & 07777) < 0)
		r = neg_errno();
	if (r == 0 && futimens(lfd, ts) < 0)
		r = neg_errno();
	if (r < 0)
		goto out;
	xattr_list_free(&lx);
	r = xattr_list_read(lfd, false, XATTR_SKIP_OVERLAY, &lx);
	if (r == 0 && fstat(lfd, &lst) < 0)
		r = neg_errno();
	if (r == 0)
		res = same_attrs(ust, &ux, &lst, &lx);
out:
	xattr_list_free(&ux);
	xattr_list_free(&lx);
	return r < 0 ? r : res;
}

/* Does the upper directory carry a mark that changes what its lower
 * counterpart shows (opaque) or where it comes from (redirect)? */
static bool has_overlay_mark(int fd)
{
	return fgetxattr(fd, OVL_XATTR_OPAQUE, NULL, 0) >= 0 ||
	       fgetxattr(fd, "trusted.overlay.redirect", NULL, 0) >= 0;
}

static int list_add(char ***v, size_t *n, size_t *cap, const char *path)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		char **nv = realloc(*v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	(*v)[*n] = strdup(path);
	if (!(*v)[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int prepare_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct prune *pr = ud;
	int r, lfd;

	if (e->depth == 0) {
		if (ev == WALK_DIR_PRE) {
			r = clean_at(pr, 0, false); /* the root always stays */
			if (r == 0)
				pr->cls[0] = POLICY_OTHER;
			return r;
		}
		return 0;
	}
	if (e->depth > PRUNE_MAX_DEPTH) {
		/* past any real tree's depth: stays (and so do its parents),
		 * so that the lists and prune_apply's walks from the root stay
		 * small for a hostile tree thousands of levels deep */
		pr->clean[PRUNE_MAX_DEPTH] = false;
		return ev == WALK_DIR_PRE ? WALK_SKIP : 0;
	}
	if (ev == WALK_ENTRY) {
		/* a symlink the lower can show as well is not the guest's own */
		if (S_ISLNK(e->st.st_mode) && e->st.st_nlink == 1 &&
		    classify(pr, e->path, pr->cls[e->depth - 1]) != POLICY_NEVER) {
			r = sync_link(pr, e, fdlevels_top(&pr->lower));
			if (r < 0)
				return r;
			if (r == 1)
				return list_add(&pr->out->links, &pr->out->n_links, &pr->out->links_cap,
				                e->path);
		}
		pr->clean[e->depth - 1] = false; /* one of the guest's own */
		return 0;
	}
	if (ev == WALK_DIR_PRE) {
		if (has_overlay_mark(e->fd)) {
			pr->clean[e->depth - 1] = false;
			return WALK_SKIP;
		}
		r = clean_at(pr, e->depth, true);
		if (r < 0)
			return r;
		pr->cls[e->depth] = classify(pr, e->path, pr->cls[e->depth - 1]);
		lfd = openat(fdlevels_top(&pr->lower), e->name,
		             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (lfd < 0) {
			if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
				return neg_errno();
			/* none, or a non-directory the upper directory hides:
			 * an empty lower directory adds nothing to the view */
			r = will_change(pr);
			if (r < 0)
				return r;
			lfd = layout_open_dir(fdlevels_top(&pr->lower), e->name);
			if (lfd < 0)
				return lfd;
		}
		return fdlevels_push(&pr->lower, lfd);
	}
	/* WALK_DIR_POST: its lower entries are final now */
	r = sync_attrs(pr, e->fd, &e->st, fdlevels_top(&pr->lower));
	if (r < 0)
		return r;
	if (r == 1 && pr->clean[e->depth])
		r = list_add(&pr->out->paths, &pr->out->n, &pr->out->cap, e->path);
	else
		pr->clean[e->depth - 1] = false;
	if (r < 0)
		return r;
	return fdlevels_drop(&pr->lower);
}

int prune_prepare(int upper_fd, int lower_fd, const struct policy *pol, int (*will_change_fn)(void *ud),
                  void *ud, struct prune_list *ret, int *ret_changed)
{
	struct prune pr = {.will_change = will_change_fn, .ud = ud, .out = ret, .pol = pol};
	int r = fdlevels_push(&pr.lower, lower_fd); /* level 0: not owned */

	if (r == 0)
		r = walk_tree(upper_fd, prepare_cb, &pr);
	fdlevels_release(&pr.lower);
	free(pr.clean);
	free(pr.cls);
	*ret_changed = pr.changed;
	if (r < 0)
		prune_list_free(ret);
	return r;
}

int prune_apply(int upper_fd, const struct prune_list *l, uint64_t *ret_removed, uint64_t *ret_blocks)
{
	*ret_removed = *ret_blocks = 0;
	for (size_t i = 0; i < l->n_links + l->n; i++) {
		bool is_link = i < l->n_links;
		const char *path = is_link ? l->links[i] : l->paths[i - l->n_links], *name;
		struct stat pst, st;
		_cleanup_close_ int pfd = open_parent_beneath(upper_fd, path, false, &name);

		if (pfd == -ENOENT)
			continue;
		if (pfd < 0)
			return pfd;
		if (fstat(pfd, &pst) < 0)
			return neg_errno();
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			return neg_errno();
		}
		if (is_link ? !S_ISLNK(st.st_mode) : !S_ISDIR(st.st_mode))
			continue;
		/* the lower entry shows the same from here on */
		if (unlinkat(pfd, name, is_link ? 0 : AT_REMOVEDIR) < 0) {
			if (errno == ENOTEMPTY || errno == EEXIST || errno == ENOENT)
				continue;
			return neg_errno();
		}
		(*ret_removed)++;
		*ret_blocks += (uint64_t)st.st_blocks;
		/* the parent's times as they were (a kill right before this
		 * leaves a newer directory mtime: prune.h) */
		{
			struct timespec ts[2] = {pst.st_atim, pst.st_mtim};
			if (futimens(pfd, ts) < 0)
				return neg_errno();
		}
	}
	return 0;
}

void prune_list_free(struct prune_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	for (size_t i = 0; i < l->n_links; i++)
		free(l->links[i]);
	free(l->paths);
	free(l->links);
	*l = (struct prune_list){0};
}
