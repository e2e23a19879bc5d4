/* vunify: argument parsing and dispatch. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "util.h"
#include "banned.h"

static const struct {
	const char *name;
	int (*fn)(const struct cli *c, int argc, char **argv);
	const char *summary;
} commands[] = {
        {"init", cmd_init, "create a pool"},
        {"add", cmd_add, "register a guest (optionally copying its tree in)"},
        {"unify", cmd_unify, "move identical files of guests into the pool"},
        {"mount", cmd_mount, "mount a guest's merged root"},
        {"umount", cmd_umount, "unmount a guest's merged root"},
        {"status", cmd_status, "pool and per-guest figures"},
        {"gc", cmd_gc, "delete objects no guest references"},
        {"fsck", cmd_fsck, "verify objects and guests' lower layers"},
        {"export", cmd_export, "write a guest's merged tree as a plain tree"},
        {"remove", cmd_remove, "unregister a guest (its home keeps the whole tree)"},
        {"replica", cmd_replica, "add, remove or list the pools that hold copies of the objects"},
        {"replicate", cmd_replicate, "send the objects the guests need to the replicas"},
        {"adopt", cmd_adopt, "register a home made by another pool (after failover)"},
        {"send", cmd_send, "copy an unmounted guest to another host's pool"},
        {"objects", cmd_objects, "plumbing: list the pool's object names"},
        {"receive", cmd_receive, "plumbing: receive over rsync, durably (for another host)"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vunify [-p POOL] COMMAND [ARGS...]\n\n"
	           "Unify the root filesystems of many guests into a content-addressed pool\n"
	           "and mount each through overlayfs.\n\n"
	           "Options:\n"
	           "  -p, --pool DIR   the pool (default: $VUNIFY_POOL, else " POOL_DEFAULT_PATH ")\n"
	           "  -h, --help       this help\n"
	           "  -V, --version    print the version\n\n"
	           "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun 'vunify COMMAND --help' for a command's options.\n");
}

/* Deep guest trees need one fd per directory level. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"pool", required_argument, NULL, 'p'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {0},
	};
	struct cli c = {.prog = "vunify"};
	const char *base = strrchr(argv[0], '/');
	int ch;

	/* Installed as a link /sbin/mount.vunify -> vunify, for mount(8). */
	if (!strcmp(base ? base + 1 : argv[0], "mount.vunify"))
		return mount_helper_main(argc, argv);

	/* getopt's own messages start with argv[0] (a full path, or a
	 * command name): every option error is ours to print instead */
	opterr = 0;
	c.pool_path = getenv("VUNIFY_POOL");
	if (!c.pool_path || !*c.pool_path)
		c.pool_path = POOL_DEFAULT_PATH;
	while ((ch = getopt_long(argc, argv, "+p:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			c.pool_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vunify %s\n", VUNIFY_VERSION);
			return 0;
		default:
			fprintf(stderr, "vunify: unknown option, or option without its argument: '%s'\n",
			        argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	raise_nofile();
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (!strcmp(argv[optind], commands[i].name)) {
			char **sub = argv + optind;
			int subc = argc - optind;
			optind = 0; /* GNU getopt: 0 restarts the scan (and its permutation) */
			return commands[i].fn(&c, subc, sub);
		}
	}
	fprintf(stderr, "vunify: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return EXIT_USAGE;
}
