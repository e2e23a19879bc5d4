/* vunify fsck: parse the arguments, print what lib/fsck.c finds, with a
 * progress line on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fsck.h"
#include "util.h"
#include "banned.h"

static void help(void)
{
	printf("usage: vunify [-p POOL] fsck [--repair] [GUEST...]\n\n"
	       "Re-hash every object (its name must be the SHA-256 of its content), check\n"
	       "that every guest's lower layer points at existing, intact objects and that\n"
	       "the pool's record of each guest's references is complete, and remove\n"
	       "leftovers of interrupted commands.  Exits 1 and names each problem.  A\n"
	       "guest whose home is not attached is reported, not counted as a problem.\n\n"
	       "  --progress / -q, --quiet   progress line on stderr (default: on a terminal)\n"
	       "  --repair   rewrite incomplete reference records; in the link layout, make\n"
	       "             files that lost their object objects again\n");
}

struct fsck_output {
	bool progress;
	struct timespec start, last;
};

static double since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* "fsck: 1234/5678 objects, 1.0/1.3 GiB, 800 MiB/s, ETA 0:01" on stderr */
static void on_progress(const struct fsck_progress *pr, bool final, void *ud)
{
	struct fsck_output *o = ud;
	char b1[32], b2[32], b3[32];
	double el, rate;

	if (!final && since(&o->last) < 0.25)
		return;
	clock_gettime(CLOCK_MONOTONIC, &o->last);
	el = since(&o->start);
	rate = el > 0 ? (double)pr->bytes_done / el : 0;
	fprintf(stderr, "\r\033[Kfsck: %llu/%llu objects, %s/%s, %s/s", (unsigned long long)pr->checked,
	        (unsigned long long)pr->objects_total, format_bytes(pr->bytes_done, b1, sizeof(b1)),
	        format_bytes(pr->bytes_total, b2, sizeof(b2)), format_bytes((uint64_t)rate, b3, sizeof(b3)));
	if (!final && rate > 0) {
		unsigned long eta = (unsigned long)((double)(pr->bytes_total - pr->bytes_done) / rate);
		fprintf(stderr, ", ETA %lu:%02lu", eta / 60, eta % 60);
	}
	fputs(final ? "\n" : "", stderr);
	fflush(stderr);
}

/* "pool: TEXT", "object NAME: TEXT", "guest NAME: TEXT" on stdout */
static void on_finding(const struct fsck_finding *fi, void *ud)
{
	(void)ud;
	if (fi->scope == FSCK_POOL)
		printf("pool: %s\n", fi->text);
	else
		printf("%s %s: %s\n", fi->scope == FSCK_OBJECT ? "object" : "guest", fi->name, fi->text);
}

int cmd_fsck(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"repair", no_argument, NULL, 'r'},
	        {"progress", no_argument, NULL, 'P'},
	        {"quiet", no_argument, NULL, 'q'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	static const char *const stage_what[] = {
	        [FSCK_STAGE_DIRS] = "fsck: directories of",
	        [FSCK_STAGE_TMP] = "fsck: clean",
	        [FSCK_STAGE_OBJECTS] = "fsck: objects of",
	        [FSCK_STAGE_GUESTS] = "fsck: guests of",
	};
	struct fsck_output out = {0};
	struct fsck_ops ops = {.finding = on_finding};
	struct fsck_result res;
	struct pool *p;
	unsigned flags = 0;
	int ch, r, progress = -1;

	while ((ch = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		if (ch == 'r')
			flags |= FSCK_REPAIR;
		else if (ch == 'P')
			progress = 1;
		else if (ch == 'q')
			progress = 0;
		else if (ch == 'h') {
			help();
			return 0;
		} else
			return cli_usage("fsck", "unknown option, or option without its argument: '%s'",
			                 argv[optind - 1]);
	}
	/* exclusive: leftovers of other writers are only garbage while no
	 * writer runs */
	p = cli_open_pool(c, POOL_LOCK_EXCLUSIVE);
	if (!p)
		return 1;
	out.progress = progress < 0 ? isatty(STDERR_FILENO) : progress;
	if (out.progress) {
		ops.progress = on_progress;
		clock_gettime(CLOCK_MONOTONIC, &out.start);
		out.last = out.start;
	}
	r = fsck_run(p, argv + optind, (size_t)(argc - optind), flags, &ops, &out, &res);
	if (r < 0) {
		cli_error(stage_what[res.stage], res.stage == FSCK_STAGE_TMP ? "tmp" : p->path, r, NULL);
		pool_close(p);
		return 1;
	}
	if (res.leftovers)
		printf("fsck: removed %" PRIu64 " leftovers of interrupted commands\n", res.leftovers);
	printf("fsck: %" PRIu64 " objects checked, %" PRIu64 " problem%s", res.checked, res.problems,
	       res.problems == 1 ? "" : "s");
	if (res.repaired)
		printf(", %" PRIu64 " repaired", res.repaired);
	putchar('\n');
	pool_close(p);
	return res.problems ? 1 : 0;
}
