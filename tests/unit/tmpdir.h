/* The scratch-directory fixture most unit tests share: a fresh directory
 * under /tmp per test, removed afterwards without following symlinks. */
#ifndef VUNIFY_TEST_TMPDIR_H
#define VUNIFY_TEST_TMPDIR_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "remove.h"
#include "util.h"

struct fixture {
	char tmp[64];
	int dir;
};

/* setup for cmocka: *state becomes a struct fixture for /tmp/vunify-TAG.* */
static inline int fixture_setup(void **state, const char *tag)
{
	_cleanup_free_ struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/vunify-%s.XXXXXX", tag);
	if (!mkdtemp(f->tmp))
		return -1;
	f->dir = open(f->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->dir < 0)
		return -1;
	*state = steal_pointer(&f);
	return 0;
}

static inline int teardown(void **state)
{
	struct fixture *f = *state;
	int r;

	close(f->dir);
	r = remove_tree_at(AT_FDCWD, f->tmp);
	free(f);
	return r < 0 ? -1 : 0;
}

#endif
