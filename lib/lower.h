/* Reading a guest's lower layer back: what it references and how much it
 * holds.  Used by unify (to record references and figures), status and
 * fsck. */
#ifndef VUNIFY_LOWER_H
#define VUNIFY_LOWER_H

#include <stdint.h>

#include "layout.h"
#include "pool.h"

/* An object map for the link layout: inode number -> object name. */
struct object_map;

/* Walk objects/ once.  Fills counts and, when ret_map is non-NULL, an
 * inode map (needed to read link-layout lower layers).  Calls
 * on_object (if non-NULL) for each object file with its fan-out dir fd.
 * Returns 0 or -errno. */
struct object_info {
	uint64_t objects;
	uint64_t bytes;
};
typedef int (*object_fn)(int fan_fd, const char *name, const struct stat *st, void *ud);
int objects_scan(struct pool *p, struct object_info *ret_info, struct object_map **ret_map,
                 object_fn on_object, void *ud);
void object_map_free(struct object_map *m);

/* Call fn with the name of every object (readdir only, no stat: cheap).
 * Returns 0, fn's first negative return, or -errno. */
int objects_names(struct pool *p, int (*fn)(const char *name, void *ud), void *ud);
/* Name of the object with this inode, or NULL. */
const char *object_map_find(const struct object_map *m, ino_t ino);

struct lower_stats {
	uint64_t files; /* regular files (paths) in the lower layer */
	uint64_t bytes; /* sizes summed over distinct inodes */
	char **refs; /* sorted, unique object names; NULL-terminated */
	size_t n_refs;
};

struct walk_entry;

/* enum lower_problem: layout.h */

/* Problem reporter for fsck; e->path is relative to the lower layer and
 * e->parent_fd valid during the call.  Returns 1 if it repaired the entry
 * (not counted as a problem), 0 if not, or -errno to stop the scan. */
typedef int (*lower_problem_fn)(const struct walk_entry *e, enum lower_problem kind, const char *problem,
                                void *ud);

/* Scan a lower layer.  MAP is required for the link layout.  CHECK also
 * verifies every referenced object exists with the stub's size, reporting
 * problems through on_problem (counted in *ret_problems).  Returns 0 or
 * -errno. */
int lower_scan(struct pool *p, int lower_fd, const struct object_map *map, bool check,
               lower_problem_fn on_problem, void *ud, struct lower_stats *ret, uint64_t *ret_problems);
void lower_stats_free(struct lower_stats *s);

/* Disk usage (st_blocks * 512, distinct inodes) of a tree.  Returns 0 or
 * -errno. */
int tree_disk_usage(int dir_fd, uint64_t *ret_bytes);
/* The same, and *ret_over (if non-NULL) the number of regular files
 * (inodes) larger than LIMIT bytes (0: none counted). */
int tree_disk_usage_over(int dir_fd, uint64_t limit, uint64_t *ret_bytes, uint64_t *ret_over);

#endif
