/*
 * verify.c - `tierfs store verify`: every object the metadata references is
 * in the store (deep: intact), and repair from local copies (verify.h).
 *
 * The list of referenced objects is read under the host's lock, the store
 * is asked without it (one HEAD, or GET and decode, per object), and the
 * findings are applied in one transaction under the lock again. A file
 * whose missing chunk is local is mended by dropping that chunk's row and
 * uploading the file again (the object is marked in object_missing so the
 * upload puts it instead of trusting the object table); a chunk that is
 * not local is lost, and the file is named by path.
 */
#include "verify.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "health.h"
#include "keys.h"
#include "log.h"
#include "placement.h"
#include "publish.h"
#include "snapshot.h"
#include "store.h"

struct obj {
	char *key;  /* store key */
	int chunk;  /* a chunk object (name = key's last part) */
	uint64_t seq; /* a snapshot object: its sequence number */
	int bad;    /* 0 present, -ENOENT missing, -EBADMSG damaged */
};

struct objlist {
	struct obj *v;
	size_t n, cap;
};

/* Lines found under the host's lock wait here: the callback may take it. */
struct held {
	enum verify_kind kind;
	char *text;
};

struct heldlist {
	struct held *v;
	size_t n, cap;
};

static void hold(struct heldlist *h, enum verify_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void hold(struct heldlist *h, enum verify_kind kind, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (h->n == h->cap) {
		size_t n = h->cap ? h->cap * 2 : 32;
		struct held *x = realloc(h->v, n * sizeof(*x));

		if (!x)
			return;
		h->v = x;
		h->cap = n;
	}
	h->v[h->n].kind = kind;
	h->v[h->n].text = strdup(line);
	if (h->v[h->n].text)
		h->n++;
}

/* Tell the held lines (lock released) and free them. */
static void flush_held(struct heldlist *h, const struct verify_ops *ops)
{
	for (size_t i = 0; i < h->n; i++) {
		if (ops && ops->line)
			ops->line(ops->arg, h->v[i].kind, h->v[i].text);
		free(h->v[i].text);
	}
	free(h->v);
	memset(h, 0, sizeof(*h));
}

static void say(const struct verify_ops *ops, enum verify_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(const struct verify_ops *ops, enum verify_kind kind, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (ops && ops->line)
		ops->line(ops->arg, kind, line);
}

static int add(struct objlist *l, const char *key, int chunk, uint64_t seq)
{
	if (l->n == l->cap) {
		size_t n = l->cap ? l->cap * 2 : 256;
		struct obj *x = realloc(l->v, n * sizeof(*x));

		if (!x)
			return -ENOMEM;
		l->v = x;
		l->cap = n;
	}
	l->v[l->n].key = strdup(key);
	if (!l->v[l->n].key)
		return -ENOMEM;
	l->v[l->n].chunk = chunk;
	l->v[l->n].seq = seq;
	l->v[l->n].bad = 0;
	l->n++;
	return 0;
}

/* Everything referenced, under the lock. */
static int collect(struct meta *m, struct objlist *l)
{
	static const char *const sql[] = {
		"SELECT name, 1, 0 FROM object WHERE refs > 0 AND doomed = 0 ORDER BY name",
		"SELECT key, 0, 0 FROM pubobj WHERE stored = 1 ORDER BY key",
		"SELECT NULL, 0, seq FROM snapshot ORDER BY seq",
	};
	int rc = 0, snaps = 0;

	for (size_t q = 0; q < sizeof(sql) / sizeof(sql[0]) && !rc; q++) {
		sqlite3_stmt *s = meta_stmt(m, sql[q]);

		if (!s)
			return -EIO;
		while (!rc && sqlite3_step(s) == SQLITE_ROW) {
			char key[SNAP_KEY_MAX];
			uint64_t seq = (uint64_t)sqlite3_column_int64(s, 2);

			if (q == 0)
				snap_key_chunk((const char *)sqlite3_column_text(s, 0), key);
			else if (q == 1)
				snprintf(key, sizeof(key), "%s", (const char *)sqlite3_column_text(s, 0));
			else {
				snap_key_snapshot(seq, key);
				snaps++;
			}
			rc = add(l, key, q == 0, seq);
		}
		sqlite3_reset(s);
	}
	if (!rc && snaps) {
		char key[SNAP_KEY_MAX];

		snap_key_head(key);
		rc = add(l, key, 0, 0);
	}
	return rc;
}

/* The last part of a key: a content name. */
static const char *base_name(const char *key)
{
	const char *p = strrchr(key, '/');

	return p ? p + 1 : key;
}

/* Read and authenticate one object (deep). 0, -EBADMSG, or a store error. */
static int check_deep(struct store *st, const struct volkey *k, const struct obj *o)
{
	struct tbuf raw = TBUF_INIT, plain = TBUF_INIT;
	int rc = store_get(st, o->key, 0, STORE_WHOLE, &raw);

	if (rc)
		goto out;
	if (o->chunk) {
		rc = codec_decode(k, raw.data, raw.len, base_name(o->key), CODEC_VERIFY_NAME, &plain);
	} else if (!strncmp(o->key, "dirs/", 5)) {
		struct snap_dir d;

		rc = snap_dir_decode(k, base_name(o->key), raw.data, raw.len, &d);
		if (!rc)
			snap_dir_release(&d);
	} else if (!strncmp(o->key, "files/", 6)) {
		struct snap_manifest mf;

		rc = snap_manifest_decode(k, base_name(o->key), raw.data, raw.len, &mf);
		if (!rc)
			snap_manifest_release(&mf);
	} else if (o->seq) {
		struct snap_root r;

		rc = snap_root_decode(k, o->seq, raw.data, raw.len, &r);
	} else if (!strcmp(o->key, "head")) {
		uint64_t seq;

		rc = snap_head_decode(k, raw.data, raw.len, &seq);
	} else {
		/* other sealed objects: the AEAD tag, with the key as associated data */
		rc = codec_open(k, raw.data, raw.len, o->key, strlen(o->key), &plain);
	}
	if (rc)
		rc = -EBADMSG;
out:
	tbuf_release(&raw);
	tbuf_release(&plain);
	return rc;
}

static int is_store_failure(int rc)
{
	return rc && rc != -ENOENT && rc != -EBADMSG;
}

/*
 * Apply what was found to the files (lock held, in a transaction): record
 * the files with missing chunks, and with repair drop the rows of local
 * chunks and queue the files. The repaired inodes go to *ino_out.
 */
static int mend_files(struct sync *s, struct meta *m, const struct objlist *l, int flags,
		      struct heldlist *ops, struct verify_stats *st, uint64_t **ino_out, size_t *n_out)
{
	sqlite3_stmt *q = meta_stmt(m, "SELECT ino, sum(local), sum(local=0) FROM chunk WHERE obj IN"
				       " (SELECT name FROM object_missing) GROUP BY ino ORDER BY ino");
	uint64_t *inos = NULL, orphans = 0;
	size_t n = 0, cap = 0;
	int rc = 0;

	(void)s;
	*ino_out = NULL;
	*n_out = 0;
	/* object_missing holds what this run found (and older finds not yet put) */
	for (size_t i = 0; i < l->n && !rc; i++) {
		sqlite3_stmt *ins;

		if (!l->v[i].chunk || !l->v[i].bad)
			continue;
		ins = meta_stmt(m, "SELECT NOT EXISTS(SELECT 1 FROM chunk WHERE obj=?1)");
		if (!ins)
			return -EIO;
		sqlite3_bind_text(ins, 1, base_name(l->v[i].key), -1, SQLITE_STATIC);
		if (sqlite3_step(ins) == SQLITE_ROW)
			orphans += (uint64_t)sqlite3_column_int64(ins, 0);
		sqlite3_reset(ins);
		ins = meta_stmt(m, "INSERT OR IGNORE INTO object_missing(name) VALUES(?1)");
		if (!ins)
			return -EIO;
		sqlite3_bind_text(ins, 1, base_name(l->v[i].key), -1, SQLITE_STATIC);
		rc = sqlite3_step(ins) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_reset(ins);
	}
	if (orphans) {
		/* chunks nothing local can give back: only older snapshots used them */
		hold(ops, VERIFY_LOST, "%" PRIu64 " chunks only older snapshots use are gone: cloud mounts"
		     " cannot read those old versions", orphans);
		st->files_lost++;
	}
	if (rc || !q)
		return rc ? rc : -EIO;
	while (!rc && sqlite3_step(q) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(q, 0);
		int64_t local = sqlite3_column_int64(q, 1), remote = sqlite3_column_int64(q, 2);
		struct tbuf p = TBUF_INIT;
		const char *path;
		char why[256];

		placement_path(m, ino, &p);
		path = p.data ? (const char *)p.data : "(no name)";
		st->files_bad++;
		if (remote) {
			st->files_lost++;
			snprintf(why, sizeof(why), "%lld evicted chunks missing from the store and no local copy:"
				 " data lost", (long long)remote);
			hold(ops, VERIFY_LOST, "%s: %s", path, why);
			rc = health_file_error(m, ino, HEALTH_DOWNLOAD, -ENOENT, 1, why);
		} else if (flags & VERIFY_REPAIR) {
			if (n == cap) {
				uint64_t *x = realloc(inos, (cap ? cap * 2 : 64) * sizeof(*x));

				if (!x) {
					tbuf_release(&p);
					rc = -ENOMEM;
					break;
				}
				inos = x;
				cap = cap ? cap * 2 : 64;
			}
			inos[n++] = ino;
		} else {
			snprintf(why, sizeof(why), "%lld chunks missing from the store (the local copy is"
				 " whole: 'tierfs store verify --repair' uploads them again)", (long long)local);
			hold(ops, VERIFY_MISSING, "%s: %s", path, why);
			rc = health_file_error(m, ino, HEALTH_UPLOAD, -ENOENT, 1, why);
		}
		tbuf_release(&p);
	}
	sqlite3_reset(q);
	for (size_t k = 0; k < n && !rc; k++) {
		sqlite3_stmt *d = meta_stmt(m, "DELETE FROM chunk WHERE ino=?1 AND local=1 AND obj IN"
					       " (SELECT name FROM object_missing)");

		if (!d) {
			rc = -EIO;
			break;
		}
		sqlite3_bind_int64(d, 1, (int64_t)inos[k]);
		rc = sqlite3_step(d) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_reset(d);
		if (!rc)
			rc = placement_queue_upload(m, inos[k], 0);
	}
	if (rc) {
		free(inos);
		return rc;
	}
	*ino_out = inos;
	*n_out = n;
	return 0;
}

/*
 * Published objects gone: put them all again by republishing every
 * directory. A snapshot object cannot be made again (the new publish makes
 * a newer one): the snapshot is forgotten.
 */
static int mark_republish(struct meta *m, const struct objlist *l, struct heldlist *h)
{
	sqlite3_stmt *u = meta_stmt(m, "UPDATE pubobj SET stored=0 WHERE key=?1");
	int rc = 0;

	if (!u)
		return -EIO;
	for (size_t i = 0; i < l->n && !rc; i++) {
		if (l->v[i].chunk || !l->v[i].bad)
			continue;
		if (l->v[i].seq) {
			sqlite3_stmt *d = meta_stmt(m, "DELETE FROM snapshot WHERE seq=?1");

			if (!d)
				return -EIO;
			sqlite3_bind_int64(d, 1, (int64_t)l->v[i].seq);
			rc = sqlite3_step(d) == SQLITE_DONE ? 0 : -EIO;
			sqlite3_reset(d);
			hold(h, VERIFY_REPAIRED, "snapshot %" PRIu64 " is gone from the store: forgotten (cloud"
			     " mounts read the one published now)", l->v[i].seq);
			continue;
		}
		sqlite3_reset(u);
		sqlite3_bind_text(u, 1, l->v[i].key, -1, SQLITE_STATIC);
		rc = sqlite3_step(u) == SQLITE_DONE ? 0 : -EIO;
	}
	sqlite3_reset(u);
	if (!rc && sqlite3_exec(meta_db(m), "INSERT OR IGNORE INTO pubdirty SELECT ino FROM inode"
					   " WHERE (mode & 61440) = 16384", NULL, NULL, NULL) != SQLITE_OK)
		rc = -EIO;
	return rc;
}

int verify_run(struct sync *s, int flags, const struct verify_ops *ops, struct verify_stats *st)
{
	struct meta *m = sync_meta(s);
	struct store *store = sync_store(s);
	const struct volkey *k = sync_key(s);
	struct objlist l = { NULL, 0, 0 };
	struct heldlist held = { NULL, 0, 0 };
	uint64_t *inos = NULL;
	size_t ninos = 0;
	int rc;

	memset(st, 0, sizeof(*st));
	sync_lock(s);
	rc = collect(m, &l);
	sync_unlock(s);
	if (rc) {
		say(ops, VERIFY_INFO, "cannot read the metadata store: %s", strerror(-rc));
		goto out;
	}
	st->objects = l.n;
	for (size_t i = 0; i < l.n; i++) {
		struct obj *o = &l.v[i];
		uint64_t size;
		int r = flags & VERIFY_DEEP ? check_deep(store, k, o) : store_head(store, o->key, &size);

		if (is_store_failure(r)) {
			/* not a finding: the store does not answer; give up */
			say(ops, VERIFY_INFO, "cannot check '%s': %s", o->key,
			    store_errmsg()[0] ? store_errmsg() : strerror(-r));
			rc = r;
			goto out;
		}
		o->bad = r;
		if (r == -ENOENT)
			st->missing++;
		else if (r)
			st->damaged++;
		if (r && !o->chunk) {
			st->published_missing++;
			say(ops, VERIFY_MISSING, "published object '%s' %s", o->key,
			    r == -ENOENT ? "is missing" : "is damaged (authentication failed)");
		}
		st->checked++;
		if (ops && ops->progress && (st->checked % 64 == 0 || st->checked == l.n))
			ops->progress(ops->arg, st->checked, l.n);
	}
	sync_lock(s);
	rc = meta_begin(m);
	/* what an earlier verify (or a recall) found missing is found again
	 * below if it still is: a store restored meanwhile clears the list */
	if (!rc && sqlite3_exec(meta_db(m), "DELETE FROM file_error WHERE persistent=1 AND code=2 AND"
				 " error LIKE '%missing from the store%'", NULL, NULL, NULL) != SQLITE_OK)
		rc = -EIO;
	if (!rc && (st->missing || st->damaged))
		rc = mend_files(s, m, &l, flags, &held, st, &inos, &ninos);
	if (!rc && (flags & VERIFY_REPAIR) && st->published_missing)
		rc = mark_republish(m, &l, &held);
	if (!rc)
		rc = meta_commit(m, 0);
	else
		meta_rollback(m);
	sync_unlock(s);
	flush_held(&held, ops);
	if (rc) {
		say(ops, VERIFY_INFO, "cannot record what was found: %s", strerror(-rc));
		goto out;
	}
	if (!(flags & VERIFY_REPAIR) || (!st->missing && !st->damaged))
		goto out;

	/* Upload the mended files now, from their local copies. */
	for (size_t i = 0; i < ninos; i++) {
		struct tbuf p = TBUF_INIT;
		int r = sync_upload_file(s, inos[i]);

		sync_lock(s);
		placement_path(m, inos[i], &p);
		sync_unlock(s);
		if (r) {
			say(ops, VERIFY_MISSING, "%s: cannot upload it again: %s", p.data ? (char *)p.data : "?",
			    store_errmsg()[0] ? store_errmsg() : strerror(-r));
		} else {
			st->files_repaired++;
			say(ops, VERIFY_REPAIRED, "%s: uploaded again from the local copy",
			    p.data ? (char *)p.data : "?");
		}
		tbuf_release(&p);
	}
	if (st->published_missing || st->files_repaired) {
		struct publish_stats ps;
		int r = sync_publish(s, 1, &ps);

		if (r) {
			say(ops, VERIFY_MISSING, "cannot publish again: %s",
			    store_errmsg()[0] ? store_errmsg() : strerror(-r));
		} else {
			st->published_repaired = st->published_missing > 0;
			if (st->published_missing)
				say(ops, VERIFY_REPAIRED, "published snapshot %" PRIu64 " again (%" PRIu64 " objects put)",
				    ps.seq, ps.objects);
		}
	}
out:
	if (!rc)
		say(ops, VERIFY_INFO, "%" PRIu64 " objects checked%s: %" PRIu64 " missing, %" PRIu64 " damaged;"
		    " %" PRIu64 " files affected, %" PRIu64 " repaired, %" PRIu64 " cannot be mended",
		    st->checked, flags & VERIFY_DEEP ? " (read and authenticated)" : "", st->missing,
		    st->damaged, st->files_bad, st->files_repaired, st->files_lost);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].key);
	free(l.v);
	free(inos);
	return rc;
}

int verify_copy(struct sync *s, struct store *dst, const struct verify_ops *ops, uint64_t *copied_out,
		uint64_t *present_out, uint64_t *unreadable_out)
{
	struct objlist l = { NULL, 0, 0 };
	struct store *src = sync_store(s);
	int rc;

	*copied_out = *present_out = *unreadable_out = 0;
	sync_lock(s);
	rc = collect(sync_meta(s), &l);
	sync_unlock(s);
	for (size_t i = 0; i < l.n && !rc; i++) {
		struct tbuf b = TBUF_INIT;
		uint64_t size;

		rc = store_head(dst, l.v[i].key, &size);
		if (!rc) {
			(*present_out)++;
		} else if (rc == -ENOENT) {
			rc = store_get(src, l.v[i].key, 0, STORE_WHOLE, &b);
			if (rc == -ENOENT) {
				(*unreadable_out)++;
				rc = 0;
			} else if (rc) {
				say(ops, VERIFY_INFO, "cannot read '%s' from the old store: %s", l.v[i].key,
				    store_errmsg());
			} else {
				rc = store_put(dst, l.v[i].key, b.data, b.len);
				if (rc)
					say(ops, VERIFY_INFO, "cannot write '%s' to the new store: %s", l.v[i].key,
					    store_errmsg());
				else
					(*copied_out)++;
			}
		} else {
			say(ops, VERIFY_INFO, "cannot check '%s' in the new store: %s", l.v[i].key, store_errmsg());
		}
		tbuf_release(&b);
		if (ops && ops->progress && ((i + 1) % 64 == 0 || i + 1 == l.n))
			ops->progress(ops->arg, i + 1, l.n);
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].key);
	free(l.v);
	return rc;
}

int verify_exit_status(const struct verify_stats *st, int flags)
{
	if (!st->missing && !st->damaged)
		return 0;
	if (!(flags & VERIFY_REPAIR) || st->files_lost ||
	    st->files_repaired < st->files_bad || (st->published_missing && !st->published_repaired))
		return 4;
	return 1;
}
