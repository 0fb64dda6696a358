/*
 * volume.h - a tierfs volume directory on the local disk.
 *
 * Layout (docs/on-disk-format.md):
 *   DIR/meta.db     SQLite metadata store (WAL: meta.db-wal, meta.db-shm)
 *   DIR/data/XX/N   contents of regular file inode N (16 hex digits),
 *                   XX = bits 12-19 of N in hex; a plain sparse local file
 *   DIR/volume.key  the volume key (mode 0600)
 *   DIR/lock        flock()ed by the home mount; holds its pid
 *   DIR/tierfs.log  the daemon's log when it runs in the background
 */
#ifndef TIERFS_VOLUME_H
#define TIERFS_VOLUME_H

#include <stddef.h>
#include <stdint.h>

#include "meta.h"

struct volume {
	char *dir;    /* absolute path, owned */
	int dirfd;    /* the volume directory */
	int datafd;   /* DIR/data */
	int lockfd;   /* DIR/lock, flock()ed when VOL_LOCK was asked; else -1 */
	struct meta *meta;
};

enum volume_flags {
	VOL_LOCK = 1 << 0,     /* take the exclusive mount lock; -EBUSY if held */
	VOL_READONLY = 1 << 1, /* metadata store read-only */
};

/* Data file name of an inode relative to DIR/data: "XX/NNNNNNNNNNNNNNNN". */
#define VOLUME_DATA_NAME_MAX 24
void volume_data_name(uint64_t ino, char out[VOLUME_DATA_NAME_MAX]);

struct volume_format_opts {
	const char *store_url;  /* NULL: file://DIR.store next to the volume */
	const char *passphrase; /* NULL: key file not wrapped */
};

/* Create a volume in dir, which must not exist or be empty. */
int volume_format(const char *dir, const struct volume_format_opts *o, char *err, size_t errlen);

/*
 * Open a volume. Errors come with a one-line message in err:
 * -ENOENT missing directory, -EINVAL not a volume, -EUCLEAN corrupt store,
 * -EBUSY mounted elsewhere (with VOL_LOCK).
 */
int volume_open(const char *dir, int flags, struct volume **out, char *err, size_t errlen);
void volume_close(struct volume *v);

/*
 * The daemon's last word, for `tierfs umount`: record in DIR/lock (held
 * with VOL_LOCK) that the unmount failed, with why, before the lock is
 * released. Written inside the file's first block, so a full disk does not
 * stop it. volume_exit_error() reads it back (after the lock is free):
 * 1 with the message in msg, 0 when the last daemon ended well.
 */
int volume_note_exit(struct volume *v, const char *msg);
int volume_exit_error(const char *dir, char *msg, size_t len);

/* pid of the live home mount of dir, or 0 if it is not mounted. */
int volume_mount_pid(const char *dir);

#endif
