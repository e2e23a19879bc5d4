/* mkguests: synthetic guest root trees for make bench-scale.
 *
 *   mkguests DIR FILES SEED NAME...
 *
 * Writes one tree DIR/NAME per NAME, each of FILES regular files (plus their
 * directories and a few symlinks), deterministic in SEED and NAME:
 *   - 80 % of the files are the shared part: the same paths and contents in
 *     every guest built with the same FILES and SEED (usr/lib, usr/share);
 *   - 10 % are unique system files (usr/local/lib/NAME/...: unified even
 *     when unique, so each guest brings new objects);
 *   - 10 % are unique files outside the system paths (etc, var/lib, home:
 *     their content is the guest's own and stays in its upper).
 * Sizes follow a log-normal spread like a Debian tree's (median about
 * 2 KiB, mean about 6 KiB, 1 % empty, none above 1 MiB), 16 to 24 files per
 * directory.  Prints "files=N bytes=B" per tree on stdout.  Exit status 0,
 * 1 on an error, 2 on a usage error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static uint64_t name_seed(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* A size from the log-normal spread, from one 64-bit random value: log2 of
 * the size about normal (the sum of four 16-bit uniforms), mean 11, sd 2.2. */
static size_t file_size(uint64_t r)
{
	uint64_t sum = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
	/* sum/65536 has mean 2 and sd 0.577 */
	double z = ((double)sum / 65536.0 - 2.0) / 0.57735;
	double l2 = 11.0 + 2.2 * z;
	unsigned e;

	if ((mix(r) & 0xff) < 3)
		return 0;
	if (l2 < 0)
		l2 = 0;
	if (l2 > 20)
		l2 = 20;
	e = (unsigned)l2;
	/* 2^l2, the fraction linear between powers of two */
	return (size_t)((double)(1UL << e) * (1.0 + (l2 - (double)e)));
}

static int mkdirs(char *path)
{
	for (char *s = path + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			*s = '/';
			return -1;
		}
		*s = '/';
	}
	return 0;
}

static int write_file(const char *path, uint64_t content_seed, size_t size, unsigned char *buf)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	uint64_t x = content_seed | 1;

	if (fd < 0)
		return -1;
	for (size_t i = 0; i + 8 <= size; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
	for (size_t i = size & ~(size_t)7; i < size; i++)
		buf[i] = (unsigned char)(content_seed >> (8 * (i & 7)));
	if (write(fd, buf, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int make_tree(const char *dir, const char *name, unsigned long files, uint64_t seed,
                     uint64_t *ret_bytes)
{
	unsigned long shared = files * 8 / 10, usys = files / 10;
	uint64_t gseed = mix(seed ^ name_seed(name)), bytes = 0;
	unsigned char *buf = malloc(1 << 20);
	char path[4096];

	if (!buf)
		return -1;
	for (unsigned long i = 0; i < files; i++) {
		const char *area;
		uint64_t id, cs;
		unsigned long k, per = 16 + (unsigned long)(mix(seed + i / 20) % 9);
		if (i < shared) {
			area = i % 3 ? "usr/lib" : "usr/share";
			k = i;
			id = mix(seed ^ (i * 2 + 1));
			cs = id;
		} else if (i < shared + usys) {
			area = "usr/local/lib";
			k = i - shared;
			id = mix(gseed ^ (i * 2 + 1));
			cs = id;
		} else {
			static const char *const other[] = {"etc", "var/lib", "home/user"};
			area = other[i % 3];
			k = i - shared - usys;
			id = mix(gseed ^ (i * 2 + 1));
			cs = id;
		}
		size_t size = file_size(mix(id + 7));
		int n = i < shared ? snprintf(path, sizeof(path), "%s/%s/%s/pkg%03lu/d%02lu/f%05lu", dir,
		                              name, area, k / (per * 8), (k / per) % 8, k)
		                   : snprintf(path, sizeof(path), "%s/%s/%s/%s-%03lu/f%05lu", dir, name, area,
		                              name, k / per, k);
		if (n < 0 || (size_t)n >= sizeof(path) || mkdirs(path) < 0 ||
		    write_file(path, cs, size, buf) < 0) {
			fprintf(stderr, "mkguests: %s: %s\n", path, strerror(errno));
			free(buf);
			return -1;
		}
		bytes += size;
		if (i % 200 == 0) {
			/* a symlink now and then, as a root tree has */
			char target[64];
			snprintf(target, sizeof(target), "f%05lu", k);
			strcat(path, ".link");
			if (symlink(target, path) < 0) {
				fprintf(stderr, "mkguests: %s: %s\n", path, strerror(errno));
				free(buf);
				return -1;
			}
		}
	}
	free(buf);
	*ret_bytes = bytes;
	return 0;
}

int main(int argc, char **argv)
{
	char *end;
	unsigned long files;
	uint64_t seed;

	if (argc < 5) {
		fprintf(stderr, "usage: mkguests DIR FILES SEED NAME...\n");
		return 2;
	}
	files = strtoul(argv[2], &end, 10);
	if (*end || files == 0) {
		fprintf(stderr, "mkguests: FILES must be a positive number: %s\n", argv[2]);
		return 2;
	}
	seed = strtoull(argv[3], &end, 10);
	if (*end) {
		fprintf(stderr, "mkguests: SEED must be a number: %s\n", argv[3]);
		return 2;
	}
	umask(022);
	for (int i = 4; i < argc; i++) {
		uint64_t bytes = 0;
		if (strchr(argv[i], '/') || !argv[i][0] ||
		    make_tree(argv[1], argv[i], files, seed, &bytes) < 0)
			return 1;
		printf("%s files=%lu bytes=%llu\n", argv[i], files, (unsigned long long)bytes);
	}
	return 0;
}
