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
#include "replica.h"
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
		       "Plumbing: print \"vunify-objects 1\", \"layout L\", \"pool PATH\", then the name\n"
		       "of every\n"
		       "object in the pool, one a line (what 'replicate' asks a replica over ssh).\n");
		return 0;
	}
	if (argc != 1)
		return cli_usage("objects", "no arguments expected");
	p = cli_open_pool(c, POOL_LOCK_SHARED);
	if (!p)
		return 1;
	if (strchr(p->path, '\n')) {
		pool_close(p);
		return cli_fail("objects: pool path '%s' holds a newline", c->pool_path);
	}
	printf("vunify-objects 1\nlayout %s\npool %s\n", layout_name(p->layout), p->path);
	r = objects_names(p, print_name, NULL);
	if (r == 0 && fflush(stdout) != 0)
		r = -EIO;
	pool_close(p);
	return r < 0 ? cli_error("objects", c->pool_path, r, NULL) : 0;
}

/* vunify [-p POOL] receive (--pool --stage NAME | --sync DIR) rsync ARGS...
 *
 * 1. --pool: take the pool's shared lock (its gc and tmp cleanup wait),
 * 2. run rsync ARGS with our stdin/stdout (the ssh channel),
 * 3. when rsync succeeded: --pool commits the objects staged in
 *    POOL/tmp/NAME (durable, verified, then named: replica_commit);
 *    --sync DIR syncfs()es DIR's filesystem,
 * 4. exit with rsync's status, or 1 if step 3 failed: the sender's rsync
 *    waits for this exit before it reports success. */
int cmd_receive(const struct cli *c, int argc, char **argv)
{
	struct pool *p = NULL;
	const char *sync_dir = NULL, *stage = NULL;
	bool pool = false;
	int i = 1, r, status = 0;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--pool"))
			pool = true;
		else if (!strcmp(argv[i], "--stage") && i + 1 < argc)
			stage = argv[++i];
		else if (!strcmp(argv[i], "--sync") && i + 1 < argc)
			sync_dir = argv[++i];
		else
			break;
	}
	if (i >= argc || strcmp(argv[i], "rsync") || pool == !!sync_dir || pool != !!stage)
		return cli_usage("receive", "expected --pool --stage NAME or --sync DIR, then rsync ARGS");
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
	if (status == 0 && p) {
		r = replica_commit(p, stage, NULL);
		if (r < 0)
			cli_error("receive: commit the objects in", stage, r,
			          r == -EBADMSG ? "content does not match the name; not kept" : NULL);
	} else if (status == 0) {
		int fd = open(sync_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = fd < 0 || syncfs(fd) < 0 ? neg_errno() : 0;
		if (fd >= 0)
			close(fd);
		if (r < 0)
			cli_error("receive: sync", sync_dir, r, NULL);
	}
	pool_close(p);
	return r < 0 ? 1 : status;
}
