/*
 * fs.h - the home mount: a multithreaded libfuse low-level filesystem over
 * a volume (metadata in SQLite, file contents in local files).
 */
#ifndef TIERFS_FS_H
#define TIERFS_FS_H

#include "volume.h"

struct fs_opts {
	double attr_timeout;  /* seconds the kernel may cache attributes */
	double entry_timeout; /* seconds the kernel may cache names */
	int writeback_cache;  /* kernel write-back caching (default on, off with passthrough) */
	int passthrough;      /* FUSE passthrough of local files' data (default on) */
	int uring;            /* FUSE over io_uring when the kernel offers it (default on) */
	int foreground;
	int debug;
	unsigned max_threads; /* 0: libfuse default */
	unsigned readahead_kb; /* kernel read-ahead of the mount (0: the volume disk's) */
	unsigned commit_ms;    /* group commit age limit in ms (0: every change commits) */
	const char *fuse_opts; /* extra -o options for libfuse, or NULL */
	int sync_interval_s;   /* sync engine tick (0: 1 s) */
	int recall_timeout_s;  /* bound on recalls of evicted data (0: 30 s) */
	int gc_grace_s;        /* unreferenced objects live this long (0: 60 s, -1: none) */
	int outbox_grace_s;    /* chunks of a node's change set with no commit live this long (0: 3600 s) */
	int publish_interval_s; /* snapshots at most this often (0: 5 s) */
	/* Called with fs_run's arg when the mount went away (unmounted or
	 * signalled), before the final writes; NULL: nothing to tell. */
	void (*stopping)(void *arg);
	const char *metrics;    /* serve Prometheus metrics on IPv4:PORT, or NULL */
};

void fs_opts_default(struct fs_opts *o);

/*
 * Recover the volume after an unclean shutdown: remove inodes left with no
 * links (unlinked while open), and take regular file sizes from their data
 * files. Called by fs_run() and by fsck. Returns the number of repairs made
 * or a negative errno.
 */
int fs_recover(struct volume *v);

/*
 * Mount vol at mountpoint and serve requests until unmounted or signalled.
 * ready is called once the mount is live (the daemon reports success to
 * its parent there). Returns 0 on a clean unmount, else a negative errno
 * with a message in err.
 */
int fs_run(struct volume *vol, const char *mountpoint, const struct fs_opts *o,
	   void (*ready)(void *arg), void *arg, char *err, size_t errlen);

#endif
