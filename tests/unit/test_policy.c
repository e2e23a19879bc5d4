/* lib/policy.c: SPEC's default classes ("share what is shared"), class
 * inheritance through the parent argument, the policy file parser with its
 * must-fail inputs and line numbers, and the default text parsing back to
 * the defaults. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "util.h"
#include "unit.h"
#include "banned.h"

static void test_defaults(void **state)
{
	static const struct {
		const char *path;
		enum policy_class want;
	} cases[] = {
	        {"/usr/bin/ls", POLICY_SYSTEM},
	        {"/usr", POLICY_SYSTEM},
	        {"/bin/sh", POLICY_SYSTEM},
	        {"/sbin/init", POLICY_SYSTEM},
	        {"/lib/x", POLICY_SYSTEM},
	        {"/lib64/x", POLICY_SYSTEM}, /* glob /lib* */
	        {"/lib64/ld-linux-x86-64.so.2", POLICY_SYSTEM},
	        {"/libx32/y/z", POLICY_SYSTEM},
	        {"/opt/app/bin/app", POLICY_SYSTEM},
	        {"/boot/vmlinuz", POLICY_SYSTEM},
	        {"/etc/passwd", POLICY_SYSTEM},
	        {"/etc/ssh/sshd_config", POLICY_SYSTEM},
	        {"/etc/ssh/ssh_host_rsa_key.pub", POLICY_SYSTEM},
	        {"/etc/ssh/ssh_host_rsa_key", POLICY_NEVER},
	        {"/etc/ssh/ssh_host_ed25519_key", POLICY_NEVER},
	        {"/etc/shadow", POLICY_NEVER},
	        {"/etc/shadow-", POLICY_NEVER},
	        {"/etc/gshadow", POLICY_NEVER},
	        {"/etc/gshadow-", POLICY_NEVER},
	        {"/tmp/x", POLICY_NEVER},
	        {"/tmp", POLICY_NEVER},
	        {"/var/tmp/x/y", POLICY_NEVER},
	        {"/run/lock/x", POLICY_NEVER},
	        {"/proc/1/status", POLICY_NEVER},
	        {"/sys/kernel", POLICY_NEVER},
	        {"/dev/null", POLICY_NEVER},
	        {"/var/lib/apt/lists/x", POLICY_OTHER}, /* "/lib*" is anchored */
	        {"/var/lib/mysql/ibdata1", POLICY_OTHER},
	        {"/home/user/.bashrc", POLICY_OTHER},
	        {"/srv/usr/bin/x", POLICY_OTHER},
	        {"/usrlocal/x", POLICY_OTHER},
	        {"/tmpfoo/x", POLICY_OTHER},
	        {"/.lib/x", POLICY_OTHER},
	        {"/", POLICY_OTHER},
	};
	struct policy p;

	(void)state;
	assert_int_equal(policy_default(&p), 0);
	assert_int_equal(p.min_size, 1);
	assert_int_equal(p.n_system, 7);
	assert_int_equal(p.n_never, 9);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		enum policy_class got = classify_walk(&p, cases[i].path);
		if (got != cases[i].want)
			fail_msg("%s: class %d, want %d", cases[i].path, got, cases[i].want);
	}
	policy_free(&p);
	assert_null(p.system);
	assert_int_equal(p.n_system, 0);
	policy_free(&p); /* twice is harmless */
}

static void test_inheritance(void **state)
{
	struct policy p;

	(void)state;
	assert_int_equal(policy_default(&p), 0);
	/* the parent's class is what carries a directory pattern down */
	assert_int_equal(policy_classify(&p, "/usr", POLICY_OTHER), POLICY_SYSTEM);
	assert_int_equal(policy_classify(&p, "/usr/bin/ls", POLICY_SYSTEM), POLICY_SYSTEM);
	assert_int_equal(policy_classify(&p, "/usr/bin/ls", POLICY_OTHER), POLICY_OTHER);
	assert_int_equal(policy_classify(&p, "/lib64/x", POLICY_OTHER), POLICY_OTHER);
	assert_int_equal(policy_classify(&p, "/lib64", POLICY_OTHER), POLICY_SYSTEM);
	assert_int_equal(policy_classify(&p, "/home/x", POLICY_SYSTEM), POLICY_SYSTEM);
	/* never wins over system, inherited or matched */
	assert_int_equal(policy_classify(&p, "/usr/bin/ls", POLICY_NEVER), POLICY_NEVER);
	assert_int_equal(policy_classify(&p, "/tmp", POLICY_SYSTEM), POLICY_NEVER);
	assert_int_equal(policy_classify(&p, "/etc/shadow", POLICY_SYSTEM), POLICY_NEVER);
	assert_int_equal(policy_classify(&p, "/etc/ssh/ssh_host_dsa_key", POLICY_SYSTEM), POLICY_NEVER);
	assert_int_equal(policy_classify(&p, "/etc/ssh/ssh_host_dsa_key.pub", POLICY_SYSTEM), POLICY_SYSTEM);
	/* '*' does not cross '/' */
	assert_int_equal(policy_classify(&p, "/etc/ssh/ssh_host_x/y_key", POLICY_OTHER), POLICY_OTHER);
	policy_free(&p);
}

static void test_parse(void **state)
{
	static const char text[] = "# a comment\n"
	                           "\n"
	                           "   \t  \n"
	                           "  # indented comment\n"
	                           "system /srv/*\r\n"
	                           "\tnever\t/srv/secret  \n"
	                           "system /usr\n" /* already there: not added twice */
	                           "min-size 4096\n"
	                           "never /home/*/.ssh"; /* no final newline */
	struct policy p;
	unsigned line = 0;

	(void)state;
	assert_int_equal(policy_default(&p), 0);
	assert_int_equal(policy_parse(&p, text, &line), 0);
	assert_int_equal(p.min_size, 4096);
	assert_int_equal(p.n_system, 8);
	assert_string_equal(p.system[7], "/srv/*");
	assert_int_equal(p.n_never, 11);
	assert_string_equal(p.never[9], "/srv/secret");
	assert_string_equal(p.never[10], "/home/*/.ssh");
	assert_int_equal(policy_classify(&p, "/srv/www", POLICY_OTHER), POLICY_SYSTEM);
	assert_int_equal(policy_classify(&p, "/srv/secret", POLICY_OTHER), POLICY_NEVER);
	assert_int_equal(policy_classify(&p, "/home/u/.ssh", POLICY_OTHER), POLICY_NEVER);
	policy_free(&p);

	/* an empty text changes nothing */
	assert_int_equal(policy_default(&p), 0);
	assert_int_equal(policy_parse(&p, "", &line), 0);
	assert_int_equal(policy_parse(&p, "\n\n# only comments\n", NULL), 0);
	assert_int_equal(p.n_system, 7);
	assert_int_equal(p.n_never, 9);
	assert_int_equal(p.min_size, 1);

	/* min-size 0 means 1: empty files are never unified */
	assert_int_equal(policy_parse(&p, "min-size 0\n", &line), 0);
	assert_int_equal(p.min_size, 1);
	assert_int_equal(policy_parse(&p, "min-size 18446744073709551615\n", &line), 0);
	assert_int_equal(p.min_size, UINT64_MAX);
	policy_free(&p);
}

/* max-size: files larger stay in the upper (hashing a 16 TiB sparse file
 * took hours); 1 GiB by default, K/M/G/T suffixes, 0 for no limit */
static void test_max_size(void **state)
{
	struct policy p;
	unsigned line = 0;

	(void)state;
	assert_int_equal(policy_default(&p), 0);
	assert_int_equal(p.max_size, 1ull << 30);
	assert_int_equal(policy_parse(&p, "max-size 4096\n", &line), 0);
	assert_int_equal(p.max_size, 4096);
	assert_int_equal(policy_parse(&p, "max-size 3K\n", &line), 0);
	assert_int_equal(p.max_size, 3 << 10);
	assert_int_equal(policy_parse(&p, "max-size 5M\n", &line), 0);
	assert_int_equal(p.max_size, 5 << 20);
	assert_int_equal(policy_parse(&p, "max-size 2G\n", &line), 0);
	assert_int_equal(p.max_size, 2ull << 30);
	assert_int_equal(policy_parse(&p, "max-size 16T\n", &line), 0);
	assert_int_equal(p.max_size, 16ull << 40);
	assert_int_equal(policy_parse(&p, "max-size 0\n", &line), 0);
	assert_int_equal(p.max_size, 0);
	/* refused: no number, a suffix alone, other suffixes, overflow */
	assert_int_equal(policy_parse(&p, "max-size\n", &line), -EINVAL);
	assert_int_equal(policy_parse(&p, "# x\nmax-size G\n", &line), -EINVAL);
	assert_int_equal(line, 2);
	assert_int_equal(policy_parse(&p, "max-size 1P\n", &line), -EINVAL);
	assert_int_equal(policy_parse(&p, "max-size 1g\n", &line), -EINVAL);
	assert_int_equal(policy_parse(&p, "max-size 16777216T\n", &line), -EINVAL);
	assert_int_equal(policy_parse(&p, "max-size -1\n", &line), -EINVAL);
	policy_free(&p);
}

static void test_reset(void **state)
{
	struct policy p;

	(void)state;
	assert_int_equal(policy_default(&p), 0);
	assert_int_equal(policy_parse(&p, "reset system\nsystem /only\n", NULL), 0);
	assert_int_equal(p.n_system, 1);
	assert_string_equal(p.system[0], "/only");
	assert_int_equal(p.n_never, 9);
	assert_int_equal(policy_classify(&p, "/usr", POLICY_OTHER), POLICY_OTHER);
	assert_int_equal(policy_classify(&p, "/only", POLICY_OTHER), POLICY_SYSTEM);

	assert_int_equal(policy_parse(&p, "reset never\n", NULL), 0);
	assert_int_equal(p.n_never, 0);
	assert_int_equal(policy_classify(&p, "/tmp", POLICY_OTHER), POLICY_OTHER);
	/* reset of an empty list, then adding again */
	assert_int_equal(policy_parse(&p, "reset never\nreset never\nnever /x\n", NULL), 0);
	assert_int_equal(p.n_never, 1);
	policy_free(&p);
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *text;
		unsigned line;
	} cases[] = {
	        {"bogus /x\n", 1},
	        {"# c\n\nsystem /ok\nfrobnicate /x\nsystem /later\n", 4},
	        {"system usr\n", 1}, /* relative pattern */
	        {"\nnever tmp/*\n", 2}, /* relative pattern */
	        {"never *\n", 1}, /* relative pattern */
	        {"system\n", 1}, /* missing argument */
	        {"system /a\nnever   \n", 2}, /* missing argument */
	        {"min-size\n", 1},
	        {"min-size abc\n", 1}, /* bad numbers */
	        {"min-size -1\n", 1},
	        {"min-size +5\n", 1},
	        {"min-size 12k\n", 1},
	        {"min-size 4 096\n", 1},
	        {"min-size 18446744073709551616\n", 1}, /* UINT64_MAX + 1 */
	        {"min-size 99999999999999999999999999999999999999\n", 1},
	        {"reset\n", 1},
	        {"reset everything\n", 1},
	        {"reset system never\n", 1},
	        {"System /usr\n", 1}, /* keywords are case-sensitive */
	        {"systems /usr\n", 1},
	        {"sys /usr\n", 1},
	        {"\n\n\n\n\n\n\n\n\n\nnever\n", 11},
	        {"a\r\n", 1},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct policy p;
		unsigned line = 0;
		int r;

		assert_int_equal(policy_default(&p), 0);
		r = policy_parse(&p, cases[i].text, &line);
		if (r != -EINVAL || line != cases[i].line)
			fail_msg("case %zu: '%s': r=%d line=%u, want -EINVAL line %u", i, cases[i].text, r,
			         line, cases[i].line);
		/* NULL ret_line is allowed */
		assert_int_equal(policy_parse(&p, cases[i].text, NULL), -EINVAL);
		policy_free(&p);
	}
}

static void test_default_text(void **state)
{
	struct policy def, parsed = {.min_size = 1};
	char *text = policy_default_text();
	unsigned line = 0;

	(void)state;
	assert_non_null(text);
	assert_non_null(strstr(text, "\nsystem /usr\n"));
	assert_non_null(strstr(text, "\nnever /etc/ssh/ssh_host_*_key\n"));
	assert_int_equal(policy_default(&def), 0);
	/* on an empty policy, as pool_open does */
	assert_int_equal(policy_parse(&parsed, text, &line), 0);
	assert_int_equal(parsed.min_size, def.min_size);
	assert_int_equal(parsed.max_size, def.max_size);
	assert_int_equal(parsed.n_system, def.n_system);
	assert_int_equal(parsed.n_never, def.n_never);
	for (size_t i = 0; i < def.n_system; i++)
		assert_string_equal(parsed.system[i], def.system[i]);
	for (size_t i = 0; i < def.n_never; i++)
		assert_string_equal(parsed.never[i], def.never[i]);
	policy_free(&parsed);

	/* and on top of the defaults it adds nothing */
	assert_int_equal(policy_parse(&def, text, &line), 0);
	assert_int_equal(def.n_system, 7);
	assert_int_equal(def.n_never, 9);
	policy_free(&def);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_inheritance),
	        cmocka_unit_test(test_parse),        cmocka_unit_test(test_reset),
	        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_default_text),
	        cmocka_unit_test(test_max_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
