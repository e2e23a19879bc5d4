/* link layout: the guest's lower layer is a tree of hard links into
 * objects/.  Each link is made under a staging name in POOL/tmp and renamed
 * into place, so a path in the lower layer is always either absent, a
 * complete older link, or the new one. */
#define _GNU_SOURCE
#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy.h"
#include "dircache.h"
#include "lower.h"
#include "lowerlist.h"
#include "remove_tree.h"
#include "object.h"
#include "util.h"
#include "walk.h"
#include "banned.h"

/* Metadata key: what must be equal for two files to share one inode. */
static int link_meta_key(const struct file_meta *m, unsigned char ret[HASH_LEN])
{
	struct {
		uint32_t mode, uid, gid, pad;
		int64_t mtime_sec, mtime_nsec;
	} k = {.mode = m->st.st_mode & 07777,
	       .uid = m->st.st_uid,
	       .gid = m->st.st_gid,
	       .mtime_sec = m->st.st_mtim.tv_sec,
	       .mtime_nsec = m->st.st_mtim.tv_nsec};
	struct hash_ctx *c = hash_new();
	int r;

	if (!c)
		return -ENOMEM;
	r = hash_update(c, &k, sizeof(k));
	if (r == 0)
		r = xattr_list_hash(&m->xattrs, c);
	if (r == 0)
		r = hash_final(c, ret);
	hash_free(c);
	return r;
}

/* "CONTENT.KEY": KEY_HEX hex digits of the metadata key.  The whole key
 * (64) since format 2: cut to 64 bits, two different metadata could be
 * found to share a key, and so one inode (owner, mode, set-id bits). */
static int link_name(const struct file_meta *m, unsigned key_hex, char *ret_name)
{
	unsigned char key[HASH_LEN];
	char hex[HASH_HEX_LEN + 1];
	int r = link_meta_key(m, key);

	if (r < 0)
		return r;
	hash_to_hex(m->hash, ret_name);
	hash_to_hex(key, hex);
	ret_name[HASH_HEX_LEN] = '.';
	memcpy(ret_name + HASH_HEX_LEN + 1, hex, key_hex);
	ret_name[HASH_HEX_LEN + 1 + key_hex] = '\0';
	return 0;
}

static int link_object_name(const struct file_meta *m, char *ret_name)
{
	return link_name(m, HASH_HEX_LEN, ret_name);
}

static int link_object_name_v1(const struct file_meta *m, char *ret_name)
{
	return link_name(m, LINK_KEY_HEX_V1, ret_name);
}

static int link_object_finish(int fd, const struct file_meta *m)
{
	struct timespec ts[2] = {m->st.st_atim, m->st.st_mtim};
	int r;

	if (fchown(fd, m->st.st_uid, m->st.st_gid) < 0)
		return neg_errno();
	if (fchmod(fd, m->st.st_mode & 07777) < 0)
		return neg_errno();
	r = xattr_list_apply(fd, false, &m->xattrs);
	if (r < 0)
		return r;
	if (futimens(fd, ts) < 0)
		return neg_errno();
	return 0;
}

static int link_place(const struct layout_target *t, const struct file_meta *m, const char *name,
                      char *const *paths, size_t n_paths)
{
	char rel[OBJECT_NAME_MAX + 4];
	_cleanup_close_ int ofd = -1;
	int r = 0;

	(void)m;
	object_relpath(name, rel);
	ofd = openat(t->pool->objects_fd, rel, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (ofd < 0)
		return neg_errno();
	for (size_t i = 0; i < n_paths && r == 0; i++) {
		const char *ename;
		int dfd = dircache_parent(t->lower_dc, paths[i], &ename);
		r = dfd < 0 ? dfd : layout_link_in_place(ofd, dfd, ename);
	}
	if (r < 0)
		layout_unplace(t->lower_fd, paths, n_paths);
	return r;
}

/* The inode number alone cannot name the object: the name comes from
 * MAP, the inode map of objects/.  The entry must be a regular file with
 * at least two links (itself and the object). */
static int link_lower_ref(struct pool *p, const struct object_map *map, int dir_fd, const char *entry,
                          const struct stat *st, char *ret_name)
{
	const char *n;

	(void)p;
	(void)dir_fd;
	(void)entry;
	if (!S_ISREG(st->st_mode))
		return 0;
	if (st->st_nlink < 2)
		return -EBADMSG;
	n = map ? object_map_find(map, st->st_ino) : NULL;
	if (!n)
		return -EBADMSG;
	memcpy(ret_name, n, strlen(n) + 1);
	return 1;
}

/* The lower layer is POOL/roots/NAME. */
static int link_open_lower_parent(struct pool *p, const struct guest *g, int home_fd, const char **ret_name)
{
	int fd = openat(p->fd, "roots", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	(void)home_fd;
	*ret_name = g->name;
	return fd < 0 ? neg_errno() : fd;
}

static char *link_lower_path(struct pool *p, const struct guest *g)
{
	_cleanup_free_ char *roots = path_join(p->path, "roots");

	return roots ? path_join(roots, g->name) : NULL;
}

static int link_init_home(int home_fd)
{
	(void)home_fd;
	return 0; /* the lower layer is in the pool */
}

/* The lower entry is the object's inode. */
static int link_open_data(struct pool *p, int dir_fd, const char *entry, const struct stat *st)
{
	int fd = openat(dir_fd, entry, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	(void)p;
	(void)st;
	return fd < 0 ? neg_errno() : fd;
}

#define ADOPT_STAGING_PREFIX ".adopt."

/* adopt, step 2: replay the home's description into roots/.adopt.NAME
 * (hard links: nothing is copied); the names it lacks go to MISSING. */
static int link_adopt_open_lower(struct pool *p, int home_fd, const char *name, struct adopt_staging *staging,
                                 char ***missing, size_t *n_missing, int *ret_fd)
{
	size_t l = strlen(name) + sizeof(ADOPT_STAGING_PREFIX);
	_cleanup_close_ int lower_fd = -1;
	int r;

	if (faccessat(home_fd, HOME_META, F_OK, AT_SYMLINK_NOFOLLOW) == 0 && lowerlist_exists(home_fd) <= 0)
		return -EPROTOTYPE; /* stubs, no description: a redirect home */
	staging->dir_fd = openat(p->fd, "roots", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (staging->dir_fd < 0)
		return neg_errno();
	staging->name = malloc(l);
	if (!staging->name)
		return -ENOMEM;
	snprintf(staging->name, l, ADOPT_STAGING_PREFIX "%s", name);
	r = remove_tree_at(staging->dir_fd, staging->name);
	if (r < 0 && r != -ENOENT)
		goto out_unnamed;
	if (mkdirat(staging->dir_fd, staging->name, 0755) < 0) {
		r = neg_errno();
		goto out_unnamed;
	}
	lower_fd = openat(staging->dir_fd, staging->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (lower_fd < 0)
		r = neg_errno();
	else
		r = lowerlist_replay(p, home_fd, lower_fd, missing, n_missing);
	if (r < 0) {
		adopt_staging_free(staging);
		return r;
	}
	*ret_fd = steal_fd(&lower_fd);
	return 0;
out_unnamed:
	free(steal_pointer(&staging->name));
	return r;
}

/* adopt, step 4: the rebuilt roots, durable, under their name. */
static int link_adopt_commit_lower(struct pool *p, const char *name, struct adopt_staging *staging)
{
	int r;

	(void)p;
	r = syncfs(staging->dir_fd) < 0 ? neg_errno() : 0;
	if (r == 0) {
		int e = remove_tree_at(staging->dir_fd, name);
		if (e < 0 && e != -ENOENT)
			r = e;
	}
	if (r == 0 && renameat(staging->dir_fd, staging->name, staging->dir_fd, name) < 0)
		r = neg_errno();
	if (r == 0)
		r = fsync_dir(staging->dir_fd);
	if (r == 0)
		free(steal_pointer(&staging->name));
	return r;
}

/* The link layout's ops; format 1 and 2 differ in the object name only.
 * The link layout may show any unified files as one inode anyway (SPEC
 * invariant 1), so a whole hard-link group is unified; every unified file
 * shares its inode with the pool, so hard links in a merged view are not
 * the guest's (a copy of it breaks them). */
#define LINK_OPS(name_fn, format1_ops)                                                                       \
	{                                                                                                    \
		.kind = LAYOUT_LINK, .name = "link", .format1 = format1_ops, .format = POOL_FORMAT_LINK,     \
		.lower_in_home = false, .data_layer = false, .open_lower_parent = link_open_lower_parent,    \
		.lower_path = link_lower_path, .init_home = link_init_home, .describes_lower = true,         \
		.adopt_open_lower = link_adopt_open_lower, .adopt_commit_lower = link_adopt_commit_lower,    \
		.unifies_link_groups = true, .lower_links_are_guest_links = false, .refs_by_inode = true,    \
		.copy_flags = COPY_TREE_NO_HARDLINKS, .names_by_content = false, .object_metadata = true,    \
		.adopt_links_lower = true, .object_name = name_fn, .object_finish = link_object_finish,      \
		.place = link_place, .lower_ref = link_lower_ref, .bad_ref = LOWER_UNLINKED,                 \
		.bad_ref_what = "not linked to any object", .check_ref = NULL, .open_data = link_open_data,  \
	}

const struct layout_ops layout_link_v1_ops = LINK_OPS(link_object_name_v1, NULL);
const struct layout_ops layout_link_ops = LINK_OPS(link_object_name, &layout_link_v1_ops);

int link_relink(struct pool *p, int dir_fd, const char *entry)
{
	struct file_meta m = {0};
	char name[OBJECT_NAME_MAX], rel[OBJECT_NAME_MAX + 4];
	_cleanup_close_ int fd = -1;
	int r;

	fd = openat(dir_fd, entry, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &m.st) < 0)
		return neg_errno();
	if (!S_ISREG(m.st.st_mode))
		return -EINVAL;
	r = hash_fd(fd, (uint64_t)m.st.st_size, m.hash);
	if (r == 0)
		r = xattr_list_read(fd, false, XATTR_SKIP_OVERLAY, &m.xattrs);
	if (r == 0)
		r = layout_ops_for(p)->object_name(&m, name);
	if (r < 0)
		goto out;
	object_relpath(name, rel);
	/* The file already is the content and metadata the name says: it
	 * becomes the object.  If an object of that name exists, the entry is
	 * switched to it instead (same content and metadata: same view). */
	if (linkat(dir_fd, entry, p->objects_fd, rel, 0) == 0)
		goto out;
	if (errno != EEXIST) {
		r = neg_errno();
		goto out;
	}
	{
		char s[64];
		snprintf(s, sizeof(s), "r.%ld", (long)getpid());
		unlinkat(p->tmp_fd, s, 0);
		if (linkat(p->objects_fd, rel, p->tmp_fd, s, 0) < 0 ||
		    renameat(p->tmp_fd, s, dir_fd, entry) < 0) {
			r = neg_errno();
			unlinkat(p->tmp_fd, s, 0);
		}
	}
out:
	xattr_list_free(&m.xattrs);
	return r;
}
