/* vunify mount / umount, and mount.vunify: the helper mount(8) runs for
 * "mount -t vunify GUEST TARGET -o pool=POOL" and fstab lines of type
 * vunify (the vunify binary called by that name). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "guest_mount.h"
#include "overlay.h"
#include "util.h"
#include "banned.h"

static int simple_opts(const char *cmd, int argc, char **argv, const char *usage_text)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	int ch;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			fputs(usage_text, stdout);
			return 0;
		}
		return cli_usage(cmd, "unknown option, or option without its argument: '%s'",
		                 argv[optind - 1]);
	}
	return -1;
}

/* What a mount asks for beyond GUEST and TARGET: mount(2) flags (ro,
 * nosuid, ...) from mount.vunify's -o, -f (check everything, mount
 * nothing) and -v. */
struct mount_request {
	unsigned long flags;
	bool fake, verbose;
};

/* What guest_mount did about a pending switch, and how long the guest
 * waited for it. */
static void print_switch(const struct guest *g, const struct guest_mount_result *m)
{
	if (!m->switch_ran)
		return;
	if (m->sw.discarded)
		printf("%s: a prepared switch from another home or host was discarded\n", g->name);
	else if (m->sw.switched)
		printf("%s: switch: %llu files in %.2f s (%llu changed since, kept in the upper; %llu "
		       "deleted since, left out)\n",
		       g->name, (unsigned long long)m->sw.files_purged, m->sw.seconds,
		       (unsigned long long)m->sw.files_kept, (unsigned long long)m->sw.entries_dropped);
	fflush(stdout);
}

/* guest_mount's failure as one line: what it was doing, and why. */
static void print_mount_error(const struct guest *g, const struct pool *p, const struct guest_mount_result *m,
                              int r)
{
	switch (m->step) {
	case GUEST_MOUNT_FIND:
		if (r == -EBUSY)
			cli_fail("mount '%s': already mounted at '%s'", g->name, m->mounted_at);
		else
			cli_fail("mount '%s': cannot tell whether it is mounted: %s", g->name, strerror(-r));
		break;
	case GUEST_MOUNT_PENDING:
		cli_error("mount: pending switch of", g->name, r, NULL);
		break;
	case GUEST_MOUNT_LOCK:
		cli_error("mount: lock", p->path, r, NULL);
		break;
	case GUEST_MOUNT_RECHECK:
		if (r == -EBUSY)
			cli_fail("mount '%s': mounted meanwhile", g->name);
		else
			cli_fail("mount '%s': cannot tell whether it is mounted: %s", g->name, strerror(-r));
		break;
	case GUEST_MOUNT_SWITCH:
		cli_error("mount: switch of", g->name, r,
		          "the guest's view is intact; 'vunify mount' again finishes it");
		break;
	case GUEST_MOUNT_WORK: {
		_cleanup_free_ char *work = path_join(g->home, HOME_WORK);
		cli_error("mount: work", work ? work : g->home, r, NULL);
		break;
	}
	case GUEST_MOUNT_LOWER:
		cli_error("mount: lower layer of", g->name, r, NULL);
		break;
	case GUEST_MOUNT_LOCATE:
		cli_error("mount", g->name, r, NULL);
		break;
	case GUEST_MOUNT_IMAGE:
		cli_error("mount: metadata image of", g->name, r,
		          "the kernel mounts neither the image file (erofs, Linux 6.12+) nor a loop device "
		          "of it "
		          "(erofs and loop support needed; see dmesg)");
		break;
	case GUEST_MOUNT_OPTIONS:
		cli_error("mount: overlay options for", g->name, r, NULL);
		break;
	case GUEST_MOUNT_MOUNT:
		cli_error("mount", g->name, r, r == -EINVAL ? "kernel refused the overlay; see dmesg" : NULL);
		break;
	}
}

/* Mount GUEST's merged root at TARGET_ARG; prints its own one-line error.
 * The order is guest_mount's (lib/guest_mount.c). */
static int mount_guest(const struct cli *c, const char *name, const char *target_arg,
                       const struct mount_request *req)
{
	struct pool *p;
	struct guest *g;
	struct guest_mount_result m = {0};
	_cleanup_free_ char *target = NULL;
	_cleanup_close_ int home_fd = -1;
	struct stat st;
	int r, ret = 1;

	if (cli_open_guest(c, "mount", POOL_LOCK_SHARED, name, &p, &g, &home_fd))
		goto out;
	target = realpath(target_arg, NULL);
	if (!target || stat(target, &st) < 0) {
		cli_error("mount: target", target_arg, neg_errno(), NULL);
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_error("mount: target", target_arg, -ENOTDIR, NULL);
		goto out;
	}
	r = guest_mount(p, g, home_fd, target, req->flags, req->fake, &m);
	print_switch(g, &m);
	if (req->verbose && m.options)
		fprintf(stderr, "vunify: %smount -t overlay vunify %s -o %s%s\n", req->fake ? "would " : "",
		        target, req->flags & MS_RDONLY ? "ro," : "", m.options);
	if (r < 0) {
		print_mount_error(g, p, &m, r);
		goto out;
	}
	ret = 0;
	if (m.cleanup_error < 0)
		fprintf(stderr, "vunify: mount '%s': after the switch: %s (the guest is mounted)\n", g->name,
		        strerror(-m.cleanup_error));
out:
	guest_mount_result_free(&m);
	guest_free(g);
	pool_close(p);
	return ret;
}

int cmd_mount(const struct cli *c, int argc, char **argv)
{
	static const struct mount_request plain = {0};
	int r;

	r = simple_opts("mount", argc, argv,
	                "usage: vunify [-p POOL] mount GUEST TARGET\n\n"
	                "Mount GUEST's merged root (lower layer + its upper) at TARGET.\n"
	                "Also as 'mount -t vunify GUEST TARGET -o pool=POOL' (mount.vunify(8)).\n");
	if (r >= 0)
		return r;
	if (argc - optind != 2)
		return cli_usage("mount", "expected GUEST TARGET");
	return mount_guest(c, argv[optind], argv[optind + 1], &plain);
}

/* mount(8)'s exit codes, which it passes on from its helpers. */
#define MOUNT_EX_USAGE 1
#define MOUNT_EX_FAIL 32

/* mount(2) flags mount(8) may pass on in -o; "no" clears. */
static const struct {
	const char *name;
	unsigned long flag;
	bool clear;
} mount_flag_opts[] = {
        {"ro", MS_RDONLY, false},
        {"rw", MS_RDONLY, true},
        {"nosuid", MS_NOSUID, false},
        {"suid", MS_NOSUID, true},
        {"nodev", MS_NODEV, false},
        {"dev", MS_NODEV, true},
        {"noexec", MS_NOEXEC, false},
        {"exec", MS_NOEXEC, true},
        {"noatime", MS_NOATIME, false},
        {"atime", MS_NOATIME, true},
        {"nodiratime", MS_NODIRATIME, false},
        {"diratime", MS_NODIRATIME, true},
        {"relatime", MS_RELATIME, false},
        {"norelatime", MS_RELATIME, true},
        {"strictatime", MS_STRICTATIME, false},
        {"lazytime", MS_LAZYTIME, false},
        {"sync", MS_SYNCHRONOUS, false},
        {"async", MS_SYNCHRONOUS, true},
        {"dirsync", MS_DIRSYNC, false},
        {"silent", MS_SILENT, false},
        {"loud", MS_SILENT, true},
};

/* Options that concern mount(8), fstab or systemd and not the mount
 * itself: accepted and ignored (mount(8) strips most of them already). */
static bool mount_userspace_opt(const char *o)
{
	static const char *const names[] = {"defaults", "auto",    "noauto", "nofail", "_netdev",
	                                    "user",     "nouser",  "users",  "owner",  "group",
	                                    "nousers",  "noowner", "nogroup"};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(o, names[i]))
			return true;
	return !strncmp(o, "x-", 2) || !strncmp(o, "comment=", 8);
}

static void mount_helper_usage(FILE *f)
{
	fputs("usage: mount.vunify GUEST TARGET [-sfnv] [-o pool=POOL[,OPTIONS]]\n\n"
	      "Called by mount(8) for 'mount -t vunify GUEST TARGET -o pool=POOL' and fstab\n"
	      "lines of type vunify.  Without pool=, the pool is $VUNIFY_POOL, else " POOL_DEFAULT_PATH ".\n"
	      "OPTIONS: ro, rw, nosuid, nodev, noexec, the atime options, sync, dirsync;\n"
	      "fstab's defaults, auto, noauto, nofail, _netdev, x-*, comment= are ignored;\n"
	      "anything else is refused (ignored with -s).\n",
	      f);
}

int mount_helper_main(int argc, char **argv)
{
	struct cli c = {.prog = "mount.vunify"};
	struct mount_request req = {0};
	_cleanup_free_ char *optstr = NULL;
	char *save = NULL;
	bool sloppy = false, pool_given = false;
	int ch;

	c.pool_path = getenv("VUNIFY_POOL");
	if (!c.pool_path || !*c.pool_path)
		c.pool_path = POOL_DEFAULT_PATH;
	/* mount(8) calls: mount.vunify SPEC DIR [-sfnv] [-N NS] [-o OPTS] [-t TYPE] */
	while ((ch = getopt(argc, argv, "sfnvN:o:t:h")) != -1) {
		switch (ch) {
		case 's':
			sloppy = true;
			break;
		case 'f':
			req.fake = true;
			break;
		case 'n': /* no mtab to write on this system: nothing to skip */
			break;
		case 'v':
			req.verbose = true;
			break;
		case 'N':
			fputs("vunify: mount.vunify: -N (mount namespace) is not supported\n", stderr);
			return MOUNT_EX_USAGE;
		case 'o':
			free(optstr);
			optstr = strdup(optarg);
			if (!optstr)
				return cli_error("mount.vunify", NULL, -ENOMEM, NULL) ? MOUNT_EX_FAIL : 0;
			break;
		case 't':
			if (strcmp(optarg, "vunify")) {
				fprintf(stderr, "vunify: mount.vunify: type '%s' is not vunify\n", optarg);
				return MOUNT_EX_USAGE;
			}
			break;
		case 'h':
			mount_helper_usage(stdout);
			return 0;
		default:
			mount_helper_usage(stderr);
			return MOUNT_EX_USAGE;
		}
	}
	if (argc - optind != 2) {
		mount_helper_usage(stderr);
		return MOUNT_EX_USAGE;
	}
	for (char *o = optstr ? strtok_r(optstr, ",", &save) : NULL; o; o = strtok_r(NULL, ",", &save)) {
		bool known = false;

		if (!strncmp(o, "pool=", 5)) {
			if (!o[5]) {
				fputs("vunify: mount.vunify: option 'pool=' needs a directory\n", stderr);
				return MOUNT_EX_USAGE;
			}
			c.pool_path = o + 5;
			pool_given = true;
			continue;
		}
		for (size_t i = 0; i < ARRAY_SIZE(mount_flag_opts); i++) {
			if (strcmp(o, mount_flag_opts[i].name))
				continue;
			if (mount_flag_opts[i].clear)
				req.flags &= ~mount_flag_opts[i].flag;
			else
				req.flags |= mount_flag_opts[i].flag;
			known = true;
		}
		if (known || mount_userspace_opt(o))
			continue;
		if (!sloppy) {
			fprintf(stderr, "vunify: mount.vunify: unknown option '%s' (-s ignores it)\n", o);
			return MOUNT_EX_USAGE;
		}
		if (req.verbose)
			fprintf(stderr, "vunify: mount.vunify: ignoring option '%s'\n", o);
	}
	if (!pool_given && access(c.pool_path, F_OK) < 0) {
		fprintf(stderr,
		        "vunify: mount.vunify: no pool= option and no pool at '%s' (add -o pool=DIR)\n",
		        c.pool_path);
		return MOUNT_EX_USAGE;
	}
	return mount_guest(&c, argv[optind], argv[optind + 1], &req) ? MOUNT_EX_FAIL : 0;
}

int cmd_umount(const struct cli *c, int argc, char **argv)
{
	struct pool *p;
	struct guest *g;
	_cleanup_free_ char *upper = NULL;
	int r, ret = 1, n = 0;

	r = simple_opts(
	        "umount", argc, argv,
	        "usage: vunify [-p POOL] umount GUEST\n\nUnmount every mount of GUEST's merged root.\n");
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return cli_usage("umount", "expected GUEST");
	if (cli_open_guest(c, "umount", POOL_LOCK_SHARED, argv[optind], &p, &g, NULL))
		goto out;
	upper = path_join(g->home, HOME_UPPER);
	if (!upper) {
		cli_error("umount", g->name, -ENOMEM, NULL);
		goto out;
	}
	for (;;) {
		_cleanup_free_ char *target = NULL;
		r = overlay_find_local_mounts(upper, &target);
		if (r < 0) {
			cli_error("umount", g->name, r, NULL);
			goto out;
		}
		if (r == 0)
			break;
		r = overlay_umount(target);
		if (r < 0) {
			cli_error("umount", target, r, NULL);
			goto out;
		}
		n++;
	}
	if (n == 0) {
		cli_fail("umount '%s': not mounted", g->name);
		goto out;
	}
	ret = 0;
out:
	guest_free(g);
	pool_close(p);
	return ret;
}
