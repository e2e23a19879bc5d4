/* vunify remove: parse, call guest_remove (lib/guest_remove.c), print. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli.h"
#include "guest.h"
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
	unsigned flags = 0;
	struct guest_remove_result res;
	struct pool *p;
	struct guest *g;
	int ch, r, ret = 1;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'P')
			flags |= GUEST_REMOVE_PURGE;
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
	r = guest_remove(p, g, flags, &res);
	if (r == 0) {
		if (flags & GUEST_REMOVE_PURGE)
			printf("vunify: guest '%s' removed and its layers deleted\n", g->name);
		else
			printf("vunify: guest '%s' removed; %s/%s holds its whole tree (%" PRIu64
			       " files copied back)\n",
			       g->name, g->home, HOME_UPPER, res.files);
		ret = 0;
	} else if (res.step == GUEST_REMOVE_MOUNTS && r == -EBUSY) {
		cli_error("remove", g->name, r, cli_hint(r));
	} else if (res.step == GUEST_REMOVE_MOUNTS) {
		cli_fail("remove '%s': cannot tell whether it is mounted: %s", g->name, strerror(-r));
	} else if (res.step == GUEST_REMOVE_HOME) {
		cli_error("remove: home", g->home, r,
		          r == -ENOENT ? "not attached; attach it, or use --purge to drop the guest"
		                       : cli_hint(r));
	} else if (res.step == GUEST_REMOVE_PURGE_HOME) {
		cli_error("remove: purge", g->home, r, NULL);
	} else if (res.step == GUEST_REMOVE_LAYERS && (flags & GUEST_REMOVE_PURGE)) {
		cli_error("remove: lower layer of", g->name, r, NULL);
	} else if (res.step == GUEST_REMOVE_LAYERS) {
		cli_error("remove", g->name, r,
		          r == -ENOSPC ? "the home's filesystem is full; the guest is unchanged" : NULL);
	} else {
		cli_error("remove: unregister", g->name, r, NULL);
	}
out:
	guest_free(g);
	pool_close(p);
	return ret;
}
