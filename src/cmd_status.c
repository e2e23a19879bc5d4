/* vunify status. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lower.h"
#include "memory.h"
#include "overlay.h"
#include "util.h"
#include "banned.h"

static void help(void)
{
	printf("usage: vunify [-p POOL] status [GUEST] [--json] [--memory]\n\n"
	       "Pool and per-guest figures.  logical_bytes is the sum of the sizes of all\n"
	       "unified files over all guests (hard links within a guest counted once);\n"
	       "saved_bytes = logical_bytes - object_bytes.  upper_bytes is the disk space\n"
	       "used by the guest's upper layer now.\n\n"
	       "  --json     one JSON object (fields as in the docs)\n"
	       "  --memory   also how much of the pool's content is in the page cache now\n"
	       "             (cached_bytes) and how much of that belongs to objects two or\n"
	       "             more guests reference (shared_cached_bytes): each such page\n"
	       "             serves every guest that reads the file\n");
}

struct grow {
	struct guest *g;
	bool mounted, attached;
};

int cmd_status(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"memory", no_argument, NULL, 'm'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	bool json = false, memory = false;
	struct memory_info mi = {0};
	struct pool *p;
	struct object_info oi = {0};
	char **names = NULL;
	struct grow *rows = NULL;
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
			return cli_usage("status", "bad option");
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
	if (!rows)
		goto out;
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
		rows[i].mounted = upper && overlay_find_mounts(upper, NULL) > 0;
		hfd = guest_open_home(p, rows[i].g);
		rows[i].attached = hfd >= 0;
		if (hfd >= 0) {
			_cleanup_close_ int ufd =
			        openat(hfd, HOME_UPPER, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (ufd >= 0)
				(void)tree_disk_usage(ufd, &rows[i].g->stats.upper_bytes);
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
			       ", \"bytes_unified\": %" PRIu64 ", \"upper_bytes\": %" PRIu64 "}",
			       rows[i].attached ? "true" : "false", rows[i].mounted ? "true" : "false",
			       g->stats.files_unified, g->stats.bytes_unified, g->stats.upper_bytes);
			first = false;
		}
		printf("]}\n");
	} else {
		printf("pool %s (layout %s): %" PRIu64 " objects, %s; guests' unified files %s; saved %s\n",
		       p->path, layout_name(p->layout), oi.objects, format_bytes(oi.bytes, b1, sizeof(b1)),
		       format_bytes(logical, b2, sizeof(b2)),
		       logical > oi.bytes ? format_bytes(logical - oi.bytes, b3, sizeof(b3)) : "0 B");
		if (memory)
			printf("page cache (%s): %s of objects cached, %s of it in objects two or more "
			       "guests share\n",
			       mi.method, format_bytes(mi.cached_bytes, b1, sizeof(b1)),
			       format_bytes(mi.shared_cached_bytes, b2, sizeof(b2)));
		for (int i = 0; i < n; i++) {
			const struct guest *g = rows[i].g;
			if (optind < argc && strcmp(g->name, argv[optind]))
				continue;
			printf("  %-16s %s%s  %" PRIu64 " files unified (%s), upper %s  home %s\n", g->name,
			       rows[i].mounted ? "mounted" : "-",
			       rows[i].attached ? "" : " (home not attached)", g->stats.files_unified,
			       format_bytes(g->stats.bytes_unified, b1, sizeof(b1)),
			       format_bytes(g->stats.upper_bytes, b2, sizeof(b2)), g->home);
		}
	}
	ret = 0;
out:
	for (int i = 0; rows && names && names[i]; i++)
		guest_free(rows[i].g);
	free(rows);
	names_free(names);
	pool_close(p);
	return ret;
}
