/* vunify add: register a guest and (optionally) bring its tree in.
 *
 * Order, for crash safety: the home's id file is written, the tree is
 * copied into HOME/upper.new and made durable, renamed to HOME/upper, and
 * only then the guest registered.  Re-running after a crash starts the
 * copy over (the source is untouched), or, when the id says the home is
 * this guest's and upper is complete, finishes the registration. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "copy.h"
#include "layout.h"
#include "remove.h"
#include "unify.h"
#include "util.h"
#include "banned.h"

static void help(void)
{
	printf("usage: vunify [-p POOL] add GUEST HOME [--from TREE [--move]]\n\n"
	       "Register GUEST with its home directory HOME (created if missing).\n"
	       "HOME/upper holds the guest's tree; without --from it is used as it is\n"
	       "(an empty one is created if missing).\n\n"
	       "  --from TREE   copy TREE faithfully into HOME/upper (owners, modes, times,\n"
	       "                xattrs incl. ACLs and capabilities, hard links, sparse files,\n"
	       "                devices, fifos, sockets)\n"
	       "  --move        rename TREE into place instead of copying (same filesystem)\n");
}

/* Absolute path of HOME, creating it and its parents if missing. */
static char *make_home(const char *home, int *ret_r)
{
	_cleanup_free_ char *tmp = strdup(home);
	char *abs;

	if (!tmp) {
		*ret_r = -ENOMEM;
		return NULL;
	}
	/* mkdir -p: parents 0755, the home itself 0700 */
	for (char *s = tmp + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
			*ret_r = neg_errno();
			return NULL;
		}
		*s = '/';
	}
	if (mkdir(home, 0700) < 0 && errno != EEXIST) {
		*ret_r = neg_errno();
		return NULL;
	}
	abs = realpath(home, NULL);
	if (!abs)
		*ret_r = neg_errno();
	return abs;
}

static int dir_is_empty(int dfd, const char *name)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return neg_errno();
	d = fdopendir(fd);
	if (!d) {
		int r = neg_errno();
		close(fd);
		return r;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			return 0;
	return 1;
}

int cmd_add(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"from", required_argument, NULL, 'f'},
	        {"move", no_argument, NULL, 'm'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	const char *from = NULL, *name, *home_arg;
	bool move = false;
	struct pool *p = NULL;
	struct guest *existing = NULL;
	_cleanup_free_ char *home = NULL, *failpath = NULL;
	_cleanup_close_ int home_fd = -1, src_fd = -1;
	char id[256];
	struct stat st;
	int ch, r, ret = 1;

	while ((ch = getopt_long(argc, argv, "f:mh", opts, NULL)) != -1) {
		if (ch == 'f')
			from = optarg;
		else if (ch == 'm')
			move = true;
		else if (ch == 'h') {
			help();
			return 0;
		} else
			return cli_usage("add", "unknown option, or option without its argument: '%s'",
			                 argv[optind - 1]);
	}
	if (argc - optind != 2)
		return cli_usage("add", "expected GUEST HOME");
	if (move && !from)
		return cli_usage("add", "--move needs --from");
	name = argv[optind];
	home_arg = argv[optind + 1];
	if (!guest_name_valid(name))
		return cli_fail("add '%s': invalid guest name (letters, digits, '.', '_', '-'; "
		                "first a letter or digit; at most 64)",
		                name);
	p = cli_open_pool(c, POOL_LOCK_EXCLUSIVE);
	if (!p)
		return 1;
	r = pool_guest_load(p, name, &existing);
	if (r == 0) {
		cli_fail("add '%s': guest already registered (home '%s')", name, existing->home);
		goto out;
	}
	home = make_home(home_arg, &r);
	if (!home) {
		cli_error("add: home", home_arg, r, NULL);
		goto out;
	}
	home_fd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (home_fd < 0) {
		cli_error("add: home", home, neg_errno(), NULL);
		goto out;
	}
	snprintf(id, sizeof(id), "pool %s\nguest %s\n", p->id, name);
	{
		_cleanup_free_ char *old = NULL;
		if (read_file_at(home_fd, HOME_ID, 4096, &old, NULL) == 0) {
			if (strcmp(old, id)) {
				cli_fail("add '%s': home '%s' belongs to another guest or pool (%s)", name,
				         home, HOME_ID);
				goto out;
			}
			/* An earlier add of this guest got past the copy (upper
			 * is renamed into place only when complete) but was
			 * stopped before registering: finish that. */
			if (from && faccessat(home_fd, HOME_UPPER, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
			    faccessat(home_fd, HOME_UPPER ".new", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
				printf("vunify: '%s/%s' is complete from an interrupted add; registering "
				       "it\n",
				       home, HOME_UPPER);
				from = NULL;
				move = false;
			}
		}
	}
	/* The id first: it marks the home as this guest's while the tree is
	 * copied in, so a re-run after a crash knows the upper is its own. */
	r = write_file_atomic_at(home_fd, HOME_ID, id, strlen(id), 0644);
	if (r < 0) {
		cli_error("add", home, r, NULL);
		goto out;
	}
	if (from) {
		src_fd = open(from, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (src_fd < 0) {
			cli_error("add: tree", from, neg_errno(), NULL);
			goto out;
		}
		if (fstatat(home_fd, HOME_UPPER, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    dir_is_empty(home_fd, HOME_UPPER) != 1) {
			cli_fail("add '%s': '%s/%s' already holds a tree; drop --from to use it", name, home,
			         HOME_UPPER);
			goto out;
		}
		if (unlinkat(home_fd, HOME_UPPER, AT_REMOVEDIR) < 0 && errno != ENOENT) {
			cli_error("add", home, neg_errno(), NULL);
			goto out;
		}
		if (move) {
			/* The copy's rule, applied in place before the rename:
			 * refuse a 0:0 character device, drop trusted.overlay.*
			 * (a crash in between leaves the tree where it was, less
			 * what a copy would have left out; a re-run finishes). */
			r = tree_prepare_move(src_fd, &failpath);
			if (r == -EINVAL) {
				cli_fail("add '%s': '%s/%s': a character device 0:0 cannot be kept in an "
				         "overlayfs upper layer (it means 'deleted')",
				         name, from, failpath ? failpath : "");
				goto out;
			} else if (r < 0) {
				cli_error("add: move", failpath ? failpath : from, r, NULL);
				goto out;
			}
			if (renameat(AT_FDCWD, from, home_fd, HOME_UPPER) < 0) {
				r = neg_errno();
				cli_error("add: move", from, r,
				          r == -EXDEV ? "not on the home's filesystem; copy without --move"
				                      : NULL);
				goto out;
			}
		} else {
			_cleanup_close_ int dst = -1;
			r = remove_tree_at(home_fd, HOME_UPPER ".new");
			if (r < 0) {
				cli_error("add: remove unfinished copy in", home, r, NULL);
				goto out;
			}
			if (mkdirat(home_fd, HOME_UPPER ".new", 0755) < 0) {
				cli_error("add", home, neg_errno(), NULL);
				goto out;
			}
			dst = openat(home_fd, HOME_UPPER ".new",
			             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (dst < 0) {
				cli_error("add", home, neg_errno(), NULL);
				goto out;
			}
			r = copy_tree(src_fd, dst, COPY_TREE_DEFAULT, &failpath);
			if (r < 0) {
				if (r == -EINVAL)
					cli_fail("add '%s': '%s/%s': a character device 0:0 cannot be kept "
					         "in an "
					         "overlayfs upper layer (it means 'deleted')",
					         name, from, failpath ? failpath : "");
				else
					cli_error("add: copy", failpath ? failpath : from, r,
					          r == -ENOSPC ? "the home's filesystem is full" : NULL);
				remove_tree_at(home_fd, HOME_UPPER ".new");
				goto out;
			}
			if (syncfs(dst) < 0 ||
			    renameat(home_fd, HOME_UPPER ".new", home_fd, HOME_UPPER) < 0) {
				cli_error("add", home, neg_errno(), NULL);
				goto out;
			}
		}
	} else if (mkdirat(home_fd, HOME_UPPER, 0755) < 0 && errno != EEXIST) {
		cli_error("add", home, neg_errno(), NULL);
		goto out;
	}
	if ((mkdirat(home_fd, HOME_WORK, 0700) < 0 && errno != EEXIST) ||
	    (mkdirat(home_fd, HOME_STAGING, 0700) < 0 && errno != EEXIST))
		r = neg_errno();
	else
		r = layout_ops_for(p)->init_home(home_fd);
	if (r < 0) {
		cli_error("add", home, r, NULL);
		goto out;
	}
	r = syncfs(home_fd) < 0 ? neg_errno() : 0;
	if (r < 0) {
		cli_error("add", home, r, NULL);
		goto out;
	}
	r = pool_guest_register(p, name, home);
	if (r < 0) {
		cli_error("add: register", name, r, NULL);
		goto out;
	}
	{
		struct guest *g = NULL;
		if (pool_guest_load(p, name, &g) == 0) {
			/* figures for status; a failure here loses nothing */
			(void)guest_refresh_stats(p, g, home_fd, NULL);
			guest_free(g);
		}
	}
	printf("vunify: guest '%s' added, home '%s'\n", name, home);
	ret = 0;
out:
	guest_free(existing);
	pool_close(p);
	return ret;
}
