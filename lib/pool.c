/* Pool on-disk state.  vunify.conf is written last by init, so a pool
 * without it is an unfinished init that may be completed.  Registry files
 * are small and always replaced atomically (write_file_atomic_at). */
#define _GNU_SOURCE
#include "pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "pool_internal.h"
#include "overlay.h"
#include "remove_tree.h"
#include "util.h"
#include "banned.h"

bool guest_name_valid(const char *name)
{
	size_t n = strlen(name);
	static const char extra[] = "._-";

	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || !strchr(extra, c)))
			return false;
	}
	return true;
}

static void note_fixed(const char *what, const char *problem, bool fixed, void *ud)
{
	struct pool *p = ud;

	if (!fixed)
		return;
	if (p->dirs_fixed++ == 0)
		snprintf(p->dirs_fixed_first, sizeof(p->dirs_fixed_first), "%s: %s", what, problem);
}

char *pool_conf_value(char *text, const char *key)
{
	size_t kl = strlen(key);

	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(line, key, kl) && line[kl] == ' ') {
			char *v = strdup(line + kl + 1);
			if (nl)
				*nl = '\n';
			return v;
		}
		if (nl)
			*nl = '\n';
		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

void pool_close(struct pool *p)
{
	if (!p)
		return;
	if (p->fd >= 0)
		close(p->fd);
	if (p->objects_fd >= 0)
		close(p->objects_fd);
	if (p->guests_fd >= 0)
		close(p->guests_fd);
	if (p->tmp_fd >= 0)
		close(p->tmp_fd);
	if (p->lock_fd >= 0)
		close(p->lock_fd); /* releases the flock */
	policy_free(&p->policy);
	free(p->path);
	free(p);
}

int pool_open_subdir(int fd, const char *name)
{
	int r = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return r < 0 ? neg_errno() : r;
}

int pool_open(const char *path, enum pool_lock lock, bool wait, struct pool **ret, unsigned *ret_line)
{
	struct pool *p;
	_cleanup_free_ char *conf = NULL, *fmt = NULL, *lay = NULL, *id = NULL, *pol = NULL;
	uint64_t format;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->fd = p->objects_fd = p->guests_fd = p->tmp_fd = p->lock_fd = -1;
	p->path = realpath(path, NULL);
	if (!p->path) {
		r = neg_errno();
		goto fail;
	}
	p->fd = open(p->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->fd < 0) {
		r = neg_errno();
		goto fail;
	}
	r = read_file_at(p->fd, CONF_NAME, 65536, &conf, NULL);
	if (r < 0)
		goto fail;
	fmt = pool_conf_value(conf, "format");
	lay = pool_conf_value(conf, "layout");
	id = pool_conf_value(conf, "id");
	if (!fmt || !lay || !id || parse_u64(fmt, &format) < 0 || layout_from_name(lay, &p->layout) < 0 ||
	    strlen(id) >= sizeof(p->id)) {
		r = -EBADMSG;
		goto fail;
	}
	if (format < POOL_FORMAT_MIN || format > POOL_FORMAT) {
		r = -EPROTO;
		goto fail;
	}
	p->format = (unsigned)format;
	memcpy(p->id, id, strlen(id) + 1);
	p->lock_fd = openat(p->fd, "lock", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (p->lock_fd < 0) {
		r = neg_errno();
		goto fail;
	}
	if (flock(p->lock_fd, (lock == POOL_LOCK_EXCLUSIVE ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) < 0) {
		r = neg_errno();
		goto fail;
	}
	if ((p->objects_fd = pool_open_subdir(p->fd, "objects")) < 0 ||
	    (p->guests_fd = pool_open_subdir(p->fd, "guests")) < 0 ||
	    (p->tmp_fd = pool_open_subdir(p->fd, "tmp")) < 0) {
		r = p->objects_fd < 0 ? p->objects_fd : p->guests_fd < 0 ? p->guests_fd : p->tmp_fd;
		goto fail;
	}
	if (lock == POOL_LOCK_EXCLUSIVE) {
		/* every writer puts owner and modes right (see pool_check_dirs) */
		r = pool_check_dirs(p, true, note_fixed, p);
		if (r < 0)
			goto fail;
	}
	r = policy_default(&p->policy);
	if (r < 0)
		goto fail;
	r = read_file_at(p->fd, POLICY_NAME, 1 << 20, &pol, NULL);
	if (r == 0) {
		unsigned line = 0;
		/* The file starts from the defaults written at init; parse it
		 * on an empty policy so removing a line removes the rule. */
		policy_free(&p->policy);
		p->policy = (struct policy){.min_size = 1, .max_size = POLICY_MAX_SIZE_DEFAULT};
		r = policy_parse(&p->policy, pol, &line);
		if (r < 0) {
			if (ret_line)
				*ret_line = line;
			r = -EBADMSG;
			goto fail;
		}
	} else if (r != -ENOENT) {
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	if (p->fd >= 0 && r == -ENOENT && faccessat(p->fd, CONF_NAME, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		r = -ENOENT;
	pool_close(p);
	return r;
}

int pool_clean_tmp(struct pool *p)
{
	return remove_contents_at(p->fd, "tmp", NULL);
}

int pool_object_dir(struct pool *p, const char *name)
{
	char fan[3] = {name[0], name[1], '\0'};

	if (!hash_is_hex(name))
		return -EINVAL;
	return pool_open_subdir(p->objects_fd, fan);
}

/* Contract in pool.h. */
bool object_name_valid(const char *n)
{
	size_t l = strlen(n);

	if (!hash_is_hex(n))
		return false;
	if (l == HASH_HEX_LEN)
		return true;
	if ((l != HASH_HEX_LEN + 1 + HASH_HEX_LEN && l != HASH_HEX_LEN + 1 + LINK_KEY_HEX_V1) ||
	    n[HASH_HEX_LEN] != '.')
		return false;
	for (size_t i = HASH_HEX_LEN + 1; i < l; i++)
		if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
			return false;
	return true;
}

int pool_object_stat(struct pool *p, const char *name, struct stat *ret_st)
{
	char rel[OBJECT_NAME_MAX + 4];
	struct stat st;

	if (!object_name_valid(name))
		return -EINVAL;
	snprintf(rel, sizeof(rel), "%c%c/%s", name[0], name[1], name);
	if (fstatat(p->objects_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : neg_errno();
	if (!S_ISREG(st.st_mode))
		return -EUCLEAN;
	if (ret_st)
		*ret_st = st;
	return 1;
}
