/* vunify init: create a pool, choosing the layout by a real probe. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "overlay.h"
#include "util.h"
#include "banned.h"

static void help(void)
{
	printf("usage: vunify [-p POOL] init [--layout auto|redirect|link]\n\n"
	       "Create a pool.  'auto' (the default) mounts a tiny test overlay and picks\n"
	       "'redirect' when the kernel serves data-only lower layers (Linux 6.5+), else\n"
	       "'link'.\n");
}

int cmd_init(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"layout", required_argument, NULL, 'l'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	const char *layout = "auto";
	enum layout_kind kind; /* parsed below, or chosen by pool_create when auto */
	int ch, r, probe;

	while ((ch = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
		if (ch == 'l')
			layout = optarg;
		else if (ch == 'h') {
			help();
			return 0;
		} else
			return cli_usage("init", "unknown option, or option without its argument: '%s'",
			                 argv[optind - 1]);
	}
	if (optind != argc)
		return cli_usage("init", "unexpected argument '%s'", argv[optind]);
	if (strcmp(layout, "auto") && layout_from_name(layout, &kind) < 0)
		return cli_usage("init", "unknown layout '%s' (auto, redirect or link)", layout);
	if (geteuid() != 0)
		return cli_fail("init: must run as root (trusted.* xattrs, overlayfs mounts)");
	r = pool_create(c->pool_path, !strcmp(layout, "auto"), &kind, &probe);
	if (r == -EEXIST)
		return cli_error("init", c->pool_path, r, "a pool is already there");
	if (r == -ENOTEMPTY)
		return cli_error("init", c->pool_path, r, "directory holds other files");
	if (r == -EOPNOTSUPP && probe == 2)
		return cli_fail("init '%s': this kernel has no erofs (the redirect layout keeps each guest's "
		                "metadata in an EROFS image); use --layout link",
		                c->pool_path);
	if (r == -EOPNOTSUPP)
		return cli_fail("init '%s': this kernel cannot mount overlayfs data-only lower layers "
		                "(Linux 6.5+ needed for the redirect layout); use --layout link",
		                c->pool_path);
	if (r < 0)
		return cli_error("init", c->pool_path, r, NULL);
	printf("vunify: pool '%s' created, layout %s%s\n", c->pool_path, layout_name(kind),
	       probe == 1   ? ""
	       : probe == 2 ? " (kernel lacks erofs, which the redirect layout's metadata images need)"
	                    : " (kernel lacks overlayfs data-only lower layers)");
	return 0;
}
