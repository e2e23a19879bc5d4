/* Messages and shared command helpers. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "util.h"
#include "banned.h"

int cli_error(const char *what, const char *arg, int r, const char *hint)
{
	fprintf(stderr, "vunify: %s", what);
	if (arg)
		fprintf(stderr, " '%s'", arg);
	fprintf(stderr, ": %s", strerror(r < 0 ? -r : r));
	if (hint)
		fprintf(stderr, " (%s)", hint);
	fputc('\n', stderr);
	return 1;
}

int cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("vunify: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vunify: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'vunify %s --help'.\n", cmd);
	return EXIT_USAGE;
}

struct pool *cli_open_pool(const struct cli *c, enum pool_lock lock)
{
	struct pool *p = NULL;
	unsigned line = 0;
	int r = pool_open(c->pool_path, lock, false, &p, &line);

	if (r == -EWOULDBLOCK) {
		/* Another vunify holds the pool; say so rather than hang
		 * silently.  The lock dies with its holder, so a killed command
		 * never blocks us for good. */
		fprintf(stderr, "vunify: waiting for another vunify command on pool '%s' to finish\n",
		        c->pool_path);
		r = pool_open(c->pool_path, lock, true, &p, &line);
	}

	if (r == -ENOENT)
		cli_error("open pool", c->pool_path, r, "create one with 'vunify init'");
	else if (r == -EBADMSG && line)
		cli_fail("open pool '%s': policy.conf line %u: syntax error", c->pool_path, line);
	else if (r == -EPROTO)
		cli_error("open pool", c->pool_path, r, "pool format not supported by this vunify");
	else if (r < 0)
		cli_error("open pool", c->pool_path, r, NULL);
	if (r == 0 && p->dirs_fixed)
		fprintf(stderr,
		        "vunify: pool '%s': put right the owner or mode of %u director%s (%s); "
		        "see 'vunify fsck'\n",
		        p->path, p->dirs_fixed, p->dirs_fixed == 1 ? "y" : "ies", p->dirs_fixed_first);
	return r < 0 ? NULL : p;
}

int cli_open_guest(const struct cli *c, const char *cmd, enum pool_lock lock, const char *name,
                   struct pool **ret_pool, struct guest **ret_guest, int *ret_home_fd)
{
	char what[64];
	int r;

	*ret_guest = NULL;
	*ret_pool = cli_open_pool(c, lock);
	if (!*ret_pool)
		return 1;
	r = pool_guest_load(*ret_pool, name, ret_guest);
	if (r < 0)
		return cli_error(cmd, name, r, r == -ENOENT || r == -EINVAL ? "no such guest" : NULL);
	if (!ret_home_fd)
		return 0;
	r = guest_open_home(*ret_pool, *ret_guest);
	if (r < 0) {
		snprintf(what, sizeof(what), "%s: home", cmd);
		return cli_error(what, (*ret_guest)->home, r, cli_hint(r));
	}
	*ret_home_fd = r;
	return 0;
}

const char *cli_hint(int r)
{
	switch (r) {
	case -EBUSY:
		return "guest is mounted; run 'vunify umount' first";
	case -ESTALE:
		return "home does not belong to this guest of this pool";
	case -ENOSPC:
		return "every guest still sees its whole tree; free space and run again";
	default:
		return NULL;
	}
}

void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}
