/*
 * health.c - per-direction health of the store as the sync engine saw it,
 * and the per-file error list (interface and meaning in health.h).
 */
#include "health.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static const char *const dir_names[HEALTH__COUNT] = { "upload", "download", "publish", "requests",
						      "gc" };

const char *health_dir_name(enum health_dir d)
{
	return (unsigned)d < HEALTH__COUNT ? dir_names[d] : NULL;
}

int health_transient(int rc)
{
	switch (-rc) {
	case EIO:
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EAGAIN:
	case EBUSY:
	case ECANCELED:
		return 1;
	default:
		return 0;
	}
}

void health_init(struct health *h)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
}

void health_release(struct health *h)
{
	pthread_mutex_destroy(&h->lock);
}

void health_note(struct health *h, enum health_dir d, int rc, const char *msg)
{
	struct health_rec *r;
	int64_t now;

	if ((unsigned)d >= HEALTH__COUNT || rc == -ECANCELED)
		return;
	now = (int64_t)now_real_ns();
	pthread_mutex_lock(&h->lock);
	r = &h->r[d];
	if (rc == 0) {
		r->last_ok = now;
		r->ok_total++;
		r->failures = 0;
		r->failing_since = 0;
	} else {
		r->last_error_at = now;
		r->error_total++;
		if (!r->failures++)
			r->failing_since = now;
		r->last_code = -rc;
		snprintf(r->last_error, sizeof(r->last_error), "%s", msg && msg[0] ? msg : strerror(-rc));
	}
	h->dirty = 1;
	pthread_mutex_unlock(&h->lock);
}

int health_failing(struct health *h, enum health_dir d)
{
	int f;

	pthread_mutex_lock(&h->lock);
	f = h->r[d].failures > 0;
	pthread_mutex_unlock(&h->lock);
	return f;
}

void health_get(struct health *h, enum health_dir d, struct health_rec *out)
{
	pthread_mutex_lock(&h->lock);
	*out = h->r[d];
	pthread_mutex_unlock(&h->lock);
}

static const char SQL_LOAD[] =
	"SELECT dir, last_ok, last_error_at, failing_since, failures, ok_total, error_total, last_error,"
	" last_code FROM health";
static const char SQL_SAVE[] =
	"INSERT INTO health(dir, last_ok, last_error_at, failing_since, failures, ok_total, error_total,"
	" last_error, last_code) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(dir) DO UPDATE SET"
	" last_ok=excluded.last_ok, last_error_at=excluded.last_error_at,"
	" failing_since=excluded.failing_since, failures=excluded.failures,"
	" ok_total=excluded.ok_total, error_total=excluded.error_total, last_error=excluded.last_error,"
	" last_code=excluded.last_code";

int health_load(struct meta *m, struct health_rec out[HEALTH__COUNT])
{
	sqlite3_stmt *s = meta_stmt(m, SQL_LOAD);

	memset(out, 0, HEALTH__COUNT * sizeof(*out));
	if (!s)
		return -EIO;
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 0);
		struct health_rec *r = NULL;

		for (int d = 0; d < HEALTH__COUNT; d++)
			if (name && !strcmp(name, dir_names[d]))
				r = &out[d];
		if (!r)
			continue;
		r->last_ok = sqlite3_column_int64(s, 1);
		r->last_error_at = sqlite3_column_int64(s, 2);
		r->failing_since = sqlite3_column_int64(s, 3);
		r->failures = (uint64_t)sqlite3_column_int64(s, 4);
		r->ok_total = (uint64_t)sqlite3_column_int64(s, 5);
		r->error_total = (uint64_t)sqlite3_column_int64(s, 6);
		if (sqlite3_column_type(s, 7) != SQLITE_NULL)
			snprintf(r->last_error, sizeof(r->last_error), "%s", (const char *)sqlite3_column_text(s, 7));
		r->last_code = (int)sqlite3_column_int64(s, 8);
	}
	sqlite3_reset(s);
	return 0;
}

int health_restore(struct health *h, struct meta *m)
{
	struct health_rec r[HEALTH__COUNT];
	int rc = health_load(m, r);

	if (rc)
		return rc;
	pthread_mutex_lock(&h->lock);
	memcpy(h->r, r, sizeof(r));
	pthread_mutex_unlock(&h->lock);
	return 0;
}

int health_dirty(struct health *h)
{
	int d;

	pthread_mutex_lock(&h->lock);
	d = h->dirty;
	pthread_mutex_unlock(&h->lock);
	return d;
}

int health_save(struct health *h, struct meta *m)
{
	struct health_rec r[HEALTH__COUNT];
	sqlite3_stmt *s;
	int dirty, rc = 0;

	pthread_mutex_lock(&h->lock);
	dirty = h->dirty;
	memcpy(r, h->r, sizeof(r));
	h->dirty = 0;
	pthread_mutex_unlock(&h->lock);
	if (!dirty)
		return 0;
	s = meta_stmt(m, SQL_SAVE);
	for (int d = 0; d < HEALTH__COUNT && !rc; d++) {
		if (!s) {
			rc = -EIO;
			break;
		}
		if (!r[d].ok_total && !r[d].error_total)
			continue;
		sqlite3_reset(s);
		sqlite3_bind_text(s, 1, dir_names[d], -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, r[d].last_ok);
		sqlite3_bind_int64(s, 3, r[d].last_error_at);
		sqlite3_bind_int64(s, 4, r[d].failing_since);
		sqlite3_bind_int64(s, 5, (int64_t)r[d].failures);
		sqlite3_bind_int64(s, 6, (int64_t)r[d].ok_total);
		sqlite3_bind_int64(s, 7, (int64_t)r[d].error_total);
		sqlite3_bind_text(s, 8, r[d].last_error, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 9, r[d].last_code);
		if (sqlite3_step(s) != SQLITE_DONE)
			rc = -EIO;
	}
	if (s)
		sqlite3_reset(s);
	if (rc) {
		pthread_mutex_lock(&h->lock);
		h->dirty = 1; /* again next time */
		pthread_mutex_unlock(&h->lock);
	}
	return rc;
}

static const char SQL_FERR_SET[] =
	"INSERT INTO file_error(ino, dir, code, persistent, error, since, last, attempts)"
	" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, 1) ON CONFLICT(ino) DO UPDATE SET dir=excluded.dir,"
	" code=excluded.code, persistent=excluded.persistent, error=excluded.error, last=excluded.last,"
	" attempts=attempts+1";
static const char SQL_FERR_DEL[] = "DELETE FROM file_error WHERE ino=?1 AND dir=?2";

int health_file_error(struct meta *m, uint64_t ino, enum health_dir d, int rc, int persistent,
		      const char *msg)
{
	sqlite3_stmt *s = meta_stmt(m, rc ? SQL_FERR_SET : SQL_FERR_DEL);
	int r;

	if (!s || (unsigned)d >= HEALTH__COUNT)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_text(s, 2, dir_names[d], -1, SQLITE_STATIC);
	if (rc) {
		sqlite3_bind_int64(s, 3, -rc);
		sqlite3_bind_int64(s, 4, persistent < 0 ? !health_transient(rc) : persistent);
		sqlite3_bind_text(s, 5, msg && msg[0] ? msg : strerror(-rc), -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 6, (int64_t)now_real_ns());
	}
	r = sqlite3_step(s);
	sqlite3_reset(s);
	return r == SQLITE_DONE ? 0 : -EIO;
}

int health_queue_facts(struct meta *m, struct health_queue *q)
{
	sqlite3_stmt *s = meta_stmt(m, "SELECT count(*), coalesce(sum(i.size),0), coalesce(min(u.changed),0)"
				       " FROM upload u JOIN inode i ON i.ino=u.ino");
	int rc = -EIO;

	memset(q, 0, sizeof(*q));
	if (!s)
		return rc;
	if (sqlite3_step(s) == SQLITE_ROW) {
		q->files = (uint64_t)sqlite3_column_int64(s, 0);
		q->bytes = (uint64_t)sqlite3_column_int64(s, 1);
		q->oldest = sqlite3_column_int64(s, 2);
		rc = 0;
	}
	sqlite3_reset(s);
	if (rc)
		return rc;
	s = meta_stmt(m, "SELECT coalesce(sum(persistent=0),0), coalesce(sum(persistent<>0),0) FROM file_error");
	if (s) {
		if (sqlite3_step(s) == SQLITE_ROW) {
			q->transient = (uint64_t)sqlite3_column_int64(s, 0);
			q->persistent = (uint64_t)sqlite3_column_int64(s, 1);
		}
		sqlite3_reset(s);
	}
	return 0;
}
