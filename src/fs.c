/*
 * fs.c - the home mount's FUSE operations (libfuse low-level API).
 *
 * DESIGN
 * - Namespace and attributes live in SQLite (meta.c); the contents of a
 *   regular file live in one local sparse file per inode (volume.h), so a
 *   read or write is a pread/pwrite (or splice) on a local file descriptor
 *   kept in the FUSE file handle; no lock and no SQL on the data path. With
 *   FUSE passthrough the kernel does those reads and writes itself (see
 *   "passthrough").
 * - Inodes the kernel knows (lookup count > 0) or that are open are kept in
 *   an in-memory table with their current attributes. Size and times that
 *   change on the data path are updated in memory and written back to SQLite
 *   by a flusher thread once a second, on fsync (durably), on forget and at
 *   unmount. After a crash, fs_recover() takes file sizes from the data
 *   files, so the store never claims bytes that are not there.
 * - Structural changes (create, link, unlink, rename, mkdir, rmdir) are one
 *   SQLite transaction each: a crash leaves either the old or the new tree.
 * - One mutex (fs->lock) protects the SQLite connection, the inode table and
 *   every in-memory attribute. Nothing blocks on I/O while holding it except
 *   SQLite itself. Lock order: fs->lock, then spare_lock (make_node takes a
 *   spare data file); the spare thread never holds spare_lock while taking
 *   fs->lock.
 * - The kernel caches names and attributes for long timeouts (the home mount
 *   owns its namespace) and, by default, uses write-back caching; permission
 *   checks are the kernel's (default_permissions), as on a local disk.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sqlite3.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fsck.h"
#include "fuse_io.h"
#include "log.h"
#include "metrics.h"
#include "meta.h"
#include "placement.h"
#include "import.h"
#include "sync.h"
#include "util.h"

#define NAME_MAX_BYTES 255

struct inode {
	uint64_t ino;
	struct meta_attr a; /* current attributes; protected by fs->lock */
	uint64_t nlookup;   /* kernel references; protected by fs->lock */
	uint64_t parent;    /* directories: parent inode, for ".." */
	int nopen;          /* open file handles; protected by fs->lock */
	int dirty;          /* a differs from the store; protected by fs->lock */
	int64_t blocks_db;  /* blocks as the store has it (-1 unknown); fs->lock */
	int touched;        /* opened or truncated since loaded: blocks may differ */
	uint64_t gen;       /* data generation: bumped by every change of data; fs->lock */
	uint64_t queued_gen; /* gen last handed to the upload queue; fs->lock */
	int remote;         /* some chunks only in the store (atomic reads on the data path) */
	/* passthrough (see "passthrough"); all protected by fs->lock */
	int npt;            /* open handles in passthrough mode */
	int backing_id;     /* the kernel's id of the data file while npt > 0 */
	int ptfd;           /* the data file, for attributes while npt > 0 */
	uint64_t pt_size;   /* the data file's size and mtime when last looked at */
	int64_t pt_mtime;
	struct inode *ptnext; /* fs->ptlist: inodes with npt > 0 */
	struct inode *hnext;
	struct inode *dnext; /* dirty list */
};

struct handle {
	int fd;
	int pt;             /* opened in passthrough mode */
	struct inode *ino;
};

/*
 * Spare data files: empty data files made ahead of time by the spare thread
 * for inode numbers it reserved, so a create takes one instead of creating
 * a file in the data area while the caller waits (a quarter of the
 * daemon's time per create on a journaled ext4). Unused spares are removed
 * at unmount; after a crash, recovery removes them as data files that
 * belong to no inode.
 */
#define SPARE_MAX 64

struct spare {
	uint64_t ino;
	int fd;
};

/* An inode with no links and no users, waiting to be deleted. */
struct reap {
	uint64_t ino;
	int reg;
};

struct fs {
	struct fuse_io io;   /* first (fuse_io_attach); io.negotiated: we own killpriv */
	struct volume *vol;
	struct meta *meta;
	struct fs_opts opts;
	struct import *import; /* set before the FUSE loop, cleared after it */
	pthread_mutex_t lock;
	struct inode **htab; /* protected by lock */
	size_t hsize, hcount;
	struct inode *dirty; /* protected by lock */
	uint64_t next_ino;   /* protected by lock */
	struct reap *reap;   /* protected by lock */
	size_t nreap, reap_cap;
	struct policy_set ps; /* the rules; protected by lock */
	uint64_t eval_cursor; /* full re-evaluation in progress from here; protected by lock */
	int eval_all;         /* a full re-evaluation is due; protected by lock */
	struct sync *sync;    /* the sync engine; NULL when it could not start */
	unsigned ticks;       /* flusher ticks; flusher thread only */
	int64_t ncapxattr;   /* security.capability xattrs in the volume */
	int datafd;
	pthread_t flusher;
	pthread_cond_t flusher_cv;
	int stopping;
	int meta_lost;        /* a batch of metadata changes was lost; no clean unmount */
	struct inode *ptlist; /* inodes open in passthrough mode; protected by lock */
	int pt_warned;        /* a refused passthrough was logged */
	struct fuse_session *se;
	/* spare data files (see struct spare); all under spare_lock */
	pthread_mutex_t spare_lock;
	pthread_cond_t spare_cv;
	struct spare spares[SPARE_MAX]; /* a ring from spare_head */
	unsigned spare_head, spare_n;
	int spare_stop;
	pthread_t spare_thread;
	struct metrics_server *metrics; /* -o metrics, or NULL */
};
_Static_assert(offsetof(struct fs, io) == 0, "fuse_io_attach: userdata starts with its fuse_io");

/* passthrough: the data file may have changed under the kernel */
static void pt_refresh(struct fs *fs, struct inode *i);
static void pt_refresh_all(struct fs *fs);

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static int64_t now_ns(void)
{
	return (int64_t)now_real_ns();
}

/* ---- inode table (all with fs->lock held) ---- */

static size_t hslot(struct fs *fs, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (fs->hsize - 1);
}

static struct inode *itab_find(struct fs *fs, uint64_t ino)
{
	for (struct inode *i = fs->htab[hslot(fs, ino)]; i; i = i->hnext)
		if (i->ino == ino)
			return i;
	return NULL;
}

static void itab_grow(struct fs *fs)
{
	size_t nsize = fs->hsize * 2;
	struct inode **n = calloc(nsize, sizeof(*n));
	size_t old = fs->hsize;
	struct inode **o = fs->htab;

	if (!n)
		return; /* keep the longer chains */
	fs->htab = n;
	fs->hsize = nsize;
	for (size_t s = 0; s < old; s++) {
		struct inode *i = o[s], *next;

		for (; i; i = next) {
			size_t h = hslot(fs, i->ino);

			next = i->hnext;
			i->hnext = n[h];
			n[h] = i;
		}
	}
	free(o);
}

static struct inode *itab_add(struct fs *fs, const struct meta_attr *a)
{
	struct inode *i = calloc(1, sizeof(*i));
	size_t h;

	if (!i)
		return NULL;
	i->ino = a->ino;
	i->a = *a;
	i->blocks_db = a->blocks;
	i->remote = a->sync_state == SYNC_EVICTED || a->sync_state == SYNC_PARTIAL;
	if (fs->hcount + 1 > fs->hsize)
		itab_grow(fs);
	h = hslot(fs, i->ino);
	i->hnext = fs->htab[h];
	fs->htab[h] = i;
	fs->hcount++;
	return i;
}

static void itab_remove(struct fs *fs, struct inode *i)
{
	struct inode **p = &fs->htab[hslot(fs, i->ino)];

	while (*p && *p != i)
		p = &(*p)->hnext;
	if (*p)
		*p = i->hnext;
	fs->hcount--;
	if (i->dirty) {
		struct inode **d = &fs->dirty;

		while (*d && *d != i)
			d = &(*d)->dnext;
		if (*d)
			*d = i->dnext;
	}
	free(i);
}

/* Find an inode in memory, loading it from the store if needed. */
static int iget(struct fs *fs, uint64_t ino, struct inode **out)
{
	struct meta_attr a;
	int rc;

	*out = itab_find(fs, ino);
	if (*out)
		return 0;
	rc = meta_inode_get(fs->meta, ino, &a);
	if (rc)
		return rc;
	*out = itab_add(fs, &a);
	return *out ? 0 : -ENOMEM;
}

static void mark_dirty(struct fs *fs, struct inode *i)
{
	if (!i->dirty) {
		i->dirty = 1;
		i->dnext = fs->dirty;
		fs->dirty = i;
	}
}

/* Write one inode's attributes now (inside the caller's transaction). */
static int iwrite(struct fs *fs, struct inode *i)
{
	int rc = meta_inode_update(fs->meta, &i->a);

	if (!rc && i->dirty) {
		struct inode **d = &fs->dirty;

		while (*d && *d != i)
			d = &(*d)->dnext;
		if (*d)
			*d = i->dnext;
		i->dirty = 0;
	}
	return rc;
}

/*
 * End a namespace or attribute change: it joins the group commit (meta.c),
 * which the flusher commits within opts.commit_ms. Changes with effects
 * outside SQLite use meta_commit() instead.
 */
static int commit_op(struct fs *fs)
{
	int rc = meta_commit_batched(fs->meta);

	if (rc == 1) {
		pthread_cond_signal(&fs->flusher_cv); /* a batch opened: time it */
		rc = 0;
	}
	return rc;
}

/* ---- killpriv ----
 * With FUSE_HANDLE_KILLPRIV_V2 negotiated (fuse_io.h) the daemon clears
 * setuid, and setgid with group execute, where the kernel would have: on a
 * write, truncate or O_TRUNC open by an unprivileged caller, and on chown.
 * libfuse 3.14 does not pass the kernel's per-request "kill" flags for write
 * and open, so "unprivileged" is taken as "uid != 0" (the kernel's test is
 * CAP_FSETID: a root without it, as in some containers, keeps the bits).
 * fallocate and copy_file_range carry no flag at all; the kernel's own
 * file_remove_privs() for them is left to us as well. With write-back caching the kernel only sends such writes
 * through WRITE (not page write-back) for files that have the bits. */
static int killpriv_wanted(struct fs *fs, fuse_req_t req, struct inode *i)
{
	uint32_t m = __atomic_load_n(&i->a.mode, __ATOMIC_RELAXED);

	return fs->io.negotiated && S_ISREG(m) && (m & (S_ISUID | S_ISGID)) &&
	       fuse_req_ctx(req)->uid != 0;
}

static uint32_t killpriv_bits(uint32_t mode)
{
	if (!S_ISREG(mode))
		return 0;
	return (mode & S_ISUID) | ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) ? S_ISGID : 0);
}

/* Clears the bits in memory only; returns them (0: nothing to clear). */
static uint32_t killpriv_mode(struct inode *i)
{
	uint32_t kill = killpriv_bits(i->a.mode);

	i->a.mode &= ~kill;
	return kill;
}

/* Clears the bits of i; fs->lock held. Returns 1 when the mode changed, and
 * the caller then tells the kernel (killpriv_notify) once unlocked. */
static int killpriv_locked(struct fs *fs, struct inode *i, int64_t now)
{
	if (!killpriv_mode(i))
		return 0;
	i->a.ctime = now;
	if (meta_begin(fs->meta) || iwrite(fs, i) || commit_op(fs)) {
		meta_rollback(fs->meta);
		mark_dirty(fs, i); /* the flusher retries */
	}
	return 1;
}

/* The kernel keeps the mode it last saw; drop its copy of the attributes. */
static void killpriv_notify(struct fs *fs, fuse_ino_t ino)
{
	fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
}

/* A data change by req's caller to i (write, fallocate, copy_file_range):
 * the kernel's file_remove_privs(), which it leaves to us. */
static void killpriv_on_write(struct fs *fs, fuse_req_t req, struct inode *i)
{
	int killed;

	if (!killpriv_wanted(fs, req, i))
		return;
	pthread_mutex_lock(&fs->lock);
	killed = killpriv_locked(fs, i, now_ns());
	pthread_mutex_unlock(&fs->lock);
	if (killed)
		killpriv_notify(fs, i->ino);
}

/* Re-evaluate an inode's placement inside the caller's transaction. */
static int place(struct fs *fs, uint64_t ino)
{
	int rc = placement_apply(fs->meta, &fs->ps, ino, now_ns(), NULL);

	if (rc < 0)
		log_error("placement of inode %llu: %s", (unsigned long long)ino, strerror(-rc));
	return rc < 0 ? rc : 0;
}

/* Write all dirty inodes in one transaction. */
static int flush_dirty(struct fs *fs, int durable)
{
	int rc;

	pt_refresh_all(fs);
	if (!fs->dirty && !durable)
		return 0;
	rc = meta_begin(fs->meta);
	if (rc)
		return rc;
	while (fs->dirty) {
		struct inode *i = fs->dirty;

		fs->dirty = i->dnext;
		i->dirty = 0;
		rc = meta_inode_update(fs->meta, &i->a);
		/* Size and times changed: rules on size and age may now differ. */
		if (!rc && S_ISREG(i->a.mode) && i->a.nlink)
			rc = place(fs, i->ino);
		/* Data changed: a mirrored or tiered file goes (back) in the
		 * upload queue, due once it settles. */
		if (!rc && S_ISREG(i->a.mode) && i->a.nlink && i->gen != i->queued_gen) {
			struct placement_info pi;

			if (!placement_get(fs->meta, i->ino, &pi) &&
			    (pi.placement == PLACEMENT_MIRROR || pi.placement == PLACEMENT_TIER ||
			     pi.sync_state != SYNC_LOCAL))
				rc = placement_queue_upload(fs->meta, i->ino, i->a.mtime > 0 ? now_ns() : 1);
			if (!rc)
				i->queued_gen = i->gen;
		}
		if (rc && rc != -ENOENT) {
			mark_dirty(fs, i);
			meta_rollback(fs->meta);
			return rc;
		}
	}
	return meta_commit(fs->meta, durable);
}

static void data_unlink(struct fs *fs, uint64_t ino)
{
	char name[VOLUME_DATA_NAME_MAX];

	volume_data_name(ino, name);
	if (unlinkat(fs->datafd, name, 0) && errno != ENOENT)
		log_warn("cannot remove data file of inode %llu: %s", (unsigned long long)ino,
			 strerror(errno));
}

/* Delete the rows of unlinked inodes nobody uses, then their data files. */
static int reap_inodes(struct fs *fs)
{
	int rc;

	if (!fs->nreap)
		return 0;
	rc = meta_begin(fs->meta);
	for (size_t k = 0; !rc && k < fs->nreap; k++)
		rc = meta_inode_delete(fs->meta, fs->reap[k].ino);
	if (!rc)
		rc = meta_commit(fs->meta, 0);
	else
		meta_rollback(fs->meta);
	if (rc)
		return rc; /* rows keep nlink 0; recovery removes them after a crash */
	for (size_t k = 0; k < fs->nreap; k++)
		if (fs->reap[k].reg)
			data_unlink(fs, fs->reap[k].ino);
	fs->nreap = 0;
	return 0;
}

/* stat(2) of an inode's data file. */
static int data_stat(struct fs *fs, uint64_t ino, struct stat *st)
{
	char name[VOLUME_DATA_NAME_MAX];

	volume_data_name(ino, name);
	return fstatat(fs->datafd, name, st, 0);
}

/*
 * Record the data file's block count for the next lookup (see fill_stat):
 * at the last release (from its fd: fd >= 0), and as the inode leaves
 * memory if it was truncated or never recorded. Nothing changes the data
 * file of an inode the kernel and the handles are done with but the sync
 * engine, which marks the count unknown (-1) before it writes fetched
 * chunks and with every new state. Only counts just read from the data file
 * are written, so that mark is never overwritten by an older count. A
 * failure only costs the cache.
 */
static void record_blocks(struct fs *fs, struct inode *i, int fd)
{
	struct stat ds;
	int rc;

	if (fd >= 0 ? fstat(fd, &ds) : data_stat(fs, i->ino, &ds))
		return;
	i->touched = 0;
	if ((int64_t)ds.st_blocks == i->blocks_db)
		return;
	rc = meta_begin(fs->meta);
	if (!rc)
		rc = meta_inode_set_blocks(fs->meta, i->ino, (int64_t)ds.st_blocks);
	if (!rc)
		rc = commit_op(fs);
	else
		meta_rollback(fs->meta);
	if (!rc)
		i->blocks_db = (int64_t)ds.st_blocks;
}

/*
 * Drop an inode from memory when the kernel and all handles are done with
 * it; queue it for deletion if it has no links left.
 */
static void iput_maybe(struct fs *fs, struct inode *i)
{
	if (i->nlookup || i->nopen || i->ino == META_ROOT_INO)
		return;
	if (i->a.nlink && S_ISREG(i->a.mode) && (i->touched || i->blocks_db < 0))
		record_blocks(fs, i, -1);
	if (i->a.nlink == 0) {
		/* Deleted for good by the flusher, in batches (reap_inodes). */
		struct reap *r = fs->reap;

		if (fs->nreap == fs->reap_cap) {
			size_t ncap = fs->reap_cap ? fs->reap_cap * 2 : 256;

			r = realloc(fs->reap, ncap * sizeof(*r));
			if (!r)
				return; /* keep it in memory; retried on unmount */
			fs->reap = r;
			fs->reap_cap = ncap;
		}
		r[fs->nreap].ino = i->ino;
		r[fs->nreap].reg = S_ISREG(i->a.mode);
		fs->nreap++;
	} else if (i->dirty) {
		int rc = meta_begin(fs->meta);

		if (!rc)
			rc = iwrite(fs, i);
		if (!rc)
			rc = commit_op(fs);
		else
			meta_rollback(fs->meta);
		if (rc) {
			log_error("cannot write inode %llu: %s", (unsigned long long)i->ino, strerror(-rc));
			return; /* keep it; the flusher retries */
		}
	}
	itab_remove(fs, i);
}

/* ---- attribute replies ---- */

static void ts_from_ns(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
	if (ts->tv_nsec < 0) {
		ts->tv_nsec += 1000000000;
		ts->tv_sec--;
	}
}

static int64_t ns_from_ts(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/*
 * st_blocks of a regular file comes from its data file; with stored, from
 * the count recorded when the inode last left memory, if known: for an
 * inode just loaded by a lookup, which then needs no lookup of its own in
 * the data area (after the kernel dropped its caches, each such stat was a
 * cold lookup in the backing file system as well), and for one just made
 * (0: its data file is new and empty).
 */
static void fill_stat(struct fs *fs, const struct inode *i, struct stat *st, int stored)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = i->ino;
	st->st_mode = i->a.mode;
	st->st_nlink = i->a.nlink;
	st->st_uid = i->a.uid;
	st->st_gid = i->a.gid;
	st->st_rdev = i->a.rdev;
	st->st_size = (off_t)i->a.size;
	st->st_blksize = 4096;
	ts_from_ns(&st->st_atim, i->a.atime);
	ts_from_ns(&st->st_mtim, i->a.mtime);
	ts_from_ns(&st->st_ctim, i->a.ctime);
	if (S_ISREG(i->a.mode)) {
		struct stat ds;

		if (stored && i->a.blocks >= 0)
			st->st_blocks = (blkcnt_t)i->a.blocks;
		else if (data_stat(fs, i->ino, &ds) == 0)
			st->st_blocks = ds.st_blocks;
	} else if (S_ISDIR(i->a.mode)) {
		st->st_size = 4096;
		st->st_blocks = 8;
	}
}

static void fill_entry(struct fs *fs, struct inode *i, struct fuse_entry_param *e, int stored)
{
	pt_refresh(fs, i);
	memset(e, 0, sizeof(*e));
	e->ino = i->ino;
	e->generation = 1;
	e->attr_timeout = fs->opts.attr_timeout;
	e->entry_timeout = fs->opts.entry_timeout;
	fill_stat(fs, i, &e->attr, stored);
}

/* Reply to a lookup-like request and take a kernel reference. */
static void reply_entry_locked(fuse_req_t req, struct fs *fs, struct inode *i, int stored)
{
	struct fuse_entry_param e;

	fill_entry(fs, i, &e, stored);
	i->nlookup++;
	if (fuse_reply_entry(req, &e) == -ENOENT)
		i->nlookup--; /* the request was interrupted: no reference taken */
}

static int check_name(const char *name)
{
	return strlen(name) > NAME_MAX_BYTES ? -ENAMETOOLONG : 0;
}

/* ---- operations ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	/* Passthrough and write-back caching exclude each other (the kernel's
	 * rule); passthrough serves data at the local disk's speed. */
	if (fs->io.pt_want && atomic_load(&fs->io.pt_offered)) {
		fs->opts.writeback_cache = 0;
		log_info("passthrough: reads and writes of local files go to their data files in the kernel");
	}
	if (fs->opts.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		fs->opts.writeback_cache = 0;
	/* Over io_uring a reply goes into the ring entry, never into /dev/fuse:
	 * no splicing then (read replies are copied into the entry). */
	if (fuse_io_uring_planned(&fs->io)) {
		log_info("FUSE over io_uring offered by the kernel: requests use per-CPU rings");
		conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_READ);
	} else {
		if (conn->capable & FUSE_CAP_SPLICE_WRITE)
			conn->want |= FUSE_CAP_SPLICE_WRITE;
		if (conn->capable & FUSE_CAP_SPLICE_READ)
			conn->want |= FUSE_CAP_SPLICE_READ;
	}
	conn->want &= ~(unsigned)FUSE_CAP_SPLICE_MOVE;
	/* Locks: the kernel's own flock and POSIX locks are exact for a single
	 * host, which the home mount is. */
	conn->want &= ~(unsigned)(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	/* Version 1 of killpriv is not wanted: libfuse 3.14 would not say when
	 * a write asks for it. Version 2 is negotiated by fuse_io (see the
	 * killpriv section); without it the kernel clears the bits itself. */
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	if (fs->io.want && fs->io.offered)
		log_info("negotiating FUSE_HANDLE_KILLPRIV_V2: setuid/setgid clearing done here");
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct meta_attr a;
	struct inode *i;
	uint64_t ino;
	int loaded, rc = check_name(name);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	rc = meta_lookup(fs->meta, parent, name, strlen(name), &ino, &a);
	if (rc == -ENOENT) {
		struct fuse_entry_param e;

		pthread_mutex_unlock(&fs->lock);
		/* A negative entry the kernel may cache: we own the namespace. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->opts.entry_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc)
		goto err;
	i = itab_find(fs, ino);
	loaded = !i;
	if (!i && !(i = itab_add(fs, &a))) {
		rc = -ENOMEM;
		goto err;
	}
	if (S_ISDIR(i->a.mode))
		i->parent = parent;
	reply_entry_locked(req, fs, i, loaded);
	pthread_mutex_unlock(&fs->lock);
	return;
err:
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

static void forget_one(struct fs *fs, fuse_ino_t ino, uint64_t n)
{
	struct inode *i = itab_find(fs, ino);

	if (!i)
		return;
	i->nlookup = n > i->nlookup ? 0 : i->nlookup - n;
	iput_maybe(fs, i);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = req_fs(req);

	pthread_mutex_lock(&fs->lock);
	forget_one(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = req_fs(req);

	pthread_mutex_lock(&fs->lock);
	for (size_t k = 0; k < count; k++)
		forget_one(fs, forgets[k].ino, forgets[k].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

/* ---- passthrough ----
 * With FUSE passthrough negotiated (fuse_io.h), an open of a local regular
 * file asks the kernel to read, write and mmap its data file directly: the
 * daemon sees no READ or WRITE for it. The kernel wants every open of one
 * inode in the same mode, so an inode with passthrough handles gets more,
 * and one with other handles gets none. Not in passthrough: files with a
 * copy in the store (mirror, tier, exported on-demand), files with chunks
 * only in the store (reads recall them), and setuid or setgid-exec files (a
 * write must clear the bits, which only the daemon does).
 * What the daemon no longer sees, it reads off the data file (pt_refresh)
 * wherever it reports or stores attributes: getattr, entry replies,
 * setattr, fsync, every attribute flush, the sync engine's generation
 * checks and the last release. A new size or mtime of the data file becomes
 * the file's, and bumps gen like a WRITE. */
static int pt_wanted(struct fs *fs, struct inode *i)
{
	if (!atomic_load(&fs->io.pt_negotiated) || !S_ISREG(i->a.mode))
		return 0;
	if (i->npt > 0)
		return 1;
	if (i->nopen > 0 || __atomic_load_n(&i->remote, __ATOMIC_ACQUIRE))
		return 0;
	if ((i->a.mode & S_ISUID) || ((i->a.mode & S_ISGID) && (i->a.mode & S_IXGRP)))
		return 0;
	/* Files with a copy in the store (mirror, tier, exported on-demand)
	 * stay on the daemon's data path, where every WRITE moves the data
	 * generation the sync engine checks around an upload. */
	{
		struct placement_info pi;

		if (placement_get(fs->meta, i->ino, &pi) == 0 && pi.placement != PLACEMENT_PRIVATE)
			return 0;
	}
	return 1;
}

/* The data file changed under the kernel's passthrough: take its size and
 * mtime. A same-size rewrite is seen by its mtime: file systems with
 * multigrain timestamps (ext4, xfs, btrfs, tmpfs since Linux 6.13) give a
 * write after our fstat a new, fine-grained mtime (measured: 2000 of 2000
 * rewrites on this ext4); on others, a rewrite within one clock tick of the
 * last look goes unseen until the next change. */
static void pt_refresh(struct fs *fs, struct inode *i)
{
	struct stat st;
	int64_t mt;

	if (i->npt == 0 || fstat(i->ptfd, &st))
		return;
	mt = ns_from_ts(&st.st_mtim);
	if ((uint64_t)st.st_size == i->pt_size && mt == i->pt_mtime)
		return;
	i->pt_size = (uint64_t)st.st_size;
	i->pt_mtime = mt;
	i->a.size = (uint64_t)st.st_size;
	i->a.mtime = i->a.ctime = mt;
	i->gen++;
	/* setuid or setgid-exec set while open in passthrough (opens are not
	 * passthrough otherwise): the writer is unknown, so the bits go, as for
	 * a write by anyone but root (POSIX allows clearing them on any write;
	 * keeping them after an unprivileged write would not be safe) */
	killpriv_mode(i);
	mark_dirty(fs, i);
}

/* Every inode open in passthrough: their data files may have changed. */
static void pt_refresh_all(struct fs *fs)
{
	for (struct inode *i = fs->ptlist; i; i = i->ptnext)
		pt_refresh(fs, i);
}

/* Open handle h of i in passthrough mode: the backing id for the reply, or 0. */
static int pt_attach(struct fs *fs, struct inode *i, struct handle *h)
{
	struct stat st;

	if (i->npt == 0) {
		int id = fuse_io_backing_open(&fs->io, h->fd);

		if (id <= 0) {
			if (!fs->pt_warned++)
				log_warn("passthrough for inode %llu refused: %s; such files are served"
					 " through the daemon (logged once)", (unsigned long long)i->ino,
					 strerror(id ? -id : EIO));
			return 0;
		}
		i->ptfd = dup(h->fd);
		if (i->ptfd < 0 || fstat(i->ptfd, &st)) {
			if (i->ptfd >= 0)
				close(i->ptfd);
			fuse_io_backing_close(&fs->io, id);
			return 0;
		}
		i->backing_id = id;
		i->pt_size = (uint64_t)st.st_size;
		i->pt_mtime = ns_from_ts(&st.st_mtim);
		i->ptnext = fs->ptlist;
		fs->ptlist = i;
	}
	i->npt++;
	h->pt = 1;
	return i->backing_id;
}

static void pt_detach(struct fs *fs, struct inode *i, struct handle *h)
{
	if (!h->pt)
		return;
	pt_refresh(fs, i);
	h->pt = 0;
	if (--i->npt == 0) {
		struct inode **pp = &fs->ptlist;

		while (*pp && *pp != i)
			pp = &(*pp)->ptnext;
		if (*pp)
			*pp = i->ptnext;
		fuse_io_backing_close(&fs->io, i->backing_id);
		close(i->ptfd);
		i->backing_id = 0;
		i->ptfd = -1;
	}
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct inode *i;
	struct stat st;
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = iget(fs, ino, &i);
	if (!rc) {
		pt_refresh(fs, i);
		fill_stat(fs, i, &st, 0);
	}
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, fs->opts.attr_timeout);
}

static int open_data(struct fs *fs, uint64_t ino, int flags)
{
	char name[VOLUME_DATA_NAME_MAX];
	int fd;

	volume_data_name(ino, name);
	fd = openat(fs->datafd, name, flags | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* Every regular file has a data file from its creation on. */
		log_error("data file of inode %llu is missing; run 'tierfs fsck'",
			  (unsigned long long)ino);
		return -EIO;
	}
	return fd < 0 ? -errno : fd;
}

/*
 * Before data of a file with chunks only in the store is read or changed:
 * fetch the chunks of [off, off+len). Files entirely local (nearly all)
 * pay one atomic load. Called without fs->lock.
 */
static int recall(struct fs *fs, struct inode *i, uint64_t off, uint64_t len)
{
	if (!__atomic_load_n(&i->remote, __ATOMIC_ACQUIRE))
		return 0;
	if (!fs->sync)
		return -EIO;
	return sync_ensure_local(fs->sync, i->ino, off, len);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct inode *i;
	struct stat st;
	int64_t now = now_ns();
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = iget(fs, ino, &i);
	if (!rc)
		pt_refresh(fs, i);
	if (!rc && (to_set & FUSE_SET_ATTR_SIZE) && S_ISREG(i->a.mode) && i->remote) {
		/* The chunk holding the new end must be local before it is cut. */
		uint64_t end = (uint64_t)attr->st_size;

		i->nopen++; /* keep it in memory while unlocked */
		pthread_mutex_unlock(&fs->lock);
		rc = recall(fs, i, end ? end - 1 : 0, 1);
		pthread_mutex_lock(&fs->lock);
		i->nopen--;
	}
	if (rc)
		goto out;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		int fd = fi ? ((struct handle *)(uintptr_t)fi->fh)->fd : -1;
		int own = 0;

		if (!S_ISREG(i->a.mode)) {
			rc = S_ISDIR(i->a.mode) ? -EISDIR : -EINVAL;
			goto out;
		}
		if (fd < 0) {
			fd = open_data(fs, ino, O_RDWR);
			own = 1;
		}
		if (fd < 0) {
			rc = fd;
			goto out;
		}
		i->touched = 1;
		if (ftruncate(fd, attr->st_size))
			rc = -errno;
		if (own)
			close(fd);
		if (rc)
			goto out;
		i->a.size = (uint64_t)attr->st_size;
		i->gen++;
		if (!(to_set & FUSE_SET_ATTR_MTIME))
			i->a.mtime = now;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		i->a.mode = (i->a.mode & S_IFMT) | (attr->st_mode & 07777);
	else if (fs->io.negotiated && S_ISREG(i->a.mode) &&
		 (to_set & (FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		killpriv_mode(i); /* truncate by an unprivileged caller, or chown */
	if (to_set & FUSE_SET_ATTR_UID)
		i->a.uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		i->a.gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		i->a.atime = now;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		i->a.atime = ns_from_ts(&attr->st_atim);
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		i->a.mtime = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		i->a.mtime = ns_from_ts(&attr->st_mtim);
	if (to_set & FUSE_SET_ATTR_CTIME)
		i->a.ctime = ns_from_ts(&attr->st_ctim);
	else
		i->a.ctime = now;
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE |
		      FUSE_SET_ATTR_KILL_SUID)) {
		/* Ownership, permission and size changes are written at once. */
		rc = meta_begin(fs->meta);
		if (!rc)
			rc = iwrite(fs, i);
		if (!rc)
			rc = place(fs, ino); /* owner, group and size rules */
		if (!rc && (to_set & FUSE_SET_ATTR_SIZE) && fs->sync)
			rc = sync_note_change(fs->sync, ino, 1, i->a.size);
		/* A truncation the sync engine must see commits at once: after a
		 * crash it must not look synced with the old contents. */
		if (!rc)
			rc = (to_set & FUSE_SET_ATTR_SIZE) && fs->sync ? meta_commit(fs->meta, 0)
								       : commit_op(fs);
		else
			meta_rollback(fs->meta);
	} else {
		mark_dirty(fs, i);
	}
	fill_stat(fs, i, &st, 0);
out:
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, fs->opts.attr_timeout);
}

/*
 * Create any kind of inode under parent: one transaction for the inode, its
 * entry and the parent's link count. For regular files the data file is
 * created first, so a crash can leave only an unreferenced data file, which
 * fsck removes.
 */
/* ---- spare data files ---- */

/* A spare's inode number and open data file; -EAGAIN when none is ready. */
static int spare_take(struct fs *fs, uint64_t *ino, int *fd)
{
	int rc = -EAGAIN;

	pthread_mutex_lock(&fs->spare_lock);
	if (fs->spare_n) {
		struct spare *sp = &fs->spares[fs->spare_head];

		*ino = sp->ino;
		*fd = sp->fd;
		fs->spare_head = (fs->spare_head + 1) % SPARE_MAX;
		fs->spare_n--;
		rc = 0;
	}
	if (fs->spare_n <= SPARE_MAX / 2)
		pthread_cond_signal(&fs->spare_cv);
	pthread_mutex_unlock(&fs->spare_lock);
	return rc;
}

/* Keeps the ring between half full and full; backs off a second after a
 * failure (a full disk, no file descriptors): creates then make their own. */
static void *spare_main(void *arg)
{
	struct fs *fs = arg;
	int warned = 0;

	pthread_mutex_lock(&fs->spare_lock);
	while (!fs->spare_stop) {
		char dname[VOLUME_DATA_NAME_MAX];
		uint64_t ino;
		int fd;

		if (fs->spare_n > SPARE_MAX / 2) {
			pthread_cond_wait(&fs->spare_cv, &fs->spare_lock);
			continue;
		}
		while (fs->spare_n < SPARE_MAX && !fs->spare_stop) {
			pthread_mutex_unlock(&fs->spare_lock);
			pthread_mutex_lock(&fs->lock);
			ino = fs->next_ino++;
			pthread_mutex_unlock(&fs->lock);
			volume_data_name(ino, dname);
			fd = openat(fs->datafd, dname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			pthread_mutex_lock(&fs->spare_lock);
			if (fd < 0 && errno == EEXIST)
				continue; /* a stray data file under that number: skip it */
			if (fd < 0) {
				struct timespec ts;

				if (!warned++)
					log_warn("cannot make spare data files: %s; creates make their own"
						 " (logged once)", strerror(errno));
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_sec += 1;
				pthread_cond_timedwait(&fs->spare_cv, &fs->spare_lock, &ts);
				break;
			}
			fs->spares[(fs->spare_head + fs->spare_n) % SPARE_MAX] =
				(struct spare){ ino, fd };
			fs->spare_n++;
		}
	}
	pthread_mutex_unlock(&fs->spare_lock);
	return NULL;
}

/* Stop the spare thread (if started) and remove the unused spares.
 * 0, or -errno when one could not be removed (recovery will). */
static int spare_stop(struct fs *fs, int started)
{
	int rc = 0;

	pthread_mutex_lock(&fs->spare_lock);
	fs->spare_stop = 1;
	pthread_cond_signal(&fs->spare_cv);
	pthread_mutex_unlock(&fs->spare_lock);
	if (started)
		pthread_join(fs->spare_thread, NULL);
	pthread_mutex_lock(&fs->spare_lock);
	for (; fs->spare_n; fs->spare_n--) {
		struct spare *sp = &fs->spares[fs->spare_head];
		char dname[VOLUME_DATA_NAME_MAX];

		close(sp->fd);
		volume_data_name(sp->ino, dname);
		if (unlinkat(fs->datafd, dname, 0) && errno != ENOENT && !rc)
			rc = -errno;
		fs->spare_head = (fs->spare_head + 1) % SPARE_MAX;
	}
	pthread_mutex_unlock(&fs->spare_lock);
	return rc;
}

static int make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev, const char *link_target, struct inode **out, int *fd_out)
{
	struct fs *fs = req_fs(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct inode *p, *i = NULL;
	struct meta_attr a;
	uint64_t existing;
	int64_t now = now_ns();
	int fd = -1;
	int rc = check_name(name);

	if (rc)
		return rc;
	rc = iget(fs, parent, &p);
	if (rc)
		return rc;
	if (!S_ISDIR(p->a.mode))
		return -ENOTDIR;
	if (p->a.nlink == 0)
		return -ENOENT;
	rc = meta_lookup(fs->meta, parent, name, strlen(name), &existing, NULL);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	memset(&a, 0, sizeof(a));
	a.blocks = S_ISREG(mode) ? 0 : -1; /* a new data file is empty */
	if (!S_ISREG(mode) || spare_take(fs, &a.ino, &fd))
		a.ino = fs->next_ino++;
	a.mode = mode;
	a.uid = ctx->uid;
	a.gid = ctx->gid;
	if (p->a.mode & S_ISGID) {
		a.gid = p->a.gid;
		if (S_ISDIR(mode))
			a.mode |= S_ISGID;
	}
	a.nlink = S_ISDIR(mode) ? 2 : 1;
	a.rdev = rdev;
	a.atime = a.mtime = a.ctime = now;
	if (link_target)
		a.size = strlen(link_target);
	if (S_ISREG(mode) && fd < 0) {
		char dname[VOLUME_DATA_NAME_MAX];

		volume_data_name(a.ino, dname);
		fd = openat(fs->datafd, dname, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
	}
	rc = meta_begin(fs->meta);
	if (rc)
		goto fail;
	rc = meta_inode_insert(fs->meta, &a, link_target, link_target ? strlen(link_target) : 0);
	if (!rc)
		rc = meta_dentry_insert(fs->meta, parent, name, strlen(name), a.ino, mode);
	if (!rc && (S_ISREG(mode) || S_ISLNK(mode)))
		rc = place(fs, a.ino);
	if (!rc && S_ISDIR(mode)) {
		p->a.nlink++;
		p->a.mtime = p->a.ctime = now;
		rc = iwrite(fs, p);
	}
	if (!rc)
		rc = commit_op(fs);
	else
		meta_rollback(fs->meta);
	if (rc) {
		if (S_ISDIR(mode))
			p->a.nlink--;
		goto fail;
	}
	p->a.mtime = p->a.ctime = now;
	mark_dirty(fs, p);
	i = itab_add(fs, &a);
	if (!i) {
		rc = -ENOMEM;
		goto fail_committed;
	}
	if (S_ISDIR(mode))
		i->parent = parent;
	*out = i;
	if (fd_out)
		*fd_out = fd;
	else if (fd >= 0)
		close(fd);
	return 0;
fail:
	if (fd >= 0) {
		char dname[VOLUME_DATA_NAME_MAX];

		close(fd);
		volume_data_name(a.ino, dname);
		unlinkat(fs->datafd, dname, 0);
	}
	return rc;
fail_committed:
	if (fd >= 0)
		close(fd);
	return rc;
}

static void reply_new_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			   dev_t rdev, const char *target)
{
	struct fs *fs = req_fs(req);
	struct inode *i;
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = make_node(req, parent, name, mode, rdev, target, &i, NULL);
	if (!rc)
		reply_entry_locked(req, fs, i, 1); /* new: its recorded count holds */
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		fuse_reply_err(req, -rc);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	reply_new_node(req, parent, name, mode, rdev, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	reply_new_node(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (strlen(link) >= 4096) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	reply_new_node(req, parent, name, S_IFLNK | 0777, 0, link);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct tbuf b = TBUF_INIT;
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = meta_readlink(fs->meta, ino, &b);
	pthread_mutex_unlock(&fs->lock);
	if (!rc)
		rc = tbuf_append(&b, "", 1);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, (const char *)b.data);
	tbuf_release(&b);
}

static struct handle *handle_new(struct inode *i, int fd)
{
	struct handle *h = malloc(sizeof(*h));

	if (h) {
		h->fd = fd;
		h->pt = 0;
		h->ino = i;
		i->touched = 1; /* with write-back caching any handle may write */
	}
	return h;
}

static void set_open_flags(struct fs *fs, struct fuse_file_info *fi)
{
	/* The home mount is the only writer of its files: keep the page cache. */
	fi->keep_cache = 1;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct handle *h = NULL;
	struct inode *i;
	int fd = -1, backing = 0;
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = make_node(req, parent, name, S_IFREG | (mode & 07777), 0, NULL, &i, &fd);
	if (rc)
		goto out;
	h = handle_new(i, fd);
	if (!h) {
		/* The file exists now; the kernel's lookup will find it. */
		close(fd);
		rc = -ENOMEM;
		goto out;
	}
	backing = pt_wanted(fs, i) ? pt_attach(fs, i, h) : 0;
	i->nopen++;
	i->nlookup++;
	fill_entry(fs, i, &e, 1); /* a new, empty data file: 0 blocks */
	fi->fh = (uintptr_t)h;
	set_open_flags(fs, fi);
out:
	pthread_mutex_unlock(&fs->lock);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fuse_io_passthrough_next(backing);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		pthread_mutex_lock(&fs->lock);
		pt_detach(fs, i, h);
		i->nopen--;
		i->nlookup--;
		close(h->fd);
		free(h);
		iput_maybe(fs, i);
		pthread_mutex_unlock(&fs->lock);
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct handle *h;
	struct inode *i;
	int64_t now = now_ns();
	int fd, rc, killed = 0, backing = 0;

	/* Open the data file read-write whatever the caller asked: with
	 * write-back caching the kernel reads through write-only handles and
	 * writes through any handle. O_APPEND is the kernel's business (it sends
	 * the offset), and O_DIRECT is not wanted on the backing file. */
	fd = open_data(fs, ino, O_RDWR | (fi->flags & O_TRUNC));
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	rc = iget(fs, ino, &i);
	if (rc)
		goto out;
	h = handle_new(i, fd);
	if (!h) {
		rc = -ENOMEM;
		goto out;
	}
	backing = pt_wanted(fs, i) ? pt_attach(fs, i, h) : 0;
	i->nopen++;
	if (fi->flags & O_TRUNC) {
		if (killpriv_wanted(fs, req, i))
			killed = killpriv_locked(fs, i, now);
		i->a.size = 0;
		i->a.mtime = i->a.ctime = now;
		i->gen++;
		mark_dirty(fs, i);
		if (fs->sync && !meta_begin(fs->meta)) {
			if (iwrite(fs, i) || sync_note_change(fs->sync, ino, 1, 0))
				meta_rollback(fs->meta);
			else if (meta_commit(fs->meta, 0))
				log_error("cannot record the truncation of inode %llu", (unsigned long long)ino);
		}
	}
	/* relatime: atime moves when it is not later than the last change (the
	 * kernel stamps mtime with a coarser clock than ours, hence the second
	 * of slack) or is a day old */
	if ((fi->flags & O_ACCMODE) != O_WRONLY &&
	    (i->a.atime <= i->a.mtime + 1000000000ll || now - i->a.atime > 86400ll * 1000000000)) {
		i->a.atime = now;
		mark_dirty(fs, i);
	}
	fi->fh = (uintptr_t)h;
	set_open_flags(fs, fi);
out:
	pthread_mutex_unlock(&fs->lock);
	if (rc) {
		close(fd);
		fuse_reply_err(req, -rc);
		return;
	}
	if (killed)
		killpriv_notify(fs, ino);
	fuse_io_passthrough_next(backing);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		pthread_mutex_lock(&fs->lock);
		pt_detach(fs, i, h);
		i->nopen--;
		close(h->fd);
		free(h);
		iput_maybe(fs, i);
		pthread_mutex_unlock(&fs->lock);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	int rc = recall(req_fs(req), h->ino, (uint64_t)off, size);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = h->fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* Account a write that ended at end: grow the size, move mtime. */
static void note_write(struct fs *fs, struct inode *i, uint64_t end)
{
	pthread_mutex_lock(&fs->lock);
	i->gen++;
	if (end > i->a.size)
		i->a.size = end;
	if (!fs->opts.writeback_cache)
		i->a.mtime = i->a.ctime = now_ns();
	mark_dirty(fs, i);
	pthread_mutex_unlock(&fs->lock);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	ssize_t n;
	int rc = recall(fs, h->ino, (uint64_t)off, fuse_buf_size(in));

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (!fi->writepage)
		killpriv_on_write(fs, req, h->ino);
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = h->fd;
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, in, 0);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	note_write(fs, h->ino, (uint64_t)off + (uint64_t)n);
	if (__atomic_load_n(&h->ino->remote, __ATOMIC_ACQUIRE) && fs->sync) {
		/* a changed evicted file must not look synced, even for a second */
		pthread_mutex_lock(&fs->lock);
		if (!meta_begin(fs->meta)) {
			if (sync_note_change(fs->sync, ino, 0, 0))
				meta_rollback(fs->meta);
			else
				meta_commit(fs->meta, 0);
		}
		pthread_mutex_unlock(&fs->lock);
	}
	fuse_reply_write(req, (size_t)n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	pthread_mutex_lock(&fs->lock);
	pt_detach(fs, h->ino, h);
	if (h->ino->nopen == 1 && h->ino->a.nlink && S_ISREG(h->ino->a.mode))
		record_blocks(fs, h->ino, h->fd);
	close(h->fd);
	h->ino->nopen--;
	iput_maybe(fs, h->ino);
	pthread_mutex_unlock(&fs->lock);
	free(h);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int rc = 0;

	if ((datasync ? fdatasync(h->fd) : fsync(h->fd)) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	/* Size and times, and every namespace change before this one, become
	 * durable with one synced WAL commit. */
	pthread_mutex_lock(&fs->lock);
	pt_refresh(fs, h->ino);
	rc = flush_dirty(fs, 1);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = flush_dirty(fs, 1);
	/* The tierfs CLI fsyncs the root before it reads or writes the store
	 * (cmd_policy.c, mount_barrier): give its writes a free store for a
	 * second rather than a batch holding the write lock. */
	if (ino == FUSE_ROOT_ID)
		meta_batch_pause(fs->meta, 1000000000);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int rc = recall(fs, h->ino, (uint64_t)off, (uint64_t)len);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	killpriv_on_write(fs, req, h->ino);
	if (fallocate(h->fd, mode, off, len)) {
		fuse_reply_err(req, errno);
		return;
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE))
		note_write(fs, h->ino, (uint64_t)off + (uint64_t)len);
	else if (mode & FALLOC_FL_PUNCH_HOLE)
		note_write(fs, h->ino, 0);
	fuse_reply_err(req, 0);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct fs *fs = req_fs(req);
	struct handle *hi = (struct handle *)(uintptr_t)fi_in->fh;
	struct handle *ho = (struct handle *)(uintptr_t)fi_out->fh;
	ssize_t n;
	int rc = recall(fs, hi->ino, (uint64_t)off_in, len);

	if (!rc)
		rc = recall(fs, ho->ino, (uint64_t)off_out, len);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	killpriv_on_write(fs, req, ho->ino);
	n = copy_file_range(hi->fd, &off_in, ho->fd, &off_out, len, (unsigned)flags);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	note_write(fs, ho->ino, (uint64_t)off_out);
	fuse_reply_write(req, (size_t)n);
}

/* ---- namespace changes ---- */

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs *fs = req_fs(req);
	struct inode *i, *p;
	uint64_t existing;
	int64_t now = now_ns();
	int rc = check_name(newname);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	rc = iget(fs, ino, &i);
	if (!rc)
		rc = iget(fs, newparent, &p);
	if (rc)
		goto out;
	if (S_ISDIR(i->a.mode)) {
		rc = -EPERM;
		goto out;
	}
	rc = meta_lookup(fs->meta, newparent, newname, strlen(newname), &existing, NULL);
	if (rc != -ENOENT) {
		rc = rc ? rc : -EEXIST;
		goto out;
	}
	rc = meta_begin(fs->meta);
	if (rc)
		goto out;
	i->a.nlink++;
	i->a.ctime = now;
	rc = meta_dentry_insert(fs->meta, newparent, newname, strlen(newname), ino, i->a.mode);
	if (!rc)
		rc = iwrite(fs, i);
	if (!rc)
		rc = place(fs, ino); /* as private as its most private name */
	if (!rc)
		rc = commit_op(fs);
	else
		meta_rollback(fs->meta);
	if (rc) {
		i->a.nlink--;
		goto out;
	}
	p->a.mtime = p->a.ctime = now;
	mark_dirty(fs, p);
	reply_entry_locked(req, fs, i, 0);
out:
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		fuse_reply_err(req, -rc);
}

/*
 * Remove the entry parent/name inside the caller's transaction; the inode
 * loses a link (a directory all of them). The inode itself is deleted when
 * the kernel forgets it (see iput_maybe), so open files stay readable.
 */
static int remove_entry(struct fs *fs, struct inode *p, const char *name, struct inode *victim,
			int64_t now)
{
	int rc = meta_dentry_delete(fs->meta, p->ino, name, strlen(name));

	if (rc)
		return rc;
	if (S_ISDIR(victim->a.mode)) {
		victim->a.nlink = 0;
		p->a.nlink--;
	} else {
		victim->a.nlink--;
	}
	victim->a.ctime = now;
	rc = iwrite(fs, victim);
	if (!rc && S_ISDIR(victim->a.mode))
		rc = iwrite(fs, p);
	return rc;
}

static int do_remove_locked(struct fs *fs, fuse_ino_t parent, const char *name, int dir);

static void do_remove(fuse_req_t req, fuse_ino_t parent, const char *name, int dir)
{
	struct fs *fs = req_fs(req);
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = do_remove_locked(fs, parent, name, dir);
	/* Removing is how a full disk gets space back: it must commit. */
	if (rc == -ENOSPC && meta_release_reserve(fs->meta))
		rc = do_remove_locked(fs, parent, name, dir);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

static int do_remove_locked(struct fs *fs, fuse_ino_t parent, const char *name, int dir)
{
	struct meta_attr p_saved, v_saved;
	struct inode *p, *v;
	uint64_t ino;
	int64_t now = now_ns();
	int rc;

	rc = iget(fs, parent, &p);
	if (!rc)
		rc = meta_lookup(fs->meta, parent, name, strlen(name), &ino, NULL);
	if (!rc)
		rc = iget(fs, ino, &v);
	if (rc)
		goto out;
	if (dir && !S_ISDIR(v->a.mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	if (!dir && S_ISDIR(v->a.mode)) {
		rc = -EISDIR;
		goto out;
	}
	if (dir) {
		rc = meta_dir_empty(fs->meta, ino);
		if (rc <= 0) {
			rc = rc ? rc : -ENOTEMPTY;
			goto out;
		}
	}
	p_saved = p->a;
	v_saved = v->a;
	rc = meta_begin(fs->meta);
	if (rc)
		goto out;
	rc = remove_entry(fs, p, name, v, now);
	/* A file with other names is as private as those names make it. */
	if (!rc && v->a.nlink && !S_ISDIR(v->a.mode))
		rc = place(fs, v->ino);
	if (!rc)
		rc = commit_op(fs);
	else
		meta_rollback(fs->meta);
	if (rc) {
		p->a = p_saved;
		v->a = v_saved;
		goto out;
	}
	p->a.mtime = p->a.ctime = now;
	mark_dirty(fs, p);
	iput_maybe(fs, v);
out:
	return rc;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_remove(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_remove(req, parent, name, 1);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs *fs = req_fs(req);
	struct inode *p, *np, *src, *dst = NULL;
	struct meta_attr sp, snp, ssrc, sdst;
	uint64_t sino, dino;
	int64_t now = now_ns();
	int rc = check_name(newname);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	rc = iget(fs, parent, &p);
	if (!rc)
		rc = iget(fs, newparent, &np);
	if (!rc)
		rc = meta_lookup(fs->meta, parent, name, strlen(name), &sino, NULL);
	if (!rc)
		rc = iget(fs, sino, &src);
	if (rc)
		goto out;
	rc = meta_lookup(fs->meta, newparent, newname, strlen(newname), &dino, NULL);
	if (rc == 0) {
		rc = iget(fs, dino, &dst);
		if (rc)
			goto out;
	} else if (rc != -ENOENT) {
		goto out;
	}
	rc = 0;
	if (dst == src && !(flags & RENAME_EXCHANGE)) {
		/* Same inode under both names: POSIX says do nothing. */
		if (flags & RENAME_NOREPLACE)
			rc = -EEXIST;
		goto out;
	}
	if ((flags & RENAME_NOREPLACE) && dst) {
		rc = -EEXIST;
		goto out;
	}
	if ((flags & RENAME_EXCHANGE) && !dst) {
		rc = -ENOENT;
		goto out;
	}
	if (dst && !(flags & RENAME_EXCHANGE)) {
		if (S_ISDIR(src->a.mode) && !S_ISDIR(dst->a.mode)) {
			rc = -ENOTDIR;
			goto out;
		}
		if (!S_ISDIR(src->a.mode) && S_ISDIR(dst->a.mode)) {
			rc = -EISDIR;
			goto out;
		}
		if (S_ISDIR(dst->a.mode)) {
			rc = meta_dir_empty(fs->meta, dst->ino);
			if (rc <= 0) {
				rc = rc ? rc : -ENOTEMPTY;
				goto out;
			}
			rc = 0;
		}
	}
	sp = p->a;
	snp = np->a;
	ssrc = src->a;
	if (dst)
		sdst = dst->a;
	rc = meta_begin(fs->meta);
	if (rc)
		goto out;
	if (flags & RENAME_EXCHANGE) {
		rc = meta_dentry_set_ino(fs->meta, parent, name, strlen(name), dst->ino, dst->a.mode);
		if (!rc)
			rc = meta_dentry_set_ino(fs->meta, newparent, newname, strlen(newname),
						 src->ino, src->a.mode);
		if (!rc && p != np && S_ISDIR(src->a.mode) != S_ISDIR(dst->a.mode)) {
			/* A directory changes parent: move one ".." link. */
			if (S_ISDIR(src->a.mode)) {
				p->a.nlink--;
				np->a.nlink++;
			} else {
				p->a.nlink++;
				np->a.nlink--;
			}
		}
		dst->a.ctime = now;
		if (!rc)
			rc = iwrite(fs, dst);
	} else {
		if (dst) {
			rc = remove_entry(fs, np, newname, dst, now);
			if (!rc && dst->a.nlink && !S_ISDIR(dst->a.mode))
				rc = place(fs, dst->ino);
		}
		if (!rc)
			rc = meta_dentry_delete(fs->meta, parent, name, strlen(name));
		if (!rc)
			rc = meta_dentry_insert(fs->meta, newparent, newname, strlen(newname),
						src->ino, src->a.mode);
		if (!rc && S_ISDIR(src->a.mode) && p != np) {
			p->a.nlink--;
			np->a.nlink++;
		}
	}
	src->a.ctime = now;
	p->a.mtime = p->a.ctime = now;
	np->a.mtime = np->a.ctime = now;
	if (!rc)
		rc = iwrite(fs, src);
	if (!rc)
		rc = iwrite(fs, p);
	if (!rc && np != p)
		rc = iwrite(fs, np);
	/* Names changed: placements follow in the same commit, so a file moved
	 * into a private directory is private the moment the rename returns. */
	if (!rc)
		rc = S_ISDIR(src->a.mode) ? placement_apply_tree(fs->meta, &fs->ps, src->ino, now) : place(fs, src->ino);
	if (rc > 0)
		rc = 0;
	if (!rc && dst && (flags & RENAME_EXCHANGE))
		rc = S_ISDIR(dst->a.mode) ? placement_apply_tree(fs->meta, &fs->ps, dst->ino, now) : place(fs, dst->ino);
	if (rc > 0)
		rc = 0;
	if (!rc)
		rc = commit_op(fs);
	else
		meta_rollback(fs->meta);
	if (rc) {
		p->a = sp;
		np->a = snp;
		src->a = ssrc;
		if (dst)
			dst->a = sdst;
		goto out;
	}
	if (S_ISDIR(src->a.mode))
		src->parent = newparent;
	if (dst && (flags & RENAME_EXCHANGE) && S_ISDIR(dst->a.mode))
		dst->parent = parent;
	if (dst && !(flags & RENAME_EXCHANGE))
		iput_maybe(fs, dst);
out:
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

/* ---- directories ---- */

struct rd_ctx {
	fuse_req_t req;
	char *buf;
	size_t size, used;
};

static int rd_add(void *arg, const char *name, size_t len, uint64_t ino, uint32_t mode,
		  uint64_t cookie)
{
	struct rd_ctx *c = arg;
	struct stat st;
	char nm[NAME_MAX_BYTES + 1];
	size_t need;

	if (len > NAME_MAX_BYTES)
		len = NAME_MAX_BYTES;
	memcpy(nm, name, len);
	nm[len] = '\0';
	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = mode;
	need = fuse_add_direntry(c->req, c->buf + c->used, c->size - c->used, nm, &st, (off_t)cookie);
	if (need > c->size - c->used)
		return 1;
	c->used += need;
	return 0;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct rd_ctx c = { req, NULL, size, 0 };
	struct inode *d;
	int rc;

	c.buf = malloc(size);
	if (!c.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	rc = iget(fs, ino, &d);
	if (rc)
		goto out;
	if (!S_ISDIR(d->a.mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	if (off < 1 && rd_add(&c, ".", 1, ino, S_IFDIR, 1))
		goto out;
	if (off < 2 && rd_add(&c, "..", 2, ino == META_ROOT_INO || !d->parent ? ino : d->parent,
			      S_IFDIR, 2))
		goto out;
	rc = meta_readdir(fs->meta, ino, off < 2 ? 2 : (uint64_t)off, rd_add, &c);
out:
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, c.buf, c.used);
	free(c.buf);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct statvfs sv;

	if (fstatvfs(fs->datafd, &sv)) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = NAME_MAX_BYTES;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes ---- */

static int xattr_name_ok(const char *name)
{
	/* The namespaces a local filesystem stores; ACLs (system.*) would need
	 * kernel support we do not negotiate. */
	if (strncmp(name, "user.", 5) && strncmp(name, "trusted.", 8) &&
	    strncmp(name, "security.", 9))
		return -EOPNOTSUPP;
	if (strlen(name) > XATTR_NAME_MAX)
		return -ERANGE;
	return 0;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct fs *fs = req_fs(req);
	struct inode *i;
	int rc = xattr_name_ok(name);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (size > XATTR_SIZE_MAX) {
		fuse_reply_err(req, E2BIG);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	rc = iget(fs, ino, &i);
	if (!rc)
		rc = meta_begin(fs->meta);
	if (rc)
		goto out;
	rc = meta_xattr_set(fs->meta, ino, name, value, size, flags);
	if (!rc) {
		i->a.ctime = now_ns();
		rc = iwrite(fs, i);
	}
	if (!rc)
		rc = place(fs, ino); /* tag rules */
	if (!rc)
		rc = commit_op(fs);
	else
		meta_rollback(fs->meta);
	if (!rc && !strcmp(name, "security.capability"))
		fs->ncapxattr++;
out:
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

static void reply_xattr_buf(fuse_req_t req, struct tbuf *b, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, b->len);
	else if (b->len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, (const char *)b->data, b->len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = req_fs(req);
	struct tbuf b = TBUF_INIT;
	int rc;

	pthread_mutex_lock(&fs->lock);
	/* The kernel asks for security.capability before every write; answer
	 * from memory while no file in the volume has one. */
	if (fs->ncapxattr == 0 && !strcmp(name, "security.capability"))
		rc = -ENODATA;
	else
		rc = meta_xattr_get(fs->meta, ino, name, &b);
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_xattr_buf(req, &b, size);
	tbuf_release(&b);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = req_fs(req);
	struct tbuf b = TBUF_INIT;
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = meta_xattr_list(fs->meta, ino, &b);
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_xattr_buf(req, &b, size);
	tbuf_release(&b);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs *fs = req_fs(req);
	struct inode *i;
	int rc = xattr_name_ok(name);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	rc = iget(fs, ino, &i);
	if (!rc)
		rc = meta_begin(fs->meta);
	if (rc)
		goto out;
	rc = meta_xattr_remove(fs->meta, ino, name);
	if (!rc) {
		i->a.ctime = now_ns();
		rc = iwrite(fs, i);
	}
	if (!rc)
		rc = place(fs, ino);
	if (!rc)
		rc = commit_op(fs);
	else
		meta_rollback(fs->meta);
out:
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

/* The read-ahead the home mount asks for: -o readahead_kb, else that of
 * the disk holding the volume (bounded to 128..8192 KiB). */
static unsigned home_readahead_kb(struct fs *fs)
{
	struct stat dst;
	unsigned kb = fs->opts.readahead_kb;
	char path[96];
	FILE *f;

	if (kb || fstat(fs->datafd, &dst))
		return kb;
	/* a whole disk has bdi/, a partition's is its disk's: ../bdi/ */
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/bdi/read_ahead_kb", major(dst.st_dev),
		 minor(dst.st_dev));
	f = fopen(path, "re");
	if (!f) {
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../bdi/read_ahead_kb",
			 major(dst.st_dev), minor(dst.st_dev));
		f = fopen(path, "re");
	}
	if (f) {
		if (fscanf(f, "%u", &kb) != 1)
			kb = 0;
		fclose(f);
	}
	return kb < 128 ? 128 : kb > 8192 ? 8192 : kb;
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write_buf = op_write_buf,
	.release = op_release,
	.fsync = op_fsync,
	.readdir = op_readdir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.create = op_create,
	.fallocate = op_fallocate,
	.copy_file_range = op_copy_file_range,
};

/* ---- recovery, flusher, lifecycle ---- */

int fs_recover(struct volume *v)
{
	sqlite3 *db = meta_db(v->meta);
	sqlite3_stmt *s = NULL;
	int repairs = 0, rc;

	rc = meta_begin(v->meta);
	if (rc)
		return rc;
	/* Inodes unlinked while open when the mount died. */
	if (sqlite3_prepare_v2(db, "SELECT ino, mode FROM inode WHERE nlink=0 AND ino<>1", -1, &s,
			       NULL) != SQLITE_OK)
		goto sqlfail;
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(s, 0);

		if (S_ISREG((mode_t)sqlite3_column_int64(s, 1))) {
			char name[VOLUME_DATA_NAME_MAX];

			volume_data_name(ino, name);
			unlinkat(v->datafd, name, 0);
		}
		repairs++;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_exec(db, "DELETE FROM xattr WHERE ino IN (SELECT ino FROM inode WHERE nlink=0 AND ino<>1);"
			 "DELETE FROM inode WHERE nlink=0 AND ino<>1", NULL, NULL, NULL) != SQLITE_OK)
		goto sqlfail;
	/* Sizes written through the data path but not yet flushed; block
	 * counts recorded before the last writes (a cache: not counted). */
	if (sqlite3_prepare_v2(db, "SELECT ino, size, blocks FROM inode WHERE (mode & 61440) = 32768",
			       -1, &s, NULL) != SQLITE_OK)
		goto sqlfail;
	{
		sqlite3_stmt *u = NULL;

		if (sqlite3_prepare_v2(db, "UPDATE inode SET size=?2, blocks=?3 WHERE ino=?1", -1, &u,
				       NULL) != SQLITE_OK)
			goto sqlfail;
		while (sqlite3_step(s) == SQLITE_ROW) {
			uint64_t ino = (uint64_t)sqlite3_column_int64(s, 0);
			uint64_t size = (uint64_t)sqlite3_column_int64(s, 1);
			int64_t blocks = sqlite3_column_int64(s, 2);
			char name[VOLUME_DATA_NAME_MAX];
			struct stat st;

			volume_data_name(ino, name);
			if (fstatat(v->datafd, name, &st, 0) == 0 &&
			    ((uint64_t)st.st_size != size || (int64_t)st.st_blocks != blocks)) {
				sqlite3_bind_int64(u, 1, (int64_t)ino);
				sqlite3_bind_int64(u, 2, st.st_size);
				sqlite3_bind_int64(u, 3, (int64_t)st.st_blocks);
				sqlite3_step(u);
				sqlite3_reset(u);
				if ((uint64_t)st.st_size != size)
					repairs++;
			}
		}
		sqlite3_finalize(u);
	}
	sqlite3_finalize(s);
	rc = meta_commit(v->meta, 1);
	if (rc)
		return rc;
	/* Data files of creates that never committed. */
	rc = fsck_remove_stray_data(v);
	return rc < 0 ? rc : repairs + rc;
sqlfail:
	log_error("recovery: %s", sqlite3_errmsg(db));
	sqlite3_finalize(s);
	meta_rollback(v->meta);
	return -EIO;
}

/*
 * Follow the rules (with fs->lock held): reload them when the CLI changed
 * them (policy_version), re-evaluate every file in short transactions, and
 * re-evaluate the files whose next_eval has come.
 */
static void policy_tick(struct fs *fs)
{
	int64_t v = policy_version(fs->meta);
	int rc = 0, done = 0;
	char err[512];

	if (v != fs->ps.version) {
		struct policy_set ps;

		rc = policy_set_load(fs->meta, &ps, err, sizeof(err));
		if (rc) {
			log_error("cannot load the placement rules: %s", err);
			fs->ps.version = v; /* keep the old rules; say it once */
			return;
		}
		policy_set_release(&fs->ps);
		fs->ps = ps;
		fs->eval_all = 1;
		fs->eval_cursor = 0;
		log_info("placement rules changed (version %lld): re-evaluating", (long long)v);
	}
	while (fs->eval_all && !fs->stopping) {
		rc = meta_begin(fs->meta);
		if (!rc) {
			rc = placement_apply_batch(fs->meta, &fs->ps, &fs->eval_cursor, 2000, now_ns(), &done);
			if (rc >= 0)
				rc = meta_commit(fs->meta, 0);
			else
				meta_rollback(fs->meta);
		}
		if (rc < 0) {
			log_error("placement re-evaluation: %s", strerror(-rc));
			return;
		}
		if (done)
			fs->eval_all = 0;
		/* let requests in between batches */
		pthread_mutex_unlock(&fs->lock);
		pthread_mutex_lock(&fs->lock);
	}
	rc = meta_begin(fs->meta);
	if (!rc) {
		rc = placement_apply_due(fs->meta, &fs->ps, now_ns(), 10000);
		if (rc >= 0)
			rc = meta_commit(fs->meta, 0);
		else
			meta_rollback(fs->meta);
	}
	if (rc < 0)
		log_error("age-based placement: %s", strerror(-rc));
}

/* The flusher commits open batches at their age limit and, once a second,
 * writes dirty attributes, reaps unlinked inodes and runs the policy. */
static void *flusher_main(void *arg)
{
	struct fs *fs = arg;
	const int64_t batch_ns = (int64_t)fs->opts.commit_ms * 1000000;
	int64_t next_tick = (int64_t)now_mono_ns() + 1000000000;

	pthread_mutex_lock(&fs->lock);
	while (!fs->stopping) {
		int64_t age = meta_batch_age_ns(fs->meta);
		int64_t now = (int64_t)now_mono_ns();
		int64_t wake = next_tick;
		struct timespec ts;
		int rc;

		if (age >= batch_ns) {
			if (meta_batch_commit(fs->meta))
				log_error("cannot commit metadata changes");
			age = -1;
		}
		if (age >= 0 && now + (batch_ns - age) < wake)
			wake = now + (batch_ns - age);
		if (now < wake) {
			ts.tv_sec = wake / 1000000000;
			ts.tv_nsec = wake % 1000000000;
			pthread_cond_timedwait(&fs->flusher_cv, &fs->lock, &ts);
			continue;
		}
		next_tick = now + 1000000000;
		rc = flush_dirty(fs, 0);
		if (!rc)
			rc = reap_inodes(fs);
		if (rc)
			log_error("cannot write attributes to the metadata store: %s", strerror(-rc));
		policy_tick(fs);
		if (fs->sync)
			sync_status_tick(fs->sync);
		/* the reserve comes back once there is room again */
		if (++fs->ticks % 10 == 0)
			meta_reserve(fs->meta, fs->vol->dirfd, 8u << 20);
	}
	pthread_mutex_unlock(&fs->lock);
	return NULL;
}

/* ---- the sync engine's view of the mount (called with fs->lock held) ---- */

static void host_lock(void *arg)
{
	pthread_mutex_lock(&((struct fs *)arg)->lock);
}

static void host_unlock(void *arg)
{
	pthread_mutex_unlock(&((struct fs *)arg)->lock);
}

static uint64_t host_data_gen(void *arg, uint64_t ino)
{
	struct inode *i = itab_find(arg, ino);

	if (i)
		pt_refresh(arg, i); /* written in passthrough since last looked at? */
	return i ? i->gen : 0;
}

static int host_flush(void *arg)
{
	return flush_dirty(arg, 0);
}

static int host_busy(void *arg, uint64_t ino)
{
	struct inode *i = itab_find(arg, ino);

	return i && i->nopen > 0;
}

static void host_set_remote(void *arg, uint64_t ino, int remote)
{
	struct inode *i = itab_find(arg, ino);

	if (i)
		__atomic_store_n(&i->remote, remote, __ATOMIC_RELEASE);
}

void fs_opts_default(struct fs_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->attr_timeout = 3600;
	o->entry_timeout = 3600;
	o->writeback_cache = 1;
	o->passthrough = 1;
	o->uring = 1;
	o->commit_ms = 10;
}

/* FUSE_DEV_IOC_BACKING_OPEN needs CAP_SYS_ADMIN, and a data file on a
 * stacked file system (overlayfs, ecryptfs, another FUSE mount) is refused
 * for its stacking depth; asking for passthrough there would only turn
 * write-back caching off. */
static int passthrough_possible(struct fs *fs)
{
	struct statfs sf;

	if (geteuid() != 0) {
		log_info("passthrough: not root, not asked for");
		return 0;
	}
	if (fstatfs(fs->datafd, &sf) == 0 &&
	    (sf.f_type == 0x794c7630 /* overlayfs */ || sf.f_type == 0xf15f /* ecryptfs */ ||
	     sf.f_type == 0x65735546 /* fuse */)) {
		log_info("passthrough: the data files are on a stacked file system, not asked for");
		return 0;
	}
	return 1;
}

/* An I/O error rolled back a batch the kernel was told had happened: the
 * mount's view and the store now differ. Stop serving, as after a crash;
 * the next mount recovers from what was committed. */
static void batch_lost(void *arg, unsigned ops)
{
	struct fs *fs = arg;

	log_error("stopping the mount: %u acknowledged changes were lost with the metadata write;"
		  " remount to recover", ops);
	fs->meta_lost = 1;
	if (fs->se)
		fuse_session_exit(fs->se);
}

static int set_clean(struct meta *m, int clean)
{
	int rc = meta_begin(m);

	if (!rc)
		rc = meta_config_set(m, "clean", clean ? "1" : "0");
	if (!rc)
		rc = meta_commit(m, 1);
	else
		meta_rollback(m);
	return rc;
}

/* A scrape of -o metrics: the metadata store under the mount's lock. */
static int render_metrics(void *arg, struct tbuf *out)
{
	struct fs *fs = arg;
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = metrics_render(fs->meta, out);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

int fs_run(struct volume *vol, const char *mountpoint, const struct fs_opts *o,
	   void (*ready)(void *arg), void *arg, char *err, size_t errlen)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	struct meta_attr root;
	char *clean = NULL, fsname[4200];
	int rc, mounted = 0, flusher = 0, spare = 0, spare_rc = 0;

	if (!fs)
		return -ENOMEM;
	fs->vol = vol;
	fs->meta = vol->meta;
	fs->opts = *o;
	fs->datafd = vol->datafd;
	pthread_mutex_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->spare_lock, NULL);
	pthread_cond_init(&fs->spare_cv, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&fs->flusher_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	fs->hsize = 4096;
	fs->htab = calloc(fs->hsize, sizeof(*fs->htab));
	if (!fs->htab) {
		rc = -ENOMEM;
		goto out;
	}
	/* Everything that can refuse the mount comes before the volume is
	 * marked in use: a refused mount leaves it as it was. */
	{
		struct sync_host h = { fs, host_lock, host_unlock, host_data_gen, host_busy,
				       host_set_remote, host_flush };
		struct sync_opts so;
		char serr[1024];

		memset(&so, 0, sizeof(so));
		so.interval_s = o->sync_interval_s;
		so.recall_timeout_s = o->recall_timeout_s;
		so.gc_grace_s = o->gc_grace_s;
		so.publish_interval_s = o->publish_interval_s;
		rc = sync_open(vol, &h, &so, &fs->sync, serr, sizeof(serr));
		if (rc) {
			snprintf(err, errlen, "%s", serr);
			goto out;
		}
	}
	if (o->metrics) {
		rc = metrics_serve(o->metrics, render_metrics, fs, &fs->metrics, err, errlen);
		if (rc)
			goto out;
	}
	if (meta_config_get(fs->meta, "clean", &clean) || strcmp(clean, "1")) {
		rc = fs_recover(vol);
		if (rc < 0) {
			snprintf(err, errlen, "cannot recover volume '%s': %s", vol->dir, strerror(-rc));
			goto out;
		}
		log_warn("volume '%s' was not unmounted cleanly; recovered (%d repairs)", vol->dir, rc);
	}
	/* room for metadata when the disk fills up (logged, not fatal) */
	if (meta_reserve(fs->meta, vol->dirfd, 8u << 20))
		log_warn("no room for the metadata reserve in '%s'", vol->dir);
	rc = set_clean(fs->meta, 0);
	if (rc) {
		snprintf(err, errlen, "cannot write to metadata store of '%s': %s", vol->dir, strerror(-rc));
		goto out;
	}
	rc = policy_set_load(fs->meta, &fs->ps, err, errlen);
	if (rc)
		goto out;
	fs->next_ino = meta_max_ino(fs->meta) + 1;
	if (o->commit_ms)
		meta_set_batch(fs->meta, 256, batch_lost, fs);
	fs->ncapxattr = meta_xattr_count_name(fs->meta, "security.capability");
	rc = meta_inode_get(fs->meta, META_ROOT_INO, &root);
	if (rc || !itab_add(fs, &root)) {
		snprintf(err, errlen, "metadata store of '%s' has no root directory", vol->dir);
		rc = -EUCLEAN;
		goto out;
	}
	snprintf(fsname, sizeof(fsname), "-ofsname=%s,subtype=tierfs,allow_other,default_permissions",
		 vol->dir);
	if (fuse_opt_add_arg(&args, "tierfs") || fuse_opt_add_arg(&args, fsname) ||
	    (o->fuse_opts && *o->fuse_opts && (fuse_opt_add_arg(&args, "-o") ||
					       fuse_opt_add_arg(&args, o->fuse_opts))) ||
	    (o->debug && fuse_opt_add_arg(&args, "-d"))) {
		rc = -ENOMEM;
		goto out;
	}
	fs->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), fs);
	if (!fs->se) {
		snprintf(err, errlen, "cannot start FUSE session (bad mount options?)");
		rc = -EINVAL;
		goto out;
	}
	if (fuse_set_signal_handlers(fs->se)) {
		snprintf(err, errlen, "cannot install signal handlers");
		rc = -EIO;
		goto out;
	}
	if (fuse_session_mount(fs->se, mountpoint)) {
		snprintf(err, errlen, "cannot mount on '%s'", mountpoint);
		rc = -EIO;
		goto out;
	}
	mounted = 1;
	fs->io.want = 1;
	fs->io.pt_want = o->passthrough && passthrough_possible(fs);
	fs->io.uring_want = o->uring;
	fs->io.mountpoint = mountpoint;
	fs->io.readahead_kb = home_readahead_kb(fs);
	if (fuse_io_attach(fs->se, &fs->io)) {
		snprintf(err, errlen, "cannot set up the FUSE transport");
		rc = -EIO;
		goto out;
	}
	if (pthread_create(&fs->flusher, NULL, flusher_main, fs) == 0)
		flusher = 1;
	if (pthread_create(&fs->spare_thread, NULL, spare_main, fs) == 0)
		spare = 1;
	if (fs->sync && sync_start(fs->sync))
		log_error("cannot start the sync engine threads");
	if (fs->sync) {
		/* the importer of the nodes' outboxes: writes through this mount */
		struct import_host ih = { fs, host_lock, host_unlock };
		struct import_opts io = { o->sync_interval_s, o->outbox_grace_s };

		if (import_open(vol, sync_volkey(fs->sync), &ih, mountpoint, &io, &fs->import) ||
		    import_start(fs->import))
			log_error("cannot start the importer of the cloud nodes' outboxes");
	}
	if (ready)
		ready(arg);
	lc = fuse_loop_cfg_create();
	if (!lc) {
		rc = -ENOMEM;
		goto out;
	}
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_max_threads(lc, o->max_threads ? o->max_threads : 16);
	fuse_loop_cfg_set_idle_threads(lc, 8);
	rc = fuse_session_loop_mt(fs->se, lc);
	if (rc < 0)
		log_error("FUSE session ended with an error: %s", strerror(-rc));
	rc = 0;
	if (o->stopping)
		o->stopping(arg);
	fuse_io_detach(&fs->io); /* no request is served after this */
out:
	/* The importer may wait on this mount: stop it now, join it once the
	 * mount is gone and its calls fail. */
	import_stop(fs->import);
	metrics_stop(fs->metrics); /* no scrape reads the store after this */
	fs->metrics = NULL;
	if (fs->sync) {
		struct sync *sy = fs->sync;

		pthread_mutex_lock(&fs->lock);
		fs->sync = NULL; /* the flusher stops using it */
		pthread_mutex_unlock(&fs->lock);
		sync_close(sy); /* cancels transfers in flight; they stay queued */
	}
	if (flusher) {
		pthread_mutex_lock(&fs->lock);
		fs->stopping = 1;
		pthread_cond_signal(&fs->flusher_cv);
		pthread_mutex_unlock(&fs->lock);
		pthread_join(fs->flusher, NULL);
	}
	spare_rc = spare_stop(fs, spare);
	if (spare_rc)
		log_error("cannot remove spare data files: %s", strerror(-spare_rc));
	if (mounted)
		fuse_session_unmount(fs->se);
	import_close(fs->import); /* its calls on the mount fail now */
	fs->import = NULL;
	if (fs->se) {
		struct fuse_session *se = fs->se;

		fuse_io_detach(&fs->io);
		fuse_remove_signal_handlers(se);
		pthread_mutex_lock(&fs->lock);
		fs->se = NULL; /* batch_lost() must not reach it any more */
		pthread_mutex_unlock(&fs->lock);
		fuse_session_destroy(se);
	}
	fuse_loop_cfg_destroy(lc);
	if (mounted) {
		/* Write what is pending; forget every inode (deleting the
		 * unlinked ones); mark the volume clean. */
		int frc, pt_open = 0;

		pthread_mutex_lock(&fs->lock);
		frc = flush_dirty(fs, 0);
		pt_open = fs->ptlist != NULL;
		for (size_t s = 0; s < fs->hsize && !frc; s++) {
			while (fs->htab[s]) {
				struct inode *i = fs->htab[s];

				i->nlookup = 0;
				i->nopen = 0;
				if (i->ino == META_ROOT_INO) {
					itab_remove(fs, i);
					continue;
				}
				iput_maybe(fs, i);
				if (fs->htab[s] == i) /* could not be written */
					itab_remove(fs, i);
			}
		}
		if (!frc)
			frc = reap_inodes(fs);
		pthread_mutex_unlock(&fs->lock);
		if (!frc && fs->meta_lost)
			frc = -EIO;
		if (!frc)
			frc = spare_rc;
		/* Files still open in passthrough (no RELEASE came: the daemon
		 * was stopped) may be written after we are gone: the next mount
		 * takes sizes from the data files. */
		if (!frc && pt_open) {
			log_warn("files still open in passthrough at unmount: the next mount rechecks sizes");
		} else {
			if (!frc)
				frc = set_clean(fs->meta, 1);
			if (frc) {
				log_error("unmount of '%s' could not write all metadata: %s; fsck will repair",
					  vol->dir, strerror(-frc));
				/* the daemon's exit status says so (tierfs umount) */
				snprintf(err, errlen, "the daemon of '%s' could not write all metadata at unmount: %s;"
					 " 'tierfs fsck' repairs it", vol->dir, strerror(-frc));
				if (!rc)
					rc = frc;
			}
		}
	}
	for (size_t s = 0; fs->htab && s < fs->hsize; s++)
		while (fs->htab[s])
			itab_remove(fs, fs->htab[s]);
	free(fs->htab);
	free(fs->reap);
	policy_set_release(&fs->ps);
	free(clean);
	fuse_opt_free_args(&args);
	meta_set_batch(fs->meta, 0, NULL, NULL);
	pthread_cond_destroy(&fs->flusher_cv);
	pthread_cond_destroy(&fs->spare_cv);
	pthread_mutex_destroy(&fs->spare_lock);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
	return rc;
}
