/* vunify fsck: re-hash every object, then check each guest's lower layer
 * points only at existing objects of the right size. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hash.h"
#include "lower.h"
#include "util.h"
#include "banned.h"

static void help(void)
{
	printf("usage: vunify [-p POOL] fsck [GUEST...]\n\n"
	       "Re-hash every object (its name must be the SHA-256 of its content) and\n"
	       "check that every guest's lower layer points at existing, intact objects.\n"
	       "Exits 1 and names each problem found; a guest whose home is not attached\n"
	       "is reported but is not a problem.\n");
}

struct fsck {
	uint64_t problems;
	uint64_t checked;
	const char *guest;
};

static int check_object(int fan_fd, const char *name, const struct stat *st, void *ud)
{
	struct fsck *f = ud;
	unsigned char h[HASH_LEN];
	char hex[HASH_HEX_LEN + 1];
	_cleanup_close_ int fd = -1;
	int r;

	if (!S_ISREG(st->st_mode) || strlen(name) < HASH_HEX_LEN || !hash_is_hex(name)) {
		printf("object %s: not an object (unexpected file in objects/)\n", name);
		f->problems++;
		return 0;
	}
	fd = openat(fan_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		printf("object %s: cannot open: %s\n", name, strerror(errno));
		f->problems++;
		return 0;
	}
	r = hash_fd(fd, (uint64_t)st->st_size, h);
	if (r < 0) {
		printf("object %s: cannot read: %s\n", name, strerror(-r));
		f->problems++;
		return 0;
	}
	hash_to_hex(h, hex);
	if (memcmp(hex, name, HASH_HEX_LEN)) {
		printf("object %s: content does not match its name (content hashes to %s)\n", name, hex);
		f->problems++;
	}
	f->checked++;
	return 0;
}

static void on_problem(const char *path, const char *problem, void *ud)
{
	struct fsck *f = ud;

	printf("guest %s: /%s: %s\n", f->guest, path, problem);
}

int cmd_fsck(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	struct fsck f = { 0 };
	struct object_map *map = NULL;
	struct pool *p;
	char **names = NULL;
	int ch, r, n, ret = 1;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			help();
			return 0;
		}
		return cli_usage("fsck", "bad option");
	}
	p = cli_open_pool(c, POOL_LOCK_SHARED);
	if (!p)
		return 1;
	r = objects_scan(p, NULL, p->layout == LAYOUT_LINK ? &map : NULL, check_object, &f);
	if (r < 0) {
		cli_error("fsck: objects of", p->path, r, NULL);
		goto out;
	}
	if (optind < argc) {
		n = argc - optind;
		names = calloc((size_t)n + 1, sizeof(*names));
		for (int i = 0; names && i < n; i++)
			names[i] = strdup(argv[optind + i]);
	} else {
		n = pool_guest_names(p, &names);
	}
	if (n < 0 || !names) {
		cli_error("fsck: guests of", p->path, n < 0 ? n : -ENOMEM, NULL);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		struct guest *g = NULL;
		struct lower_stats ls = { 0 };
		uint64_t probs = 0;
		_cleanup_close_ int hfd = -1, lfd = -1;

		r = pool_guest_load(p, names[i], &g);
		if (r < 0) {
			printf("guest %s: not registered\n", names[i]);
			f.problems++;
			continue;
		}
		hfd = guest_open_home(p, g);
		if (hfd < 0) {
			printf("guest %s: home '%s' not attached (%s): skipped\n", g->name, g->home, strerror(-hfd));
			guest_free(g);
			continue;
		}
		lfd = guest_open_lower(p, g, hfd, false);
		if (lfd == -ENOENT) {
			guest_free(g);
			continue; /* never unified */
		}
		if (lfd < 0) {
			printf("guest %s: cannot open lower layer: %s\n", g->name, strerror(-lfd));
			f.problems++;
			guest_free(g);
			continue;
		}
		f.guest = g->name;
		r = lower_scan(p, lfd, map, true, on_problem, &f, &ls, &probs);
		if (r < 0) {
			printf("guest %s: cannot scan lower layer: %s\n", g->name, strerror(-r));
			f.problems++;
		}
		f.problems += probs;
		lower_stats_free(&ls);
		guest_free(g);
	}
	printf("fsck: %" PRIu64 " objects checked, %" PRIu64 " problem%s\n", f.checked, f.problems,
	       f.problems == 1 ? "" : "s");
	ret = f.problems ? 1 : 0;
out:
	object_map_free(map);
	names_free(names);
	pool_close(p);
	return ret;
}
