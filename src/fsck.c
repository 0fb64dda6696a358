/*
 * fsck.c - the volume checker. It verifies the SQLite store itself
 * (PRAGMA integrity_check), then the namespace: the root directory, entries
 * that point at missing inodes or live in non-directories, link counts,
 * inodes no entry reaches, directories cut off from the root, symlinks
 * without a target, and regular files against their data files (missing,
 * size mismatch, data files that belong to no inode). With FSCK_REPAIR it
 * fixes each problem in one transaction; a problem it cannot fix (a damaged
 * SQLite file) is reported as uncorrected.
 */
#include "fsck.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"

struct fsck {
	struct volume *vol;
	sqlite3 *db;
	int repair;
	FILE *out;
	int found;
	int fixed;
	int unclean;  /* mounted now, or not unmounted cleanly: recovery has work */
	int pending;  /* what recovery finishes: not problems */
	int spares;   /* unused spare data files */
};

/* A state a live mount, or the recovery after a crash, finishes by itself:
 * told, never counted as a problem (fsck -n on a live or crashed volume). */
static void pending(struct fsck *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pending(struct fsck *f, const char *fmt, ...)
{
	va_list ap;

	f->pending++;
	fprintf(f->out, "note: ");
	va_start(ap, fmt);
	vfprintf(f->out, fmt, ap);
	va_end(ap);
	fprintf(f->out, " (the mount finishes this)\n");
}

static void problem(struct fsck *f, int fixable, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(struct fsck *f, int fixable, const char *fmt, ...)
{
	va_list ap;

	f->found++;
	va_start(ap, fmt);
	vfprintf(f->out, fmt, ap);
	va_end(ap);
	if (f->repair && fixable) {
		f->fixed++;
		fprintf(f->out, ": repaired\n");
	} else {
		fprintf(f->out, "%s\n", f->repair ? ": NOT repaired" : "");
	}
}

static int exec(struct fsck *f, const char *sql)
{
	char *e = NULL;

	if (sqlite3_exec(f->db, sql, NULL, NULL, &e) != SQLITE_OK) {
		fprintf(f->out, "fsck: query failed: %s\n", e ? e : "?");
		sqlite3_free(e);
		return -EIO;
	}
	return 0;
}

/* Run a query; call fn for each row. */
static int each_row(struct fsck *f, const char *sql, void (*fn)(struct fsck *, sqlite3_stmt *))
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(f->db, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(f->out, "fsck: query failed: %s\n", sqlite3_errmsg(f->db));
		return -EIO;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		fn(f, s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int64_t col(sqlite3_stmt *s, int i)
{
	return sqlite3_column_int64(s, i);
}

static void dangling_dentry(struct fsck *f, sqlite3_stmt *s)
{
	problem(f, 1, "entry '%.*s' in directory %lld points to missing inode %lld",
		sqlite3_column_bytes(s, 1), (const char *)sqlite3_column_blob(s, 1),
		(long long)col(s, 0), (long long)col(s, 2));
}

static void entry_in_nondir(struct fsck *f, sqlite3_stmt *s)
{
	problem(f, 1, "entry '%.*s' lives in inode %lld, which is not a directory",
		sqlite3_column_bytes(s, 1), (const char *)sqlite3_column_blob(s, 1),
		(long long)col(s, 0));
}

static void bad_nlink(struct fsck *f, sqlite3_stmt *s)
{
	problem(f, 1, "inode %lld has link count %lld, expected %lld", (long long)col(s, 0),
		(long long)col(s, 1), (long long)col(s, 2));
}

static void orphan(struct fsck *f, sqlite3_stmt *s)
{
	if (f->unclean && !f->repair) {
		pending(f, "inode %lld is unlinked but was open", (long long)col(s, 0));
		return;
	}
	problem(f, 1, "inode %lld is not reachable from any directory", (long long)col(s, 0));
}

static void symlink_no_target(struct fsck *f, sqlite3_stmt *s)
{
	problem(f, 1, "symlink inode %lld has no target", (long long)col(s, 0));
}

static void check_data(struct fsck *f, sqlite3_stmt *s)
{
	uint64_t ino = (uint64_t)col(s, 0);
	int64_t size = col(s, 1), blocks = col(s, 2);
	char name[VOLUME_DATA_NAME_MAX];
	struct stat st;

	volume_data_name(ino, name);
	if (fstatat(f->vol->datafd, name, &st, AT_SYMLINK_NOFOLLOW)) {
		problem(f, 1, "regular file inode %llu has no data file (size %lld): set to empty",
			(unsigned long long)ino, (long long)size);
		if (f->repair) {
			int fd = openat(f->vol->datafd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

			if (fd >= 0)
				close(fd);
			sqlite3_stmt *u;
			if (sqlite3_prepare_v2(f->db, "UPDATE inode SET size=0, blocks=0 WHERE ino=?1", -1, &u, NULL) == SQLITE_OK) {
				sqlite3_bind_int64(u, 1, (int64_t)ino);
				sqlite3_step(u);
				sqlite3_finalize(u);
			}
		}
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		problem(f, 0, "data file '%s' of inode %llu is not a regular file", name,
			(unsigned long long)ino);
		return;
	}
	if (st.st_size != size && f->unclean && !f->repair) {
		pending(f, "inode %llu: size %lld not written back yet (data file: %lld bytes)",
			(unsigned long long)ino, (long long)size, (long long)st.st_size);
	} else if (st.st_size != size) {
		problem(f, 1, "inode %llu records size %lld but its data file holds %lld bytes",
			(unsigned long long)ino, (long long)size, (long long)st.st_size);
		if (f->repair) {
			sqlite3_stmt *u;

			if (sqlite3_prepare_v2(f->db, "UPDATE inode SET size=?2 WHERE ino=?1", -1, &u, NULL) == SQLITE_OK) {
				sqlite3_bind_int64(u, 1, (int64_t)ino);
				sqlite3_bind_int64(u, 2, st.st_size);
				sqlite3_step(u);
				sqlite3_finalize(u);
			}
		}
	}
	/* The recorded block count is a cache (fill_stat in fs.c): refreshed
	 * when repairing, never a problem (a live mount has newer counts). */
	if (f->repair && blocks != (int64_t)st.st_blocks) {
		sqlite3_stmt *u;

		if (sqlite3_prepare_v2(f->db, "UPDATE inode SET blocks=?2 WHERE ino=?1", -1, &u, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(u, 1, (int64_t)ino);
			sqlite3_bind_int64(u, 2, (int64_t)st.st_blocks);
			sqlite3_step(u);
			sqlite3_finalize(u);
		}
	}
}

/*
 * Data files whose inode is gone: a crash between creating a file's data
 * file and committing its inode leaves one. Calls found(arg, sub, name)
 * for each; with repair, removes them. Returns the count or -errno.
 */
static int scan_stray_data(struct volume *vol, int repair,
			   void (*found)(void *arg, const char *sub, const char *name, int empty), void *arg)
{
	sqlite3 *db = meta_db(vol->meta);
	sqlite3_stmt *s;
	int n = 0, rc = 0;

	if (sqlite3_prepare_v2(db, "SELECT mode FROM inode WHERE ino=?1", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	for (int b = 0; b < 256; b++) {
		char sub[4];
		int dfd;
		DIR *d;
		struct dirent *e;

		snprintf(sub, sizeof(sub), "%02x", b);
		dfd = openat(vol->datafd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			continue; /* fsck reports missing data directories itself */
		d = fdopendir(dfd);
		if (!d) {
			close(dfd);
			rc = -errno;
			continue;
		}
		while ((e = readdir(d))) {
			char *end;
			unsigned long long ino;
			int known = 0;

			if (e->d_name[0] == '.')
				continue;
			ino = strtoull(e->d_name, &end, 16);
			if (*end == '\0' && strlen(e->d_name) == 16 && ((ino >> 12) & 0xff) == (unsigned)b) {
				sqlite3_bind_int64(s, 1, (int64_t)ino);
				if (sqlite3_step(s) == SQLITE_ROW && S_ISREG((mode_t)sqlite3_column_int64(s, 0)))
					known = 1;
				sqlite3_reset(s);
			}
			if (!known) {
				struct stat st;
				int empty = !fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) &&
					    S_ISREG(st.st_mode) && st.st_size == 0 && st.st_blocks == 0;

				n++;
				if (found)
					found(arg, sub, e->d_name, empty);
				if (repair)
					unlinkat(dirfd(d), e->d_name, 0);
			}
		}
		closedir(d);
	}
	sqlite3_finalize(s);
	return rc ? rc : n;
}

int fsck_remove_stray_data(struct volume *vol)
{
	return scan_stray_data(vol, 1, NULL, NULL);
}

/* An empty one is a spare data file the mount made ahead for a create
 * (docs/on-disk-format.md): never a problem; a repair removes it. */
static void report_stray(void *arg, const char *sub, const char *name, int empty)
{
	struct fsck *f = arg;

	if (empty)
		f->spares++;
	else
		problem(f, 1, "data file 'data/%s/%s' belongs to no file", sub, name);
}

static int check_stray_data(struct fsck *f)
{
	for (int b = 0; b < 256; b++) {
		char sub[4];
		struct stat st;

		snprintf(sub, sizeof(sub), "%02x", b);
		if (fstatat(f->vol->datafd, sub, &st, 0) || !S_ISDIR(st.st_mode)) {
			problem(f, 1, "data directory 'data/%s' is missing", sub);
			if (f->repair)
				mkdirat(f->vol->datafd, sub, 0700);
		}
	}
	return scan_stray_data(f->vol, f->repair, report_stray, f) < 0 ? -EIO : 0;
}

int fsck_run(struct volume *vol, int flags, FILE *out)
{
	struct fsck f = { vol, meta_db(vol->meta), !!(flags & FSCK_REPAIR), out, 0, 0, 0, 0, 0 };
	sqlite3_stmt *s;
	int rc, ok = 0;
	char *clean = NULL;

	f.unclean = meta_config_get(vol->meta, "clean", &clean) || strcmp(clean, "1");
	free(clean);

	/* 1. The SQLite file itself. */
	if (sqlite3_prepare_v2(f.db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK)
		return FSCK_FAILED;
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(s, 0);

		if (r && !strcmp(r, "ok"))
			ok = 1;
		else
			problem(&f, 0, "metadata store: %s", r ? r : "?");
	}
	sqlite3_finalize(s);
	if (!ok)
		return FSCK_UNCORRECTED;

	if (f.repair && exec(&f, "BEGIN IMMEDIATE"))
		return FSCK_FAILED;
	/* 2. The root. */
	if (sqlite3_prepare_v2(f.db, "SELECT mode FROM inode WHERE ino=1", -1, &s, NULL) == SQLITE_OK) {
		int have = sqlite3_step(s) == SQLITE_ROW && S_ISDIR((mode_t)sqlite3_column_int64(s, 0));

		sqlite3_finalize(s);
		if (!have) {
			problem(&f, 1, "the root directory is missing");
			if (f.repair)
				exec(&f, "INSERT OR REPLACE INTO inode(ino,mode,uid,gid,nlink,size,rdev,atime,mtime,ctime)"
					 " VALUES(1,16877,0,0,2,0,0,0,0,0)");
		}
	}
	/* 3. Entries. */
	rc = each_row(&f, "SELECT d.parent, d.name, d.ino FROM dentry d LEFT JOIN inode i ON i.ino=d.ino"
			  " WHERE i.ino IS NULL", dangling_dentry);
	if (!rc && f.repair)
		rc = exec(&f, "DELETE FROM dentry WHERE ino NOT IN (SELECT ino FROM inode)");
	if (!rc)
		rc = each_row(&f, "SELECT d.parent, d.name FROM dentry d JOIN inode p ON p.ino=d.parent"
				  " WHERE (p.mode & 61440) <> 16384", entry_in_nondir);
	if (!rc)
		rc = each_row(&f, "SELECT d.parent, d.name FROM dentry d LEFT JOIN inode p ON p.ino=d.parent"
				  " WHERE p.ino IS NULL", entry_in_nondir);
	if (!rc && f.repair)
		rc = exec(&f, "DELETE FROM dentry WHERE parent NOT IN (SELECT ino FROM inode WHERE (mode & 61440) = 16384)");
	/* 4. Inodes nothing reaches (an unlinked-while-open file left by a crash
	 * is one: the mount's recovery removes those). Directories cut off from
	 * the root are re-attached nowhere: their contents become orphans. */
	if (!rc)
		rc = each_row(&f, "SELECT i.ino FROM inode i WHERE i.ino<>1 AND NOT EXISTS"
				  " (SELECT 1 FROM dentry d WHERE d.ino=i.ino)", orphan);
	if (!rc && f.repair) {
		rc = exec(&f, "DELETE FROM xattr WHERE ino<>1 AND ino NOT IN (SELECT ino FROM dentry);"
			      "DELETE FROM inode WHERE ino<>1 AND ino NOT IN (SELECT ino FROM dentry)");
	}
	/* 5. Link counts: files count entries, directories 2 + subdirectories. */
	if (!rc)
		rc = each_row(&f,
			"WITH c AS (SELECT i.ino, i.nlink,"
			" CASE WHEN (i.mode & 61440) = 16384 THEN 2 + (SELECT count(*) FROM dentry d"
			"   WHERE d.parent=i.ino AND d.type=4)"
			" ELSE (SELECT count(*) FROM dentry d WHERE d.ino=i.ino) END AS want FROM inode i)"
			" SELECT ino, nlink, want FROM c WHERE nlink <> want", bad_nlink);
	if (!rc && f.repair)
		rc = exec(&f,
			"UPDATE inode SET nlink = CASE WHEN (mode & 61440) = 16384 THEN 2 + (SELECT count(*)"
			" FROM dentry d WHERE d.parent=inode.ino AND d.type=4) ELSE (SELECT count(*) FROM dentry d"
			" WHERE d.ino=inode.ino) END");
	/* 6. Symlinks and xattrs. */
	if (!rc)
		rc = each_row(&f, "SELECT ino FROM inode WHERE (mode & 61440) = 40960 AND target IS NULL",
			      symlink_no_target);
	if (!rc && f.repair)
		rc = exec(&f, "UPDATE inode SET target=X'' WHERE (mode & 61440) = 40960 AND target IS NULL");
	/* 7. Regular files against their data files. */
	if (!rc)
		rc = each_row(&f, "SELECT ino, size, blocks FROM inode WHERE (mode & 61440) = 32768", check_data);
	if (!rc)
		rc = check_stray_data(&f);
	if (f.repair) {
		if (rc || exec(&f, "COMMIT")) {
			exec(&f, "ROLLBACK");
			return FSCK_FAILED;
		}
	}
	if (rc)
		return FSCK_FAILED;
	if (f.spares && (flags & FSCK_VERBOSE))
		fprintf(out, "%d spare data files of the mount (empty, for creates)%s\n", f.spares,
			f.repair ? ": removed" : "");
	if (!f.found)
		return FSCK_CLEAN;
	if (f.repair && f.fixed == f.found)
		return FSCK_CORRECTED;
	return FSCK_UNCORRECTED;
}
