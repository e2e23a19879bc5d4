/* Policy matching.  A pattern is a shell glob matched with FNM_PATHNAME
 * against the whole guest path; matching a directory makes the whole
 * subtree inherit the class, so the walk classifies each path once and
 * never re-matches ancestors. */
#define _GNU_SOURCE
#include "policy.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

static const char *const default_system[] = {"/usr", "/bin", "/sbin", "/lib*", "/etc", "/opt", "/boot"};
static const char *const default_never[] = {
        "/tmp",         "/var/tmp",      "/run",
        "/proc",        "/sys",          "/dev",
        "/etc/shadow*", "/etc/gshadow*", "/etc/ssh/ssh_host_*_key",
};

static int list_add(char ***list, size_t *n, const char *pat, size_t len)
{
	char **nl = realloc(*list, (*n + 1) * sizeof(**list));

	if (!nl)
		return -ENOMEM;
	*list = nl;
	nl[*n] = strndup(pat, len);
	if (!nl[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static void list_free(char ***list, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*list)[i]);
	free(*list);
	*list = NULL;
	*n = 0;
}

void policy_free(struct policy *p)
{
	list_free(&p->system, &p->n_system);
	list_free(&p->never, &p->n_never);
}

int policy_default(struct policy *p)
{
	int r = 0;

	*p = (struct policy){.min_size = 1, .max_size = POLICY_MAX_SIZE_DEFAULT};
	for (size_t i = 0; i < ARRAY_SIZE(default_system) && r == 0; i++)
		r = list_add(&p->system, &p->n_system, default_system[i], strlen(default_system[i]));
	for (size_t i = 0; i < ARRAY_SIZE(default_never) && r == 0; i++)
		r = list_add(&p->never, &p->n_never, default_never[i], strlen(default_never[i]));
	if (r < 0)
		policy_free(p);
	return r;
}

char *policy_default_text(void)
{
	static const char head[] =
	        "# vunify unification policy for this pool (see docs/FORMAT.md).\n"
	        "# Files whose content another guest also has, or the pool already holds,\n"
	        "# are unified anywhere.  Unique files are unified only under 'system'\n"
	        "# paths.  'never' paths are never unified.  Patterns are shell globs on\n"
	        "# the path inside the guest; a pattern naming a directory covers its subtree.\n"
	        "# 'reset system' / 'reset never' drop the defaults listed here.\n";
	size_t cap = sizeof(head) + 1024, len = 0;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	len += (size_t)snprintf(s + len, cap - len,
	                        "%smin-size 1\n"
	                        "# larger files stay in the guest's upper (hashing costs their whole\n"
	                        "# size, holes included); 0 for no limit\n"
	                        "max-size 1G\n",
	                        head);
	for (size_t i = 0; i < ARRAY_SIZE(default_system); i++)
		len += (size_t)snprintf(s + len, cap - len, "system %s\n", default_system[i]);
	for (size_t i = 0; i < ARRAY_SIZE(default_never); i++)
		len += (size_t)snprintf(s + len, cap - len, "never %s\n", default_never[i]);
	return s;
}

static bool list_has(char **list, size_t n, const char *pat, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len && !memcmp(list[i], pat, len))
			return true;
	return false;
}

int policy_parse(struct policy *p, const char *text, unsigned *ret_line)
{
	unsigned lineno = 0;

	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n'), *next = end ? end + 1 : NULL, *kw, *arg;
		size_t kwlen, arglen;
		int r = 0;

		if (!end)
			end = line + strlen(line);
		lineno++;
		while (line < end && (*line == ' ' || *line == '\t'))
			line++;
		while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			end--;
		if (line == end || *line == '#') {
			line = next;
			continue;
		}
		kw = line;
		while (line < end && *line != ' ' && *line != '\t')
			line++;
		kwlen = (size_t)(line - kw);
		while (line < end && (*line == ' ' || *line == '\t'))
			line++;
		arg = line;
		arglen = (size_t)(end - arg);
		if (arglen == 0)
			r = -EINVAL;
		else if (kwlen == 6 && !memcmp(kw, "system", 6))
			r = arg[0] != '/' ? -EINVAL
			    : list_has(p->system, p->n_system, arg, arglen)
			            ? 0
			            : list_add(&p->system, &p->n_system, arg, arglen);
		else if (kwlen == 5 && !memcmp(kw, "never", 5))
			r = arg[0] != '/' ? -EINVAL
			    : list_has(p->never, p->n_never, arg, arglen)
			            ? 0
			            : list_add(&p->never, &p->n_never, arg, arglen);
		else if (kwlen == 8 && !memcmp(kw, "min-size", 8)) {
			char num[32];
			uint64_t v;
			if (arglen >= sizeof(num))
				r = -EINVAL;
			else {
				memcpy(num, arg, arglen);
				num[arglen] = '\0';
				r = parse_u64(num, &v);
				if (r == 0)
					p->min_size = v < 1 ? 1 : v;
				else
					r = -EINVAL;
			}
		} else if (kwlen == 8 && !memcmp(kw, "max-size", 8)) {
			char num[32];
			uint64_t v, mul = 1;
			size_t n = arglen;
			if (n > 1 && strchr("KMGT", arg[n - 1])) {
				mul = 1ull << (10 * (1 + (unsigned)(strchr("KMGT", arg[n - 1]) - "KMGT")));
				n--;
			}
			if (n >= sizeof(num)) {
				r = -EINVAL;
			} else {
				memcpy(num, arg, n);
				num[n] = '\0';
				r = parse_u64(num, &v);
				if (r < 0 || v > UINT64_MAX / mul)
					r = -EINVAL;
				else
					p->max_size = v * mul;
			}
		} else if (kwlen == 5 && !memcmp(kw, "reset", 5)) {
			if (arglen == 6 && !memcmp(arg, "system", 6))
				list_free(&p->system, &p->n_system);
			else if (arglen == 5 && !memcmp(arg, "never", 5))
				list_free(&p->never, &p->n_never);
			else
				r = -EINVAL;
		} else
			r = -EINVAL;
		if (r < 0) {
			if (ret_line)
				*ret_line = lineno;
			return r;
		}
		line = next;
	}
	return 0;
}

static bool list_match(char **list, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (fnmatch(list[i], path, FNM_PATHNAME | FNM_PERIOD) == 0)
			return true;
	return false;
}

enum policy_class policy_classify(const struct policy *p, const char *path, enum policy_class parent)
{
	if (parent == POLICY_NEVER || list_match(p->never, p->n_never, path))
		return POLICY_NEVER;
	if (parent == POLICY_SYSTEM || list_match(p->system, p->n_system, path))
		return POLICY_SYSTEM;
	return POLICY_OTHER;
}
