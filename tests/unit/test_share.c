/* lib/share.c: SPEC's rule "share what is shared" as a table.  Each row is
 * one file of one guest: its path (classified by the default policy the way
 * the scan does, ancestors first), its content and whether the pool already
 * holds that content; the decision must choose exactly the rows SPEC says
 * are unified. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "hash_intern.h"
#include "policy.h"
#include "pool.h"
#include "share.h"
#include "tmpdir.h"
#include "unit.h"
#include "util.h"
#include "banned.h"

struct row {
	unsigned guest;
	const char *path;
	char content; /* same letter, same bytes */
	bool in_pool; /* the pool held this content before the run */
	bool want; /* SPEC: unified */
};

/* Run the decision over ROWS (in the given order) and check every row. */
static void check_rows(const struct row *rows, size_t n)
{
	struct policy pol;
	unsigned char(*hashes)[HASH_LEN] = calloc(n ? n : 1, HASH_LEN);
	unsigned char(*pool)[HASH_LEN] = calloc(n ? n : 1, HASH_LEN);
	struct share_item *v = calloc(n ? n : 1, sizeof(*v));
	struct hash_set set = {0};

	assert_non_null(hashes);
	assert_non_null(pool);
	assert_non_null(v);
	assert_int_equal(policy_default(&pol), 0);
	for (size_t i = 0; i < n; i++) {
		memset(hashes[i], 0, HASH_LEN);
		hashes[i][0] = (unsigned char)rows[i].content;
		hashes[i][HASH_LEN - 1] = 0x5a;
		v[i] = (struct share_item){.hash = hashes[i],
		                           .guest = rows[i].guest,
		                           .cls = (uint8_t)classify_walk(&pol, rows[i].path),
		                           .ud = (void *)&rows[i]};
		if (rows[i].in_pool) {
			bool have = false;
			for (size_t k = 0; k < set.n; k++)
				have |= !memcmp(pool[k], hashes[i], HASH_LEN);
			if (!have)
				memcpy(pool[set.n++], hashes[i], HASH_LEN);
		}
	}
	/* a hash_set is sorted: the content letter is the first byte */
	for (size_t i = 1; i < set.n; i++)
		for (size_t k = i; k > 0 && memcmp(pool[k - 1], pool[k], HASH_LEN) > 0; k--) {
			unsigned char t[HASH_LEN];
			memcpy(t, pool[k], HASH_LEN);
			memcpy(pool[k], pool[k - 1], HASH_LEN);
			memcpy(pool[k - 1], t, HASH_LEN);
		}
	set.v = (unsigned char *)pool;
	set.cap = n;

	share_decide(v, n, &set);
	for (size_t i = 0; i < n; i++) {
		const struct row *r = v[i].ud;
		if (v[i].chosen != r->want)
			fail_msg("guest %u %s (content %c%s): chosen %d, SPEC says %d", r->guest, r->path,
			         r->content, r->in_pool ? ", in pool" : "", v[i].chosen, r->want);
	}
	policy_free(&pol);
	free(v);
	free(pool);
	free(hashes);
}

static void test_spec_table(void **state)
{
	static const struct row rows[] = {
	        /* another guest also has it: unified wherever it is */
	        {0, "/home/alice/notes.txt", 'a', false, true},
	        {1, "/srv/notes.txt", 'a', false, true},
	        {0, "/var/lib/apt/lists/deb.debian.org_Packages", 'b', false, true},
	        {2, "/var/lib/apt/lists/deb.debian.org_Packages", 'b', false, true},
	        /* the pool already holds it: unified, even in one guest */
	        {1, "/var/lib/app/data.bin", 'c', true, true},
	        /* unique to one guest: unified under the system paths ... */
	        {0, "/usr/bin/tool", 'd', false, true},
	        {1, "/etc/hostname", 'e', false, true},
	        {2, "/lib64/ld.so", 'f', false, true},
	        {0, "/opt/app/bin/app", 'g', false, true},
	        {1, "/boot/vmlinuz", 'h', false, true},
	        {2, "/sbin/init", 'i', false, true},
	        {0, "/bin/sh", 'j', false, true},
	        /* ... and stays in the upper elsewhere (database, log, image) */
	        {0, "/var/lib/mysql/ibdata1", 'k', false, false},
	        {1, "/var/log/syslog", 'l', false, false},
	        {2, "/srv/vm/disk.img", 'm', false, false},
	        /* twice in one guest is not shared */
	        {1, "/home/bob/a", 'n', false, false},
	        {1, "/home/bob/b", 'n', false, false},
	        /* shared with a system copy: every copy goes */
	        {0, "/usr/share/doc/x", 'o', false, true},
	        {2, "/home/carol/x", 'o', false, true},
	        /* never unified, even when shared or in the pool */
	        {0, "/etc/shadow", 'p', true, false},
	        {1, "/etc/shadow", 'p', true, false},
	        {2, "/etc/ssh/ssh_host_ed25519_key", 'q', false, false},
	        {0, "/etc/ssh/ssh_host_ed25519_key", 'q', false, false},
	        {1, "/tmp/x", 'r', false, false},
	        {2, "/var/tmp/x", 'r', false, false},
	};
	struct row rev[ARRAY_SIZE(rows)];

	(void)state;
	check_rows(rows, ARRAY_SIZE(rows));
	/* the input order does not matter */
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		rev[i] = rows[ARRAY_SIZE(rows) - 1 - i];
	check_rows(rev, ARRAY_SIZE(rev));
}

static void test_empty(void **state)
{
	struct hash_set set = {0};
	struct share_item none[1];

	(void)state;
	share_decide(none, 0, &set);
	assert_false(hash_set_has(&set, (const unsigned char *)"0123456789abcdef0123456789abcdef"));
}

/* share_sort (in place, no copy of the array): sorted by share_item_cmp
 * and a permutation of its input, with many equal contents and guests,
 * for every length up to 300 and one of 20,000. */
static void test_sort(void **state)
{
	enum { MAX = 20000 };
	static unsigned char contents[16][HASH_LEN];
	struct share_item *v = calloc(MAX, sizeof(*v));
	unsigned *seen = calloc(MAX, sizeof(*seen));
	unsigned x = 12345;

	(void)state;
	assert_non_null(v);
	assert_non_null(seen);
	for (int c = 0; c < 16; c++)
		contents[c][0] = (unsigned char)(c * 7 % 16); /* not in index order */
	for (size_t n = 0; n <= MAX; n = n < 300 ? n + 1 : (n == 300 ? MAX : MAX + 1)) {
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			v[i] = (struct share_item){.hash = contents[(x >> 16) % 16],
			                           .guest = (x >> 8) % 5,
			                           .ud = (void *)(uintptr_t)i};
		}
		share_sort(v, n);
		memset(seen, 0, MAX * sizeof(*seen));
		for (size_t i = 0; i < n; i++) {
			seen[(uintptr_t)v[i].ud]++;
			if (i > 0 && share_item_cmp(&v[i - 1], &v[i]) > 0)
				fail_msg("n %zu: items %zu and %zu out of order", n, i - 1, i);
		}
		for (size_t i = 0; i < n; i++)
			assert_int_equal(seen[i], 1);
	}
	free(seen);
	free(v);
}

/* hash_set_load_held (a stat for each of the run's contents) answers as
 * hash_set_load (every name in objects/) for each of them: an object held;
 * a name that is a directory, not an object; a content the pool lacks; and
 * it holds nothing of the pool but the run's contents. */
static void test_held_by_stat(void **state)
{
	char tmp[64], path[160];
	struct pool *p = NULL;
	struct hash_intern t;
	struct hash_set all = {0}, held = {0};
	unsigned char h[5][HASH_LEN];
	char hex[HASH_HEX_LEN + 1];
	unsigned line = 0;
	int fd;

	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/vunify-share.XXXXXX");
	assert_non_null(mkdtemp(tmp));
	snprintf(path, sizeof(path), "%s/pool", tmp);
	assert_int_equal(pool_init(path, LAYOUT_REDIRECT), 0);
	assert_int_equal(pool_open(path, POOL_LOCK_EXCLUSIVE, false, &p, &line), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(hash_buffer(&i, sizeof(i), h[i]), 0);
	/* h[0]: an object; h[1]: a directory of that name; h[2]: absent;
	 * h[3]: an object the run does not have; h[4]: in the run, absent */
	for (int i = 0; i < 4; i++) {
		char rel[OBJECT_NAME_MAX + 4];
		if (i == 2)
			continue;
		hash_to_hex(h[i], hex);
		snprintf(rel, sizeof(rel), "%c%c/%s", hex[0], hex[1], hex);
		if (i == 1) {
			assert_int_equal(mkdirat(p->objects_fd, rel, 0700), 0);
		} else {
			fd = openat(p->objects_fd, rel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
			assert_true(fd >= 0);
			close(fd);
		}
	}
	assert_int_equal(hash_intern_init(&t), 0);
	for (int i = 0; i < 5; i++) {
		uint32_t idx;
		if (i != 3)
			assert_int_equal(hash_intern_add(&t, h[i], &idx), 0);
	}
	assert_int_equal(hash_set_load(p, &all), 0);
	assert_int_equal(hash_set_load_held(p, &t, &held), 0);
	assert_true(hash_set_has(&held, h[0]));
	assert_false(hash_set_has(&held, h[1]));
	assert_false(hash_set_has(&held, h[2]));
	assert_false(hash_set_has(&held, h[4]));
	for (uint32_t idx = 1; idx <= t.n; idx++)
		assert_int_equal(hash_set_has(&held, hash_intern_get(&t, idx)),
		                 hash_set_has(&all, hash_intern_get(&t, idx)));
	assert_true(hash_set_has(&all, h[3]));
	assert_int_equal(held.n, 1); /* only what the run has */
	hash_set_free(&all);
	hash_set_free(&held);
	hash_intern_free(&t);
	pool_close(p);
	assert_int_equal(tmpdir_remove(tmp), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_spec_table),
	        cmocka_unit_test(test_empty),
	        cmocka_unit_test(test_held_by_stat),
	        cmocka_unit_test(test_sort),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
