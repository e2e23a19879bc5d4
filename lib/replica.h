/* Replicas: other pools that must hold this pool's objects, so that a
 * guest whose partition fails over to their host finds every object its
 * lower layer references (SPEC invariant 7).
 *
 * The list is POOL/replicas (one target a line, see transport.h for the
 * syntax) and POOL/replicas.synced ("SECONDS TARGET" lines: when each was
 * last brought up to date).  Objects travel by rsync over ssh, one rsync
 * per batch, into a staging directory of the replica pool; the replica's
 * own `vunify receive` (rsync's --rsync-path) then verifies and names them
 * durably before rsync reports success (the order is in replica_send.c).  It
 * holds the replica pool's shared lock meanwhile, so the replica's gc and
 * tmp cleanup wait. */
#ifndef VUNIFY_REPLICA_H
#define VUNIFY_REPLICA_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pool.h"
#include "transport.h"

struct replica {
	struct target t;
	int64_t synced; /* seconds since the epoch, 0: never */
};

/* The configured replicas (possibly none).  Returns 0 or -errno. */
int replica_list(struct pool *p, struct replica **ret, size_t *ret_n);
void replicas_free(struct replica *v, size_t n);
/* Add / remove a target.  Returns 0 or -errno (-EEXIST: listed already;
 * -ENOENT: not listed; -EINVAL: bad target). */
int replica_add(struct pool *p, const char *spec);
int replica_rm(struct pool *p, const char *spec);
/* Record that SPEC was brought up to date at time T.  Returns 0 or -errno. */
int replica_mark_synced(struct pool *p, const char *spec, int64_t t);

/* A set of object names. */
struct nameset {
	char **v; /* open addressing, NULL = empty slot */
	size_t n, cap;
};
int nameset_add(struct nameset *s, const char *name);
bool nameset_has(const struct nameset *s, const char *name);
void nameset_free(struct nameset *s);

/* The object names a replica holds: remote targets answer with one
 * `vunify -p DIR objects` over ssh, local ones are read directly.  The
 * replica must be a pool of LAYOUT (-EPROTOTYPE otherwise).  Returns 0,
 * -EHOSTUNREACH when ssh or the remote vunify failed (status in
 * *ret_status when non-NULL), or -errno. */
int replica_names(const struct target *t, enum layout_kind layout, struct nameset *ret, int *ret_status);
/* The same, also returning the replica pool's absolute path (malloc'd) in
 * *ret_path when non-NULL; a remote T with an empty dir asks the remote
 * vunify's default pool. */
int replica_names_at(const struct target *t, enum layout_kind layout, struct nameset *ret, char **ret_path,
                     int *ret_status);

/* Send the objects NAMES (they exist here) to T with one rsync, and make
 * them durable there.  Returns 0, -EHOSTUNREACH (rsync failed; its exit
 * status in *ret_status: 11/12 often mean the replica is full) or -errno. */
int replica_send(struct pool *p, const struct target *t, char *const *names, size_t n, int *ret_status);

/* On a replica: commit the objects rsync staged in POOL/tmp/STAGE
 * (syncfs, verify each against its name, rename into objects/, syncfs,
 * remove the staging directory).  Objects whose content does not match
 * their name are not named (-EBADMSG after the others are committed).
 * Every object verified is then appended to POOL/held (fsync'd), which
 * gc keeps: a replica holds objects for guests it does not know yet.
 * *ret_n: objects named.  Returns 0 or -errno. */
int replica_commit(struct pool *p, const char *stage, uint64_t *ret_n);

/* The objects that the named guests (all when n == 0) reference and that
 * exist here, from the pool's reference records (POOL/guests/G/refs).
 * Sorted, unique.  Returns 0 or -errno. */
int guests_objects(struct pool *p, char *const *guests, size_t n, char ***ret, size_t *ret_n);

/* Replicated unify: the replicas and what each is known to hold, for one
 * run.  Opening asks every replica for its names once; one that cannot be
 * reached is "down" for the whole run.  Thread-safe. */
struct replica_state {
	struct target t;
	struct nameset have;
	bool down;
	int error; /* why it is down: -errno */
	int status; /* ssh/rsync exit status, when that is why */
	uint64_t files_kept; /* files left in an upper because it lacks their object */
};

struct replica_session {
	struct pool *p;
	pthread_mutex_t lock;
	struct replica_state *v;
	size_t n;
};

/* Returns 0 (*ret NULL when no replica is configured) or -errno. */
int replica_session_open(struct pool *p, struct replica_session **ret);
void replica_session_close(struct replica_session *s);

/* Make the objects NAMES[0..n) (present and durable here) durable on every
 * replica: one rsync per replica for those it is not known to hold.
 * ret_ok[i] is set to whether every replica now holds NAMES[i]; for each
 * name that some replica lacks, that replica's files_kept grows by
 * WEIGHTS[i] (files).  A replica that fails is marked down (its error
 * recorded) and is not tried again in this session.  Returns 0 or -errno
 * (an error of ours, not of a replica). */
int replica_session_push(struct replica_session *s, char *const *names, const uint64_t *weights, size_t n,
                         bool *ret_ok);

#endif
