/*
 * meta.c - the SQLite metadata store. Tables: inode (attributes, symlink
 * targets), dentry (parent, name) -> inode with a per-entry cookie that
 * readdir uses as a stable offset, xattr, and config (volume settings).
 * The store runs in WAL mode with synchronous=NORMAL; meta_commit(durable)
 * upgrades one commit to a full WAL fsync when the application asked for
 * durability (fsync). All statements are prepared once at open.
 *
 * Group commit (meta_set_batch, used by the home mount): an operation that
 * ends with meta_commit_batched() leaves its transaction open so that the
 * next operations join it, each inside its own SAVEPOINT (a failed
 * operation rolls back alone). The batch commits when it holds max_ops
 * operations, when the owner calls meta_batch_commit() (its age limit),
 * and on any plain meta_commit(): durable commits, and every writer whose
 * effects outside SQLite (an unlinked data file, an upload) must not
 * outlive a lost batch. A batch opens only while the store's file system
 * has room (META_BATCH_MIN_FREE and the reserve file in place): SQLite rolls
 * back a whole transaction whose COMMIT fails, so a batch must not meet a
 * full disk. If a batch is lost anyway (an I/O error), the owner's
 * on_lost callback runs: what the batch held was acknowledged but never
 * made durable, the same as after a crash.
 */
#include "meta.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "log.h"

enum stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
	S_INODE_GET, S_INODE_INS, S_INODE_UPD, S_INODE_BLOCKS, S_INODE_DEL, S_XATTR_DEL_INO,
	S_READLINK, S_LOOKUP, S_DENTRY_INS, S_DENTRY_DEL, S_DENTRY_SETINO,
	S_DIR_EMPTY, S_READDIR, S_XATTR_GET, S_XATTR_INS, S_XATTR_UPD,
	S_XATTR_EXISTS, S_XATTR_LIST, S_XATTR_DEL, S_CONFIG_GET, S_CONFIG_SET,
	S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT op",
	[S_RELEASE] = "RELEASE op",
	[S_ROLLBACK_TO] = "ROLLBACK TO op",
	[S_INODE_GET] = "SELECT mode,uid,gid,nlink,size,rdev,atime,mtime,ctime,sync_state,blocks"
			" FROM inode WHERE ino=?1",
	[S_INODE_INS] = "INSERT INTO inode(ino,mode,uid,gid,nlink,size,rdev,atime,mtime,ctime,blocks,target)"
			" VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
	[S_INODE_UPD] = "UPDATE inode SET mode=?2,uid=?3,gid=?4,nlink=?5,size=?6,rdev=?7,"
			"atime=?8,mtime=?9,ctime=?10 WHERE ino=?1",
	[S_INODE_BLOCKS] = "UPDATE inode SET blocks=?2 WHERE ino=?1",
	[S_INODE_DEL] = "DELETE FROM inode WHERE ino=?1",
	[S_XATTR_DEL_INO] = "DELETE FROM xattr WHERE ino=?1",
	[S_READLINK] = "SELECT target FROM inode WHERE ino=?1",
	[S_LOOKUP] = "SELECT i.ino,i.mode,i.uid,i.gid,i.nlink,i.size,i.rdev,i.atime,i.mtime,i.ctime,i.sync_state,"
		     "i.blocks"
		     " FROM dentry d JOIN inode i ON i.ino=d.ino WHERE d.parent=?1 AND d.name=?2",
	[S_DENTRY_INS] = "INSERT INTO dentry(parent,name,ino,type,cookie) VALUES(?1,?2,?3,?4,?5)",
	[S_DENTRY_DEL] = "DELETE FROM dentry WHERE parent=?1 AND name=?2",
	[S_DENTRY_SETINO] = "UPDATE dentry SET ino=?3,type=?4 WHERE parent=?1 AND name=?2",
	[S_DIR_EMPTY] = "SELECT 1 FROM dentry WHERE parent=?1 LIMIT 1",
	[S_READDIR] = "SELECT name,ino,type,cookie FROM dentry WHERE parent=?1 AND cookie>?2"
		      " ORDER BY cookie LIMIT 256",
	[S_XATTR_GET] = "SELECT value FROM xattr WHERE ino=?1 AND name=?2",
	[S_XATTR_INS] = "INSERT INTO xattr(ino,name,value) VALUES(?1,?2,?3)",
	[S_XATTR_UPD] = "UPDATE xattr SET value=?3 WHERE ino=?1 AND name=?2",
	[S_XATTR_EXISTS] = "SELECT 1 FROM xattr WHERE ino=?1 AND name=?2",
	[S_XATTR_LIST] = "SELECT name FROM xattr WHERE ino=?1 ORDER BY name",
	[S_XATTR_DEL] = "DELETE FROM xattr WHERE ino=?1 AND name=?2",
	[S_CONFIG_GET] = "SELECT value FROM config WHERE key=?1",
	[S_CONFIG_SET] = "INSERT OR REPLACE INTO config(key,value) VALUES(?1,?2)",
};

static const char schema_sql[] =
	"CREATE TABLE config(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE inode("
	" ino INTEGER PRIMARY KEY, mode INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" gid INTEGER NOT NULL, nlink INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0,"
	" rdev INTEGER NOT NULL DEFAULT 0, atime INTEGER NOT NULL, mtime INTEGER NOT NULL,"
	" ctime INTEGER NOT NULL, target BLOB,"
	" placement INTEGER NOT NULL DEFAULT 0, rule TEXT, pin INTEGER NOT NULL DEFAULT 0,"
	" sync_state INTEGER NOT NULL DEFAULT 0, next_eval INTEGER,"
	" pub_size INTEGER, pub_mtime INTEGER, blocks INTEGER NOT NULL DEFAULT -1);"
	"CREATE INDEX inode_next_eval ON inode(next_eval) WHERE next_eval IS NOT NULL;"
	"CREATE INDEX inode_placement ON inode(placement, sync_state);"
	"CREATE TABLE dentry("
	" parent INTEGER NOT NULL, name BLOB NOT NULL, ino INTEGER NOT NULL,"
	" type INTEGER NOT NULL, cookie INTEGER NOT NULL,"
	" PRIMARY KEY(parent, name)) WITHOUT ROWID;"
	"CREATE UNIQUE INDEX dentry_cookie ON dentry(parent, cookie);"
	"CREATE INDEX dentry_ino ON dentry(ino);"
	"CREATE TABLE rule(name TEXT PRIMARY KEY, pos INTEGER NOT NULL, args TEXT NOT NULL,"
	" created INTEGER NOT NULL);"
	"";

/* The sync engine's and the publisher's tables (sync.c, publish.c). */
static const char schema_sync_sql[] =
	"CREATE TABLE chunk(ino INTEGER NOT NULL, idx INTEGER NOT NULL, obj TEXT NOT NULL,"
	" len INTEGER NOT NULL, local INTEGER NOT NULL DEFAULT 1, PRIMARY KEY(ino, idx)) WITHOUT ROWID;"
	"CREATE TABLE object(name TEXT PRIMARY KEY, size INTEGER NOT NULL, refs INTEGER NOT NULL,"
	" doomed INTEGER NOT NULL DEFAULT 0, since INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX object_unref ON object(since) WHERE refs = 0;"
	/* Reference counts follow the chunk rows; deleting an inode drops its
	 * chunks and its place in the upload queue. */
	"CREATE TRIGGER chunk_ins AFTER INSERT ON chunk BEGIN"
	" UPDATE object SET refs=refs+1 WHERE name=new.obj; END;"
	"CREATE TRIGGER chunk_del AFTER DELETE ON chunk BEGIN"
	" UPDATE object SET refs=refs-1, since=unixepoch() WHERE name=old.obj; END;"
	"CREATE TRIGGER chunk_upd AFTER UPDATE OF obj ON chunk WHEN old.obj <> new.obj BEGIN"
	" UPDATE object SET refs=refs-1, since=unixepoch() WHERE name=old.obj;"
	" UPDATE object SET refs=refs+1 WHERE name=new.obj; END;"
	"CREATE TRIGGER inode_del AFTER DELETE ON inode BEGIN"
	" DELETE FROM chunk WHERE ino=old.ino; DELETE FROM upload WHERE ino=old.ino;"
	" DELETE FROM pubdirman WHERE dir=old.ino;"
	" UPDATE pubobj SET users=users-1 WHERE key=(SELECT 'dirs/'||substr(obj,1,2)||'/'||obj"
	"  FROM pubdir WHERE ino=old.ino);"
	" DELETE FROM pubdir WHERE ino=old.ino; END;"
	"";

static const char schema_pub_sql[] =
	/* Publishing (publish.c): which directories changed since the last
	 * snapshot, what each published, and which snapshots use an object. */
	"CREATE TABLE pubdirty(ino INTEGER PRIMARY KEY);"
	"CREATE TABLE pubdir(ino INTEGER PRIMARY KEY, obj TEXT);"
	"CREATE TABLE pubdirman(dir INTEGER NOT NULL, manifest TEXT NOT NULL, PRIMARY KEY(dir, manifest)) WITHOUT ROWID;"
	"CREATE TABLE pubobj(key TEXT PRIMARY KEY, users INTEGER NOT NULL DEFAULT 0,"
	" first_seq INTEGER NOT NULL, last_seq INTEGER, stored INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE TABLE manchunk(manifest TEXT NOT NULL, obj TEXT NOT NULL, PRIMARY KEY(manifest, obj)) WITHOUT ROWID;"
	"CREATE TABLE pubman(manifest TEXT PRIMARY KEY, fid INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX pubman_fid ON pubman(fid);"
	"CREATE TABLE snapshot(seq INTEGER PRIMARY KEY, created INTEGER NOT NULL, root TEXT NOT NULL);"
	"CREATE TRIGGER pub_dentry_ins AFTER INSERT ON dentry BEGIN"
	" INSERT OR IGNORE INTO pubdirty VALUES(new.parent); END;"
	"CREATE TRIGGER pub_dentry_del AFTER DELETE ON dentry BEGIN"
	" INSERT OR IGNORE INTO pubdirty VALUES(old.parent); END;"
	"CREATE TRIGGER pub_dentry_upd AFTER UPDATE ON dentry BEGIN"
	" INSERT OR IGNORE INTO pubdirty VALUES(old.parent);"
	" INSERT OR IGNORE INTO pubdirty VALUES(new.parent); END;"
	"CREATE TRIGGER pub_inode_upd AFTER UPDATE OF placement, rule, mode, uid, gid, pub_size, pub_mtime,"
	" sync_state ON inode BEGIN"
	" INSERT OR IGNORE INTO pubdirty SELECT parent FROM dentry WHERE ino=new.ino; END;"
	"CREATE TRIGGER pubdirman_ins AFTER INSERT ON pubdirman BEGIN"
	" UPDATE pubobj SET users=users+1, last_seq=NULL WHERE key='files/'||substr(new.manifest,1,2)||'/'||new.manifest; END;"
	"CREATE TRIGGER pubdirman_del AFTER DELETE ON pubdirman BEGIN"
	" UPDATE pubobj SET users=users-1 WHERE key='files/'||substr(old.manifest,1,2)||'/'||old.manifest; END;"
	"CREATE TRIGGER manchunk_ins AFTER INSERT ON manchunk BEGIN"
	" UPDATE object SET refs=refs+1 WHERE name=new.obj; END;"
	"CREATE TRIGGER manchunk_del AFTER DELETE ON manchunk BEGIN"
	" UPDATE object SET refs=refs-1, since=unixepoch() WHERE name=old.obj; END;"
	"CREATE TABLE upload(ino INTEGER PRIMARY KEY, changed INTEGER NOT NULL,"
	" next_try INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
	" forced INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE job(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, arg TEXT,"
	" state TEXT NOT NULL DEFAULT 'pending', done INTEGER NOT NULL DEFAULT 0,"
	" total INTEGER NOT NULL DEFAULT 0, error TEXT, created INTEGER NOT NULL);"
	"CREATE TABLE xattr(ino INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,"
	" PRIMARY KEY(ino, name)) WITHOUT ROWID;"
	"CREATE INDEX xattr_name ON xattr(name);";

/*
 * Version 3 (round 2): tables added by later features. Every statement is
 * CREATE ... IF NOT EXISTS: the same text makes a new store and upgrades
 * an older one (upgrade()).
 */
static const char schema_v3_sql[] =
	"CREATE TABLE IF NOT EXISTS node(name TEXT PRIMARY KEY, serial INTEGER NOT NULL,"
	" secret BLOB NOT NULL, created INTEGER NOT NULL, revoked INTEGER, quota INTEGER NOT NULL DEFAULT 0,"
	" last_seq INTEGER NOT NULL DEFAULT 0, last_import INTEGER, files INTEGER NOT NULL DEFAULT 0,"
	" bytes INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,"
	" conflicts INTEGER NOT NULL DEFAULT 0, pending INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
	/* publish.c: the cloud-write rules object each snapshot named ("" none) */
	"CREATE TABLE IF NOT EXISTS snapwrules(seq INTEGER PRIMARY KEY, name TEXT NOT NULL);"
	/* import.c: change sets applied (state 'applied' until acknowledged,
	 * then 'done'), what each imported change produced, conflicts kept,
	 * commit objects that do not open */
	"CREATE TABLE IF NOT EXISTS import(node TEXT NOT NULL, serial INTEGER NOT NULL,"
	" seq INTEGER NOT NULL, state TEXT NOT NULL, ack BLOB NOT NULL, changes INTEGER NOT NULL,"
	" applied INTEGER NOT NULL, done INTEGER, PRIMARY KEY(node, serial, seq)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS import_file(node TEXT NOT NULL, serial INTEGER NOT NULL,"
	" seq INTEGER NOT NULL, idx INTEGER NOT NULL, ino INTEGER NOT NULL, mtime INTEGER NOT NULL,"
	" size INTEGER NOT NULL, PRIMARY KEY(node, serial, seq, idx)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS conflict(id INTEGER PRIMARY KEY, path TEXT NOT NULL, copy TEXT,"
	" node TEXT NOT NULL, serial INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,"
	" reason TEXT NOT NULL, time INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS conflict_path ON conflict(path);"
	"CREATE TABLE IF NOT EXISTS import_bad(node TEXT NOT NULL, serial INTEGER NOT NULL,"
	" key TEXT NOT NULL, seen INTEGER NOT NULL, PRIMARY KEY(node, serial, key)) WITHOUT ROWID;"
	/* Publishing without side channels (publish.c): the file id each
	 * published inode shows (snap_fid()), and each published directory's
	 * time as derived from its exported entries. */
	"CREATE TABLE IF NOT EXISTS pubfid(ino INTEGER PRIMARY KEY, fid INTEGER NOT NULL UNIQUE);"
	"CREATE TABLE IF NOT EXISTS pubdirtime(ino INTEGER PRIMARY KEY, mtime INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS dentry_symlink ON dentry(parent) WHERE type=10;"
	"CREATE TRIGGER IF NOT EXISTS pubfid_del AFTER DELETE ON inode BEGIN"
	" DELETE FROM pubfid WHERE ino=old.ino; DELETE FROM pubdirtime WHERE ino=old.ino; END;"
	/* The egress audit log (audit.c): one record per upload and per
	 * publish, and the store objects each one wrote. */
	"CREATE TABLE IF NOT EXISTS egress(id INTEGER PRIMARY KEY, time INTEGER NOT NULL, kind TEXT NOT NULL,"
	" path TEXT NOT NULL, rule TEXT, placement TEXT, bytes INTEGER NOT NULL DEFAULT 0,"
	" objects INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS egress_time ON egress(time);"
	"CREATE TABLE IF NOT EXISTS egress_obj(rec INTEGER NOT NULL, key TEXT NOT NULL,"
	" PRIMARY KEY(rec, key)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS egress_obj_key ON egress_obj(key);"
	/* publish.c: a new directory is built too, so an empty one inside a
	 * cloud-write area is published (cloud nodes see their results
	 * directory before anything is in it) */
	"CREATE TRIGGER IF NOT EXISTS pub_dentry_ins_dir AFTER INSERT ON dentry WHEN new.type=4 BEGIN"
	" INSERT OR IGNORE INTO pubdirty VALUES(new.ino); END;"
	/* Health of the store as the sync engine's operations saw it, one row
	 * per direction, and the files that do not sync, with why (health.c). */
	"CREATE TABLE IF NOT EXISTS health(dir TEXT PRIMARY KEY, last_ok INTEGER NOT NULL DEFAULT 0,"
	" last_error_at INTEGER NOT NULL DEFAULT 0, failing_since INTEGER NOT NULL DEFAULT 0,"
	" failures INTEGER NOT NULL DEFAULT 0, ok_total INTEGER NOT NULL DEFAULT 0,"
	" error_total INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_code INTEGER NOT NULL DEFAULT 0)"
	" WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS file_error(ino INTEGER PRIMARY KEY, dir TEXT NOT NULL,"
	" code INTEGER NOT NULL, persistent INTEGER NOT NULL, error TEXT NOT NULL,"
	" since INTEGER NOT NULL, last INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 1);"
	"CREATE TRIGGER IF NOT EXISTS file_error_del AFTER DELETE ON inode BEGIN"
	" DELETE FROM file_error WHERE ino=old.ino; END;"
	/* Objects a store verify found missing or damaged: an upload puts
	 * them again instead of trusting the object table (sync.c). */
	"CREATE TABLE IF NOT EXISTS object_missing(name TEXT PRIMARY KEY) WITHOUT ROWID;"
	/* What a job reports line by line (store verify), read by the CLI. */
	"CREATE TABLE IF NOT EXISTS job_line(job INTEGER NOT NULL, seq INTEGER NOT NULL,"
	" kind INTEGER NOT NULL, line TEXT NOT NULL, PRIMARY KEY(job, seq)) WITHOUT ROWID;"
	"";

#define META_CACHE_MAX 128

struct meta {
	sqlite3 *db;
	sqlite3_stmt *st[S__COUNT];
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[META_CACHE_MAX]; /* meta_stmt(): other modules' statements */
	int ncache;
	int reserve_dirfd; /* directory of the reserve file, or -1 */
	uint64_t next_cookie;
	int in_tx;
	int reserve_gone;     /* meta_release_reserve() ran; meta_reserve() restores */
	/* group commit */
	unsigned batch_max;   /* 0: every meta_commit_batched() commits */
	int batch_open;       /* a transaction holding batch_ops operations is open */
	int in_sp;            /* the current operation runs in SAVEPOINT op */
	unsigned batch_ops;
	int64_t batch_start;  /* CLOCK_MONOTONIC ns */
	int64_t batch_pause;  /* no batch opens before this CLOCK_MONOTONIC ns */
	int lost;             /* a batch was lost: no more writes on this connection */
	void (*on_lost)(void *arg, unsigned ops);
	void *on_lost_arg;
};

static int sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW: return 0;
	case SQLITE_CONSTRAINT: return -EEXIST;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_READONLY: return -EROFS;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return -EUCLEAN;
	default: return -EIO;
	}
}

static sqlite3_stmt *stmt(struct meta *m, enum stmt_id id)
{
	sqlite3_stmt *s = m->st[id];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Step a statement that returns no rows. */

int meta_release_reserve(struct meta *m)
{
	if (m->reserve_dirfd < 0 || unlinkat(m->reserve_dirfd, META_RESERVE_NAME, 0))
		return 0;
	m->reserve_gone = 1;
	log_warn("disk full: released the metadata reserve so metadata can still change");
	return 1;
}

static int exec_stmt(struct meta *m, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		if ((rc & 0xff) != SQLITE_CONSTRAINT)
			log_error("metadata store: %s", sqlite3_errmsg(m->db));
		return sql_errno(rc);
	}
	return 0;
}

static int64_t scalar_int(sqlite3 *db, const char *sql, int64_t dflt)
{
	sqlite3_stmt *s;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return dflt;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/*
 * Bring a store of an older schema to META_SCHEMA_VERSION, in one
 * transaction. 1 -> 2: inode.blocks, unknown (-1) for every inode until the
 * mount records it. 2 -> 3: schema_v3_sql. A read-only open cannot upgrade: it says how to.
 */
static int upgrade(struct meta *m, int64_t ver, int flags, const char *path, char *err,
		   size_t errlen)
{
	char *emsg = NULL;
	char sql[160];

	if (flags & META_READONLY) {
		snprintf(err, errlen, "metadata store '%s' has schema version %lld and is opened"
			 " read-only; mount the volume or run 'tierfs fsck' without -n once to"
			 " upgrade it to version %d", path, (long long)ver, META_SCHEMA_VERSION);
		return -EPROTO;
	}
	if (sqlite3_exec(m->db, "BEGIN IMMEDIATE", NULL, NULL, &emsg) == SQLITE_OK) {
		/* Another process may have upgraded it since we read the version. */
		ver = scalar_int(m->db, "PRAGMA user_version", -1);
		if (ver >= META_SCHEMA_VERSION)
			return sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
		snprintf(sql, sizeof(sql), " PRAGMA user_version=%d; COMMIT", META_SCHEMA_VERSION);
		/* 1 -> 2: inode.blocks; 2 -> 3: the version 3 tables */
		if ((ver >= 2 || sqlite3_exec(m->db, "ALTER TABLE inode ADD COLUMN blocks INTEGER NOT NULL"
					       " DEFAULT -1", NULL, NULL, &emsg) == SQLITE_OK) &&
		    sqlite3_exec(m->db, schema_v3_sql, NULL, NULL, &emsg) == SQLITE_OK &&
		    sqlite3_exec(m->db, sql, NULL, NULL, &emsg) == SQLITE_OK) {
			log_info("metadata store '%s' upgraded from schema version %lld to %d", path,
				 (long long)ver, META_SCHEMA_VERSION);
			return 0;
		}
	}
	snprintf(err, errlen, "cannot upgrade metadata store '%s' to schema version %d: %s", path,
		 META_SCHEMA_VERSION, emsg ? emsg : "unknown error");
	sqlite3_free(emsg);
	if (!sqlite3_get_autocommit(m->db))
		sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
	return -EIO;
}

int meta_open(const char *path, int flags, struct meta **out, char *err, size_t errlen)
{
	struct meta *m = calloc(1, sizeof(*m));
	int oflags = (flags & META_READONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	int rc = -EIO;
	char *emsg = NULL;

	if (!m)
		return -ENOMEM;
	m->reserve_dirfd = -1;
	if (flags & META_CREATE)
		oflags |= SQLITE_OPEN_CREATE;
	else if (access(path, F_OK) != 0) {
		snprintf(err, errlen, "no metadata store at '%s'", path);
		rc = -ENOENT;
		goto fail;
	}
	if (sqlite3_open_v2(path, &m->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open metadata store '%s': %s", path,
			 m->db ? sqlite3_errmsg(m->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(m->db, 10000);
	sqlite3_extended_result_codes(m->db, 0);
	if (flags & META_CREATE) {
		char pragmas[160];

		snprintf(pragmas, sizeof(pragmas),
			 "PRAGMA journal_mode=WAL; PRAGMA application_id=%d; PRAGMA user_version=%d;",
			 META_APP_ID, META_SCHEMA_VERSION);
		if (sqlite3_exec(m->db, pragmas, NULL, NULL, &emsg) != SQLITE_OK ||
		    sqlite3_exec(m->db, "BEGIN", NULL, NULL, &emsg) != SQLITE_OK ||
		    sqlite3_exec(m->db, schema_sql, NULL, NULL, &emsg) != SQLITE_OK ||
		    sqlite3_exec(m->db, schema_sync_sql, NULL, NULL, &emsg) != SQLITE_OK ||
		    sqlite3_exec(m->db, schema_pub_sql, NULL, NULL, &emsg) != SQLITE_OK ||
		    sqlite3_exec(m->db, schema_v3_sql, NULL, NULL, &emsg) != SQLITE_OK ||
		    sqlite3_exec(m->db, "COMMIT", NULL, NULL, &emsg) != SQLITE_OK) {
			snprintf(err, errlen, "cannot create metadata store '%s': %s", path,
				 emsg ? emsg : "unknown error");
			goto fail;
		}
	} else {
		/* Reading the header also detects files that are not SQLite. */
		int64_t app = scalar_int(m->db, "PRAGMA application_id", -1);
		int64_t ver = scalar_int(m->db, "PRAGMA user_version", -1);

		if (sqlite3_exec(m->db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, &emsg) != SQLITE_OK) {
			snprintf(err, errlen, "metadata store '%s' is corrupt or not a database: %s",
				 path, emsg ? emsg : "unreadable");
			rc = -EUCLEAN;
			goto fail;
		}
		if (app != META_APP_ID) {
			snprintf(err, errlen, "'%s' is not a tierfs metadata store", path);
			rc = -EINVAL;
			goto fail;
		}
		if (ver > META_SCHEMA_VERSION || ver < 1) {
			snprintf(err, errlen, "metadata store '%s' has schema version %lld; this tierfs knows %d",
				 path, (long long)ver, META_SCHEMA_VERSION);
			rc = -EPROTO;
			goto fail;
		}
		if (!(flags & META_READONLY) &&
		    sqlite3_exec(m->db, "PRAGMA journal_mode=WAL", NULL, NULL, &emsg) != SQLITE_OK) {
			snprintf(err, errlen, "cannot open metadata store '%s': %s", path,
				 emsg ? emsg : "unknown error");
			goto fail;
		}
		if (ver < META_SCHEMA_VERSION) {
			rc = upgrade(m, ver, flags, path, err, errlen);
			if (rc)
				goto fail;
		}
	}
	sqlite3_exec(m->db, "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;"
		     " PRAGMA temp_store=MEMORY", NULL, NULL, NULL);
	for (int i = 0; i < S__COUNT; i++) {
		if (sqlite3_prepare_v3(m->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &m->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "metadata store '%s' is damaged: %s", path,
				 sqlite3_errmsg(m->db));
			rc = -EUCLEAN;
			goto fail;
		}
	}
	m->next_cookie = (uint64_t)scalar_int(m->db, "SELECT max(cookie) FROM dentry", 2) + 1;
	if (m->next_cookie < 3)
		m->next_cookie = 3; /* 1 and 2 are "." and ".." */
	*out = m;
	return 0;
fail:
	sqlite3_free(emsg);
	meta_close(m);
	return rc;
}

void meta_close(struct meta *m)
{
	if (!m)
		return;
	if (meta_batch_commit(m))
		log_error("metadata store: the last changes could not be committed at close");
	for (int i = 0; i < S__COUNT; i++)
		sqlite3_finalize(m->st[i]);
	for (int i = 0; i < m->ncache; i++)
		sqlite3_finalize(m->cache[i].st);
	if (m->db)
		sqlite3_close(m->db);
	free(m);
}

struct sqlite3 *meta_db(struct meta *m)
{
	return m->db;
}

int meta_reserve(struct meta *m, int dirfd, uint64_t bytes)
{
	struct stat st;
	int fd;

	m->reserve_dirfd = dirfd;
	if (fstatat(dirfd, META_RESERVE_NAME, &st, 0) == 0 && (uint64_t)st.st_size >= bytes)
		return 0;
	fd = openat(dirfd, META_RESERVE_NAME, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (posix_fallocate(fd, 0, (off_t)bytes)) {
		close(fd);
		unlinkat(dirfd, META_RESERVE_NAME, 0);
		m->reserve_gone = 1;
		return -ENOSPC;
	}
	close(fd);
	m->reserve_gone = 0;
	return 0;
}

struct sqlite3_stmt *meta_stmt(struct meta *m, const char *sql)
{
	sqlite3_stmt *s = NULL;

	for (int i = 0; i < m->ncache; i++) {
		if (m->cache[i].sql == sql) {
			s = m->cache[i].st;
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			return s;
		}
	}
	if (m->ncache == META_CACHE_MAX) {
		log_error("metadata store: statement cache full (raise META_CACHE_MAX)");
		return NULL;
	}
	if (sqlite3_prepare_v3(m->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		log_error("metadata store: cannot prepare statement: %s", sqlite3_errmsg(m->db));
		return NULL;
	}
	m->cache[m->ncache].sql = sql;
	m->cache[m->ncache].st = s;
	m->ncache++;
	return s;
}

/* The batch's transaction ended without its COMMIT (an error rolled it back). */
static void batch_lost(struct meta *m)
{
	unsigned ops = m->batch_ops;

	m->batch_open = 0;
	m->in_sp = 0;
	m->in_tx = 0;
	m->batch_ops = 0;
	m->lost = 1;
	log_error("metadata store: a write error rolled back the last %u operations, which were"
		  " not yet committed", ops);
	if (m->on_lost)
		m->on_lost(m->on_lost_arg, ops);
}

int meta_begin(struct meta *m)
{
	int rc;

	/* SQLite rolls a transaction back by itself on some errors */
	if (m->batch_open && sqlite3_get_autocommit(m->db))
		batch_lost(m);
	/* After a lost batch the owner's view and the store differ: writing on
	 * would build on changes that are gone. Reads go on. */
	if (m->lost)
		return -EIO;
	if (m->batch_open) {
		rc = exec_stmt(m, stmt(m, S_SAVEPOINT));
		if (!rc)
			m->in_sp = 1;
		else if (sqlite3_get_autocommit(m->db))
			batch_lost(m);
		return rc;
	}
	rc = exec_stmt(m, stmt(m, S_BEGIN));
	if (!rc)
		m->in_tx = 1;
	return rc;
}

/*
 * With synchronous=NORMAL a WAL commit reaches the OS but is not fsync'd.
 * A durable commit syncs the WAL file itself afterwards, which makes this
 * and every earlier commit survive power loss (the WAL is sequential).
 */
static int sync_wal(struct meta *m)
{
	sqlite3_file *wal = NULL;

	if (sqlite3_file_control(m->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) != SQLITE_OK)
		return -EIO;
	if (!wal || !wal->pMethods)
		return 0; /* no WAL open: everything is in the main file */
	return wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL) == SQLITE_OK ? 0 : -EIO;
}

/* End the current operation's savepoint, keeping its changes in the batch. */
static int release_op(struct meta *m)
{
	int rc = exec_stmt(m, stmt(m, S_RELEASE));

	if (rc) {
		meta_rollback(m);
		return rc;
	}
	m->in_sp = 0;
	m->batch_ops++;
	return 0;
}

static int commit_tx(struct meta *m)
{
	int was_batch = m->batch_open;
	int rc = exec_stmt(m, stmt(m, S_COMMIT));

	/* A full disk, and SQLite kept the transaction: retry with the reserve */
	if (rc == -ENOSPC && !sqlite3_get_autocommit(m->db) && meta_release_reserve(m))
		rc = exec_stmt(m, stmt(m, S_COMMIT));
	if (rc) {
		/* SQLite rolls back on most COMMIT failures; give up the rest. */
		if (sqlite3_get_autocommit(m->db) == 0)
			exec_stmt(m, stmt(m, S_ROLLBACK));
		if (was_batch)
			batch_lost(m);
		m->in_tx = 0;
		m->in_sp = 0;
		return rc;
	}
	m->in_tx = 0;
	m->batch_open = 0;
	m->batch_ops = 0;
	return 0;
}

int meta_commit(struct meta *m, int durable)
{
	int rc;

	if (m->in_sp) {
		rc = release_op(m);
		if (rc)
			return rc;
	}
	rc = commit_tx(m);
	if (rc)
		return rc;
	return durable ? sync_wal(m) : 0;
}

/* Room for a batch: the reserve is in place and the disk has some slack. */
static int batch_room(struct meta *m)
{
	struct statvfs sv;

	if (m->reserve_dirfd < 0 || m->reserve_gone || fstatvfs(m->reserve_dirfd, &sv))
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize >= META_BATCH_MIN_FREE;
}

int meta_commit_batched(struct meta *m)
{
	int rc;

	if (m->in_sp) {
		rc = release_op(m);
		if (rc)
			return rc;
		return m->batch_ops >= m->batch_max ? commit_tx(m) : 0;
	}
	if (m->batch_max > 1 && m->in_tx && (int64_t)now_mono_ns() >= m->batch_pause && batch_room(m)) {
		m->batch_open = 1;
		m->batch_ops = 1;
		m->batch_start = (int64_t)now_mono_ns();
		return 1;
	}
	return meta_commit(m, 0);
}

int meta_batch_commit(struct meta *m)
{
	if (!m->batch_open || m->in_sp)
		return 0;
	return commit_tx(m);
}

void meta_batch_pause(struct meta *m, int64_t ns)
{
	m->batch_pause = (int64_t)now_mono_ns() + ns;
}

int64_t meta_batch_age_ns(struct meta *m)
{
	return m->batch_open ? (int64_t)now_mono_ns() - m->batch_start : -1;
}

void meta_set_batch(struct meta *m, unsigned max_ops, void (*on_lost)(void *arg, unsigned ops),
		    void *arg)
{
	m->batch_max = max_ops;
	m->on_lost = on_lost;
	m->on_lost_arg = arg;
}

void meta_rollback(struct meta *m)
{
	if (m->in_sp) {
		m->in_sp = 0;
		if (sqlite3_get_autocommit(m->db)) {
			batch_lost(m);
			return;
		}
		/* ROLLBACK TO keeps the savepoint open: release it too. */
		if (exec_stmt(m, stmt(m, S_ROLLBACK_TO)) || exec_stmt(m, stmt(m, S_RELEASE))) {
			exec_stmt(m, stmt(m, S_ROLLBACK));
			batch_lost(m);
		}
		return;
	}
	if (m->batch_open) {
		/* The failed operation never joined the batch (its SAVEPOINT failed). */
		if (sqlite3_get_autocommit(m->db))
			batch_lost(m);
		return;
	}
	if (sqlite3_get_autocommit(m->db) == 0)
		exec_stmt(m, stmt(m, S_ROLLBACK));
	m->in_tx = 0;
}

static void row_to_attr(sqlite3_stmt *s, int col, struct meta_attr *a)
{
	a->mode = (uint32_t)sqlite3_column_int64(s, col + 0);
	a->uid = (uint32_t)sqlite3_column_int64(s, col + 1);
	a->gid = (uint32_t)sqlite3_column_int64(s, col + 2);
	a->nlink = (uint64_t)sqlite3_column_int64(s, col + 3);
	a->size = (uint64_t)sqlite3_column_int64(s, col + 4);
	a->rdev = (uint64_t)sqlite3_column_int64(s, col + 5);
	a->atime = sqlite3_column_int64(s, col + 6);
	a->mtime = sqlite3_column_int64(s, col + 7);
	a->ctime = sqlite3_column_int64(s, col + 8);
	a->sync_state = (int)sqlite3_column_int64(s, col + 9);
	a->blocks = sqlite3_column_int64(s, col + 10);
}

static void bind_attr(sqlite3_stmt *s, const struct meta_attr *a)
{
	sqlite3_bind_int64(s, 1, (int64_t)a->ino);
	sqlite3_bind_int64(s, 2, a->mode);
	sqlite3_bind_int64(s, 3, a->uid);
	sqlite3_bind_int64(s, 4, a->gid);
	sqlite3_bind_int64(s, 5, (int64_t)a->nlink);
	sqlite3_bind_int64(s, 6, (int64_t)a->size);
	sqlite3_bind_int64(s, 7, (int64_t)a->rdev);
	sqlite3_bind_int64(s, 8, a->atime);
	sqlite3_bind_int64(s, 9, a->mtime);
	sqlite3_bind_int64(s, 10, a->ctime);
}

int meta_inode_get(struct meta *m, uint64_t ino, struct meta_attr *out)
{
	sqlite3_stmt *s = stmt(m, S_INODE_GET);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->ino = ino;
		row_to_attr(s, 0, out);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_errno(rc);
	}
	sqlite3_reset(s);
	return rc;
}

int meta_inode_insert(struct meta *m, const struct meta_attr *a, const void *target, size_t target_len)
{
	sqlite3_stmt *s = stmt(m, S_INODE_INS);

	bind_attr(s, a);
	sqlite3_bind_int64(s, 11, a->blocks);
	/* explicitly: a binding outlives the statement's reset */
	if (target)
		sqlite3_bind_blob(s, 12, target, (int)target_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 12);
	return exec_stmt(m, s);
}

int meta_inode_update(struct meta *m, const struct meta_attr *a)
{
	sqlite3_stmt *s = stmt(m, S_INODE_UPD);
	int rc;

	bind_attr(s, a);
	rc = exec_stmt(m, s);
	if (!rc && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	return rc;
}

int meta_inode_set_blocks(struct meta *m, uint64_t ino, int64_t blocks)
{
	sqlite3_stmt *s = stmt(m, S_INODE_BLOCKS);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, blocks);
	return exec_stmt(m, s);
}

int meta_inode_delete(struct meta *m, uint64_t ino)
{
	sqlite3_stmt *s = stmt(m, S_XATTR_DEL_INO);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	rc = exec_stmt(m, s);
	if (rc)
		return rc;
	s = stmt(m, S_INODE_DEL);
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	return exec_stmt(m, s);
}

int meta_readlink(struct meta *m, uint64_t ino, struct tbuf *out)
{
	sqlite3_stmt *s = stmt(m, S_READLINK);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) == SQLITE_NULL)
			rc = -EINVAL;
		else
			rc = tbuf_append(out, sqlite3_column_blob(s, 0),
					 (size_t)sqlite3_column_bytes(s, 0));
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_errno(rc);
	}
	sqlite3_reset(s);
	return rc;
}

uint64_t meta_max_ino(struct meta *m)
{
	return (uint64_t)scalar_int(m->db, "SELECT max(ino) FROM inode", META_ROOT_INO);
}

int meta_lookup(struct meta *m, uint64_t parent, const char *name, size_t len,
		uint64_t *ino_out, struct meta_attr *attr_out)
{
	sqlite3_stmt *s = stmt(m, S_LOOKUP);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)parent);
	sqlite3_bind_blob(s, 2, name, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*ino_out = (uint64_t)sqlite3_column_int64(s, 0);
		if (attr_out) {
			attr_out->ino = *ino_out;
			row_to_attr(s, 1, attr_out);
		}
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_errno(rc);
	}
	sqlite3_reset(s);
	return rc;
}

int meta_dentry_insert(struct meta *m, uint64_t parent, const char *name, size_t len,
		       uint64_t ino, uint32_t mode)
{
	sqlite3_stmt *s = stmt(m, S_DENTRY_INS);

	sqlite3_bind_int64(s, 1, (int64_t)parent);
	sqlite3_bind_blob(s, 2, name, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (int64_t)ino);
	sqlite3_bind_int64(s, 4, (mode & S_IFMT) >> 12);
	sqlite3_bind_int64(s, 5, (int64_t)m->next_cookie++);
	return exec_stmt(m, s);
}

int meta_dentry_delete(struct meta *m, uint64_t parent, const char *name, size_t len)
{
	sqlite3_stmt *s = stmt(m, S_DENTRY_DEL);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)parent);
	sqlite3_bind_blob(s, 2, name, (int)len, SQLITE_STATIC);
	rc = exec_stmt(m, s);
	if (!rc && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	return rc;
}

int meta_dentry_set_ino(struct meta *m, uint64_t parent, const char *name, size_t len,
			uint64_t ino, uint32_t mode)
{
	sqlite3_stmt *s = stmt(m, S_DENTRY_SETINO);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)parent);
	sqlite3_bind_blob(s, 2, name, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (int64_t)ino);
	sqlite3_bind_int64(s, 4, (mode & S_IFMT) >> 12);
	rc = exec_stmt(m, s);
	if (!rc && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	return rc;
}

int meta_dir_empty(struct meta *m, uint64_t dir)
{
	sqlite3_stmt *s = stmt(m, S_DIR_EMPTY);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)dir);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? 1 : sql_errno(rc);
}

int meta_readdir(struct meta *m, uint64_t dir, uint64_t after, meta_readdir_cb cb, void *arg)
{
	sqlite3_stmt *s = stmt(m, S_READDIR);
	int rc, n;

	for (;;) {
		n = 0;
		sqlite3_bind_int64(s, 1, (int64_t)dir);
		sqlite3_bind_int64(s, 2, (int64_t)after);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			uint64_t cookie = (uint64_t)sqlite3_column_int64(s, 3);

			n++;
			if (cb(arg, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0),
			       (uint64_t)sqlite3_column_int64(s, 1),
			       (uint32_t)sqlite3_column_int64(s, 2) << 12, cookie)) {
				sqlite3_reset(s);
				return 0;
			}
			after = cookie;
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return sql_errno(rc);
		if (n < 256)
			return 0;
	}
}

int meta_xattr_get(struct meta *m, uint64_t ino, const char *name, struct tbuf *out)
{
	sqlite3_stmt *s = stmt(m, S_XATTR_GET);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		rc = tbuf_append(out, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
	else
		rc = rc == SQLITE_DONE ? -ENODATA : sql_errno(rc);
	sqlite3_reset(s);
	return rc;
}

int meta_xattr_set(struct meta *m, uint64_t ino, const char *name, const void *value,
		   size_t len, int flags)
{
	sqlite3_stmt *s = stmt(m, S_XATTR_EXISTS);
	int exists, rc;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sql_errno(rc);
	exists = rc == SQLITE_ROW;
	if ((flags & XATTR_CREATE) && exists)
		return -EEXIST;
	if ((flags & XATTR_REPLACE) && !exists)
		return -ENODATA;
	s = stmt(m, exists ? S_XATTR_UPD : S_XATTR_INS);
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, value ? value : "", (int)len, SQLITE_STATIC);
	return exec_stmt(m, s);
}

int meta_xattr_list(struct meta *m, uint64_t ino, struct tbuf *out)
{
	sqlite3_stmt *s = stmt(m, S_XATTR_LIST);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		rc = tbuf_append(out, sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0) + 1);
		if (rc) {
			sqlite3_reset(s);
			return rc;
		}
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : sql_errno(rc);
}

int meta_xattr_remove(struct meta *m, uint64_t ino, const char *name)
{
	sqlite3_stmt *s = stmt(m, S_XATTR_DEL);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	rc = exec_stmt(m, s);
	if (!rc && sqlite3_changes(m->db) == 0)
		rc = -ENODATA;
	return rc;
}

int64_t meta_xattr_count_name(struct meta *m, const char *name)
{
	sqlite3_stmt *s;
	int64_t n = -1;

	if (sqlite3_prepare_v2(m->db, "SELECT count(*) FROM xattr WHERE name=?1", -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

int meta_config_get(struct meta *m, const char *key, char **value_out)
{
	sqlite3_stmt *s = stmt(m, S_CONFIG_GET);
	int rc;

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*value_out = strdup((const char *)sqlite3_column_text(s, 0));
		rc = *value_out ? 0 : -ENOMEM;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_errno(rc);
	}
	sqlite3_reset(s);
	return rc;
}

int meta_config_set(struct meta *m, const char *key, const char *value)
{
	sqlite3_stmt *s = stmt(m, S_CONFIG_SET);

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
	return exec_stmt(m, s);
}
