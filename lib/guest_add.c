/* Adding a guest: its home, its tree, its registration.
 *
 * Order, for crash safety:
 *  1. the home is created and its id file (HOME/vunify-guest, "pool ID,
 *     guest NAME") written: it marks the home as this guest's while the
 *     tree comes in, so a re-run knows an upper there is its own;
 *  2. the tree is copied into HOME/upper.new, made durable (syncfs) and
 *     renamed to HOME/upper (or, with --move, renamed there directly): an
 *     upper exists only complete;
 *  3. work/, staging/ and the layout's part of the home are made, and the
 *     home synced;
 *  4. only then is the guest registered in the pool.
 * Dying after 1 or in 2 leaves the source untouched and a re-run starts the
 * copy over (upper.new is removed); dying after 2 or 3 leaves a complete
 * upper that a re-run registers as it is (ret->resumed); after 4 the guest
 * exists. */
#define _GNU_SOURCE
#include "guest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"
#include "layout.h"
#include "remove_tree.h"
#include "unify.h"
#include "util.h"
#include "banned.h"

void guest_add_result_free(struct guest_add_result *r)
{
	free(r->home);
	free(r->existing_home);
	free(r->path);
	*r = (struct guest_add_result){0};
}

/* Absolute path of HOME, creating it and its parents if missing. */
static int make_home(const char *home, char **ret_abs)
{
	_cleanup_free_ char *tmp = strdup(home);

	if (!tmp)
		return -ENOMEM;
	/* mkdir -p: parents 0755, the home itself 0700 */
	for (char *s = tmp + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return neg_errno();
		*s = '/';
	}
	if (mkdir(home, 0700) < 0 && errno != EEXIST)
		return neg_errno();
	*ret_abs = realpath(home, NULL);
	return *ret_abs ? 0 : neg_errno();
}

/* 1 if NAME under dfd is an empty directory, 0 if not, or -errno. */
static int dir_is_empty(int dfd, const char *name)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r = opendir_at(dfd, name, &d);

	if (r < 0)
		return r;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			return 0;
	return 1;
}

/* Step 2 with --move: FROM itself becomes HOME/upper. */
static int move_tree(int src_fd, const char *from, int home_fd, struct guest_add_result *ret)
{
	int r;

	/* The copy's rule, applied in place before the rename: refuse a 0:0
	 * character device, drop trusted.overlay.* (a crash in between leaves
	 * the tree where it was, less what a copy would have left out; a
	 * re-run finishes). */
	ret->step = GUEST_ADD_MOVING;
	r = tree_prepare_move(src_fd, &ret->path);
	if (r == -EINVAL)
		ret->step = GUEST_ADD_DEVICE;
	if (r < 0)
		return r;
	if (renameat(AT_FDCWD, from, home_fd, HOME_UPPER) < 0)
		return neg_errno();
	return 0;
}

/* Step 2: copy FROM into HOME/upper.new, sync, rename to HOME/upper. */
static int copy_in(int src_fd, int home_fd, struct guest_add_result *ret)
{
	_cleanup_close_ int dst = -1;
	int r;

	ret->step = GUEST_ADD_CLEAN;
	r = remove_tree_at(home_fd, HOME_UPPER ".new");
	if (r < 0)
		return r;
	ret->step = GUEST_ADD_SETUP;
	if (mkdirat(home_fd, HOME_UPPER ".new", 0755) < 0)
		return neg_errno();
	dst = openat(home_fd, HOME_UPPER ".new", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0)
		return neg_errno();
	r = copy_tree(src_fd, dst, COPY_TREE_DEFAULT, &ret->path);
	if (r < 0) {
		ret->step = r == -EINVAL ? GUEST_ADD_DEVICE : GUEST_ADD_COPYING;
		remove_tree_at(home_fd, HOME_UPPER ".new");
		return r;
	}
	ret->step = GUEST_ADD_SETUP;
	if (syncfs(dst) < 0 || renameat(home_fd, HOME_UPPER ".new", home_fd, HOME_UPPER) < 0)
		return neg_errno();
	return 0;
}

/* Contract in guest.h. */
int guest_add(struct pool *p, const char *name, const char *home, const char *from, unsigned flags,
              struct guest_add_result *ret)
{
	struct guest *g = NULL;
	_cleanup_close_ int home_fd = -1, src_fd = -1;
	_cleanup_free_ char *old = NULL;
	bool move = flags & GUEST_ADD_MOVE;
	char id[256];
	struct stat st;
	int r;

	*ret = (struct guest_add_result){.step = GUEST_ADD_EXISTS};
	if (pool_guest_load(p, name, &g) == 0) {
		ret->existing_home = strdup(g->home);
		guest_free(g);
		return -EEXIST;
	}
	ret->step = GUEST_ADD_HOME;
	r = make_home(home, &ret->home);
	if (r < 0)
		return r;
	home_fd = open(ret->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (home_fd < 0)
		return neg_errno();
	snprintf(id, sizeof(id), "pool %s\nguest %s\n", p->id, name);
	if (read_file_at(home_fd, HOME_ID, 4096, &old, NULL) == 0) {
		if (strcmp(old, id)) {
			ret->step = GUEST_ADD_FOREIGN;
			return -ESTALE;
		}
		/* An earlier add of this guest got past the copy (upper is
		 * renamed into place only when complete) but was stopped
		 * before registering: finish that. */
		if (from && faccessat(home_fd, HOME_UPPER, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
		    faccessat(home_fd, HOME_UPPER ".new", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
			ret->resumed = true;
			from = NULL;
			move = false;
		}
	}
	/* 1. the id first */
	ret->step = GUEST_ADD_SETUP;
	r = write_file_atomic_at(home_fd, HOME_ID, id, strlen(id), 0644);
	if (r < 0)
		return r;
	/* 2. the tree */
	if (from) {
		ret->step = GUEST_ADD_TREE;
		src_fd = open(from, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (src_fd < 0)
			return neg_errno();
		if (fstatat(home_fd, HOME_UPPER, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    dir_is_empty(home_fd, HOME_UPPER) != 1) {
			ret->step = GUEST_ADD_UPPER_FULL;
			return -ENOTEMPTY;
		}
		ret->step = GUEST_ADD_SETUP;
		if (unlinkat(home_fd, HOME_UPPER, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return neg_errno();
		r = move ? move_tree(src_fd, from, home_fd, ret) : copy_in(src_fd, home_fd, ret);
		if (r < 0)
			return r;
	} else if (mkdirat(home_fd, HOME_UPPER, 0755) < 0 && errno != EEXIST) {
		return neg_errno();
	}
	/* 3. the rest of the home, durable */
	ret->step = GUEST_ADD_SETUP;
	if ((mkdirat(home_fd, HOME_WORK, 0700) < 0 && errno != EEXIST) ||
	    (mkdirat(home_fd, HOME_STAGING, 0700) < 0 && errno != EEXIST))
		return neg_errno();
	r = layout_ops_for(p)->init_home(home_fd);
	if (r < 0)
		return r;
	if (syncfs(home_fd) < 0)
		return neg_errno();
	/* 4. registered: from now on the guest exists */
	ret->step = GUEST_ADD_REGISTER;
	r = pool_guest_register(p, name, ret->home);
	if (r < 0)
		return r;
	if (pool_guest_load(p, name, &g) == 0) {
		/* figures for status; a failure here loses nothing */
		(void)guest_refresh_stats(p, g, home_fd, NULL);
		guest_free(g);
	}
	return 0;
}
