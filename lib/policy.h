/* What gets unified: SPEC's "share what is shared".  A path falls in one of
 * three classes; the unify planner combines the class with whether the
 * content is shared. */
#ifndef VUNIFY_POLICY_H
#define VUNIFY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum policy_class {
	POLICY_OTHER = 0, /* unified only when its content is shared */
	POLICY_SYSTEM = 1, /* unified even when unique to one guest */
	POLICY_NEVER = 2, /* never unified */
};

struct policy {
	char **system; /* glob patterns, absolute in the guest ("/usr") */
	size_t n_system;
	char **never;
	size_t n_never;
	uint64_t min_size; /* smaller regular files are never unified */
	uint64_t max_size; /* larger regular files are never unified; 0: no limit */
};

/* Hashing costs a file's whole size, holes included (their zeros must be
 * hashed: SHA-256 has no shortcut), about 0.75 s per GiB here: a guest's
 * 16 TiB sparse file would hold the exclusive pool lock for hours.  Files
 * over max-size stay in the upper (status counts them). */
#define POLICY_MAX_SIZE_DEFAULT (1ull << 30)

/* Fill p with SPEC's defaults.  Returns 0 or -ENOMEM. */
int policy_default(struct policy *p);

/* Parse a policy file (see docs/FORMAT.md) on top of the defaults.  Lines:
 *   system PATTERN | never PATTERN | min-size N | max-size N[KMGT] | reset system |
 *   reset never
 * '#' starts a comment.  On a syntax error returns -EINVAL and sets
 * *ret_line to the 1-based line number.  Returns 0 or -errno. */
int policy_parse(struct policy *p, const char *text, unsigned *ret_line);

void policy_free(struct policy *p);

/* Class of PATH ("/usr/bin/ls", absolute in the guest) given the class of
 * its parent directory (inherited: a pattern naming a directory covers its
 * whole subtree).  POLICY_NEVER wins over POLICY_SYSTEM. */
enum policy_class policy_classify(const struct policy *p, const char *path, enum policy_class parent);

/* Render the default policy file (for init), malloc'd. */
char *policy_default_text(void);

#endif
