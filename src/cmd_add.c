/* vunify add: parse the arguments, call guest_add (lib/guest_add.c, where
 * the crash-safe order is written), print the outcome. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "guest.h"
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

/* The message for guest_add's failure R at RES->step; returns 1. */
static int add_failed(const char *name, const char *home_arg, const char *from,
                      const struct guest_add_result *res, int r)
{
	const char *home = res->home ? res->home : home_arg;
	const char *at = res->path ? res->path : from;

	switch (res->step) {
	case GUEST_ADD_EXISTS:
		return cli_fail("add '%s': guest already registered (home '%s')", name,
		                res->existing_home ? res->existing_home : "?");
	case GUEST_ADD_HOME:
		return cli_error("add: home", home, r, NULL);
	case GUEST_ADD_FOREIGN:
		return cli_fail("add '%s': home '%s' belongs to another guest or pool (%s)", name, home,
		                HOME_ID);
	case GUEST_ADD_TREE:
		return cli_error("add: tree", from, r, NULL);
	case GUEST_ADD_UPPER_FULL:
		return cli_fail("add '%s': '%s/%s' already holds a tree; drop --from to use it", name, home,
		                HOME_UPPER);
	case GUEST_ADD_DEVICE:
		return cli_fail("add '%s': '%s/%s': a character device 0:0 cannot be kept in an "
		                "overlayfs upper layer (it means 'deleted')",
		                name, from, res->path ? res->path : "");
	case GUEST_ADD_MOVING:
		return cli_error("add: move", at, r,
		                 r == -EXDEV ? "not on the home's filesystem; copy without --move" : NULL);
	case GUEST_ADD_CLEAN:
		return cli_error("add: remove unfinished copy in", home, r, NULL);
	case GUEST_ADD_COPYING:
		return cli_error("add: copy", at, r, r == -ENOSPC ? "the home's filesystem is full" : NULL);
	case GUEST_ADD_REGISTER:
		return cli_error("add: register", name, r, NULL);
	case GUEST_ADD_SETUP:
	default:
		return cli_error("add", home, r, NULL);
	}
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
	unsigned flags = 0;
	struct guest_add_result res = {0};
	struct pool *p;
	int ch, r, ret;

	while ((ch = getopt_long(argc, argv, "f:mh", opts, NULL)) != -1) {
		if (ch == 'f')
			from = optarg;
		else if (ch == 'm')
			flags |= GUEST_ADD_MOVE;
		else if (ch == 'h') {
			help();
			return 0;
		} else
			return cli_usage("add", "unknown option, or option without its argument: '%s'",
			                 argv[optind - 1]);
	}
	if (argc - optind != 2)
		return cli_usage("add", "expected GUEST HOME");
	if ((flags & GUEST_ADD_MOVE) && !from)
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
	r = guest_add(p, name, home_arg, from, flags, &res);
	if (res.resumed)
		printf("vunify: '%s/%s' is complete from an interrupted add; registering it\n", res.home,
		       HOME_UPPER);
	if (r < 0) {
		ret = add_failed(name, home_arg, from, &res, r);
	} else {
		printf("vunify: guest '%s' added, home '%s'\n", name, res.home);
		ret = 0;
	}
	guest_add_result_free(&res);
	pool_close(p);
	return ret;
}
