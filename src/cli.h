/* The command layer: the only code that prints or exits.  Every command
 * returns its exit status: 0, 1 (failure, or fsck found problems) or 2
 * (usage). */
#ifndef VUNIFY_CLI_H
#define VUNIFY_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "pool.h"

#define EXIT_USAGE 2

struct cli {
	const char *pool_path;
	const char *prog;
};

/* "vunify: WHAT 'ARG': strerror(-r)[ (HINT)]" on stderr; returns 1. */
int cli_error(const char *what, const char *arg, int r, const char *hint);
/* "vunify: MESSAGE" on stderr; returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error: message plus "try 'vunify CMD --help'"; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Open the pool with a lock, printing the error.  Returns NULL on failure. */
struct pool *cli_open_pool(const struct cli *c, enum pool_lock lock);

/* The prologue of the commands on one guest: open the pool with LOCK,
 * load guest NAME and, when ret_home_fd is non-NULL, open its home.
 * Errors are printed as "vunify: CMD 'NAME': ..." (or "CMD: home").  The
 * caller pool_close()s *ret_pool and guest_free()s *ret_guest (NULL when
 * not opened) in every case.  Returns 0, or 1 (the exit status). */
int cli_open_guest(const struct cli *c, const char *cmd, enum pool_lock lock, const char *name,
                   struct pool **ret_pool, struct guest **ret_guest, int *ret_home_fd);

/* Write s as a JSON string (with quotes). */
void json_string(FILE *f, const char *s);

/* A hint for common errors of guest operations, or NULL. */
const char *cli_hint(int r);

int cmd_init(const struct cli *c, int argc, char **argv);
int cmd_add(const struct cli *c, int argc, char **argv);
int cmd_unify(const struct cli *c, int argc, char **argv);
int cmd_mount(const struct cli *c, int argc, char **argv);
int cmd_umount(const struct cli *c, int argc, char **argv);
int cmd_status(const struct cli *c, int argc, char **argv);
int cmd_fsck(const struct cli *c, int argc, char **argv);
int cmd_gc(const struct cli *c, int argc, char **argv);
int cmd_export(const struct cli *c, int argc, char **argv);
int cmd_remove(const struct cli *c, int argc, char **argv);
int cmd_replica(const struct cli *c, int argc, char **argv);
int cmd_replicate(const struct cli *c, int argc, char **argv);
int cmd_adopt(const struct cli *c, int argc, char **argv);
int cmd_send(const struct cli *c, int argc, char **argv);
int cmd_objects(const struct cli *c, int argc, char **argv);
int cmd_receive(const struct cli *c, int argc, char **argv);

/* main() of the binary called as mount.vunify (mount(8)'s helper); returns
 * mount(8)'s exit codes: 0, 1 (usage), 32 (mount failed). */
int mount_helper_main(int argc, char **argv);

#endif
