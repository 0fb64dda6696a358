/*
 * meta.h - the volume's metadata store: namespace, inode attributes and
 * extended attributes in SQLite (WAL).
 *
 * One struct meta wraps one SQLite connection with its prepared statements
 * kept for the connection's lifetime. It is NOT thread safe: the home mount
 * serialises all calls through its own lock (fs.c), the CLI is single
 * threaded. Writes are grouped by the caller with meta_begin()/meta_commit().
 *
 * Times are nanoseconds since the epoch (int64). Names are byte strings
 * (not NUL terminated in the store; callers pass a length).
 */
#ifndef TIERFS_META_H
#define TIERFS_META_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define META_ROOT_INO 1
#define META_SCHEMA_VERSION 3 /* 2: inode.blocks; 3: round 2 tables (older stores are upgraded on open) */
#define META_APP_ID 0x54465331 /* "TFS1": PRAGMA application_id */

struct meta;

struct meta_attr {
	uint64_t ino;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint64_t nlink;
	uint64_t size;
	uint64_t rdev;
	int64_t atime;
	int64_t mtime;
	int64_t ctime;
	/* Regular files: the data file's st_blocks as the mount last recorded
	 * it (when the inode left its memory), so that a lookup after the
	 * kernel dropped the name need not stat the data file; -1 unknown.
	 * Written by meta_inode_insert() and meta_inode_set_blocks() only. */
	int64_t blocks;
	int sync_state; /* read only here: the sync engine's (placement.h) */
};

enum meta_open_flags {
	META_CREATE = 1 << 0,   /* create a new store; the file must not exist */
	META_READONLY = 1 << 1, /* open read-only (fsck -n, status) */
};

/*
 * Open (or with META_CREATE, create) the store at path. A file that is not
 * SQLite, or a SQLite database that is not a tierfs store, or one of a newer
 * schema, is refused with -EINVAL/-EPROTO and a message in err.
 */
int meta_open(const char *path, int flags, struct meta **out, char *err, size_t errlen);
void meta_close(struct meta *m);

/*
 * Transactions. durable=1 makes the commit survive power loss (fsync).
 * meta_commit() always commits, including an open batch (below).
 */
int meta_begin(struct meta *m);
int meta_commit(struct meta *m, int durable);
void meta_rollback(struct meta *m);

/*
 * Group commit (meta.c explains it). With meta_set_batch(max_ops > 1), an
 * operation may end with meta_commit_batched(): its changes join an open
 * transaction that commits after max_ops operations, on the next
 * meta_commit() or on meta_batch_commit(). It returns 1 when it opened a
 * new batch (the owner then arranges meta_batch_commit() within its age
 * limit), 0 when the operation is in a batch or committed, <0 on error.
 * on_lost runs (and logs) if an error rolls back a batch; from then on the
 * connection refuses writes (meta_begin: -EIO) until it is reopened.
 */
#define META_BATCH_MIN_FREE (64ull << 20)
void meta_set_batch(struct meta *m, unsigned max_ops, void (*on_lost)(void *arg, unsigned ops),
		    void *arg);
int meta_commit_batched(struct meta *m);
int meta_batch_commit(struct meta *m);
/* Open no batch for the next ns nanoseconds (another process waits to write). */
void meta_batch_pause(struct meta *m, int64_t ns);
/* Nanoseconds since the open batch began, or -1 when none is open. */
int64_t meta_batch_age_ns(struct meta *m);

/* Inodes. */
int meta_inode_get(struct meta *m, uint64_t ino, struct meta_attr *out);
int meta_inode_insert(struct meta *m, const struct meta_attr *a,
		      const void *target, size_t target_len);
/* All attributes but blocks, which only meta_inode_set_blocks() writes. */
int meta_inode_update(struct meta *m, const struct meta_attr *a);
int meta_inode_set_blocks(struct meta *m, uint64_t ino, int64_t blocks);
/* Delete the inode row and its xattrs. */
int meta_inode_delete(struct meta *m, uint64_t ino);
/* Symlink target appended to out. */
int meta_readlink(struct meta *m, uint64_t ino, struct tbuf *out);
uint64_t meta_max_ino(struct meta *m);

/* Directory entries. */
int meta_lookup(struct meta *m, uint64_t parent, const char *name, size_t len,
		uint64_t *ino_out, struct meta_attr *attr_out);
int meta_dentry_insert(struct meta *m, uint64_t parent, const char *name,
		       size_t len, uint64_t ino, uint32_t mode);
int meta_dentry_delete(struct meta *m, uint64_t parent, const char *name, size_t len);
/* Point an existing entry at another inode (RENAME_EXCHANGE). */
int meta_dentry_set_ino(struct meta *m, uint64_t parent, const char *name,
			size_t len, uint64_t ino, uint32_t mode);
/* 1 if the directory has no entries, 0 if it has, negative errno. */
int meta_dir_empty(struct meta *m, uint64_t dir);

/*
 * Entries of dir with cookie > after, in cookie order. The callback returns
 * non-zero to stop (the entry it was given is then not consumed). Cookies
 * are stable for the life of an entry: readdir offsets stay valid while
 * other entries come and go.
 */
typedef int (*meta_readdir_cb)(void *arg, const char *name, size_t len,
			       uint64_t ino, uint32_t mode, uint64_t cookie);
int meta_readdir(struct meta *m, uint64_t dir, uint64_t after, meta_readdir_cb cb, void *arg);

/* Extended attributes. get: -ENODATA if absent; value appended to out. */
int meta_xattr_get(struct meta *m, uint64_t ino, const char *name, struct tbuf *out);
/* flags: XATTR_CREATE / XATTR_REPLACE semantics. */
int meta_xattr_set(struct meta *m, uint64_t ino, const char *name,
		   const void *value, size_t len, int flags);
/* Names appended to out, each NUL terminated. */
int meta_xattr_list(struct meta *m, uint64_t ino, struct tbuf *out);
int meta_xattr_remove(struct meta *m, uint64_t ino, const char *name);
/* Number of xattrs with this name in the whole volume (fast-path checks). */
int64_t meta_xattr_count_name(struct meta *m, const char *name);

/* Volume configuration (key/value). get: -ENOENT when unset; caller frees. */
int meta_config_get(struct meta *m, const char *key, char **value_out);
int meta_config_set(struct meta *m, const char *key, const char *value);

/*
 * A reserve file of bytes in dirfd (DIR/meta.reserve), given up when
 * SQLite finds the disk full, so that metadata can still change (the
 * unlink that frees space must commit). Re-made by calling this again once
 * there is room. 0, or -ENOSPC when there is no room for it now.
 */
#define META_RESERVE_NAME "meta.reserve"
int meta_reserve(struct meta *m, int dirfd, uint64_t bytes);
/* The disk is full: give up the reserve. 1 if that freed space (then redo
 * the failed transaction), 0 if there was none. */
int meta_release_reserve(struct meta *m);

/* Direct access for fsck and tools that scan. */
struct sqlite3 *meta_db(struct meta *m);

/*
 * A prepared statement for sql, kept for the connection's life and reset
 * on every call. sql must be a string with static storage: the cache is
 * keyed by its address. NULL (logged) if it does not prepare. The caller
 * resets it after use (sqlite3_reset) and never finalizes it.
 */
struct sqlite3_stmt *meta_stmt(struct meta *m, const char *sql);

#endif
