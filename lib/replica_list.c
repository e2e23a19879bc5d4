/* The replica list: POOL/replicas (one target a line) and
 * POOL/replicas.synced (when each was last brought up to date); see
 * replica.h. */
#define _GNU_SOURCE
#include "replica.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "lower.h"
#include "object.h"
#include "remove_tree.h"
#include "util.h"
#include "banned.h"

#define REPLICAS_FILE "replicas"
#define SYNCED_FILE "replicas.synced"

/* ---- the list ---- */

static int read_lines(struct pool *p, const char *file, char **ret_buf)
{
	size_t len;
	int r = read_file_at(p->fd, file, 1 << 20, ret_buf, &len);

	if (r == -ENOENT) {
		*ret_buf = strdup("");
		return *ret_buf ? 0 : -ENOMEM;
	}
	return r;
}

void replicas_free(struct replica *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		target_free(&v[i].t);
	free(v);
}

static int64_t synced_of(const char *synced, const char *spec)
{
	size_t sl = strlen(spec);

	for (const char *line = synced; line && *line;) {
		const char *nl = strchr(line, '\n'), *sp = strchr(line, ' ');
		size_t ll = nl ? (size_t)(nl - line) : strlen(line);
		if (sp && sp < line + ll && (size_t)(line + ll - sp - 1) == sl && !memcmp(sp + 1, spec, sl)) {
			char num[32];
			uint64_t v;
			size_t k = (size_t)(sp - line);
			if (k < sizeof(num)) {
				memcpy(num, line, k);
				num[k] = '\0';
				if (parse_u64(num, &v) == 0)
					return (int64_t)v;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	return 0;
}

int replica_list(struct pool *p, struct replica **ret, size_t *ret_n)
{
	_cleanup_free_ char *buf = NULL, *synced = NULL;
	struct replica *v = NULL;
	size_t n = 0;
	int r;

	r = read_lines(p, REPLICAS_FILE, &buf);
	if (r == 0)
		r = read_lines(p, SYNCED_FILE, &synced);
	if (r < 0)
		return r;
	for (char *line = buf; *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (*line && *line != '#') {
			struct replica *nv = realloc(v, (n + 1) * sizeof(*v));
			if (!nv) {
				replicas_free(v, n);
				return -ENOMEM;
			}
			v = nv;
			r = target_parse(line, &v[n].t);
			if (r < 0) {
				replicas_free(v, n);
				return r == -EINVAL ? -EBADMSG : r;
			}
			v[n].synced = synced_of(synced, line);
			n++;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Rewrite FILE keeping the lines for which keep() is true, plus ADD. */
static int rewrite_lines(struct pool *p, const char *file, bool (*keep)(const char *line, const void *ud),
                         const void *ud, const char *add)
{
	_cleanup_free_ char *buf = NULL, *out = NULL;
	size_t len = 0;
	int r = read_lines(p, file, &buf);

	if (r < 0)
		return r;
	out = malloc(strlen(buf) + (add ? strlen(add) : 0) + 2);
	if (!out)
		return -ENOMEM;
	for (char *line = buf; *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (*line && keep(line, ud)) {
			size_t l = strlen(line);
			memcpy(out + len, line, l);
			out[len + l] = '\n';
			len += l + 1;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	if (add) {
		size_t l = strlen(add);
		memcpy(out + len, add, l);
		out[len + l] = '\n';
		len += l + 1;
	}
	return write_file_atomic_at(p->fd, file, out, len, 0644);
}

static bool not_spec(const char *line, const void *ud)
{
	return strcmp(line, ud) != 0;
}

static bool not_synced_spec(const char *line, const void *ud)
{
	const char *sp = strchr(line, ' ');
	return !sp || strcmp(sp + 1, ud) != 0;
}

static int find_spec(struct pool *p, const char *spec)
{
	struct replica *v = NULL;
	size_t n = 0;
	int r = replica_list(p, &v, &n), found = 0;

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		found |= !strcmp(v[i].t.spec, spec);
	replicas_free(v, n);
	return found;
}

int replica_add(struct pool *p, const char *spec)
{
	struct target t;
	int r = target_parse(spec, &t);

	if (r < 0)
		return r;
	target_free(&t);
	if (spec[0] == '#')
		return -EINVAL;
	r = find_spec(p, spec);
	if (r < 0)
		return r;
	if (r)
		return -EEXIST;
	return rewrite_lines(p, REPLICAS_FILE, not_spec, spec, spec);
}

int replica_rm(struct pool *p, const char *spec)
{
	int r = find_spec(p, spec);

	if (r < 0)
		return r;
	if (!r)
		return -ENOENT;
	r = rewrite_lines(p, REPLICAS_FILE, not_spec, spec, NULL);
	if (r == 0)
		r = rewrite_lines(p, SYNCED_FILE, not_synced_spec, spec, NULL);
	return r;
}

int replica_mark_synced(struct pool *p, const char *spec, int64_t t)
{
	size_t l = strlen(spec) + 32;
	_cleanup_free_ char *line = NULL;

	line = malloc(l);
	if (!line)
		return -ENOMEM;
	snprintf(line, l, "%" PRId64 " %s", t, spec);
	return rewrite_lines(p, SYNCED_FILE, not_synced_spec, spec, line);
}
