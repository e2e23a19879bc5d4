/* vunify mount / umount. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "overlay.h"
#include "util.h"
#include "banned.h"

static int simple_opts(const char *cmd, int argc, char **argv, const char *usage_text)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	int ch;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			fputs(usage_text, stdout);
			return 0;
		}
		return cli_usage(cmd, "bad option");
	}
	return -1;
}

int cmd_mount(const struct cli *c, int argc, char **argv)
{
	struct pool *p;
	struct guest *g = NULL;
	_cleanup_free_ char *upper = NULL, *work = NULL, *lower = NULL, *data = NULL, *opts = NULL,
	                    *target = NULL, *existing = NULL;
	_cleanup_close_ int home_fd = -1, lower_fd = -1;
	int r, ret = 1;

	r = simple_opts("mount", argc, argv,
	                "usage: vunify [-p POOL] mount GUEST TARGET\n\n"
	                "Mount GUEST's merged root (lower layer + its upper) at TARGET.\n");
	if (r >= 0)
		return r;
	if (argc - optind != 2)
		return cli_usage("mount", "expected GUEST TARGET");
	p = cli_open_pool(c, POOL_LOCK_SHARED);
	if (!p)
		return 1;
	r = pool_guest_load(p, argv[optind], &g);
	if (r < 0) {
		cli_error("mount", argv[optind], r, r == -ENOENT ? "no such guest" : NULL);
		goto out;
	}
	home_fd = guest_open_home(p, g);
	if (home_fd < 0) {
		cli_error("mount: home", g->home, home_fd, cli_hint(home_fd));
		goto out;
	}
	target = realpath(argv[optind + 1], NULL);
	if (!target) {
		cli_error("mount: target", argv[optind + 1], neg_errno(), NULL);
		goto out;
	}
	upper = path_join(g->home, HOME_UPPER);
	work = path_join(g->home, HOME_WORK);
	if (!upper || !work)
		goto out;
	r = overlay_find_mounts(upper, &existing);
	if (r > 0) {
		cli_fail("mount '%s': already mounted at '%s'", g->name, existing);
		goto out;
	}
	if (mkdirat(home_fd, HOME_WORK, 0700) < 0 && errno != EEXIST) {
		cli_error("mount: work", work, neg_errno(), NULL);
		goto out;
	}
	lower_fd = guest_open_lower(p, g, home_fd, true);
	if (lower_fd < 0) {
		cli_error("mount: lower layer of", g->name, lower_fd, NULL);
		goto out;
	}
	if (p->layout == LAYOUT_REDIRECT) {
		lower = path_join(g->home, HOME_META);
		data = path_join(p->path, "objects");
	} else {
		_cleanup_free_ char *roots = path_join(p->path, "roots");
		lower = roots ? path_join(roots, g->name) : NULL;
	}
	if (!lower || (p->layout == LAYOUT_REDIRECT && !data))
		goto out;
	opts = overlay_options(lower, data, upper, work);
	if (!opts)
		goto out;
	r = overlay_mount(opts, target);
	if (r < 0) {
		cli_error("mount", g->name, r, r == -EINVAL ? "kernel refused the overlay; see dmesg" : NULL);
		goto out;
	}
	ret = 0;
out:
	guest_free(g);
	pool_close(p);
	return ret;
}

int cmd_umount(const struct cli *c, int argc, char **argv)
{
	struct pool *p;
	struct guest *g = NULL;
	_cleanup_free_ char *upper = NULL;
	int r, ret = 1, n = 0;

	r = simple_opts(
	        "umount", argc, argv,
	        "usage: vunify [-p POOL] umount GUEST\n\nUnmount every mount of GUEST's merged root.\n");
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return cli_usage("umount", "expected GUEST");
	p = cli_open_pool(c, POOL_LOCK_SHARED);
	if (!p)
		return 1;
	r = pool_guest_load(p, argv[optind], &g);
	if (r < 0) {
		cli_error("umount", argv[optind], r, r == -ENOENT ? "no such guest" : NULL);
		goto out;
	}
	upper = path_join(g->home, HOME_UPPER);
	if (!upper)
		goto out;
	for (;;) {
		_cleanup_free_ char *target = NULL;
		r = overlay_find_mounts(upper, &target);
		if (r < 0) {
			cli_error("umount", g->name, r, NULL);
			goto out;
		}
		if (r == 0)
			break;
		r = overlay_umount(target);
		if (r < 0) {
			cli_error("umount", target, r, NULL);
			goto out;
		}
		n++;
	}
	if (n == 0) {
		cli_fail("umount '%s': not mounted", g->name);
		goto out;
	}
	ret = 0;
out:
	guest_free(g);
	pool_close(p);
	return ret;
}
