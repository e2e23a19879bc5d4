/* Objects: immutable files in POOL/objects named by their content hash.
 * Written like git writes objects: a temp file in POOL/tmp, data hashed
 * while it is copied (so what lands is exactly what was hashed, whatever
 * the source does meanwhile), made durable, then renamed to its name
 * without replacing an existing one. */
#ifndef VUNIFY_OBJECT_H
#define VUNIFY_OBJECT_H

#include <stdint.h>

#include "hash.h"
#include "pool.h"

#define OBJECT_TMP_MAX 64

/* Copy SIZE bytes of src_fd into a new temp file in POOL/tmp (holes stay
 * holes), hashing on the way.  If WANT is non-NULL and the content hashes
 * differently, or the source is not SIZE bytes long, the temp file is
 * removed and -E_CHANGED returned (the source changed since it was
 * hashed).  On success *ret_fd is the open temp file
 * (mode 0444, for layouts to add metadata), ret_tmp its name in POOL/tmp.
 * Returns 0 or -errno. */
int object_write_tmp(struct pool *p, int src_fd, uint64_t size, const unsigned char *want,
                     char ret_tmp[OBJECT_TMP_MAX], int *ret_fd);

/* The same with a caller's reusable hasher (no allocation per object). */
int object_write_tmp_with(struct pool *p, struct hasher *h, int src_fd, uint64_t size,
                          const unsigned char *want, char ret_tmp[OBJECT_TMP_MAX], int *ret_fd);

/* Move a durable temp file to objects/XX/NAME.  If an object of that name
 * already exists the temp file is dropped (content-addressed: it is the
 * same).  The caller makes the rename durable (syncfs).  Returns 0 or
 * -errno. */
int object_commit(struct pool *p, const char *tmp, const char *name);

/* Relative path "XX/NAME" of an object into buf.  Returns buf. */
char *object_relpath(const char *name, char buf[OBJECT_NAME_MAX + 4]);

#endif
