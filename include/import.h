/*
 * import.h - the home side of write-back: the importer polls the outboxes
 * of the volume's cloud nodes (outbox.h) and applies their change sets
 * through the home mount itself (design in import.c; tables in
 * docs/on-disk-format.md).
 *
 * It runs in a thread of its own inside the home mount, never in the sync
 * engine's scheduler: it does file I/O through the mount, which the FUSE
 * loop must be free to serve.
 */
#ifndef TIERFS_IMPORT_H
#define TIERFS_IMPORT_H

#include <stdint.h>

#include "keys.h"
#include "volume.h"

struct import;

/* How the importer shares the metadata store with the mount. */
struct import_host {
	void *arg;
	void (*lock)(void *arg);   /* the lock serialising use of vol->meta */
	void (*unlock)(void *arg);
};

struct import_opts {
	int interval_s;   /* poll the outboxes this often; 0: 1 s */
	int grace_s;      /* chunks of a change set with no commit, not growing, live this long; 0: 3600 s */
};

/*
 * Make an importer for vol mounted at mountpoint: it opens its own
 * connection to the volume's store (config store_url) and derives the
 * nodes' keys from key (copied). Nothing runs until import_start(). 0 or
 * a negative errno (logged).
 */
int import_open(struct volume *vol, const struct volkey *key, const struct import_host *h,
		const char *mountpoint, const struct import_opts *o, struct import **out);
/* Start the thread (after the mount is up: it opens the mount's root). */
int import_start(struct import *im);
/* Ask the thread to stop; returns at once (the thread may be waiting on
 * the mount, which must still be served or unmounted). */
void import_stop(struct import *im);
/* Stop, join and free. NULL is ignored. */
void import_close(struct import *im);

#endif
