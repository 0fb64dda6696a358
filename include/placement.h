/*
 * placement.h - the placement policy applied to a volume's metadata store.
 *
 * policy.h is the pure engine (rules, globs, evaluation); this module keeps
 * each file's placement in the store up to date with it: the rules live in
 * the `rule` table, and every regular file and symlink has its placement,
 * the rule that gave it, its pin, its sync state and `next_eval` (the time
 * at which age alone may change its placement, indexed) in `inode`.
 *
 * The home mount and the CLI both call these functions on their own
 * connection; every function that writes must run inside the caller's
 * transaction (meta_begin()/meta_commit()), so a placement change is atomic
 * with the namespace change that caused it (a rename into a private
 * directory makes the file private in the same commit).
 */
#ifndef TIERFS_PLACEMENT_H
#define TIERFS_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "meta.h"
#include "policy.h"

/* Sync state of a file (driven by the sync engine). */
enum sync_state {
	SYNC_LOCAL = 0,  /* local only: nothing in the store */
	SYNC_QUEUED,     /* waiting to be uploaded */
	SYNC_UPLOADING,  /* being uploaded */
	SYNC_SYNCED,     /* every chunk of the current version is in the store */
	SYNC_EVICTED,    /* in the store only; local copy dropped */
	SYNC_PARTIAL,    /* in the store; some chunks local */
	SYNC__COUNT
};

const char *sync_state_name(enum sync_state s);

/* The ordered rules of a volume, loaded from the store. */
struct policy_set {
	struct policy_rule *rules;
	size_t n;
	int64_t version; /* config policy_version when loaded */
};

/* Load the rules (ordered). 0 or a negative errno with a message in err. */
int policy_set_load(struct meta *m, struct policy_set *out, char *err, size_t errlen);
void policy_set_release(struct policy_set *s);
/* The volume's policy version (bumped by every rule change); 0 if never set. */
int64_t policy_version(struct meta *m);
/* Bump it (inside a transaction). */
int policy_version_bump(struct meta *m);

/* Absolute path of ino within the volume ("/a/b"), appended to out with a
 * NUL; one of its names when it has several. -ENOENT if unreachable. */
int placement_path(struct meta *m, uint64_t ino, struct tbuf *out);
/* Resolve a volume path ("/a/b") to an inode. */
int placement_resolve(struct meta *m, const char *path, uint64_t *ino_out);

/*
 * The facts and the result for one inode: placement_evaluate() computes,
 * placement_apply() also stores the result if it changed (inside a
 * transaction). A file with several names is as private as its most
 * private name. Directories have no placement (returns 0, nothing done).
 * changed_out (optional) is set to 1 when the stored placement changed.
 */
struct placement_info {
	int64_t placement;   /* enum placement */
	char rule[POLICY_NAME_MAX + 1]; /* "" for the default or a private pin */
	int pin;             /* enum policy_pin */
	int sync_state;      /* enum sync_state */
	int64_t next_eval;   /* ns, INT64_MAX: never */
	int64_t mtime;       /* the file's, ns (placement_get) */
	int visible;
};
int placement_evaluate(struct meta *m, const struct policy_set *ps, uint64_t ino, int64_t now,
		       struct placement_info *out);
int placement_apply(struct meta *m, const struct policy_set *ps, uint64_t ino, int64_t now,
		    int *changed_out);
/* Apply to every inode below (and including) dir. Returns files changed. */
int placement_apply_tree(struct meta *m, const struct policy_set *ps, uint64_t dir, int64_t now);
/*
 * Apply to up to limit inodes with ino > *cursor, in inode order, advancing
 * *cursor; returns the number changed, and sets *done when no inode is
 * left. Lets the mount re-evaluate a large volume in short transactions.
 */
int placement_apply_batch(struct meta *m, const struct policy_set *ps, uint64_t *cursor,
			  size_t limit, int64_t now, int *done);
/* Apply to the inodes whose next_eval has come (indexed). */
int placement_apply_due(struct meta *m, const struct policy_set *ps, int64_t now, size_t limit);

/*
 * Put ino in the upload queue and mark it queued. changed is when its data
 * last changed (ns): it is due once the rule's --settle has passed since.
 * changed 0 forces it: due now, whatever the settle time, until uploaded
 * (later writes do not take that back). Inside a transaction.
 */
int placement_queue_upload(struct meta *m, uint64_t ino, int64_t changed);

/* Read and set a pin (the caller re-applies). */
int placement_set_pin(struct meta *m, uint64_t ino, int pin);
/* Stored placement fields of one inode. */
int placement_get(struct meta *m, uint64_t ino, struct placement_info *out);

/*
 * Is a file with this stored placement and rule visible to cloud mounts
 * (on-demand, mirror, tier of a rule with --export)? 1 or 0.
 */
int placement_visible(const struct policy_set *ps, int placement, const char *rule);

/*
 * Symlinks: may a symlink in directory parent, with this target text, be
 * exported? Only when its target, resolved inside the volume, is itself
 * exported (a visible file, or a directory with an exported file below
 * it, every directory on the way too), or lies outside the volume. The
 * target is resolved through the metadata store component by component
 * ('..' and nested symlinks, at most 16, are followed). A target that
 * leaves the volume (absolute, or '..' above the root) is outside unless
 * some tail of it names something private in the volume (for example
 * '/srv/vol/finance/plan.xlsx' with the volume mounted at /srv/vol names
 * '/finance/plan.xlsx'): the home mount point is not known to the store,
 * so every tail is tried, which may keep a link to a private look-alike
 * outside private too. A target that names nothing in the volume
 * (dangling) stays private.
 * Returns 1 (exported), 0 (private, with the reason in why), or a negative
 * errno.
 */
int placement_symlink_ok(struct meta *m, const struct policy_set *ps, uint64_t parent,
			 const void *target, size_t len, char *why, size_t whylen);

/* Print policy_explain() for ino with its current stored state. */
int placement_explain(struct meta *m, const struct policy_set *ps, uint64_t ino, int64_t now,
		      FILE *out);

#endif
