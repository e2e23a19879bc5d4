/* send's transfers (see send.h). */
#define _GNU_SOURCE
#include "send.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

int home_send(const char *home, const struct target *t, int *ret_status)
{
	_cleanup_free_ char *src = NULL, *dst = NULL, *rpath = NULL, *qdir = NULL;
	const char *argv[RSYNC_ARGV_MAX];
	size_t l;
	int r, status = 0;

	src = malloc(strlen(home) + 2);
	l = strlen(t->dir) + (t->host ? strlen(t->host) : 0) + 4;
	dst = malloc(l);
	if (!src || !dst)
		return -ENOMEM;
	snprintf(src, strlen(home) + 2, "%s/", home);
	if (t->host)
		snprintf(dst, l, "%s:%s/", t->host, t->dir);
	else
		snprintf(dst, l, "%s/", t->dir);
	if (t->host) {
		qdir = shell_quote(t->dir);
		l = qdir ? strlen(qdir) + 64 : 0;
		rpath = qdir ? malloc(l) : NULL;
		if (!rpath)
			return -ENOMEM; /* cppcheck-suppress memleak ; all _cleanup_free_ */
		snprintf(rpath, l, "vunify receive --sync %s rsync", qdir);
	}
	{
		/* HOME's parents too (--mkpath); leftovers of interrupted
		 * commands, never part of the guest, stay behind */
		static const char *const opts[] = {"-aHAXS", "--mkpath", "--exclude=/staging/",
		                                   "--exclude=/upper.new/", NULL};
		r = rsync_argv(argv, opts, rpath, src, dst);
		if (r < 0)
			return r;
	}
	r = run_process((char *const *)argv, NULL, 0, NULL, NULL, &status);
	if (r == 0 && status != 0)
		r = -EHOSTUNREACH;
	if (ret_status)
		*ret_status = status;
	if (r == 0 && !t->host) {
		/* a local destination: we make it durable */
		_cleanup_close_ int fd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || syncfs(fd) < 0)
			r = neg_errno();
	}
	return r;
}

int remote_vunify(const struct target *t, char *const *args, int *ret_status)
{
	size_t n = 0;
	char **argv, **ssh = NULL;
	int r;

	while (args[n])
		n++;
	argv = calloc(n + 2, sizeof(*argv));
	if (!argv)
		return -ENOMEM;
	argv[0] = "vunify";
	for (size_t i = 0; i < n; i++)
		argv[i + 1] = args[i];
	if (t->host) {
		r = ssh_remote_argv(t, argv, &ssh);
		if (r == 0)
			r = run_inherit(ssh, ret_status);
		strv_free(ssh);
	} else {
		/* this host: this very program */
		char self[64];
		snprintf(self, sizeof(self), "/proc/%ld/exe", (long)getpid());
		argv[0] = self;
		r = run_inherit(argv, ret_status);
	}
	free(argv);
	return r;
}
