/* manifest: print what a guest sees of a tree, one line per entry, sorted
 * by path bytes, so that two views can be compared with diff(1).  This is
 * the test suite's measure of SPEC invariant 1 (fidelity).
 *
 *   manifest [--no-ino] [--skip PATH]... DIR
 *
 * Line format (fields separated by one space; every string field is
 * escaped so it holds no space, newline or non-printable byte):
 *
 *   PATH TYPE mode=MMMM uid=U gid=G [size=N sha256=HEX] [target=T]
 *        [rdev=MAJ:MIN] xattrs=-|NAME=HEX[,NAME=HEX...] [mtime=S.NNNNNNNNN]
 *        [link=-|FIRSTPATH]
 *
 * PATH is "/" for the root and "/a/b" below it; TYPE is one of file dir
 * symlink chr blk fifo sock.  size and sha256 appear for regular files,
 * target for symlinks, rdev for devices, mtime for non-directories.
 * xattrs are sorted by name, trusted.overlay.* left out.  link appears for
 * non-directories unless --no-ino: when two or more paths inside the tree
 * share one (st_dev, st_ino), each of them names the first such path in
 * sorted order, else "-".  st_nlink and st_ino are never printed, since the
 * link layout and overlayfs change them without changing the view.
 *
 * Escaping: bytes outside 0x21..0x7e, and '\\', are written as \xHH; in
 * xattr names '=' and ',' too.
 *
 * Nothing is followed: the walk is lib/walk.c's, regular files are opened
 * O_NOFOLLOW and checked against the walk's lstat, other types' xattrs are
 * read through O_PATH fds.  Exit status 0, 1 on an error reading the tree,
 * 2 on a usage error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "hash.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

struct entry {
	char *path; /* relative, "" for the root */
	char *target; /* symlink target, raw bytes */
	char *xattrs; /* formatted, "-" when none */
	const char *link; /* first path of its hard-link group, or NULL */
	dev_t dev, rdev;
	ino_t ino;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	nlink_t nlink;
	off_t size;
	struct timespec mtime;
	char sha[HASH_HEX_LEN + 1];
};

struct manifest {
	struct entry *v;
	size_t n, cap;
	char **skip;
	size_t nskip;
	const char *failed_path; /* where the walk failed, for the message */
	const char *last_path; /* last entry visited, when the walk itself fails */
};

/* A growing string. */
struct sbuf {
	char *s;
	size_t len, cap;
};

static int sbuf_add(struct sbuf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = MAX(b->len + n + 1, b->cap * 2 + 64);
		char *s = realloc(b->s, cap);
		if (!s)
			return -ENOMEM;
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

static int sbuf_escape(struct sbuf *b, const unsigned char *p, size_t n, const char *also)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		int r;

		if (c < 0x21 || c > 0x7e || c == '\\' || (also && strchr(also, c))) {
			char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
			r = sbuf_add(b, e, 4);
		} else {
			r = sbuf_add(b, &c, 1);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int sbuf_hex(struct sbuf *b, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		char e[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
		int r = sbuf_add(b, e, 2);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Format xattrs as "name=hex,name=hex" (or "-") into *ret (malloc'd). */
static int format_xattrs(const struct xattr_list *l, char **ret)
{
	struct sbuf b = {0};
	int r = 0;

	if (l->n == 0) {
		*ret = strdup("-");
		return *ret ? 0 : -ENOMEM;
	}
	for (size_t i = 0; i < l->n && r == 0; i++) {
		if (i > 0)
			r = sbuf_add(&b, ",", 1);
		if (r == 0)
			r = sbuf_escape(&b, (const unsigned char *)l->v[i].name, strlen(l->v[i].name), "=,");
		if (r == 0)
			r = sbuf_add(&b, "=", 1);
		if (r == 0)
			r = sbuf_hex(&b, l->v[i].value, l->v[i].size);
	}
	if (r < 0) {
		free(b.s);
		return r;
	}
	*ret = b.s;
	return 0;
}

static bool is_skipped(const struct manifest *m, const char *path)
{
	for (size_t i = 0; i < m->nskip; i++)
		if (!strcmp(m->skip[i], path))
			return true;
	return false;
}

/* Read content hash (regular files), symlink target and xattrs of e. */
static int read_entry(const struct walk_entry *we, struct entry *out)
{
	struct xattr_list xl = {0};
	_cleanup_close_ int fd = -1;
	bool o_path = false;
	int r;

	if (S_ISDIR(we->st.st_mode)) {
		r = xattr_list_read(we->fd, false, XATTR_SKIP_OVERLAY, &xl);
	} else {
		if (S_ISREG(we->st.st_mode)) {
			int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
			struct stat st;
			unsigned char h[HASH_LEN];

			fd = openat(we->parent_fd, we->name, flags | O_NOATIME);
			if (fd < 0 && errno == EPERM)
				fd = openat(we->parent_fd, we->name, flags);
			if (fd < 0)
				return neg_errno();
			if (fstat(fd, &st) < 0)
				return neg_errno();
			if (st.st_ino != we->st.st_ino || st.st_dev != we->st.st_dev || !S_ISREG(st.st_mode))
				return -EAGAIN; /* swapped between lstat and open */
			r = hash_fd(fd, (uint64_t)st.st_size, h);
			if (r < 0)
				return r;
			hash_to_hex(h, out->sha);
		} else {
			fd = openat(we->parent_fd, we->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				return neg_errno();
			o_path = true;
		}
		if (S_ISLNK(we->st.st_mode)) {
			size_t cap = (size_t)we->st.st_size + 1;
			ssize_t n;

			out->target = malloc(cap + 1);
			if (!out->target)
				return -ENOMEM;
			n = readlinkat(fd, "", out->target, cap);
			if (n < 0)
				return neg_errno();
			if ((size_t)n >= cap)
				return -EAGAIN; /* grew under us */
			out->target[n] = '\0';
		}
		r = xattr_list_read(fd, o_path, XATTR_SKIP_OVERLAY, &xl);
	}
	if (r < 0)
		return r;
	r = format_xattrs(&xl, &out->xattrs);
	xattr_list_free(&xl);
	return r;
}

static int collect(const struct walk_entry *we, enum walk_event ev, void *ud)
{
	struct manifest *m = ud;
	struct entry *e;
	int r;

	if (ev == WALK_DIR_POST)
		return 0;
	if (is_skipped(m, we->path))
		return ev == WALK_DIR_PRE ? WALK_SKIP : 0;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		struct entry *v = realloc(m->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	e = &m->v[m->n];
	memset(e, 0, sizeof(*e));
	e->dev = we->st.st_dev;
	e->ino = we->st.st_ino;
	e->rdev = we->st.st_rdev;
	e->mode = we->st.st_mode;
	e->uid = we->st.st_uid;
	e->gid = we->st.st_gid;
	e->nlink = we->st.st_nlink;
	e->size = we->st.st_size;
	e->mtime = we->st.st_mtim;
	e->path = strdup(we->path);
	if (!e->path)
		return -ENOMEM;
	m->n++; /* from here on freed with the rest */
	m->last_path = e->path;
	r = read_entry(we, e);
	if (r < 0) {
		m->failed_path = e->path;
		return r;
	}
	return 0;
}

static int cmp_path(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

/* Order by inode, then by position (which is path order after sorting). */
static int cmp_inode(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Name each hard-link group (two or more paths of one inode in the tree)
 * after its first path.  Entries must be sorted by path. */
static int link_groups(struct manifest *m)
{
	_cleanup_free_ struct entry **v = NULL;
	size_t n = 0;

	v = malloc((m->n ? m->n : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++)
		if (!S_ISDIR(m->v[i].mode) && m->v[i].nlink > 1)
			v[n++] = &m->v[i];
	qsort(v, n, sizeof(*v), cmp_inode);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && v[j]->dev == v[i]->dev && v[j]->ino == v[i]->ino)
			j++;
		if (j - i > 1)
			for (size_t k = i; k < j; k++)
				v[k]->link = v[i]->path;
		i = j;
	}
	return 0;
}

static const char *type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "file";
	case S_IFDIR:
		return "dir";
	case S_IFLNK:
		return "symlink";
	case S_IFCHR:
		return "chr";
	case S_IFBLK:
		return "blk";
	case S_IFIFO:
		return "fifo";
	case S_IFSOCK:
		return "sock";
	default:
		return "unknown";
	}
}

static int print_entry(const struct entry *e, bool with_ino, FILE *out)
{
	struct sbuf b = {0};
	char num[160];
	int r;

	r = sbuf_add(&b, "/", 1);
	if (r == 0)
		r = sbuf_escape(&b, (const unsigned char *)e->path, strlen(e->path), NULL);
	if (r == 0) {
		snprintf(num, sizeof(num), " %s mode=%04o uid=%lu gid=%lu", type_name(e->mode),
		         (unsigned)(e->mode & 07777), (unsigned long)e->uid, (unsigned long)e->gid);
		r = sbuf_add(&b, num, strlen(num));
	}
	if (r == 0 && S_ISREG(e->mode)) {
		snprintf(num, sizeof(num), " size=%lld sha256=%s", (long long)e->size, e->sha);
		r = sbuf_add(&b, num, strlen(num));
	}
	if (r == 0 && S_ISLNK(e->mode)) {
		r = sbuf_add(&b, " target=", 8);
		if (r == 0)
			r = sbuf_escape(&b, (const unsigned char *)e->target, strlen(e->target), NULL);
	}
	if (r == 0 && (S_ISCHR(e->mode) || S_ISBLK(e->mode))) {
		snprintf(num, sizeof(num), " rdev=%u:%u", major(e->rdev), minor(e->rdev));
		r = sbuf_add(&b, num, strlen(num));
	}
	if (r == 0)
		r = sbuf_add(&b, " xattrs=", 8);
	if (r == 0)
		r = sbuf_add(&b, e->xattrs, strlen(e->xattrs));
	if (r == 0 && !S_ISDIR(e->mode)) {
		snprintf(num, sizeof(num), " mtime=%lld.%09ld", (long long)e->mtime.tv_sec, e->mtime.tv_nsec);
		r = sbuf_add(&b, num, strlen(num));
	}
	if (r == 0 && with_ino && !S_ISDIR(e->mode)) {
		r = sbuf_add(&b, " link=", 6);
		if (r == 0 && !e->link)
			r = sbuf_add(&b, "-", 1);
		if (r == 0 && e->link) {
			r = sbuf_add(&b, "/", 1);
			if (r == 0)
				r = sbuf_escape(&b, (const unsigned char *)e->link, strlen(e->link), NULL);
		}
	}
	if (r == 0)
		r = sbuf_add(&b, "\n", 1);
	if (r == 0 && fwrite(b.s, 1, b.len, out) != b.len)
		r = -EIO;
	free(b.s);
	return r;
}

static void manifest_free(struct manifest *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].path);
		free(m->v[i].target);
		free(m->v[i].xattrs);
	}
	free(m->v);
	free(m->skip);
}

/* Deep trees need one fd per level. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: manifest [--no-ino] [--skip PATH]... DIR\n"
	           "Print a sorted manifest of everything a reader of DIR sees.\n"
	           "  --no-ino     leave out the hard-link group column\n"
	           "  --skip PATH  leave out PATH (relative to DIR) and everything below it\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"no-ino", no_argument, NULL, 'n'},
	        {"skip", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	struct manifest m = {0};
	bool with_ino = true;
	int c, r, fd, ret = 0;

	m.skip = calloc((size_t)argc, sizeof(*m.skip));
	if (!m.skip) {
		fprintf(stderr, "manifest: %s\n", strerror(ENOMEM));
		return 1;
	}
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			with_ino = false;
			break;
		case 's': {
			char *p = optarg;
			size_t l;
			while (*p == '/')
				p++;
			l = strlen(p);
			while (l > 0 && p[l - 1] == '/')
				p[--l] = '\0';
			if (l == 0) {
				fprintf(stderr, "manifest: --skip needs a path below DIR\n");
				free(m.skip);
				return 2;
			}
			m.skip[m.nskip++] = p;
			break;
		}
		case 'h':
			usage(stdout);
			free(m.skip);
			return 0;
		default:
			usage(stderr);
			free(m.skip);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		free(m.skip);
		return 2;
	}
	raise_nofile();
	fd = open(argv[optind], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "manifest: open '%s': %s\n", argv[optind], strerror(errno));
		free(m.skip);
		return 1;
	}
	r = walk_tree(fd, collect, &m);
	close(fd);
	if (r < 0 && m.failed_path) {
		fprintf(stderr, "manifest: read '%s/%s': %s\n", argv[optind], m.failed_path, strerror(-r));
		manifest_free(&m);
		return 1;
	}
	if (r < 0) {
		/* lib/walk.c failed on an entry it had not handed over yet */
		fprintf(stderr, "manifest: walk '%s': %s (after '/%s')\n", argv[optind], strerror(-r),
		        m.last_path ? m.last_path : "");
		manifest_free(&m);
		return 1;
	}
	qsort(m.v, m.n, sizeof(*m.v), cmp_path);
	r = link_groups(&m);
	for (size_t i = 0; i < m.n && r == 0; i++)
		r = print_entry(&m.v[i], with_ino, stdout);
	if (r == 0 && fflush(stdout) != 0)
		r = -EIO;
	if (r < 0) {
		fprintf(stderr, "manifest: write: %s\n", strerror(-r));
		ret = 1;
	}
	manifest_free(&m);
	return ret;
}
