/* vunify replica add|rm|list, vunify replicate. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "layout.h"
#include "lowerlist.h"
#include "replica.h"
#include "util.h"
#include "banned.h"

#define SEND_BATCH 65536

static void replica_help(void)
{
	printf("usage: vunify [-p POOL] replica add TARGET\n"
	       "       vunify [-p POOL] replica rm TARGET\n"
	       "       vunify [-p POOL] replica list\n\n"
	       "The pools that must hold this pool's objects, so that a guest can fail over\n"
	       "to their host.  TARGET is [user@]host:DIR (over ssh: $VUNIFY_SSH, else ssh;\n"
	       "the remote side runs vunify from its PATH) or a local DIR; DIR is a pool\n"
	       "made by 'vunify init' with the same layout.  'list' shows when each was\n"
	       "last brought up to date and its lag: the objects guests here reference\n"
	       "that it does not hold (asked once from the replica, nothing re-read).\n");
}

/* Why a replica could not be used, as one phrase. */
static const char *replica_why(int r, int status, char *buf, size_t len)
{
	if (r == -EHOSTUNREACH && status == 255)
		snprintf(buf, len, "ssh failed (exit 255)");
	else if (r == -EHOSTUNREACH && status == 30)
		snprintf(buf, len, "rsync timed out (exit 30: replica full or stalled?)");
	else if (r == -EHOSTUNREACH && (status == 11 || status == 12))
		snprintf(buf, len, "rsync failed (exit %d: replica full or unwritable?)", status);
	else if (r == -EHOSTUNREACH)
		snprintf(buf, len, "remote command failed (exit %d)", status);
	else if (r == -EPROTOTYPE)
		snprintf(buf, len, "not a pool of this pool's layout");
	else
		snprintf(buf, len, "%s", strerror(-r));
	return buf;
}

static int replica_list_cmd(struct pool *p)
{
	struct replica *v = NULL;
	char **need = NULL;
	size_t n = 0, nn = 0;
	int r, ret = 0;

	r = replica_list(p, &v, &n);
	if (r == 0)
		r = guests_objects(p, NULL, 0, &need, &nn);
	if (r < 0) {
		replicas_free(v, n);
		return cli_error("replica list", p->path, r, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		struct nameset have = {0};
		char when[64] = "never", why[128];
		int status = 0;
		uint64_t lag = 0;
		if (v[i].synced) {
			time_t t = (time_t)v[i].synced;
			struct tm tm;
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime_r(&t, &tm));
		}
		r = replica_names(&v[i].t, p->layout, &have, &status);
		if (r < 0) {
			printf("%s\tsynced %s\tunreachable: %s\n", v[i].t.spec, when,
			       replica_why(r, status, why, sizeof(why)));
			ret = 1;
			continue;
		}
		for (size_t k = 0; k < nn; k++)
			lag += !nameset_has(&have, need[k]);
		printf("%s\tsynced %s\tlag %" PRIu64 " objects\n", v[i].t.spec, when, lag);
		nameset_free(&have);
	}
	replicas_free(v, n);
	names_free(need);
	return ret;
}

int cmd_replica(const struct cli *c, int argc, char **argv)
{
	struct pool *p;
	const char *verb;
	int r;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		replica_help();
		return argc < 2 ? EXIT_USAGE : 0;
	}
	verb = argv[1];
	if (!strcmp(verb, "list")) {
		if (argc != 2)
			return cli_usage("replica", "list takes no argument");
		p = cli_open_pool(c, POOL_LOCK_SHARED);
		if (!p)
			return 1;
		r = replica_list_cmd(p);
		pool_close(p);
		return r;
	}
	if (strcmp(verb, "add") && strcmp(verb, "rm"))
		return cli_usage("replica", "unknown verb '%s' (add, rm, list)", verb);
	if (argc != 3)
		return cli_usage("replica", "%s takes one TARGET", verb);
	p = cli_open_pool(c, POOL_LOCK_EXCLUSIVE);
	if (!p)
		return 1;
	if (!strcmp(verb, "add")) {
		_cleanup_free_ char *abs = NULL;
		struct target t;
		r = target_parse(argv[2], &t);
		if (r == 0) {
			/* it must answer as a pool of our layout now; a typo is
			 * better caught here than at the next unify */
			struct nameset have = {0};
			char why[128];
			int status = 0;
			bool local = !t.host;
			r = replica_names(&t, p->layout, &have, &status);
			nameset_free(&have);
			target_free(&t);
			if (r < 0) {
				cli_fail("replica add '%s': %s", argv[2],
				         replica_why(r, status, why, sizeof(why)));
				pool_close(p);
				return 1;
			}
			/* a local replica by its absolute path: later commands may
			 * run from anywhere */
			abs = local ? realpath(argv[2], NULL) : NULL;
			r = replica_add(p, abs ? abs : argv[2]);
		}
		if (r < 0)
			cli_error("replica add", argv[2], r,
			          r == -EEXIST   ? "already a replica"
			          : r == -EINVAL ? "expected [user@]host:DIR or a local DIR"
			                         : NULL);
	} else {
		r = replica_rm(p, argv[2]);
		if (r < 0)
			cli_error("replica rm", argv[2], r,
			          r == -ENOENT ? "not a replica of this pool" : NULL);
	}
	pool_close(p);
	return r < 0 ? 1 : 0;
}

static void replicate_help(void)
{
	printf("usage: vunify [-p POOL] replicate [--to TARGET] [GUEST...]\n\n"
	       "Send every object the guests (all when none is named) reference that a\n"
	       "replica lacks, one rsync over ssh per batch, durable there before this\n"
	       "command says so.  Without --to: every replica of the pool ('replica add').\n");
}

/* Bring one target up to date for the guests.  Returns 0 or 1. */
static int replicate_one(struct pool *p, const struct target *t, char *const *need, size_t nn,
                         bool all_guests, bool listed)
{
	struct nameset have = {0};
	_cleanup_free_ char **miss = NULL;
	size_t nm = 0;
	char why[128];
	int r, status = 0;

	miss = malloc((nn ? nn : 1) * sizeof(*miss));
	if (!miss)
		return cli_error("replicate", t->spec, -ENOMEM, NULL);
	r = replica_names(t, p->layout, &have, &status);
	if (r < 0) {
		free(steal_pointer(&miss));
		return cli_fail("replicate to '%s': %s", t->spec, replica_why(r, status, why, sizeof(why)));
	}
	for (size_t k = 0; k < nn; k++)
		if (!nameset_has(&have, need[k]))
			miss[nm++] = need[k];
	nameset_free(&have);
	for (size_t k = 0; k < nm; k += SEND_BATCH) {
		r = replica_send(p, t, miss + k, MIN((size_t)SEND_BATCH, nm - k), &status);
		if (r < 0)
			return cli_fail("replicate to '%s': %s (%zu of %zu missing objects sent)", t->spec,
			                replica_why(r, status, why, sizeof(why)), k, nm);
	}
	if (all_guests && listed) {
		r = replica_mark_synced(p, t->spec, (int64_t)time(NULL));
		if (r < 0)
			return cli_error("replicate: record the sync of", t->spec, r, NULL);
	}
	printf("%s: %zu objects sent, %zu already there\n", t->spec, nm, nn - nm);
	return 0;
}

int cmd_replicate(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"to", required_argument, NULL, 't'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	const char *to = NULL;
	struct replica *v = NULL;
	char **need = NULL;
	size_t n = 0, nn = 0;
	struct pool *p;
	int ch, r, ret = 0;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 't')
			to = optarg;
		else if (ch == 'h') {
			replicate_help();
			return 0;
		} else
			return cli_usage("replicate", "bad option");
	}
	/* readers: objects are only read; gc (exclusive) waits */
	p = cli_open_pool(c, POOL_LOCK_SHARED);
	if (!p)
		return 1;
	r = guests_objects(p, argv + optind, (size_t)(argc - optind), &need, &nn);
	if (r < 0) {
		cli_error("replicate", NULL, r, r == -ENOENT ? "unknown guest" : NULL);
		pool_close(p);
		return 1;
	}
	r = replica_list(p, &v, &n);
	if (r < 0) {
		ret = cli_error("replicate: read the replica list of", p->path, r, NULL);
	} else if (to) {
		struct target t;
		bool listed = false;
		r = target_parse(to, &t);
		if (r < 0) {
			ret = cli_error("replicate --to", to, r, "expected [user@]host:DIR or a local DIR");
		} else {
			for (size_t i = 0; i < n; i++)
				listed |= !strcmp(v[i].t.spec, to);
			ret = replicate_one(p, &t, need, nn, optind == argc, listed);
			target_free(&t);
		}
	} else if (n == 0) {
		ret = cli_fail("replicate: pool '%s' has no replica (add one with 'vunify replica add')",
		               p->path);
	} else {
		for (size_t i = 0; i < n; i++)
			ret |= replicate_one(p, &v[i].t, need, nn, optind == argc, true);
	}
	/* a lower layer that lives in the pool (link layout): describe it in
	 * each home, after its objects went out, so it fails over with the
	 * partition */
	if (layout_ops_for(p)->describes_lower) {
		char **names = NULL;
		int ng = optind < argc ? 0 : pool_guest_names(p, &names);
		char *const *gv = optind < argc ? argv + optind : names;
		if (ng < 0)
			ret = cli_error("replicate: list guests of", p->path, ng, NULL);
		else if (optind < argc)
			ng = argc - optind;
		for (int i = 0; i < ng; i++) {
			r = guest_describe_lower(p, gv[i]);
			if (r == -ENOENT || r == -ESTALE)
				fprintf(stderr,
				        "vunify: replicate: home of '%s' not attached here; its lower "
				        "layer is described when it is\n",
				        gv[i]);
			else if (r < 0)
				ret = cli_error("replicate: describe the lower layer of", gv[i], r, NULL);
		}
		names_free(names);
	}
	replicas_free(v, n);
	names_free(need);
	pool_close(p);
	return ret;
}
