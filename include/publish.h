/*
 * publish.h - publishing the exported namespace as snapshots (formats in
 * snapshot.h; design in publish.c). Used by the sync engine.
 */
#ifndef TIERFS_PUBLISH_H
#define TIERFS_PUBLISH_H

#include <stdint.h>

#include "keys.h"
#include "meta.h"
#include "placement.h"
#include "store.h"

struct publish_ctx {
	struct meta *meta;
	struct store *store;
	const struct volkey *key;
	const struct policy_set *ps; /* rules (for tier --export); the caller keeps it current */
	char volume_id[33];
	uint32_t chunk_size;
	void (*lock)(void *arg);  /* the lock serialising use of meta */
	void (*unlock)(void *arg);
	void *arg;
};

struct publish_stats {
	uint64_t seq;     /* the new snapshot, 0 if none was needed */
	uint64_t dirs;    /* directories rebuilt */
	uint64_t objects; /* objects put, snapshot and head included */
	uint64_t bytes;
};

/*
 * Publish a new snapshot if anything changed since the last (or force).
 * Takes the lock only around metadata work, never during store I/O.
 * 0 (st->seq says whether a snapshot was made) or a negative errno; a
 * failed publish is retried whole by the next call.
 */
int publish_once(struct publish_ctx *c, int force, struct publish_stats *st);

/*
 * File ids (snap_fid()): the id ino shows in snapshots, assigned on first
 * use and kept in the pubfid table (inside the caller's transaction; a
 * collision with another inode's id takes the next attempt), and back:
 * the inode a fid sent by a cloud node stands for (-ENOENT if none).
 */
int publish_fid(struct meta *m, const struct volkey *k, uint64_t ino, uint64_t *fid_out);
int publish_fid_ino(struct meta *m, uint64_t fid, uint64_t *ino_out);

/* Delete from the store what only snapshots older than the newest
 * `retain` ones used. */
int publish_retire(struct publish_ctx *c, int retain, uint64_t *deleted_out);

#endif
