/*
 * audit.c - the egress audit log (audit.h): records of what left the
 * premises, written by the sync engine and the publisher in the same
 * transactions that register what they put, and their pruning.
 */
#include "audit.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "placement.h"

static int sqlfail(struct meta *m)
{
	log_error("audit log: %s", sqlite3_errmsg(meta_db(m)));
	return -EIO;
}

int audit_note(struct meta *m, int64_t *rec_io, const char *kind, uint64_t ino, const char *path,
	       uint64_t bytes, const char *const *keys, size_t nkeys)
{
	sqlite3_stmt *s;
	int rc = 0;

	if (!*rec_io) {
		struct tbuf p = TBUF_INIT;
		struct placement_info pi;
		int have = 0;

		memset(&pi, 0, sizeof(pi));
		if (ino) {
			rc = placement_path(m, ino, &p);
			if (rc == -ENOMEM)
				return rc;
			have = placement_get(m, ino, &pi) == 0;
		}
		s = meta_stmt(m, "INSERT INTO egress(time, kind, path, rule, placement) VALUES(?1, ?2, ?3, ?4, ?5)");
		if (!s) {
			tbuf_release(&p);
			return -EIO;
		}
		sqlite3_bind_int64(s, 1, (int64_t)now_real_ns());
		sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
		/* a file unlinked meanwhile has no path any more */
		sqlite3_bind_text(s, 3, path ? path : !rc && p.len ? (const char *)p.data : "?", -1,
				  SQLITE_TRANSIENT);
		if (have && pi.rule[0])
			sqlite3_bind_text(s, 4, pi.rule, -1, SQLITE_TRANSIENT);
		if (have)
			sqlite3_bind_text(s, 5, placement_name((enum placement)pi.placement), -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		tbuf_release(&p);
		if (rc != SQLITE_DONE)
			return sqlfail(m);
		*rec_io = sqlite3_last_insert_rowid(meta_db(m));
	}
	s = meta_stmt(m, "UPDATE egress SET bytes=bytes+?2, objects=objects+?3 WHERE id=?1");
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, *rec_io);
	sqlite3_bind_int64(s, 2, (int64_t)bytes);
	sqlite3_bind_int64(s, 3, (int64_t)nkeys);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return sqlfail(m);
	for (size_t i = 0; i < nkeys; i++) {
		s = meta_stmt(m, "INSERT OR IGNORE INTO egress_obj(rec, key) VALUES(?1, ?2)");
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, *rec_io);
		sqlite3_bind_text(s, 2, keys[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return sqlfail(m);
	}
	return 0;
}

int64_t audit_keep(struct meta *m)
{
	char *v = NULL;
	int64_t keep = AUDIT_KEEP_DEFAULT;

	if (meta_config_get(m, "audit_keep", &v) == 0 && v) {
		char *end;
		long long x = strtoll(v, &end, 10);

		if (!*end && x > 0)
			keep = x;
	}
	free(v);
	return keep;
}

int audit_prune(struct meta *m, int64_t now)
{
	sqlite3_stmt *s;
	int rc, n;

	s = meta_stmt(m, "DELETE FROM egress WHERE time < ?1 AND NOT EXISTS(SELECT 1 FROM egress_obj o"
			 " WHERE o.rec=egress.id AND o.key<>'head' AND " AUDIT_LIVE_SQL("o.key") ")");
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, now - audit_keep(m) * 1000000000ll);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return sqlfail(m);
	n = sqlite3_changes(meta_db(m));
	if (n && sqlite3_exec(meta_db(m), "DELETE FROM egress_obj WHERE rec NOT IN (SELECT id FROM egress)",
			      NULL, NULL, NULL) != SQLITE_OK)
		return sqlfail(m);
	return n;
}
