/* A guest's life in the pool: added with its home and its tree
 * (guest_add.c), removed leaving its home a plain tree or with its layers
 * deleted (guest_remove.c). */
#ifndef VUNIFY_GUEST_H
#define VUNIFY_GUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"

enum guest_add_flags {
	GUEST_ADD_MOVE = 1 << 0, /* rename FROM into place instead of copying it */
};

/* The step guest_add stopped at when it fails; the errno says why. */
enum guest_add_step {
	GUEST_ADD_EXISTS, /* -EEXIST: NAME is registered (existing_home) */
	GUEST_ADD_HOME, /* creating or opening HOME */
	GUEST_ADD_FOREIGN, /* -ESTALE: HOME's id names another guest or pool */
	GUEST_ADD_TREE, /* opening FROM */
	GUEST_ADD_UPPER_FULL, /* -ENOTEMPTY: HOME/upper already holds a tree */
	GUEST_ADD_DEVICE, /* -EINVAL: a 0:0 character device at FROM/path */
	GUEST_ADD_MOVING, /* tree_prepare_move or the rename (at path, else FROM) */
	GUEST_ADD_CLEAN, /* removing an unfinished copy (HOME/upper.new) */
	GUEST_ADD_COPYING, /* the copy (at path, else FROM) */
	GUEST_ADD_SETUP, /* the home's directories and id */
	GUEST_ADD_REGISTER, /* the pool's registry */
};

struct guest_add_result {
	char *home; /* HOME's absolute path, once known */
	char *existing_home; /* GUEST_ADD_EXISTS: the registered guest's home */
	char *path; /* the tree's entry a copy or move failed at, or NULL */
	bool resumed; /* an interrupted add's complete upper was registered */
	enum guest_add_step step; /* set when guest_add fails */
};
void guest_add_result_free(struct guest_add_result *r);

/* Register guest NAME (valid: guest_name_valid) of pool P (held with
 * POOL_LOCK_EXCLUSIVE) with home HOME (created with its parents if
 * missing).  With FROM, its tree is copied (or, with GUEST_ADD_MOVE, moved)
 * into HOME/upper; without, HOME/upper is used as it is, or created empty.
 * The order and why a crash anywhere is safe: guest_add.c.  Fills *ret
 * (guest_add_result_free() it in every case).  Returns 0 or -errno, with
 * ret->step telling where. */
int guest_add(struct pool *p, const char *name, const char *home, const char *from, unsigned flags,
              struct guest_add_result *ret);

enum guest_remove_flags {
	GUEST_REMOVE_PURGE = 1 << 0, /* delete its layers instead of materializing them */
};

enum guest_remove_step {
	GUEST_REMOVE_MOUNTS, /* telling whether it is mounted (-EBUSY: it is) */
	GUEST_REMOVE_HOME, /* opening its home (-ENOENT: not attached) */
	GUEST_REMOVE_LAYERS, /* materialize, or purge's part in the pool */
	GUEST_REMOVE_PURGE_HOME, /* purge's part in the home */
	GUEST_REMOVE_UNREGISTER, /* the pool's registry */
};

struct guest_remove_result {
	uint64_t files; /* files copied back into the upper (not purge) */
	enum guest_remove_step step; /* set when guest_remove fails */
};

/* Remove guest G of pool P (held with POOL_LOCK_EXCLUSIVE), which must not
 * be mounted.  Without GUEST_REMOVE_PURGE its home is made a plain tree
 * that shows what the guest showed (guest_materialize), which needs the
 * home attached; with it, its layers are deleted (guest_purge), the home's
 * part only when attached.  Then it is unregistered, and last its home's
 * id removed.  A crash anywhere leaves it registered with its view intact
 * (materialize) or partly deleted (purge), and a re-run finishes.
 * Returns 0 or -errno, with ret->step telling where. */
int guest_remove(struct pool *p, const struct guest *g, unsigned flags, struct guest_remove_result *ret);

#endif
