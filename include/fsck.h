/*
 * fsck.h - check a volume's metadata against its local data, and repair.
 */
#ifndef TIERFS_FSCK_H
#define TIERFS_FSCK_H

#include <stdio.h>

#include "volume.h"

enum fsck_flags {
	FSCK_REPAIR = 1 << 0, /* fix what is found (else only report) */
	FSCK_VERBOSE = 1 << 1,
};

/* Exit codes, as e2fsck's. */
enum fsck_result {
	FSCK_CLEAN = 0,
	FSCK_CORRECTED = 1,
	FSCK_UNCORRECTED = 4,
	FSCK_FAILED = 8,
};

/*
 * Check vol (opened unlocked-read-only for a report, or with VOL_LOCK for a
 * repair). Each problem is one line on out. Returns an enum fsck_result.
 */
int fsck_run(struct volume *vol, int flags, FILE *out);

/*
 * Remove data files that belong to no inode (left by a crash between
 * creating a file's data file and committing the file). Returns how many,
 * or a negative errno. Part of the recovery after an unclean shutdown.
 */
int fsck_remove_stray_data(struct volume *vol);

#endif
