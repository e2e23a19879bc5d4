/* The registry of guests: guests/NAME/{home,stats,refs,unified}.  Registry
 * files are small and always replaced atomically (write_file_atomic_at). */
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
#include "meta_image.h"
#include "pool_internal.h"
#include "overlay.h"
#include "remove_tree.h"
#include "util.h"
#include "banned.h"

void guest_free(struct guest *g)
{
	if (!g)
		return;
	free(g->name);
	free(g->home);
	free(g);
}

void names_free(char **names)
{
	if (!names)
		return;
	for (char **n = names; *n; n++)
		free(*n);
	free(names);
}

int pool_guest_register(struct pool *p, const char *name, const char *home)
{
	_cleanup_close_ int gfd = -1;
	_cleanup_free_ char *line = NULL;
	size_t len;
	int r;

	if (!guest_name_valid(name))
		return -EINVAL;
	if (mkdirat(p->guests_fd, name, 0700) < 0) {
		if (errno != EEXIST)
			return neg_errno();
		/* A directory without a home file is an unfinished add. */
		if (faccessat(p->guests_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			_cleanup_close_ int t = pool_open_subdir(p->guests_fd, name);
			if (t >= 0 && faccessat(t, "home", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
				return -EEXIST;
		}
	}
	gfd = pool_open_subdir(p->guests_fd, name);
	if (gfd < 0)
		return gfd;
	len = strlen(home) + 2;
	line = malloc(len);
	if (!line)
		return -ENOMEM;
	snprintf(line, len, "%s\n", home);
	r = write_file_atomic_at(gfd, "home", line, strlen(line), 0600);
	if (r < 0)
		return r;
	return fsync_dir(p->guests_fd);
}

static void parse_stats(char *text, struct guest_stats *s)
{
	struct {
		const char *key;
		uint64_t *v;
	} keys[] = {
	        {"files_unified", &s->files_unified}, {"bytes_unified", &s->bytes_unified},
	        {"upper_bytes", &s->upper_bytes},     {"objects_referenced", &s->objects_referenced},
	        {"unified_at", &s->unified_at},
	};

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		_cleanup_free_ char *v = pool_conf_value(text, keys[i].key);
		if (v)
			(void)parse_u64(v, keys[i].v);
	}
}

int pool_guest_load(struct pool *p, const char *name, struct guest **ret)
{
	_cleanup_close_ int gfd = -1;
	_cleanup_free_ char *home = NULL, *stats = NULL;
	struct guest *g;
	size_t len;
	int r;

	if (!guest_name_valid(name))
		return -EINVAL;
	gfd = pool_open_subdir(p->guests_fd, name);
	if (gfd < 0)
		return gfd == -ENOTDIR ? -ENOENT : gfd;
	r = read_file_at(gfd, "home", PATH_MAX * 4, &home, &len);
	if (r < 0)
		return r;
	if (len == 0 || home[len - 1] != '\n' || home[0] != '/')
		return -EBADMSG;
	home[len - 1] = '\0';
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->name = strdup(name);
	g->home = steal_pointer(&home);
	if (!g->name) {
		guest_free(g);
		return -ENOMEM;
	}
	if (read_file_at(gfd, "stats", 65536, &stats, NULL) == 0)
		parse_stats(stats, &g->stats);
	*ret = g;
	return 0;
}

int pool_guest_names(struct pool *p, char ***ret_names)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	int r = opendir_at(p->guests_fd, ".", &d);

	if (r < 0)
		return r;
	names = calloc(1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	while ((de = readdir(d))) {
		char **nn;
		_cleanup_close_ int gfd = -1;
		if (!guest_name_valid(de->d_name))
			continue;
		gfd = pool_open_subdir(p->guests_fd, de->d_name);
		if (gfd < 0 || faccessat(gfd, "home", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* unfinished add */
		nn = realloc(names, (n + 2) * sizeof(*names));
		if (!nn) {
			names_free(names);
			return -ENOMEM;
		}
		names = nn;
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			names_free(names);
			return -ENOMEM;
		}
		names[++n] = NULL;
	}
	qsort(names, n, sizeof(*names), cmp_strp);
	*ret_names = names;
	return (int)n;
}

int pool_guest_save_stats(struct pool *p, const struct guest *g)
{
	_cleanup_close_ int gfd = pool_open_subdir(p->guests_fd, g->name);
	char buf[512];
	int n;

	if (gfd < 0)
		return gfd;
	n = snprintf(buf, sizeof(buf),
	             "files_unified %" PRIu64 "\nbytes_unified %" PRIu64 "\nupper_bytes %" PRIu64
	             "\nobjects_referenced %" PRIu64 "\n",
	             g->stats.files_unified, g->stats.bytes_unified, g->stats.upper_bytes,
	             g->stats.objects_referenced);
	if (g->stats.unified_at)
		snprintf(buf + n, sizeof(buf) - (size_t)n, "unified_at %" PRIu64 "\n", g->stats.unified_at);
	return write_file_atomic_at(gfd, "stats", buf, strlen(buf), 0600);
}

int pool_guest_mark_unified(struct pool *p, const char *name, uint64_t when)
{
	struct guest *g = NULL;
	int r = pool_guest_load(p, name, &g);

	if (r < 0)
		return r;
	g->stats.unified_at = when;
	r = pool_guest_save_stats(p, g);
	guest_free(g);
	return r;
}

static int write_refs(int gfd, char *const *refs, size_t n)
{
	size_t len = 0;
	_cleanup_free_ char *buf = NULL;
	char *w;

	for (size_t i = 0; i < n; i++)
		len += strlen(refs[i]) + 1;
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	w = buf;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(refs[i]);
		memcpy(w, refs[i], l);
		w[l] = '\n';
		w += l + 1;
	}
	return write_file_atomic_at(gfd, "refs", buf, len, 0600);
}

int pool_guest_save_refs(struct pool *p, const char *name, char *const *refs, size_t n)
{
	_cleanup_close_ int gfd = pool_open_subdir(p->guests_fd, name);

	if (gfd < 0)
		return gfd;
	return write_refs(gfd, refs, n);
}

int pool_guest_read_refs(struct pool *p, const char *name, struct guest_refs *ret)
{
	_cleanup_close_ int gfd = pool_open_subdir(p->guests_fd, name);

	memset(ret, 0, sizeof(*ret));
	if (gfd < 0)
		return gfd;
	return name_list_read_at(gfd, "refs", ret);
}

int name_list_read_at(int dir_fd, const char *file, struct guest_refs *ret)
{
	struct guest_refs gr = {0};
	size_t len = 0, cap = 1;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = read_file_at(dir_fd, file, SIZE_MAX / 2, &gr.buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (size_t i = 0; i < len; i++)
		cap += gr.buf[i] == '\n';
	gr.v = malloc(cap * sizeof(*gr.v));
	if (!gr.v) {
		free(gr.buf);
		return -ENOMEM;
	}
	/* one name a line; an empty line names nothing */
	for (char *s = gr.buf; *s;) {
		char *nl = strchr(s, '\n');
		if (nl)
			*nl = '\0';
		if (*s)
			gr.v[gr.n++] = s;
		if (!nl)
			break;
		s = nl + 1;
	}
	*ret = gr;
	return 1;
}

void guest_refs_free(struct guest_refs *r)
{
	free(r->buf);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

int pool_guest_add_refs(struct pool *p, const char *name, char *const *refs, size_t n)
{
	_cleanup_close_ int gfd = pool_open_subdir(p->guests_fd, name);
	struct guest_refs old;
	_cleanup_free_ char **all = NULL;
	size_t m = 0;
	int r;

	if (gfd < 0)
		return gfd;
	r = pool_guest_read_refs(p, name, &old);
	if (r < 0)
		return r;
	all = malloc((old.n + n + 1) * sizeof(*all));
	if (!all) {
		guest_refs_free(&old);
		return -ENOMEM;
	}
	for (size_t i = 0; i < old.n; i++)
		all[m++] = old.v[i];
	for (size_t i = 0; i < n; i++)
		all[m++] = refs[i];
	qsort(all, m, sizeof(*all), cmp_strp);
	{
		size_t k = 0;
		for (size_t i = 0; i < m; i++)
			if (k == 0 || strcmp(all[k - 1], all[i]))
				all[k++] = all[i];
		m = k;
	}
	r = write_refs(gfd, all, m);
	guest_refs_free(&old);
	return r;
}

int pool_guest_unregister(struct pool *p, const char *name)
{
	static const char *const files[] = {"stats", "refs", "home"};
	_cleanup_close_ int gfd = pool_open_subdir(p->guests_fd, name);

	int r;

	if (!guest_name_valid(name))
		return -EINVAL;
	if (gfd < 0)
		return gfd;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if (unlinkat(gfd, files[i], 0) < 0 && errno != ENOENT)
			return neg_errno();
	/* also what a crash left behind (write_file_atomic_at temp files) */
	r = remove_tree_at(p->guests_fd, name);
	if (r < 0)
		return r;
	return fsync_dir(p->guests_fd);
}

int guest_open_home(struct pool *p, const struct guest *g)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *id = NULL;
	char want[256];
	int r;

	fd = open(g->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	r = read_file_at(fd, HOME_ID, 4096, &id, NULL);
	if (r < 0)
		return r == -ENOENT ? -ESTALE : r;
	/* "pool ID\nguest NAME\n", then (homes adopted from another pool)
	 * "format N" and "layout L" lines, which adopt checks */
	snprintf(want, sizeof(want), "pool %s\nguest %s\n", p->id, g->name);
	if (strncmp(id, want, strlen(want)))
		return -ESTALE;
	return steal_fd(&fd);
}

int guest_open_lower(struct pool *p, const struct guest *g, int home_fd, bool create)
{
	const char *name;
	_cleanup_close_ int base = -1;

	/* a reader takes the metadata image where there is one: in every
	 * format an image present equals (or is) the record (meta_image.h);
	 * a kernel that mounts no erofs falls back to the stubs, which a
	 * pool that keeps them still has */
	if (home_fd >= 0 && layout_ops_for(p)->lower_image) {
		int fd = meta_image_open(home_fd, 0);
		if (fd >= 0 || fd == -ENOMEM || fd == -EMFILE)
			return fd;
		/* an image the kernel does not mount, with no stubs beside it
		 * (format 4): an empty HOME/meta would show nothing */
		if (fd != -ENOENT && faccessat(home_fd, HOME_META, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			return fd;
	}
	base = layout_ops_for(p)->open_lower_parent(p, g, home_fd, &name);
	if (base < 0)
		return base;
	if (create && mkdirat(base, name, 0755) < 0 && errno != EEXIST)
		return neg_errno();
	return pool_open_subdir(base, name);
}
