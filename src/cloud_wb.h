/*
 * cloud_wb.h - internal to the cloud mount: write-back on a cloud node
 * (cloud_wb.c). With a node key (outbox.h) the cloud mount is writable where
 * the snapshot's cloud-write rules allow; what jobs write is kept in an
 * overlay of entries by path over the snapshot, staged on the node's disk
 * (CACHE_DIR/wb: a SQLite journal and one data file per staged file), and
 * sent home by an uploader thread as change sets in the node's outbox. Home
 * answers each change set with an ack; once the snapshot that shows home's
 * result is current, the overlay drops the entries it covers.
 *
 * Entries are copies (struct wb_attr) handed out under the overlay's own
 * lock; callers never hold cl->lock while calling in (lock order: cl->lock
 * is never held over a wb_ call).
 */
#ifndef TIERFS_CLOUD_WB_H
#define TIERFS_CLOUD_WB_H

#include <stddef.h>
#include <stdint.h>

#include "outbox.h"
#include "store.h"
#include "util.h"

#define WB_INO_BASE (1ull << 62) /* inode numbers of entries made on the node */

enum wb_kind { WB_FILE = 1, WB_DIR = 2, WB_SYMLINK = 3, WB_GONE = 4 };

/* A copy of one overlay entry; release with wb_attr_release(). */
struct wb_attr {
	uint64_t id;          /* row id, names the data file; 0: new */
	uint64_t ino;         /* inode number shown (0 for WB_GONE) */
	char *path;           /* "/a/b" */
	uint8_t kind;         /* enum wb_kind */
	uint32_t mode, uid, gid;
	uint64_t size;
	int64_t mtime, ctime; /* ns */
	char *target;         /* symlinks */
	/* what the next change of this path is based on (outbox.h) */
	uint8_t base;
	uint64_t base_fid;
	int64_t base_mtime;
	uint64_t base_size;
	int state;            /* enum outbox_state of its latest version */
	char *detail;         /* home's word on it (conflict copy, reason) */
	uint64_t sent_seq;    /* change set that carried the latest version, 0: none */
	int open_writer;      /* wb_set of a new entry: it starts open for writing (one writer) */
};
void wb_attr_release(struct wb_attr *a);

struct wb;

/* Open (or recover) the staging area CACHE_DIR/wb for node key k. */
int wb_open(const char *cache_dir, const struct node_key *k, struct store *st, int timeout_s,
	    struct wb **out, char *err, size_t errlen);
/* Start the uploader thread. */
int wb_start(struct wb *wb);
/* Stop the uploader (after one last pass of at most flush_s seconds) and free. */
void wb_close(struct wb *wb, int flush_s);

/* Number of entries in the overlay (0: the overlay changes nothing). */
size_t wb_count(struct wb *wb);
/* The entry at path / with inode ino (never a WB_GONE for ino). 0 or -ENOENT. */
int wb_get_path(struct wb *wb, const char *path, struct wb_attr *out);
int wb_get_ino(struct wb *wb, uint64_t ino, struct wb_attr *out);
/*
 * Insert or replace the entry at a->path (dirty from now on). A new entry
 * (a->id == 0) gets an id, and the inode number a->ino or else
 * WB_INO_BASE + id; both are written back to *a. Persistent when it returns.
 */
int wb_set(struct wb *wb, struct wb_attr *a);
/*
 * Nothing at path any more. snap_base: the snapshot's entry there (for a
 * path the overlay does not hold), or NULL. An entry that home never had
 * is forgotten; otherwise a WB_GONE entry records the delete for home.
 */
int wb_delete(struct wb *wb, const char *path, const struct wb_attr *snap_base);
/*
 * Move the entry at from to to (replacing what to held: dst_snap is the
 * snapshot's entry at to, or NULL). A directory takes its entries along.
 * -EXDEV for a directory home already has (mv copies then).
 */
int wb_rename(struct wb *wb, const char *from, const char *to, const struct wb_attr *dst_snap,
	      const struct wb_attr *from_snap);
/* Call cb for every entry directly in directory dir ("/" or "/a"), WB_GONE included. */
int wb_children(struct wb *wb, const char *dir, void (*cb)(void *arg, const struct wb_attr *a),
		void *arg);

/* The staged data file of entry id: open it (flags as open(2), O_CREAT made 0600). */
int wb_open_data(struct wb *wb, uint64_t id, int flags);
/* A new temporary file in the staging area (path_out), and moving it in as entry id's data. */
int wb_tmp_file(struct wb *wb, char *path_out, size_t len);
int wb_adopt(struct wb *wb, uint64_t id, const char *tmp);
/* Count a writer of entry id, if it still exists (else -ENOENT: dropped meanwhile). */
int wb_take_writer(struct wb *wb, uint64_t id);
/* Write handles: the uploader leaves files open for writing alone. */
void wb_writer(struct wb *wb, uint64_t id, int delta);
/* The data of entry id changed (size, mtime in memory; dirty). */
void wb_wrote(struct wb *wb, uint64_t id, uint64_t size, int64_t mtime);
/* Record entry id's size and times (after a close, or durably for fsync). */
int wb_commit_entry(struct wb *wb, uint64_t id, int durable);

/*
 * The write-back state of path for a human: "pending", "uploaded (change set
 * 3)", "imported (change set 3)", "conflict (change set 4): COPY", ... from
 * the entry, or from the log once the entry is gone. -ENOENT: nothing known.
 */
int wb_state(struct wb *wb, const char *path, char *out, size_t len);

/* The cloud mount switched to snapshot seq (lets acknowledged entries go). */
void wb_set_snapshot(struct wb *wb, uint64_t seq);
/* cb(arg, path) after the overlay let go of path (home's version shows now); not under any wb lock. */
void wb_on_drop(struct wb *wb, void (*cb)(void *arg, const char *path), void *arg);
/* Wake the uploader now (sync). */
void wb_kick(struct wb *wb);

/* Outbox counts for status and sync --wait. */
struct wb_stats {
	uint64_t entries;        /* in the overlay */
	uint64_t pending;        /* changed, not in a change set yet (open ones included) */
	uint64_t pending_bytes;
	uint64_t busy;           /* of those, open for writing */
	uint64_t unsent_sets;    /* change sets sealed, not in the store yet */
	uint64_t unacked_sets;   /* in the store, no ack read yet */
	uint64_t uploaded_sets, uploaded_changes, uploaded_bytes; /* since mount */
	uint64_t imported, conflicts, rejected, kept; /* acknowledged since mount */
	uint64_t last_seq;       /* newest change set sealed */
	uint64_t last_acked;     /* newest change set acknowledged */
	int64_t oldest_pending;  /* ns, 0: none */
	int64_t last_upload, last_ack; /* ns, 0: never */
	int64_t last_error_at;
	char last_error[256];
};
void wb_get_stats(struct wb *wb, struct wb_stats *out);

#endif
