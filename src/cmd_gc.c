/* vunify gc. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>

#include "cli.h"
#include "gc.h"
#include "util.h"
#include "banned.h"

int cmd_gc(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"dry-run", no_argument, NULL, 'n'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	struct gc_result res = {0};
	_cleanup_free_ char *what = NULL;
	bool dry_run = false;
	struct pool *p;
	char b1[32], b2[32];
	int ch, r;

	while ((ch = getopt_long(argc, argv, "nh", opts, NULL)) != -1) {
		if (ch == 'n')
			dry_run = true;
		else if (ch == 'h') {
			printf("usage: vunify [-p POOL] gc [--dry-run]\n\n"
			       "Delete objects no registered guest references.  A guest whose home is\n"
			       "not attached keeps its objects: the pool records what each guest needs.\n");
			return 0;
		} else
			return cli_usage("gc", "unknown option, or option without its argument: '%s'",
			                 argv[optind - 1]);
	}
	if (optind != argc)
		return cli_usage("gc", "unexpected argument '%s'", argv[optind]);
	p = cli_open_pool(c, POOL_LOCK_EXCLUSIVE);
	if (!p)
		return 1;
	r = gc_run(p, dry_run, &res, &what);
	pool_close(p);
	if (r == -ENODATA)
		return cli_fail(
		        "gc: guest '%s' has no record of its references and its home is not attached; "
		        "attach it or remove it first",
		        what ? what : "?");
	if (r < 0)
		return cli_error("gc", what, r, NULL);
	printf("gc: %s%" PRIu64 " objects (%s) %s, %" PRIu64 " kept (%s)", dry_run ? "would delete " : "",
	       res.objects_deleted, format_bytes(res.bytes_deleted, b1, sizeof(b1)), dry_run ? "" : "deleted",
	       res.objects_kept, format_bytes(res.bytes_kept, b2, sizeof(b2)));
	if (res.guests_detached)
		printf(", %" PRIu64 " guest(s) not attached: kept by the pool's record", res.guests_detached);
	putchar('\n');
	return 0;
}
