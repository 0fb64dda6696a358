/*
 * health.h - what the sync engine's real store operations did, per
 * direction: the last success, the last error with its time, and the
 * failures since the last success. `tierfs status` (and --check, --errors)
 * and the metrics report only what is recorded here; nothing is inferred.
 *
 * The engine keeps a struct health in memory (health_note() from any
 * thread), writes it to the metadata store's `health` table once a tick
 * (health_save(), under the host's lock) and loads it back at mount, so the
 * record survives remounts. Per-file problems (a file that does not sync,
 * and why) are rows of the `file_error` table (health_file_error()).
 * Tables: docs/on-disk-format.md.
 */
#ifndef TIERFS_HEALTH_H
#define TIERFS_HEALTH_H

#include <pthread.h>
#include <stdint.h>

#include "meta.h"

enum health_dir {
	HEALTH_UPLOAD = 0, /* chunk puts */
	HEALTH_DOWNLOAD,   /* recalls of evicted chunks, checks before eviction */
	HEALTH_PUBLISH,    /* snapshots for cloud mounts */
	HEALTH_REQUESTS,   /* polling the requests of cloud mounts */
	HEALTH_GC,         /* deletes of unreferenced objects */
	HEALTH__COUNT
};

struct health_rec {
	int64_t last_ok;       /* ns since the epoch, 0: never */
	int64_t last_error_at; /* ns, 0: never */
	int64_t failing_since; /* first failure after the last success, 0: not failing */
	uint64_t failures;     /* failures since the last success */
	uint64_t ok_total, error_total;
	int last_code;         /* the last error's errno */
	char last_error[256];
};

struct health {
	pthread_mutex_t lock;
	struct health_rec r[HEALTH__COUNT]; /* protected by lock */
	int dirty;                          /* protected by lock */
};

/* "upload", "download", ...; NULL when out of range. */
const char *health_dir_name(enum health_dir d);

/* Will an error go away by itself (network, timeout, 5xx, busy)? Other
 * errors (permissions, a missing bucket or directory, a full store, bad
 * data) need the operator. */
int health_transient(int rc);

void health_init(struct health *h);
void health_release(struct health *h);
/* Record one operation: rc 0 a success, else a failure with msg.
 * -ECANCELED (shutdown) is not recorded. Thread safe. */
void health_note(struct health *h, enum health_dir d, int rc, const char *msg);
/* Is the direction failing now (its latest attempt failed)? */
int health_failing(struct health *h, enum health_dir d);
/* A copy of one direction's record. */
void health_get(struct health *h, enum health_dir d, struct health_rec *out);
/* Read the recorded health from the metadata store (zeroed when none). */
int health_load(struct meta *m, struct health_rec out[HEALTH__COUNT]);
/* Load into h (at mount). */
int health_restore(struct health *h, struct meta *m);
/* Changed since the last save? */
int health_dirty(struct health *h);
/* Write h if it changed; the caller holds the metadata lock and runs a
 * transaction. */
int health_save(struct health *h, struct meta *m);

/* The upload queue and the files that do not sync, from the metadata store. */
struct health_queue {
	uint64_t files, bytes;
	int64_t oldest;                 /* ns since the epoch of the oldest change queued, 0: none */
	uint64_t transient, persistent; /* files that do not sync, by kind */
};
int health_queue_facts(struct meta *m, struct health_queue *q);

/*
 * A file does not sync (dir: the direction that failed): record or clear
 * (rc 0) its row in file_error. The caller holds the metadata lock and runs
 * a transaction. persistent < 0: classify rc with health_transient().
 */
int health_file_error(struct meta *m, uint64_t ino, enum health_dir d, int rc, int persistent,
		      const char *msg);

#endif
