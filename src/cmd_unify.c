/* vunify unify. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "lower.h"
#include "replica.h"
#include "overlay.h"
#include "unify.h"
#include "util.h"
#include "banned.h"

/* "hash: 12345/31949 files, 1.1/1.3 GiB, 850.0 MiB/s, ETA 0:02" on one
 * terminal line, rewritten in place. */
static void show_progress(const struct unify_progress *pr, void *ud)
{
	char b1[32], b2[32], b3[32];
	double rate = pr->elapsed > 0 ? (double)pr->bytes_done / pr->elapsed : 0;
	bool done = pr->files_done >= pr->files_total;

	(void)ud;
	fprintf(stderr, "\r\033[K%s: %llu/%llu files, %s/%s, %s/s", pr->phase,
	        (unsigned long long)pr->files_done, (unsigned long long)pr->files_total,
	        format_bytes(pr->bytes_done, b1, sizeof(b1)), format_bytes(pr->bytes_total, b2, sizeof(b2)),
	        format_bytes((uint64_t)rate, b3, sizeof(b3)));
	if (!done && rate > 0) {
		unsigned long eta = (unsigned long)((double)(pr->bytes_total - pr->bytes_done) / rate);
		fprintf(stderr, ", ETA %lu:%02lu", eta / 60, eta % 60);
	}
	if (done)
		fputc('\n', stderr);
	fflush(stderr);
}

/* --skip-mounted: of the guests named (all when none), the names of those
 * not mounted now, in *ret_names (NULL-terminated, names_free) and
 * *ret_n; says which were left out.  Returns 0, or 1 after printing an
 * error. */
static int drop_mounted(struct pool *p, char **want, size_t n_want, char ***ret_names, size_t *ret_n)
{
	char **all = NULL, **keep;
	size_t n = 0;
	int n_all, r = 0;

	if (n_want == 0) {
		n_all = pool_guest_names(p, &all);
		if (n_all < 0)
			return cli_error("unify: guests of", p->path, n_all, NULL);
		want = all;
		n_want = (size_t)n_all;
	}
	keep = calloc(n_want + 1, sizeof(*keep));
	if (!keep) {
		names_free(all);
		return cli_error("unify", NULL, -ENOMEM, NULL);
	}
	for (size_t i = 0; i < n_want && r == 0; i++) {
		struct guest *g = NULL;
		_cleanup_free_ char *upper = NULL;
		r = pool_guest_load(p, want[i], &g);
		if (r < 0) {
			r = cli_error("unify", want[i], r, r == -ENOENT ? "no such guest" : NULL);
			break;
		}
		upper = path_join(g->home, HOME_UPPER);
		r = upper ? overlay_find_mounts(upper, NULL) : -ENOMEM;
		guest_free(g);
		if (r < 0) {
			r = cli_error("unify", want[i], r, NULL);
		} else if (r > 0) {
			printf("%s: mounted, left out (unify it after 'vunify umount')\n", want[i]);
			r = 0;
		} else if (!(keep[n++] = strdup(want[i]))) {
			r = cli_error("unify", NULL, -ENOMEM, NULL);
		}
	}
	names_free(all);
	if (r) {
		names_free(keep);
		return r;
	}
	*ret_names = keep;
	*ret_n = n;
	return 0;
}

/* Name each replica that could not take every object, and how many files
 * stay in the uppers for it.  Returns the exit status: 1 if one failed. */
static int report_replicas(const struct replica_session *s)
{
	int ret = 0;

	for (size_t i = 0; s && i < s->n; i++) {
		const struct replica_state *rs = &s->v[i];
		char why[96];
		if (!rs->down)
			continue;
		if (rs->error == -EHOSTUNREACH)
			snprintf(why, sizeof(why), "%s failed (exit %d)", rs->status == 255 ? "ssh" : "rsync",
			         rs->status);
		else
			snprintf(why, sizeof(why), "%s", strerror(-rs->error));
		fprintf(stderr,
		        "vunify: unify: replica '%s': %s; %" PRIu64 " files stay in the uppers until it "
		        "holds their objects (run unify again)\n",
		        rs->t.spec, why, rs->files_kept);
		ret = 1;
	}
	return ret;
}

static void help(void)
{
	printf("usage: vunify [-p POOL] unify [GUEST...] [--dry-run] [--online | --skip-mounted]\n"
	       "                    [--jobs N]\n\n"
	       "Move every eligible file of the guests' upper layers (all guests when none\n"
	       "is named) into the pool and their lower layers.  What each guest sees does\n"
	       "not change.  Guests must not be mounted, unless --online.\n\n"
	       "  -n, --dry-run   report what would be unified, change nothing\n"
	       "      --online    for a mounted guest: hash and store while it runs and\n"
	       "                  prepare its next lower layer, without touching its layers;\n"
	       "                  the switch happens at its next 'vunify mount' (a second\n"
	       "                  --online replaces the preparation).  Guests not mounted\n"
	       "                  are unified now\n"
	       "      --skip-mounted  leave out the guests that are mounted (naming each)\n"
	       "                  instead of refusing the run\n"
	       "      --progress  show a progress line on stderr (default on a terminal)\n"
	       "  -q, --quiet     no progress line\n"
	       "  -j, --jobs N    hashing threads (default: number of CPUs)\n"
	       "      --no-replicas  unify locally only, on purpose: files may leave the\n"
	       "                  uppers before their objects are on the pool's replicas\n");
}

int cmd_unify(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"dry-run", no_argument, NULL, 'n'},
	        {"jobs", required_argument, NULL, 'j'},
	        {"progress", no_argument, NULL, 'P'},
	        {"quiet", no_argument, NULL, 'q'},
	        {"help", no_argument, NULL, 'h'},
	        {"skip-mounted", no_argument, NULL, 'S'},
	        {"no-replicas", no_argument, NULL, 'R'},
	        {"online", no_argument, NULL, 'O'},
	        {0},
	};
	struct unify_options o = {0};
	struct unify_result res = {0};
	_cleanup_free_ char *what = NULL;
	struct timespec t0, t1;
	struct pool *p;
	char b1[32], b2[32], b3[32];
	uint64_t jobs;
	char **kept = NULL, **todo = NULL;
	size_t n_todo;
	bool skip_mounted = false;
	int ch, r, progress = -1;
	bool no_replicas = false;

	while ((ch = getopt_long(argc, argv, "nj:qh", opts, NULL)) != -1) {
		switch (ch) {
		case 'P':
			progress = 1;
			break;
		case 'q':
			progress = 0;
			break;
		case 'S':
			skip_mounted = true;
			break;
		case 'O':
			o.online = true;
			break;
		case 'n':
			o.dry_run = true;
			break;
		case 'R':
			no_replicas = true;
			break;
		case 'j':
			if (parse_u64(optarg, &jobs) < 0 || jobs < 1 || jobs > 64)
				return cli_usage("unify", "--jobs takes a number from 1 to 64");
			o.jobs = (unsigned)jobs;
			break;
		case 'h':
			help();
			return 0;
		default:
			return cli_usage("unify", "unknown option, or option without its argument: '%s'",
			                 argv[optind - 1]);
		}
	}
	if (o.online && skip_mounted)
		return cli_usage("unify", "--online and --skip-mounted exclude each other");
	if (progress < 0)
		progress = isatty(STDERR_FILENO);
	if (progress)
		o.progress = show_progress;
	p = cli_open_pool(c, o.dry_run ? POOL_LOCK_SHARED : POOL_LOCK_EXCLUSIVE);
	if (!p)
		return 1;
	todo = argv + optind;
	n_todo = (size_t)(argc - optind);
	if (skip_mounted) {
		/* 0, or 1 after it printed why */
		r = drop_mounted(p, todo, n_todo, &kept, &n_todo);
		if (r != 0) {
			pool_close(p);
			return 1;
		}
		todo = kept;
		if (n_todo == 0) {
			printf("no guest to unify: every one is mounted\n");
			names_free(kept);
			pool_close(p);
			return 0;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!o.dry_run) {
		r = unify_replicas_prepare(p, todo, n_todo, no_replicas, &o);
		if (r < 0) {
			names_free(kept);
			pool_close(p);
			return cli_error("unify: replicas of", c->pool_path, r, NULL);
		}
	}
	r = unify_run(p, todo, n_todo, &o, &res, &what);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	names_free(kept);
	if (r < 0) {
		if (r == -ENOENT && what)
			cli_error("unify", what, r, "unknown guest, or its home is not attached");
		else
			cli_error("unify", what, r, cli_hint(r));
		(void)report_replicas(o.replicas);
		replica_session_close(o.replicas);
		pool_close(p);
		return 1;
	}
	for (size_t i = 0; i < res.n_guests && !o.dry_run; i++) {
		r = pool_guest_mark_unified(p, res.guests[i].name, (uint64_t)time(NULL));
		if (r < 0) {
			cli_error("unify: record the time of", res.guests[i].name, r, NULL);
			unify_result_free(&res);
			pool_close(p);
			return 1;
		}
	}
	for (size_t i = 0; i < res.n_guests; i++) {
		const struct unify_guest_result *g = &res.guests[i];
		if (g->switched)
			printf("%s: switch prepared while it ran carried out first: %" PRIu64
			       " upper copies purged\n",
			       g->name, g->switch_purged);
		if (o.online && !g->prepared)
			printf("%s: not mounted: unified now (no switch needed)\n", g->name);
		if (g->prepared && !o.dry_run) {
			printf("%s: mounted: %" PRIu64
			       " files (%s) prepared in its next lower layer, %" PRIu64
			       " new objects (%s); the switch happens at its next 'vunify mount'",
			       g->name, g->files_unified, format_bytes(g->bytes_unified, b1, sizeof(b1)),
			       g->new_objects, format_bytes(g->new_object_bytes, b2, sizeof(b2)));
			if (g->files_skipped)
				printf(", %" PRIu64 " left in the upper", g->files_skipped);
			putchar('\n');
			continue;
		}
		printf("%s: %s%" PRIu64 " files (%s) unified, %" PRIu64 " new objects (%s)", g->name,
		       o.dry_run ? "would unify: " : "", g->files_unified,
		       format_bytes(g->bytes_unified, b1, sizeof(b1)), g->new_objects,
		       format_bytes(g->new_object_bytes, b2, sizeof(b2)));
		if (g->files_skipped)
			printf(", %" PRIu64 " left in the upper", g->files_skipped);
		if (g->whiteouts_folded || g->opaque_folded)
			printf(", %" PRIu64 " deletions and %" PRIu64
			       " replaced directories folded into the lower layer",
			       g->whiteouts_folded, g->opaque_folded);
		putchar('\n');
	}
	/* What this run did, over the guests it unified now (not those only
	 * prepared: their upper copies go at the switch).  The pool's totals
	 * are status's: counting them stats every object, a cost that would
	 * grow with the pool instead of with the guests unified (DESIGN.md,
	 * "Growth with the pool"). */
	if (!o.dry_run) {
		uint64_t files = 0, bytes = 0, objects = 0, object_bytes = 0;
		size_t n = 0;
		for (size_t i = 0; i < res.n_guests; i++) {
			const struct unify_guest_result *g = &res.guests[i];
			if (g->prepared)
				continue;
			files += g->files_unified;
			bytes += g->bytes_unified;
			objects += g->new_objects;
			object_bytes += g->new_object_bytes;
			n++;
		}
		if (n)
			printf("run: %" PRIu64 " files (%s) unified, %" PRIu64
			       " new objects (%s): saved %s; the pool's totals: 'vunify status'\n",
			       files, format_bytes(bytes, b1, sizeof(b1)), objects,
			       format_bytes(object_bytes, b2, sizeof(b2)),
			       bytes > object_bytes ? format_bytes(bytes - object_bytes, b3, sizeof(b3))
			                            : "0 B");
	}
	printf("time: %.2f s, hashed %s\n",
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       format_bytes(res.bytes_hashed, b1, sizeof(b1)));
	unify_result_free(&res);
	r = report_replicas(o.replicas);
	replica_session_close(o.replicas);
	pool_close(p);
	return r;
}
