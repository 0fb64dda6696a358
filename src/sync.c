/*
 * sync.c - the sync engine (interface and model in sync.h).
 *
 * DESIGN
 * - A file's data is cut into fixed chunks (SYNC_CHUNK_SIZE). A chunk's
 *   object is named by HMAC(volume naming key, plaintext) and stored at
 *   "chunks/XX/NAME", zstd-compressed and AES-256-GCM encrypted with the
 *   name as associated data (codec.c). Identical chunks are one object.
 * - Upload of a file: read each chunk, name it, put the objects the store
 *   does not have yet (outside every lock), then record the new chunk list
 *   in one transaction, but only if the file's write generation did not
 *   move meanwhile: a torn version is never recorded as synced; the file
 *   stays queued and is uploaded again after it settles.
 * - Object reference counts are kept by SQL triggers on the chunk table;
 *   gc marks unreferenced objects doomed, deletes them from the store, then
 *   drops their rows. An upload that would reuse a doomed object waits for
 *   gc instead, so gc never deletes an object a file references.
 * - Eviction commits "not local" for every chunk and punches the data file
 *   in one critical section under the host lock, only for synced tier
 *   files nobody has open and whose every object the store confirms.
 * - Recall fetches a chunk, verifies it (codec), writes it into the data
 *   file and marks it local. Concurrent readers of one chunk share one
 *   fetch (the in-flight list, s->flock). Recalls use a second store handle
 *   with short timeouts, so a read of evicted data fails with EIO after a
 *   bounded wait when the store is unreachable.
 * - Threads: one scheduler (ticks every interval: jobs, queue, evictions,
 *   gc) and N upload workers fed through s->qlock/s->qcv. Lock order: the
 *   host lock, then s->flock or s->qlock; no store I/O under the host lock.
 */
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "audit.h"
#include "codec.h"
#include "health.h"
#include "keys.h"
#include "log.h"
#include "placement.h"
#include "publish.h"
#include "snapshot.h"
#include "store.h"
#include "verify.h"

#define NS 1000000000ll
#define MAX_INFLIGHT_UPLOADS 64

struct chunkrec {
	char obj[CODEC_NAME_SIZE];
	uint64_t len;
	int local;
	int have; /* a row exists */
};

struct fetch {
	uint64_t ino, idx;
	int done, rc;
	int waiters;
	struct fetch *next;
};

struct sync {
	struct volume *vol;
	struct meta *meta;
	struct sync_host h;
	struct sync_opts o;
	struct store *store;  /* uploads, gc: patient */
	struct store *rstore; /* recalls: bounded */
	struct volkey key;
	uint64_t cs;          /* chunk size */
	struct policy_set ps; /* protected by the host lock */

	pthread_t sched;
	pthread_t *workers;
	int nworkers, started;
	pthread_mutex_t qlock;
	pthread_cond_t qcv, idle_cv, sched_cv;
	uint64_t queue[MAX_INFLIGHT_UPLOADS]; /* protected by qlock */
	int qn;
	uint64_t active[MAX_INFLIGHT_UPLOADS]; /* being uploaded; protected by qlock */
	int nactive;
	int stop; /* protected by qlock */
	int refilling, worked; /* protected by qlock */
	int cancel;            /* set at close (atomically): store transfers abort */

	pthread_mutex_t flock;
	pthread_cond_t fcv;
	struct fetch *fetches; /* protected by flock */

	pthread_mutex_t slock;  /* status fields */
	int reachable;
	struct health health;   /* what the store operations did, per direction */
	int64_t last_probe;     /* scheduler only */
	int64_t last_dprobe;    /* scheduler only */
	int uploads_failed;     /* scheduler only: uploads were failing at the last tick */
	int head_state;         /* publishing thread: 0 not checked, 1 ours or none, -1 another volume's */
	int gc_running;
	int64_t last_gc;

	struct publish_ctx pub;
	int64_t last_publish, last_retire;
};

static int64_t now_ns(void)
{
	return (int64_t)now_real_ns();
}

static void hlock(struct sync *s)
{
	if (s->h.lock)
		s->h.lock(s->h.arg);
}

static void hunlock(struct sync *s)
{
	if (s->h.unlock)
		s->h.unlock(s->h.arg);
}

static uint64_t data_gen(struct sync *s, uint64_t ino)
{
	return s->h.data_gen ? s->h.data_gen(s->h.arg, ino) : 0;
}

static void set_remote(struct sync *s, uint64_t ino, int remote)
{
	if (s->h.set_remote)
		s->h.set_remote(s->h.arg, ino, remote);
}

static void obj_key(const char *name, char *key, size_t len)
{
	snprintf(key, len, "chunks/%.2s/%s", name, name);
}

/* ---- store status ---- */

/*
 * Record what one store operation did (health.h). The store is working
 * when the latest attempt of every direction succeeded; the log says when
 * that changes.
 */
static void note_store(struct sync *s, enum health_dir d, int rc, const char *what)
{
	char msg[300] = "";
	int ok = 1;

	if (rc == -ECANCELED)
		return;
	if (rc)
		snprintf(msg, sizeof(msg), "%s: %s", what, store_errmsg()[0] ? store_errmsg() : strerror(-rc));
	health_note(&s->health, d, rc, rc ? msg : NULL);
	for (int k = 0; k < HEALTH__COUNT; k++)
		ok &= !health_failing(&s->health, (enum health_dir)k);
	pthread_mutex_lock(&s->slock);
	if (ok && !s->reachable)
		log_info("object store works again");
	else if (!ok && s->reachable)
		log_error("object store failing: %s", msg[0] ? msg : "see 'tierfs status'");
	s->reachable = ok;
	pthread_mutex_unlock(&s->slock);
}

/* Write the recorded health for `tierfs status` (with the host lock held). */
static void write_status(struct sync *s)
{
	/* nothing new: no transaction (the host's open batch stays open) */
	if (!health_dirty(&s->health) || meta_begin(s->meta))
		return;
	if (health_save(&s->health, s->meta) || meta_commit(s->meta, 0))
		meta_rollback(s->meta);
}

void sync_status_tick(struct sync *s)
{
	write_status(s);
}

int sync_store_reachable(struct sync *s)
{
	int r;

	pthread_mutex_lock(&s->slock);
	r = s->reachable;
	pthread_mutex_unlock(&s->slock);
	return r;
}

struct store *sync_store(struct sync *s)
{
	return s->store;
}

struct meta *sync_meta(struct sync *s)
{
	return s->meta;
}

const struct volkey *sync_key(struct sync *s)
{
	return &s->key;
}

void sync_lock(struct sync *s)
{
	hlock(s);
}

void sync_unlock(struct sync *s)
{
	hunlock(s);
}

/* ---- SQL helpers (host lock held) ---- */

static const char SQL_FILE[] =
	"SELECT mode, nlink, size, placement, sync_state, pin, rule, atime, mtime FROM inode WHERE ino=?1";
static const char SQL_CHUNKS[] = "SELECT idx, obj, len, local FROM chunk WHERE ino=?1 ORDER BY idx";
static const char SQL_CHUNK_ONE[] = "SELECT obj, len, local FROM chunk WHERE ino=?1 AND idx=?2";
/* An object a store verify found missing or damaged is not usable: put it again. */
static const char SQL_OBJ_STATE[] =
	"SELECT refs, doomed, name IN (SELECT name FROM object_missing) FROM object WHERE name=?1";
static const char SQL_OBJ_ADD[] =
	"INSERT INTO object(name, size, refs, since) VALUES(?1, ?2, 0, unixepoch())"
	" ON CONFLICT(name) DO NOTHING";
static const char SQL_CHUNK_PUT[] =
	"INSERT INTO chunk(ino, idx, obj, len, local) VALUES(?1, ?2, ?3, ?4, 1)"
	" ON CONFLICT(ino, idx) DO UPDATE SET obj=excluded.obj, len=excluded.len, local=1";
static const char SQL_CHUNK_TRIM[] = "DELETE FROM chunk WHERE ino=?1 AND idx>=?2";
static const char SQL_CHUNK_LOCAL[] = "UPDATE chunk SET local=?3 WHERE ino=?1 AND idx=?2";
static const char SQL_CHUNK_ALL_REMOTE[] = "UPDATE chunk SET local=0 WHERE ino=?1";
static const char SQL_CHUNK_DROP[] = "DELETE FROM chunk WHERE ino=?1";
static const char SQL_NONLOCAL[] =
	"SELECT count(*), coalesce(sum(local=0),0) FROM chunk WHERE ino=?1";
/* A new state goes with a change to the data file (eviction punches it,
 * recall fills it): the block count the mount recorded is stale. */
static const char SQL_STATE[] = "UPDATE inode SET sync_state=?2, blocks=-1 WHERE ino=?1";
static const char SQL_BLOCKS_UNKNOWN[] = "UPDATE inode SET blocks=-1 WHERE ino=?1";
static const char SQL_UPL_DEL[] = "DELETE FROM upload WHERE ino=?1";
static const char SQL_UPL_HAS[] = "SELECT 1 FROM upload WHERE ino=?1";
static const char SQL_UPL_RETRY[] =
	"UPDATE upload SET attempts=attempts+1, next_try=?2, last_error=?3 WHERE ino=?1";
static const char SQL_UPL_AGAIN[] = "UPDATE upload SET changed=?2, next_try=0 WHERE ino=?1";
static const char SQL_UPL_DUE[] =
	"SELECT u.ino, u.changed, i.rule, u.forced FROM upload u JOIN inode i ON i.ino=u.ino"
	" WHERE u.next_try <= ?1 ORDER BY u.forced DESC, u.changed LIMIT ?2";

struct file_facts {
	uint32_t mode;
	uint64_t nlink, size;
	int placement, sync_state, pin;
	char rule[POLICY_NAME_MAX + 1];
	int64_t atime, mtime;
};

static int file_facts(struct sync *s, uint64_t ino, struct file_facts *f)
{
	sqlite3_stmt *st = meta_stmt(s->meta, SQL_FILE);
	int rc = -ENOENT;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	if (sqlite3_step(st) == SQLITE_ROW) {
		f->mode = (uint32_t)sqlite3_column_int64(st, 0);
		f->nlink = (uint64_t)sqlite3_column_int64(st, 1);
		f->size = (uint64_t)sqlite3_column_int64(st, 2);
		f->placement = (int)sqlite3_column_int64(st, 3);
		f->sync_state = (int)sqlite3_column_int64(st, 4);
		f->pin = (int)sqlite3_column_int64(st, 5);
		f->rule[0] = '\0';
		if (sqlite3_column_type(st, 6) != SQLITE_NULL)
			snprintf(f->rule, sizeof(f->rule), "%s", (const char *)sqlite3_column_text(st, 6));
		f->atime = sqlite3_column_int64(st, 7);
		f->mtime = sqlite3_column_int64(st, 8);
		rc = 0;
	}
	sqlite3_reset(st);
	return rc;
}

static int step_done(struct sync *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_error("metadata store: %s", sqlite3_errmsg(meta_db(s->meta)));
		return -EIO;
	}
	return 0;
}

static int exec1(struct sync *s, const char *sql, uint64_t ino)
{
	sqlite3_stmt *st = meta_stmt(s->meta, sql);

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	return step_done(s, st);
}

static int set_state(struct sync *s, uint64_t ino, int state)
{
	sqlite3_stmt *st = meta_stmt(s->meta, SQL_STATE);

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, state);
	return step_done(s, st);
}

/* Load chunk rows of ino into an array of n entries (zeroed beyond rows). */
static int load_chunks(struct sync *s, uint64_t ino, struct chunkrec *c, uint64_t n)
{
	sqlite3_stmt *st = meta_stmt(s->meta, SQL_CHUNKS);

	if (!st)
		return -EIO;
	memset(c, 0, n * sizeof(*c));
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while (sqlite3_step(st) == SQLITE_ROW) {
		uint64_t idx = (uint64_t)sqlite3_column_int64(st, 0);

		if (idx >= n)
			continue;
		snprintf(c[idx].obj, sizeof(c[idx].obj), "%s", (const char *)sqlite3_column_text(st, 1));
		c[idx].len = (uint64_t)sqlite3_column_int64(st, 2);
		c[idx].local = (int)sqlite3_column_int64(st, 3);
		c[idx].have = 1;
	}
	sqlite3_reset(st);
	return 0;
}

/*
 * The sync state a file has now, from its queue entry and chunks:
 * queued > evicted/partial > synced > local.
 */
static int settle_state(struct sync *s, uint64_t ino)
{
	sqlite3_stmt *st = meta_stmt(s->meta, SQL_UPL_HAS);
	int queued = 0, state;
	int64_t n = 0, remote = 0;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	queued = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	st = meta_stmt(s->meta, SQL_NONLOCAL);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	if (sqlite3_step(st) == SQLITE_ROW) {
		n = sqlite3_column_int64(st, 0);
		remote = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (queued)
		state = SYNC_QUEUED; /* a change waits for upload: not evictable */
	else if (remote && remote == n)
		state = SYNC_EVICTED;
	else if (remote)
		state = SYNC_PARTIAL;
	else if (n)
		state = SYNC_SYNCED;
	else
		state = SYNC_LOCAL;
	set_remote(s, ino, remote > 0);
	return set_state(s, ino, state) ? -EIO : state;
}

static const struct policy_rule *rule_named(struct sync *s, const char *name)
{
	for (size_t k = 0; k < s->ps.n; k++)
		if (!strcmp(s->ps.rules[k].name, name))
			return &s->ps.rules[k];
	return NULL;
}

static void reload_rules(struct sync *s)
{
	char err[512];

	if (policy_version(s->meta) != s->ps.version) {
		struct policy_set ps;

		if (policy_set_load(s->meta, &ps, err, sizeof(err)) == 0) {
			policy_set_release(&s->ps);
			s->ps = ps;
		}
	}
}

/* ---- upload ---- */

static int want_upload(const struct file_facts *f)
{
	return S_ISREG(f->mode) && f->nlink > 0 &&
	       (f->placement == PLACEMENT_MIRROR || f->placement == PLACEMENT_TIER ||
		f->placement == PLACEMENT_ON_DEMAND);
}

/* Is the object usable for dedupe: 1 yes, 0 not known (or found missing
 * by a store verify: put it again), -EAGAIN doomed. */
static int object_usable(struct sync *s, const char *name)
{
	sqlite3_stmt *st = meta_stmt(s->meta, SQL_OBJ_STATE);
	int rc = 0;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		rc = sqlite3_column_int64(st, 1) ? -EAGAIN : sqlite3_column_int64(st, 2) ? 0 : 1;
	sqlite3_reset(st);
	return rc;
}

static void requeue_later(struct sync *s, uint64_t ino, int attempts_rc, const char *why)
{
	sqlite3_stmt *st = meta_stmt(s->meta, SQL_UPL_RETRY);
	int64_t delay;
	int64_t attempts = 0;
	sqlite3_stmt *q;

	if (!st)
		return;
	q = meta_stmt(s->meta, "SELECT attempts FROM upload WHERE ino=?1");
	if (q) {
		sqlite3_bind_int64(q, 1, (int64_t)ino);
		if (sqlite3_step(q) == SQLITE_ROW)
			attempts = sqlite3_column_int64(q, 0);
		sqlite3_reset(q);
	}
	/* exponential backoff with jitter: 1 s, 2 s, 4 s ... up to 5 min */
	delay = attempts > 8 ? 300 : (1ll << attempts);
	if (delay > 300)
		delay = 300;
	delay = delay * NS / 2 + (int64_t)(rand() % 1000) * (delay * NS / 2000);
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, now_ns() + delay);
	sqlite3_bind_text(st, 3, why, -1, SQLITE_TRANSIENT);
	step_done(s, st);
	(void)attempts_rc;
}

/* Chunks of one file are encoded and put PUT_BATCH at a time, in parallel. */
#define PUT_BATCH 4

struct put_job {
	struct sync *s;
	const uint8_t *data;
	uint64_t len;
	const char *name;
	uint64_t enc_len;
	int rc;
	char err[256];
};

static void *put_main(void *arg)
{
	struct put_job *j = arg;
	struct tbuf enc = TBUF_INIT;
	char key[128];

	j->rc = codec_encode(&j->s->key, j->data, j->len, j->name, CODEC_LEVEL_DEFAULT, &enc);
	if (!j->rc) {
		obj_key(j->name, key, sizeof(key));
		j->rc = store_put(j->s->store, key, enc.data, enc.len);
		note_store(j->s, HEALTH_UPLOAD, j->rc, "upload");
		if (j->rc)
			snprintf(j->err, sizeof(j->err), "%s", store_errmsg());
	}
	j->enc_len = enc.len;
	tbuf_release(&enc);
	return NULL;
}

/* Put a batch of ino's chunks; what left is noted in its audit record *rec. */
static int put_batch(struct sync *s, struct put_job *jobs, int n, uint64_t ino, int64_t *rec)
{
	pthread_t th[PUT_BATCH];
	int started[PUT_BATCH] = { 0 }, rc = 0;

	if (n < 1 || n > PUT_BATCH)
		return -EINVAL;
	for (int k = 0; k < n; k++) {
		jobs[k].s = s;
		jobs[k].err[0] = '\0';
		if (k == n - 1 || pthread_create(&th[k], NULL, put_main, &jobs[k]))
			put_main(&jobs[k]); /* the last one (or on failure) here */
		else
			started[k] = 1;
	}
	for (int k = 0; k < n; k++)
		if (started[k])
			pthread_join(th[k], NULL);
	hlock(s);
	if (!meta_begin(s->meta)) {
		sqlite3_stmt *st = meta_stmt(s->meta, SQL_OBJ_ADD);
		char keys[PUT_BATCH][128];
		const char *kp[PUT_BATCH];
		uint64_t bytes = 0;
		size_t nk = 0;

		for (int k = 0; k < n && st; k++) {
			if (jobs[k].rc)
				continue;
			sqlite3_reset(st);
			sqlite3_bind_text(st, 1, jobs[k].name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (int64_t)jobs[k].enc_len);
			step_done(s, st);
			obj_key(jobs[k].name, keys[nk], sizeof(keys[nk]));
			kp[nk] = keys[nk];
			nk++;
			bytes += jobs[k].enc_len;
		}
		if (nk && audit_note(s->meta, rec, "upload", ino, NULL, bytes, kp, nk))
			log_error("cannot note the upload of inode %llu in the audit log",
				  (unsigned long long)ino);
		st = meta_stmt(s->meta, "DELETE FROM object_missing WHERE name=?1");
		for (int k = 0; k < n && st; k++) {
			if (jobs[k].rc)
				continue;
			sqlite3_reset(st);
			sqlite3_bind_text(st, 1, jobs[k].name, -1, SQLITE_STATIC);
			step_done(s, st);
		}
		if (meta_commit(s->meta, 0))
			meta_rollback(s->meta);
	}
	hunlock(s);
	for (int k = 0; k < n; k++)
		if (jobs[k].rc) {
			rc = jobs[k].rc;
			store_set_errmsg("%s", jobs[k].err);
			break;
		}
	return rc;
}

int sync_upload_file(struct sync *s, uint64_t ino)
{
	struct file_facts f;
	struct chunkrec *old = NULL, *neu = NULL;
	struct tbuf bufs[PUT_BATCH];
	struct put_job batch[PUT_BATCH];
	int nbatch = 0;
	int64_t rec = 0; /* this upload's audit record */
	uint64_t gen0, n, put = 0;
	char dname[VOLUME_DATA_NAME_MAX];
	int fd = -1, rc;

	memset(bufs, 0, sizeof(bufs));
	hlock(s);
	rc = file_facts(s, ino, &f);
	if (rc || !want_upload(&f)) {
		/* gone, or no longer wanted in the store: leave the queue */
		if (!meta_begin(s->meta)) {
			exec1(s, SQL_UPL_DEL, ino);
			health_file_error(s->meta, ino, HEALTH_UPLOAD, 0, 0, NULL);
			if (!rc)
				settle_state(s, ino);
			if (meta_commit(s->meta, 0))
				meta_rollback(s->meta);
		}
		hunlock(s);
		return 0;
	}
	gen0 = data_gen(s, ino);
	n = (f.size + s->cs - 1) / s->cs;
	old = calloc(n ? n : 1, sizeof(*old));
	neu = calloc(n ? n : 1, sizeof(*neu));
	if (!old || !neu) {
		hunlock(s);
		rc = -ENOMEM;
		goto out;
	}
	rc = load_chunks(s, ino, old, n);
	if (!rc && !meta_begin(s->meta)) {
		set_state(s, ino, SYNC_UPLOADING);
		if (meta_commit(s->meta, 0))
			meta_rollback(s->meta);
	}
	hunlock(s);
	if (rc)
		goto out;

	volume_data_name(ino, dname);
	fd = openat(s->vol->datafd, dname, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto fail_requeue;
	}
	for (uint64_t i = 0; i < n || nbatch; i++) {
		uint64_t len = i < n ? (f.size - i * s->cs < s->cs ? f.size - i * s->cs : s->cs) : 0;
		struct tbuf *plain;
		ssize_t got;
		int usable;

		if (i >= n || nbatch == PUT_BATCH) {
			/* encode and put the batch in parallel, then remember the
			 * objects before any file references them (so gc finds
			 * them if this upload is abandoned) */
			rc = put_batch(s, batch, nbatch, ino, &rec);
			for (int b = 0; b < nbatch; b++)
				put += batch[b].rc == 0;
			nbatch = 0;
			if (rc)
				goto fail_requeue;
			if (i >= n)
				break;
		}
		if (old[i].have && !old[i].local && old[i].len == len) {
			neu[i] = old[i]; /* evicted and untouched: the store has it */
			continue;
		}
		plain = &bufs[nbatch];
		tbuf_reset(plain);
		rc = tbuf_grow(plain, len);
		if (rc)
			goto fail_requeue;
		got = pread(fd, plain->data, len, (off_t)(i * s->cs));
		if (got < 0) {
			rc = -errno;
			goto fail_requeue;
		}
		if ((uint64_t)got < len)
			memset(plain->data + got, 0, len - (uint64_t)got); /* shrinking: gen will tell */
		plain->len = len;
		rc = codec_chunk_name(&s->key, plain->data, len, neu[i].obj);
		if (rc)
			goto fail_requeue;
		neu[i].len = len;
		neu[i].local = 1;
		neu[i].have = 1;
		if (old[i].have && !strcmp(old[i].obj, neu[i].obj))
			continue;
		/* the same content twice in this batch: put once */
		usable = 0;
		for (int b = 0; b < nbatch; b++)
			if (!strcmp(batch[b].name, neu[i].obj))
				usable = 1;
		if (usable)
			continue;
		hlock(s);
		usable = object_usable(s, neu[i].obj);
		hunlock(s);
		if (usable < 0) {
			rc = usable; /* gc is deleting it: try again after gc */
			goto fail_requeue;
		}
		if (usable)
			continue;
		batch[nbatch].data = plain->data;
		batch[nbatch].len = len;
		batch[nbatch].name = neu[i].obj;
		nbatch++;
	}
	close(fd);
	fd = -1;

	/* Record the version, if it is still the file's version. */
	hlock(s);
	{
		struct file_facts now_f;

		rc = file_facts(s, ino, &now_f);
		if (!rc && !want_upload(&now_f)) {
			/* turned private (or was deleted) meanwhile: record nothing */
			if (!meta_begin(s->meta)) {
				exec1(s, SQL_UPL_DEL, ino);
				settle_state(s, ino);
				if (meta_commit(s->meta, 0))
					meta_rollback(s->meta);
			}
			hunlock(s);
			rc = 0;
			goto out;
		}
		if (rc || data_gen(s, ino) != gen0 || now_f.size != f.size || now_f.mtime != f.mtime) {
			if (!meta_begin(s->meta)) {
				sqlite3_stmt *st = meta_stmt(s->meta, SQL_UPL_AGAIN);

				if (st) {
					sqlite3_bind_int64(st, 1, (int64_t)ino);
					sqlite3_bind_int64(st, 2, now_ns());
					step_done(s, st);
				}
				settle_state(s, ino);
				if (meta_commit(s->meta, 0))
					meta_rollback(s->meta);
			}
			hunlock(s);
			rc = -EAGAIN; /* changed while uploading: again after it settles */
			goto out;
		}
	}
	rc = meta_begin(s->meta);
	for (uint64_t i = 0; !rc && i < n; i++) {
		sqlite3_stmt *st;
		int usable = object_usable(s, neu[i].obj);

		if (usable <= 0) {
			/* an object we did not put must still be alive */
			rc = usable < 0 ? -EAGAIN : -ENOENT;
			if (usable == 0) {
				st = meta_stmt(s->meta, SQL_OBJ_ADD);
				if (!st) {
					rc = -EIO;
					break;
				}
				/* put by us above but row lost? cannot be: be safe */
				rc = -EAGAIN;
			}
			break;
		}
		st = meta_stmt(s->meta, SQL_CHUNK_PUT);
		if (!st) {
			rc = -EIO;
			break;
		}
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		sqlite3_bind_text(st, 3, neu[i].obj, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (int64_t)neu[i].len);
		rc = step_done(s, st);
		if (!rc && !neu[i].local) {
			st = meta_stmt(s->meta, SQL_CHUNK_LOCAL);
			if (st) {
				sqlite3_bind_int64(st, 1, (int64_t)ino);
				sqlite3_bind_int64(st, 2, (int64_t)i);
				sqlite3_bind_int64(st, 3, 0);
				rc = step_done(s, st);
			}
		}
	}
	if (!rc) {
		sqlite3_stmt *st = meta_stmt(s->meta, SQL_CHUNK_TRIM);

		if (st) {
			sqlite3_bind_int64(st, 1, (int64_t)ino);
			sqlite3_bind_int64(st, 2, (int64_t)n);
			rc = step_done(s, st);
		}
	}
	if (!rc) {
		/* the version the store now serves (published for cloud mounts) */
		sqlite3_stmt *st = meta_stmt(s->meta, "UPDATE inode SET pub_size=?2, pub_mtime=?3 WHERE ino=?1");

		if (st) {
			sqlite3_bind_int64(st, 1, (int64_t)ino);
			sqlite3_bind_int64(st, 2, (int64_t)f.size);
			sqlite3_bind_int64(st, 3, f.mtime);
			rc = step_done(s, st);
		}
	}
	if (!rc)
		rc = exec1(s, SQL_UPL_DEL, ino);
	if (!rc) /* the error list is a report: it never undoes an upload */
		health_file_error(s->meta, ino, HEALTH_UPLOAD, 0, 0, NULL);
	if (!rc)
		rc = settle_state(s, ino) < 0 ? -EIO : 0;
	if (!rc)
		rc = meta_commit(s->meta, 0);
	else
		meta_rollback(s->meta);
	if (rc && !meta_begin(s->meta)) {
		requeue_later(s, ino, rc, "cannot record the uploaded version");
		settle_state(s, ino);
		if (meta_commit(s->meta, 0))
			meta_rollback(s->meta);
	}
	hunlock(s);
	if (!rc)
		log_debug("uploaded inode %llu: %llu chunks, %llu new objects", (unsigned long long)ino,
			  (unsigned long long)n, (unsigned long long)put);
	goto out;

fail_requeue:
	if (fd >= 0)
		close(fd);
	fd = -1;
	hlock(s);
	if (!meta_begin(s->meta)) {
		char why[300];

		snprintf(why, sizeof(why), "%s", rc == -EAGAIN ? "waiting for gc" : store_errmsg()[0] ? store_errmsg() : strerror(-rc));
		requeue_later(s, ino, rc, why);
		health_file_error(s->meta, ino, HEALTH_UPLOAD, rc, rc == -EAGAIN ? 0 : -1, why);
		settle_state(s, ino);
		if (meta_commit(s->meta, 0))
			meta_rollback(s->meta);
	}
	hunlock(s);
out:
	if (fd >= 0)
		close(fd);
	free(old);
	free(neu);
	for (int b = 0; b < PUT_BATCH; b++)
		tbuf_release(&bufs[b]);
	return rc;
}

/* ---- changes from the home mount (host lock held, inside its transaction) ---- */

int sync_note_change(struct sync *s, uint64_t ino, int truncated, uint64_t size)
{
	sqlite3_stmt *st;
	int64_t have = 0;
	int rc;

	st = meta_stmt(s->meta, "SELECT count(*) FROM chunk WHERE ino=?1");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	if (sqlite3_step(st) == SQLITE_ROW)
		have = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (!have)
		return 0; /* never uploaded: the flusher queues it as usual */
	if (truncated) {
		/* chunks past the new end are no longer the file's: a later
		 * growth reads zeros, never the old bytes */
		st = meta_stmt(s->meta, SQL_CHUNK_TRIM);
		if (!st)
			return -EIO;
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		sqlite3_bind_int64(st, 2, (int64_t)((size + s->cs - 1) / s->cs));
		rc = step_done(s, st);
		if (rc)
			return rc;
	}
	rc = placement_queue_upload(s->meta, ino, now_ns());
	if (!rc)
		rc = settle_state(s, ino) < 0 ? -EIO : 0;
	return rc;
}

/* ---- eviction ---- */

int sync_evict_file(struct sync *s, uint64_t ino)
{
	struct file_facts f;
	struct chunkrec *c = NULL;
	uint64_t n, gen0;
	char dname[VOLUME_DATA_NAME_MAX];
	int rc, fd = -1;

	hlock(s);
	rc = file_facts(s, ino, &f);
	if (rc)
		goto unlock;
	if (!S_ISREG(f.mode) || f.placement != PLACEMENT_TIER || f.pin != POLICY_PIN_NONE) {
		rc = -EPERM;
		goto unlock;
	}
	if (f.sync_state == SYNC_EVICTED) {
		rc = 0;
		goto unlock;
	}
	if (f.sync_state != SYNC_SYNCED && f.sync_state != SYNC_PARTIAL) {
		rc = -EAGAIN;
		goto unlock;
	}
	n = (f.size + s->cs - 1) / s->cs;
	c = calloc(n ? n : 1, sizeof(*c));
	if (!c) {
		rc = -ENOMEM;
		goto unlock;
	}
	rc = load_chunks(s, ino, c, n);
	gen0 = data_gen(s, ino);
	hunlock(s);
	if (rc)
		goto out;
	/* Every chunk must be verifiably in the store. */
	for (uint64_t i = 0; i < n; i++) {
		uint64_t size;
		char key[128];

		if (!c[i].have) {
			rc = -EAGAIN;
			goto out;
		}
		obj_key(c[i].obj, key, sizeof(key));
		rc = store_head(s->store, key, &size);
		/* a missing object is the store answering: mended below */
		note_store(s, HEALTH_DOWNLOAD, rc == -ENOENT ? 0 : rc, "check before eviction");
		if (rc == -ENOENT) {
			log_error("object %s of inode %llu is missing from the store; uploading again",
				  c[i].obj, (unsigned long long)ino);
			hlock(s);
			if (!meta_begin(s->meta)) {
				exec1(s, SQL_CHUNK_DROP, ino);
				placement_queue_upload(s->meta, ino, 0);
				if (meta_commit(s->meta, 0))
					meta_rollback(s->meta);
			}
			hunlock(s);
		}
		if (rc)
			goto out;
	}
	volume_data_name(ino, dname);
	fd = openat(s->vol->datafd, dname, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	hlock(s);
	{
		struct file_facts now_f;

		rc = file_facts(s, ino, &now_f);
		if (!rc && (data_gen(s, ino) != gen0 || now_f.size != f.size || now_f.mtime != f.mtime ||
			    (now_f.sync_state != SYNC_SYNCED && now_f.sync_state != SYNC_PARTIAL) ||
			    (s->h.busy && s->h.busy(s->h.arg, ino))))
			rc = -EAGAIN;
	}
	if (!rc)
		rc = meta_begin(s->meta);
	if (!rc) {
		rc = exec1(s, SQL_CHUNK_ALL_REMOTE, ino);
		if (!rc)
			rc = set_state(s, ino, SYNC_EVICTED);
		if (!rc)
			rc = meta_commit(s->meta, 1);
		else
			meta_rollback(s->meta);
	}
	if (!rc) {
		/* Committed: now drop the bytes (nobody has the file open). */
		set_remote(s, ino, 1);
		if (f.size && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)f.size))
			log_warn("cannot punch the data file of inode %llu: %s", (unsigned long long)ino,
				 strerror(errno));
	}
	goto unlock;
unlock:
	hunlock(s);
out:
	if (fd >= 0)
		close(fd);
	free(c);
	return rc;
}

/* ---- recall ---- */

static int fetch_chunk(struct sync *s, uint64_t ino, uint64_t idx, const char *obj, uint64_t len)
{
	struct tbuf raw = TBUF_INIT, plain = TBUF_INIT;
	char key[128], dname[VOLUME_DATA_NAME_MAX];
	int rc, fd;

	obj_key(obj, key, sizeof(key));
	rc = store_get(s->rstore, key, 0, STORE_WHOLE, &raw);
	note_store(s, HEALTH_DOWNLOAD, rc, "recall");
	if (rc) {
		log_error("cannot recall chunk %llu of inode %llu: %s", (unsigned long long)idx,
			  (unsigned long long)ino, store_errmsg());
		goto out;
	}
	rc = codec_decode(&s->key, raw.data, raw.len, obj, CODEC_VERIFY_NAME, &plain);
	if (rc || plain.len != len) {
		log_error("object %s (chunk %llu of inode %llu) is corrupt or tampered with: %s", obj,
			  (unsigned long long)idx, (unsigned long long)ino,
			  rc ? codec_errmsg() : "wrong length");
		rc = -EBADMSG;
		goto out;
	}
	volume_data_name(ino, dname);
	fd = openat(s->vol->datafd, dname, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (pwrite(fd, plain.data, plain.len, (off_t)(idx * s->cs)) != (ssize_t)plain.len)
		rc = errno ? -errno : -EIO;
	close(fd);
out:
	tbuf_release(&raw);
	tbuf_release(&plain);
	return rc;
}

int sync_ensure_local(struct sync *s, uint64_t ino, uint64_t off, uint64_t len)
{
	uint64_t first = off / s->cs, last = len ? (off + len - 1) / s->cs : first;
	int rc = 0;

	for (uint64_t idx = first; idx <= last && !rc; idx++) {
		sqlite3_stmt *st;
		char obj[CODEC_NAME_SIZE];
		uint64_t clen = 0;
		int local = 1, found = 0;
		struct fetch *fe, **pp;

		hlock(s);
		st = meta_stmt(s->meta, SQL_CHUNK_ONE);
		if (!st) {
			hunlock(s);
			return -EIO;
		}
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		sqlite3_bind_int64(st, 2, (int64_t)idx);
		if (sqlite3_step(st) == SQLITE_ROW) {
			found = 1;
			snprintf(obj, sizeof(obj), "%s", (const char *)sqlite3_column_text(st, 0));
			clen = (uint64_t)sqlite3_column_int64(st, 1);
			local = (int)sqlite3_column_int64(st, 2);
		}
		sqlite3_reset(st);
		if (!found || local) {
			hunlock(s);
			continue;
		}
		/* One fetch per chunk: join one in flight, or start it. */
		pthread_mutex_lock(&s->flock);
		for (fe = s->fetches; fe; fe = fe->next)
			if (fe->ino == ino && fe->idx == idx)
				break;
		if (fe) {
			hunlock(s);
			fe->waiters++;
			while (!fe->done)
				pthread_cond_wait(&s->fcv, &s->flock);
			rc = fe->rc;
			if (--fe->waiters == 0 && fe->done == 2)
				free(fe);
			pthread_mutex_unlock(&s->flock);
			continue;
		}
		fe = calloc(1, sizeof(*fe));
		if (!fe) {
			pthread_mutex_unlock(&s->flock);
			hunlock(s);
			return -ENOMEM;
		}
		fe->ino = ino;
		fe->idx = idx;
		fe->next = s->fetches;
		s->fetches = fe;
		pthread_mutex_unlock(&s->flock);
		/* The data file changes from now on, outside the lock: the block
		 * count the mount recorded is stale before the first byte lands
		 * (and stays so if the fetch fails half-way). */
		if (!meta_begin(s->meta)) {
			if (exec1(s, SQL_BLOCKS_UNKNOWN, ino))
				meta_rollback(s->meta);
			else
				meta_commit(s->meta, 0);
		}
		hunlock(s);

		rc = fetch_chunk(s, ino, idx, obj, clen);

		hlock(s);
		if (rc && !meta_begin(s->meta)) {
			char why[300];

			snprintf(why, sizeof(why), "cannot recall chunk %llu: %s", (unsigned long long)idx,
				 rc == -ENOENT ? "missing from the store" : store_errmsg()[0] ? store_errmsg() : strerror(-rc));
			/* a chunk the store lost is not coming back by itself */
			if (health_file_error(s->meta, ino, HEALTH_DOWNLOAD, rc, rc == -ENOENT || rc == -EBADMSG ? 1 : -1, why) ||
			    meta_commit(s->meta, 0))
				meta_rollback(s->meta);
		}
		if (!rc && !meta_begin(s->meta)) {
			st = meta_stmt(s->meta, SQL_CHUNK_LOCAL);
			if (st) {
				sqlite3_bind_int64(st, 1, (int64_t)ino);
				sqlite3_bind_int64(st, 2, (int64_t)idx);
				sqlite3_bind_int64(st, 3, 1);
				rc = step_done(s, st);
			}
			if (!rc) /* a report: it never undoes a recall */
				health_file_error(s->meta, ino, HEALTH_DOWNLOAD, 0, 0, NULL);
			if (!rc)
				rc = settle_state(s, ino) < 0 ? -EIO : 0;
			if (!rc)
				rc = meta_commit(s->meta, 0);
			else
				meta_rollback(s->meta);
		}
		pthread_mutex_lock(&s->flock);
		for (pp = &s->fetches; *pp && *pp != fe; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = fe->next;
		fe->rc = rc;
		fe->done = 1;
		if (fe->waiters)
			fe->done = 2; /* the last waiter frees it */
		else
			free(fe);
		pthread_cond_broadcast(&s->fcv);
		pthread_mutex_unlock(&s->flock);
		hunlock(s);
	}
	return rc ? -EIO : 0;
}

/* ---- the scheduler ---- */

static int upload_active(struct sync *s, uint64_t ino)
{
	for (int k = 0; k < s->nactive; k++)
		if (s->active[k] == ino)
			return 1;
	for (int k = 0; k < s->qn; k++)
		if (s->queue[k] == ino)
			return 1;
	return 0;
}

/* Inodes whose uploads are due now (settled), host lock held. */
static size_t due_uploads(struct sync *s, uint64_t *out, size_t max, int all)
{
	sqlite3_stmt *st = meta_stmt(s->meta, SQL_UPL_DUE);
	int64_t now = now_ns();
	size_t n = 0;

	if (!st)
		return 0;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, (int64_t)(max * 4)); /* some are not settled yet */
	while (n < max && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(st, 0);
		int64_t changed = sqlite3_column_int64(st, 1);
		const char *rule = (const char *)sqlite3_column_text(st, 2);
		const struct policy_rule *r = rule ? rule_named(s, rule) : NULL;
		int64_t settle = (int64_t)(r ? r->settle : POLICY_SETTLE_DEFAULT) * NS;

		if (all || sqlite3_column_int64(st, 3) || changed + settle <= now)
			out[n++] = ino;
	}
	sqlite3_reset(st);
	return n;
}

/* Synced tier files to evict: idle past their rule's --evict-after, or the
 * coldest while local disk use is above a --watermark. Host lock held. */
static size_t due_evictions(struct sync *s, uint64_t *out, size_t max)
{
	int64_t now = now_ns();
	size_t n = 0;
	struct statvfs sv;
	double used = 0;

	if (fstatvfs(s->vol->datafd, &sv) == 0 && sv.f_blocks)
		used = 100.0 * (double)(sv.f_blocks - sv.f_bavail) / (double)sv.f_blocks;
	for (size_t k = 0; k < s->ps.n && n < max; k++) {
		const struct policy_rule *r = &s->ps.rules[k];
		sqlite3_stmt *st;

		if (r->placement != PLACEMENT_TIER)
			continue;
		st = meta_stmt(s->meta,
			       "SELECT ino FROM inode WHERE placement=3 AND sync_state IN (3, 5) AND pin=0"
			       " AND rule=?1 AND atime <= ?2 ORDER BY atime LIMIT ?3");
		if (!st)
			break;
		sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
		if ((r->has & POLICY_HAS_WATERMARK) && used > (double)r->watermark)
			sqlite3_bind_int64(st, 2, INT64_MAX); /* above the watermark: coldest first */
		else if (r->has & POLICY_HAS_EVICT_AFTER)
			sqlite3_bind_int64(st, 2, now - (int64_t)r->evict_after * NS);
		else {
			sqlite3_reset(st);
			continue;
		}
		sqlite3_bind_int64(st, 3, (int64_t)(max - n));
		while (sqlite3_step(st) == SQLITE_ROW)
			out[n++] = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	return n;
}

/* Files that must be local again (mirror/on-demand/private with evicted
 * chunks, or pinned), and private files still in the store. */
static size_t due_local(struct sync *s, uint64_t *out, size_t max, int *unpublish)
{
	sqlite3_stmt *st = meta_stmt(s->meta,
		"SELECT ino, placement FROM inode WHERE (sync_state IN (4, 5) AND (placement <> 3 OR pin <> 0))"
		" OR (placement = 0 AND sync_state <> 0) LIMIT ?1");
	size_t n = 0;

	if (!st)
		return 0;
	sqlite3_bind_int64(st, 1, (int64_t)max);
	while (sqlite3_step(st) == SQLITE_ROW) {
		unpublish[n] = sqlite3_column_int64(st, 1) == PLACEMENT_PRIVATE;
		out[n++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	return n;
}

/* Make a file fully local; if it turned private, take it out of the store. */
static int make_local(struct sync *s, uint64_t ino, int unpublish)
{
	struct file_facts f;
	int rc;

	hlock(s);
	rc = file_facts(s, ino, &f);
	hunlock(s);
	if (rc)
		return rc;
	rc = sync_ensure_local(s, ino, 0, f.size);
	if (rc || !unpublish)
		return rc;
	hlock(s);
	rc = file_facts(s, ino, &f);
	if (!rc && f.placement == PLACEMENT_PRIVATE && !meta_begin(s->meta)) {
		/* Private now: forget its chunks (gc deletes the objects). */
		rc = exec1(s, SQL_CHUNK_DROP, ino);
		if (!rc)
			rc = exec1(s, SQL_UPL_DEL, ino);
		if (!rc)
			rc = settle_state(s, ino) < 0 ? -EIO : 0;
		if (!rc)
			rc = meta_commit(s->meta, 0);
		else
			meta_rollback(s->meta);
	}
	hunlock(s);
	return rc;
}

int sync_run_once(struct sync *s, int upload_all_due)
{
	uint64_t inos[256];
	int flags[256];
	size_t n;
	int rc = 0;

	hlock(s);
	reload_rules(s);
	n = due_local(s, inos, 256, flags);
	hunlock(s);
	for (size_t k = 0; k < n; k++)
		make_local(s, inos[k], flags[k]);

	hlock(s);
	n = due_uploads(s, inos, 256, upload_all_due);
	hunlock(s);
	for (size_t k = 0; k < n; k++) {
		int r = sync_upload_file(s, inos[k]);

		if (r && r != -EAGAIN)
			rc = r;
	}
	hlock(s);
	n = due_evictions(s, inos, 256);
	hunlock(s);
	for (size_t k = 0; k < n; k++)
		sync_evict_file(s, inos[k]);
	hlock(s);
	write_status(s);
	hunlock(s);
	return rc;
}

/* ---- gc ---- */

int sync_gc(struct sync *s, int dry_run, int force, uint64_t *objects_out, uint64_t *bytes_out)
{
	int64_t grace = s->o.gc_grace_s < 0 || force ? 0 : s->o.gc_grace_s ? s->o.gc_grace_s : 60;
	char **names = NULL;
	size_t n = 0, cap = 0;
	uint64_t bytes = 0, deleted = 0;
	sqlite3_stmt *st;
	int rc = 0;

	*objects_out = *bytes_out = 0;
	hlock(s);
	st = meta_stmt(s->meta, "SELECT name, size FROM object WHERE refs <= 0 AND since <= unixepoch() - ?1");
	if (!st) {
		hunlock(s);
		return -EIO;
	}
	sqlite3_bind_int64(st, 1, grace);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			char **p = realloc(names, (cap ? cap * 2 : 64) * sizeof(*p));

			if (!p) {
				rc = -ENOMEM;
				break;
			}
			names = p;
			cap = cap ? cap * 2 : 64;
		}
		names[n++] = strdup((const char *)sqlite3_column_text(st, 0));
		bytes += (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (dry_run || !n || rc) {
		hunlock(s);
		*objects_out = n;
		*bytes_out = bytes;
		goto out;
	}
	/* Phase 1: doom them (an upload then will not reuse them). */
	s->gc_running = 1;
	rc = meta_begin(s->meta);
	if (!rc) {
		st = meta_stmt(s->meta, "UPDATE object SET doomed=1 WHERE name=?1 AND refs <= 0");
		for (size_t k = 0; k < n && !rc && st; k++) {
			sqlite3_reset(st);
			sqlite3_bind_text(st, 1, names[k], -1, SQLITE_STATIC);
			rc = step_done(s, st);
		}
		if (!rc)
			rc = meta_commit(s->meta, 1);
		else
			meta_rollback(s->meta);
	}
	hunlock(s);
	/* Phase 2: delete them from the store. */
	for (size_t k = 0; k < n && !rc; k++) {
		char key[128];
		int r;

		obj_key(names[k], key, sizeof(key));
		r = store_del(s->store, key);
		note_store(s, HEALTH_GC, r, "gc");
		if (r && r != -ENOENT) {
			rc = r;
			break;
		}
		deleted++;
	}
	/* Phase 3: forget the deleted ones; undoom the rest. */
	hlock(s);
	if (!meta_begin(s->meta)) {
		sqlite3_stmt *d = meta_stmt(s->meta, "DELETE FROM object WHERE name=?1 AND doomed=1");

		for (size_t k = 0; k < deleted && d; k++) {
			sqlite3_reset(d);
			sqlite3_bind_text(d, 1, names[k], -1, SQLITE_STATIC);
			step_done(s, d);
		}
		exec1(s, "UPDATE object SET doomed=0 WHERE doomed=1 AND ?1 = ?1", 0);
		if (meta_commit(s->meta, 1))
			meta_rollback(s->meta);
	}
	s->gc_running = 0;
	hunlock(s);
	*objects_out = deleted;
	*bytes_out = bytes;
out:
	for (size_t k = 0; k < n; k++)
		free(names[k]);
	free(names);
	return rc;
}

/* ---- jobs ---- */

static void job_update(struct sync *s, int64_t id, const char *state, uint64_t done, uint64_t total,
		       const char *error)
{
	sqlite3_stmt *st;

	if (id <= 0)
		return;
	hlock(s);
	if (!meta_begin(s->meta)) {
		st = meta_stmt(s->meta, "UPDATE job SET state=?2, done=?3, total=?4, error=?5 WHERE id=?1");
		if (st) {
			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, (int64_t)done);
			sqlite3_bind_int64(st, 4, (int64_t)total);
			if (error)
				sqlite3_bind_text(st, 5, error, -1, SQLITE_TRANSIENT);
			step_done(s, st);
		}
		if (meta_commit(s->meta, 0))
			meta_rollback(s->meta);
	}
	hunlock(s);
}

/* Regular files at or below the volume path arg (all with NULL). */
static int files_under(struct sync *s, const char *arg, uint64_t **out, size_t *n_out)
{
	uint64_t root = META_ROOT_INO, *list = NULL, *stack = NULL;
	size_t n = 0, cap = 0, ns = 0, scap = 0;
	struct meta_attr a;
	int rc;

	hlock(s);
	if (arg && (rc = placement_resolve(s->meta, arg, &root))) {
		hunlock(s);
		return rc;
	}
	rc = meta_inode_get(s->meta, root, &a);
	if (!rc && !S_ISDIR(a.mode)) {
		list = malloc(sizeof(*list));
		if (list)
			list[n++] = root;
		hunlock(s);
		*out = list;
		*n_out = n;
		return list ? 0 : -ENOMEM;
	}
	stack = malloc(16 * sizeof(*stack));
	scap = 16;
	if (stack)
		stack[ns++] = root;
	while (!rc && ns) {
		uint64_t d = stack[--ns];
		sqlite3_stmt *st = meta_stmt(s->meta, "SELECT ino, type FROM dentry WHERE parent=?1");

		if (!st)
			break;
		sqlite3_bind_int64(st, 1, (int64_t)d);
		while (sqlite3_step(st) == SQLITE_ROW) {
			uint64_t ino = (uint64_t)sqlite3_column_int64(st, 0);
			int type = (int)sqlite3_column_int64(st, 1);

			if (type == (S_IFDIR >> 12)) {
				if (ns == scap) {
					uint64_t *p = realloc(stack, scap * 2 * sizeof(*p));

					if (!p)
						break;
					stack = p;
					scap *= 2;
				}
				stack[ns++] = ino;
			} else if (type == (S_IFREG >> 12)) {
				if (n == cap) {
					uint64_t *p = realloc(list, (cap ? cap * 2 : 64) * sizeof(*p));

					if (!p)
						break;
					list = p;
					cap = cap ? cap * 2 : 64;
				}
				list[n++] = ino;
			}
		}
		sqlite3_reset(st);
	}
	hunlock(s);
	free(stack);
	*out = list;
	*n_out = n;
	return rc;
}

/* A store verify run as a job: its lines go to job_line for the CLI. */
struct verify_job {
	struct sync *s;
	int64_t id;
	int64_t seq;
};

static void verify_job_line(void *arg, enum verify_kind kind, const char *text)
{
	struct verify_job *vj = arg;
	struct sync *s = vj->s;

	if (kind != VERIFY_INFO)
		log_warn("store verify: %s%s", kind == VERIFY_LOST ? "LOST: " : kind == VERIFY_REPAIRED ? "repaired: " : "", text);
	else
		log_info("store verify: %s", text);
	hlock(s);
	if (!meta_begin(s->meta)) {
		sqlite3_stmt *st = meta_stmt(s->meta, "INSERT INTO job_line(job, seq, kind, line) VALUES(?1, ?2, ?3, ?4)");
		int rc = -EIO;

		if (st) {
			sqlite3_bind_int64(st, 1, vj->id);
			sqlite3_bind_int64(st, 2, ++vj->seq);
			sqlite3_bind_int64(st, 3, kind);
			sqlite3_bind_text(st, 4, text, -1, SQLITE_TRANSIENT);
			rc = step_done(s, st);
		}
		if (rc || meta_commit(s->meta, 0))
			meta_rollback(s->meta);
	}
	hunlock(s);
}

static void job_update(struct sync *s, int64_t id, const char *state, uint64_t done, uint64_t total,
		       const char *error);

static void verify_job_progress(void *arg, uint64_t done, uint64_t total)
{
	struct verify_job *vj = arg;

	job_update(vj->s, vj->id, "running", done, total, NULL);
}

static int run_verify_job(struct sync *s, int64_t id, const char *arg)
{
	struct verify_job vj = { s, id, 0 };
	struct verify_ops ops = { &vj, verify_job_line, verify_job_progress };
	struct verify_stats st;
	int flags = 0, rc;

	if (arg && strstr(arg, "deep"))
		flags |= VERIFY_DEEP;
	if (arg && strstr(arg, "repair"))
		flags |= VERIFY_REPAIR;
	job_update(s, id, "running", 0, 0, NULL);
	rc = verify_run(s, flags, &ops, &st);
	job_update(s, id, rc ? "failed" : "done", st.checked, st.objects,
		   rc ? "store verify: the store does not answer (see the lines above)" : NULL);
	return rc;
}

int sync_run_job(struct sync *s, int64_t id, const char *kind, const char *arg)
{
	uint64_t *inos = NULL, done = 0, failed = 0, queued = 0;
	size_t n = 0;
	char err[256] = "";
	int rc;

	if (!strcmp(kind, "publish")) {
		struct publish_stats st;

		job_update(s, id, "running", 0, 0, NULL);
		/* not forced: with nothing exported changed, no snapshot (the
		 * store must not learn that something private happened) */
		rc = sync_publish(s, 0, &st);
		if (rc)
			snprintf(err, sizeof(err), "publish: %s", store_errmsg()[0] ? store_errmsg() : strerror(-rc));
		job_update(s, id, rc ? "failed" : "done", st.seq, st.objects, rc ? err : NULL);
		return rc;
	}
	if (!strcmp(kind, "verify"))
		return run_verify_job(s, id, arg);
	if (!strcmp(kind, "gc")) {
		uint64_t objs, bytes;

		job_update(s, id, "running", 0, 0, NULL);
		rc = sync_gc(s, 0, arg && !strcmp(arg, "force"), &objs, &bytes);
		if (rc)
			snprintf(err, sizeof(err), "gc: %s", store_errmsg()[0] ? store_errmsg() : strerror(-rc));
		job_update(s, id, rc ? "failed" : "done", objs, bytes, rc ? err : NULL);
		return rc;
	}
	/* Writes of the last second may not be in the metadata store yet: a
	 * file written just before "sync --wait" must not look synced, nor one
	 * written just before "evict" look unchanged. */
	hlock(s);
	if (s->h.flush && s->h.flush(s->h.arg))
		log_warn("%s job: cannot write pending changes first", kind);
	hunlock(s);
	rc = files_under(s, arg, &inos, &n);
	if (rc) {
		snprintf(err, sizeof(err), "no file '%s' in the volume", arg ? arg : "/");
		job_update(s, id, "failed", 0, 0, err);
		return rc;
	}
	job_update(s, id, "running", 0, n, NULL);
	for (size_t k = 0; k < n; k++) {
		int r = 0;

		if (!strcmp(kind, "sync")) {
			struct file_facts f;

			hlock(s);
			r = file_facts(s, inos[k], &f);
			if (!r && (f.placement == PLACEMENT_MIRROR || f.placement == PLACEMENT_TIER ||
				   (arg && f.placement == PLACEMENT_ON_DEMAND)) &&
			    f.sync_state != SYNC_SYNCED && f.sync_state != SYNC_EVICTED &&
			    !meta_begin(s->meta)) {
				if (placement_queue_upload(s->meta, inos[k], 0) || meta_commit(s->meta, 0))
					meta_rollback(s->meta);
				else
					queued++;
			}
			hunlock(s);
			r = 0;
		} else if (!strcmp(kind, "hydrate")) {
			struct file_facts f;

			hlock(s);
			r = file_facts(s, inos[k], &f);
			hunlock(s);
			if (!r)
				r = sync_ensure_local(s, inos[k], 0, f.size);
		} else if (!strcmp(kind, "evict")) {
			/* the kernel releases a closed file asynchronously: give a
			 * file that was just closed (or just uploaded) a moment */
			r = sync_evict_file(s, inos[k]);
			for (int tries = 0; r == -EAGAIN && tries < 20; tries++) {
				usleep(100000);
				r = sync_evict_file(s, inos[k]);
			}
			if (r == -EPERM && n > 1)
				r = 0; /* a directory: evict what may be evicted */
		} else {
			snprintf(err, sizeof(err), "unknown job '%s'", kind);
			rc = -EINVAL;
			break;
		}
		if (r) {
			failed++;
			if (!err[0]) {
				struct tbuf p = TBUF_INIT;

				hlock(s);
				placement_path(s->meta, inos[k], &p);
				hunlock(s);
				snprintf(err, sizeof(err), "%s '%s': %s", kind, p.data ? (char *)p.data : "?",
					 r == -EPERM ? "not a tiered file (or pinned)" :
					 r == -EAGAIN ? "not synced to the store yet" : strerror(-r));
				tbuf_release(&p);
			}
			rc = r;
		}
		done++;
		if (done % 16 == 0)
			job_update(s, id, "running", done, n, NULL);
	}
	free(inos);
	/* a sync job reports what it queued of what it looked at, not the
	 * files it looked at: the CLI follows the uploads of those */
	job_update(s, id, failed || rc ? "failed" : "done", !strcmp(kind, "sync") ? queued : done, n,
		   err[0] ? err : NULL);
	return rc;
}

static void run_jobs(struct sync *s)
{
	for (;;) {
		sqlite3_stmt *st;
		int64_t id = 0;
		char kind[16] = "", *arg = NULL;

		hlock(s);
		st = meta_stmt(s->meta, "SELECT id, kind, arg FROM job WHERE state='pending' ORDER BY id LIMIT 1");
		if (st && sqlite3_step(st) == SQLITE_ROW) {
			id = sqlite3_column_int64(st, 0);
			snprintf(kind, sizeof(kind), "%s", (const char *)sqlite3_column_text(st, 1));
			if (sqlite3_column_type(st, 2) != SQLITE_NULL)
				arg = strdup((const char *)sqlite3_column_text(st, 2));
		}
		if (st)
			sqlite3_reset(st);
		hunlock(s);
		if (!id)
			return;
		sync_run_job(s, id, kind, arg);
		free(arg);
	}
}

/* ---- publishing and requests from cloud mounts ---- */

struct req_list {
	char **keys;
	size_t n, cap;
};

static int collect_key(void *arg, const char *key, uint64_t size)
{
	struct req_list *l = arg;

	(void)size;
	if (l->n == l->cap) {
		size_t n = l->cap ? l->cap * 2 : 16;
		char **x = realloc(l->keys, n * sizeof(*x));

		if (!x)
			return 1;
		l->keys = x;
		l->cap = n;
	}
	l->keys[l->n] = strdup(key);
	if (l->keys[l->n])
		l->n++;
	return l->n >= 1000; /* enough for one tick */
}

/* Cloud mounts ask for on-demand files: queue them, due now. */
static void serve_requests(struct sync *s)
{
	struct req_list l = { NULL, 0, 0 };
	int rc = store_list(s->store, "requests/", collect_key, &l);

	note_store(s, HEALTH_REQUESTS, rc < 0 ? rc : 0, "list requests");
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < l.n; i++) {
		struct tbuf b = TBUF_INIT;
		struct snap_request rq;
		struct file_facts f;

		if (store_get(s->store, l.keys[i], 0, STORE_WHOLE, &b) == 0 &&
		    snap_request_decode(&s->key, l.keys[i], b.data, b.len, &rq) == 0) {
			uint64_t ino = 0;

			hlock(s);
			/* the fid is the published one (snap_fid()): map it back */
			if (!publish_fid_ino(s->meta, rq.fid, &ino) && !file_facts(s, ino, &f) &&
			    S_ISREG(f.mode) && f.nlink && f.placement != PLACEMENT_PRIVATE &&
			    !meta_begin(s->meta)) {
				if (f.sync_state == SYNC_LOCAL || f.sync_state == SYNC_QUEUED)
					placement_queue_upload(s->meta, ino, 0);
				if (meta_commit(s->meta, 0))
					meta_rollback(s->meta);
				log_info("a cloud mount asked for inode %llu", (unsigned long long)ino);
			}
			hunlock(s);
		} else {
			log_warn("ignoring unreadable request object '%s'", l.keys[i]);
		}
		tbuf_release(&b);
		store_del(s->store, l.keys[i]);
	}
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.keys[i]);
	free(l.keys);
}

static void noop_lock(void *arg)
{
	(void)arg;
}

const struct volkey *sync_volkey(struct sync *s)
{
	return &s->key;
}

/*
 * Before the first publish of this mount: a `head` in the store that this
 * volume's key cannot open belongs to another volume that claimed the
 * prefix (formatted with --force, or a store URL pointed at the wrong
 * place). Publishing would overwrite its head and snapshots: it is refused
 * (recorded as a publish failure the operator sees) until the prefix is
 * sorted out. 1 publish, 0 not now (the store did not answer), -1 refused.
 */
static int head_is_ours(struct sync *s)
{
	struct tbuf b = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	uint64_t seq;
	int rc;

	if (s->head_state)
		return s->head_state;
	snap_key_head(key);
	rc = store_get(s->store, key, 0, STORE_WHOLE, &b);
	if (rc == -ENOENT) {
		s->head_state = 1;
	} else if (rc) {
		note_store(s, HEALTH_PUBLISH, rc, "read head");
		tbuf_release(&b);
		return 0;
	} else {
		s->head_state = snap_head_decode(&s->key, b.data, b.len, &seq) ? -1 : 1;
	}
	tbuf_release(&b);
	if (s->head_state < 0)
		log_error("the store's head belongs to another volume (this volume's key cannot open it):"
			  " not publishing over it; give each volume its own store prefix");
	return s->head_state;
}

int sync_publish(struct sync *s, int force, struct publish_stats *st)
{
	int rc;

	if (head_is_ours(s) < 0) {
		memset(st, 0, sizeof(*st));
		store_set_errmsg("the store prefix holds another volume's head and snapshots");
		note_store(s, HEALTH_PUBLISH, -EEXIST, "publish");
		return -EEXIST;
	}

	hlock(s);
	reload_rules(s);
	hunlock(s);
	s->pub.ps = &s->ps;
	rc = publish_once(&s->pub, force, st);
	note_store(s, HEALTH_PUBLISH, rc, "publish");
	if (rc)
		log_error("publish failed: %s", store_errmsg()[0] ? store_errmsg() : strerror(-rc));
	return rc;
}

static void publish_tick(struct sync *s)
{
	struct publish_stats st;
	int64_t now = now_ns();
	int interval = s->o.publish_interval_s > 0 ? s->o.publish_interval_s : 5;

	serve_requests(s);
	if (now - s->last_publish < (int64_t)interval * NS)
		return;
	s->last_publish = now;
	if (sync_publish(s, 0, &st) == 0 && st.seq)
		log_info("published snapshot %llu (%llu directories rebuilt, %llu objects)",
			 (unsigned long long)st.seq, (unsigned long long)st.dirs,
			 (unsigned long long)st.objects);
	{
		/* A file turned private: nothing older than the snapshot just
		 * published may keep its name or data in the store. */
		char *purge = NULL;
		int want = 0;

		hlock(s);
		if (meta_config_get(s->meta, "privacy_purge", &purge) == 0)
			want = !strcmp(purge, "1");
		hunlock(s);
		free(purge);
		if (want && st.seq) {
			uint64_t n, o, b;

			if (publish_retire(&s->pub, 1, &n) == 0 && sync_gc(s, 0, 1, &o, &b) == 0) {
				hlock(s);
				if (!meta_begin(s->meta)) {
					meta_config_set(s->meta, "privacy_purge", "0");
					if (meta_commit(s->meta, 0))
						meta_rollback(s->meta);
				}
				hunlock(s);
				log_info("a file turned private: retired %llu objects of older snapshots,"
					 " deleted %llu unreferenced objects", (unsigned long long)n,
					 (unsigned long long)o);
			}
		}
	}
	if (now - s->last_retire > 60 * NS) {
		uint64_t n;

		s->last_retire = now;
		if (publish_retire(&s->pub, s->o.retain > 0 ? s->o.retain : 10, &n) == 0 && n)
			log_info("retired %llu objects of old snapshots", (unsigned long long)n);
	}
}

/* ---- threads ---- */

/*
 * Top up the worker queue from the upload table (qlock held; drops it for
 * the query). Called by the scheduler every tick and by a worker that finds
 * the queue empty, so a queue of many small files drains at the workers'
 * pace, not one batch per tick.
 */
static void refill(struct sync *s)
{
	uint64_t inos[MAX_INFLIGHT_UPLOADS];
	size_t n;

	if (s->refilling)
		return;
	s->refilling = 1;
	pthread_mutex_unlock(&s->qlock);
	hlock(s);
	n = due_uploads(s, inos, MAX_INFLIGHT_UPLOADS, 0);
	hunlock(s);
	pthread_mutex_lock(&s->qlock);
	for (size_t k = 0; k < n && s->qn < MAX_INFLIGHT_UPLOADS; k++)
		if (!upload_active(s, inos[k]))
			s->queue[s->qn++] = inos[k];
	s->refilling = 0;
	if (s->qn)
		pthread_cond_broadcast(&s->qcv);
}

static void *worker_main(void *arg)
{
	struct sync *s = arg;

	pthread_mutex_lock(&s->qlock);
	for (;;) {
		uint64_t ino;

		if (!s->qn && !s->stop && s->worked) {
			s->worked = 0;
			refill(s);
		}
		while (!s->qn && !s->stop)
			pthread_cond_wait(&s->qcv, &s->qlock);
		if (s->stop)
			break;
		ino = s->queue[--s->qn];
		s->active[s->nactive++] = ino;
		pthread_mutex_unlock(&s->qlock);
		sync_upload_file(s, ino);
		pthread_mutex_lock(&s->qlock);
		for (int k = 0; k < s->nactive; k++)
			if (s->active[k] == ino) {
				s->active[k] = s->active[--s->nactive];
				break;
			}
		s->worked = 1; /* the queue may have more due: refill when empty */
		pthread_cond_broadcast(&s->idle_cv);
	}
	pthread_mutex_unlock(&s->qlock);
	return NULL;
}

/*
 * The store works again after failing: was it wiped meanwhile (a directory
 * or bucket made again)? Then objects files reference are gone: a sample
 * of them (any would do: a wiped store has none) is asked for. If one is
 * missing, a store verify with repair is queued as a job, which uploads
 * the local copies again, republishes and names the files that cannot be
 * mended. (`head` is no sign: a publish may have put a new one already.)
 */
static void check_store_lost(struct sync *s)
{
	char names[8][CODEC_NAME_SIZE], key[600];
	sqlite3_stmt *st;
	int n = 0, rc = 0;

	hlock(s);
	st = meta_stmt(s->meta, "SELECT name FROM object WHERE refs > 0 AND doomed = 0 ORDER BY random() LIMIT 8");
	while (st && n < 8 && sqlite3_step(st) == SQLITE_ROW)
		snprintf(names[n++], CODEC_NAME_SIZE, "%s", (const char *)sqlite3_column_text(st, 0));
	if (st)
		sqlite3_reset(st);
	hunlock(s);
	for (int k = 0; k < n && rc != -ENOENT; k++) {
		obj_key(names[k], key, sizeof(key));
		rc = store_head(s->store, key, NULL);
	}
	if (rc != -ENOENT)
		return;
	log_error("the store lost objects while it failed ('%s' is gone): verifying and repairing"
		  " from local copies", key);
	hlock(s);
	if (!meta_begin(s->meta)) {
		st = meta_stmt(s->meta, "INSERT INTO job(kind, arg, created) VALUES('verify', 'repair', ?1)");
		rc = -EIO;
		if (st) {
			sqlite3_bind_int64(st, 1, now_ns());
			rc = step_done(s, st);
		}
		if (rc || meta_commit(s->meta, 0))
			meta_rollback(s->meta);
	}
	hunlock(s);
}

/*
 * Uploads back off per file, up to 5 minutes. While uploads fail, the
 * oldest queued file is tried again every few seconds; once an upload
 * succeeds again the whole queue is due at once: the store is back, in
 * whatever form, and the queue drains without a remount.
 */
static void upload_recovery(struct sync *s)
{
	int failing = health_failing(&s->health, HEALTH_UPLOAD);
	int64_t now = now_ns();
	const char *sql = NULL;

	if (failing && now - s->last_probe >= 5 * NS) {
		s->last_probe = now;
		sql = "UPDATE upload SET next_try=0 WHERE ino=(SELECT ino FROM upload WHERE next_try > ?1"
		      " ORDER BY changed LIMIT 1)";
	} else if (!failing && s->uploads_failed) {
		sql = "UPDATE upload SET next_try=0 WHERE next_try > ?1";
	}
	s->uploads_failed = failing;
	if (!sql)
		return;
	hlock(s);
	if (!meta_begin(s->meta)) {
		sqlite3_stmt *st = meta_stmt(s->meta, sql);
		int rc = -EIO;

		if (st) {
			sqlite3_bind_int64(st, 1, now);
			rc = step_done(s, st);
		}
		if (rc || meta_commit(s->meta, 0))
			meta_rollback(s->meta);
		else if (!failing)
			log_info("uploads work again: %d queued files are due now", sqlite3_changes(meta_db(s->meta)));
	}
	hunlock(s);
	if (!failing)
		check_store_lost(s);
}

/*
 * Recalls are rare on a home mount: after one failed for a reason that
 * passes (the store was down), and the store has answered other requests
 * since, a recall-sized request on the recall handle (HEAD of an object a
 * file references) every few seconds tells whether downloads work again.
 */
static void download_probe(struct sync *s)
{
	struct health_rec d, other;
	int64_t now = now_ns(), since_ok = 0;
	char name[CODEC_NAME_SIZE] = "", key[128];
	sqlite3_stmt *st;

	health_get(&s->health, HEALTH_DOWNLOAD, &d);
	if (!d.failures || !health_transient(-d.last_code) || now - s->last_dprobe < 5 * NS)
		return;
	for (int k = 0; k < HEALTH__COUNT; k++) {
		if (k == HEALTH_DOWNLOAD)
			continue;
		health_get(&s->health, (enum health_dir)k, &other);
		if (other.last_ok > since_ok)
			since_ok = other.last_ok;
	}
	if (since_ok <= d.last_error_at)
		return; /* the store has not answered anything since */
	s->last_dprobe = now;
	hlock(s);
	st = meta_stmt(s->meta, "SELECT obj FROM chunk LIMIT 1");
	if (st && sqlite3_step(st) == SQLITE_ROW)
		snprintf(name, sizeof(name), "%s", (const char *)sqlite3_column_text(st, 0));
	if (st)
		sqlite3_reset(st);
	hunlock(s);
	if (!name[0])
		return;
	obj_key(name, key, sizeof(key));
	note_store(s, HEALTH_DOWNLOAD, store_head(s->rstore, key, NULL), "check of the recall path");
}

static void *sched_main(void *arg)
{
	struct sync *s = arg;
	int interval = s->o.interval_s > 0 ? s->o.interval_s : 1;

	pthread_mutex_lock(&s->qlock);
	while (!s->stop) {
		struct timespec ts;
		uint64_t ev[64];
		int flags[64];
		size_t n;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += interval;
		pthread_cond_timedwait(&s->sched_cv, &s->qlock, &ts);
		if (s->stop)
			break;
		pthread_mutex_unlock(&s->qlock);

		run_jobs(s);
		hlock(s);
		reload_rules(s);
		n = due_local(s, ev, 64, flags);
		hunlock(s);
		for (size_t k = 0; k < n; k++)
			make_local(s, ev[k], flags[k]);

		upload_recovery(s);
		download_probe(s);
		pthread_mutex_lock(&s->qlock);
		refill(s);
		pthread_mutex_unlock(&s->qlock);

		hlock(s);
		n = due_evictions(s, ev, 64);
		hunlock(s);
		for (size_t k = 0; k < n; k++)
			sync_evict_file(s, ev[k]);

		publish_tick(s);

		if (now_ns() - s->last_gc > 60 * NS) {
			uint64_t o, b;

			s->last_gc = now_ns();
			sync_gc(s, 0, 0, &o, &b);
			if (o)
				log_info("gc deleted %llu unreferenced objects (%llu bytes)",
					 (unsigned long long)o, (unsigned long long)b);
		}
		hlock(s);
		write_status(s);
		hunlock(s);
		pthread_mutex_lock(&s->qlock);
	}
	pthread_mutex_unlock(&s->qlock);
	return NULL;
}

int sync_open(struct volume *vol, const struct sync_host *h, const struct sync_opts *o,
	      struct sync **out, char *err, size_t errlen)
{
	struct sync *s = calloc(1, sizeof(*s));
	struct store_opts so, ro;
	char keypath[PATH_MAX + 16], *url = NULL;
	int rc;

	if (!s)
		return -ENOMEM;
	s->vol = vol;
	s->meta = vol->meta;
	if (h)
		s->h = *h;
	if (o)
		s->o = *o;
	s->cs = SYNC_CHUNK_SIZE;
	s->reachable = 1;
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcv, NULL);
	pthread_cond_init(&s->idle_cv, NULL);
	pthread_cond_init(&s->sched_cv, NULL);
	pthread_mutex_init(&s->flock, NULL);
	pthread_cond_init(&s->fcv, NULL);
	pthread_mutex_init(&s->slock, NULL);
	health_init(&s->health);
	snprintf(keypath, sizeof(keypath), "%s/volume.key", vol->dir);
	rc = key_file_load(keypath, s->o.passphrase ? s->o.passphrase : getenv("TIERFS_PASSPHRASE"), &s->key);
	if (rc) {
		snprintf(err, errlen, "cannot load the volume key '%s': %s", keypath,
			 rc == -ENOKEY ? "it is wrapped with a passphrase (set TIERFS_PASSPHRASE)" : strerror(-rc));
		goto fail;
	}
	hlock(s);
	rc = meta_config_get(s->meta, "store_url", &url);
	if (!rc) {
		char perr[512];

		rc = policy_set_load(s->meta, &s->ps, perr, sizeof(perr));
		if (rc)
			snprintf(err, errlen, "%s", perr);
	} else {
		snprintf(err, errlen, "volume '%s' has no store configured", vol->dir);
	}
	hunlock(s);
	if (rc)
		goto fail;
	memset(&so, 0, sizeof(so));
	so.max_retries = 2; /* the queue retries with its own backoff */
	so.cancel = &s->cancel;
	rc = store_open(url, &so, &s->store, err, errlen);
	if (rc)
		goto fail;
	memset(&ro, 0, sizeof(ro));
	ro.timeout_ms = (s->o.recall_timeout_s > 0 ? s->o.recall_timeout_s : 30) * 1000 / 3;
	ro.connect_timeout_ms = ro.timeout_ms < 5000 ? ro.timeout_ms : 5000;
	ro.max_retries = 2;
	ro.retry_base_ms = 200;
	ro.cancel = &s->cancel;
	rc = store_open(url, &ro, &s->rstore, err, errlen);
	if (rc)
		goto fail;
	free(url);
	url = NULL;
	s->pub.meta = s->meta;
	s->pub.store = s->store;
	s->pub.key = &s->key;
	s->pub.ps = &s->ps;
	s->pub.chunk_size = (uint32_t)s->cs;
	s->pub.lock = s->h.lock ? s->h.lock : noop_lock;
	s->pub.unlock = s->h.unlock ? s->h.unlock : noop_lock;
	s->pub.arg = s->h.arg;
	hlock(s);
	if (meta_config_get(s->meta, "volume_id", &url) == 0)
		snprintf(s->pub.volume_id, sizeof(s->pub.volume_id), "%s", url);
	health_restore(&s->health, s->meta);
	hunlock(s);
	for (int k = 0; k < HEALTH__COUNT; k++)
		s->reachable &= !health_failing(&s->health, (enum health_dir)k);
	free(url);
	*out = s;
	return 0;
fail:
	free(url);
	sync_close(s);
	return rc;
}

int sync_start(struct sync *s)
{
	int n = s->o.workers > 0 ? s->o.workers : 8;

	s->workers = calloc((size_t)n, sizeof(*s->workers));
	if (!s->workers)
		return -ENOMEM;
	for (int k = 0; k < n; k++) {
		if (pthread_create(&s->workers[k], NULL, worker_main, s))
			break;
		s->nworkers++;
	}
	if (pthread_create(&s->sched, NULL, sched_main, s) == 0)
		s->started = 1;
	return s->started ? 0 : -EAGAIN;
}

void sync_close(struct sync *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->qlock);
	s->stop = 1;
	__atomic_store_n(&s->cancel, 1, __ATOMIC_RELAXED); /* uploads in flight give up; they stay queued */
	pthread_cond_broadcast(&s->qcv);
	pthread_cond_broadcast(&s->sched_cv);
	pthread_mutex_unlock(&s->qlock);
	if (s->started)
		pthread_join(s->sched, NULL);
	for (int k = 0; k < s->nworkers; k++)
		pthread_join(s->workers[k], NULL);
	free(s->workers);
	if (s->store)
		store_close(s->store);
	if (s->rstore)
		store_close(s->rstore);
	policy_set_release(&s->ps);
	volkey_release(&s->key);
	while (s->fetches) {
		struct fetch *f = s->fetches;

		s->fetches = f->next;
		free(f);
	}
	pthread_mutex_destroy(&s->qlock);
	pthread_cond_destroy(&s->qcv);
	pthread_cond_destroy(&s->idle_cv);
	pthread_cond_destroy(&s->sched_cv);
	pthread_mutex_destroy(&s->flock);
	pthread_cond_destroy(&s->fcv);
	pthread_mutex_destroy(&s->slock);
	health_release(&s->health);
	free(s);
}
