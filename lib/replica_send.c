/* Sending objects to replicas (see replica.h), and replicated unify.
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
#include "unify.h"

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

/* ---- sending ---- */

int replica_send(struct pool *p, const struct target *t, char *const *names, size_t n, int *ret_status)
{
	_cleanup_free_ char *list = NULL, *src = NULL, *dst = NULL, *rpath = NULL, *qdir = NULL;
	static unsigned seq;
	char stage[64], listname[64];
	size_t filesfrom_len;
	_cleanup_free_ char *filesfrom = NULL;
	_cleanup_close_ int mfd = -1;
	const char *argv[RSYNC_ARGV_MAX];
	size_t len = 0;
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
	{
		/* the object inode is the file guests see: -X -A keep its
		 * xattrs and ACLs (otherwise the list ends before them) */
		const char *opts[] = {"-W", filesfrom, "--from0", "-pogt", "-X", "-A", NULL};
		if (!layout_ops_for(p)->object_metadata)
			opts[4] = NULL;
		r = rsync_argv(argv, opts, t->host ? rpath : NULL, src, dst);
		if (r < 0)
			return r;
	}
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

/* Replicated unify: one session for the run (every replica asked what it
 * holds, once), and the objects the guests already reference sent to the
 * replicas that lack them first.  Returns 0 or -errno. */
int unify_replicas_prepare(struct pool *p, char *const *guests, size_t n, bool no_replicas,
                           struct unify_options *o)
{
	struct replica *list = NULL;
	size_t nl = 0;
	char **need = NULL;
	size_t nn = 0;
	bool *ok;
	int r = replica_list(p, &list, &nl);

	if (r < 0)
		return r;
	replicas_free(list, nl);
	o->describe_lower = nl > 0;
	if (nl == 0 || no_replicas)
		return 0;
	r = replica_session_open(p, &o->replicas);
	if (r < 0)
		return r;
	r = guests_objects(p, guests, n, &need, &nn);
	if (r == -ENOENT || r == -EINVAL)
		return 0; /* an unknown guest: unify_run says which */
	if (r < 0)
		return r;
	ok = calloc(nn ? nn : 1, sizeof(*ok));
	r = ok ? replica_session_push(o->replicas, need, NULL, nn, ok) : -ENOMEM;
	free(ok);
	names_free(need);
	return r;
}
