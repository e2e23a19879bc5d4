/* The scratch-directory fixture the unit tests share: a fresh directory
 * under /tmp per test, removed afterwards without following symlinks. */
#ifndef VUNIFY_TEST_TMPDIR_H
#define VUNIFY_TEST_TMPDIR_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "remove_tree.h"
#include "util.h"

/* Remove the scratch directory PATH and everything below it (rm -rf
 * through the safe walk: fd-relative, never following a symlink).
 * Returns 0 or -1. */
static inline int tmpdir_remove(const char *path)
{
	return remove_tree_at(AT_FDCWD, path) < 0 ? -1 : 0;
}

/* Make a fresh scratch directory /tmp/vunify-TAG.XXXXXX, its path into
 * BUF (SIZE bytes), and open it.  Returns the directory's fd, or -1. */
static inline int tmpdir_make(char *buf, size_t size, const char *tag)
{
	if (snprintf(buf, size, "/tmp/vunify-%s.XXXXXX", tag) >= (int)size)
		return -1;
	if (!mkdtemp(buf))
		return -1;
	return open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Tests whose fixture holds more (a pool, a mount) define
 * TMPDIR_OWN_FIXTURE and use tmpdir_remove alone. */
#ifndef TMPDIR_OWN_FIXTURE
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
	f->dir = tmpdir_make(f->tmp, sizeof(f->tmp), tag);
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
	r = tmpdir_remove(f->tmp);
	free(f);
	return r;
}
#endif

#endif
