/* export: a guest's merged view as a plain standalone tree. */
#ifndef VUNIFY_EXPORT_H
#define VUNIFY_EXPORT_H

#include "pool.h"

/* Copy what GUEST sees into DEST (which must not exist), through a
 * read-only overlay of its layers (upper on top, as a lower layer) mounted
 * in a private mount namespace of this process, so the mount cannot
 * outlive us.  The copy is made as DEST.vunify-tmp, synced, then renamed
 * to DEST; a leftover DEST.vunify-tmp from a killed run is replaced.  In
 * the link layout, paths that show one inode only because their content
 * and metadata are equal are written as separate files.  On failure
 * *ret_path may name the entry concerned.  Returns 0 or -errno. */
int guest_export(struct pool *p, const struct guest *g, const char *dest, char **ret_path);

#endif
