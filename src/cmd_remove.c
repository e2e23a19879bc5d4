/* vunify remove. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gc.h"
#include "materialize.h"
#include "layout.h"
#include "overlay.h"
#include "remove.h"
#include "util.h"
#include "banned.h"

static void help(void)
{
	printf("usage: vunify [-p POOL] remove GUEST [--purge]\n\n"
	       "Unregister GUEST.  Without --purge its home is left holding the whole tree\n"
	       "as a plain standalone upper (HOME/upper): nothing is lost.  With --purge its\n"
	       "layers are deleted.  Objects it alone used are freed by the next 'gc'.\n");
}

int cmd_remove(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"purge", no_argument, NULL, 'P'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	bool purge = false;
	struct pool *p;
	struct guest *g;
	_cleanup_free_ char *upper = NULL;
	_cleanup_close_ int hfd = -1;
	uint64_t files = 0;
	int ch, r, ret = 1;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'P')
			purge = true;
		else if (ch == 'h') {
			help();
			return 0;
		} else
			return cli_usage("remove", "unknown option, or option without its argument: '%s'",
			                 argv[optind - 1]);
	}
	if (argc - optind != 1)
		return cli_usage("remove", "expected GUEST");
	if (cli_open_guest(c, "remove", POOL_LOCK_EXCLUSIVE, argv[optind], &p, &g, NULL))
		goto out;
	upper = path_join(g->home, HOME_UPPER);
	if (!upper) {
		cli_error("remove", g->name, -ENOMEM, NULL);
		goto out;
	}
	r = overlay_find_mounts(upper, NULL);
	if (r < 0) {
		cli_fail("remove '%s': cannot tell whether it is mounted: %s", g->name, strerror(-r));
		goto out;
	}
	if (r > 0) {
		cli_error("remove", g->name, -EBUSY, cli_hint(-EBUSY));
		goto out;
	}
	hfd = guest_open_home(p, g);
	if (hfd < 0 && !(purge && hfd == -ENOENT)) {
		cli_error("remove: home", g->home, hfd,
		          hfd == -ENOENT ? "not attached; attach it, or use --purge to drop the guest"
		                         : cli_hint(hfd));
		goto out;
	}
	if (purge) {
		bool in_home = false;
		r = guest_purge(p, g, hfd, &in_home);
		if (r < 0) {
			if (in_home)
				cli_error("remove: purge", g->home, r, NULL);
			else
				cli_error("remove: lower layer of", g->name, r, NULL);
			goto out;
		}
	} else {
		r = guest_materialize(p, g, hfd, &files);
		if (r < 0) {
			cli_error("remove", g->name, r,
			          r == -ENOSPC ? "the home's filesystem is full; the guest is unchanged"
			                       : NULL);
			goto out;
		}
	}
	r = pool_guest_unregister(p, g->name);
	if (r < 0) {
		cli_error("remove: unregister", g->name, r, NULL);
		goto out;
	}
	if (hfd >= 0)
		unlinkat(hfd, HOME_ID, 0);
	if (purge)
		printf("vunify: guest '%s' removed and its layers deleted\n", g->name);
	else
		printf("vunify: guest '%s' removed; %s holds its whole tree (%" PRIu64
		       " files copied back)\n",
		       g->name, upper, files);
	ret = 0;
out:
	guest_free(g);
	pool_close(p);
	return ret;
}
