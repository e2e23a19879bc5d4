/* Replicas (see replica.h).
 *
 * Sending a batch, and why each step is safe to die after:
 *   1. rsync writes the batch's objects into a staging directory of the
 *      replica pool, tmp/in.PID.N/XX/NAME (temp names, then renamed by
 *      rsync inside the staging directory).  Nothing there is an object
 *      yet; killed here, the staging directory is garbage that the
 *      replica's next writer removes with the rest of its tmp/.
 *   2. on the replica, `vunify receive --pool --stage in.PID.N` (rsync's
 *      --rsync-path: it runs rsync, then commits) makes the staged data
 *      durable (syncfs), re-hashes each staged file and renames it to
 *      objects/XX/NAME only if its content hashes to NAME (an existing
 *      object wins), then syncfs again so the names are durable, and only
 *      then exits 0.  A replica therefore never names an object that is
 *      torn or corrupt, not even after a power cut of its own.
 *   3. the sender sees rsync exit 0 (rsync waits for the remote command):
 *      the batch is durable there.  Only now may anything that references
 *      the batch's objects become durable on a guest's partition
 *      (replicated unify) or the replica be reported up to date.
 * A local replica takes the same path, with the commit done in-process. */
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

/* ---- name sets ---- */

static size_t name_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;

	for (int i = 0; i < 16 && s[i]; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static int nameset_grow(struct nameset *s)
{
	size_t nc = s->cap ? s->cap * 2 : 1024;
	char **nv = calloc(nc, sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->v[i])
			continue;
		size_t k = name_hash(s->v[i]) & (nc - 1);
		while (nv[k])
			k = (k + 1) & (nc - 1);
		nv[k] = s->v[i];
	}
	free(s->v);
	s->v = nv;
	s->cap = nc;
	return 0;
}

int nameset_add(struct nameset *s, const char *name)
{
	size_t k;

	if (nameset_has(s, name))
		return 0;
	if ((s->n + 1) * 2 > s->cap) {
		int r = nameset_grow(s);
		if (r < 0)
			return r;
	}
	k = name_hash(name) & (s->cap - 1);
	while (s->v[k])
		k = (k + 1) & (s->cap - 1);
	s->v[k] = strdup(name);
	if (!s->v[k])
		return -ENOMEM;
	s->n++;
	return 1;
}

bool nameset_has(const struct nameset *s, const char *name)
{
	if (!s->cap)
		return false;
	for (size_t k = name_hash(name) & (s->cap - 1); s->v[k]; k = (k + 1) & (s->cap - 1))
		if (!strcmp(s->v[k], name))
			return true;
	return false;
}

void nameset_free(struct nameset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct nameset){0};
}

/* ---- asking a replica what it holds ---- */

static int add_name_cb(const char *name, void *ud)
{
	int r = nameset_add(ud, name);
	return r < 0 ? r : 0;
}

int replica_names(const struct target *t, enum layout_kind layout, struct nameset *ret, int *ret_status)
{
	return replica_names_at(t, layout, ret, NULL, ret_status);
}

int replica_names_at(const struct target *t, enum layout_kind layout, struct nameset *ret, char **ret_path,
                     int *ret_status)
{
	struct nameset s = {0};
	_cleanup_free_ char *path = NULL;
	int r, status = 0;

	if (!t->host) {
		struct pool *rp = NULL;
		r = pool_open(t->dir, POOL_LOCK_SHARED, true, &rp, NULL);
		if (r < 0)
			return r;
		if (rp->layout != layout)
			r = -EPROTOTYPE;
		else
			r = objects_names(rp, add_name_cb, &s);
		if (r == 0 && !(path = strdup(rp->path)))
			r = -ENOMEM;
		pool_close(rp);
	} else {
		char *with_pool[] = {"vunify", "-p", t->dir, "objects", NULL};
		char *remote_default[] = {"vunify", "objects", NULL};
		char **cmd = t->dir && *t->dir ? with_pool : remote_default;
		char **argv = NULL;
		_cleanup_free_ char *out = NULL;
		size_t len = 0;
		r = ssh_remote_argv(t, cmd, &argv);
		if (r < 0)
			return r;
		r = run_process(argv, NULL, 0, &out, &len, &status);
		strv_free(argv);
		if (r < 0)
			return r;
		if (ret_status)
			*ret_status = status;
		if (status != 0)
			return -EHOSTUNREACH;
		/* "vunify-objects 1\nlayout L\n" then one name a line */
		{
			char want[64];
			snprintf(want, sizeof(want), "vunify-objects 1\nlayout %s\n", layout_name(layout));
			if (strncmp(out, "vunify-objects 1\n", 17))
				return -EPROTO;
			if (strncmp(out, want, strlen(want)))
				return -EPROTOTYPE;
			for (char *line = out + strlen(want); *line && r == 0;) {
				char *nl = strchr(line, '\n');
				if (!nl)
					break;
				*nl = '\0';
				if (!strncmp(line, "pool ", 5)) {
					free(path);
					if (!(path = strdup(line + 5)))
						r = -ENOMEM;
				} else if (*line) {
					r = add_name_cb(line, &s);
				}
				line = nl + 1;
			}
		}
	}
	if (r < 0) {
		nameset_free(&s);
		return r;
	}
	if (ret_path)
		*ret_path = steal_pointer(&path);
	*ret = s;
	return 0;
}

/* ---- sending ---- */

int replica_send(struct pool *p, const struct target *t, char *const *names, size_t n, int *ret_status)
{
	_cleanup_free_ char *list = NULL, *src = NULL, *dst = NULL, *rpath = NULL, *qdir = NULL;
	static unsigned seq;
	char stage[64], listname[64];
	size_t filesfrom_len;
	_cleanup_free_ char *filesfrom = NULL;
	_cleanup_close_ int mfd = -1;
	const char *argv[32];
	size_t len = 0, k = 0;
	struct pool *rp = NULL;
	int r, status = 0;

	if (n == 0)
		return 0;
	filesfrom_len = strlen(p->path) + 96;
	filesfrom = malloc(filesfrom_len);
	list = malloc(n * (OBJECT_NAME_MAX + 4));
	if (!list || !filesfrom)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char rel[OBJECT_NAME_MAX + 4];
		size_t l = strlen(object_relpath(names[i], rel)) + 1;
		memcpy(list + len, rel, l); /* NUL-terminated: --from0 */
		len += l;
	}
	src = path_join(p->path, "objects/");
	if (!src)
		return -ENOMEM;
	snprintf(stage, sizeof(stage), "in.%ld.%u", (long)getpid(),
	         __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
	if (t->host) {
		size_t l = strlen(t->host) + strlen(t->dir) + 96;
		qdir = shell_quote(t->dir);
		dst = malloc(l);
		if (!qdir || !dst)
			return -ENOMEM;
		snprintf(dst, l, "%s:%s/tmp/%s/", t->host, t->dir, stage);
		/* the remote command (a shell parses it: every word quoted;
		 * STAGE is ours: letters, digits and dots) */
		l = strlen(qdir) + 128;
		rpath = malloc(l);
		if (!rpath)
			return -ENOMEM;
		snprintf(rpath, l, "vunify -p %s receive --pool --stage %s rsync", qdir, stage);
	} else {
		size_t l;
		/* a local replica: hold its lock, commit ourselves */
		r = pool_open(t->dir, POOL_LOCK_SHARED, true, &rp, NULL);
		if (r < 0)
			return r;
		if (rp->layout != p->layout) {
			pool_close(rp);
			return -EPROTOTYPE;
		}
		l = strlen(rp->path) + 96;
		dst = malloc(l);
		if (!dst) {
			pool_close(rp);
			return -ENOMEM;
		}
		snprintf(dst, l, "%s/tmp/%s/", rp->path, stage);
	}
	argv[k++] = "rsync";
	argv[k++] = "-s"; /* --protect-args: paths inside the protocol, no remote splitting */
	argv[k++] = "-W";
	argv[k++] = "-q";
	argv[k++] = filesfrom;
	argv[k++] = "--from0";
	argv[k++] = "--numeric-ids";
	argv[k++] = "-pogt";
	argv[k++] = rsync_timeout_option();
	if (p->layout == LAYOUT_LINK) {
		/* the object inode is the file guests see */
		argv[k++] = "-X";
		argv[k++] = "-A";
	}
	if (t->host) {
		argv[k++] = "-e";
		argv[k++] = ssh_command_string();
		argv[k++] = "--rsync-path";
		argv[k++] = rpath;
	}
	argv[k++] = "--";
	argv[k++] = src;
	argv[k++] = dst;
	argv[k] = NULL;
	/* the list in a file of our tmp/ that rsync reads, not on its
	 * stdin: a receiver that fails mid-list must not leave us and rsync
	 * waiting on each other through a full pipe (removed below; a killed
	 * run's is removed by the next writer) */
	snprintf(listname, sizeof(listname), "list.%ld.%u", (long)getpid(),
	         __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
	snprintf(filesfrom, filesfrom_len, "--files-from=%s/tmp/%s", p->path, listname);
	mfd = openat(p->tmp_fd, listname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	r = mfd < 0 ? neg_errno() : write_all(mfd, list, len);
	if (r == 0)
		r = run_process((char *const *)argv, NULL, 0, NULL, NULL, &status);
	unlinkat(p->tmp_fd, listname, 0);
	if (r == 0 && status != 0)
		r = -EHOSTUNREACH;
	if (ret_status)
		*ret_status = status;
	if (r == 0 && rp)
		r = replica_commit(rp, stage, NULL);
	pool_close(rp);
	return r;
}

/* Commit one staged object: verify, name.  Returns 0, -EBADMSG (content
 * does not match the name) or -errno. */
static int commit_one(struct pool *p, struct hasher *h, int fan_fd, const char *fan, const char *name,
                      bool *ret_dropped)
{
	char rel[OBJECT_NAME_MAX + 4], hex[HASH_HEX_LEN + 1];
	unsigned char sum[HASH_LEN];
	struct stat st;
	size_t l = strlen(name);
	_cleanup_close_ int fd = -1;
	int r;

	*ret_dropped = false;
	/* HASH, or (link layout) HASH.METAKEY: the names a pool makes */
	if (!hash_is_hex(name) || strncmp(name, fan, 2) ||
	    (l != HASH_HEX_LEN && (l != 2 * HASH_HEX_LEN + 1 || name[HASH_HEX_LEN] != '.' ||
	                           !hash_is_hex(name + HASH_HEX_LEN + 1))))
		return -EBADMSG;
	fd = openat(fan_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &st) < 0)
		return neg_errno();
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	r = hasher_fd(h, fd, (uint64_t)st.st_size, sum);
	if (r < 0)
		return r;
	hash_to_hex(sum, hex);
	if (strncmp(hex, name, HASH_HEX_LEN))
		return -EBADMSG;
	if (renameat2(fan_fd, name, p->objects_fd, object_relpath(name, rel), RENAME_NOREPLACE) < 0) {
		if (errno != EEXIST)
			return neg_errno();
		*ret_dropped = true; /* an object of that name is there: it wins */
	}
	return 0;
}

/* Append NAMES (LEN bytes, one name a line) to POOL/held and fsync it.
 * One write(2) with O_APPEND, so concurrent receivers (each holds the
 * pool's shared lock) never interleave inside a line.  Returns 0 or
 * -errno. */
static int held_append(struct pool *p, const char *names, size_t len)
{
	_cleanup_close_ int fd = -1;
	ssize_t w;

	if (!len)
		return 0;
	fd = openat(p->fd, "held", O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return neg_errno();
	w = write(fd, names, len);
	if (w < 0)
		return neg_errno();
	if ((size_t)w != len)
		return -EIO;
	if (fsync(fd) < 0)
		return neg_errno();
	return 0;
}

int replica_commit(struct pool *p, const char *stage, uint64_t *ret_n)
{
	struct hasher h;
	_cleanup_close_ int sfd = -1;
	_cleanup_free_ char *held = NULL;
	size_t held_len = 0, held_cap = 0;
	uint64_t n = 0;
	int r = 0, bad = 0;

	if (strncmp(stage, "in.", 3) || strchr(stage, '/') || strstr(stage, ".."))
		return -EINVAL;
	sfd = openat(p->tmp_fd, stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return errno == ENOENT ? 0 : neg_errno(); /* nothing was sent */
	/* 1. the staged data durable before any of it is named */
	if (syncfs(sfd) < 0)
		return neg_errno();
	r = hasher_init(&h);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < 256 && r == 0; i++) {
		char fan[3];
		_cleanup_closedir_ DIR *d = NULL;
		struct dirent *de;
		int fd;
		snprintf(fan, sizeof(fan), "%02x", i);
		fd = openat(sfd, fan, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			r = neg_errno();
			break;
		}
		d = fdopendir(fd);
		if (!d) {
			r = neg_errno();
			close(fd);
			break;
		}
		/* 2. each verified, then named (an existing object wins) */
		while (r == 0 && (de = readdir(d))) {
			bool dropped = false;
			int e;
			if (de->d_name[0] == '.')
				continue;
			e = commit_one(p, &h, fd, fan, de->d_name, &dropped);
			if (e == -EBADMSG)
				bad++;
			else if (e < 0)
				r = e;
			else
				n += !dropped;
			if (e == 0) {
				size_t l = strlen(de->d_name) + 1;
				if (held_len + l > held_cap) {
					size_t nc = held_cap ? held_cap * 2 : 65536;
					char *nb;
					while (nc < held_len + l)
						nc *= 2;
					nb = realloc(held, nc);
					if (!nb) {
						r = -ENOMEM;
						break;
					}
					held = nb;
					held_cap = nc;
				}
				memcpy(held + held_len, de->d_name, l - 1);
				held[held_len + l - 1] = '\n';
				held_len += l;
			}
		}
	}
	hasher_release(&h);
	/* 3. the names durable; the staging directory is garbage now */
	if (r == 0 && syncfs(p->objects_fd) < 0)
		r = neg_errno();
	/* 4. the names recorded as held for another host, durably, before
	 * the sender hears of success: this pool's gc keeps them although
	 * none of its own guests references them (a kill before this step
	 * leaves named objects the sender does not count on yet) */
	if (r == 0)
		r = held_append(p, held, held_len);
	(void)remove_tree_at(p->tmp_fd, stage);
	if (r == 0 && bad)
		r = -EBADMSG;
	if (ret_n)
		*ret_n = n;
	return r;
}

/* ---- what guests need ---- */

int guests_objects(struct pool *p, char *const *guests, size_t n, char ***ret, size_t *ret_n)
{
	char **all = NULL, **v = NULL;
	size_t nv = 0, cap = 0;
	struct nameset seen = {0};
	int r = 0;

	if (n == 0) {
		r = pool_guest_names(p, &all);
		if (r < 0)
			return r;
		n = (size_t)r;
		guests = all;
		r = 0;
	}
	for (size_t g = 0; g < n && r == 0; g++) {
		_cleanup_close_ int gfd = -1;
		_cleanup_free_ char *buf = NULL;
		if (!guest_name_valid(guests[g])) {
			r = -EINVAL;
			break;
		}
		gfd = openat(p->guests_fd, guests[g], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (gfd < 0 || faccessat(gfd, "home", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -ENOENT;
			break;
		}
		r = read_file_at(gfd, "refs", SIZE_MAX / 2, &buf, NULL);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		for (char *line = buf; r == 0 && line && *line;) {
			char *nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			if (*line && !nameset_has(&seen, line)) {
				/* the record is a superset: keep what exists here */
				r = nameset_add(&seen, line);
				if (r >= 0)
					r = pool_object_stat(p, line, NULL);
				if (r == 1) {
					if (nv == cap) {
						size_t nc = cap ? cap * 2 : 1024;
						char **nn = realloc(v, (nc + 1) * sizeof(*v));
						if (!nn) {
							r = -ENOMEM;
							break;
						}
						v = nn;
						cap = nc;
					}
					v[nv] = strdup(line);
					r = v[nv] ? 0 : -ENOMEM;
					nv += r == 0;
				} else if (r == -EINVAL) {
					r = 0; /* not an object name */
				}
			}
			line = nl ? nl + 1 : NULL;
		}
	}
	nameset_free(&seen);
	names_free(all);
	if (r < 0) {
		for (size_t i = 0; i < nv; i++)
			free(v[i]);
		free(v);
		return r;
	}
	if (!v && !(v = malloc(sizeof(*v))))
		return -ENOMEM;
	v[nv] = NULL;
	qsort(v, nv, sizeof(*v), cmp_strp);
	*ret = v;
	*ret_n = nv;
	return 0;
}

/* ---- replicated unify ---- */

int replica_session_open(struct pool *p, struct replica_session **ret)
{
	struct replica *list = NULL;
	struct replica_session *s;
	size_t n = 0;
	int r = replica_list(p, &list, &n);

	if (r < 0)
		return r;
	if (n == 0) {
		free(list);
		*ret = NULL;
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->v = calloc(n, sizeof(*s->v)))) {
		free(s);
		replicas_free(list, n);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->p = p;
	s->n = n;
	for (size_t i = 0; i < n; i++) {
		struct replica_state *rs = &s->v[i];
		rs->t = list[i].t;
		list[i].t = (struct target){0};
		r = replica_names(&rs->t, p->layout, &rs->have, &rs->status);
		if (r == -ENOMEM) {
			replicas_free(list, n);
			replica_session_close(s);
			return r;
		}
		if (r < 0) {
			rs->down = true;
			rs->error = r;
		}
	}
	replicas_free(list, n);
	*ret = s;
	return 0;
}

void replica_session_close(struct replica_session *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		target_free(&s->v[i].t);
		nameset_free(&s->v[i].have);
	}
	pthread_mutex_destroy(&s->lock);
	free(s->v);
	free(s);
}

int replica_session_push(struct replica_session *s, char *const *names, const uint64_t *weights, size_t n,
                         bool *ret_ok)
{
	_cleanup_free_ char **want = NULL;
	int r = 0;

	want = malloc((n ? n : 1) * sizeof(*want));
	if (!want)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		ret_ok[i] = true;
	for (size_t k = 0; k < s->n && r == 0; k++) {
		struct replica_state *rs = &s->v[k];
		struct nameset batch = {0};
		size_t nw = 0;
		bool down;
		int status = 0, e = 0;

		pthread_mutex_lock(&s->lock);
		down = rs->down;
		for (size_t i = 0; i < n && !down && r == 0; i++)
			if (!nameset_has(&rs->have, names[i])) {
				r = nameset_add(&batch, names[i]);
				if (r == 1)
					want[nw++] = names[i];
				r = r < 0 ? r : 0;
			}
		pthread_mutex_unlock(&s->lock);
		if (r < 0) {
			nameset_free(&batch);
			break;
		}
		/* the transfer runs unlocked: two threads may send one object
		 * twice, which --ignore-existing and rename settle */
		if (!down && nw)
			e = replica_send(s->p, &rs->t, want, nw, &status);
		if (e == -ENOMEM)
			r = e;
		pthread_mutex_lock(&s->lock);
		if (e < 0 && !rs->down) {
			rs->down = true;
			rs->error = e;
			rs->status = status;
		}
		for (size_t i = 0; i < nw && e == 0 && r == 0; i++) {
			int a = nameset_add(&rs->have, want[i]);
			r = a < 0 ? a : 0;
		}
		for (size_t i = 0; i < n; i++)
			if (rs->down && !nameset_has(&rs->have, names[i])) {
				ret_ok[i] = false;
				rs->files_kept += weights ? weights[i] : 0;
			}
		pthread_mutex_unlock(&s->lock);
		nameset_free(&batch);
	}
	return r;
}
