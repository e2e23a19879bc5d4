/* lib/pool.c: guest names (SPEC's regex) and layout names with inputs that
 * must be refused, pool init/open with its refusals and the lock between
 * processes, the guest registry, object lookup and the home id check. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"
#include "util.h"
#define TMPDIR_OWN_FIXTURE
#include "tmpdir.h"
#include "banned.h"

#define HASH_A "aa00000000000000000000000000000000000000000000000000000000000001"
#define HASH_B "bb00000000000000000000000000000000000000000000000000000000000002"
#define HASH_C "cc00000000000000000000000000000000000000000000000000000000000003"

struct fixture {
	char tmp[64];
	char pool[96];
	int dir;
};

static int setup(void **state)
{
	_cleanup_free_ struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = tmpdir_make(f->tmp, sizeof(f->tmp), "pool");
	if (f->dir < 0)
		return -1;
	snprintf(f->pool, sizeof(f->pool), "%s/pool", f->tmp);
	*state = steal_pointer(&f);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->dir);
	if (tmpdir_remove(f->tmp) < 0)
		return -1;
	free(f);
	return 0;
}

static struct pool *open_ok(const char *path, enum pool_lock lock)
{
	struct pool *p = NULL;
	unsigned line = 0;

	assert_int_equal(pool_open(path, lock, false, &p, &line), 0);
	assert_non_null(p);
	return p;
}

static void put_file(int dir, const char *name, const char *text)
{
	assert_int_equal(write_file_atomic_at(dir, name, text, strlen(text), 0644), 0);
}

static char *get_file(int dir, const char *name)
{
	char *buf = NULL;

	assert_int_equal(read_file_at(dir, name, 1 << 20, &buf, NULL), 0);
	return buf;
}

/* ---- names ---- */

static void test_guest_names(void **state)
{
	static const char *const good[] = {
	        "a", "Z", "0", "web-1.example_2", "a.", "a-", "a_", "9lives", "A..B", "x-_-.y",
	};
	static const char *const bad[] = {
	        "",    ".x",       "-x",        "_x",  ".",   "..",   "a/b", "/a",  "a b", " a",
	        "a\n", "\xc3\xa9", "a\xc3\xa9", "a:b", "a,b", "a\\b", "a*",  "a\t", "a@b",
	};
	char name[80];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (!guest_name_valid(good[i]))
			fail_msg("'%s' refused", good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (guest_name_valid(bad[i]))
			fail_msg("'%s' accepted", bad[i]);
	/* 64 characters at most */
	memset(name, 'a', 64);
	name[64] = '\0';
	assert_true(guest_name_valid(name));
	name[63] = '-';
	assert_true(guest_name_valid(name));
	name[64] = 'b';
	name[65] = '\0';
	assert_false(guest_name_valid(name));
}

static void test_layout_names(void **state)
{
	enum layout_kind k = LAYOUT_LINK;

	(void)state;
	assert_int_equal(layout_from_name("redirect", &k), 0);
	assert_int_equal(k, LAYOUT_REDIRECT);
	assert_int_equal(layout_from_name("link", &k), 0);
	assert_int_equal(k, LAYOUT_LINK);
	assert_string_equal(layout_name(LAYOUT_LINK), "link");
	assert_string_equal(layout_name(LAYOUT_REDIRECT), "redirect");
	for (int i = 0; i < 2; i++) {
		enum layout_kind back;
		assert_int_equal(layout_from_name(layout_name((enum layout_kind)i), &back), 0);
		assert_int_equal(back, i);
	}
	k = LAYOUT_LINK;
	assert_int_equal(layout_from_name("", &k), -EINVAL);
	assert_int_equal(layout_from_name("auto", &k), -EINVAL); /* resolved by the command */
	assert_int_equal(layout_from_name("Link", &k), -EINVAL);
	assert_int_equal(layout_from_name("link ", &k), -EINVAL);
	assert_int_equal(layout_from_name("redirec", &k), -EINVAL);
	assert_int_equal(k, LAYOUT_LINK); /* untouched */
}

/* ---- init and open ---- */

static void test_init_open(void **state)
{
	struct fixture *f = *state;
	struct pool *p;
	struct stat st;
	char *conf;
	int fd;

	assert_int_equal(pool_init(f->pool, LAYOUT_LINK), 0);
	fd = open(f->pool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	conf = get_file(fd, "vunify.conf");
	assert_non_null(strstr(conf, "\nformat 2\n"));
	assert_non_null(strstr(conf, "\nlayout link\n"));
	free(conf);
	assert_int_equal(fstatat(fd, "objects/00", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(fstatat(fd, "objects/ff", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(fstatat(fd, "policy.conf", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(fstatat(fd, "tmp", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(fstatat(fd, "guests", &st, AT_SYMLINK_NOFOLLOW), 0);
	close(fd);

	p = open_ok(f->pool, POOL_LOCK_EXCLUSIVE);
	assert_int_equal(p->layout, LAYOUT_LINK);
	assert_int_equal(strlen(p->id), 32);
	assert_string_equal(p->path, f->pool); /* already canonical */
	assert_int_equal(p->policy.n_system, 7); /* the defaults, from policy.conf */
	assert_int_equal(p->policy.n_never, 9);
	assert_int_equal(p->policy.min_size, 1);
	pool_close(p);
	pool_close(NULL);

	/* init again: a pool is there */
	assert_int_equal(pool_init(f->pool, LAYOUT_REDIRECT), -EEXIST);

	/* a relative, non-canonical path opens the same pool */
	{
		char rel[128];
		char cwd[4096];
		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir(f->tmp), 0);
		snprintf(rel, sizeof(rel), "./pool/../pool/");
		p = open_ok(rel, POOL_LOCK_SHARED);
		assert_string_equal(p->path, f->pool);
		pool_close(p);
		assert_int_equal(chdir(cwd), 0);
	}

	/* a redirect pool, created with missing parents */
	{
		char deep[160];
		snprintf(deep, sizeof(deep), "%s/x/y/z", f->tmp);
		assert_int_equal(pool_init(deep, LAYOUT_REDIRECT), 0);
		p = open_ok(deep, POOL_LOCK_SHARED);
		assert_int_equal(p->layout, LAYOUT_REDIRECT);
		pool_close(p);
	}
}

static void test_init_refusals(void **state)
{
	struct fixture *f = *state;
	struct pool *p = NULL;
	unsigned line = 0;
	int fd;

	/* a non-empty unrelated directory */
	assert_int_equal(mkdirat(f->dir, "data", 0755), 0);
	fd = openat(f->dir, "data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	put_file(fd, "important", "x");
	close(fd);
	{
		char path[128];
		snprintf(path, sizeof(path), "%s/data", f->tmp);
		assert_int_equal(pool_init(path, LAYOUT_LINK), -ENOTEMPTY);
		/* nothing written into it */
		assert_int_equal(faccessat(f->dir, "data/objects", F_OK, AT_SYMLINK_NOFOLLOW), -1);
		assert_int_equal(faccessat(f->dir, "data/vunify.conf", F_OK, AT_SYMLINK_NOFOLLOW), -1);
		/* and it is not a pool */
		assert_int_equal(pool_open(path, POOL_LOCK_SHARED, false, &p, &line), -ENOENT);
		assert_null(p);
	}

	/* an unfinished init (everything but vunify.conf), lost+found: completed */
	assert_int_equal(mkdirat(f->dir, "pool", 0700), 0);
	assert_int_equal(mkdirat(f->dir, "pool/objects", 0755), 0);
	assert_int_equal(mkdirat(f->dir, "pool/lost+found", 0700), 0);
	fd = openat(f->dir, "pool", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	put_file(fd, "policy.conf", "min-size 10\n");
	close(fd);
	assert_int_equal(pool_open(f->pool, POOL_LOCK_SHARED, false, &p, &line), -ENOENT);
	assert_int_equal(pool_init(f->pool, LAYOUT_LINK), 0);
	p = open_ok(f->pool, POOL_LOCK_SHARED);
	assert_int_equal(p->policy.min_size, 10); /* an existing policy.conf is kept */
	assert_int_equal(p->policy.n_system, 0);
	pool_close(p);

	/* not there at all */
	p = NULL;
	assert_int_equal(pool_open("/nonexistent/vunify-pool", POOL_LOCK_SHARED, false, &p, &line), -ENOENT);
	assert_null(p);
	/* a file, not a directory */
	{
		char path[128];
		snprintf(path, sizeof(path), "%s/data/important", f->tmp);
		assert_int_equal(pool_init(path, LAYOUT_LINK), -ENOTDIR);
		assert_int_equal(pool_open(path, POOL_LOCK_SHARED, false, &p, &line), -ENOTDIR);
	}
}

static void test_bad_conf(void **state)
{
	struct fixture *f = *state;
	struct pool *p = NULL;
	unsigned line = 0;
	char *conf, *good;
	int fd;

	assert_int_equal(pool_init(f->pool, LAYOUT_REDIRECT), 0);
	fd = open(f->pool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	good = get_file(fd, "vunify.conf");

	/* a future format, and format 0; format 1 (16-digit link keys) is
	 * read.  A redirect pool is written as format 4 (the metadata image
	 * is the record) */
	conf = strdup(good);
	assert_non_null(conf);
	assert_non_null(strstr(conf, "\nformat 4\n"));
	strstr(conf, "\nformat 4\n")[8] = '5';
	put_file(fd, "vunify.conf", conf);
	assert_int_equal(pool_open(f->pool, POOL_LOCK_SHARED, false, &p, &line), -EPROTO);
	strstr(conf, "\nformat 5\n")[8] = '0';
	put_file(fd, "vunify.conf", conf);
	assert_int_equal(pool_open(f->pool, POOL_LOCK_SHARED, false, &p, &line), -EPROTO);
	strstr(conf, "\nformat 0\n")[8] = '1';
	put_file(fd, "vunify.conf", conf);
	p = open_ok(f->pool, POOL_LOCK_SHARED);
	assert_int_equal(p->format, 1);
	pool_close(p);
	p = NULL;
	/* a redirect pool of format 1 to 3 (before the image was the record)
	 * is upgraded in place, keeping layout and id */
	for (char v = '1'; v <= '3'; v++) {
		char *now;

		strstr(conf, "\nformat ")[8] = v;
		put_file(fd, "vunify.conf", conf);
		p = open_ok(f->pool, POOL_LOCK_EXCLUSIVE);
		assert_int_equal(p->format, v - '0');
		assert_int_equal(pool_upgrade(p), 0);
		assert_int_equal(p->format, 4);
		pool_close(p);
		p = NULL;
		now = get_file(fd, "vunify.conf");
		assert_string_equal(now, good);
		free(now);
	}
	/* a link pool keeps its format: its object names depend on it */
	{
		char *l = strdup(conf), *lay = strstr(l, "\nlayout redirect\n");

		assert_non_null(lay);
		memcpy(lay, "\nlayout link\n\n\n\n\n", strlen("\nlayout redirect\n"));
		strstr(l, "\nformat ")[8] = '1';
		put_file(fd, "vunify.conf", l);
		p = open_ok(f->pool, POOL_LOCK_EXCLUSIVE);
		assert_int_equal(p->layout, LAYOUT_LINK);
		assert_int_equal(pool_upgrade(p), 0);
		assert_int_equal(p->format, 1);
		pool_close(p);
		p = NULL;
		free(l);
		l = get_file(fd, "vunify.conf");
		assert_non_null(strstr(l, "\nformat 1\n"));
		free(l);
	}
	free(conf);
	put_file(fd, "vunify.conf", "format 1\nlayout sideways\nid 00\n");
	assert_int_equal(pool_open(f->pool, POOL_LOCK_SHARED, false, &p, &line), -EBADMSG);
	put_file(fd, "vunify.conf", "format 1\nlayout link\n");
	assert_int_equal(pool_open(f->pool, POOL_LOCK_SHARED, false, &p, &line), -EBADMSG);
	put_file(fd, "vunify.conf", "format one\nlayout link\nid 00\n");
	assert_int_equal(pool_open(f->pool, POOL_LOCK_SHARED, false, &p, &line), -EBADMSG);
	put_file(fd, "vunify.conf",
	         "format 1\nlayout link\nid "
	         "0123456789012345678901234567890123456789\n"); /* too long */
	assert_int_equal(pool_open(f->pool, POOL_LOCK_SHARED, false, &p, &line), -EBADMSG);
	assert_null(p);
	put_file(fd, "vunify.conf", good);
	p = open_ok(f->pool, POOL_LOCK_SHARED);
	pool_close(p);

	/* a malformed policy.conf: -EBADMSG and the line */
	p = NULL;
	put_file(fd, "policy.conf", "# policy\nsystem /usr\n\nnever tmp\nsystem /x\n");
	line = 0;
	assert_int_equal(pool_open(f->pool, POOL_LOCK_SHARED, false, &p, &line), -EBADMSG);
	assert_int_equal(line, 4);
	assert_null(p);
	put_file(fd, "policy.conf", "min-size lots\n");
	assert_int_equal(pool_open(f->pool, POOL_LOCK_EXCLUSIVE, false, &p, &line), -EBADMSG);
	assert_int_equal(line, 1);
	assert_int_equal(pool_open(f->pool, POOL_LOCK_SHARED, false, &p, NULL), -EBADMSG);

	/* the file is the whole policy: removing a line removes the rule */
	put_file(fd, "policy.conf", "system /only\n");
	p = open_ok(f->pool, POOL_LOCK_SHARED);
	assert_int_equal(p->policy.n_system, 1);
	assert_int_equal(p->policy.n_never, 0);
	pool_close(p);
	/* no policy.conf at all: the defaults */
	assert_int_equal(unlinkat(fd, "policy.conf", 0), 0);
	p = open_ok(f->pool, POOL_LOCK_SHARED);
	assert_int_equal(p->policy.n_system, 7);
	pool_close(p);
	/* a symlink is not followed */
	assert_int_equal(symlinkat("/etc/passwd", fd, "policy.conf"), 0);
	assert_int_equal(pool_open(f->pool, POOL_LOCK_SHARED, false, &p, &line), -ELOOP);
	free(good);
	close(fd);
}

/* In a child: pool_open with LOCK/WAIT; exit 0 if it returns WANT. */
static pid_t child_open(const char *path, enum pool_lock lock, bool wait, int want)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct pool *p = NULL;
		int r;
		/* drop the parent's lock fd: a flock belongs to the open file
		 * description, which fork shares */
		close_range(3, ~0u, 0);
		r = pool_open(path, lock, wait, &p, NULL);
		if (r == 0)
			pool_close(p);
		_exit(r == want ? 0 : 1);
	}
	return pid;
}

static int child_wait(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_lock(void **state)
{
	struct fixture *f = *state;
	const struct timespec ms100 = {0, 100 * 1000 * 1000};
	struct pool *p;
	pid_t pid;
	int status;

	assert_int_equal(pool_init(f->pool, LAYOUT_LINK), 0);
	p = open_ok(f->pool, POOL_LOCK_EXCLUSIVE);
	assert_int_equal(child_wait(child_open(f->pool, POOL_LOCK_EXCLUSIVE, false, -EWOULDBLOCK)), 0);
	assert_int_equal(child_wait(child_open(f->pool, POOL_LOCK_SHARED, false, -EWOULDBLOCK)), 0);
	/* a waiter gets the lock once the holder lets go */
	pid = child_open(f->pool, POOL_LOCK_EXCLUSIVE, true, 0);
	nanosleep(&ms100, NULL);
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* still waiting */
	pool_close(p);
	assert_int_equal(child_wait(pid), 0);

	/* readers share */
	p = open_ok(f->pool, POOL_LOCK_SHARED);
	assert_int_equal(child_wait(child_open(f->pool, POOL_LOCK_SHARED, false, 0)), 0);
	assert_int_equal(child_wait(child_open(f->pool, POOL_LOCK_EXCLUSIVE, false, -EWOULDBLOCK)), 0);
	pool_close(p);
	assert_int_equal(child_wait(child_open(f->pool, POOL_LOCK_EXCLUSIVE, false, 0)), 0);
}

/* ---- registry ---- */

static void test_registry(void **state)
{
	struct fixture *f = *state;
	char *const refs1[] = {HASH_B, HASH_A, HASH_B};
	char *const refs2[] = {HASH_C, HASH_A};
	struct pool *p;
	struct guest *g = NULL;
	char **names = NULL;
	char *text;
	int gfd;

	assert_int_equal(pool_init(f->pool, LAYOUT_LINK), 0);
	p = open_ok(f->pool, POOL_LOCK_EXCLUSIVE);

	assert_int_equal(pool_guest_names(p, &names), 0);
	assert_null(names[0]);
	names_free(names);

	assert_int_equal(pool_guest_register(p, "web2", "/srv/guests/web2"), 0);
	assert_int_equal(pool_guest_register(p, "db", "/srv/guests/db"), 0);
	assert_int_equal(pool_guest_register(p, "Web1", "/srv/x,y:z"), 0);
	assert_int_equal(pool_guest_register(p, "db", "/elsewhere"), -EEXIST);
	assert_int_equal(pool_guest_register(p, "../x", "/x"), -EINVAL);
	assert_int_equal(pool_guest_register(p, ".hidden", "/x"), -EINVAL);
	assert_int_equal(pool_guest_register(p, "", "/x"), -EINVAL);
	/* an unfinished add (directory, no home file) may be redone */
	assert_int_equal(mkdirat(p->guests_fd, "half", 0700), 0);
	assert_int_equal(pool_guest_load(p, "half", &g), -ENOENT);
	assert_int_equal(pool_guest_register(p, "half", "/srv/half"), 0);
	/* junk in guests/ is not a guest */
	assert_int_equal(mkdirat(p->guests_fd, "half2", 0700), 0);
	assert_int_equal(mkdirat(p->guests_fd, ".junk", 0700), 0);

	assert_int_equal(pool_guest_names(p, &names), 4);
	assert_string_equal(names[0], "Web1"); /* sorted bytewise */
	assert_string_equal(names[1], "db");
	assert_string_equal(names[2], "half");
	assert_string_equal(names[3], "web2");
	assert_null(names[4]);
	names_free(names);

	g = NULL;
	assert_int_equal(pool_guest_load(p, "db", &g), 0);
	assert_string_equal(g->name, "db");
	assert_string_equal(g->home, "/srv/guests/db");
	assert_int_equal(g->stats.files_unified, 0);
	g->stats.files_unified = 12;
	g->stats.bytes_unified = UINT64_MAX;
	g->stats.upper_bytes = 3;
	g->stats.objects_referenced = 4;
	assert_int_equal(pool_guest_save_stats(p, g), 0);
	guest_free(g);
	g = NULL;
	assert_int_equal(pool_guest_load(p, "db", &g), 0);
	assert_int_equal(g->stats.files_unified, 12);
	assert_int_equal(g->stats.bytes_unified, UINT64_MAX);
	assert_int_equal(g->stats.upper_bytes, 3);
	assert_int_equal(g->stats.objects_referenced, 4);
	guest_free(g);
	g = NULL;
	assert_int_equal(pool_guest_load(p, "Web1", &g), 0);
	assert_string_equal(g->home, "/srv/x,y:z");
	guest_free(g);
	guest_free(NULL);
	names_free(NULL);

	assert_int_equal(pool_guest_load(p, "nobody", &g), -ENOENT);
	assert_int_equal(pool_guest_load(p, "../guests", &g), -EINVAL);

	/* references: merged, deduplicated, sorted */
	gfd = openat(p->guests_fd, "db", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(gfd >= 0);
	assert_int_equal(pool_guest_add_refs(p, "db", refs1, ARRAY_SIZE(refs1)), 0);
	text = get_file(gfd, "refs");
	assert_string_equal(text, HASH_A "\n" HASH_B "\n");
	free(text);
	assert_int_equal(pool_guest_add_refs(p, "db", refs2, ARRAY_SIZE(refs2)), 0);
	text = get_file(gfd, "refs");
	assert_string_equal(text, HASH_A "\n" HASH_B "\n" HASH_C "\n");
	free(text);
	assert_int_equal(pool_guest_add_refs(p, "db", NULL, 0), 0);
	text = get_file(gfd, "refs");
	assert_string_equal(text, HASH_A "\n" HASH_B "\n" HASH_C "\n");
	free(text);
	/* save replaces */
	assert_int_equal(pool_guest_save_refs(p, "db", refs2 + 1, 1), 0);
	text = get_file(gfd, "refs");
	assert_string_equal(text, HASH_A "\n");
	free(text);
	assert_int_equal(pool_guest_save_refs(p, "db", NULL, 0), 0);
	text = get_file(gfd, "refs");
	assert_string_equal(text, "");
	free(text);
	assert_int_equal(pool_guest_add_refs(p, "db", refs2, 1), 0);
	text = get_file(gfd, "refs");
	assert_string_equal(text, HASH_C "\n");
	free(text);
	close(gfd);
	assert_int_equal(pool_guest_add_refs(p, "nobody", refs1, 1), -ENOENT);
	assert_int_equal(pool_guest_save_refs(p, "nobody", refs1, 1), -ENOENT);

	/* unregister */
	assert_int_equal(pool_guest_unregister(p, "db"), 0);
	assert_int_equal(pool_guest_load(p, "db", &g), -ENOENT);
	assert_int_equal(faccessat(p->guests_fd, "db", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(pool_guest_names(p, &names), 3);
	assert_string_equal(names[1], "half");
	names_free(names);
	assert_int_equal(pool_guest_unregister(p, "db"), -ENOENT);
	/* names that are not guests are refused, never resolved */
	assert_int_equal(pool_guest_unregister(p, "../objects"), -EINVAL);
	assert_int_equal(pool_guest_unregister(p, ".."), -EINVAL);
	assert_int_equal(faccessat(p->fd, "objects/00", F_OK, AT_SYMLINK_NOFOLLOW), 0);
	/* what a crash in write_file_atomic_at leaves does not block it */
	gfd = openat(p->guests_fd, "half", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(gfd >= 0);
	put_file(gfd, ".tmp.refs.12345", "partial");
	close(gfd);
	assert_int_equal(pool_guest_unregister(p, "half"), 0);
	assert_int_equal(faccessat(p->guests_fd, "half", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	/* and register again */
	assert_int_equal(pool_guest_register(p, "db", "/new/home"), 0);
	assert_int_equal(pool_guest_load(p, "db", &g), 0);
	assert_string_equal(g->home, "/new/home");
	assert_int_equal(g->stats.files_unified, 0);
	guest_free(g);
	pool_close(p);
}

static void test_registry_malformed(void **state)
{
	struct fixture *f = *state;
	struct pool *p;
	struct guest *g = (struct guest *)0x1;
	int gfd;

	assert_int_equal(pool_init(f->pool, LAYOUT_LINK), 0);
	p = open_ok(f->pool, POOL_LOCK_EXCLUSIVE);
	assert_int_equal(pool_guest_register(p, "g", "/home/g"), 0);
	gfd = openat(p->guests_fd, "g", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	put_file(gfd, "home", "relative/home\n");
	assert_int_equal(pool_guest_load(p, "g", &g), -EBADMSG);
	put_file(gfd, "home", "/no/newline");
	assert_int_equal(pool_guest_load(p, "g", &g), -EBADMSG);
	put_file(gfd, "home", "");
	assert_int_equal(pool_guest_load(p, "g", &g), -EBADMSG);
	assert_ptr_equal(g, (struct guest *)0x1); /* untouched */
	/* unreadable stats are zeros, not an error */
	put_file(gfd, "home", "/home/g\n");
	put_file(gfd, "stats", "files_unified lots\nupper_bytes 7\n");
	assert_int_equal(pool_guest_load(p, "g", &g), 0);
	assert_int_equal(g->stats.files_unified, 0);
	assert_int_equal(g->stats.upper_bytes, 7);
	guest_free(g);
	/* a guest entry that is a file or a symlink is not a guest */
	put_file(p->guests_fd, "file", "x");
	assert_int_equal(symlinkat("g", p->guests_fd, "link"), 0);
	assert_int_equal(pool_guest_load(p, "file", &g), -ENOENT);
	assert_true(pool_guest_load(p, "link", &g) < 0);
	{
		char **names;
		assert_int_equal(pool_guest_names(p, &names), 1);
		assert_string_equal(names[0], "g");
		names_free(names);
	}
	close(gfd);
	pool_close(p);
}

/* ---- objects, tmp, homes ---- */

static void test_objects_and_tmp(void **state)
{
	struct fixture *f = *state;
	char link_name[OBJECT_NAME_MAX];
	struct pool *p;
	struct stat st;
	int fan;

	assert_int_equal(pool_init(f->pool, LAYOUT_LINK), 0);
	p = open_ok(f->pool, POOL_LOCK_EXCLUSIVE);
	assert_int_equal(pool_object_stat(p, HASH_A, &st), 0);
	fan = pool_object_dir(p, HASH_A);
	assert_true(fan >= 0);
	put_file(fan, HASH_A, "content");
	assert_int_equal(pool_object_stat(p, HASH_A, NULL), 1);
	assert_int_equal(pool_object_stat(p, HASH_A, &st), 1);
	assert_int_equal(st.st_size, 7);
	/* a link-layout name: hash '.' 16 hex digits */
	snprintf(link_name, sizeof(link_name), "%s.0123456789abcdef", HASH_A);
	assert_int_equal(pool_object_stat(p, link_name, NULL), 0);
	put_file(fan, link_name, "x");
	assert_int_equal(pool_object_stat(p, link_name, NULL), 1);
	/* something that is not a regular file */
	assert_int_equal(mkdirat(fan, HASH_A ".1111111111111111", 0755), 0);
	assert_int_equal(pool_object_stat(p, HASH_A ".1111111111111111", NULL), -EUCLEAN);
	close(fan);

	/* names that must be refused */
	assert_int_equal(pool_object_stat(p, "", NULL), -EINVAL);
	assert_int_equal(pool_object_stat(p, "../../vunify.conf", NULL), -EINVAL);
	assert_int_equal(
	        pool_object_stat(p, "AA00000000000000000000000000000000000000000000000000000000000001", NULL),
	        -EINVAL);
	assert_int_equal(pool_object_stat(p, HASH_A ".0123456789abcdef0", NULL), -EINVAL); /* too long */
	assert_int_equal(pool_object_dir(p, "zz"), -EINVAL);
	assert_int_equal(pool_object_dir(p, "../x"), -EINVAL);

	/* tmp is emptied */
	put_file(p->tmp_fd, "o.1.1", "left over");
	put_file(p->tmp_fd, "o.1.2", "left over");
	assert_int_equal(pool_clean_tmp(p), 0);
	assert_int_equal(faccessat(p->tmp_fd, "o.1.1", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(faccessat(p->tmp_fd, "o.1.2", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(pool_clean_tmp(p), 0);
	pool_close(p);
}

static void test_homes(void **state)
{
	struct fixture *f = *state;
	struct pool *p;
	struct guest g = {.name = (char *)"g1"};
	char home[128], id[128];
	int hfd, fd;

	snprintf(home, sizeof(home), "%s/home", f->tmp);
	g.home = home;
	assert_int_equal(pool_init(f->pool, LAYOUT_REDIRECT), 0);
	p = open_ok(f->pool, POOL_LOCK_EXCLUSIVE);

	assert_int_equal(guest_open_home(p, &g), -ENOENT); /* not attached */
	assert_int_equal(mkdir(home, 0755), 0);
	assert_int_equal(guest_open_home(p, &g), -ESTALE); /* no id file */
	hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(id, sizeof(id), "pool %s\nguest %s\n", p->id, "other");
	put_file(hfd, HOME_ID, id);
	assert_int_equal(guest_open_home(p, &g), -ESTALE); /* another guest */
	put_file(hfd, HOME_ID, "pool 0123\nguest g1\n");
	assert_int_equal(guest_open_home(p, &g), -ESTALE); /* another pool */
	snprintf(id, sizeof(id), "pool %s\nguest %s\n", p->id, g.name);
	put_file(hfd, HOME_ID, id);
	fd = guest_open_home(p, &g);
	assert_true(fd >= 0);
	close(fd);

	/* redirect: the lower layer is HOME/meta */
	assert_int_equal(guest_open_lower(p, &g, hfd, false), -ENOENT);
	fd = guest_open_lower(p, &g, hfd, true);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(faccessat(hfd, HOME_META, F_OK, AT_SYMLINK_NOFOLLOW), 0);
	fd = guest_open_lower(p, &g, hfd, true); /* exists already */
	assert_true(fd >= 0);
	close(fd);

	/* link: POOL/roots/NAME */
	p->layout = LAYOUT_LINK;
	assert_int_equal(guest_open_lower(p, &g, hfd, false), -ENOENT);
	fd = guest_open_lower(p, &g, -1, true);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(faccessat(p->fd, "roots/g1", F_OK, AT_SYMLINK_NOFOLLOW), 0);
	close(hfd);
	pool_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_guest_names),
	        cmocka_unit_test(test_layout_names),
	        cmocka_unit_test_setup_teardown(test_init_open, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_init_refusals, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_conf, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_registry_malformed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_objects_and_tmp, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_homes, setup, teardown),
	};

	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
