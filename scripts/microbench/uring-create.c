/* uring-create: does io_uring make file creation cheaper here?  Creates N
 * empty files in DIR with plain openat+close (MODE 0) or with io_uring
 * (MODE 1: batches of 64 linked openat+close pairs on direct descriptors),
 * the operation that dominates a first redirect unify.  Not part of the
 * build (it needs liburing-dev):
 *
 *   gcc -O2 -o uring-create scripts/microbench/uring-create.c -luring
 *   ./uring-create /mnt/x/a 18000 0; ./uring-create /mnt/x/b 18000 1
 *
 * See docs/DESIGN.md, "Where the time goes". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: uring-create DIR N MODE\n");
		return 2;
	}
	int n = (int)strtol(argv[2], 0, 10), mode = (int)strtol(argv[3], 0, 10);
	mkdir(argv[1], 0755);
	int d = open(argv[1], O_RDONLY | O_DIRECTORY);
	char(*names)[32] = malloc((size_t)n * 32);
	for (int i = 0; i < n; i++)
		snprintf(names[i], 32, "f%d", i);
	double t0 = now();
	if (mode == 0) {
		for (int i = 0; i < n; i++) {
			int fd = openat(d, names[i], O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd < 0) {
				perror("openat");
				return 1;
			}
			close(fd);
		}
	} else {
		struct io_uring ring;
		if (io_uring_queue_init(256, &ring, 0) < 0) {
			perror("init");
			return 1;
		}
		int files[64];
		memset(files, -1, sizeof files);
		if (io_uring_register_files(&ring, files, 64) < 0) {
			perror("reg");
			return 1;
		}
		for (int i = 0; i < n; i += 64) {
			int k = n - i < 64 ? n - i : 64;
			for (int j = 0; j < k; j++) {
				struct io_uring_sqe *s = io_uring_get_sqe(&ring);
				io_uring_prep_openat_direct(s, d, names[i + j], O_WRONLY | O_CREAT | O_EXCL,
				                            0644, (unsigned)j);
				s->flags |= IOSQE_IO_LINK;
				s = io_uring_get_sqe(&ring);
				io_uring_prep_close_direct(s, (unsigned)j);
			}
			io_uring_submit_and_wait(&ring, (unsigned)(2 * k));
			for (int j = 0; j < 2 * k; j++) {
				struct io_uring_cqe *c;
				io_uring_wait_cqe(&ring, &c);
				if (c->res < 0) {
					fprintf(stderr, "op %d: %s\n", j, strerror(-c->res));
					return 1;
				}
				io_uring_cqe_seen(&ring, c);
			}
		}
	}
	printf("mode %d: %d files in %.3f s (%.1f us/file)\n", mode, n, now() - t0, (now() - t0) / n * 1e6);
	return 0;
}
