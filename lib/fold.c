/* Fold what overlayfs left in a guest's upper into its lower layer.
 *
 * A guest that ran leaves whiteouts (0:0 character devices, or empty files
 * with trusted.overlay.whiteout in a directory marked opaque="x") and
 * opaque directories (opaque="y") in its upper.  Each hides lower entries.
 * We delete the hidden lower entries first, make that durable, and only
 * then drop the whiteout or the opaque mark: in between, the whiteout hides
 * nothing, so the view never changes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "overlay.h"
#include "remove_tree.h"
#include "unify_internal.h"
#include "banned.h"

static int fold_record(struct fold_list *fl, const char *path, unsigned char kind)
{
	if (fl->n == fl->cap) {
		size_t nc = fl->cap ? fl->cap * 2 : 64;
		char **np = realloc(fl->paths, nc * sizeof(*np));
		unsigned char *nk;
		if (!np)
			return -ENOMEM;
		fl->paths = np;
		nk = realloc(fl->kinds, nc);
		if (!nk)
			return -ENOMEM;
		fl->kinds = nk;
		fl->cap = nc;
	}
	fl->paths[fl->n] = strdup(path);
	if (!fl->paths[fl->n])
		return -ENOMEM;
	fl->kinds[fl->n++] = kind;
	return 0;
}

/* Remove whatever the lower layer has at PATH. */
static int lower_remove(int lower_fd, const char *path)
{
	const char *name;
	int dfd = open_parent_beneath(lower_fd, path, false, &name), r;

	if (dfd == -ENOENT || dfd == -ENOTDIR)
		return 0; /* nothing there */
	if (dfd < 0)
		return dfd;
	r = remove_tree_at(dfd, name);
	close(dfd);
	return r;
}

static bool dir_has_xwhiteouts(int parent_fd)
{
	char v[4];
	ssize_t n = fgetxattr(parent_fd, OVL_XATTR_OPAQUE, v, sizeof(v));
	return n == 1 && v[0] == 'x';
}

static int is_xwhiteout(const struct walk_entry *e)
{
	_cleanup_close_ int fd = -1;

	if (!S_ISREG(e->st.st_mode) || e->st.st_size != 0 || !dir_has_xwhiteouts(e->parent_fd))
		return 0;
	fd = open_regular_at(e->parent_fd, e->name, O_RDONLY | O_NONBLOCK, NULL);
	if (changed_under_us(fd))
		return 0; /* no longer the empty file the walk saw */
	if (fd < 0)
		return fd;
	return fgetxattr(fd, OVL_XATTR_WHITEOUT, NULL, 0) >= 0;
}

/* If E is a whiteout (the guest deleted what the lower has here), remove
 * the lower entries it hides and record it: 1 if it was one, 0 if not, or
 * -errno.  Its removal from the upper waits for fold_finish. */
int fold_whiteout(struct guest_scan *gs, const struct walk_entry *e)
{
	int r = S_ISCHR(e->st.st_mode) && e->st.st_rdev == 0 ? 1 : is_xwhiteout(e);

	if (r <= 0)
		return r;
	r = lower_will_change(gs);
	if (r == 0)
		r = lower_remove(gs->lower_fd, e->path);
	if (r == 0)
		r = fold_record(&gs->folds, e->path, FOLD_WHITEOUT);
	return r < 0 ? r : 1;
}

/* An opaque directory hides the lower one: fold it (the lower entries go
 * now, the mark after that is durable). */
int fold_opaque_dir(struct guest_scan *gs, const char *path)
{
	int r = lower_will_change(gs);

	if (r == 0)
		r = lower_remove(gs->lower_fd, path);
	return r < 0 ? r : fold_record(&gs->folds, path, FOLD_OPAQUE);
}

/* Is (dir_fd, name) with stat ST a whiteout: a 0:0 character device, or an
 * empty regular file carrying trusted.overlay.whiteout? */
static bool still_whiteout(int dir_fd, const char *name, const struct stat *st)
{
	_cleanup_close_ int fd = -1;

	if (S_ISCHR(st->st_mode))
		return st->st_rdev == 0;
	if (!S_ISREG(st->st_mode) || st->st_size != 0)
		return false;
	fd = open_regular_at(dir_fd, name, O_RDONLY | O_NONBLOCK, NULL);
	return fd >= 0 && fgetxattr(fd, OVL_XATTR_WHITEOUT, NULL, 0) >= 0;
}

/* After the scan found them: drop the whiteouts and opaque marks whose
 * lower entries it removed, once that removal is durable. */
int fold_finish(struct guest_scan *gs)
{
	struct fold_list fl = gs->folds;
	int r = 0;

	memset(&gs->folds, 0, sizeof(gs->folds));
	if (fl.n)
		r = syncfs(gs->lower_fd) < 0 ? neg_errno() : 0;
	/* the home's description of the lower layer says so too, durably,
	 * before the whiteouts that hide the deleted entries go */
	if (r == 0 && fl.n && gs->describe) {
		const char **none = calloc(fl.n, sizeof(*none));
		r = none ? lowerlist_append(gs->home_fd, none, (const char *const *)fl.paths, fl.n) : -ENOMEM;
		free(none);
	}
	for (size_t i = 0; i < fl.n && r == 0; i++) {
		const char *name;
		struct stat st;
		_cleanup_close_ int dfd = open_parent_beneath(gs->upper_fd, fl.paths[i], false, &name);
		if (dfd < 0) {
			r = dfd;
			break;
		}
		if (fl.kinds[i] == FOLD_WHITEOUT) {
			/* only if it still is a whiteout: a file recreated at
			 * that path since the scan is the guest's */
			if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    still_whiteout(dfd, name, &st) && unlinkat(dfd, name, 0) < 0)
				r = neg_errno();
			fl.whiteouts++;
		} else {
			_cleanup_close_ int fd =
			        openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0 || (fremovexattr(fd, OVL_XATTR_OPAQUE) < 0 && errno != ENODATA))
				r = neg_errno();
			fl.opaques++;
		}
	}
	if (r == 0 && fl.n)
		r = syncfs(gs->upper_fd) < 0 ? neg_errno() : 0;
	gs->res->whiteouts_folded = fl.whiteouts;
	gs->res->opaque_folded = fl.opaques;
	fold_list_free(&fl);
	return r;
}

void fold_list_free(struct fold_list *fl)
{
	for (size_t i = 0; i < fl->n; i++)
		free(fl->paths[i]);
	free(fl->paths);
	free(fl->kinds);
}
