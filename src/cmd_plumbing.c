/* Plumbing for other hosts' vunify, run over ssh: `objects` lists a pool's
 * object names (how a replica tells what it holds), `receive` wraps the
 * rsync that writes into this host (it is rsync's --rsync-path) so that
 * what rsync wrote is durable before the sender hears it succeeded. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lower.h"
#include "transport.h"
#include "util.h"
#include "banned.h"

static int print_name(const char *name, void *ud)
{
	(void)ud;
	return puts(name) < 0 ? -EIO : 0;
}

int cmd_objects(const struct cli *c, int argc, char **argv)
{
	struct pool *p;
	int r;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: vunify [-p POOL] objects\n\n"
		       "Plumbing: print \"vunify-objects 1\", \"layout L\", then the name of every\n"
		       "object in the pool, one a line (what 'replicate' asks a replica over ssh).\n");
		return 0;
	}
	if (argc != 1)
		return cli_usage("objects", "no arguments expected");
	p = cli_open_pool(c, POOL_LOCK_SHARED);
	if (!p)
		return 1;
	printf("vunify-objects 1\nlayout %s\n", layout_name(p->layout));
	r = objects_names(p, print_name, NULL);
	if (r == 0 && fflush(stdout) != 0)
		r = -EIO;
	pool_close(p);
	return r < 0 ? cli_error("objects", c->pool_path, r, NULL) : 0;
}

/* vunify [-p POOL] receive (--pool | --sync DIR) rsync ARGS...
 *
 * 1. --pool: take the pool's shared lock (its gc and tmp cleanup wait),
 * 2. run rsync ARGS with our stdin/stdout (the ssh channel),
 * 3. when rsync succeeded: syncfs() the pool (or DIR), so that the renames
 *    rsync made are durable,
 * 4. exit with rsync's status (1 if the sync failed): the sender's rsync
 *    waits for this exit before it reports success. */
int cmd_receive(const struct cli *c, int argc, char **argv)
{
	struct pool *p = NULL;
	const char *sync_dir = NULL;
	bool pool = false;
	int i = 1, r, status = 0;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--pool"))
			pool = true;
		else if (!strcmp(argv[i], "--sync") && i + 1 < argc)
			sync_dir = argv[++i];
		else
			return cli_usage("receive", "expected --pool or --sync DIR, then rsync ARGS");
	}
	if (i >= argc || strcmp(argv[i], "rsync") || pool == !!sync_dir)
		return cli_usage("receive", "expected --pool or --sync DIR, then rsync ARGS");
	if (pool) {
		p = cli_open_pool(c, POOL_LOCK_SHARED);
		if (!p)
			return 1;
	}
	r = run_inherit(argv + i, &status);
	if (r < 0) {
		pool_close(p);
		return cli_error("receive: run", "rsync", r, NULL);
	}
	if (status == 0) {
		int fd = p ? dup(p->fd) : open(sync_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || syncfs(fd) < 0) {
			r = neg_errno();
			if (fd >= 0)
				close(fd);
			pool_close(p);
			return cli_error("receive: sync", p ? c->pool_path : sync_dir, r, NULL);
		}
		close(fd);
	}
	pool_close(p);
	return status;
}
