/* vunify export. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "export.h"
#include "util.h"
#include "banned.h"

int cmd_export(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	_cleanup_free_ char *path = NULL;
	struct pool *p;
	struct guest *g;
	int ch, r, hfd, ret = 1;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			printf("usage: vunify [-p POOL] export GUEST DEST\n\n"
			       "Write GUEST's whole merged tree to DEST (which must not exist) as a plain\n"
			       "standalone tree: the way to move a guest off the pool.\n");
			return 0;
		}
		return cli_usage("export", "unknown option, or option without its argument: '%s'",
		                 argv[optind - 1]);
	}
	if (argc - optind != 2)
		return cli_usage("export", "expected GUEST DEST");
	/* the home must be attached (opened and checked, then closed) */
	if (cli_open_guest(c, "export", POOL_LOCK_SHARED, argv[optind], &p, &g, &hfd))
		goto out;
	close(hfd);
	r = guest_export(p, g, argv[optind + 1], &path);
	if (r < 0) {
		cli_error("export", path ? path : argv[optind + 1], r,
		          r == -EEXIST ? "destination exists" : NULL);
		goto out;
	}
	printf("vunify: guest '%s' exported to '%s'\n", g->name, argv[optind + 1]);
	ret = 0;
out:
	guest_free(g);
	pool_close(p);
	return ret;
}
