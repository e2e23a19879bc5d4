/* Transport to other hosts: OpenSSH and rsync, run as child processes with
 * argument vectors, never through a local shell.
 *
 * A target is "[user@]host:DIR" (over ssh) or a local directory, as rsync
 * spells it: a ':' before the first '/' makes it remote.  The ssh command
 * is $VUNIFY_SSH (a command line such as "ssh -F FILE -p PORT", split on
 * blanks with '...' and "..." quoting, like rsync's -e), else "ssh".
 *
 * The only string a shell ever parses is the command ssh hands to the
 * remote user's shell: every word of it is single-quoted by shell_quote(),
 * and rsync runs with --protect-args (-s) so that its paths travel inside
 * its protocol, not on that command line. */
#ifndef VUNIFY_TRANSPORT_H
#define VUNIFY_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

struct target {
	char *spec; /* as given */
	char *host; /* "[user@]host", NULL for a local directory */
	char *dir; /* the directory (remote: as the remote side names it) */
};

/* Parse SPEC.  Refuses (-EINVAL) an empty directory, a host part that is
 * empty, starts with '-' (it would be an ssh option) or holds blanks or
 * control characters, and any newline.  Returns 0 or -errno. */
int target_parse(const char *spec, struct target *ret);
void target_free(struct target *t);

/* Quote S for a POSIX shell: '...' with each ' written as '\''.  Returns a
 * malloc'd string or NULL. */
char *shell_quote(const char *s);

/* The ssh command line's words ($VUNIFY_SSH or "ssh"), NULL-terminated,
 * plus room for EXTRA more.  Returns 0 or -errno (-EINVAL: bad quoting). */
int ssh_command(char ***ret_argv, size_t *ret_n, size_t extra);

/* The ssh command as one string, for rsync's -e. */
const char *ssh_command_string(void);

/* argv to run ARGV (a command and its words) on T's host through ssh: each
 * word is shell-quoted for the remote shell.  Returns 0 or -errno. */
int ssh_remote_argv(const struct target *t, char *const *argv, char ***ret_argv);

/* Free a NULL-terminated vector of malloc'd strings. */
void strv_free(char **v);

/* Run ARGV (argv[0] looked up in PATH), writing IN (IN_LEN bytes, may be
 * NULL) to its stdin and, when ret_out is non-NULL, collecting its stdout
 * (NUL-terminated, length in *ret_len).  Its stderr is ours.  *ret_status
 * is its exit status, or 128 + signal.  Returns 0 when it ran (whatever
 * its status) or -errno. */
int run_process(char *const *argv, const void *in, size_t in_len, char **ret_out, size_t *ret_len,
                int *ret_status);

/* rsync's --timeout option: seconds without I/O after which rsync gives
 * up ($VUNIFY_RSYNC_TIMEOUT, default 120).  rsync 3.2/3.5 can otherwise
 * wait for ever after its receiver failed (a full replica, for one).
 * Returns a static string. */
const char *rsync_timeout_option(void);

/* Fill ARGV (room for RSYNC_ARGV_MAX entries) with an rsync command line:
 * rsync -s (--protect-args: paths inside the protocol, no remote
 * splitting) --numeric-ids -q and the I/O timeout, then OPTS
 * (NULL-terminated), then for a remote copy (RSYNC_PATH not NULL: the
 * command rsync runs on the other host) -e with our ssh command and
 * --rsync-path, then -- SRC DST and NULL.  Returns 0, or -E2BIG when OPTS
 * do not fit. */
#define RSYNC_ARGV_MAX 32
int rsync_argv(const char **argv, const char *const *opts, const char *rsync_path, const char *src,
               const char *dst);

/* Run ARGV with our stdin, stdout and stderr; *ret_status as above.
 * Returns 0 when it ran or -errno. */
int run_inherit(char *const *argv, int *ret_status);

#endif
