/* Child processes for ssh and rsync (see transport.h).  fork + execvp with
 * pipes; stdin is fed and stdout drained through poll(2) so that neither
 * side can block the other on a full pipe. */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **s = v; *s; s++)
		free(*s);
	free(v);
}

static bool bad_char(unsigned char c)
{
	return c < 0x20 || c == 0x7f || c == ' ';
}

int target_parse(const char *spec, struct target *ret)
{
	const char *colon = strchr(spec, ':'), *slash = strchr(spec, '/');
	struct target t = {0};

	/* a leading '-' would be an option to ssh or rsync */
	if (!*spec || spec[0] == '-' || strchr(spec, '\n'))
		return -EINVAL;
	t.spec = strdup(spec);
	if (!t.spec)
		return -ENOMEM;
	if (colon && (!slash || colon < slash)) {
		size_t hl = (size_t)(colon - spec);
		if (hl == 0 || spec[0] == '-' || !colon[1]) {
			free(t.spec);
			return -EINVAL;
		}
		for (size_t i = 0; i < hl; i++)
			if (bad_char((unsigned char)spec[i])) {
				free(t.spec);
				return -EINVAL;
			}
		t.host = strndup(spec, hl);
		t.dir = strdup(colon + 1);
	} else {
		t.dir = strdup(spec);
	}
	if (!t.dir || (t.host == NULL && colon && (!slash || colon < slash))) {
		target_free(&t);
		return -ENOMEM;
	}
	*ret = t;
	return 0;
}

void target_free(struct target *t)
{
	free(t->spec);
	free(t->host);
	free(t->dir);
	*t = (struct target){0};
}

char *shell_quote(const char *s)
{
	size_t n = 3;
	char *r, *w;

	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	r = malloc(n);
	if (!r)
		return NULL;
	w = r;
	*w++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(w, "'\\''", 4);
			w += 4;
		} else {
			*w++ = *p;
		}
	}
	*w++ = '\'';
	*w = '\0';
	return r;
}

const char *ssh_command_string(void)
{
	const char *s = getenv("VUNIFY_SSH");

	return s && *s ? s : "ssh";
}

/* Split like rsync splits -e: blanks separate words, '...' and "..."
 * group (no escapes inside '...', \" and \\ inside "..."). */
int ssh_command(char ***ret_argv, size_t *ret_n, size_t extra)
{
	const char *s = ssh_command_string();
	size_t len = strlen(s), n = 0;
	_cleanup_free_ char *buf = NULL;
	char **v;

	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	v = calloc(len / 2 + 2 + extra, sizeof(*v));
	if (!v)
		return -ENOMEM; /* cppcheck-suppress memleak ; buf is _cleanup_free_ */
	for (const char *p = s; *p;) {
		char *w = buf;
		bool word = false;
		while (*p == ' ' || *p == '\t')
			p++;
		while (*p && *p != ' ' && *p != '\t') {
			char q = *p;
			word = true;
			if (q == '\'' || q == '"') {
				for (p++; *p && *p != q; p++) {
					if (q == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
						p++;
					*w++ = *p;
				}
				if (!*p) {
					strv_free(v);
					return -EINVAL;
				}
				p++;
			} else {
				*w++ = *p++;
			}
		}
		if (!word)
			break;
		*w = '\0';
		v[n] = strdup(buf);
		if (!v[n]) {
			strv_free(v);
			return -ENOMEM;
		}
		n++;
	}
	if (n == 0) {
		strv_free(v);
		return -EINVAL;
	}
	*ret_argv = v;
	*ret_n = n;
	return 0;
}

int ssh_remote_argv(const struct target *t, char *const *argv, char ***ret_argv)
{
	char **v = NULL;
	size_t n, na = 0;
	int r;

	if (!t->host)
		return -EINVAL;
	while (argv[na])
		na++;
	r = ssh_command(&v, &n, 2 + na);
	if (r < 0)
		return r;
	/* "--": nothing after it is an ssh option; the host was checked not
	 * to start with '-' anyway */
	if (!(v[n++] = strdup("--")) || !(v[n++] = strdup(t->host))) {
		strv_free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < na; i++)
		if (!(v[n++] = shell_quote(argv[i]))) {
			strv_free(v);
			return -ENOMEM;
		}
	*ret_argv = v;
	return 0;
}

static void ignore_sigpipe(void)
{
	/* a child that exits early must not kill us with SIGPIPE: the write
	 * then fails with EPIPE, and its exit status says why */
	signal(SIGPIPE, SIG_IGN);
}

int run_process(char *const *argv, const void *in, size_t in_len, char **ret_out, size_t *ret_len,
                int *ret_status)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, st, r = 0;
	char *out = NULL;
	size_t out_len = 0, out_cap = 0, done = 0;
	pid_t pid;

	pthread_once(&once, ignore_sigpipe);
	if (pipe2(pin, O_CLOEXEC) < 0)
		return neg_errno();
	if (ret_out && pipe2(pout, O_CLOEXEC) < 0) {
		r = neg_errno();
		close(pin[0]);
		close(pin[1]);
		return r;
	}
	pid = fork();
	if (pid < 0) {
		r = neg_errno();
		goto out_close;
	}
	if (pid == 0) {
		int devnull;
		if (dup2(pin[0], 0) < 0)
			_exit(127);
		if (ret_out) {
			if (dup2(pout[1], 1) < 0)
				_exit(127);
		} else if ((devnull = open("/dev/null", O_WRONLY)) >= 0) {
			/* stdout is the command's to print on, not a child's */
			dup2(devnull, 1);
		}
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pin[0]);
	pin[0] = -1;
	if (ret_out) {
		close(pout[1]);
		pout[1] = -1;
	}
	if (!in || in_len == 0) {
		close(pin[1]);
		pin[1] = -1;
	}
	while (pin[1] >= 0 || pout[0] >= 0) {
		struct pollfd pf[2];
		nfds_t n = 0;
		if (pin[1] >= 0)
			pf[n++] = (struct pollfd){.fd = pin[1], .events = POLLOUT};
		if (pout[0] >= 0)
			pf[n++] = (struct pollfd){.fd = pout[0], .events = POLLIN};
		if (poll(pf, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = neg_errno();
			break;
		}
		for (nfds_t i = 0; i < n; i++) {
			if (!pf[i].revents)
				continue;
			if (pf[i].fd == pin[1]) {
				ssize_t w = write(pin[1], (const char *)in + done, in_len - done);
				if (w < 0 && errno != EINTR && errno != EAGAIN) {
					/* the child stopped reading: its status tells */
					close(pin[1]);
					pin[1] = -1;
				} else if (w > 0 && (done += (size_t)w) == in_len) {
					close(pin[1]);
					pin[1] = -1;
				}
			} else {
				ssize_t rd;
				if (out_cap - out_len < 65536) {
					size_t nc = out_cap ? out_cap * 2 : 1 << 20;
					char *no = realloc(out, nc);
					if (!no) {
						r = -ENOMEM;
						close(pout[0]);
						pout[0] = -1;
						continue;
					}
					out = no;
					out_cap = nc;
				}
				rd = read(pout[0], out + out_len, out_cap - out_len - 1);
				if (rd > 0) {
					out_len += (size_t)rd;
				} else if (rd == 0 || (errno != EINTR && errno != EAGAIN)) {
					close(pout[0]);
					pout[0] = -1;
				}
			}
		}
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			r = r ? r : neg_errno();
			st = 0;
			break;
		}
	if (r == 0) {
		*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		if (ret_out) {
			if (!out && !(out = malloc(1)))
				r = -ENOMEM;
			if (out) {
				out[out_len] = '\0';
				*ret_out = steal_pointer(&out);
				if (ret_len)
					*ret_len = out_len;
			}
		}
	}
out_close:
	free(out);
	for (int i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
	}
	return r;
}

int run_inherit(char *const *argv, int *ret_status)
{
	int st;
	pid_t pid = fork();

	if (pid < 0)
		return neg_errno();
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return neg_errno();
	*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return 0;
}

const char *rsync_timeout_option(void)
{
	static char opt[48];
	const char *s = getenv("VUNIFY_RSYNC_TIMEOUT");
	uint64_t v;

	if (!s || parse_u64(s, &v) < 0 || v == 0 || v > 86400)
		v = 120;
	snprintf(opt, sizeof(opt), "--timeout=%llu", (unsigned long long)v);
	return opt;
}

int rsync_argv(const char **argv, const char *const *opts, const char *rsync_path, const char *src,
               const char *dst)
{
	size_t k = 0, n = 0;

	while (opts[n])
		n++;
	if (n + 12 > RSYNC_ARGV_MAX)
		return -E2BIG;
	argv[k++] = "rsync";
	argv[k++] = "-s";
	argv[k++] = "--numeric-ids";
	argv[k++] = "-q";
	argv[k++] = rsync_timeout_option();
	for (size_t i = 0; i < n; i++)
		argv[k++] = opts[i];
	if (rsync_path) {
		argv[k++] = "-e";
		argv[k++] = ssh_command_string();
		argv[k++] = "--rsync-path";
		argv[k++] = rsync_path;
	}
	argv[k++] = "--";
	argv[k++] = src;
	argv[k++] = dst;
	argv[k] = NULL;
	return 0;
}
