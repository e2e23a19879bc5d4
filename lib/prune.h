/* Keeping the upper layer free of directories that hold nothing of the
 * guest's own (the composefs shape; both layouts: the lower layer is
 * HOME/meta or POOL/roots/NAME).
 *
 * overlayfs consults the upper layer first for every lookup below a
 * directory that has an upper counterpart.  After unify, most of a guest's
 * upper directories hold nothing but other directories: every file went
 * to the lower layer.  So, at the end of a unify:
 *
 *   1. prune_prepare: every upper directory gets a lower counterpart with
 *      the same mode, owner, xattrs (trusted.overlay.* aside) and times:
 *      created where the lower has none (an empty lower directory under an
 *      upper one adds nothing to the view), its attributes set where they
 *      differ.  All of it is hidden by the upper directory, so the view
 *      does not change whenever a kill comes.  Before its first change it
 *      calls WILL_CHANGE (the metadata image goes first: meta_image.h).
 *      It lists the upper directories that hold nothing but such
 *      directories (none of the guest's own entries, not opaque), children
 *      before parents;
 *   2. the caller makes the lower layer durable, then writes what
 *      describes it elsewhere: the next metadata image (renamed in), or
 *      the link layout's HOME/vunify-lower (rewritten with the lower
 *      directories' and symlinks' attributes; lowerlist.h), so that a
 *      mount from either, or adopt, shows these attributes;
 *   3. prune_apply removes the listed upper symlinks (their lower ones are
 *      equal) and directories, children first.
 *      A directory with no upper counterpart shows its lower one, which
 *      is equal: the view is the same with or without it, at every
 *      instant.  (Each rmdir sets its parent's mtime; prune_apply puts it
 *      back.  A kill between the two leaves one directory with a newer
 *      mtime, which SPEC's fidelity leaves out: "mtime of
 *      non-directories".)
 * A guest that writes below a pruned directory has overlayfs copy it up
 * again (with its lower attributes); the next unify prunes it again. */
#ifndef VUNIFY_PRUNE_H
#define VUNIFY_PRUNE_H

#include <stddef.h>
#include <stdint.h>

struct prune_list {
	char **paths; /* directories, relative to the upper, children first */
	size_t n, cap;
	char **links; /* symlinks the lower shows equal now */
	size_t n_links, links_cap;
};

struct policy;

/* Step 1 over the upper at UPPER_FD and the lower at LOWER_FD (both
 * directories, not closed).  Symlinks (one link, outside what POL says is
 * never unified) go the same way: an equal symlink in the lower (target,
 * owner, xattrs, mtime; made at the symlink's own name, which the upper
 * one hides), listed for step 3, so that the directories holding them can
 * go too.  WILL_CHANGE(UD) is called once, before the first change to the
 * lower layer; its error stops the walk.  *RET_CHANGED says whether the
 * lower layer was changed.  Returns 0 or -errno. */
int prune_prepare(int upper_fd, int lower_fd, const struct policy *pol, int (*will_change)(void *ud),
                  void *ud, struct prune_list *ret, int *ret_changed);

/* Step 3: remove the listed upper symlinks, then the listed upper
 * directories that are empty by then (children first), each parent's
 * times put back.  *RET_REMOVED counts them, *RET_BLOCKS their st_blocks.
 * Returns 0 or -errno. */
int prune_apply(int upper_fd, const struct prune_list *l, uint64_t *ret_removed, uint64_t *ret_blocks);

void prune_list_free(struct prune_list *l);

#endif
