/* opfloor: the work a first redirect-layout unify cannot avoid, timed on
 * this machine, for make bench.
 *
 *   opfloor DEST TREE...
 *
 * Three passes over the regular files of the TREEs, on one thread:
 *   hash   open (O_NOFOLLOW, O_NOATIME), fstat, read and SHA-256 each file,
 *          as unify's hash phase does;
 *   stubs  create one metacopy stub per file in a working copy on a
 *          private tmpfs (meta_work_open; a directory per tree mirroring
 *          it): create, ftruncate, the two overlay xattrs, futimens,
 *          close, as the redirect layout's place does in pool format 4
 *          (no stub inodes on disk any more);
 *   image  the EROFS image of that working copy written to DEST/meta.img
 *          (temp name, fsync, rename), as unify does per guest.
 * Prints one line per pass with wall and CPU seconds, and the sum of the
 * CPU seconds divided by the CPUs online: no first unify on this machine
 * can take less wall time (it does this and more: unlinking or renaming
 * every upper copy).  Exit status 0, 1 on an error, 2 on a usage error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "dircache.h"
#include "hash.h"
#include "meta_image.h"
#include "overlay.h"
#include "util.h"
#include "walk.h"

struct pass {
	const char *name;
	struct hasher h;
	struct dircache dc; /* stubs: DEST/<tree number>/... */
	unsigned tree;
	uint64_t files, bytes;
};

static double cpu_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static double wall_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int hash_file(struct pass *ps, const struct walk_entry *e)
{
	unsigned char md[HASH_LEN];
	struct stat st;
	_cleanup_close_ int fd = openat(
	        e->parent_fd, e->name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC | O_NOATIME);

	if (fd < 0 || fstat(fd, &st) < 0)
		return neg_errno();
	return hasher_fd(&ps->h, fd, (uint64_t)st.st_size, md);
}

static int make_stub(struct pass *ps, const struct walk_entry *e)
{
	/* "/XX/<64 hex>": the length of a real redirect */
	static const char redirect[] = "/ab/ab00000000000000000000000000000000000000000000000000000000000000";
	struct timespec ts[2] = {e->st.st_atim, e->st.st_mtim};
	char rel[32];
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	const char *name;
	int dfd;

	snprintf(rel, sizeof(rel), "%u", ps->tree);
	path = path_join(rel, e->path);
	if (!path)
		return -ENOMEM;
	dfd = dircache_parent(&ps->dc, path, &name);
	if (dfd < 0)
		return dfd;
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, e->st.st_mode & 07777);
	if (fd < 0 || ftruncate(fd, e->st.st_size) < 0 || fsetxattr(fd, OVL_XATTR_METACOPY, "", 0, 0) < 0 ||
	    fsetxattr(fd, OVL_XATTR_REDIRECT, redirect, sizeof(redirect) - 1, 0) < 0 || futimens(fd, ts) < 0)
		return neg_errno();
	return 0;
}

static int visit(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct pass *ps = ud;
	int r;

	if (ev != WALK_ENTRY || !S_ISREG(e->st.st_mode))
		return 0;
	r = ps->dc.root_fd < 0 ? hash_file(ps, e) : make_stub(ps, e);
	if (r < 0) {
		fprintf(stderr, "opfloor: %s: %s\n", e->path, strerror(-r));
		return r;
	}
	ps->files++;
	ps->bytes += (uint64_t)e->st.st_size;
	return 0;
}

static int run(struct pass *ps, char **trees, int n, double *ret_cpu)
{
	double w0 = wall_now(), c0 = cpu_now();

	for (int i = 0; i < n; i++) {
		_cleanup_close_ int fd = open(trees[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int r;
		if (fd < 0) {
			fprintf(stderr, "opfloor: %s: %s\n", trees[i], strerror(errno));
			return -1;
		}
		ps->tree = (unsigned)i;
		r = walk_tree(fd, visit, ps);
		if (r < 0)
			return -1;
	}
	*ret_cpu = cpu_now() - c0;
	printf("%s files=%llu bytes=%llu wall_s=%.2f cpu_s=%.2f\n", ps->name, (unsigned long long)ps->files,
	       (unsigned long long)ps->bytes, wall_now() - w0, *ret_cpu);
	return 0;
}

int main(int argc, char **argv)
{
	struct pass hp = {.name = "hash"}, sp = {.name = "stubs"};
	double ch, cs, ci, w0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int dest, work = -1, r;

	if (argc < 3) {
		fprintf(stderr, "usage: opfloor DEST TREE...\n");
		return 2;
	}
	if (mkdir(argv[1], 0755) < 0 || (dest = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "opfloor: %s: %s (it must not exist)\n", argv[1], strerror(errno));
		return 1;
	}
	/* stubs carry their files' modes, as unify makes them */
	umask(0);
	if (hasher_init(&hp.h) < 0)
		return 1;
	dircache_init(&hp.dc, -1, false);
	r = meta_work_open(dest, &work);
	if (r < 0) {
		fprintf(stderr, "opfloor: a working copy on tmpfs: %s\n", strerror(-r));
		return 1;
	}
	dircache_init(&sp.dc, work, true);
	if (run(&hp, argv + 2, argc - 2, &ch) < 0 || run(&sp, argv + 2, argc - 2, &cs) < 0)
		return 1;
	w0 = wall_now();
	ci = cpu_now();
	r = meta_image_write(work, dest);
	if (r < 0) {
		fprintf(stderr, "opfloor: %s/meta.img: %s\n", argv[1], strerror(-r));
		return 1;
	}
	ci = cpu_now() - ci;
	printf("image files=%llu bytes=%llu wall_s=%.2f cpu_s=%.2f\n", (unsigned long long)sp.files,
	       (unsigned long long)sp.bytes, wall_now() - w0, ci);
	printf("floor cpus=%ld wall_s=%.2f\n", ncpu, (ch + cs + ci) / (double)(ncpu > 0 ? ncpu : 1));
	dircache_release(&sp.dc);
	hasher_release(&hp.h);
	close(work);
	close(dest);
	return 0;
}
