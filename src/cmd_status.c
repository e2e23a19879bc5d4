/* vunify status. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "lower.h"
#include "page_cache.h"
#include "online.h"
#include "overlay.h"
#include "util.h"
#include "banned.h"

static void help(void)
{
	printf("usage: vunify [-p POOL] status [GUEST] [--json] [--memory]\n\n"
	       "Pool and per-guest figures.  logical_bytes is the sum of the sizes of all\n"
	       "unified files over all guests (hard links within a guest counted once);\n"
	       "saved_bytes = logical_bytes - object_bytes.  upper_bytes is the disk space\n"
	       "used by the guest's upper layer now, unified_at when its last unify\n"
	       "ended (Unix seconds; null: never), mounted_at where it is mounted.\n\n"
	       "  --json     one JSON object (fields as in the docs)\n"
	       "  --memory   also how much of the pool's content is in the page cache now\n"
	       "             (cached_bytes) and how much of that belongs to objects two or\n"
	       "             more guests reference (shared_cached_bytes): each such page\n"
	       "             serves every guest that reads the file\n");
}

struct guest_row {
	struct guest *g;
	char *target; /* where it is mounted, or NULL */
	bool mounted, attached;
	bool switch_pending; /* unify --online prepared its next lower */
	uint64_t over_max; /* upper files over policy max-size (never unified) */
};

/* "2026-12-01 22:58" in local time, or "never". */
static const char *format_when(uint64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!t || !localtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M", &tm))
		return "never";
	return buf;
}

/* The guests as a table a person reads at a glance: one row per guest,
 * sorted by name, sizes in KiB/MiB/GiB, columns as wide as their widest
 * cell. */
static void print_table(struct guest_row *rows, int n, const char *only)
{
	static const char *const head[] = {"GUEST", "MOUNTED AT", "FILES", "UNIFIED", "UPPER", "LAST UNIFY"};
	int w[ARRAY_SIZE(head)];
	char cell[ARRAY_SIZE(head)][64], when[32];

	for (size_t c = 0; c < ARRAY_SIZE(head); c++)
		w[c] = (int)strlen(head[c]);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			printf("%-*s  %-*s  %*s  %*s  %*s  %-*s  HOME\n", w[0], head[0], w[1], head[1], w[2],
			       head[2], w[3], head[3], w[4], head[4], w[5], head[5]);
		}
		for (int i = 0; i < n; i++) {
			const struct guest *g = rows[i].g;
			const char *target = rows[i].target ? rows[i].target : "-";
			if (only && strcmp(g->name, only))
				continue;
			snprintf(cell[2], sizeof(cell[2]), "%" PRIu64, g->stats.files_unified);
			format_bytes(g->stats.bytes_unified, cell[3], sizeof(cell[3]));
			format_bytes(g->stats.upper_bytes, cell[4], sizeof(cell[4]));
			snprintf(cell[5], sizeof(cell[5]), "%s",
			         format_when(g->stats.unified_at, when, sizeof(when)));
			if (pass == 0) {
				w[0] = MAX(w[0], (int)strlen(g->name));
				w[1] = MAX(w[1], (int)strlen(target));
				for (size_t c = 2; c < ARRAY_SIZE(head); c++)
					w[c] = MAX(w[c], (int)strlen(cell[c]));
				continue;
			}
			printf("%-*s  %-*s  %*s  %*s  %*s  %-*s  %s%s\n", w[0], g->name, w[1], target, w[2],
			       cell[2], w[3], cell[3], w[4], cell[4], w[5], cell[5], g->home,
			       rows[i].attached ? "" : " (not attached)");
		}
	}
}

int cmd_status(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"memory", no_argument, NULL, 'm'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	bool json = false, memory = false, partial = false;
	struct memory_info mi = {0};
	struct pool *p;
	struct object_info oi = {0};
	char **names = NULL;
	struct guest_row *rows = NULL;
	uint64_t logical = 0;
	int ch, r, n, ret = 1;
	char b1[32], b2[32], b3[32];

	while ((ch = getopt_long(argc, argv, "jmh", opts, NULL)) != -1) {
		if (ch == 'j')
			json = true;
		else if (ch == 'm')
			memory = true;
		else if (ch == 'h') {
			help();
			return 0;
		} else
			return cli_usage("status", "unknown option, or option without its argument: '%s'",
			                 argv[optind - 1]);
	}
	if (argc - optind > 1)
		return cli_usage("status", "expected at most one GUEST");
	p = cli_open_pool(c, POOL_LOCK_SHARED);
	if (!p)
		return 1;
	r = objects_scan(p, &oi, NULL, NULL, NULL);
	if (r < 0) {
		cli_error("status: objects of", p->path, r, NULL);
		goto out;
	}
	if (memory) {
		r = pool_memory(p, &mi);
		if (r < 0) {
			cli_error("status: page cache of", p->path, r, NULL);
			goto out;
		}
	}
	n = pool_guest_names(p, &names);
	if (n < 0) {
		cli_error("status: guests of", p->path, n, NULL);
		goto out;
	}
	rows = calloc((size_t)n + 1, sizeof(*rows));
	if (!rows) {
		cli_error("status", NULL, -ENOMEM, NULL);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *upper = NULL;
		_cleanup_close_ int hfd = -1;
		r = pool_guest_load(p, names[i], &rows[i].g);
		if (r < 0) {
			cli_error("status", names[i], r, NULL);
			goto out;
		}
		logical += rows[i].g->stats.bytes_unified;
		upper = path_join(rows[i].g->home, HOME_UPPER);
		if (!upper) {
			cli_error("status", names[i], -ENOMEM, NULL);
			goto out;
		}
		/* the mount tables only: the in-use probe logs a line per guest */
		r = overlay_list_mounts(upper, &rows[i].target);
		if (r < 0) {
			cli_fail("status '%s': cannot tell whether it is mounted: %s", names[i],
			         strerror(-r));
			goto out;
		}
		rows[i].mounted = r > 0;
		hfd = guest_open_home(p, rows[i].g);
		rows[i].attached = hfd >= 0;
		rows[i].switch_pending = hfd >= 0 && online_pending(hfd) > 0;
		if (hfd >= 0) {
			_cleanup_close_ int ufd =
			        openat(hfd, HOME_UPPER, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			r = ufd < 0 ? neg_errno()
			            : tree_disk_usage_over(ufd, p->policy.max_size,
			                                   &rows[i].g->stats.upper_bytes, &rows[i].over_max);
			if (r < 0 && r != -ENOENT) {
				/* the figures of the last unify are shown; the exit
				 * status says they are not today's */
				cli_error("status: upper layer of", names[i], r,
				          "its figures are from the last unify");
				partial = true;
			}
		}
	}
	if (optind < argc) {
		bool found = false;
		for (int i = 0; i < n; i++)
			found |= !strcmp(names[i], argv[optind]);
		if (!found) {
			cli_error("status", argv[optind], -ENOENT, "no such guest");
			goto out;
		}
	}
	if (json) {
		bool first = true;
		printf("{\"pool\": {\"path\": ");
		json_string(stdout, p->path);
		printf(", \"layout\": \"%s\", \"objects\": %" PRIu64 ", \"object_bytes\": %" PRIu64
		       ", \"logical_bytes\": %" PRIu64 ", \"saved_bytes\": %" PRId64,
		       layout_name(p->layout), oi.objects, oi.bytes, logical, (int64_t)(logical - oi.bytes));
		if (memory)
			printf(", \"memory\": {\"method\": \"%s\", \"cached_bytes\": %" PRIu64
			       ", \"shared_cached_bytes\": %" PRIu64 ", \"objects_cached\": %" PRIu64
			       ", \"shared_objects\": %" PRIu64 "}",
			       mi.method, mi.cached_bytes, mi.shared_cached_bytes, mi.objects_cached,
			       mi.shared_objects);
		printf("}, \"guests\": [");
		for (int i = 0; i < n; i++) {
			const struct guest *g = rows[i].g;
			if (optind < argc && strcmp(g->name, argv[optind]))
				continue;
			printf("%s{\"name\": ", first ? "" : ", ");
			json_string(stdout, g->name);
			printf(", \"home\": ");
			json_string(stdout, g->home);
			printf(", \"attached\": %s, \"mounted\": %s, \"files_unified\": %" PRIu64
			       ", \"bytes_unified\": %" PRIu64 ", \"upper_bytes\": %" PRIu64
			       ", \"files_over_max_size\": %" PRIu64,
			       rows[i].attached ? "true" : "false", rows[i].mounted ? "true" : "false",
			       g->stats.files_unified, g->stats.bytes_unified, g->stats.upper_bytes,
			       rows[i].over_max);
			printf(", \"mounted_at\": ");
			if (rows[i].target)
				json_string(stdout, rows[i].target);
			else
				printf("null");
			printf(", \"switch_pending\": %s", rows[i].switch_pending ? "true" : "false");
			if (g->stats.unified_at)
				printf(", \"unified_at\": %" PRIu64 "}", g->stats.unified_at);
			else
				printf(", \"unified_at\": null}");
			first = false;
		}
		printf("]}\n");
	} else {
		printf("pool %s (layout %s)\n", p->path, layout_name(p->layout));
		printf("  %" PRIu64 " objects, %s; they hold %s of the guests' files: saved %s", oi.objects,
		       format_bytes(oi.bytes, b1, sizeof(b1)), format_bytes(logical, b2, sizeof(b2)),
		       logical > oi.bytes ? format_bytes(logical - oi.bytes, b3, sizeof(b3)) : "0 B");
		if (logical > oi.bytes)
			printf(" (%.0f%%)", 100.0 * (double)(logical - oi.bytes) / (double)logical);
		putchar('\n');
		if (memory)
			printf("  page cache (%s): %s of objects cached, %s of it in objects two or more "
			       "guests share\n",
			       mi.method, format_bytes(mi.cached_bytes, b1, sizeof(b1)),
			       format_bytes(mi.shared_cached_bytes, b2, sizeof(b2)));
		putchar('\n');
		if (n == 0)
			printf("no guests yet: add one with 'vunify add GUEST HOME --from TREE'\n");
		else
			print_table(rows, n, optind < argc ? argv[optind] : NULL);
		for (int i = 0; i < n; i++) {
			if (!rows[i].switch_pending ||
			    (optind < argc && strcmp(rows[i].g->name, argv[optind])))
				continue;
			printf("%s: switch pending: 'unify --online' prepared its next lower layer; it goes "
			       "in at the next 'vunify mount'\n",
			       rows[i].g->name);
		}
		for (int i = 0; i < n; i++) {
			if (!rows[i].over_max || (optind < argc && strcmp(rows[i].g->name, argv[optind])))
				continue;
			printf("%s: %" PRIu64 " file%s over max-size %s stay%s in the upper (policy.conf)\n",
			       rows[i].g->name, rows[i].over_max, rows[i].over_max == 1 ? "" : "s",
			       format_bytes(p->policy.max_size, b1, sizeof(b1)),
			       rows[i].over_max == 1 ? "s" : "");
		}
	}
	ret = partial ? 1 : 0;
out:
	for (int i = 0; rows && names && names[i]; i++) {
		guest_free(rows[i].g);
		free(rows[i].target);
	}
	free(rows);
	names_free(names);
	pool_close(p);
	return ret;
}
