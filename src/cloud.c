/*
 * cloud.c - the cloud mount (interface in cloud.h): the libfuse low-level
 * operations of a read-only filesystem over published snapshots, the poll
 * thread that switches to newer snapshots, on-demand requests to home, and
 * the readahead workers. Chunks and metadata objects are cached by cache.c.
 *
 * DESIGN
 * - The current snapshot is one struct snap_root (cl->cur). Directory
 *   objects are immutable and named by content, so they are shared by every
 *   snapshot: they are decoded once, kept in memory (refcounted, the
 *   unreferenced ones on an LRU bounded by DIR_CACHE_MAX) and on disk.
 * - The kernel knows inodes by fid. Each known inode (struct cnode) holds
 *   its attributes, the snapshot seq they come from, and its path from the
 *   root. An inode whose seq is older than the current snapshot is brought
 *   up to date lazily on its next use by walking its path in the current
 *   snapshot (mostly in-memory directory lookups); if the path no longer
 *   leads to the same fid, the inode is gone (ENOENT). So a switch costs
 *   nothing up front and is atomic: every lookup after it sees only the new
 *   snapshot.
 * - An open file handle owns the decoded manifest of the version it opened:
 *   reads never look at the namespace again. Page cache coherence across
 *   versions: a handle opened while handles of another version are open
 *   uses direct I/O; otherwise the page cache is kept only when it holds
 *   this same version (keep_cache), and dropped at open when it does not.
 * - Locks: cl->lock protects cl->cur, the inode table and the directory
 *   cache; it is never held over store or disk I/O. cl->ra_lock protects
 *   the readahead queue; h->lock a handle's sequential-read state. Neither
 *   nests with cl->lock. cache.c has its own lock, taken with none of ours.
 * - Threads: libfuse's request threads (blocking store reads happen there,
 *   one at a time per request), one poll thread (head every poll seconds,
 *   the status file every second), and the readahead workers fed by a
 *   bounded queue (a full queue drops readahead, never blocks a read).
 */
#include "cloud.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cache.h"
#include "cloud_wb.h"
#include "codec.h"
#include "fuse_io.h"
#include "keys.h"
#include "log.h"
#include "outbox.h"
#include "policy.h"
#include "snapshot.h"
#include "store.h"
#include "util.h"

#define ROOT_INO 1
#define NS 1000000000ll
#define DTAB_SIZE 1024
#define DIR_CACHE_MAX 4096 /* unreferenced directory objects kept decoded */
#define RA_RING 256
#define TIMEOUT_S 1.0      /* kernel entry and attribute caching */

/* Attributes of one entry in one snapshot, with owned strings. */
struct ninfo {
	uint64_t ino, seq;
	uint8_t type, has_data;
	uint32_t mode, uid, gid;
	uint64_t size;
	int64_t mtime, ctime;
	char ref[CODEC_NAME_SIZE]; /* directories: object name */
	char *target;              /* symlinks */
	char *path;                /* "" for the root, else "a/b" */
	uint64_t wb_id;            /* an entry of the write-back overlay (cloud_wb.h), 0: snapshot */
};

/* An inode the kernel knows. All fields protected by cl->lock. */
struct cnode {
	struct ninfo i;
	uint64_t nlookup;
	uint64_t parent;
	/* page cache state: see DESIGN */
	int ncached;               /* open handles using the page cache */
	int64_t pc_mtime;          /* version in the page cache */
	uint64_t pc_size;
	int pc_valid;
	struct cnode *hnext;
};

/* A decoded directory object. refs and the LRU links: cl->lock. */
struct dobj {
	char name[CODEC_NAME_SIZE];
	struct snap_dir d;
	int refs, in_lru;
	struct dobj *hnext, *prev, *next;
};

struct fhandle {
	uint64_t ino;
	uint64_t size;
	int64_t mtime;
	struct snap_manifest m;
	uint64_t *offs; /* start of each chunk */
	char *path;
	int cached;     /* counted in the inode's ncached */
	pthread_mutex_t lock;
	uint64_t next_off;   /* h->lock: where a sequential read goes on */
	size_t ra_next;      /* h->lock: first chunk not yet sent to readahead */
	/* a file of the write-back overlay: its staged data file */
	int fd;              /* -1: read through the manifest */
	uint64_t wb_id;
	int wmode;           /* opened for writing (counted as a writer) */
	int wrote;
};

/* An open directory: the snapshot's listing, or the merged one when the overlay has entries. */
struct dent {
	char *name;
	uint64_t ino;
	uint8_t type;
};
struct dhandle {
	struct dobj *d;
	struct dent *v; /* merged listing, or NULL: d's entries */
	size_t n;
};

struct ra_job {
	char name[CODEC_NAME_SIZE];
	uint32_t len;
};

struct cloud {
	struct fuse_io io; /* first (fuse_io_attach): read-ahead */
	struct cloud_opts o;
	const char *mountpoint;
	struct volkey key;
	struct store *st;
	struct cache *cache;
	struct fuse_session *se;
	int64_t mounted_at;

	pthread_mutex_t lock;
	struct snap_root cur;        /* lock */
	int64_t switched_at;         /* lock */
	struct cnode **ntab;         /* lock */
	size_t nsize, ncount;
	struct dobj *dtab[DTAB_SIZE]; /* lock */
	struct dobj *dhead, *dtail;
	size_t dcached;
	int stopping;                /* lock */
	pthread_cond_t poll_cv;
	pthread_t poller;
	int64_t last_check;          /* lock: last successful head read (real ns) */
	char poll_err[512];          /* lock: last head read failure, "" when fine */

	pthread_mutex_t ra_lock;
	pthread_cond_t ra_cv;
	struct ra_job ring[RA_RING]; /* ra_lock */
	unsigned ra_head, ra_n;
	int ra_stop;
	pthread_t *ra_threads;
	int n_ra;

	atomic_int pending;          /* opens waiting for home to upload */
	atomic_ulong read_errors;

	/* write-back (a node key): NULL wb when the mount is read-only */
	struct wb *wb;
	struct node_key nkey;
	struct snap_wrules wr;       /* lock: where this node may write */
	char wr_name[CODEC_NAME_SIZE]; /* lock: the rules object wr came from */
	pthread_mutex_t cu_lock;     /* one copy of a home file into the overlay at a time */
};
_Static_assert(offsetof(struct cloud, io) == 0, "fuse_io_attach: userdata starts with its fuse_io");

static struct cloud *req_cl(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void ninfo_release(struct ninfo *i)
{
	free(i->target);
	free(i->path);
	i->target = i->path = NULL;
}

/* Copy src into dst (dst's strings are replaced). */
static int ninfo_copy(struct ninfo *dst, const struct ninfo *src)
{
	char *t = src->target ? strdup(src->target) : NULL;
	char *p = src->path ? strdup(src->path) : NULL;

	if ((src->target && !t) || (src->path && !p)) {
		free(t);
		free(p);
		return -ENOMEM;
	}
	ninfo_release(dst);
	*dst = *src;
	dst->target = t;
	dst->path = p;
	return 0;
}

static uint32_t type_bits(uint8_t type)
{
	return type == SNAP_DIR ? S_IFDIR : type == SNAP_SYMLINK ? S_IFLNK : S_IFREG;
}

/* Fill i from a directory entry (path not set). */
static int ninfo_from_entry(struct ninfo *i, const struct snap_entry *e, uint64_t seq)
{
	memset(i, 0, sizeof(*i));
	i->ino = e->fid;
	i->seq = seq;
	i->type = e->type;
	i->has_data = e->has_data;
	i->mode = (e->mode & 07777) | type_bits(e->type);
	i->uid = e->uid;
	i->gid = e->gid;
	i->size = e->size;
	i->mtime = e->mtime;
	i->ctime = e->ctime;
	if (e->type == SNAP_DIR) {
		if (strlen(e->ref) != CODEC_NAME_LEN)
			return -EIO;
		memcpy(i->ref, e->ref, CODEC_NAME_SIZE);
	} else if (e->type == SNAP_SYMLINK) {
		i->target = strdup(e->ref);
		if (!i->target)
			return -ENOMEM;
		i->size = strlen(e->ref);
	}
	return 0;
}

/* The root of a snapshot as an entry. */
static void ninfo_root(struct ninfo *i, const struct snap_root *r)
{
	memset(i, 0, sizeof(*i));
	i->ino = ROOT_INO;
	i->seq = r->seq;
	i->type = SNAP_DIR;
	i->mode = (r->root_mode & 07777) | S_IFDIR;
	i->uid = r->root_uid;
	i->gid = r->root_gid;
	i->size = 4096;
	i->mtime = i->ctime = r->root_mtime;
	memcpy(i->ref, r->root, CODEC_NAME_SIZE);
}

/* ---- inode table (cl->lock held) ---- */

static size_t nslot(struct cloud *cl, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (cl->nsize - 1);
}

static struct cnode *nfind(struct cloud *cl, uint64_t ino)
{
	for (struct cnode *n = cl->ntab[nslot(cl, ino)]; n; n = n->hnext)
		if (n->i.ino == ino)
			return n;
	return NULL;
}

static void ngrow(struct cloud *cl)
{
	size_t old = cl->nsize;
	struct cnode **o = cl->ntab, **t = calloc(old * 2, sizeof(*t));

	if (!t)
		return;
	cl->ntab = t;
	cl->nsize = old * 2;
	for (size_t s = 0; s < old; s++)
		for (struct cnode *n = o[s], *next; n; n = next) {
			size_t h = nslot(cl, n->i.ino);

			next = n->hnext;
			n->hnext = t[h];
			t[h] = n;
		}
	free(o);
}

static struct cnode *nadd(struct cloud *cl, uint64_t ino)
{
	struct cnode *n = calloc(1, sizeof(*n));
	size_t h;

	if (!n)
		return NULL;
	n->i.ino = ino;
	if (cl->ncount + 1 > cl->nsize)
		ngrow(cl);
	h = nslot(cl, ino);
	n->hnext = cl->ntab[h];
	cl->ntab[h] = n;
	cl->ncount++;
	return n;
}

static void nremove(struct cloud *cl, struct cnode *n)
{
	struct cnode **p = &cl->ntab[nslot(cl, n->i.ino)];

	while (*p && *p != n)
		p = &(*p)->hnext;
	if (*p)
		*p = n->hnext;
	cl->ncount--;
	ninfo_release(&n->i);
	free(n);
}

/* ---- directory objects ---- */

static struct dobj **dslot(struct cloud *cl, const char *name)
{
	uint64_t h = 0;

	for (int k = 0; k < 8; k++)
		h = (h << 4) | (uint64_t)(name[k] <= '9' ? name[k] - '0' : name[k] - 'a' + 10);
	return &cl->dtab[h & (DTAB_SIZE - 1)];
}

static void dlru_unlink(struct cloud *cl, struct dobj *d)
{
	if (!d->in_lru)
		return;
	if (d->prev)
		d->prev->next = d->next;
	else
		cl->dhead = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		cl->dtail = d->prev;
	d->prev = d->next = NULL;
	d->in_lru = 0;
	cl->dcached--;
}

static void dobj_free(struct dobj *d)
{
	snap_dir_release(&d->d);
	free(d);
}

static void dobj_put(struct cloud *cl, struct dobj *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&cl->lock);
	if (--d->refs == 0) {
		d->in_lru = 1;
		d->prev = NULL;
		d->next = cl->dhead;
		if (cl->dhead)
			cl->dhead->prev = d;
		cl->dhead = d;
		if (!cl->dtail)
			cl->dtail = d;
		cl->dcached++;
		while (cl->dcached > DIR_CACHE_MAX) {
			struct dobj *old = cl->dtail, **p = dslot(cl, old->name);

			dlru_unlink(cl, old);
			while (*p && *p != old)
				p = &(*p)->hnext;
			if (*p)
				*p = old->hnext;
			dobj_free(old);
		}
	}
	pthread_mutex_unlock(&cl->lock);
}

/* Fetch and decode a directory object: cache file, else the store. */
static int dir_load(struct cloud *cl, const char *name, struct snap_dir *out)
{
	struct tbuf b = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	int rc;

	snap_key_dir(name, key);
	if (cache_obj_load(cl->cache, key, &b) == 0) {
		rc = snap_dir_decode(&cl->key, name, b.data, b.len, out);
		if (!rc)
			goto out;
		log_warn("cached directory object '%s' is damaged (%s); fetching it again", key,
			 codec_errmsg());
		cache_obj_drop(cl->cache, key);
	}
	tbuf_reset(&b);
	rc = store_get(cl->st, key, 0, STORE_WHOLE, &b);
	if (rc) {
		log_error("cannot fetch directory object '%s': %s", key,
			  rc == -ENOENT ? "missing from the store" : store_errmsg());
		rc = -EIO;
		goto out;
	}
	rc = snap_dir_decode(&cl->key, name, b.data, b.len, out);
	if (rc) {
		log_error("directory object '%s' failed verification (tampered or damaged): %s", key,
			  codec_errmsg());
		rc = -EIO;
		goto out;
	}
	cache_obj_store(cl->cache, key, b.data, b.len);
out:
	tbuf_release(&b);
	return rc;
}

/* A referenced directory object; release with dobj_put(). */
static int dobj_get(struct cloud *cl, const char *name, struct dobj **out)
{
	struct dobj *d, *nd;
	int rc;

	pthread_mutex_lock(&cl->lock);
	for (d = *dslot(cl, name); d; d = d->hnext)
		if (!strcmp(d->name, name))
			break;
	if (d) {
		dlru_unlink(cl, d);
		d->refs++;
		pthread_mutex_unlock(&cl->lock);
		*out = d;
		return 0;
	}
	pthread_mutex_unlock(&cl->lock);
	nd = calloc(1, sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	memcpy(nd->name, name, CODEC_NAME_SIZE);
	rc = dir_load(cl, name, &nd->d);
	if (rc) {
		free(nd);
		return rc;
	}
	pthread_mutex_lock(&cl->lock);
	for (d = *dslot(cl, name); d; d = d->hnext)
		if (!strcmp(d->name, name))
			break;
	if (d) { /* loaded twice: keep the first */
		dlru_unlink(cl, d);
		dobj_free(nd);
	} else {
		d = nd;
		d->hnext = *dslot(cl, name);
		*dslot(cl, name) = d;
	}
	d->refs++;
	pthread_mutex_unlock(&cl->lock);
	*out = d;
	return 0;
}

/* ---- resolution against the current snapshot ---- */

/* Walk path ("" or "a/b") from the root of r into out. */
static int walk(struct cloud *cl, const struct snap_root *r, const char *path, struct ninfo *out)
{
	struct ninfo cur;
	char *p = strdup(path), *save = NULL;
	int rc = 0;

	ninfo_root(&cur, r);
	if (!p)
		return -ENOMEM;
	for (char *c = strtok_r(p, "/", &save); c && !rc; c = strtok_r(NULL, "/", &save)) {
		const struct snap_entry *e;
		struct dobj *d;

		if (cur.type != SNAP_DIR) {
			rc = -ENOENT;
			break;
		}
		rc = dobj_get(cl, cur.ref, &d);
		if (rc)
			break;
		e = snap_dir_find(&d->d, c);
		ninfo_release(&cur);
		if (e)
			rc = ninfo_from_entry(&cur, e, r->seq);
		else
			rc = -ENOENT;
		dobj_put(cl, d);
	}
	/* strtok_r cut p at every '/': the path is the caller's, whole */
	if (!rc && !(cur.path = strdup(path)))
		rc = -ENOMEM;
	if (!rc)
		*out = cur;
	else
		ninfo_release(&cur);
	free(p);
	return rc;
}

/* ---- the write-back overlay (cloud_wb.h) ---- */

/* Is the overlay in play (a node key, and entries in it)? */
static int wb_on(struct cloud *cl)
{
	return cl->wb && wb_count(cl->wb) > 0;
}

/* "/a/b" for the inode path "a/b" ("" is the root "/"); caller frees. */
static char *vpath_of_rel(const char *rel)
{
	char *v;

	return asprintf(&v, "/%s", rel ? rel : "") < 0 ? NULL : v;
}

/* "/a/b/name" for a child of the directory with inode path dir. */
static char *child_vpath(const char *dir, const char *name)
{
	char *v;

	return asprintf(&v, "%s%s/%s", *dir ? "/" : "", dir, name) < 0 ? NULL : v;
}

/* An overlay entry as an inode; a directory that home has too gets its listing's name. */
static int ninfo_from_wb(struct cloud *cl, struct ninfo *i, const struct wb_attr *a)
{
	struct snap_root r;

	memset(i, 0, sizeof(*i));
	pthread_mutex_lock(&cl->lock);
	r = cl->cur;
	pthread_mutex_unlock(&cl->lock);
	i->ino = a->ino;
	i->seq = r.seq;
	i->type = a->kind == WB_DIR ? SNAP_DIR : a->kind == WB_SYMLINK ? SNAP_SYMLINK : SNAP_FILE;
	i->has_data = 1;
	i->mode = (a->mode & 07777) | type_bits(i->type);
	i->uid = a->uid;
	i->gid = a->gid;
	i->size = a->size;
	i->mtime = a->mtime;
	i->ctime = a->ctime;
	i->wb_id = a->id;
	i->path = strdup(a->path + 1);
	i->target = a->target ? strdup(a->target) : NULL;
	if (!i->path || (a->target && !i->target)) {
		ninfo_release(i);
		return -ENOMEM;
	}
	if (a->kind == WB_DIR) {
		struct ninfo sn;

		if (walk(cl, &r, i->path, &sn) == 0) {
			if (sn.type == SNAP_DIR)
				memcpy(i->ref, sn.ref, CODEC_NAME_SIZE);
			ninfo_release(&sn);
		}
	}
	return 0;
}

/* The snapshot's entry at vpath "/a/b" (a copy), ignoring the overlay. */
static int snap_at(struct cloud *cl, const char *vp, struct ninfo *out)
{
	struct snap_root r;

	pthread_mutex_lock(&cl->lock);
	r = cl->cur;
	pthread_mutex_unlock(&cl->lock);
	return walk(cl, &r, vp + 1, out);
}

/* What is at vp now, overlay first: 0 with *out, -ENOENT. */
static int entry_at(struct cloud *cl, const char *vp, struct ninfo *out)
{
	struct wb_attr a;
	int rc;

	memset(out, 0, sizeof(*out));
	if (cl->wb && wb_get_path(cl->wb, vp, &a) == 0) {
		rc = a.kind == WB_GONE ? -ENOENT : ninfo_from_wb(cl, out, &a);
		wb_attr_release(&a);
		return rc;
	}
	return snap_at(cl, vp, out);
}

/* Where may this node write? file: a cloud-write rule matches vp; dir: or one may below it. */
static int may_write(struct cloud *cl, const char *vp, int dir)
{
	int ok = 0;

	if (!cl->wb)
		return 0;
	pthread_mutex_lock(&cl->lock);
	for (size_t k = 0; k < cl->wr.n && !ok; k++)
		ok = policy_glob_match(cl->wr.glob[k], vp) ||
		     (dir && policy_glob_match_prefix(cl->wr.glob[k], vp));
	pthread_mutex_unlock(&cl->lock);
	return ok;
}

static void wb_attr_of(const struct ninfo *i, struct wb_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = i->ino;
	a->mode = i->mode & 07777;
	a->uid = i->uid;
	a->gid = i->gid;
	a->size = i->size;
	a->mtime = i->mtime;
	a->ctime = i->ctime;
}

/*
 * The attributes of ino in the current snapshot (a copy the caller
 * releases). -ENOENT when the inode no longer exists there, -ESTALE when
 * the kernel names an inode we do not know.
 */
static int node_get(struct cloud *cl, uint64_t ino, struct ninfo *out)
{
	struct snap_root r;
	struct ninfo fresh;
	struct cnode *n;
	char *path;
	int rc;

	memset(out, 0, sizeof(*out));
	if (ino != ROOT_INO && wb_on(cl)) {
		struct wb_attr a;

		if (wb_get_ino(cl->wb, ino, &a) == 0) {
			rc = ninfo_from_wb(cl, out, &a);
			wb_attr_release(&a);
			return rc;
		}
	}
	pthread_mutex_lock(&cl->lock);
	if (ino == ROOT_INO) {
		ninfo_root(out, &cl->cur);
		pthread_mutex_unlock(&cl->lock);
		out->path = strdup("");
		return out->path ? 0 : -ENOMEM;
	}
	n = nfind(cl, ino);
	if (!n) {
		pthread_mutex_unlock(&cl->lock);
		return -ESTALE;
	}
	if (n->i.seq == cl->cur.seq) {
		rc = ninfo_copy(out, &n->i);
		pthread_mutex_unlock(&cl->lock);
		return rc;
	}
	r = cl->cur;
	path = strdup(n->i.path ? n->i.path : "");
	pthread_mutex_unlock(&cl->lock);
	if (!path)
		return -ENOMEM;
	rc = walk(cl, &r, path, &fresh);
	if (!rc && wb_on(cl)) {
		/* a name the overlay holds is not the snapshot's any more */
		char *vp = vpath_of_rel(path);
		struct wb_attr a;

		if (vp && wb_get_path(cl->wb, vp, &a) == 0) {
			rc = -ENOENT;
			ninfo_release(&fresh);
			wb_attr_release(&a);
		}
		free(vp);
	}
	free(path);
	if (rc)
		return rc;
	if (fresh.ino != ino) {
		ninfo_release(&fresh);
		return -ENOENT; /* the name now belongs to another file */
	}
	pthread_mutex_lock(&cl->lock);
	n = nfind(cl, ino);
	if (n && n->i.seq < fresh.seq) {
		/* keep the path the kernel knows it by */
		free(fresh.path);
		fresh.path = n->i.path;
		n->i.path = NULL;
		ninfo_release(&n->i);
		n->i = fresh;
		memset(&fresh, 0, sizeof(fresh));
	}
	rc = ninfo_copy(out, n ? &n->i : &fresh);
	pthread_mutex_unlock(&cl->lock);
	ninfo_release(&fresh);
	return rc;
}

static void ts_from_ns(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = ns / NS;
	ts->tv_nsec = ns % NS;
	if (ts->tv_nsec < 0) {
		ts->tv_nsec += NS;
		ts->tv_sec--;
	}
}

static void fill_stat(const struct ninfo *i, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = i->ino;
	st->st_mode = i->mode;
	st->st_nlink = i->type == SNAP_DIR ? 2 : 1;
	st->st_uid = i->uid;
	st->st_gid = i->gid;
	st->st_size = (off_t)(i->type == SNAP_DIR ? 4096 : i->size);
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
	ts_from_ns(&st->st_mtim, i->mtime);
	ts_from_ns(&st->st_atim, i->mtime);
	ts_from_ns(&st->st_ctim, i->ctime);
}

/* ---- store fetches ---- */

static int store_timeout_ms(const struct cloud *cl)
{
	int ms = cl->o.request_timeout_s * 1000 / 2;

	return ms < 2000 ? 2000 : ms > 30000 ? 30000 : ms;
}

/* cache.c's fetch function: one chunk object, decoded and verified. */
static int fetch_chunk(void *arg, const char *name, uint32_t len, struct tbuf *out)
{
	struct cloud *cl = arg;
	struct tbuf obj = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	int rc;

	snap_key_chunk(name, key);
	/* page-aligned and, for a full-size chunk, pooled (util.h) */
	if (tbuf_use_chunkbuf(&obj, (size_t)len + CODEC_OVERHEAD))
		return -ENOMEM;
	rc = store_get(cl->st, key, 0, STORE_WHOLE, &obj);
	if (rc) {
		log_error("cannot fetch chunk object '%s': %s", key,
			  rc == -ENOENT ? "missing from the store" : store_errmsg());
		rc = -EIO;
		goto out;
	}
	/*
	 * The plaintext goes into a page-aligned buffer of its final size, so
	 * the cache can write it to disk with O_DIRECT (cache.c). No
	 * CODEC_VERIFY_NAME: the name is the object's AAD, so AES-GCM already
	 * proves the bytes are what the volume's key holder stored under this
	 * name; hashing the plaintext again cost an eighth of a cold read's CPU.
	 * Cache files, plaintext at rest, are checked against their names.
	 */
	if (!out->cap && tbuf_use_chunkbuf(out, (size_t)len + 1)) {
		rc = -ENOMEM;
		goto out;
	}
	rc = codec_decode(&cl->key, obj.data, obj.len, name, 0, out);
	if (rc) {
		log_error("chunk object '%s' failed verification (tampered or damaged): %s", key,
			  codec_errmsg());
		rc = -EIO;
		goto out;
	}
	if (out->len != len) {
		log_error("chunk object '%s' holds %zu bytes, its manifest says %u", key, out->len, len);
		tbuf_reset(out);
		rc = -EIO;
	}
out:
	tbuf_release_chunkbuf(&obj);
	return rc;
}

/* Ask home for a file version: put requests/RANDOM. */
static int put_request(struct cloud *cl, const struct ninfo *i)
{
	struct snap_request rq = { i->ino, i->size, i->mtime };
	struct tbuf b = TBUF_INIT;
	uint8_t rnd[16];
	char hex[33], key[SNAP_KEY_MAX];
	int rc;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -EIO;
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(key, sizeof(key), "requests/%s", hex);
	rc = snap_request_encode(&cl->key, key, &rq, &b);
	if (!rc)
		rc = store_put(cl->st, key, b.data, b.len);
	if (rc)
		log_error("cannot ask home for '%s' (put '%s'): %s", i->path, key, store_errmsg());
	tbuf_release(&b);
	return rc;
}

/* One attempt at the manifest: cache, then store. -ENOENT when not published. */
static int manifest_try(struct cloud *cl, const char *name, const char *path, struct snap_manifest *m)
{
	struct tbuf b = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	int rc;

	snap_key_manifest(name, key);
	if (cache_obj_load(cl->cache, key, &b) == 0) {
		rc = snap_manifest_decode(&cl->key, name, b.data, b.len, m);
		if (!rc)
			goto out;
		log_warn("cached manifest '%s' is damaged (%s); fetching it again", key, codec_errmsg());
		cache_obj_drop(cl->cache, key);
	}
	tbuf_reset(&b);
	rc = store_get(cl->st, key, 0, STORE_WHOLE, &b);
	if (rc == -ENOENT)
		goto out;
	if (rc) {
		log_error("cannot fetch manifest of '%s' ('%s'): %s", path, key, store_errmsg());
		rc = -EIO;
		goto out;
	}
	rc = snap_manifest_decode(&cl->key, name, b.data, b.len, m);
	if (rc) {
		log_error("manifest '%s' of '%s' failed verification (tampered or damaged): %s", key,
			  path, codec_errmsg());
		rc = -EIO;
		goto out;
	}
	cache_obj_store(cl->cache, key, b.data, b.len);
out:
	tbuf_release(&b);
	return rc;
}

/* The manifest of the file version i, asking home for it if needed. */
static int manifest_get(struct cloud *cl, const struct ninfo *i, struct snap_manifest *m)
{
	char name[CODEC_NAME_SIZE];
	uint64_t deadline;
	int rc;

	rc = snap_manifest_name(&cl->key, i->ino, i->mtime, i->size, name);
	if (rc)
		return -EIO;
	if (i->has_data) {
		rc = manifest_try(cl, name, i->path, m);
		if (rc != -ENOENT)
			return rc;
	}
	rc = put_request(cl, i);
	if (rc)
		return -EIO;
	atomic_fetch_add(&cl->pending, 1);
	deadline = now_mono_ns() + (uint64_t)cl->o.request_timeout_s * NS;
	log_info("asked home for '%s' (%llu bytes); waiting up to %d s", i->path,
		 (unsigned long long)i->size, cl->o.request_timeout_s);
	for (;;) {
		rc = manifest_try(cl, name, i->path, m);
		if (rc != -ENOENT)
			break;
		if (now_mono_ns() >= deadline) {
			log_error("home did not upload '%s' within %d s (request_timeout); EIO", i->path,
				  cl->o.request_timeout_s);
			rc = -EIO;
			break;
		}
		usleep(500000);
	}
	atomic_fetch_sub(&cl->pending, 1);
	return rc;
}

/* ---- readahead ---- */

static void ra_schedule(struct cloud *cl, const char *name, uint32_t len)
{
	if (cache_chunk_present(cl->cache, name))
		return;
	pthread_mutex_lock(&cl->ra_lock);
	for (unsigned k = 0; k < cl->ra_n; k++)
		if (!strcmp(cl->ring[(cl->ra_head + k) % RA_RING].name, name))
			goto out;
	if (cl->ra_n < RA_RING) {
		struct ra_job *j = &cl->ring[(cl->ra_head + cl->ra_n) % RA_RING];

		memcpy(j->name, name, CODEC_NAME_SIZE);
		j->len = len;
		cl->ra_n++;
		pthread_cond_signal(&cl->ra_cv);
	}
out:
	pthread_mutex_unlock(&cl->ra_lock);
}

static void *ra_main(void *arg)
{
	struct cloud *cl = arg;

	pthread_mutex_lock(&cl->ra_lock);
	for (;;) {
		struct ra_job j;
		const struct cache_chunk *ch;

		while (!cl->ra_n && !cl->ra_stop)
			pthread_cond_wait(&cl->ra_cv, &cl->ra_lock);
		if (cl->ra_stop)
			break;
		j = cl->ring[cl->ra_head];
		cl->ra_head = (cl->ra_head + 1) % RA_RING;
		cl->ra_n--;
		pthread_mutex_unlock(&cl->ra_lock);
		if (cache_chunk_get(cl->cache, j.name, j.len, CACHE_PREFETCH, &ch) == 0)
			cache_chunk_put(cl->cache, ch);
		pthread_mutex_lock(&cl->ra_lock);
	}
	pthread_mutex_unlock(&cl->ra_lock);
	return NULL;
}

/* ---- operations ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct cloud *cl = userdata;

	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_MOVE);
	/* over io_uring, replies go into the ring entry: never spliced */
	if (fuse_io_uring_planned(&cl->io))
		conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_READ);
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

/*
 * Take ci (its strings move into the inode table) as the entry name of
 * parent; fill fe. The caller replies and calls forget_reply_failed() if
 * the reply fails.
 */
static int remember(struct cloud *cl, fuse_ino_t parent, struct ninfo *ci, struct fuse_entry_param *fe)
{
	struct cnode *n;

	pthread_mutex_lock(&cl->lock);
	n = nfind(cl, ci->ino);
	if (!n && !(n = nadd(cl, ci->ino))) {
		pthread_mutex_unlock(&cl->lock);
		return -ENOMEM;
	}
	if (n->i.seq <= ci->seq || ci->wb_id || n->i.wb_id) {
		ninfo_release(&n->i);
		n->i = *ci;
		memset(ci, 0, sizeof(*ci));
	}
	n->parent = parent;
	n->nlookup++;
	memset(fe, 0, sizeof(*fe));
	fe->ino = n->i.ino;
	fe->generation = 1;
	fe->entry_timeout = TIMEOUT_S;
	fe->attr_timeout = TIMEOUT_S;
	fill_stat(&n->i, &fe->attr);
	pthread_mutex_unlock(&cl->lock);
	return 0;
}

static void forget_reply_failed(struct cloud *cl, uint64_t ino)
{
	struct cnode *n;

	pthread_mutex_lock(&cl->lock);
	n = nfind(cl, ino);
	if (n && --n->nlookup == 0 && !n->ncached)
		nremove(cl, n);
	pthread_mutex_unlock(&cl->lock);
}

static void reply_negative(fuse_req_t req)
{
	struct fuse_entry_param fe;

	memset(&fe, 0, sizeof(fe));
	fe.entry_timeout = TIMEOUT_S;
	fuse_reply_entry(req, &fe);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct cloud *cl = req_cl(req);
	struct fuse_entry_param fe;
	struct ninfo pi, ci;
	const struct snap_entry *e;
	struct dobj *d = NULL;
	int rc;

	memset(&ci, 0, sizeof(ci));
	rc = node_get(cl, parent, &pi);
	if (rc)
		goto out;
	if (pi.type != SNAP_DIR) {
		rc = -ENOTDIR;
		goto out;
	}
	if (wb_on(cl)) {
		char *vp = child_vpath(pi.path, name);
		struct wb_attr a;

		if (!vp) {
			rc = -ENOMEM;
			goto out;
		}
		rc = wb_get_path(cl->wb, vp, &a);
		free(vp);
		if (rc == 0) {
			rc = a.kind == WB_GONE ? 1 : ninfo_from_wb(cl, &ci, &a);
			wb_attr_release(&a);
			if (rc == 1) {
				reply_negative(req);
				goto done;
			}
			if (rc)
				goto out;
			goto found;
		}
	}
	if (!pi.ref[0]) { /* a directory only this node has */
		reply_negative(req);
		goto done;
	}
	rc = dobj_get(cl, pi.ref, &d);
	if (rc)
		goto out;
	e = snap_dir_find(&d->d, name);
	if (!e) {
		reply_negative(req);
		goto done;
	}
	rc = ninfo_from_entry(&ci, e, pi.seq);
	if (rc)
		goto out;
	if (asprintf(&ci.path, "%s%s%s", pi.path, *pi.path ? "/" : "", name) < 0) {
		ci.path = NULL;
		rc = -ENOMEM;
		goto out;
	}
found:
	rc = remember(cl, parent, &ci, &fe);
	if (rc)
		goto out;
	if (fuse_reply_entry(req, &fe) == -ENOENT)
		forget_reply_failed(cl, fe.ino);
	goto done;
out:
	fuse_reply_err(req, -rc);
done:
	dobj_put(cl, d);
	ninfo_release(&pi);
	ninfo_release(&ci);
}

static void forget_one(struct cloud *cl, fuse_ino_t ino, uint64_t nl)
{
	struct cnode *n = nfind(cl, ino);

	if (!n || ino == ROOT_INO)
		return;
	n->nlookup = nl > n->nlookup ? 0 : n->nlookup - nl;
	if (!n->nlookup && !n->ncached)
		nremove(cl, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct cloud *cl = req_cl(req);

	pthread_mutex_lock(&cl->lock);
	forget_one(cl, ino, nlookup);
	pthread_mutex_unlock(&cl->lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	struct cloud *cl = req_cl(req);

	pthread_mutex_lock(&cl->lock);
	for (size_t k = 0; k < count; k++)
		forget_one(cl, f[k].ino, f[k].nlookup);
	pthread_mutex_unlock(&cl->lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ninfo i;
	struct stat st;
	int rc = node_get(req_cl(req), ino, &i);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fill_stat(&i, &st);
	ninfo_release(&i);
	fuse_reply_attr(req, &st, TIMEOUT_S);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct ninfo i;
	int rc = node_get(req_cl(req), ino, &i);

	if (!rc && (i.type != SNAP_SYMLINK || !i.target))
		rc = -EINVAL;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, i.target);
	ninfo_release(&i);
}

static void handle_free(struct fhandle *h)
{
	if (!h)
		return;
	snap_manifest_release(&h->m);
	free(h->offs);
	free(h->path);
	if (h->fd >= 0)
		close(h->fd);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Check the manifest against the entry and lay out the chunks. */
static int handle_layout(struct fhandle *h)
{
	uint64_t off = 0;

	if (h->m.fid != h->ino || h->m.size != h->size || h->m.mtime != h->mtime)
		return -EIO;
	h->offs = calloc(h->m.n ? h->m.n : 1, sizeof(*h->offs));
	if (!h->offs)
		return -ENOMEM;
	for (size_t k = 0; k < h->m.n; k++) {
		h->offs[k] = off;
		if (!h->m.c[k].len || h->m.c[k].len > CODEC_MAX_PLAIN)
			return -EIO;
		off += h->m.c[k].len;
	}
	return off == h->size ? 0 : -EIO;
}

static int copy_up(struct cloud *cl, const struct ninfo *i, int trunc, struct ninfo *out);
static int open_staged(struct cloud *cl, fuse_req_t req, const struct ninfo *i, struct fuse_file_info *fi);

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cloud *cl = req_cl(req);
	struct fhandle *h = NULL;
	struct ninfo i;
	struct cnode *n;
	int rc, write = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC), tries = 0;

again:
	rc = node_get(cl, ino, &i);
	if (rc)
		goto out;
	if (i.type != SNAP_FILE) {
		rc = i.type == SNAP_DIR ? -EISDIR : -EINVAL;
		goto out;
	}
	if (write && !i.wb_id) {
		/* home's file, to be changed here: copy it into the overlay first */
		char *vp = vpath_of_rel(i.path);
		struct ninfo c;

		rc = !vp ? -ENOMEM : may_write(cl, vp, 0) ? copy_up(cl, &i, fi->flags & O_TRUNC, &c) : -EROFS;
		free(vp);
		if (rc)
			goto out;
		ninfo_release(&i);
		i = c;
	}
	if (i.wb_id) {
		rc = open_staged(cl, req, &i, fi);
		ninfo_release(&i);
		if (rc == -EAGAIN && ++tries < 3)
			goto again; /* the overlay let go of it meanwhile */
		if (rc)
			fuse_reply_err(req, rc == -EAGAIN ? ESTALE : -rc);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_init(&h->lock, NULL);
	h->fd = -1;
	h->ino = ino;
	h->size = i.size;
	h->mtime = i.mtime;
	h->path = strdup(i.path);
	if (!h->path) {
		rc = -ENOMEM;
		goto out;
	}
	if (h->size) {
		rc = manifest_get(cl, &i, &h->m);
		if (!rc && (rc = handle_layout(h)) == -EIO)
			log_error("manifest of '%s' does not match its entry or its chunks; EIO", h->path);
		if (rc)
			goto out;
	} else {
		h->m.fid = h->ino;
	}
	/* Page cache: see DESIGN. */
	pthread_mutex_lock(&cl->lock);
	n = nfind(cl, ino);
	if (n && n->ncached && (n->pc_mtime != h->mtime || n->pc_size != h->size)) {
		fi->direct_io = 1;
	} else if (n) {
		fi->keep_cache = n->pc_valid && n->pc_mtime == h->mtime && n->pc_size == h->size;
		n->pc_valid = 1;
		n->pc_mtime = h->mtime;
		n->pc_size = h->size;
		n->ncached++;
		h->cached = 1;
	}
	pthread_mutex_unlock(&cl->lock);
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		pthread_mutex_lock(&cl->lock);
		if (h->cached && (n = nfind(cl, ino)))
			n->ncached--;
		pthread_mutex_unlock(&cl->lock);
		handle_free(h);
	}
	ninfo_release(&i);
	return;
out:
	ninfo_release(&i);
	handle_free(h);
	fuse_reply_err(req, -rc);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cloud *cl = req_cl(req);
	struct fhandle *h = (struct fhandle *)(uintptr_t)fi->fh;
	struct cnode *n;

	if (h->wmode) {
		/* closed: staged for good (fsync makes it durable against power loss) */
		if (h->wrote && wb_commit_entry(cl->wb, h->wb_id, 0))
			log_error("cannot record the close of '/%s' in the write-back journal", h->path);
		wb_writer(cl->wb, h->wb_id, -1);
	}
	pthread_mutex_lock(&cl->lock);
	if (h->cached && (n = nfind(cl, ino))) {
		n->ncached--;
		if (!n->nlookup && !n->ncached && ino != ROOT_INO)
			nremove(cl, n);
	}
	pthread_mutex_unlock(&cl->lock);
	handle_free(h);
	fuse_reply_err(req, 0);
}

/* ---- writing (the overlay; cloud_wb.h) ---- */

static int64_t now_ns_real(void)
{
	return (int64_t)now_real_ns();
}

/* A handle on a staged file of the overlay. */
static int open_staged(struct cloud *cl, fuse_req_t req, const struct ninfo *i, struct fuse_file_info *fi)
{
	int write = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	struct fhandle *h = calloc(1, sizeof(*h));
	struct stat st;

	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->ino = i->ino;
	h->wb_id = i->wb_id;
	h->fd = -1;
	/* a writer keeps the entry from being dropped; it may have gone already */
	if (write && wb_take_writer(cl->wb, i->wb_id)) {
		handle_free(h);
		return -EAGAIN;
	}
	h->wmode = write;
	h->path = strdup(i->path);
	h->fd = wb_open_data(cl->wb, i->wb_id, write ? O_RDWR : O_RDONLY);
	if (!h->path || h->fd < 0) {
		int rc = h->fd < 0 ? h->fd : -ENOMEM;

		if (h->wmode)
			wb_writer(cl->wb, h->wb_id, -1);
		if (rc == -ENOENT && !h->wmode) {
			handle_free(h);
			return -EAGAIN; /* dropped meanwhile: home's version is there now */
		}
		log_error("cannot open the staged data of '/%s': %s", i->path, strerror(-rc));
		handle_free(h);
		return rc == -ENOENT ? -EIO : rc;
	}
	if (write) {
		if ((fi->flags & O_TRUNC) && ftruncate(h->fd, 0) == 0) {
			h->wrote = 1;
			wb_wrote(cl->wb, h->wb_id, 0, now_ns_real());
		}
	}
	if (fstat(h->fd, &st) == 0)
		h->size = (uint64_t)st.st_size;
	fi->keep_cache = 0;
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		if (h->wmode)
			wb_writer(cl->wb, h->wb_id, -1);
		handle_free(h);
	}
	return 0;
}

/*
 * Copy home's file i into the overlay (all of it, or empty with trunc), so
 * this node can change it: the entry keeps the inode number and records the
 * version it started from (the conflict check at home). *out: the entry.
 */
static int copy_up(struct cloud *cl, const struct ninfo *i, int trunc, struct ninfo *out)
{
	struct snap_manifest m;
	struct wb_attr a;
	char tmp[4200], *vp = vpath_of_rel(i->path);
	int fd = -1, rc = 0;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (!vp)
		return -ENOMEM;
	pthread_mutex_lock(&cl->cu_lock);
	/* another open may have copied it meanwhile */
	if (wb_get_path(cl->wb, vp, &a) == 0) {
		rc = a.kind == WB_FILE ? ninfo_from_wb(cl, out, &a) : -ENOENT;
		wb_attr_release(&a);
		goto out;
	}
	fd = wb_tmp_file(cl->wb, tmp, sizeof(tmp));
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	if (!trunc && i->size) {
		rc = manifest_get(cl, i, &m);
		for (size_t k = 0; !rc && k < m.n; k++) {
			const struct cache_chunk *ref;

			rc = cache_chunk_get(cl->cache, m.c[k].name, m.c[k].len, 0, &ref);
			if (rc)
				break;
			if (write(fd, ref->data, m.c[k].len) != (ssize_t)m.c[k].len)
				rc = -errno ? -errno : -EIO;
			cache_chunk_put(cl->cache, ref);
		}
		if (rc) {
			log_error("cannot copy '/%s' for writing: %s", i->path, strerror(-rc));
			rc = -EIO;
			goto out;
		}
	}
	wb_attr_of(i, &a);
	a.path = vp;
	a.kind = WB_FILE;
	a.size = trunc ? 0 : i->size;
	a.base = OUTBOX_BASE_HOME;
	a.base_fid = i->ino;
	a.base_mtime = i->mtime;
	a.base_size = i->size;
	rc = wb_set(cl->wb, &a);
	if (!rc)
		rc = wb_adopt(cl->wb, a.id, tmp);
	if (!rc) {
		tmp[0] = '\0';
		a.path = NULL;
		if (wb_get_path(cl->wb, vp, &a) == 0) {
			rc = ninfo_from_wb(cl, out, &a);
			wb_attr_release(&a);
		} else {
			rc = -EIO;
		}
	}
out:
	pthread_mutex_unlock(&cl->cu_lock);
	if (fd >= 0)
		close(fd);
	if (fd >= 0 && tmp[0])
		unlink(tmp);
	snap_manifest_release(&m);
	free(vp);
	return rc;
}

/* New entry name in parent: its volume path, checked against the rules. */
static int new_name(struct cloud *cl, fuse_ino_t parent, const char *name, int dir, char **vp_out)
{
	struct ninfo pi, cur;
	char *vp;
	int rc = node_get(cl, parent, &pi);

	*vp_out = NULL;
	if (rc)
		return rc;
	if (pi.type != SNAP_DIR) {
		ninfo_release(&pi);
		return -ENOTDIR;
	}
	vp = child_vpath(pi.path, name);
	ninfo_release(&pi);
	if (!vp)
		return -ENOMEM;
	if (strlen(name) > 255) {
		free(vp);
		return -ENAMETOOLONG;
	}
	if (!may_write(cl, vp, dir)) {
		free(vp);
		return -EROFS;
	}
	if (entry_at(cl, vp, &cur) == 0) {
		ninfo_release(&cur);
		free(vp);
		return -EEXIST;
	}
	*vp_out = vp;
	return 0;
}

/* Make an entry at vp and reply with it (entry or create). */
static void make_entry(fuse_req_t req, fuse_ino_t parent, struct wb_attr *a, struct fuse_file_info *fi)
{
	struct cloud *cl = req_cl(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fuse_entry_param fe;
	struct ninfo ci;
	int rc;

	a->uid = ctx->uid;
	a->gid = ctx->gid;
	a->mtime = a->ctime = now_ns_real();
	a->open_writer = fi != NULL;
	rc = wb_set(cl->wb, a);
	if (!rc && a->kind == WB_FILE) {
		int fd = wb_open_data(cl->wb, a->id, O_RDWR | O_CREAT | O_TRUNC);

		if (fd < 0) {
			rc = fd;
			wb_delete(cl->wb, a->path, NULL);
		} else if (fi) {
			struct fhandle *h = calloc(1, sizeof(*h));

			if (!h) {
				close(fd);
				rc = -ENOMEM;
			} else {
				pthread_mutex_init(&h->lock, NULL);
				h->fd = fd;
				h->ino = a->ino;
				h->wb_id = a->id;
				h->wmode = 1;
				h->path = strdup(a->path + 1);
				fi->fh = (uintptr_t)h;
			}
		} else {
			close(fd);
		}
	}
	if (!rc && !fi)
		wb_commit_entry(cl->wb, a->id, 0);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = ninfo_from_wb(cl, &ci, a);
	if (!rc)
		rc = remember(cl, parent, &ci, &fe);
	ninfo_release(&ci);
	if (rc) {
		if (fi) {
			wb_writer(cl->wb, a->id, -1);
			handle_free((struct fhandle *)(uintptr_t)fi->fh);
		}
		fuse_reply_err(req, -rc);
		return;
	}
	if (fi ? fuse_reply_create(req, &fe, fi) == -ENOENT : fuse_reply_entry(req, &fe) == -ENOENT) {
		forget_reply_failed(cl, fe.ino);
		if (fi) {
			wb_writer(cl->wb, a->id, -1);
			handle_free((struct fhandle *)(uintptr_t)fi->fh);
		}
	}
}

/* A new entry of this kind made by the node at parent/name (fi: a file, opened). */
static void make_new(fuse_req_t req, fuse_ino_t parent, const char *name, uint8_t kind, mode_t mode,
		     const char *target, struct fuse_file_info *fi)
{
	struct wb_attr a;
	char *vp;
	int rc = new_name(req_cl(req), parent, name, kind == WB_DIR, &vp);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	memset(&a, 0, sizeof(a));
	a.path = vp;
	a.kind = kind;
	a.mode = kind == WB_SYMLINK ? 0777 : mode & 07777;
	a.target = (char *)target;
	a.size = kind == WB_DIR ? 4096 : target ? strlen(target) : 0;
	make_entry(req, parent, &a, fi);
	free(vp);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	make_new(req, parent, name, WB_FILE, mode, NULL, fi);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, req_cl(req)->wb ? EPERM : EROFS); /* no devices, fifos, sockets */
		return;
	}
	make_new(req, parent, name, WB_FILE, mode, NULL, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_new(req, parent, name, WB_DIR, mode, NULL, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_new(req, parent, name, WB_SYMLINK, 0777, link, NULL);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	/* hard links are not carried home (docs/operations.md) */
	fuse_reply_err(req, req_cl(req)->wb ? EPERM : EROFS);
}

struct count_arg {
	int live;
	struct dobj *d; /* the snapshot listing, for names the overlay hides */
	int hidden;
};

static void count_live(void *arg, const struct wb_attr *a)
{
	struct count_arg *c = arg;
	const char *name = strrchr(a->path, '/') + 1;

	if (a->kind != WB_GONE)
		c->live++;
	else if (c->d && snap_dir_find(&c->d->d, name))
		c->hidden++;
}

/* Is directory i empty as this node sees it? 1, 0, or -errno. */
static int dir_empty(struct cloud *cl, const struct ninfo *i)
{
	struct count_arg c = { 0, NULL, 0 };
	char *vp = vpath_of_rel(i->path);
	size_t snap_n = 0;
	int rc = 0;

	if (!vp)
		return -ENOMEM;
	if (i->ref[0] && (rc = dobj_get(cl, i->ref, &c.d)) == 0)
		snap_n = c.d->d.n;
	if (!rc) {
		wb_children(cl->wb, vp, count_live, &c);
		/* overlay entries over snapshot names are counted once */
		if (c.d)
			for (size_t k = 0; k < c.d->d.n; k++) {
				char *cp = child_vpath(i->path, c.d->d.e[k].name);
				struct wb_attr a;

				if (cp && wb_get_path(cl->wb, cp, &a) == 0) {
					if (a.kind != WB_GONE)
						snap_n--;
					wb_attr_release(&a);
				}
				free(cp);
			}
		rc = c.live == 0 && snap_n == (size_t)c.hidden;
	}
	dobj_put(cl, c.d);
	free(vp);
	return rc;
}

static void remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, int dir)
{
	struct cloud *cl = req_cl(req);
	struct ninfo pi, ci;
	struct wb_attr base;
	char *vp = NULL;
	int rc;

	memset(&ci, 0, sizeof(ci));
	if (!cl->wb) {
		fuse_reply_err(req, EROFS);
		return;
	}
	rc = node_get(cl, parent, &pi);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	vp = child_vpath(pi.path, name);
	ninfo_release(&pi);
	rc = !vp ? -ENOMEM : entry_at(cl, vp, &ci);
	if (!rc && !may_write(cl, vp, dir))
		rc = -EROFS;
	if (!rc && dir && ci.type != SNAP_DIR)
		rc = -ENOTDIR;
	if (!rc && !dir && ci.type == SNAP_DIR)
		rc = -EISDIR;
	if (!rc && dir) {
		rc = dir_empty(cl, &ci);
		rc = rc == 1 ? 0 : rc == 0 ? -ENOTEMPTY : rc;
	}
	if (!rc) {
		wb_attr_of(&ci, &base);
		rc = wb_delete(cl->wb, vp, ci.wb_id ? NULL : &base);
	}
	fuse_reply_err(req, -rc);
	ninfo_release(&ci);
	free(vp);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, 1);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct cloud *cl = req_cl(req);
	struct ninfo pi, npi, src, dst, sn, dn;
	struct wb_attr dsnap, fsnap;
	char *from = NULL, *to = NULL;
	int rc, have_dst = 0, have_fs = 0, have_ds = 0;

	memset(&src, 0, sizeof(src));
	memset(&dst, 0, sizeof(dst));
	if (!cl->wb) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL); /* RENAME_EXCHANGE, RENAME_WHITEOUT */
		return;
	}
	rc = node_get(cl, parent, &pi);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = node_get(cl, newparent, &npi);
	if (rc) {
		ninfo_release(&pi);
		fuse_reply_err(req, -rc);
		return;
	}
	from = child_vpath(pi.path, name);
	to = child_vpath(npi.path, newname);
	ninfo_release(&pi);
	ninfo_release(&npi);
	rc = !from || !to ? -ENOMEM : entry_at(cl, from, &src);
	if (rc)
		goto out;
	if (!may_write(cl, from, src.type == SNAP_DIR) || !may_write(cl, to, src.type == SNAP_DIR)) {
		rc = -EROFS;
		goto out;
	}
	if (entry_at(cl, to, &dst) == 0) {
		have_dst = 1;
		if (flags & RENAME_NOREPLACE)
			rc = -EEXIST;
		else if (dst.type == SNAP_DIR && src.type != SNAP_DIR)
			rc = -EISDIR;
		else if (dst.type != SNAP_DIR && src.type == SNAP_DIR)
			rc = -ENOTDIR;
		else if (dst.type == SNAP_DIR && (rc = dir_empty(cl, &dst)) >= 0)
			rc = rc ? 0 : -ENOTEMPTY;
		if (rc)
			goto out;
	}
	if (!strcmp(from, to))
		goto out;
	if (!src.wb_id) {
		/* home's entry moves: a file is copied into the overlay first */
		struct ninfo c;

		if (src.type == SNAP_DIR) {
			rc = -EXDEV; /* mv copies the tree instead */
			goto out;
		}
		if (src.type == SNAP_SYMLINK) {
			struct wb_attr a;

			wb_attr_of(&src, &a);
			a.path = from;
			a.kind = WB_SYMLINK;
			a.target = src.target;
			a.base = OUTBOX_BASE_HOME;
			a.base_fid = src.ino;
			a.base_mtime = src.mtime;
			a.base_size = src.size;
			rc = wb_set(cl->wb, &a);
		} else if ((rc = copy_up(cl, &src, 0, &c)) == 0) {
			ninfo_release(&c);
		}
		if (rc)
			goto out;
	}
	if (snap_at(cl, to, &dn) == 0) {
		wb_attr_of(&dn, &dsnap);
		ninfo_release(&dn);
		have_ds = 1;
	}
	if (snap_at(cl, from, &sn) == 0) {
		wb_attr_of(&sn, &fsnap);
		have_fs = sn.type == SNAP_DIR;
		ninfo_release(&sn);
	}
	rc = wb_rename(cl->wb, from, to, have_ds ? &dsnap : NULL, have_fs ? &fsnap : NULL);
out:
	(void)have_dst;
	fuse_reply_err(req, -rc);
	ninfo_release(&src);
	ninfo_release(&dst);
	free(from);
	free(to);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct cloud *cl = req_cl(req);
	struct fhandle *h = fi ? (struct fhandle *)(uintptr_t)fi->fh : NULL;
	struct ninfo i;
	struct wb_attr a;
	struct stat st;
	int64_t now = now_ns_real();
	int rc, retried = 0;

again:
	memset(&a, 0, sizeof(a));
	rc = node_get(cl, ino, &i);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (!cl->wb) {
		rc = -EROFS;
		goto out;
	}
	if ((to_set & FUSE_SET_ATTR_UID && attr->st_uid != i.uid) ||
	    (to_set & FUSE_SET_ATTR_GID && attr->st_gid != i.gid)) {
		rc = -EPERM; /* owners are home's to give */
		goto out;
	}
	if (!i.wb_id) {
		char *vp = vpath_of_rel(i.path);
		struct ninfo c;

		rc = !vp ? -ENOMEM : i.type != SNAP_FILE || !may_write(cl, vp, 0) ? -EROFS
			: copy_up(cl, &i, (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size == 0, &c);
		free(vp);
		if (rc)
			goto out;
		ninfo_release(&i);
		i = c;
	}
	rc = wb_get_ino(cl->wb, i.ino, &a);
	if (rc)
		goto out;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		int fd = h && h->fd >= 0 && h->wmode ? h->fd : wb_open_data(cl->wb, a.id, O_WRONLY);

		if (a.kind != WB_FILE) {
			rc = -EISDIR;
			goto out;
		}
		if (fd < 0 || ftruncate(fd, attr->st_size)) {
			rc = fd < 0 ? fd : -errno;
			if (fd >= 0 && (!h || fd != h->fd))
				close(fd);
			goto out;
		}
		if (!h || fd != h->fd)
			close(fd);
		a.size = (uint64_t)attr->st_size;
		a.mtime = now;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		a.mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		a.mtime = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		a.mtime = (int64_t)attr->st_mtim.tv_sec * NS + attr->st_mtim.tv_nsec;
	a.ctime = now;
	if (a.kind == WB_FILE && !(to_set & FUSE_SET_ATTR_SIZE)) {
		/* writes through open handles may have moved the size */
		int fd = wb_open_data(cl->wb, a.id, O_RDONLY);

		if (fd >= 0 && fstat(fd, &st) == 0)
			a.size = (uint64_t)st.st_size;
		if (fd >= 0)
			close(fd);
	}
	rc = wb_set(cl->wb, &a);
out:
	if (rc == -ENOENT && cl->wb && !retried++) {
		/* the overlay let go of the entry meanwhile: again, from home's version */
		wb_attr_release(&a);
		ninfo_release(&i);
		goto again;
	}
	if (rc) {
		fuse_reply_err(req, -rc);
	} else {
		struct ninfo n;

		rc = ninfo_from_wb(cl, &n, &a);
		if (rc) {
			fuse_reply_err(req, -rc);
		} else {
			fill_stat(&n, &st);
			fuse_reply_attr(req, &st, TIMEOUT_S);
			ninfo_release(&n);
		}
	}
	wb_attr_release(&a);
	ninfo_release(&i);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
			 struct fuse_file_info *fi)
{
	struct cloud *cl = req_cl(req);
	struct fhandle *h = (struct fhandle *)(uintptr_t)fi->fh;
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(fuse_buf_size(bufv));
	struct stat st;
	ssize_t n;

	if (!h->wmode) {
		fuse_reply_err(req, cl->wb ? EBADF : EROFS);
		return;
	}
	dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	dst.buf[0].fd = h->fd;
	dst.buf[0].pos = off;
	n = fuse_buf_copy(&dst, bufv, 0);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	h->wrote = 1;
	if (fstat(h->fd, &st) == 0)
		wb_wrote(cl->wb, h->wb_id, (uint64_t)st.st_size, now_ns_real());
	fuse_reply_write(req, (size_t)n);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct cloud *cl = req_cl(req);
	struct fhandle *h = (struct fhandle *)(uintptr_t)fi->fh;
	struct stat st;

	if (!h->wmode) {
		fuse_reply_err(req, cl->wb ? EBADF : EROFS);
		return;
	}
	if (fallocate(h->fd, mode, off, len)) {
		fuse_reply_err(req, errno);
		return;
	}
	h->wrote = 1;
	if (fstat(h->fd, &st) == 0)
		wb_wrote(cl->wb, h->wb_id, (uint64_t)st.st_size, now_ns_real());
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct cloud *cl = req_cl(req);
	struct fhandle *h = (struct fhandle *)(uintptr_t)fi->fh;

	if (h->fd < 0 || !h->wb_id) {
		fuse_reply_err(req, 0);
		return;
	}
	fuse_reply_err(req, -wb_commit_entry(cl->wb, h->wb_id, 1));
}

/* Index of the chunk holding byte off (off < size). */
static size_t chunk_at(const struct fhandle *h, uint64_t off)
{
	size_t lo = 0, hi = h->m.n;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->offs[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct cloud *cl = req_cl(req);
	struct fhandle *h = (struct fhandle *)(uintptr_t)fi->fh;
	uint8_t *buf = NULL;
	uint64_t start = (uint64_t)off, end;
	size_t first, last, ra_from = 0, ra_to = 0;
	int rc = 0;

	if (h->fd >= 0) {
		/* a staged file of the overlay: the local disk */
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);

		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = h->fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	if (start >= h->size || !size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	end = start + size > h->size ? h->size : start + size;
	first = chunk_at(h, start);
	last = chunk_at(h, end - 1);
	if (cl->o.readahead > 0) {
		pthread_mutex_lock(&h->lock);
		/* The kernel's readahead sends several reads at once and threads
		 * serve them in any order: near the last end counts as sequential. */
		if (start + (4u << 20) >= h->next_off && start <= h->next_off + (4u << 20)) {
			ra_from = last + 1 > h->ra_next ? last + 1 : h->ra_next;
			ra_to = last + 1 + (size_t)cl->o.readahead;
			if (ra_to > h->m.n)
				ra_to = h->m.n;
			if (ra_to > ra_from)
				h->ra_next = ra_to;
		}
		if (end > h->next_off || start + (4u << 20) < h->next_off)
			h->next_off = end;
		pthread_mutex_unlock(&h->lock);
		for (size_t k = ra_from; k < ra_to; k++)
			ra_schedule(cl, h->m.c[k].name, h->m.c[k].len);
	}
	if (first == last) {
		/* Within one chunk in memory (or on its way): reply from the
		 * chunk itself, without a copy into a buffer of our own. */
		const struct cache_chunk *ref;

		rc = cache_chunk_get(cl->cache, h->m.c[first].name, h->m.c[first].len,
				     CACHE_MEM_ONLY, &ref);
		if (!rc) {
			fuse_reply_buf(req, (const char *)ref->data + (start - h->offs[first]),
				       (size_t)(end - start));
			cache_chunk_put(cl->cache, ref);
			return;
		}
		if (rc != -EAGAIN) {
			atomic_fetch_add(&cl->read_errors, 1);
			log_error("read of '%s' at %llu failed: chunk %zu of %zu: %s", h->path,
				  (unsigned long long)start, first, h->m.n, strerror(-rc));
			fuse_reply_err(req, EIO);
			return;
		}
		rc = 0;
	}
	buf = malloc(end - start);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t k = first; k <= last; k++) {
		uint64_t cs = h->offs[k], ce = cs + h->m.c[k].len;
		uint64_t s = start > cs ? start : cs, e = end < ce ? end : ce;
		const struct cache_chunk *ref;

		/* a verified cache file serves small reads with one pread */
		rc = cache_chunk_pread(cl->cache, h->m.c[k].name, h->m.c[k].len, s - cs,
				       buf + (s - start), (size_t)(e - s));
		if (rc == -EAGAIN) {
			rc = cache_chunk_get(cl->cache, h->m.c[k].name, h->m.c[k].len, 0, &ref);
			if (!rc) {
				memcpy(buf + (s - start), ref->data + (s - cs), (size_t)(e - s));
				cache_chunk_put(cl->cache, ref);
			}
		}
		if (rc) {
			atomic_fetch_add(&cl->read_errors, 1);
			log_error("read of '%s' at %llu failed: chunk %zu of %zu: %s", h->path,
				  (unsigned long long)s, k, h->m.n, strerror(-rc));
			rc = -EIO;
			goto out;
		}
	}
	fuse_reply_buf(req, (const char *)buf, (size_t)(end - start));
out:
	free(buf);
	if (rc)
		fuse_reply_err(req, -rc);
}

struct merge_arg {
	struct dhandle *h;
	int rc;
};

static int dent_add(struct dhandle *h, const char *name, uint64_t ino, uint8_t type)
{
	struct dent *v = realloc(h->v, (h->n + 1) * sizeof(*h->v));

	if (!v)
		return -ENOMEM;
	h->v = v;
	v[h->n].name = strdup(name);
	if (!v[h->n].name)
		return -ENOMEM;
	v[h->n].ino = ino;
	v[h->n].type = type;
	h->n++;
	return 0;
}

static void merge_cb(void *arg, const struct wb_attr *a)
{
	struct merge_arg *m = arg;
	const char *name = strrchr(a->path, '/') + 1;

	if (m->rc || a->kind == WB_GONE)
		return;
	m->rc = dent_add(m->h, name, a->ino,
			 a->kind == WB_DIR ? SNAP_DIR : a->kind == WB_SYMLINK ? SNAP_SYMLINK : SNAP_FILE);
}

static void dhandle_free(struct cloud *cl, struct dhandle *h)
{
	if (!h)
		return;
	for (size_t k = 0; k < h->n; k++)
		free(h->v[k].name);
	free(h->v);
	dobj_put(cl, h->d);
	free(h);
}

/* The listing this node sees: the snapshot's, with the overlay's entries over it. */
static int merge_listing(struct cloud *cl, const struct ninfo *i, struct dhandle *h)
{
	struct merge_arg m = { h, 0 };
	char *vp = vpath_of_rel(i->path);

	if (!vp)
		return -ENOMEM;
	for (size_t k = 0; h->d && k < h->d->d.n && !m.rc; k++) {
		const struct snap_entry *e = &h->d->d.e[k];
		char *cp = child_vpath(i->path, e->name);
		struct wb_attr a;

		if (!cp) {
			m.rc = -ENOMEM;
			break;
		}
		if (wb_get_path(cl->wb, cp, &a) == 0)
			wb_attr_release(&a); /* the overlay's entry (or its delete) stands instead */
		else
			m.rc = dent_add(h, e->name, e->fid, e->type);
		free(cp);
	}
	if (!m.rc)
		wb_children(cl->wb, vp, merge_cb, &m);
	free(vp);
	return m.rc;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cloud *cl = req_cl(req);
	struct dhandle *h = calloc(1, sizeof(*h));
	struct ninfo i;
	int rc = h ? node_get(cl, ino, &i) : -ENOMEM;

	if (rc) {
		free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	if (i.type != SNAP_DIR)
		rc = -ENOTDIR;
	if (!rc && i.ref[0])
		rc = dobj_get(cl, i.ref, &h->d);
	if (!rc && (wb_on(cl) || !h->d)) {
		h->v = calloc(1, sizeof(*h->v));
		rc = h->v ? (cl->wb ? merge_listing(cl, &i, h) : 0) : -ENOMEM;
	}
	ninfo_release(&i);
	if (rc) {
		dhandle_free(cl, h);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dhandle_free(cl, h);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct cloud *cl = req_cl(req);
	struct dhandle *h = (struct dhandle *)(uintptr_t)fi->fh;
	size_t count = h->v ? h->n : h->d->d.n;
	char *buf = malloc(size);
	size_t used = 0;
	uint64_t parent = ROOT_INO;
	struct cnode *n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&cl->lock);
	if (ino != ROOT_INO && (n = nfind(cl, ino)) && n->parent)
		parent = n->parent;
	pthread_mutex_unlock(&cl->lock);
	for (uint64_t k = off < 0 ? 0 : (uint64_t)off; k < count + 2; k++) {
		struct stat st;
		const char *name;
		size_t need;

		memset(&st, 0, sizeof(st));
		if (k == 0) {
			name = ".";
			st.st_ino = ino;
			st.st_mode = S_IFDIR;
		} else if (k == 1) {
			name = "..";
			st.st_ino = parent;
			st.st_mode = S_IFDIR;
		} else if (h->v) {
			name = h->v[k - 2].name;
			st.st_ino = h->v[k - 2].ino;
			st.st_mode = type_bits(h->v[k - 2].type);
		} else {
			const struct snap_entry *e = &h->d->d.e[k - 2];

			name = e->name;
			st.st_ino = e->fid;
			st.st_mode = type_bits(e->type);
		}
		need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(k + 1));
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dhandle_free(req_cl(req), (struct dhandle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct cloud *cl = req_cl(req);
	struct cache_stats cs;
	struct statvfs sv;

	cache_get_stats(cl->cache, &cs);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_blocks = cs.limit / 4096;
	sv.f_bfree = sv.f_bavail = cs.limit > cs.bytes ? (cs.limit - cs.bytes) / 4096 : 0;
	sv.f_files = cs.files;
	sv.f_namemax = 255;
	sv.f_flag = cl->wb ? 0 : ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ---- status ---- */

static void json_str(struct tbuf *b, const char *s)
{
	char esc[8];

	tbuf_append(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\') {
			esc[0] = '\\';
			esc[1] = *s;
			tbuf_append(b, esc, 2);
		} else if ((unsigned char)*s < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned char)*s);
			tbuf_append(b, esc, 6);
		} else {
			tbuf_append(b, s, 1);
		}
	}
	tbuf_append(b, "\"", 1);
}

static void status_json(struct cloud *cl, struct tbuf *b)
{
	struct cache_stats cs;
	struct snap_root r;
	char num[1024], err[512];
	int64_t now = (int64_t)now_real_ns(), checked, switched;

	cache_get_stats(cl->cache, &cs);
	pthread_mutex_lock(&cl->lock);
	r = cl->cur;
	checked = cl->last_check;
	switched = cl->switched_at;
	snprintf(err, sizeof(err), "%s", cl->poll_err);
	pthread_mutex_unlock(&cl->lock);
	tbuf_append(b, "{\"url\":", 7);
	json_str(b, cl->o.url);
	tbuf_append(b, ",\"mountpoint\":", 14);
	json_str(b, cl->mountpoint);
	tbuf_append(b, ",\"cache_dir\":", 13);
	json_str(b, cl->o.cache_dir);
	snprintf(num, sizeof(num),
		 ",\"pid\":%ld,\"seq\":%llu,\"snapshot_created_ns\":%lld,\"snapshot_age_s\":%.1f,"
		 "\"switched_age_s\":%.1f,\"poll_s\":%d,\"last_check_age_s\":%.1f,"
		 "\"cache_bytes\":%llu,\"cache_limit\":%llu,\"cache_files\":%llu,\"mem_bytes\":%llu,"
		 "\"hits\":%llu,\"misses\":%llu,\"prefetched\":%llu,\"hit_rate\":%.4f,"
		 "\"corrupt_cache_files\":%llu,\"evicted\":%llu,\"requests_pending\":%d,"
		 "\"read_errors\":%lu,\"poll_error\":",
		 (long)getpid(), (unsigned long long)r.seq, (long long)r.created,
		 (double)(now - r.created) / NS, (double)(now - switched) / NS, cl->o.poll_s,
		 checked ? (double)(now - checked) / NS : -1.0, (unsigned long long)cs.bytes,
		 (unsigned long long)cs.limit, (unsigned long long)cs.files,
		 (unsigned long long)cs.mem_bytes, (unsigned long long)cs.hits,
		 (unsigned long long)cs.misses, (unsigned long long)cs.prefetched,
		 cs.hits + cs.misses ? (double)cs.hits / (double)(cs.hits + cs.misses) : 0.0,
		 (unsigned long long)cs.corrupt, (unsigned long long)cs.evicted,
		 atomic_load(&cl->pending), atomic_load(&cl->read_errors));
	tbuf_append(b, num, strlen(num));
	json_str(b, err);
	if (cl->wb) {
		struct wb_stats w;

		wb_get_stats(cl->wb, &w);
		tbuf_append(b, ",\"node\":", 8);
		json_str(b, cl->nkey.name);
		snprintf(num, sizeof(num),
			 ",\"writeback\":{\"entries\":%llu,\"pending\":%llu,\"pending_bytes\":%llu,"
			 "\"open_for_writing\":%llu,\"unsent_sets\":%llu,\"unacked_sets\":%llu,"
			 "\"uploaded_sets\":%llu,\"uploaded_changes\":%llu,\"uploaded_bytes\":%llu,"
			 "\"imported\":%llu,\"conflicts\":%llu,\"rejected\":%llu,\"kept\":%llu,"
			 "\"last_seq\":%llu,\"last_acked\":%llu,\"oldest_pending_age_s\":%.1f,"
			 "\"last_upload_age_s\":%.1f,\"last_ack_age_s\":%.1f,\"last_error_age_s\":%.1f,"
			 "\"last_error\":",
			 (unsigned long long)w.entries, (unsigned long long)w.pending,
			 (unsigned long long)w.pending_bytes, (unsigned long long)w.busy,
			 (unsigned long long)w.unsent_sets, (unsigned long long)w.unacked_sets,
			 (unsigned long long)w.uploaded_sets, (unsigned long long)w.uploaded_changes,
			 (unsigned long long)w.uploaded_bytes, (unsigned long long)w.imported,
			 (unsigned long long)w.conflicts, (unsigned long long)w.rejected,
			 (unsigned long long)w.kept, (unsigned long long)w.last_seq,
			 (unsigned long long)w.last_acked,
			 w.oldest_pending ? (double)(now - w.oldest_pending) / NS : -1.0,
			 w.last_upload ? (double)(now - w.last_upload) / NS : -1.0,
			 w.last_ack ? (double)(now - w.last_ack) / NS : -1.0,
			 w.last_error_at ? (double)(now - w.last_error_at) / NS : -1.0);
		tbuf_append(b, num, strlen(num));
		json_str(b, w.last_error);
		tbuf_append(b, "}", 1);
	}
	tbuf_append(b, "}\n", 2);
}

static void reply_xattr_text(fuse_req_t req, const char *text, size_t len, size_t size)
{
	if (!size)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, text, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct cloud *cl = req_cl(req);
	struct tbuf b = TBUF_INIT;

	if (ino == ROOT_INO && !strcmp(name, CLOUD_STATUS_XATTR)) {
		status_json(cl, &b);
		reply_xattr_text(req, (const char *)b.data, b.len, size);
		tbuf_release(&b);
		return;
	}
	if (cl->wb && !strcmp(name, CLOUD_STATE_XATTR)) {
		/* where this file's latest version is on its way home */
		struct ninfo i;
		char state[600], *vp;
		int rc = node_get(cl, ino, &i);

		if (rc) {
			fuse_reply_err(req, -rc);
			return;
		}
		vp = vpath_of_rel(i.path);
		if (!vp || wb_state(cl->wb, vp, state, sizeof(state)))
			snprintf(state, sizeof(state), "home");
		free(vp);
		ninfo_release(&i);
		reply_xattr_text(req, state, strlen(state), size);
		return;
	}
	fuse_reply_err(req, ENODATA);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct cloud *cl = req_cl(req);

	if (ino == ROOT_INO && cl->wb && !strcmp(name, CLOUD_SYNC_XATTR)) {
		wb_kick(cl->wb); /* tierfs sync: upload what is closed now */
		fuse_reply_err(req, 0);
		return;
	}
	fuse_reply_err(req, cl->wb ? ENOTSUP : EROFS); /* extended attributes are not carried home */
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, req_cl(req)->wb ? ENODATA : EROFS);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (!size)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

static const struct fuse_lowlevel_ops cloud_ops = {
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
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.create = op_create,
	.fallocate = op_fallocate,
	.fsync = op_fsync,
};

/* ---- snapshots and the poll thread ---- */

/* Read head and, when it names seq > have, that snapshot. 0, 1 (nothing newer), -errno with msg. */
static int read_newest(struct cloud *cl, uint64_t have, struct snap_root *out, char *msg, size_t len)
{
	struct tbuf b = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	uint64_t seq;
	int rc;

	rc = store_get(cl->st, "head", 0, STORE_WHOLE, &b);
	if (rc == -ENOENT) {
		snprintf(msg, len, "no snapshot published in '%s' yet", cl->o.url);
		goto out;
	}
	if (rc) {
		snprintf(msg, len, "cannot read '%s': %s", cl->o.url, store_errmsg());
		goto out;
	}
	rc = snap_head_decode(&cl->key, b.data, b.len, &seq);
	if (rc) {
		snprintf(msg, len, "cannot read snapshots in '%s' with key %s from '%s': wrong key, "
			 "or a damaged head object (%s)", cl->o.url, cl->key.id, cl->o.key_file,
			 codec_errmsg());
		rc = -EKEYREJECTED;
		goto out;
	}
	if (seq <= have) {
		rc = 1;
		goto out;
	}
	tbuf_reset(&b);
	snap_key_snapshot(seq, key);
	rc = store_get(cl->st, key, 0, STORE_WHOLE, &b);
	if (rc) {
		snprintf(msg, len, "cannot read snapshot '%s' of '%s': %s", key, cl->o.url,
			 rc == -ENOENT ? "missing from the store" : store_errmsg());
		goto out;
	}
	rc = snap_root_decode(&cl->key, seq, b.data, b.len, out);
	if (rc)
		snprintf(msg, len, "snapshot '%s' of '%s' failed verification: %s", key, cl->o.url,
			 codec_errmsg());
out:
	tbuf_release(&b);
	return rc;
}

static void write_status_file(struct cloud *cl)
{
	struct tbuf b = TBUF_INIT;
	char path[4200], tmp[4220];
	int fd;

	status_json(cl, &b);
	snprintf(path, sizeof(path), "%s/status", cl->o.cache_dir);
	snprintf(tmp, sizeof(tmp), "%s/tmp/status", cl->o.cache_dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		ssize_t n = write(fd, b.data, b.len);

		close(fd);
		if (n != (ssize_t)b.len || rename(tmp, path))
			unlink(tmp);
	}
	tbuf_release(&b);
}

/* The overlay let go of vp: tell the kernel to forget the name (it may have another inode now). */
static void wb_dropped(void *arg, const char *vp)
{
	struct cloud *cl = arg;
	char *dir = strdup(vp), *slash;
	struct ninfo pi;
	uint64_t parent = ROOT_INO;

	if (!dir || !cl->se)
		goto out;
	slash = strrchr(dir, '/');
	*slash = '\0';
	if (*dir) {
		if (entry_at(cl, dir, &pi))
			goto out;
		parent = pi.ino;
		ninfo_release(&pi);
	}
	fuse_lowlevel_notify_inval_entry(cl->se, parent, slash + 1, strlen(slash + 1));
out:
	free(dir);
}

/* Make the cloud-write rules of snapshot r this node's (write-back mounts only). */
static int load_wrules(struct cloud *cl, const struct snap_root *r, int announce, char *msg, size_t len)
{
	struct snap_wrules w = { NULL, 0 };
	struct tbuf b = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	int rc = 0;

	if (!cl->wb)
		return 0;
	pthread_mutex_lock(&cl->lock);
	rc = !strcmp(cl->wr_name, r->wrules);
	pthread_mutex_unlock(&cl->lock);
	if (rc)
		return 0;
	if (r->wrules[0]) {
		snap_key_wrules(r->wrules, key);
		rc = store_get(cl->st, key, 0, STORE_WHOLE, &b);
		if (rc) {
			snprintf(msg, len, "cannot read the cloud-write rules '%s': %s", key,
				 rc == -ENOENT ? "missing from the store" : store_errmsg());
			tbuf_release(&b);
			return -EIO;
		}
		rc = snap_wrules_decode(&cl->key, r->wrules, b.data, b.len, &w);
		tbuf_release(&b);
		if (rc) {
			snprintf(msg, len, "the cloud-write rules '%s' failed verification: %s", key,
				 codec_errmsg());
			return -EIO;
		}
	}
	pthread_mutex_lock(&cl->lock);
	snap_wrules_release(&cl->wr);
	cl->wr = w;
	rc = announce; /* a change while mounted, not the first load */
	memcpy(cl->wr_name, r->wrules, CODEC_NAME_SIZE);
	pthread_mutex_unlock(&cl->lock);
	for (size_t k = 0; rc && k < w.n; k++)
		log_info("this node may now write in '%s'", w.glob[k]);
	if (rc && !w.n)
		log_info("this node may no longer write anywhere");
	return 0;
}

static void check_head(struct cloud *cl)
{
	struct snap_root r;
	char msg[512];
	uint64_t have;
	int rc;

	pthread_mutex_lock(&cl->lock);
	have = cl->cur.seq;
	pthread_mutex_unlock(&cl->lock);
	rc = read_newest(cl, have, &r, msg, sizeof(msg));
	if (rc == 0) {
		/* Switch only to a snapshot whose root listing we hold. */
		struct dobj *d;

		rc = dobj_get(cl, r.root, &d);
		if (rc)
			snprintf(msg, sizeof(msg), "cannot read the root directory of snapshot %llu",
				 (unsigned long long)r.seq);
		else
			dobj_put(cl, d);
		if (!rc)
			rc = load_wrules(cl, &r, 1, msg, sizeof(msg));
	}
	pthread_mutex_lock(&cl->lock);
	if (rc < 0) {
		if (strcmp(cl->poll_err, msg))
			log_warn("%s; still serving snapshot %llu", msg, (unsigned long long)cl->cur.seq);
		snprintf(cl->poll_err, sizeof(cl->poll_err), "%s", msg);
	} else {
		if (cl->poll_err[0])
			log_info("'%s' is readable again", cl->o.url);
		cl->poll_err[0] = '\0';
		cl->last_check = (int64_t)now_real_ns();
		if (rc == 0 && r.seq > cl->cur.seq) {
			log_info("switched from snapshot %llu to %llu", (unsigned long long)cl->cur.seq,
				 (unsigned long long)r.seq);
			cl->cur = r;
			cl->switched_at = (int64_t)now_real_ns();
		}
	}
	have = cl->cur.seq;
	pthread_mutex_unlock(&cl->lock);
	if (cl->wb)
		wb_set_snapshot(cl->wb, have);
}

static void *poll_main(void *arg)
{
	struct cloud *cl = arg;
	uint64_t next_poll = now_mono_ns() + (uint64_t)cl->o.poll_s * NS;

	pthread_mutex_lock(&cl->lock);
	while (!cl->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&cl->poll_cv, &cl->lock, &ts);
		if (cl->stopping)
			break;
		pthread_mutex_unlock(&cl->lock);
		if (now_mono_ns() >= next_poll) {
			check_head(cl);
			next_poll = now_mono_ns() + (uint64_t)cl->o.poll_s * NS;
		}
		write_status_file(cl);
		pthread_mutex_lock(&cl->lock);
	}
	pthread_mutex_unlock(&cl->lock);
	return NULL;
}

/* ---- lifecycle ---- */

int cloud_run(const struct cloud_opts *o, const char *mountpoint, void (*ready)(void *arg),
	      void *arg, char *err, size_t errlen)
{
	struct cloud *cl = calloc(1, sizeof(*cl));
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	struct store_opts so;
	struct cache_opts co;
	char fsname[4200], msg[1024];
	int rc, mounted = 0, poller = 0, keyed = 0;

	if (!cl)
		return -ENOMEM;
	cl->o = *o;
	if (!cl->o.poll_s)
		cl->o.poll_s = 30;
	if (!cl->o.request_timeout_s)
		cl->o.request_timeout_s = 60;
	/* 16 chunks (64 MiB) ahead keep enough GETs in flight to match s3fs on
	 * s3rver (4: 0.80 of it; 8: 0.87); memory holds twice that window, so
	 * prefetched chunks are not evicted before the reader gets to them. */
	if (!cl->o.readahead)
		cl->o.readahead = 16;
	if (!cl->o.mem_cache)
		cl->o.mem_cache = 128ull << 20;
	cl->mountpoint = mountpoint;
	pthread_mutex_init(&cl->lock, NULL);
	pthread_cond_init(&cl->poll_cv, NULL);
	pthread_mutex_init(&cl->ra_lock, NULL);
	pthread_cond_init(&cl->ra_cv, NULL);
	cl->nsize = 1024;
	cl->ntab = calloc(cl->nsize, sizeof(*cl->ntab));
	if (!cl->ntab) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}

	pthread_mutex_init(&cl->cu_lock, NULL);
	if (outbox_is_node_key_file(o->key_file) == 1) {
		/* a node key: it reads the exports and writes as this node */
		rc = node_key_file_load(o->key_file, &cl->nkey);
		if (rc) {
			snprintf(err, errlen, "cannot load node key file '%s': %s", o->key_file,
				 outbox_errmsg()[0] ? outbox_errmsg() : strerror(-rc));
			goto out;
		}
		cl->key = cl->nkey.vol;
		keyed = 2;
	} else {
		rc = key_file_load(o->key_file, o->passphrase, &cl->key);
	}
	if (rc) {
		if (rc == -ENOKEY)
			snprintf(err, errlen, "key file '%s' is protected by a passphrase; set "
				 "TIERFS_PASSPHRASE or use --passphrase-file", o->key_file);
		else
			snprintf(err, errlen, "cannot load key file '%s': %s", o->key_file,
				 keys_errmsg()[0] ? keys_errmsg() : strerror(-rc));
		goto out;
	}
	keyed = keyed ? keyed : 1;
	memset(&so, 0, sizeof(so));
	so.timeout_ms = store_timeout_ms(cl);
	so.connect_timeout_ms = 3000;
	so.max_retries = 2;
	rc = store_open(o->url, &so, &cl->st, msg, sizeof(msg));
	if (rc) {
		snprintf(err, errlen, "%s", msg);
		goto out;
	}
	rc = read_newest(cl, 0, &cl->cur, msg, sizeof(msg));
	if (rc) {
		snprintf(err, errlen, "%s", msg);
		rc = rc > 0 ? -EIO : rc;
		goto out;
	}
	cl->last_check = cl->switched_at = cl->mounted_at = (int64_t)now_real_ns();
	memset(&co, 0, sizeof(co));
	co.dir = o->cache_dir;
	co.limit = o->cache_size;
	co.mem_limit = cl->o.mem_cache;
	co.key = &cl->key;
	co.fetch = fetch_chunk;
	co.fetch_arg = cl;
	rc = cache_open(&co, &cl->cache, msg, sizeof(msg));
	if (rc) {
		snprintf(err, errlen, "%s", msg);
		goto out;
	}
	if (keyed == 2) {
		rc = wb_open(o->cache_dir, &cl->nkey, cl->st, cl->o.request_timeout_s, &cl->wb, msg, sizeof(msg));
		if (!rc)
			rc = load_wrules(cl, &cl->cur, 0, msg, sizeof(msg));
		if (rc) {
			snprintf(err, errlen, "%s", msg);
			goto out;
		}
		wb_set_snapshot(cl->wb, cl->cur.seq);
	}

	snprintf(fsname, sizeof(fsname), "-ofsname=%s,subtype=tierfs,%sallow_other,default_permissions",
		 o->url, cl->wb ? "" : "ro,");
	if (fuse_opt_add_arg(&args, "tierfs") || fuse_opt_add_arg(&args, fsname) ||
	    (o->debug && fuse_opt_add_arg(&args, "-d"))) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	cl->se = fuse_session_new(&args, &cloud_ops, sizeof(cloud_ops), cl);
	if (!cl->se) {
		snprintf(err, errlen, "cannot start FUSE session (bad mount options?)");
		rc = -EINVAL;
		goto out;
	}
	if (fuse_set_signal_handlers(cl->se)) {
		snprintf(err, errlen, "cannot install signal handlers");
		rc = -EIO;
		goto out;
	}
	if (fuse_session_mount(cl->se, mountpoint)) {
		snprintf(err, errlen, "cannot mount on '%s'", mountpoint);
		rc = -EIO;
		goto out;
	}
	mounted = 1;
	cl->io.mountpoint = mountpoint;
	cl->io.readahead_kb = o->readahead_kb ? o->readahead_kb : 8192;
	cl->io.uring_want = !o->no_uring;
	if (fuse_io_attach(cl->se, &cl->io)) {
		snprintf(err, errlen, "cannot set up the FUSE transport");
		rc = -EIO;
		goto out;
	}
	if (pthread_create(&cl->poller, NULL, poll_main, cl) == 0)
		poller = 1;
	else
		log_error("cannot start the poll thread: snapshots will not switch");
	if (cl->o.readahead > 0) {
		int want = cl->o.readahead < 8 ? cl->o.readahead : 8;

		cl->ra_threads = calloc((size_t)want, sizeof(*cl->ra_threads));
		for (int k = 0; cl->ra_threads && k < want; k++)
			if (pthread_create(&cl->ra_threads[k], NULL, ra_main, cl) == 0)
				cl->n_ra++;
	}
	if (cl->wb)
		wb_on_drop(cl->wb, wb_dropped, cl);
	if (cl->wb && wb_start(cl->wb))
		log_error("cannot start the write-back uploader: changes stay staged until the next mount");
	write_status_file(cl);
	if (ready)
		ready(arg);
	log_info("cloud mount of '%s' on '%s': snapshot %llu, cache '%s'", o->url, mountpoint,
		 (unsigned long long)cl->cur.seq, o->cache_dir);
	lc = fuse_loop_cfg_create();
	if (!lc) {
		rc = -ENOMEM;
		goto out;
	}
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_max_threads(lc, o->max_threads ? o->max_threads : 16);
	fuse_loop_cfg_set_idle_threads(lc, 8);
	rc = fuse_session_loop_mt(cl->se, lc);
	if (rc < 0)
		log_error("FUSE session ended with an error: %s", strerror(-rc));
	rc = 0;
	fuse_io_detach(&cl->io); /* no request is served after this */
out:
	if (poller) {
		pthread_mutex_lock(&cl->lock);
		cl->stopping = 1;
		pthread_cond_broadcast(&cl->poll_cv);
		pthread_mutex_unlock(&cl->lock);
		pthread_join(cl->poller, NULL);
	}
	pthread_mutex_lock(&cl->ra_lock);
	cl->ra_stop = 1;
	pthread_cond_broadcast(&cl->ra_cv);
	pthread_mutex_unlock(&cl->ra_lock);
	for (int k = 0; k < cl->n_ra; k++)
		pthread_join(cl->ra_threads[k], NULL);
	free(cl->ra_threads);
	/* closed files still staged: one bounded try to send them now */
	wb_close(cl->wb, mounted ? cl->o.request_timeout_s : 0);
	cl->wb = NULL;
	if (mounted)
		fuse_session_unmount(cl->se);
	if (cl->se) {
		fuse_io_detach(&cl->io);
		fuse_remove_signal_handlers(cl->se);
		fuse_session_destroy(cl->se);
	}
	fuse_loop_cfg_destroy(lc);
	fuse_opt_free_args(&args);
	for (size_t s = 0; cl->ntab && s < cl->nsize; s++)
		while (cl->ntab[s])
			nremove(cl, cl->ntab[s]);
	free(cl->ntab);
	for (size_t s = 0; s < DTAB_SIZE; s++)
		while (cl->dtab[s]) {
			struct dobj *d = cl->dtab[s];

			cl->dtab[s] = d->hnext;
			dobj_free(d);
		}
	if (cl->cache && mounted)
		write_status_file(cl);
	cache_close(cl->cache);
	store_close(cl->st);
	if (keyed)
		volkey_release(&cl->key);
	node_key_release(&cl->nkey);
	snap_wrules_release(&cl->wr);
	pthread_mutex_destroy(&cl->cu_lock);
	pthread_cond_destroy(&cl->ra_cv);
	pthread_mutex_destroy(&cl->ra_lock);
	pthread_cond_destroy(&cl->poll_cv);
	pthread_mutex_destroy(&cl->lock);
	free(cl);
	return rc;
}
