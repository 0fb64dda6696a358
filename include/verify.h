/*
 * verify.h - `tierfs store verify`: is every object the metadata references
 * really in the store (and, deep, intact), and mend what is not.
 *
 * Referenced objects are the chunks of files and of retained snapshots'
 * manifests (object.refs > 0), the published directory and manifest
 * objects (pubobj, stored), the retained snapshots and `head`. A normal
 * verify asks the store whether each exists (HEAD); --deep reads it,
 * decrypts it and checks its authentication tag (and a chunk's keyed name).
 *
 * What it finds is told line by line through a callback, each line with a
 * kind: VERIFY_MISSING (an object is gone or damaged: a file's chunk with
 * its path, or a published object), VERIFY_REPAIRED (a file uploaded again
 * from its local copy, or the published objects put again), VERIFY_LOST (no
 * local copy: the file's evicted data is gone; named by path), VERIFY_INFO.
 * Files with missing chunks are also recorded in file_error (`status
 * --errors`), so they never look synced silently.
 *
 * Repair: chunks are uploaded again from local copies (the names are the
 * same, so older manifests are whole again), and the published objects are
 * put again by a forced publish of every directory.
 */
#ifndef TIERFS_VERIFY_H
#define TIERFS_VERIFY_H

#include <stdint.h>

#include "sync.h"

enum verify_flags { VERIFY_DEEP = 1 << 0, VERIFY_REPAIR = 1 << 1 };

enum verify_kind { VERIFY_INFO = 0, VERIFY_MISSING, VERIFY_REPAIRED, VERIFY_LOST };

struct verify_stats {
	uint64_t objects, checked; /* referenced objects, checked so far */
	uint64_t missing, damaged; /* objects */
	uint64_t files_bad, files_repaired, files_lost;
	uint64_t published_missing;
	int published_repaired;
};

struct verify_ops {
	void *arg;
	void (*line)(void *arg, enum verify_kind kind, const char *text);
	void (*progress)(void *arg, uint64_t done, uint64_t total); /* may be NULL */
};

/*
 * Verify the store of s's volume (and repair with VERIFY_REPAIR). 0 when
 * the check ran to its end (st tells what it found), or a negative errno
 * when it could not (the store failing: -EIO and friends, with a line).
 */
int verify_run(struct sync *s, int flags, const struct verify_ops *ops, struct verify_stats *st);

/*
 * Copy every referenced object from s's store to dst (`store set`): an
 * object dst already has is skipped, so an interrupted copy goes on where
 * it stopped. Objects the old store cannot give (missing, or unreadable)
 * are counted in *unreadable_out and left to a verify --repair on dst. 0,
 * or a negative errno when a store failed (a line tells which).
 */
int verify_copy(struct sync *s, struct store *dst, const struct verify_ops *ops, uint64_t *copied_out,
		uint64_t *present_out, uint64_t *unreadable_out);

/* The exit status of `store verify`, as fsck(8): 0 clean, 1 problems all
 * repaired, 4 problems left. */
int verify_exit_status(const struct verify_stats *st, int flags);

#endif
