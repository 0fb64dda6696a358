/*
 * cloud_wb.c - write-back on a cloud node (interface in cloud_wb.h): the
 * overlay of what jobs wrote, its staging on the node's disk, and the
 * uploader that sends it home through the node's outbox (outbox.h).
 *
 * DESIGN
 * - The overlay is a set of entries by absolute path ("/jobs/q3/out/a"),
 *   kept whole in memory (hashed by path and by inode number) and written
 *   through to CACHE_DIR/wb/wb.db (SQLite, WAL) on every namespace change
 *   and on every close of a written file; file contents live in
 *   CACHE_DIR/wb/data/ID. A kill -9 loses nothing that was closed: the next
 *   mount loads the journal and the uploader goes on (fsync makes it
 *   durable against power loss too).
 * - An entry is dirty until a change set carries its current version. The
 *   uploader (one thread) takes the dirty entries nobody has open for
 *   writing, uploads their contents as chunk objects sealed with the node's
 *   key under outbox/DIR/chunks/SEQ/, checks that none of them changed
 *   meanwhile (write generation), then in one transaction records the sealed
 *   change set and marks the entries clean with their new base (the node's
 *   own change SEQ/IDX), and puts the commit object. A change set recorded
 *   but not yet in the store is put again until it is: the store learns
 *   every set exactly as it was sealed, in order.
 * - Home answers each set with an ack (outbox/DIR/acks/SEQ): per change
 *   imported, conflict, rejected or kept aside. The uploader reads acks,
 *   records each entry's state (status, the user.tierfs.state xattr), deletes
 *   the ack, and drops imported and conflicting entries once the mount shows
 *   a snapshot that includes home's result (ack.snap_seq): from then on the
 *   node sees what every other node sees. Rejected and kept entries stay, so
 *   nothing a job wrote is lost on the node.
 * - Locks: wb->lock protects the entries, the counters and the SQLite
 *   connection; it is never held over store I/O or reads of data files.
 */
#include "cloud_wb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "codec.h"
#include "log.h"

#define WB_CHUNK (4u << 20)   /* bytes of plaintext per chunk, as home's volume */
#define HASH_SIZE 4096
#define MAX_SET_CHANGES 20000 /* changes per change set */
#define MAX_SET_BYTES (4ull << 30)
#define NS 1000000000ll
#define UPLOADERS 8           /* files of a change set uploaded at once */

struct went {
	struct wb_attr a;
	int dirty;
	uint32_t sent_idx;
	int writers;          /* open write handles */
	uint64_t gen;         /* bumped on every data change */
	int64_t changed;      /* ns: oldest unsent change */
	struct went *pnext, *inext, *dnext;
};

struct wb {
	char dir[4096];       /* CACHE_DIR/wb */
	struct node_key key;
	struct store *st;
	int timeout_s;

	pthread_mutex_t lock;
	pthread_cond_t cv;
	sqlite3 *db;               /* lock */
	struct went *ph[HASH_SIZE]; /* lock: by path */
	struct went *ih[HASH_SIZE]; /* lock: by ino (not WB_GONE) */
	struct went *dh[HASH_SIZE]; /* lock: by id */
	size_t n;
	uint64_t snap_seq;         /* lock: the mount's current snapshot */
	int kicked, stop;
	pthread_t thread;
	int started;
	int64_t backoff_until;     /* uploader thread only (mono ns) */
	int64_t backoff_ns;
	struct wb_stats stats;     /* lock (the counters since mount) */
	void (*dropped)(void *arg, const char *path); /* called without the lock */
	void *dropped_arg;
};

static int64_t real_ns(void)
{
	return (int64_t)now_real_ns();
}

void wb_attr_release(struct wb_attr *a)
{
	if (!a)
		return;
	free(a->path);
	free(a->target);
	free(a->detail);
	a->path = a->target = a->detail = NULL;
}

static int attr_copy(struct wb_attr *dst, const struct wb_attr *src)
{
	*dst = *src;
	dst->path = src->path ? strdup(src->path) : NULL;
	dst->target = src->target ? strdup(src->target) : NULL;
	dst->detail = src->detail ? strdup(src->detail) : NULL;
	if ((src->path && !dst->path) || (src->target && !dst->target) || (src->detail && !dst->detail)) {
		wb_attr_release(dst);
		return -ENOMEM;
	}
	return 0;
}

static size_t hpath(const char *p)
{
	uint64_t h = 1469598103934665603ull;

	for (; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return (size_t)(h >> 17) & (HASH_SIZE - 1);
}

static size_t hino(uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 40) & (HASH_SIZE - 1);
}

static struct went *find_path(struct wb *wb, const char *path)
{
	for (struct went *e = wb->ph[hpath(path)]; e; e = e->pnext)
		if (!strcmp(e->a.path, path))
			return e;
	return NULL;
}

static struct went *find_ino(struct wb *wb, uint64_t ino)
{
	for (struct went *e = wb->ih[hino(ino)]; e; e = e->inext)
		if (e->a.ino == ino && e->a.kind != WB_GONE)
			return e;
	return NULL;
}

static struct went *find_id(struct wb *wb, uint64_t id)
{
	for (struct went *e = wb->dh[hino(id)]; e; e = e->dnext)
		if (e->a.id == id)
			return e;
	return NULL;
}

static void link_entry(struct wb *wb, struct went *e)
{
	size_t h = hpath(e->a.path);

	e->pnext = wb->ph[h];
	wb->ph[h] = e;
	if (e->a.kind != WB_GONE && e->a.ino) {
		h = hino(e->a.ino);
		e->inext = wb->ih[h];
		wb->ih[h] = e;
	}
	h = hino(e->a.id);
	e->dnext = wb->dh[h];
	wb->dh[h] = e;
	wb->n++;
}

static void unlink_entry(struct wb *wb, struct went *e)
{
	struct went **p = &wb->ph[hpath(e->a.path)];

	while (*p && *p != e)
		p = &(*p)->pnext;
	if (*p)
		*p = e->pnext;
	for (p = &wb->ih[hino(e->a.ino)]; *p && *p != e; p = &(*p)->inext)
		;
	if (*p)
		*p = e->inext;
	for (p = &wb->dh[hino(e->a.id)]; *p && *p != e; p = &(*p)->dnext)
		;
	if (*p)
		*p = e->dnext;
	e->pnext = e->inext = e->dnext = NULL;
	wb->n--;
}

/* ---- the journal (wb->lock held) ---- */

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS entry(id INTEGER PRIMARY KEY, ino INTEGER NOT NULL, path BLOB UNIQUE NOT NULL,"
	" kind INTEGER NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
	" size INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, target BLOB,"
	" base INTEGER NOT NULL, base_fid INTEGER NOT NULL, base_mtime INTEGER NOT NULL,"
	" base_size INTEGER NOT NULL, state INTEGER NOT NULL, detail TEXT, sent_seq INTEGER NOT NULL,"
	" sent_idx INTEGER NOT NULL, dirty INTEGER NOT NULL, changed INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS cs(seq INTEGER PRIMARY KEY, state INTEGER NOT NULL, obj BLOB NOT NULL,"
	" n INTEGER NOT NULL, bytes INTEGER NOT NULL, created INTEGER NOT NULL, snap_seq INTEGER);"
	"CREATE TABLE IF NOT EXISTS change(seq INTEGER NOT NULL, idx INTEGER NOT NULL, path BLOB NOT NULL,"
	" base INTEGER NOT NULL, base_fid INTEGER NOT NULL, base_mtime INTEGER NOT NULL,"
	" base_size INTEGER NOT NULL, PRIMARY KEY(seq, idx)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS log(path BLOB PRIMARY KEY, seq INTEGER NOT NULL, state INTEGER NOT NULL,"
	" detail TEXT, at INTEGER NOT NULL) WITHOUT ROWID;";

enum { CS_SEALED = 0, CS_UPLOADED = 1, CS_ACKED = 2 };

static int exec(struct wb *wb, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(wb->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_error("write-back journal '%s/wb.db': %s", wb->dir, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static sqlite3_stmt *prep(struct wb *wb, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(wb->db, sql, -1, &s, NULL) != SQLITE_OK) {
		log_error("write-back journal: %s", sqlite3_errmsg(wb->db));
		return NULL;
	}
	return s;
}

/* Step a statement to its end and finalize it. 0 or -EIO. */
static int done(struct wb *wb, sqlite3_stmt *s)
{
	int rc = s && sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;

	if (s && rc)
		log_error("write-back journal: %s", sqlite3_errmsg(wb->db));
	sqlite3_finalize(s);
	return rc;
}

static int row_save(struct wb *wb, const struct went *e)
{
	sqlite3_stmt *s = prep(wb, "INSERT OR REPLACE INTO entry(id, ino, path, kind, mode, uid, gid, size, mtime,"
			   " ctime, target, base, base_fid, base_mtime, base_size, state, detail, sent_seq,"
			   " sent_idx, dirty, changed) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,"
			   "?15,?16,?17,?18,?19,?20,?21)");
	const struct wb_attr *a = &e->a;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)a->id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)a->ino);
	sqlite3_bind_blob(s, 3, a->path, (int)strlen(a->path), SQLITE_STATIC);
	sqlite3_bind_int(s, 4, a->kind);
	sqlite3_bind_int64(s, 5, a->mode);
	sqlite3_bind_int64(s, 6, a->uid);
	sqlite3_bind_int64(s, 7, a->gid);
	sqlite3_bind_int64(s, 8, (sqlite3_int64)a->size);
	sqlite3_bind_int64(s, 9, a->mtime);
	sqlite3_bind_int64(s, 10, a->ctime);
	if (a->target)
		sqlite3_bind_blob(s, 11, a->target, (int)strlen(a->target), SQLITE_STATIC);
	sqlite3_bind_int(s, 12, a->base);
	sqlite3_bind_int64(s, 13, (sqlite3_int64)a->base_fid);
	sqlite3_bind_int64(s, 14, a->base_mtime);
	sqlite3_bind_int64(s, 15, (sqlite3_int64)a->base_size);
	sqlite3_bind_int(s, 16, a->state);
	if (a->detail)
		sqlite3_bind_text(s, 17, a->detail, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 18, (sqlite3_int64)a->sent_seq);
	sqlite3_bind_int64(s, 19, e->sent_idx);
	sqlite3_bind_int(s, 20, e->dirty);
	sqlite3_bind_int64(s, 21, e->changed);
	return done(wb, s);
}

static int row_del(struct wb *wb, uint64_t id)
{
	sqlite3_stmt *s = prep(wb, "DELETE FROM entry WHERE id=?1");

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
	return done(wb, s);
}

static void data_path(const struct wb *wb, uint64_t id, char *out, size_t len)
{
	snprintf(out, len, "%s/data/%llu", wb->dir, (unsigned long long)id);
}

static char *blob_str(sqlite3_stmt *s, int col)
{
	const void *p = sqlite3_column_blob(s, col);
	int n = sqlite3_column_bytes(s, col);
	char *r;

	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return NULL;
	r = malloc((size_t)n + 1);
	if (r) {
		memcpy(r, p, (size_t)n);
		r[n] = '\0';
	}
	return r;
}

static int load(struct wb *wb)
{
	sqlite3_stmt *s = prep(wb, "SELECT id, ino, path, kind, mode, uid, gid, size, mtime, ctime, target, base,"
			   " base_fid, base_mtime, base_size, state, detail, sent_seq, sent_idx, dirty, changed"
			   " FROM entry");
	int rc = 0;

	if (!s)
		return -EIO;
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct went *e = calloc(1, sizeof(*e));
		const char *d;

		if (!e) {
			rc = -ENOMEM;
			break;
		}
		e->a.id = (uint64_t)sqlite3_column_int64(s, 0);
		e->a.ino = (uint64_t)sqlite3_column_int64(s, 1);
		e->a.path = blob_str(s, 2);
		e->a.kind = (uint8_t)sqlite3_column_int(s, 3);
		e->a.mode = (uint32_t)sqlite3_column_int64(s, 4);
		e->a.uid = (uint32_t)sqlite3_column_int64(s, 5);
		e->a.gid = (uint32_t)sqlite3_column_int64(s, 6);
		e->a.size = (uint64_t)sqlite3_column_int64(s, 7);
		e->a.mtime = sqlite3_column_int64(s, 8);
		e->a.ctime = sqlite3_column_int64(s, 9);
		e->a.target = blob_str(s, 10);
		e->a.base = (uint8_t)sqlite3_column_int(s, 11);
		e->a.base_fid = (uint64_t)sqlite3_column_int64(s, 12);
		e->a.base_mtime = sqlite3_column_int64(s, 13);
		e->a.base_size = (uint64_t)sqlite3_column_int64(s, 14);
		e->a.state = sqlite3_column_int(s, 15);
		d = (const char *)sqlite3_column_text(s, 16);
		e->a.detail = d ? strdup(d) : NULL;
		e->a.sent_seq = (uint64_t)sqlite3_column_int64(s, 17);
		e->sent_idx = (uint32_t)sqlite3_column_int64(s, 18);
		e->dirty = sqlite3_column_int(s, 19);
		e->changed = sqlite3_column_int64(s, 20);
		if (!e->a.path) {
			wb_attr_release(&e->a);
			free(e);
			rc = -ENOMEM;
			break;
		}
		/* the size of a staged file is its data file's (a kill -9 after writes) */
		if (e->a.kind == WB_FILE) {
			char p[4200];
			struct stat st;

			data_path(wb, e->a.id, p, sizeof(p));
			if (stat(p, &st) && errno == ENOENT) {
				/* a copy of home's file cut short before any write: forget it */
				log_warn("write-back: '%s' has no staged data (a copy cut short); dropped",
					 e->a.path);
				row_del(wb, e->a.id);
				wb_attr_release(&e->a);
				free(e);
				continue;
			}
			if ((uint64_t)st.st_size != e->a.size) {
				e->a.size = (uint64_t)st.st_size;
				e->dirty = 1;
				if (!e->changed)
					e->changed = real_ns();
			}
		}
		link_entry(wb, e);
	}
	sqlite3_finalize(s);
	return rc;
}

/* The journal must belong to this node key: another's staged changes are never sent as ours. */
static int check_owner(struct wb *wb, char *err, size_t errlen)
{
	char want[256], *have = NULL;
	sqlite3_stmt *s;
	int rc = 0;

	snprintf(want, sizeof(want), "%s:%u:%s", wb->key.name, wb->key.serial, wb->key.vol.id);
	s = prep(wb, "SELECT v FROM meta WHERE k='owner'");
	if (!s)
		return -EIO;
	if (sqlite3_step(s) == SQLITE_ROW)
		have = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	if (!have) {
		s = prep(wb, "INSERT INTO meta(k, v) VALUES('owner', ?1)");
		if (!s)
			return -EIO;
		sqlite3_bind_text(s, 1, want, -1, SQLITE_STATIC);
		return done(wb, s);
	}
	if (strcmp(have, want)) {
		snprintf(err, errlen, "the write-back staging area '%s' belongs to another node key (%s);"
			 " use another --cache directory", wb->dir, have);
		rc = -EEXIST;
	}
	free(have);
	return rc;
}

/* Temporary files of copies cut short by a crash, data files no entry names. */
static void clean_tmp(struct wb *wb)
{
	char p[4200];
	DIR *d;
	struct dirent *de;

	snprintf(p, sizeof(p), "%s/data", wb->dir);
	d = opendir(p);
	while (d && (de = readdir(d))) {
		char *end;
		unsigned long long id = strtoull(de->d_name, &end, 10);

		/* copies cut short, and data of entries gone while a file was open */
		if (!strncmp(de->d_name, "tmp.", 4) || (!*end && end != de->d_name && !find_id(wb, id)))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	if (d)
		closedir(d);
}

int wb_open(const char *cache_dir, const struct node_key *k, struct store *st, int timeout_s,
	    struct wb **out, char *err, size_t errlen)
{
	struct wb *wb = calloc(1, sizeof(*wb));
	char p[4200];
	int rc;

	if (!wb)
		return -ENOMEM;
	snprintf(wb->dir, sizeof(wb->dir), "%s/wb", cache_dir);
	wb->key = *k;
	wb->st = st;
	wb->timeout_s = timeout_s;
	pthread_mutex_init(&wb->lock, NULL);
	pthread_cond_init(&wb->cv, NULL);
	snprintf(p, sizeof(p), "%s/data", wb->dir);
	if ((mkdir(wb->dir, 0700) && errno != EEXIST) || (mkdir(p, 0700) && errno != EEXIST)) {
		rc = -errno;
		snprintf(err, errlen, "cannot make the write-back staging area '%s': %s", wb->dir, strerror(errno));
		goto fail;
	}
	snprintf(p, sizeof(p), "%s/wb.db", wb->dir);
	if (sqlite3_open_v2(p, &wb->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the write-back journal '%s': %s", p,
			 wb->db ? sqlite3_errmsg(wb->db) : "out of memory");
		rc = -EIO;
		goto fail;
	}
	sqlite3_busy_timeout(wb->db, 5000);
	if (exec(wb, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL") || exec(wb, schema)) {
		snprintf(err, errlen, "cannot use the write-back journal '%s' (see the log)", p);
		rc = -EIO;
		goto fail;
	}
	if ((rc = check_owner(wb, err, errlen)))
		goto fail;
	if ((rc = load(wb))) {
		snprintf(err, errlen, "cannot load the write-back journal '%s': %s", p, strerror(-rc));
		goto fail;
	}
	if (wb->n)
		log_info("write-back: %zu staged entries from an earlier mount", wb->n);
	clean_tmp(wb);
	*out = wb;
	return 0;
fail:
	wb_close(wb, 0);
	return rc;
}

size_t wb_count(struct wb *wb)
{
	size_t n;

	pthread_mutex_lock(&wb->lock);
	n = wb->n;
	pthread_mutex_unlock(&wb->lock);
	return n;
}

/* A copy of the entry at path (or, path NULL, with inode ino). */
static int get_copy(struct wb *wb, const char *path, uint64_t ino, struct wb_attr *out)
{
	struct went *e;
	int rc = -ENOENT;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&wb->lock);
	if ((e = path ? find_path(wb, path) : find_ino(wb, ino)))
		rc = attr_copy(out, &e->a);
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

int wb_get_path(struct wb *wb, const char *path, struct wb_attr *out)
{
	return get_copy(wb, path, 0, out);
}

int wb_get_ino(struct wb *wb, uint64_t ino, struct wb_attr *out)
{
	return get_copy(wb, NULL, ino, out);
}

static void mark_dirty(struct went *e)
{
	if (!e->dirty)
		e->changed = real_ns();
	e->dirty = 1;
	e->gen++;
	e->a.state = OUTBOX_PENDING;
	free(e->a.detail);
	e->a.detail = NULL;
}

/* A new entry id, never reused (a handle of a dropped entry may still name its id). */
static uint64_t next_id(struct wb *wb)
{
	sqlite3_stmt *s = prep(wb, "SELECT max(coalesce((SELECT max(id) FROM entry), 0),"
			   " coalesce((SELECT CAST(v AS INTEGER) FROM meta WHERE k='next_id'), 0)) + 1");
	uint64_t id = 0;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		id = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	s = id ? prep(wb, "INSERT OR REPLACE INTO meta(k, v) VALUES('next_id', ?1)") : NULL;
	if (s) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
		if (done(wb, s))
			id = 0;
	}
	return id;
}

static void free_entry(struct wb *wb, struct went *e, int drop_data)
{
	if (drop_data && e->a.kind == WB_FILE && e->a.id) {
		char p[4200];

		data_path(wb, e->a.id, p, sizeof(p));
		unlink(p);
	}
	wb_attr_release(&e->a);
	free(e);
}

int wb_set(struct wb *wb, struct wb_attr *a)
{
	struct went *e, *old;
	int rc;

	pthread_mutex_lock(&wb->lock);
	old = find_path(wb, a->path);
	if (a->id && !(old && old->a.id == a->id) && a->kind != WB_GONE && !a->open_writer &&
	    (!find_id(wb, a->id) || find_id(wb, a->id) != old)) {
		/* an update of an entry that went meanwhile (dropped, renamed): the caller starts again */
		pthread_mutex_unlock(&wb->lock);
		return -ENOENT;
	}
	if (old && old->a.id == a->id && a->id) {
		/* an update of the same entry: its base and history stay */
		struct wb_attr n;

		if (attr_copy(&n, a)) {
			pthread_mutex_unlock(&wb->lock);
			return -ENOMEM;
		}
		n.base = old->a.base;
		n.base_fid = old->a.base_fid;
		n.base_mtime = old->a.base_mtime;
		n.base_size = old->a.base_size;
		n.sent_seq = old->a.sent_seq;
		unlink_entry(wb, old);
		wb_attr_release(&old->a);
		old->a = n;
		link_entry(wb, old);
		mark_dirty(old);
		rc = row_save(wb, old);
		pthread_mutex_unlock(&wb->lock);
		return rc;
	}
	e = calloc(1, sizeof(*e));
	if (!e || attr_copy(&e->a, a)) {
		free(e);
		pthread_mutex_unlock(&wb->lock);
		return -ENOMEM;
	}
	if (!e->a.id && !(e->a.id = next_id(wb))) {
		free_entry(wb, e, 0);
		pthread_mutex_unlock(&wb->lock);
		return -EIO;
	}
	if (!e->a.ino && e->a.kind != WB_GONE)
		e->a.ino = WB_INO_BASE + e->a.id;
	e->writers = a->open_writer ? 1 : 0;
	if (old) {
		/* replacing another entry: what home had at the path stays the base */
		e->a.base = old->a.base;
		e->a.base_fid = old->a.base_fid;
		e->a.base_mtime = old->a.base_mtime;
		e->a.base_size = old->a.base_size;
		unlink_entry(wb, old);
		row_del(wb, old->a.id);
		free_entry(wb, old, old->writers == 0 && old->a.id != e->a.id);
	}
	mark_dirty(e);
	rc = row_save(wb, e);
	if (rc) {
		free_entry(wb, e, 0);
	} else {
		link_entry(wb, e);
		a->id = e->a.id;
		a->ino = e->a.ino;
	}
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

int wb_delete(struct wb *wb, const char *path, const struct wb_attr *snap_base)
{
	struct went *e;
	int rc = 0;

	pthread_mutex_lock(&wb->lock);
	e = find_path(wb, path);
	if (e) {
		int home_has = e->a.base != OUTBOX_BASE_NONE;

		unlink_entry(wb, e);
		if (!home_has) {
			rc = row_del(wb, e->a.id);
			free_entry(wb, e, e->writers == 0);
			pthread_mutex_unlock(&wb->lock);
			return rc;
		}
		if (e->a.kind == WB_FILE && e->writers == 0) {
			char p[4200];

			data_path(wb, e->a.id, p, sizeof(p));
			unlink(p);
		}
		e->a.kind = WB_GONE;
		e->a.ino = 0;
		e->a.size = 0;
		free(e->a.target);
		e->a.target = NULL;
		link_entry(wb, e);
	} else {
		if (!snap_base) {
			pthread_mutex_unlock(&wb->lock);
			return -ENOENT;
		}
		e = calloc(1, sizeof(*e));
		if (!e || !(e->a.path = strdup(path))) {
			free(e);
			pthread_mutex_unlock(&wb->lock);
			return -ENOMEM;
		}
		e->a.kind = WB_GONE;
		e->a.base = OUTBOX_BASE_HOME;
		e->a.base_fid = snap_base->ino;
		e->a.base_mtime = snap_base->mtime;
		e->a.base_size = snap_base->size;
		e->a.mode = snap_base->mode;
		if (!(e->a.id = next_id(wb))) {
			free_entry(wb, e, 0);
			pthread_mutex_unlock(&wb->lock);
			return -EIO;
		}
		link_entry(wb, e);
	}
	mark_dirty(e);
	e->a.mtime = e->a.ctime = real_ns();
	rc = row_save(wb, e);
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

static int is_below(const char *path, const char *dir, size_t dl)
{
	return !strncmp(path, dir, dl) && path[dl] == '/';
}

int wb_rename(struct wb *wb, const char *from, const char *to, const struct wb_attr *dst_snap,
	      const struct wb_attr *from_snap)
{
	struct went *e, *d, *gone = NULL;
	size_t fl = strlen(from);
	char *np;
	int rc = 0;

	pthread_mutex_lock(&wb->lock);
	e = find_path(wb, from);
	if (!e || e->a.kind == WB_GONE) {
		pthread_mutex_unlock(&wb->lock);
		return -ENOENT;
	}
	if (e->a.kind == WB_DIR && (e->a.base != OUTBOX_BASE_NONE || from_snap)) {
		pthread_mutex_unlock(&wb->lock);
		return -EXDEV; /* home has this directory: mv copies instead */
	}
	if (e->a.kind == WB_DIR) {
		/* only entries made here live below a directory made here */
		for (size_t s = 0; s < HASH_SIZE; s++)
			for (struct went *c = wb->ph[s]; c; c = c->pnext)
				if (is_below(c->a.path, from, fl) && c->a.base != OUTBOX_BASE_NONE) {
					pthread_mutex_unlock(&wb->lock);
					return -EXDEV;
				}
	}
	np = strdup(to);
	if (!np) {
		pthread_mutex_unlock(&wb->lock);
		return -ENOMEM;
	}
	/* what home has at from must be deleted there */
	if (e->a.base != OUTBOX_BASE_NONE) {
		gone = calloc(1, sizeof(*gone));
		if (!gone || !(gone->a.path = strdup(from)) || !(gone->a.id = next_id(wb))) {
			if (gone)
				free(gone->a.path);
			free(gone);
			free(np);
			pthread_mutex_unlock(&wb->lock);
			return -ENOMEM;
		}
		gone->a.kind = WB_GONE;
		gone->a.base = e->a.base;
		gone->a.base_fid = e->a.base_fid;
		gone->a.base_mtime = e->a.base_mtime;
		gone->a.base_size = e->a.base_size;
		gone->a.mtime = gone->a.ctime = real_ns();
	}
	unlink_entry(wb, e);
	/* the entry now stands where to was: its base is what home has there */
	d = find_path(wb, to);
	if (d) {
		e->a.base = d->a.base;
		e->a.base_fid = d->a.base_fid;
		e->a.base_mtime = d->a.base_mtime;
		e->a.base_size = d->a.base_size;
		unlink_entry(wb, d);
		row_del(wb, d->a.id);
		free_entry(wb, d, d->writers == 0);
	} else if (dst_snap) {
		e->a.base = OUTBOX_BASE_HOME;
		e->a.base_fid = dst_snap->ino;
		e->a.base_mtime = dst_snap->mtime;
		e->a.base_size = dst_snap->size;
	} else {
		e->a.base = OUTBOX_BASE_NONE;
		e->a.base_fid = 0;
		e->a.base_mtime = 0;
		e->a.base_size = 0;
	}
	free(e->a.path);
	e->a.path = np;
	e->a.ctime = real_ns();
	mark_dirty(e);
	link_entry(wb, e);
	rc = exec(wb, "BEGIN");
	if (!rc)
		rc = row_save(wb, e);
	if (!rc && gone) {
		mark_dirty(gone);
		link_entry(wb, gone);
		rc = row_save(wb, gone);
	}
	if (!rc && e->a.kind == WB_DIR) {
		size_t tl = strlen(to);

		for (size_t s = 0; !rc && s < HASH_SIZE; s++)
			for (struct went *c = wb->ph[s], *next; !rc && c; c = next) {
				next = c->pnext;
				if (!is_below(c->a.path, from, fl) || c == e)
					continue;
				if (asprintf(&np, "%.*s%s", (int)tl, to, c->a.path + fl) < 0) {
					rc = -ENOMEM;
					break;
				}
				/* an entry already there (a delete of home's file): this one
				 * stands in its place, on what home has there */
				{
					struct went *x = find_path(wb, np);

					if (x && x != c) {
						c->a.base = x->a.base;
						c->a.base_fid = x->a.base_fid;
						c->a.base_mtime = x->a.base_mtime;
						c->a.base_size = x->a.base_size;
						unlink_entry(wb, x);
						row_del(wb, x->a.id);
						free_entry(wb, x, x->writers == 0);
					}
				}
				unlink_entry(wb, c);
				free(c->a.path);
				c->a.path = np;
				link_entry(wb, c);
				mark_dirty(c);
				rc = row_save(wb, c);
				next = NULL; /* the chains changed: start this slot again */
				s = (size_t)-1;
				break;
			}
	}
	rc = rc ? rc : exec(wb, "COMMIT");
	if (rc)
		exec(wb, "ROLLBACK");
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

int wb_children(struct wb *wb, const char *dir, void (*cb)(void *arg, const struct wb_attr *a), void *arg)
{
	size_t dl = strcmp(dir, "/") ? strlen(dir) : 0;

	pthread_mutex_lock(&wb->lock);
	for (size_t s = 0; s < HASH_SIZE; s++)
		for (struct went *e = wb->ph[s]; e; e = e->pnext)
			if (is_below(e->a.path, dir, dl) && !strchr(e->a.path + dl + 1, '/'))
				cb(arg, &e->a);
	pthread_mutex_unlock(&wb->lock);
	return 0;
}

int wb_tmp_file(struct wb *wb, char *path_out, size_t len)
{
	int fd;

	snprintf(path_out, len, "%s/data/tmp.XXXXXX", wb->dir);
	fd = mkostemp(path_out, O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int wb_adopt(struct wb *wb, uint64_t id, const char *tmp)
{
	char p[4200];

	data_path(wb, id, p, sizeof(p));
	return rename(tmp, p) ? -errno : 0;
}

int wb_open_data(struct wb *wb, uint64_t id, int flags)
{
	char p[4200];
	int fd;

	data_path(wb, id, p, sizeof(p));
	fd = open(p, flags | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

int wb_take_writer(struct wb *wb, uint64_t id)
{
	struct went *e;

	pthread_mutex_lock(&wb->lock);
	e = find_id(wb, id);
	if (e && e->a.kind == WB_FILE)
		e->writers++;
	pthread_mutex_unlock(&wb->lock);
	return e && e->a.kind == WB_FILE ? 0 : -ENOENT;
}

void wb_writer(struct wb *wb, uint64_t id, int delta)
{
	struct went *e;

	pthread_mutex_lock(&wb->lock);
	if ((e = find_id(wb, id)))
		e->writers += delta;
	pthread_mutex_unlock(&wb->lock);
	/* no kick on close: the next tick takes every file closed by then in one change set */
}

int wb_state(struct wb *wb, const char *path, char *out, size_t len)
{
	struct went *e;
	sqlite3_stmt *s;
	int rc = -ENOENT;

	pthread_mutex_lock(&wb->lock);
	e = find_path(wb, path);
	if (e && e->a.kind != WB_GONE) {
		if (e->a.sent_seq && !e->dirty)
			snprintf(out, len, "%s (change set %llu)%s%s", outbox_state_name(e->a.state),
				 (unsigned long long)e->a.sent_seq, e->a.detail && *e->a.detail ? ": " : "",
				 e->a.detail ? e->a.detail : "");
		else
			snprintf(out, len, "%s%s", outbox_state_name(OUTBOX_PENDING),
				 e->writers ? " (open for writing)" : "");
		rc = 0;
	} else if ((s = prep(wb, "SELECT seq, state, detail FROM log WHERE path=?1"))) {
		sqlite3_bind_blob(s, 1, path, (int)strlen(path), SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(s, 2);

			snprintf(out, len, "%s (change set %lld)%s%s", outbox_state_name(sqlite3_column_int(s, 1)),
				 (long long)sqlite3_column_int64(s, 0), d && *d ? ": " : "", d ? d : "");
			rc = 0;
		}
		sqlite3_finalize(s);
	}
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

void wb_wrote(struct wb *wb, uint64_t id, uint64_t size, int64_t mtime)
{
	struct went *e;

	pthread_mutex_lock(&wb->lock);
	if ((e = find_id(wb, id)) && e->a.kind == WB_FILE) {
		e->a.size = size;
		e->a.mtime = e->a.ctime = mtime;
		mark_dirty(e);
	}
	pthread_mutex_unlock(&wb->lock);
}

int wb_commit_entry(struct wb *wb, uint64_t id, int durable)
{
	struct went *e;
	int rc = 0;

	if (durable) {
		int fd = wb_open_data(wb, id, O_RDONLY);

		if (fd >= 0) {
			rc = fdatasync(fd) ? -errno : 0;
			close(fd);
		}
	}
	pthread_mutex_lock(&wb->lock);
	if ((e = find_id(wb, id)))
		rc = rc ? rc : row_save(wb, e);
	if (!rc && durable)
		rc = exec(wb, "PRAGMA wal_checkpoint(PASSIVE)"); /* WAL synced: durable */
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

void wb_set_snapshot(struct wb *wb, uint64_t seq)
{
	pthread_mutex_lock(&wb->lock);
	if (seq > wb->snap_seq) {
		wb->snap_seq = seq;
		wb->kicked = 1;
		pthread_cond_signal(&wb->cv);
	}
	pthread_mutex_unlock(&wb->lock);
}

void wb_kick(struct wb *wb)
{
	pthread_mutex_lock(&wb->lock);
	wb->kicked = 1;
	wb->backoff_until = 0;
	pthread_cond_signal(&wb->cv);
	pthread_mutex_unlock(&wb->lock);
}

static uint64_t count_sets(struct wb *wb, int state)
{
	sqlite3_stmt *s = prep(wb, "SELECT count(*) FROM cs WHERE state=?1");
	uint64_t n = 0;

	if (s) {
		sqlite3_bind_int(s, 1, state);
		if (sqlite3_step(s) == SQLITE_ROW)
			n = (uint64_t)sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	return n;
}

void wb_get_stats(struct wb *wb, struct wb_stats *out)
{
	pthread_mutex_lock(&wb->lock);
	*out = wb->stats;
	out->entries = wb->n;
	out->pending = out->pending_bytes = out->busy = 0;
	out->oldest_pending = 0;
	for (size_t s = 0; s < HASH_SIZE; s++)
		for (struct went *e = wb->ph[s]; e; e = e->pnext) {
			if (!e->dirty)
				continue;
			out->pending++;
			out->pending_bytes += e->a.kind == WB_FILE ? e->a.size : 0;
			out->busy += e->writers > 0;
			if (!out->oldest_pending || e->changed < out->oldest_pending)
				out->oldest_pending = e->changed;
		}
	out->unsent_sets = count_sets(wb, CS_SEALED);
	out->unacked_sets = count_sets(wb, CS_UPLOADED);
	pthread_mutex_unlock(&wb->lock);
}

/* ---- the uploader ---- */

static void set_error(struct wb *wb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct wb *wb, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&wb->lock);
	if (strcmp(wb->stats.last_error, msg))
		log_warn("write-back: %s", msg);
	snprintf(wb->stats.last_error, sizeof(wb->stats.last_error), "%s", msg);
	wb->stats.last_error_at = real_ns();
	pthread_mutex_unlock(&wb->lock);
}

/* Put sealed change sets that are not in the store yet, in order. */
static int send_sealed(struct wb *wb)
{
	for (;;) {
		sqlite3_stmt *s;
		uint64_t seq = 0, n = 0, bytes = 0;
		void *obj = NULL;
		size_t len = 0;
		char key[OUTBOX_KEY_MAX];
		int rc;

		pthread_mutex_lock(&wb->lock);
		s = prep(wb, "SELECT seq, obj, n, bytes FROM cs WHERE state=0 ORDER BY seq LIMIT 1");
		if (s && sqlite3_step(s) == SQLITE_ROW) {
			seq = (uint64_t)sqlite3_column_int64(s, 0);
			len = (size_t)sqlite3_column_bytes(s, 1);
			obj = malloc(len ? len : 1);
			if (obj)
				memcpy(obj, sqlite3_column_blob(s, 1), len);
			n = (uint64_t)sqlite3_column_int64(s, 2);
			bytes = (uint64_t)sqlite3_column_int64(s, 3);
		}
		sqlite3_finalize(s);
		pthread_mutex_unlock(&wb->lock);
		if (!seq)
			return 0;
		if (!obj)
			return -ENOMEM;
		outbox_key_cs(wb->key.dir, seq, key);
		rc = store_put(wb->st, key, obj, len);
		free(obj);
		if (rc) {
			set_error(wb, "cannot put change set %llu: %s", (unsigned long long)seq, store_errmsg());
			return rc;
		}
		pthread_mutex_lock(&wb->lock);
		s = prep(wb, "UPDATE cs SET state=1 WHERE seq=?1");
		if (s)
			sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
		rc = done(wb, s);
		s = prep(wb, "UPDATE entry SET state=1 WHERE sent_seq=?1 AND state=0 AND dirty=0");
		if (s)
			sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
		done(wb, s);
		for (size_t h = 0; h < HASH_SIZE; h++)
			for (struct went *e = wb->ph[h]; e; e = e->pnext)
				if (e->a.sent_seq == seq && !e->dirty && e->a.state == OUTBOX_PENDING)
					e->a.state = OUTBOX_UPLOADED;
		wb->stats.uploaded_sets++;
		wb->stats.uploaded_changes += n;
		wb->stats.uploaded_bytes += bytes;
		wb->stats.last_upload = real_ns();
		pthread_mutex_unlock(&wb->lock);
		log_info("write-back: change set %llu in the store (%llu changes, %llu bytes)",
			 (unsigned long long)seq, (unsigned long long)n, (unsigned long long)bytes);
		if (rc)
			return rc;
	}
}

struct acklist {
	uint64_t *seq;
	size_t n, cap;
};

static int ack_cb(void *arg, const char *key, uint64_t size)
{
	struct acklist *l = arg;
	uint64_t seq;

	if (outbox_key_seq(key, &seq))
		return 0;
	if (l->n == l->cap) {
		uint64_t *v = realloc(l->seq, (l->cap = l->cap ? 2 * l->cap : 16) * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->seq = v;
	}
	l->seq[l->n++] = seq;
	return 0;
}

/* Apply one ack: each change's state to its entry (if still that version) and the log. */
static int apply_ack(struct wb *wb, const struct outbox_ack *a)
{
	sqlite3_stmt *s;
	int rc = exec(wb, "BEGIN");

	for (size_t i = 0; !rc && i < a->n; i++) {
		const struct outbox_result *r = &a->r[i];
		char *path = NULL;
		struct went *e;

		s = prep(wb, "SELECT path FROM change WHERE seq=?1 AND idx=?2");
		if (!s) {
			rc = -EIO;
			break;
		}
		sqlite3_bind_int64(s, 1, (sqlite3_int64)a->seq);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
		if (sqlite3_step(s) == SQLITE_ROW)
			path = blob_str(s, 0);
		sqlite3_finalize(s);
		if (!path)
			continue;
		s = prep(wb, "INSERT OR REPLACE INTO log(path, seq, state, detail, at) VALUES(?1,?2,?3,?4,?5)");
		if (s) {
			sqlite3_bind_blob(s, 1, path, (int)strlen(path), SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, (sqlite3_int64)a->seq);
			sqlite3_bind_int(s, 3, r->state);
			sqlite3_bind_text(s, 4, r->detail ? r->detail : "", -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 5, a->when);
		}
		rc = done(wb, s);
		switch (r->state) {
		case OUTBOX_IMPORTED: wb->stats.imported++; break;
		case OUTBOX_CONFLICT: wb->stats.conflicts++; break;
		case OUTBOX_REJECTED: wb->stats.rejected++; break;
		default: wb->stats.kept++; break;
		}
		if (r->state == OUTBOX_CONFLICT || r->state == OUTBOX_REJECTED || r->state == OUTBOX_KEPT)
			log_warn("write-back: home %s '%s' (change set %llu): %s",
				 r->state == OUTBOX_CONFLICT ? "kept a conflict copy of"
				 : r->state == OUTBOX_REJECTED ? "rejected" : "kept aside",
				 path, (unsigned long long)a->seq, r->detail ? r->detail : "");
		e = find_path(wb, path);
		if (!rc && e && e->a.sent_seq == a->seq && e->sent_idx == i && !e->dirty) {
			e->a.state = r->state;
			free(e->a.detail);
			e->a.detail = r->detail ? strdup(r->detail) : NULL;
			if (r->state == OUTBOX_REJECTED && r->detail &&
			    !strcmp(r->detail, OUTBOX_REASON_MISSING)) {
				/* its chunks were collected while this node stalled: send it
				 * again, on the base it was sent on (home never applied it) */
				s = prep(wb, "SELECT base, base_fid, base_mtime, base_size FROM change"
					 " WHERE seq=?1 AND idx=?2");
				if (s) {
					sqlite3_bind_int64(s, 1, (sqlite3_int64)a->seq);
					sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
					if (sqlite3_step(s) == SQLITE_ROW) {
						e->a.base = (uint8_t)sqlite3_column_int(s, 0);
						e->a.base_fid = (uint64_t)sqlite3_column_int64(s, 1);
						e->a.base_mtime = sqlite3_column_int64(s, 2);
						e->a.base_size = (uint64_t)sqlite3_column_int64(s, 3);
					}
					sqlite3_finalize(s);
				}
				mark_dirty(e);
				log_info("write-back: '%s' goes home again (its chunks were gone)", path);
			}
			rc = row_save(wb, e);
		}
		free(path);
	}
	s = rc ? NULL : prep(wb, "UPDATE cs SET state=2, snap_seq=?2, obj=x'' WHERE seq=?1");
	if (s) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)a->seq);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)a->snap_seq);
		rc = done(wb, s);
	}
	if (!rc)
		rc = exec(wb, "COMMIT");
	if (rc) {
		exec(wb, "ROLLBACK");
		return rc;
	}
	wb->stats.last_acked = a->seq > wb->stats.last_acked ? a->seq : wb->stats.last_acked;
	wb->stats.last_ack = real_ns();
	return 0;
}

static int read_acks(struct wb *wb)
{
	struct acklist l = { NULL, 0, 0 };
	char prefix[OUTBOX_KEY_MAX];
	int rc;

	snprintf(prefix, sizeof(prefix), "outbox/%s/acks/", wb->key.dir);
	rc = store_list(wb->st, prefix, ack_cb, &l);
	if (rc) {
		set_error(wb, "cannot list acknowledgements: %s", store_errmsg());
		free(l.seq);
		return rc;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct tbuf b = TBUF_INIT;
		struct outbox_ack a;
		char key[OUTBOX_KEY_MAX];
		sqlite3_stmt *s;
		int state = -1;

		pthread_mutex_lock(&wb->lock);
		s = prep(wb, "SELECT state FROM cs WHERE seq=?1");
		if (s) {
			sqlite3_bind_int64(s, 1, (sqlite3_int64)l.seq[i]);
			if (sqlite3_step(s) == SQLITE_ROW)
				state = sqlite3_column_int(s, 0);
			sqlite3_finalize(s);
		}
		pthread_mutex_unlock(&wb->lock);
		outbox_key_ack(wb->key.dir, l.seq[i], key);
		if (state != CS_UPLOADED) {
			if (state == CS_ACKED)
				store_del(wb->st, key); /* read before a crash: done */
			continue;
		}
		rc = store_get(wb->st, key, 0, STORE_WHOLE, &b);
		if (!rc && (rc = outbox_ack_decode(&wb->key, key, b.data, b.len, &a)))
			log_error("write-back: acknowledgement '%s' failed verification: %s", key,
				  outbox_errmsg());
		tbuf_release(&b);
		if (rc)
			continue;
		pthread_mutex_lock(&wb->lock);
		rc = apply_ack(wb, &a);
		pthread_mutex_unlock(&wb->lock);
		if (!rc) {
			log_info("write-back: home answered change set %llu (%zu changes)",
				 (unsigned long long)a.seq, a.n);
			store_del(wb->st, key);
		}
		outbox_ack_release(&a);
	}
	free(l.seq);
	return 0;
}

void wb_on_drop(struct wb *wb, void (*cb)(void *arg, const char *path), void *arg)
{
	wb->dropped = cb;
	wb->dropped_arg = arg;
}

/* Drop entries whose imported (or conflicting) version the current snapshot shows. */
static void drop_settled(struct wb *wb)
{
	char **gone = NULL;
	size_t ngone = 0;
	sqlite3_stmt *s;

	pthread_mutex_lock(&wb->lock);
	for (size_t h = 0; h < HASH_SIZE; h++)
		for (struct went *e = wb->ph[h], *next; e; e = next) {
			uint64_t snap = UINT64_MAX;

			next = e->pnext;
			if (e->dirty || e->writers || (e->a.state != OUTBOX_IMPORTED && e->a.state != OUTBOX_CONFLICT))
				continue;
			s = prep(wb, "SELECT snap_seq FROM cs WHERE seq=?1 AND state=2");
			if (s) {
				sqlite3_bind_int64(s, 1, (sqlite3_int64)e->a.sent_seq);
				if (sqlite3_step(s) == SQLITE_ROW)
					snap = (uint64_t)sqlite3_column_int64(s, 0);
				sqlite3_finalize(s);
			}
			/* snap_seq may be a publish that began before home committed the
			 * import; every later one has it: drop only then */
			if (snap >= wb->snap_seq)
				continue;
			if (e->a.kind == WB_DIR) {
				/* a directory goes last: entries below it still need it */
				size_t pl = strlen(e->a.path);
				int busy = 0;

				for (size_t k = 0; k < HASH_SIZE && !busy; k++)
					for (struct went *c = wb->ph[k]; c && !busy; c = c->pnext)
						busy = is_below(c->a.path, e->a.path, pl);
				if (busy)
					continue;
			}
			unlink_entry(wb, e);
			row_del(wb, e->a.id);
			{
				char **ng = realloc(gone, (ngone + 1) * sizeof(*gone));

				if (ng && (ng[ngone] = strdup(e->a.path)))
					ngone++;
				if (ng)
					gone = ng;
			}
			free_entry(wb, e, 1);
			next = NULL; /* chains changed: this slot again */
			h--;
			break;
		}
	pthread_mutex_unlock(&wb->lock);
	/* the kernel forgets the names, so the next lookup finds home's version */
	for (size_t k = 0; k < ngone; k++) {
		if (wb->dropped)
			wb->dropped(wb->dropped_arg, gone[k]);
		free(gone[k]);
	}
	free(gone);
}

/* One change being built (copies of what was taken under the lock). */
struct pend {
	struct wb_attr a;
	uint64_t gen;
	uint32_t idx;
	struct outbox_chunk *c;
	size_t nc;
	int skip;
};

static int depth(const char *p)
{
	int d = 0;

	for (; *p; p++)
		d += *p == '/';
	return d;
}

static int pend_cmp(const void *x, const void *y)
{
	const struct pend *a = x, *b = y;
	int ka = a->a.kind == WB_DIR ? 0 : a->a.kind == WB_GONE ? 2 : 1;
	int kb = b->a.kind == WB_DIR ? 0 : b->a.kind == WB_GONE ? 2 : 1;

	if (ka != kb)
		return ka - kb;
	if (ka == 0)
		return depth(a->a.path) - depth(b->a.path);
	if (ka == 2)
		return depth(b->a.path) - depth(a->a.path);
	return strcmp(a->a.path, b->a.path);
}

/* Upload chunk k of a staged file as a chunk object of change set seq. */
static int upload_chunk(struct wb *wb, uint64_t seq, struct pend *p, size_t k, uint8_t *buf,
			struct tbuf *obj)
{
	uint64_t off = (uint64_t)k * WB_CHUNK;
	size_t want = p->a.size - off > WB_CHUNK ? WB_CHUNK : (size_t)(p->a.size - off), got = 0;
	char key[OUTBOX_KEY_MAX];
	int fd = wb_open_data(wb, p->a.id, O_RDONLY), rc = 0;

	if (fd < 0)
		return fd;
	while (got < want) {
		ssize_t n = pread(fd, buf + got, want - got, (off_t)(off + got));

		if (n <= 0) {
			rc = n < 0 ? -errno : -EAGAIN; /* shorter than recorded: it changed */
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (!rc)
		rc = codec_chunk_name(&wb->key.node, buf, want, p->c[k].name);
	tbuf_reset(obj);
	if (!rc)
		rc = codec_encode(&wb->key.node, buf, want, p->c[k].name, CODEC_LEVEL_DEFAULT, obj);
	if (rc)
		return rc;
	outbox_key_chunk(wb->key.dir, seq, p->c[k].name, key);
	rc = store_put(wb->st, key, obj->data, obj->len);
	if (rc)
		set_error(wb, "cannot put a chunk of '%s': %s", p->a.path, store_errmsg());
	else
		p->c[k].len = (uint32_t)want;
	return rc;
}

/* Files of one change set uploaded by UPLOADERS threads at once (a small file costs a round trip). */
/*
 * The chunks of a change set's files are uploaded by UPLOADERS threads at
 * once: a small file costs a round trip to the store, and one large file
 * is many chunks.
 */
struct upjob {
	struct wb *wb;
	uint64_t seq;
	struct pend *v;
	size_t *file, *chunk;   /* the (file, chunk) pairs to upload */
	size_t n;
	atomic_size_t next;
	atomic_int rc;
};

static void *upload_worker(void *arg)
{
	struct upjob *j = arg;
	struct tbuf obj = TBUF_INIT;
	uint8_t *buf = malloc(WB_CHUNK);

	if (!buf)
		atomic_store(&j->rc, -ENOMEM);
	while (buf) {
		size_t i = atomic_fetch_add(&j->next, 1);
		struct pend *p;
		int rc;

		if (i >= j->n || atomic_load(&j->rc))
			break;
		p = &j->v[j->file[i]];
		if (p->skip)
			continue;
		rc = upload_chunk(j->wb, j->seq, p, j->chunk[i], buf, &obj);
		if (rc == -EAGAIN || rc == -ENOENT)
			p->skip = 1; /* changed or gone meanwhile: the next set */
		else if (rc)
			atomic_store(&j->rc, rc);
	}
	free(buf);
	tbuf_release(&obj);
	return NULL;
}

static int upload_files(struct wb *wb, uint64_t seq, struct pend *v, size_t n)
{
	struct upjob j = { wb, seq, v, NULL, NULL, 0, 0, 0 };
	pthread_t t[UPLOADERS];
	size_t total = 0;
	int nt = 0, rc;

	for (size_t i = 0; i < n; i++)
		if (v[i].a.kind == WB_FILE) {
			/* the data file says how big the file is (a recorded size may lag) */
			struct stat st;
			int fd = wb_open_data(wb, v[i].a.id, O_RDONLY);

			if (fd >= 0 && fstat(fd, &st) == 0)
				v[i].a.size = (uint64_t)st.st_size;
			else
				v[i].skip = 1;
			if (fd >= 0)
				close(fd);
			v[i].nc = v[i].skip ? 0 : (size_t)((v[i].a.size + WB_CHUNK - 1) / WB_CHUNK);
			v[i].c = calloc(v[i].nc ? v[i].nc : 1, sizeof(*v[i].c));
			if (!v[i].c)
				return -ENOMEM;
			total += v[i].nc;
		}
	j.file = calloc(total ? total : 1, sizeof(*j.file));
	j.chunk = calloc(total ? total : 1, sizeof(*j.chunk));
	if (!j.file || !j.chunk) {
		free(j.file);
		free(j.chunk);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; v[i].a.kind == WB_FILE && k < v[i].nc; k++) {
			j.file[j.n] = i;
			j.chunk[j.n++] = k;
		}
	for (int k = 0; k < UPLOADERS && (size_t)k < j.n; k++)
		if (pthread_create(&t[nt], NULL, upload_worker, &j) == 0)
			nt++;
	if (!nt && j.n)
		upload_worker(&j);
	for (int k = 0; k < nt; k++)
		pthread_join(t[k], NULL);
	/* a file that grew meanwhile has bytes past its chunks: the next set too */
	for (size_t i = 0; i < n; i++)
		if (v[i].a.kind == WB_FILE && !v[i].skip) {
			struct stat st;
			int fd = wb_open_data(wb, v[i].a.id, O_RDONLY);

			if (fd < 0 || fstat(fd, &st) || (uint64_t)st.st_size != v[i].a.size)
				v[i].skip = 1;
			if (fd >= 0)
				close(fd);
		}
	rc = atomic_load(&j.rc);
	free(j.file);
	free(j.chunk);
	return rc;
}

/*
 * The next change set's number. A new journal (a new cache disk, a wiped
 * cache) starts at the time in seconds << 16, above every number an earlier
 * journal of this key used (it makes at most one set per second), so home
 * never takes a new set for a replay of an old one.
 */
static uint64_t next_seq(struct wb *wb)
{
	sqlite3_stmt *s = prep(wb, "SELECT max(seq) FROM cs");
	uint64_t seq = 0;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		seq = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return seq ? seq + 1 : (now_real_ns() / 1000000000ull) << 16;
}

/* Build, seal and record one change set of the dirty entries. 0 (also when none), -errno. */
static int build_set(struct wb *wb)
{
	struct pend *v = NULL;
	size_t n = 0, cap = 0, used = 0;
	struct outbox_cs cs;
	struct tbuf sealed = TBUF_INIT;
	uint64_t seq, bytes = 0;
	sqlite3_stmt *s;
	int rc = 0;

	pthread_mutex_lock(&wb->lock);
	seq = next_seq(wb);
	for (size_t h = 0; h < HASH_SIZE && rc == 0; h++)
		for (struct went *e = wb->ph[h]; e && n < MAX_SET_CHANGES; e = e->pnext) {
			if (!e->dirty || e->writers)
				continue;
			if (e->a.kind == WB_FILE && bytes + e->a.size > MAX_SET_BYTES && n)
				continue;
			if (n == cap) {
				struct pend *nv = realloc(v, (cap = cap ? 2 * cap : 64) * sizeof(*v));

				if (!nv) {
					rc = -ENOMEM;
					break;
				}
				v = nv;
			}
			memset(&v[n], 0, sizeof(v[n]));
			if (attr_copy(&v[n].a, &e->a)) {
				rc = -ENOMEM;
				break;
			}
			v[n].gen = e->gen;
			bytes += e->a.kind == WB_FILE ? e->a.size : 0;
			n++;
		}
	pthread_mutex_unlock(&wb->lock);
	if (rc || !n)
		goto out;
	qsort(v, n, sizeof(*v), pend_cmp);
	rc = upload_files(wb, seq, v, n);
	if (rc)
		goto out;
	memset(&cs, 0, sizeof(cs));
	cs.seq = seq;
	cs.created = real_ns();
	cs.ch = calloc(n, sizeof(*cs.ch));
	if (!cs.ch) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&wb->lock);
	bytes = 0;
	for (size_t i = 0; i < n; i++) {
		struct went *e = find_path(wb, v[i].a.path);
		struct outbox_change *c = &cs.ch[used];
		const struct wb_attr *a = &v[i].a;

		if (v[i].skip || !e || e->gen != v[i].gen || e->writers || e->a.id != a->id) {
			v[i].skip = 1;
			continue;
		}
		c->op = a->kind == WB_FILE ? OUTBOX_FILE : a->kind == WB_DIR ? OUTBOX_DIR
			: a->kind == WB_SYMLINK ? OUTBOX_SYMLINK : OUTBOX_DELETE;
		c->path = a->path;
		c->mode = a->mode & 07777;
		c->mtime = a->mtime;
		c->base = a->base;
		c->base_fid = a->base_fid;
		c->base_mtime = a->base_mtime;
		c->base_size = a->base_size;
		c->size = a->kind == WB_FILE ? a->size : 0;
		c->c = v[i].c;
		c->n = v[i].nc;
		c->target = a->target;
		v[i].idx = (uint32_t)used++;
		bytes += c->size;
	}
	cs.n = used;
	rc = used ? outbox_cs_encode(&wb->key, &cs, &sealed) : 0;
	if (rc || !used) {
		pthread_mutex_unlock(&wb->lock);
		if (rc)
			set_error(wb, "cannot seal change set %llu: %s", (unsigned long long)seq, strerror(-rc));
		goto out_cs;
	}
	/* one transaction: the sealed set, its changes, and its entries clean */
	rc = exec(wb, "BEGIN");
	s = rc ? NULL : prep(wb, "INSERT INTO cs(seq, state, obj, n, bytes, created) VALUES(?1,0,?2,?3,?4,?5)");
	if (s) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
		sqlite3_bind_blob(s, 2, sealed.data, (int)sealed.len, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)used);
		sqlite3_bind_int64(s, 4, (sqlite3_int64)bytes);
		sqlite3_bind_int64(s, 5, cs.created);
		rc = done(wb, s);
	} else {
		rc = -EIO;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		struct went *e;

		if (v[i].skip)
			continue;
		e = find_path(wb, v[i].a.path);
		s = prep(wb, "INSERT INTO change(seq, idx, path, base, base_fid, base_mtime, base_size)"
			 " VALUES(?1,?2,?3,?4,?5,?6,?7)");
		if (s) {
			sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
			sqlite3_bind_int64(s, 2, v[i].idx);
			sqlite3_bind_blob(s, 3, v[i].a.path, (int)strlen(v[i].a.path), SQLITE_STATIC);
			sqlite3_bind_int(s, 4, v[i].a.base);
			sqlite3_bind_int64(s, 5, (sqlite3_int64)v[i].a.base_fid);
			sqlite3_bind_int64(s, 6, v[i].a.base_mtime);
			sqlite3_bind_int64(s, 7, (sqlite3_int64)v[i].a.base_size);
		}
		if (e->a.kind == WB_FILE)
			e->a.size = v[i].a.size; /* what was sent: the data file's size then */
		rc = done(wb, s);
		/* the next change of this path builds on this one */
		e->dirty = 0;
		e->changed = 0;
		e->a.sent_seq = seq;
		e->sent_idx = v[i].idx;
		e->a.base = OUTBOX_BASE_OWN;
		e->a.base_fid = seq;
		e->a.base_mtime = 0;
		e->a.base_size = v[i].idx;
		e->a.state = OUTBOX_PENDING;
		if (!rc)
			rc = row_save(wb, e);
	}
	rc = rc ? rc : exec(wb, "COMMIT");
	if (rc) {
		exec(wb, "ROLLBACK");
		/* memory goes back to what the journal still says */
		for (size_t i = 0; i < n; i++) {
			struct went *e = v[i].skip ? NULL : find_path(wb, v[i].a.path);

			if (!e)
				continue;
			e->dirty = 1;
			e->changed = real_ns();
			e->a.sent_seq = v[i].a.sent_seq;
			e->a.base = v[i].a.base;
			e->a.base_fid = v[i].a.base_fid;
			e->a.base_mtime = v[i].a.base_mtime;
			e->a.base_size = v[i].a.base_size;
		}
		set_error(wb, "cannot record change set %llu in the journal", (unsigned long long)seq);
	} else {
		wb->stats.last_seq = seq;
	}
	pthread_mutex_unlock(&wb->lock);
out_cs:
	free(cs.ch);
out:
	for (size_t i = 0; i < n; i++) {
		wb_attr_release(&v[i].a);
		free(v[i].c);
	}
	free(v);
	tbuf_release(&sealed);
	return rc;
}

static int pass(struct wb *wb)
{
	int rc = send_sealed(wb);

	if (!rc)
		rc = read_acks(wb);
	drop_settled(wb);
	if (!rc)
		rc = build_set(wb);
	if (!rc)
		rc = send_sealed(wb);
	if (!rc) {
		pthread_mutex_lock(&wb->lock);
		if (wb->stats.last_error[0])
			log_info("write-back: the store takes uploads again");
		wb->stats.last_error[0] = '\0';
		pthread_mutex_unlock(&wb->lock);
	}
	return rc;
}

static void *uploader(void *arg)
{
	struct wb *wb = arg;

	pthread_mutex_lock(&wb->lock);
	while (!wb->stop) {
		struct timespec ts;
		int64_t now;

		if (!wb->kicked) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&wb->cv, &wb->lock, &ts);
		}
		if (wb->stop)
			break;
		wb->kicked = 0;
		now = (int64_t)now_mono_ns();
		if (now < wb->backoff_until)
			continue;
		pthread_mutex_unlock(&wb->lock);
		if (pass(wb)) {
			/* store trouble: back off 1 s .. 60 s */
			wb->backoff_ns = wb->backoff_ns ? wb->backoff_ns * 2 : NS;
			if (wb->backoff_ns > 60 * NS)
				wb->backoff_ns = 60 * NS;
			wb->backoff_until = (int64_t)now_mono_ns() + wb->backoff_ns;
		} else {
			wb->backoff_ns = 0;
		}
		pthread_mutex_lock(&wb->lock);
	}
	pthread_mutex_unlock(&wb->lock);
	return NULL;
}

int wb_start(struct wb *wb)
{
	if (pthread_create(&wb->thread, NULL, uploader, wb))
		return -EAGAIN;
	wb->started = 1;
	wb_kick(wb);
	return 0;
}

void wb_close(struct wb *wb, int flush_s)
{
	if (!wb)
		return;
	if (wb->started) {
		pthread_mutex_lock(&wb->lock);
		wb->stop = 1;
		pthread_cond_signal(&wb->cv);
		pthread_mutex_unlock(&wb->lock);
		pthread_join(wb->thread, NULL);
	}
	wb->dropped = NULL; /* the mount is gone: nobody to tell */
	if (flush_s > 0 && wb->db) {
		/* one last pass: what closed files remain goes to the store if it can */
		struct wb_stats st;
		uint64_t deadline = now_mono_ns() + (uint64_t)flush_s * NS;

		while (now_mono_ns() < deadline) {
			if (pass(wb))
				break;
			wb_get_stats(wb, &st);
			if (!st.unsent_sets && !(st.pending - st.busy))
				break;
			usleep(200000);
		}
		wb_get_stats(wb, &st);
		if (st.pending || st.unsent_sets)
			log_warn("write-back: %llu changed entries and %llu change sets not yet in the store"
				 " stay staged in '%s'; they are sent at the next mount",
				 (unsigned long long)st.pending, (unsigned long long)st.unsent_sets, wb->dir);
	}
	for (size_t s = 0; s < HASH_SIZE; s++)
		while (wb->ph[s]) {
			struct went *e = wb->ph[s];

			wb->ph[s] = e->pnext;
			free_entry(wb, e, 0);
		}
	if (wb->db)
		sqlite3_close(wb->db);
	pthread_cond_destroy(&wb->cv);
	pthread_mutex_destroy(&wb->lock);
	node_key_release(&wb->key);
	free(wb);
}
