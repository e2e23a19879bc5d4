/* send: copy an unmounted guest to another host's pool (migration without
 * DRBD).  The order, each step safe to die after:
 *   1. link layout: describe the lower layer in the home (lowerlist.h);
 *   2. the objects the guest references that the other pool lacks
 *      (replica_send: durable and verified there before it returns);
 *   3. the home, by rsync -aHAXS --numeric-ids (sparse files stay sparse,
 *      hard links, xattrs, ACLs, devices and whiteouts kept), made durable
 *      there (`vunify receive --sync HOME` syncs before rsync reports
 *      success).  Killed here: a partial home there that no pool has
 *      registered; sending again completes it (rsync sends what differs);
 *   4. `vunify adopt GUEST HOME` there, which refuses unless every object
 *      is there, and registers the guest last.
 * The source is only read. */
#ifndef VUNIFY_SEND_H
#define VUNIFY_SEND_H

#include "transport.h"

/* Copy the directory HOME to T (T->dir is the destination home, created if
 * missing).  Returns 0, -EHOSTUNREACH (rsync failed: *ret_status) or
 * -errno. */
int home_send(const char *home, const struct target *t, int *ret_status);

/* Run `vunify ARGS...` on T's host over ssh (a local T: this host), with
 * our stdout and stderr.  Returns 0 when it ran (its status in
 * *ret_status) or -errno. */
int remote_vunify(const struct target *t, char *const *args, int *ret_status);

#endif
