/* vunify send (the order of its steps: lib/send.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lowerlist.h"
#include "overlay.h"
#include "replica.h"
#include "send.h"
#include "util.h"
#include "banned.h"

static void help(void)
{
	printf("usage: vunify [-p POOL] send GUEST [user@]HOST:HOME [--pool DIR]\n\n"
	       "Copy the unmounted GUEST to another host's pool (DIR there; default: the\n"
	       "remote vunify's default pool): the objects it needs that the pool there\n"
	       "lacks, then its home to HOME there (sparse files, hard links, xattrs, ACLs\n"
	       "and devices kept), then 'vunify adopt GUEST HOME' there.  HOME must not be\n"
	       "another guest's home.  The guest here is left as it was.\n");
}

int cmd_send(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"pool", required_argument, NULL, 'p'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	const char *rpool = NULL, *name;
	struct target dest = {0}, pt = {0};
	struct guest *g = NULL;
	struct nameset have = {0};
	_cleanup_free_ char *upper = NULL, *rpath = NULL;
	char **need = NULL, **miss = NULL, why[160];
	size_t nn = 0, nm = 0;
	struct pool *p = NULL;
	int ch, r, status = 0, ret = 1;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'p')
			rpool = optarg;
		else if (ch == 'h') {
			help();
			return 0;
		} else
			return cli_usage("send", "bad option");
	}
	if (argc - optind != 2)
		return cli_usage("send", "expected GUEST [user@]HOST:HOME");
	name = argv[optind];
	r = target_parse(argv[optind + 1], &dest);
	if (r < 0 || dest.dir[0] != '/') {
		if (r == 0)
			target_free(&dest);
		return cli_usage("send", "expected [user@]HOST:HOME with an absolute HOME, or a local HOME");
	}
	/* exclusive: no unify may change the guest while it travels */
	if (cli_open_guest(c, "send", POOL_LOCK_EXCLUSIVE, name, &p, &g, NULL))
		goto out;
	upper = path_join(g->home, HOME_UPPER);
	if (!upper) {
		cli_error("send", name, -ENOMEM, NULL);
		goto out;
	}
	r = overlay_find_mounts(upper, NULL);
	if (r != 0) {
		cli_error("send", name, r > 0 ? -EBUSY : r, cli_hint(-EBUSY));
		goto out;
	}
	/* 1. link layout: the lower layer described in the home */
	r = guest_describe_lower(p, name);
	if (r < 0) {
		cli_error("send: describe the lower layer of", name, r, cli_hint(r));
		goto out;
	}
	/* 2. the objects the pool there lacks */
	pt.host = dest.host;
	pt.dir = (char *)(rpool ? rpool : (dest.host ? "" : NULL));
	pt.spec = argv[optind + 1];
	if (!pt.dir) {
		cli_usage("send", "a local HOME needs --pool DIR");
		pt = (struct target){0};
		goto out;
	}
	r = guests_objects(p, (char *const *)&name, 1, &need, &nn);
	if (r == 0)
		r = replica_names_at(&pt, p->layout, &have, &rpath, &status);
	if (r < 0) {
		cli_fail("send '%s': ask the pool there: %s", name,
		         r == -EHOSTUNREACH ? "ssh or the remote vunify failed"
		         : r == -EPROTOTYPE ? "not a pool of this pool's layout"
		                            : strerror(-r));
		goto out_pt;
	}
	if (!rpath) {
		cli_fail("send '%s': the vunify there did not name its pool (give --pool DIR)", name);
		goto out_pt;
	}
	miss = malloc((nn + 1) * sizeof(*miss));
	if (!miss) {
		cli_error("send", name, -ENOMEM, NULL);
		goto out_pt;
	}
	for (size_t i = 0; i < nn; i++)
		if (!nameset_has(&have, need[i]))
			miss[nm++] = need[i];
	pt.dir = rpath;
	for (size_t k = 0; k < nm; k += 65536) {
		r = replica_send(p, &pt, miss + k, MIN((size_t)65536, nm - k), &status);
		if (r < 0) {
			snprintf(why, sizeof(why), "rsync exit %d", status);
			cli_fail("send '%s': objects to '%s': %s", name, rpath,
			         r == -EHOSTUNREACH ? why : strerror(-r));
			goto out_pt;
		}
	}
	printf("%s: %zu objects sent, %zu already there\n", name, nm, nn - nm);
	fflush(stdout);
	/* 3. the home */
	r = home_send(g->home, &dest, &status);
	if (r < 0) {
		snprintf(why, sizeof(why), "rsync exit %d", status);
		cli_fail("send '%s': home to '%s': %s", name, argv[optind + 1],
		         r == -EHOSTUNREACH ? why : strerror(-r));
		goto out_pt;
	}
	printf("%s: home copied to %s\n", name, argv[optind + 1]);
	fflush(stdout);
	/* 4. adopt there */
	{
		char *args[] = {"-p", rpath, "adopt", (char *)name, dest.dir, NULL};
		r = remote_vunify(&dest, args, &status);
		if (r < 0 || status != 0) {
			cli_fail("send '%s': adopt on the other host failed (%s)", name,
			         r < 0 ? strerror(-r) : "see its message above");
			goto out_pt;
		}
	}
	ret = 0;
out_pt:
	pt = (struct target){0};
out:
	free(miss);
	names_free(need);
	nameset_free(&have);
	guest_free(g);
	target_free(&dest);
	pool_close(p);
	return ret;
}
