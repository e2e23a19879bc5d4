/* vunify fsck: re-hash every object, check each guest's lower layer and
 * the pool's record of what it references, clean leftovers of killed
 * commands, and with --repair fix what can be fixed without guessing. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "copy.h"
#include "hash.h"
#include "layout.h"
#include "lower.h"
#include "overlay.h"
#include "remove.h"
#include "unify.h"
#include "util.h"
#include "walk.h"
#include "banned.h"

static void help(void)
{
	printf("usage: vunify [-p POOL] fsck [--repair] [GUEST...]\n\n"
	       "Re-hash every object (its name must be the SHA-256 of its content), check\n"
	       "that every guest's lower layer points at existing, intact objects and that\n"
	       "the pool's record of each guest's references is complete, and remove\n"
	       "leftovers of interrupted commands.  Exits 1 and names each problem.  A\n"
	       "guest whose home is not attached is reported, not counted as a problem.\n\n"
	       "  --progress / -q, --quiet   progress line on stderr (default: on a terminal)\n"
	       "  --repair   rewrite incomplete reference records; in the link layout, make\n"
	       "             files that lost their object objects again\n");
}

struct fsck {
	uint64_t problems, checked, repaired, leftovers;
	bool progress;
	uint64_t bytes_done, bytes_total, objects_total;
	struct timespec start, last;
	const char *guest;
	struct pool *p;
	bool repair;
	bool readonly; /* the guest is mounted (or may be): change nothing of it */
	int upper_fd; /* of the guest being checked, or -1 */
	dev_t objects_dev;
	const struct object_map *map;
	int staging_fd; /* HOME/staging of the guest being checked */
};

static double since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* "fsck: 1234/5678 objects, 1.0/1.3 GiB, 800 MiB/s, ETA 0:01" on stderr */
static void report(struct fsck *f, bool final)
{
	char b1[32], b2[32], b3[32];
	double el, rate;

	if (!f->progress || (!final && since(&f->last) < 0.25))
		return;
	clock_gettime(CLOCK_MONOTONIC, &f->last);
	el = since(&f->start);
	rate = el > 0 ? (double)f->bytes_done / el : 0;
	fprintf(stderr, "\r\033[Kfsck: %llu/%llu objects, %s/%s, %s/s", (unsigned long long)f->checked,
	        (unsigned long long)f->objects_total, format_bytes(f->bytes_done, b1, sizeof(b1)),
	        format_bytes(f->bytes_total, b2, sizeof(b2)), format_bytes((uint64_t)rate, b3, sizeof(b3)));
	if (!final && rate > 0) {
		unsigned long eta = (unsigned long)((double)(f->bytes_total - f->bytes_done) / rate);
		fprintf(stderr, ", ETA %lu:%02lu", eta / 60, eta % 60);
	}
	fputs(final ? "\n" : "", stderr);
	fflush(stderr);
}

static int check_object(int fan_fd, const char *name, const struct stat *st, void *ud)
{
	struct fsck *f = ud;
	unsigned char h[HASH_LEN];
	char hex[HASH_HEX_LEN + 1];
	_cleanup_close_ int fd = -1;
	int r;

	if (!S_ISREG(st->st_mode) || strlen(name) < HASH_HEX_LEN || !hash_is_hex(name)) {
		printf("object %s: not an object (unexpected entry in objects/)\n", name);
		f->problems++;
		return 0;
	}
	fd = openat(fan_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		printf("object %s: cannot open: %s\n", name, strerror(errno));
		f->problems++;
		return 0;
	}
	r = hash_fd(fd, (uint64_t)st->st_size, h);
	if (r < 0) {
		printf("object %s: cannot read: %s\n", name, strerror(-r));
		f->problems++;
		return 0;
	}
	f->bytes_done += (uint64_t)st->st_size;
	report(f, false);
	hash_to_hex(h, hex);
	if (memcmp(hex, name, HASH_HEX_LEN)) {
		printf("object %s: content does not match its name (content hashes to %s)\n", name, hex);
		f->problems++;
	} else {
		const char *what = NULL;
		bool fixed = false;
		r = layout_check_object(f->p, fd, name, f->repair, &what, &fixed);
		if (r < 0) {
			printf("object %s: cannot check its owner and mode: %s\n", name, strerror(-r));
			f->problems++;
		} else if (r == 1) {
			printf("object %s: %s%s\n", name, what, fixed ? ": repaired" : "");
			if (fixed)
				f->repaired++;
			else
				f->problems++;
		}
	}
	f->checked++;
	return 0;
}

static void on_pool_dir(const char *what, const char *problem, bool fixed, void *ud)
{
	struct fsck *f = ud;

	printf("pool: %s: %s%s\n", what, problem, fixed ? ": repaired" : "");
	if (fixed)
		f->repaired++;
	else
		f->problems++;
}

/* An upper file that is also a pool object (same device and inode: a
 * same-filesystem adoption stopped between linking the object and removing
 * the upper name) would be written in place by the guest, changing every
 * guest that shares the object.  --repair gives it an inode of its own. */
static int upper_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct fsck *f = ud;
	const char *obj;
	int r;

	if (ev != WALK_ENTRY || !S_ISREG(e->st.st_mode) || e->st.st_nlink < 2 ||
	    e->st.st_dev != f->objects_dev || !(obj = object_map_find(f->map, e->st.st_ino)))
		return 0;
	if (!f->repair || f->readonly) {
		printf("guest %s: upper file /%s is the pool object %s (a write through the guest would "
		       "change it for every guest sharing it)%s\n",
		       f->guest, e->path, obj, f->readonly ? "; not repaired: guest is mounted" : "");
		f->problems++;
		return 0;
	}
	r = copy_file_unshare(e->parent_fd, e->name, f->staging_fd);
	if (r < 0) {
		printf("guest %s: upper file /%s is the pool object %s; repair failed: %s\n", f->guest,
		       e->path, obj, strerror(-r));
		f->problems++;
		return 0;
	}
	printf("guest %s: upper file /%s was the pool object %s: repaired (a copy of its own)\n", f->guest,
	       e->path, obj);
	f->repaired++;
	return 0;
}

/* Is PATH hidden by an entry of the guest's upper layer? */
static bool hidden_by_upper(struct fsck *f, const char *path)
{
	const char *name;
	struct stat st;
	_cleanup_close_ int dfd =
	        f->upper_fd >= 0 ? open_parent_beneath(f->upper_fd, path, false, &name) : -1;

	return dfd >= 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int on_problem(const struct walk_entry *e, enum lower_problem kind, const char *problem, void *ud)
{
	struct fsck *f = ud;

	/* A stub torn by a killed unify is written in place under the upper
	 * copy that hides it: a leftover, removed, not a problem. */
	if (kind == LOWER_MALFORMED && !f->readonly && hidden_by_upper(f, e->path)) {
		if (unlinkat(e->parent_fd, e->name, 0) == 0) {
			f->leftovers++;
			return 1;
		}
	}

	if (f->repair && f->readonly) {
		printf("guest %s: /%s: %s; not repaired: guest is mounted\n", f->guest, e->path, problem);
		return 0;
	}
	if (f->repair && kind == LOWER_UNLINKED) {
		int r = link_relink(f->p, e->parent_fd, e->name);
		if (r == 0) {
			printf("guest %s: /%s: %s: repaired (made an object again)\n", f->guest, e->path,
			       problem);
			f->repaired++;
			return 1;
		}
		printf("guest %s: /%s: %s; repair failed: %s\n", f->guest, e->path, problem, strerror(-r));
		return 0;
	}
	printf("guest %s: /%s: %s\n", f->guest, e->path, problem);
	return 0;
}

/* Is every object the lower references in the pool's record? */
static int check_record(struct fsck *f, const struct guest *g, const struct lower_stats *ls)
{
	struct guest_refs gr;
	uint64_t missing = 0;
	size_t k = 0;
	int r = pool_guest_read_refs(f->p, g->name, &gr);

	if (r < 0)
		return r;
	/* both lists are sorted: one merge pass */
	for (size_t i = 0; i < ls->n_refs; i++) {
		int cmp = 1;
		while (k < gr.n && (cmp = strcmp(gr.v[k], ls->refs[i])) < 0)
			k++;
		missing += k == gr.n || cmp != 0;
	}
	guest_refs_free(&gr);
	if (!missing)
		return 0;
	if (f->repair) {
		printf("guest %s: %" PRIu64 " referenced objects missing from the pool's record: repaired\n",
		       g->name, missing);
		f->repaired++;
		return 1;
	}
	printf("guest %s: %" PRIu64
	       " referenced objects missing from the pool's record (gc could delete them; "
	       "run fsck --repair)\n",
	       g->name, missing);
	f->problems++;
	return 0;
}

int cmd_fsck(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"repair", no_argument, NULL, 'r'},
	        {"progress", no_argument, NULL, 'P'},
	        {"quiet", no_argument, NULL, 'q'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	struct fsck f = {.upper_fd = -1, .staging_fd = -1};
	struct object_map *map = NULL;
	struct pool *p;
	char **names = NULL;
	int ch, r, n, ret = 1, progress = -1;

	while ((ch = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		if (ch == 'r')
			f.repair = true;
		else if (ch == 'P')
			progress = 1;
		else if (ch == 'q')
			progress = 0;
		else if (ch == 'h') {
			help();
			return 0;
		} else
			return cli_usage("fsck", "unknown option, or option without its argument: '%s'",
			                 argv[optind - 1]);
	}
	/* exclusive: leftovers of other writers are only garbage while no
	 * writer runs */
	p = cli_open_pool(c, POOL_LOCK_EXCLUSIVE);
	if (!p)
		return 1;
	f.p = p;
	/* opening for writing already put the directories' owner and modes
	 * right (pool_open): count what it found, then check what is left */
	if (p->dirs_fixed) {
		printf("pool: %u directories had a wrong owner or mode, or were missing: repaired (%s)\n",
		       p->dirs_fixed, p->dirs_fixed_first);
		f.repaired += p->dirs_fixed;
		if (!f.repair)
			f.problems += p->dirs_fixed;
	}
	r = pool_check_dirs(p, f.repair, on_pool_dir, &f);
	if (r < 0) {
		cli_error("fsck: directories of", p->path, r, NULL);
		goto out;
	}
	{
		struct stat ost;
		if (fstat(p->objects_fd, &ost) < 0) {
			cli_error("fsck: objects of", p->path, neg_errno(), NULL);
			goto out;
		}
		f.objects_dev = ost.st_dev;
	}
	r = remove_contents_at(p->fd, "tmp", &f.leftovers);
	if (r < 0) {
		cli_error("fsck: clean", "tmp", r, NULL);
		goto out;
	}
	f.progress = progress < 0 ? isatty(STDERR_FILENO) : progress;
	if (f.progress) {
		struct object_info oi = {0};
		if (objects_scan(p, &oi, NULL, NULL, NULL) == 0) {
			f.objects_total = oi.objects;
			f.bytes_total = oi.bytes;
		}
		clock_gettime(CLOCK_MONOTONIC, &f.start);
		f.last = f.start;
	}
	r = objects_scan(p, NULL, &map, check_object, &f);
	f.map = map;
	report(&f, true);
	if (r < 0) {
		cli_error("fsck: objects of", p->path, r, NULL);
		goto out;
	}
	if (optind < argc) {
		n = argc - optind;
		names = calloc((size_t)n + 1, sizeof(*names));
		for (int i = 0; names && i < n; i++)
			names[i] = strdup(argv[optind + i]);
	} else {
		n = pool_guest_names(p, &names);
	}
	if (n < 0 || !names) {
		cli_error("fsck: guests of", p->path, n < 0 ? n : -ENOMEM, NULL);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		struct guest *g = NULL;
		struct lower_stats ls = {0};
		uint64_t probs = 0;
		_cleanup_close_ int hfd = -1, lfd = -1;

		r = pool_guest_load(p, names[i], &g);
		if (r < 0) {
			printf("guest %s: not registered\n", names[i]);
			f.problems++;
			continue;
		}
		hfd = guest_open_home(p, g);
		if (hfd < 0) {
			printf("guest %s: home '%s' not attached (%s): skipped\n", g->name, g->home,
			       strerror(-hfd));
			guest_free(g);
			continue;
		}
		r = remove_contents_at(hfd, HOME_STAGING, &f.leftovers);
		if (r == 0)
			r = remove_tree_at(hfd, HOME_UPPER ".new");
		if (r < 0)
			printf("guest %s: cannot clean leftovers: %s\n", g->name, strerror(-r));
		f.guest = g->name;
		f.readonly = false;
		{
			/* A mounted guest's layers are not changed (SPEC invariant
			 * 6): checked, never repaired.  Not knowing counts as
			 * mounted. */
			_cleanup_free_ char *upper = path_join(g->home, HOME_UPPER), *at = NULL;
			int m = upper ? overlay_find_mounts(upper, &at) : -ENOMEM;
			if (m != 0) {
				f.readonly = true;
				if (m > 0)
					printf("guest %s: mounted at '%s': checked only, nothing changed\n",
					       g->name, at);
				else
					printf("guest %s: cannot tell whether it is mounted (%s): checked "
					       "only, "
					       "nothing changed\n",
					       g->name, strerror(-m));
			}
		}
		f.upper_fd = openat(hfd, HOME_UPPER, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		f.staging_fd = openat(hfd, HOME_STAGING, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (f.upper_fd >= 0 && f.staging_fd >= 0) {
			r = walk_tree(f.upper_fd, upper_cb, &f);
			if (r < 0) {
				printf("guest %s: cannot walk its upper layer: %s\n", g->name, strerror(-r));
				f.problems++;
			}
		}
		if (f.staging_fd >= 0)
			close(f.staging_fd);
		f.staging_fd = -1;
		lfd = guest_open_lower(p, g, hfd, false);
		if (lfd == -ENOENT) {
			if (f.upper_fd >= 0)
				close(f.upper_fd);
			f.upper_fd = -1;
			guest_free(g);
			continue; /* never unified */
		}
		if (lfd < 0) {
			printf("guest %s: cannot open lower layer: %s\n", g->name, strerror(-lfd));
			f.problems++;
			if (f.upper_fd >= 0)
				close(f.upper_fd);
			f.upper_fd = -1;
			guest_free(g);
			continue;
		}
		r = lower_scan(p, lfd, layout_ops_for(p)->refs_by_inode ? map : NULL, true, on_problem, &f,
		               &ls, &probs);
		if (f.upper_fd >= 0)
			close(f.upper_fd);
		f.upper_fd = -1;
		if (r < 0) {
			printf("guest %s: cannot scan lower layer: %s\n", g->name, strerror(-r));
			f.problems++;
		} else if (check_record(&f, g, &ls) == 1 || f.repaired) {
			r = guest_refresh_stats(p, g, hfd, NULL);
			if (r < 0)
				printf("guest %s: cannot rewrite its record: %s\n", g->name, strerror(-r));
		}
		f.problems += probs;
		lower_stats_free(&ls);
		guest_free(g);
	}
	if (f.leftovers)
		printf("fsck: removed %" PRIu64 " leftovers of interrupted commands\n", f.leftovers);
	printf("fsck: %" PRIu64 " objects checked, %" PRIu64 " problem%s", f.checked, f.problems,
	       f.problems == 1 ? "" : "s");
	if (f.repaired)
		printf(", %" PRIu64 " repaired", f.repaired);
	putchar('\n');
	ret = f.problems ? 1 : 0;
out:
	object_map_free(map);
	names_free(names);
	pool_close(p);
	return ret;
}
