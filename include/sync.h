/*
 * sync.h - the sync engine: turns placements into objects in the store.
 *
 * It uploads the chunks of mirrored and tiered files that changed (fixed
 * size chunks, named by a keyed hash of their content, encoded by codec.c),
 * evicts the local copies of cold tiered files once every chunk is
 * verifiably in the store, recalls evicted chunks on access, takes files
 * that turned private back out of the store, and deletes objects nothing
 * references (gc). Its state is in the metadata store: the upload queue
 * (`upload`), each file's chunks (`chunk`) and the objects with their
 * reference counts (`object`), so it survives restarts.
 *
 * The engine runs inside the home mount (sync_start: a scheduler thread and
 * upload workers), or synchronously inside a CLI command when nothing is
 * mounted. Its host gives it the metadata store's lock and tells it about
 * writes (struct sync_host).
 */
#ifndef TIERFS_SYNC_H
#define TIERFS_SYNC_H

#include <stdint.h>

#include "keys.h"
#include "meta.h"
#include "volume.h"

#define SYNC_CHUNK_SIZE (4u << 20) /* bytes; a volume's chunk size */

struct sync;

/* How the engine shares the metadata store and the files with its host. */
struct sync_host {
	void *arg;
	/* The lock that serialises use of vol->meta (the mount's fs->lock). */
	void (*lock)(void *arg);
	void (*unlock)(void *arg);
	/* Write generation of ino: differs whenever its data changed since an
	 * earlier call. NULL: nothing else writes (the CLI). Called locked. */
	uint64_t (*data_gen)(void *arg, uint64_t ino);
	/* Non-zero while ino must not be evicted (open). Called locked. */
	int (*busy)(void *arg, uint64_t ino);
	/* ino has (remote=1) or no longer has (0) chunks only in the store.
	 * Called locked. */
	void (*set_remote)(void *arg, uint64_t ino, int remote);
	/* Write the host's pending attribute changes to the metadata store and
	 * queue files whose data changed since they were last queued, so that
	 * what a job reads there is current. Called locked; NULL: none. */
	int (*flush)(void *arg);
};

struct sync_opts {
	int workers;             /* upload threads; 0: 4 */
	int interval_s;          /* scheduler tick; 0: 1 s */
	int recall_timeout_s;    /* bound on a recall of evicted data; 0: 30 s */
	int gc_grace_s;          /* unreferenced objects are deleted after this; 0: 60 s (-1: at once) */
	const char *passphrase;  /* for a wrapped key file */
	int publish_interval_s;  /* snapshots at most this often; 0: 5 s */
	int retain;              /* snapshots kept for cloud readers; 0: 10 */
};

/*
 * Open the engine on vol: its store (config store_url) and its key
 * (vol->dir/volume.key). Errors with a message in err. The host may be
 * NULL-filled (CLI). Nothing runs until sync_start().
 */
int sync_open(struct volume *vol, const struct sync_host *h, const struct sync_opts *o,
	      struct sync **out, char *err, size_t errlen);
/* Start the scheduler and workers (home mount). */
int sync_start(struct sync *s);
/* Stop the threads (waiting for uploads in flight) and free. */
void sync_close(struct sync *s);

/* The volume key the engine loaded (for the importer of the same mount);
 * valid until sync_close(). */
const struct volkey *sync_volkey(struct sync *s);

/* Make [off, off+len) of ino local, fetching evicted chunks (bounded by
 * recall_timeout). Concurrent callers share one fetch per chunk. Not
 * called with the host lock held. 0, -EIO (logged), -ETIMEDOUT. */
int sync_ensure_local(struct sync *s, uint64_t ino, uint64_t off, uint64_t len);

/*
 * The home mount changed the data of a file that has chunks in the store
 * (called with the host lock held, inside the host's transaction): it is
 * queued (so it is not evicted before its new version is uploaded), and on
 * a truncation to size the chunks past the new end are dropped.
 */
int sync_note_change(struct sync *s, uint64_t ino, int truncated, uint64_t size);

/* Upload ino now if its placement wants it (synchronously). 0, -EAGAIN if
 * it changed meanwhile (left queued), or an error (left queued, retried). */
int sync_upload_file(struct sync *s, uint64_t ino);
/* Evict ino's local copy: only a synced tier file nobody has open, after
 * checking every chunk is in the store. -EPERM (not tier), -EAGAIN (not
 * synced yet or busy), other errors. */
int sync_evict_file(struct sync *s, uint64_t ino);

/* One pass of everything due: uploads (queue), evictions, recalls of files
 * that must be local again, unpublishing of private files. The scheduler
 * runs this every tick; the CLI runs it when nothing is mounted. */
int sync_run_once(struct sync *s, int upload_all_due);

/* Delete unreferenced objects (older than the grace time unless force).
 * Counts what was (or, with dry_run, would be) deleted. */
int sync_gc(struct sync *s, int dry_run, int force, uint64_t *objects_out, uint64_t *bytes_out);

/*
 * Jobs: the CLI asks a live mount for work through the `job` table
 * (kind "sync", "hydrate", "evict", "gc"; arg a volume path or NULL for
 * all). The mount's scheduler runs them; without a mount the CLI calls
 * sync_run_job() itself. Progress (done/total) and the final state
 * ("done" or "failed" with an error) are written to the job's row.
 */
int sync_run_job(struct sync *s, int64_t job_id, const char *kind, const char *arg);

/* Publish a snapshot of the exported namespace now (if anything changed,
 * or always with force). */
struct publish_stats;
int sync_publish(struct sync *s, int force, struct publish_stats *st);

/* Write the engine's view of the store (reachable, since when, last
 * error) to the metadata store; the host calls it with its lock held, so
 * `tierfs status` is current even while the engine's threads wait on a
 * hung store. */
void sync_status_tick(struct sync *s);

/* Store reachability as last seen by this engine. */
int sync_store_reachable(struct sync *s);

/* For modules built on the engine (verify.c): its store, key and the
 * host's lock around the metadata store. */
struct store;
struct volkey;
struct store *sync_store(struct sync *s);
struct meta *sync_meta(struct sync *s);
const struct volkey *sync_key(struct sync *s);
void sync_lock(struct sync *s);
void sync_unlock(struct sync *s);

#endif
