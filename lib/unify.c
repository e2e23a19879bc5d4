/* The unify pipeline (see unify.h for the phases and the safety rule):
 * open the guests, then scan, hash, decide and store, each phase in its
 * own file (unify_internal.h lists them). */
#define _GNU_SOURCE
#include "unify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "meta_image.h"
#include "object.h"
#include "online.h"
#include "overlay.h"
#include "parallel.h"
#include "remove_tree.h"
#include "unify_internal.h"
#include "banned.h"

static void guest_scan_free(struct guest_scan *gs)
{
	objnames_free(gs);
	for (size_t i = 0; i < gs->n; i++)
		scanned_file_free(&gs->files[i]);
	free(gs->files);
	path_arena_free(&gs->arena);
	ino_map_free(&gs->links);
	free(gs->cls);
	ino_map_free(&gs->seen_inos);
	hashcache_free(&gs->cache);
	fold_list_free(&gs->folds);
	if (gs->home_fd >= 0)
		close(gs->home_fd);
	if (gs->upper_fd >= 0)
		close(gs->upper_fd);
	if (gs->lower_fd >= 0)
		close(gs->lower_fd);
	if (gs->staging_fd >= 0)
		close(gs->staging_fd);
	guest_free(gs->g);
}

int lower_will_change(struct guest_scan *gs)
{
	/* the first change: a private working copy of the record, which the
	 * image written at the end of the store makes the record */
	if (gs->lower_image && !gs->lower_is_copy) {
		int fd = -1, r = meta_work_open(gs->home_fd, &fd);
		if (r < 0)
			return r;
		if (gs->lower_fd >= 0)
			close(gs->lower_fd);
		gs->lower_fd = fd;
		gs->lower_is_copy = true;
	}
	gs->lower_changed = true;
	return 0;
}

/* Which guests' uppers share the pool's filesystem. */
static int set_same_fs(struct pool *p, struct guest_scan *scans, size_t ng)
{
	struct stat so, su;

	if (fstat(p->objects_fd, &so) < 0)
		return neg_errno();
	for (size_t g = 0; g < ng; g++) {
		if (fstat(scans[g].upper_fd, &su) < 0)
			return neg_errno();
		scans[g].same_fs = su.st_dev == so.st_dev;
	}
	return 0;
}

/* 1 if the directory holds nothing, 0 if it does, or -errno. */
static int dir_is_empty(int dir_fd)
{
	char buf[4096];
	ssize_t len;

	if (lseek(dir_fd, 0, SEEK_SET) < 0)
		return neg_errno();
	while ((len = getdents64(dir_fd, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0; off < len;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			off += de->d_reclen;
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				return 0;
		}
	return len < 0 ? neg_errno() : 1;
}

static int open_guest(struct pool *p, const char *name, struct guest_scan *gs, bool create, bool online,
                      char **ret_what)
{
	_cleanup_free_ char *upper = NULL;
	int r;

	gs->home_fd = gs->upper_fd = gs->lower_fd = gs->staging_fd = -1;
	r = pool_guest_load(p, name, &gs->g);
	if (r < 0)
		goto fail;
	upper = path_join(gs->g->home, HOME_UPPER);
	if (!upper)
		return -ENOMEM;
	{
		_cleanup_free_ char *where = NULL;
		r = overlay_find_mounts(upper, &where);
		if (r > 0 && online) {
			/* read its upper, prepare its next lower beside */
			gs->online = true;
			r = 0;
		} else if (r > 0) {
			/* say where: it may be a copy in a container's namespace */
			if (!where || asprintf(ret_what, "%s (mounted: %s)", name, where) < 0)
				*ret_what = strdup(name);
			return -EBUSY;
		}
	}
	if (r < 0)
		goto fail;
	gs->home_fd = guest_open_home(p, gs->g);
	if (gs->home_fd < 0) {
		r = gs->home_fd;
		goto fail;
	}
	r = hashcache_load(gs->home_fd, &gs->cache);
	if (r < 0)
		goto fail;
	gs->upper_fd = openat(gs->home_fd, HOME_UPPER, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (gs->upper_fd < 0) {
		r = neg_errno();
		goto fail;
	}
	/* an online run never changes the guest's record (nor the upper);
	 * an offline one works on a private copy of the record and makes it
	 * the record by writing the image (store.c, finish_lower) */
	gs->lower_image = layout_ops_for(p)->lower_image && !gs->online;
	if (create && gs->online) {
		/* the store places into a copy of the lower layer, which the
		 * mounted guest does not use; objects are copied, never
		 * renamed or linked out of the live upper */
		gs->lower_fd = online_prepare_begin(p, gs->g, gs->home_fd);
		if (gs->lower_fd < 0) {
			r = gs->lower_fd;
			goto fail;
		}
	} else if (create) {
		/* a switch prepared while it ran goes in first (it is not
		 * mounted: the exclusive pool lock keeps mount out) */
		struct online_switch_result sw;
		r = online_switch(p, gs->g, gs->home_fd, &sw);
		if (r == 0 && sw.switched) {
			gs->res->switched = true;
			gs->res->switch_purged = sw.files_purged;
		}
		if (r == 0)
			r = online_cleanup(p, gs->g, gs->home_fd, false);
		if (r < 0)
			goto fail;
		if (gs->lower_image) {
			/* the record, read-only: the image, else the stubs of an
			 * older pool; a private working copy of it is made at the
			 * first change (lower_will_change), and an empty one for
			 * a guest that has neither */
			gs->lower_fd = meta_image_open(gs->home_fd, 0);
			if (gs->lower_fd == -ENOENT) {
				gs->lower_fd = openat(gs->home_fd, HOME_META,
				                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (gs->lower_fd < 0)
					gs->lower_fd = errno == ENOENT ? -ENOENT : neg_errno();
			}
			if (gs->lower_fd == -ENOENT)
				r = lower_will_change(gs);
			else if (gs->lower_fd < 0)
				r = gs->lower_fd;
			if (r < 0)
				goto fail;
		} else {
			gs->lower_fd = guest_open_lower(p, gs->g, gs->home_fd, true);
			if (gs->lower_fd < 0) {
				r = gs->lower_fd;
				goto fail;
			}
		}
		r = dir_is_empty(gs->lower_fd);
		if (r < 0)
			goto fail;
		gs->lower_was_empty = r;
	}
	if (create) {
		if (mkdirat(gs->home_fd, HOME_STAGING, 0700) < 0 && errno != EEXIST) {
			r = neg_errno();
			goto fail;
		}
		gs->staging_fd =
		        openat(gs->home_fd, HOME_STAGING, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (gs->staging_fd < 0) {
			r = neg_errno();
			goto fail;
		}
	}
	return 0;
fail:
	*ret_what = strdup(name);
	return r;
}

/* An online guest's preparation committed: the manifest of every file its
 * prepared lower now holds, each with the stat its hash was taken from. */
static int commit_online(struct guest_scan *gs)
{
	_cleanup_free_ struct online_entry *v = malloc((gs->n + 1) * sizeof(*v));
	size_t n = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < gs->n; i++) {
		const struct scanned_file *f = &gs->files[i];
		if (f->state != SF_DONE || f->n_paths != 1)
			continue; /* hard-link groups stay in the upper */
		v[n].path = sf_paths(f)[0];
		sf_stat_get(gs, f, &v[n++].st);
	}
	return online_prepare_commit(gs->home_fd, gs->lower_fd, v, n);
}

void unify_result_free(struct unify_result *r)
{
	free(r->guests);
	r->guests = NULL;
	r->n_guests = 0;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* VUNIFY_TIMING=1: phase durations on stderr, for tuning, the CPU time of
 * each phase, all threads ("cpu PHASE SECONDS": against the duration, how
 * busy the CPUs were), and the peak RSS at the end of each phase
 * ("peak-rss PHASE KiB"). */
static void phase_time(const char *what)
{
	static struct timespec t0;
	static double cpu0;
	struct timespec t1;
	struct rusage ru;
	double cpu = 0;
	bool have_ru;

	if (!getenv("VUNIFY_TIMING"))
		return;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	have_ru = getrusage(RUSAGE_SELF, &ru) == 0;
	if (have_ru)
		cpu = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
	if (t0.tv_sec) {
		fprintf(stderr, "%s %.3f\n", what,
		        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		if (have_ru) {
			fprintf(stderr, "cpu %s %.3f\n", what, cpu - cpu0);
			fprintf(stderr, "peak-rss %s %ld\n", what, ru.ru_maxrss);
		}
	}
	t0 = t1;
	cpu0 = cpu;
}

int unify_run(struct pool *p, char *const *names, size_t n, const struct unify_options *o,
              struct unify_result *ret, char **ret_what)
{
	struct hash_set pool_set = {0};
	struct hash_intern hashes;
	char **all = NULL;
	struct guest_scan *scans = NULL;
	struct unify_result res = {0};
	size_t ng = 0;
	int r = 0;

	/* stubs are created with their final mode in one step */
	umask(0);
	if (n == 0) {
		r = pool_guest_names(p, &all);
		if (r < 0)
			return r;
		names = all;
		n = (size_t)r;
		r = 0;
	}
	r = hash_intern_init(&hashes);
	if (r < 0) {
		names_free(all);
		return r;
	}
	scans = calloc(n ? n : 1, sizeof(*scans));
	res.guests = calloc(n ? n : 1, sizeof(*res.guests));
	if (!scans || !res.guests) {
		r = -ENOMEM;
		goto out;
	}
	res.n_guests = n;
	for (size_t i = 0; i < n; i++) {
		if (!guest_name_valid(names[i])) {
			*ret_what = strdup(names[i]);
			r = -EINVAL;
			goto out;
		}
		snprintf(res.guests[i].name, sizeof(res.guests[i].name), "%s", names[i]);
		scans[i].res = &res.guests[i];
		scans[i].hashes = &hashes;
		r = open_guest(p, names[i], &scans[i], !o->dry_run, o->online, ret_what);
		res.guests[i].prepared = scans[i].online;
		ng = i + 1;
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < ng && !o->dry_run && o->describe_lower && layout_ops_for(p)->describes_lower;
	     i++) {
		if (scans[i].online)
			continue; /* its description follows the switch */
		/* a description of what is there already, before anything is
		 * appended to it */
		scans[i].describe = true;
		r = lowerlist_exists(scans[i].home_fd);
		if (r == 0)
			r = lowerlist_write(p, scans[i].home_fd, scans[i].lower_fd);
		if (r < 0) {
			*ret_what = strdup(names[i]);
			goto out;
		}
		r = 0;
	}
	if (!o->dry_run) {
		/* an older redirect pool takes the format that has metadata
		 * images before this run writes one */
		r = pool_upgrade(p);
		if (r == 0)
			r = pool_clean_tmp(p);
		for (size_t i = 0; i < ng && r == 0; i++)
			/* leftovers of an interrupted run: unreferenced, unseen */
			r = remove_contents_at(scans[i].home_fd, HOME_STAGING, NULL);
		if (r < 0)
			goto out;
	}
	phase_time("open");
	{
		size_t failed = 0;
		r = scan_all(p, scans, ng, !o->dry_run, parallel_jobs(o->jobs), &failed);
		phase_time("scan");
		if (r < 0) {
			*ret_what = strdup(names[failed]);
			goto out;
		}
	}
	/* What the pool held before the run: where an object's name is its
	 * content's hash, one stat for each content the run hashed (below);
	 * else every name in objects/ (one readdir, 32 bytes a name). */
	r = layout_ops_for(p)->names_by_content ? 0 : hash_set_load(p, &pool_set);
	if (r == 0)
		r = set_same_fs(p, scans, ng);
	for (size_t i = 0; i < ng; i++)
		if (scans[i].online)
			scans[i].same_fs = false; /* never adopt a live upper file */
	if (r == 0 && !o->dry_run)
		r = settle_half_adopted(p, scans, ng);
	if (r < 0)
		goto out;
	r = hash_all(scans, ng, o, &res.bytes_hashed, ret_what);
	if (r == 0 && layout_ops_for(p)->names_by_content)
		r = hash_set_load_held(p, &hashes, &pool_set);
	phase_time("hash");
	if (r < 0)
		goto out;
	r = share_choose(scans, ng, &pool_set);
	phase_time("decide");
	if (r < 0)
		goto out;
	if (o->dry_run) {
		r = share_estimate(scans, ng, &pool_set);
		if (r < 0)
			goto out;
	} else {
		struct store_progress sp = {.o = o, .pr = {.phase = "store"}, .reporter = pthread_self()};
		for (size_t i = 0; i < ng; i++)
			for (size_t k = 0; k < scans[i].n; k++)
				if (scans[i].files[k].state == SF_CHOSEN) {
					sp.pr.files_total++;
					sp.pr.bytes_total += (uint64_t)scans[i].files[k].m.st.st_size;
				}
		clock_gettime(CLOCK_MONOTONIC, &sp.start);
		sp.last = sp.start;
		r = store_all(p, scans, ng, o, &sp, &pool_set, ret_what);
		phase_time("store");
		if (r < 0)
			goto out;
		store_report(&sp, true);
		for (size_t i = 0; i < ng && r == 0; i++)
			if (scans[i].online) {
				r = commit_online(&scans[i]);
				if (r < 0)
					*ret_what = strdup(names[i]);
			}
		if (r < 0)
			goto out;
		for (size_t i = 0; i < ng; i++) {
			res.new_objects += scans[i].res->new_objects;
			res.new_object_bytes += scans[i].res->new_object_bytes;
		}
	}
out:
	hash_set_free(&pool_set);
	hash_intern_free(&hashes);
	for (size_t i = 0; i < ng; i++)
		guest_scan_free(&scans[i]);
	free(scans);
	names_free(all);
	if (r < 0) {
		unify_result_free(&res);
		return r;
	}
	*ret = res;
	return 0;
}
