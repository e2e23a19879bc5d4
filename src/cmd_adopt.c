/* vunify adopt. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "adopt.h"
#include "cli.h"
#include "util.h"
#include "banned.h"

#define SHOW_MAX 10

static void help(void)
{
	printf("usage: vunify [-p POOL] adopt GUEST HOME [--verify]\n\n"
	       "Register HOME, which already holds a guest's layers made by another pool\n"
	       "(its partition failed over here, or it came by 'send'), as GUEST.  Refused,\n"
	       "with nothing changed, unless every object its lower layer references is in\n"
	       "this pool; the first missing ones are listed ('vunify replicate' on the\n"
	       "other host sends them).  Then 'vunify mount GUEST TARGET' works.\n\n"
	       "  --verify   also re-hash exactly the objects the guest needs\n");
}

static void show(const char *what, char **v, size_t n)
{
	for (size_t i = 0; i < n && i < SHOW_MAX; i++)
		fprintf(stderr, "  %s %s\n", what, v[i]);
	if (n > SHOW_MAX)
		fprintf(stderr, "  ... and %zu more\n", n - SHOW_MAX);
}

int cmd_adopt(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"verify", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	struct adopt_report rep = {0};
	bool verify = false;
	struct pool *p;
	int ch, r;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'v')
			verify = true;
		else if (ch == 'h') {
			help();
			return 0;
		} else
			return cli_usage("adopt", "bad option");
	}
	if (argc - optind != 2)
		return cli_usage("adopt", "expected GUEST HOME");
	p = cli_open_pool(c, POOL_LOCK_EXCLUSIVE);
	if (!p)
		return 1;
	r = guest_adopt(p, argv[optind], argv[optind + 1], verify, &rep);
	switch (r) {
	case 0:
		printf("%s: adopted, home %s, %zu objects referenced, all here%s\n", argv[optind],
		       argv[optind + 1], rep.needed, verify ? " and intact" : "");
		break;
	case -EEXIST:
		cli_fail("adopt '%s': a guest of that name is already registered in pool '%s'", argv[optind],
		         p->path);
		break;
	case -ENOMEDIUM:
		cli_fail("adopt '%s': '%s' is not a guest's home (no %s file)", argv[optind],
		         argv[optind + 1], HOME_ID);
		break;
	case -EPROTONOSUPPORT:
		cli_fail("adopt '%s': home '%s' has a format this vunify does not know (it knows format %d)",
		         argv[optind], argv[optind + 1], HOME_FORMAT);
		break;
	case -EPROTOTYPE:
		cli_fail("adopt '%s': home '%s' was made by a pool of another layout than this %s pool",
		         argv[optind], argv[optind + 1], layout_name(p->layout));
		break;
	case -ENOLINK:
		cli_fail(
		        "adopt '%s': home '%s' does not describe its lower layer (vunify-lower); run 'vunify "
		        "replicate' on the host it comes from",
		        argv[optind], argv[optind + 1]);
		break;
	case -ENODATA:
		cli_fail("adopt '%s': %zu of the %zu objects the guest needs are not in pool '%s'; nothing "
		         "changed (run 'vunify replicate' on the host it comes from)",
		         argv[optind], rep.n_missing, rep.needed, p->path);
		show("missing", rep.missing, rep.n_missing);
		break;
	case -EBADMSG:
		cli_fail("adopt '%s': %zu objects the guest needs are corrupt in pool '%s' (their content "
		         "does "
		         "not hash to their name); nothing changed",
		         argv[optind], rep.n_corrupt, p->path);
		show("corrupt", rep.corrupt, rep.n_corrupt);
		break;
	default:
		cli_error("adopt", argv[optind + 1], r, cli_hint(r));
	}
	adopt_report_free(&rep);
	pool_close(p);
	return r < 0 ? 1 : 0;
}
