/*
 * cloud.h - the cloud mount: a read-only, lazy FUSE filesystem over the
 * snapshots a home mount publishes to an object store (formats in
 * snapshot.h), with file contents fetched chunk by chunk on demand and kept
 * in a local cache (cache.h).
 *
 * What a user of the mount may rely on:
 * - It shows exactly one published snapshot at a time. A poll thread reads
 *   "head" every poll interval and switches to a newer snapshot atomically
 *   for new lookups; an open file keeps reading the version it opened.
 *   Kernel entry and attribute caching is short (1 s), so a switch is
 *   visible within about poll + 1 s.
 * - Inode numbers are the home inode numbers (fids); the root is 1.
 * - Every modifying operation fails with EROFS, except with a node key
 *   (tierfs node add) where the snapshot's cloud-write rules allow it: there
 *   jobs create, write, truncate, rename, delete, chmod and touch files,
 *   directories and symlinks; the node stages the changes on its disk and
 *   sends them home through its outbox (cloud_wb.h, outbox.h). Hard links
 *   and device files: EPERM; chown: EPERM; renaming a directory home has:
 *   EXDEV (mv copies); extended attributes are not carried home (ENOTSUP).
 * - Bytes read are verified bytes: a damaged or tampered object in the
 *   store or in the cache gives EIO and a log line, never wrong data.
 * - A file published without data (on-demand placement) is requested from
 *   home (a requests/ object) on open; the open waits up to
 *   request_timeout for the manifest, then fails with EIO.
 * - The root directory answers getxattr("user.tierfs.status") with the
 *   mount's status as one JSON object (what cloud_status_main prints); the
 *   same text is rewritten to CACHE_DIR/status every second.
 */
#ifndef TIERFS_CLOUD_H
#define TIERFS_CLOUD_H

#include <stddef.h>
#include <stdint.h>

/* The xattr of the root through which the mount reports its status. */
#define CLOUD_STATUS_XATTR "user.tierfs.status"
/* Set on the root: upload what is closed now (tierfs sync). */
#define CLOUD_SYNC_XATTR "user.tierfs.sync"
/* Of any file (write-back): its state on the way home ("pending", "uploaded
 * (change set N)", "imported (...)", "conflict (...): COPY", "rejected (...): WHY",
 * or "home" for a version that came from home). */
#define CLOUD_STATE_XATTR "user.tierfs.state"

struct cloud_opts {
	const char *url;          /* the store: file://, s3://, azure:// */
	const char *key_file;     /* the volume key (key_file_load) */
	const char *passphrase;   /* for a wrapped key file, or NULL */
	const char *cache_dir;    /* the local cache (cache.h) */
	uint64_t cache_size;      /* bytes; LRU eviction above it */
	uint64_t mem_cache;       /* bytes of chunks kept in memory (0: 64 MiB) */
	int poll_s;               /* head poll interval (0: 30) */
	int request_timeout_s;    /* bound on store waits for a read (0: 60) */
	int readahead;            /* chunks fetched ahead of sequential reads (-1: none, 0: 4) */
	unsigned readahead_kb;    /* kernel read-ahead of the mount (0: 8192 KiB) */
	unsigned max_threads;     /* FUSE request threads (0: 16) */
	int no_uring;             /* stay on /dev/fuse when the kernel offers io_uring */
	int foreground;
	int debug;
};

/*
 * Load the key, open the store and the cache, read head and the newest
 * snapshot, mount at mountpoint and serve until unmounted or signalled.
 * ready(arg) is called once the mount is live. Returns 0 after a clean
 * unmount, else a negative errno with a one-line message in err (for
 * example "no snapshot published in 'URL' yet").
 */
int cloud_run(const struct cloud_opts *o, const char *mountpoint, void (*ready)(void *arg),
	      void *arg, char *err, size_t errlen);

#endif
