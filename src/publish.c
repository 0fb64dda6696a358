/*
 * publish.c - publishes the exported part of a volume as snapshots for
 * cloud mounts (formats: snapshot.h).
 *
 * Publishing costs what changed. SQL triggers mark a directory dirty when an
 * entry in it is added, removed or renamed, or when a file in it changes
 * placement, attributes or uploaded version. A publish takes the dirty
 * directories and their ancestors, rebuilds only their listing objects
 * (deepest first; a directory's object names its children's objects), puts
 * the objects the store does not have yet (directories are named by their
 * content, so an unchanged subtree is reused as it is), writes the manifests
 * of newly uploaded file versions, then the snapshot object, then `head`.
 *
 * Retention: every directory object and manifest counts the directories of
 * the current tree that use it (pubobj.users); one no longer used gets the
 * last snapshot that had it (last_seq), and is deleted from the store once
 * that snapshot falls out of the retained window, together with the chunk
 * references of its manifest (manchunk), which keep gc from deleting data
 * a retained snapshot still reads.
 *
 * Cloud writes: every snapshot names the rules object listing the globs of
 * the --cloud-write rules (snap_wrules; "" when there are none). It is
 * content-named like a directory object; snapwrules records which one each
 * snapshot named, so a change of those globs alone makes a new snapshot,
 * and pubobj accounts for it like a directory used by the current tree
 * (users 1 while current), so retire never deletes one a retained
 * snapshot names.
 *
 * Privacy: only files whose placement is visible (on-demand, mirror, tier
 * with --export) and the directories leading to them are ever listed; a
 * directory with nothing exported below it does not appear at all. A
 * symlink is listed only when its target is exported too, or outside the
 * volume (placement_symlink_ok()); since that depends on other files, every
 * directory holding a symlink is rebuilt by every publish. Nothing else of
 * home leaks through the listing: file ids are keyed hashes of the inode
 * numbers (snap_fid()), a directory's time is the newest time of its
 * exported entries (pubdirtime), every ctime is the entry's mtime, and a
 * publish whose tree is unchanged makes no snapshot.
 */
#include "publish.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "log.h"
#include "placement.h"
#include "snapshot.h"

struct put_item {
	char key[SNAP_KEY_MAX];
	struct tbuf data;
};

struct pub {
	struct publish_ctx *c;
	uint64_t seq;
	struct put_item *puts;
	size_t nputs, cputs;
};

static int add_put(struct pub *p, const char *key, struct tbuf *data)
{
	if (p->nputs == p->cputs) {
		size_t n = p->cputs ? p->cputs * 2 : 32;
		struct put_item *x = realloc(p->puts, n * sizeof(*x));

		if (!x)
			return -ENOMEM;
		p->puts = x;
		p->cputs = n;
	}
	snprintf(p->puts[p->nputs].key, SNAP_KEY_MAX, "%s", key);
	p->puts[p->nputs].data = *data;
	memset(data, 0, sizeof(*data));
	p->nputs++;
	return 0;
}

static int sqlfail(struct meta *m)
{
	log_error("publish: metadata store: %s", sqlite3_errmsg(meta_db(m)));
	return -EIO;
}

/* Is the object known to the store (published before and not deleted)? */
static int obj_known(struct meta *m, const char *key)
{
	sqlite3_stmt *s = meta_stmt(m, "SELECT 1 FROM pubobj WHERE key=?1 AND stored=1");
	int known;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	known = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_reset(s);
	return known;
}

static int obj_record(struct meta *m, const char *key, uint64_t seq)
{
	sqlite3_stmt *s = meta_stmt(m, "INSERT INTO pubobj(key, users, first_seq) VALUES(?1, 0, ?2)"
				       " ON CONFLICT(key) DO NOTHING");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)seq);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : sqlfail(m);
}

static int obj_users(struct meta *m, const char *key, int delta)
{
	sqlite3_stmt *s = meta_stmt(m, "UPDATE pubobj SET users=users+?2,"
				       " last_seq=CASE WHEN ?2 > 0 THEN NULL ELSE last_seq END WHERE key=?1");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, delta);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : sqlfail(m);
}

int publish_fid(struct meta *m, const struct volkey *k, uint64_t ino, uint64_t *fid_out)
{
	sqlite3_stmt *s = meta_stmt(m, "SELECT fid FROM pubfid WHERE ino=?1");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*fid_out = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return sqlfail(m);
	for (uint32_t attempt = 0; attempt < 64; attempt++) {
		uint64_t fid;

		rc = snap_fid(k, ino, attempt, &fid);
		if (rc)
			return rc;
		if (fid < 2)
			continue;
		s = meta_stmt(m, "INSERT INTO pubfid(ino, fid) VALUES(?1, ?2) ON CONFLICT DO NOTHING");
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		sqlite3_bind_int64(s, 2, (int64_t)fid);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return sqlfail(m);
		if (sqlite3_changes(meta_db(m)) == 1) {
			*fid_out = fid;
			return 0;
		}
	}
	return -EEXIST; /* 64 collisions in a row: the key or the table is broken */
}

int publish_fid_ino(struct meta *m, uint64_t fid, uint64_t *ino_out)
{
	sqlite3_stmt *s = meta_stmt(m, "SELECT ino FROM pubfid WHERE fid=?1");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)fid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*ino_out = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : sqlfail(m);
}

/*
 * The cloud-write rules object of the rules in ps: its name and sealed
 * bytes, or name "" when no rule has --cloud-write.
 */
static int wrules_make(const struct publish_ctx *c, char name_out[CODEC_NAME_SIZE],
		       struct tbuf *sealed_out)
{
	struct snap_wrules w = { NULL, 0 };
	int rc = 0;

	name_out[0] = '\0';
	if (c->ps && c->ps->n) {
		w.glob = calloc(c->ps->n, sizeof(*w.glob));
		if (!w.glob)
			return -ENOMEM;
	}
	for (size_t k = 0; c->ps && k < c->ps->n; k++)
		if (c->ps->rules[k].cloud_write)
			w.glob[w.n++] = c->ps->rules[k].glob ? c->ps->rules[k].glob : (char *)"/**";
	if (w.n)
		rc = snap_wrules_encode(c->key, &w, name_out, sealed_out);
	free(w.glob); /* the strings belong to the rules */
	return rc;
}

/* The rules object snapshot seq named ("" for none, or a snapshot made
 * before cloud writes existed). */
static int wrules_of(struct meta *m, int64_t seq, char name_out[CODEC_NAME_SIZE])
{
	sqlite3_stmt *s = meta_stmt(m, "SELECT name FROM snapwrules WHERE seq=?1");

	name_out[0] = '\0';
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, seq);
	if (sqlite3_step(s) == SQLITE_ROW)
		snprintf(name_out, CODEC_NAME_SIZE, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	return 0;
}

/* Phase C: snapshot seq names wname, prev stops being current. */
static int wrules_record(struct meta *m, uint64_t seq, const char *prev, const char *wname)
{
	char key[SNAP_KEY_MAX];
	sqlite3_stmt *s;
	int rc = 0;

	if (strcmp(prev, wname)) {
		if (prev[0]) {
			snap_key_wrules(prev, key);
			rc = obj_users(m, key, -1);
		}
		if (!rc && wname[0]) {
			snap_key_wrules(wname, key);
			rc = obj_users(m, key, +1);
		}
	}
	s = meta_stmt(m, "INSERT OR REPLACE INTO snapwrules(seq, name) VALUES(?1, ?2)");
	if (!rc && s) {
		sqlite3_bind_int64(s, 1, (int64_t)seq);
		sqlite3_bind_text(s, 2, wname, -1, SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_DONE)
			rc = sqlfail(m);
		sqlite3_reset(s);
	}
	return rc ? rc : s ? 0 : -EIO;
}

/* Write (queue) the manifest of ino's uploaded version; name it. */
static int make_manifest(struct pub *p, uint64_t ino, uint64_t fid, uint64_t size, int64_t mtime,
			 char name_out[CODEC_NAME_SIZE], int *ok)
{
	struct meta *m = p->c->meta;
	struct snap_manifest man;
	struct tbuf sealed = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	sqlite3_stmt *s;
	size_t cap = 0;
	int rc, known;

	*ok = 0;
	rc = snap_manifest_name(p->c->key, fid, mtime, size, name_out);
	if (rc)
		return rc;
	snap_key_manifest(name_out, key);
	known = obj_known(m, key);
	if (known < 0)
		return known;
	if (known) {
		*ok = 1;
		return 0;
	}
	memset(&man, 0, sizeof(man));
	man.fid = fid;
	man.size = size;
	man.mtime = mtime;
	man.chunk_size = p->c->chunk_size;
	s = meta_stmt(m, "SELECT obj, len FROM chunk WHERE ino=?1 ORDER BY idx");
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (man.n == cap) {
			struct snap_chunk *c = realloc(man.c, (cap ? cap * 2 : 16) * sizeof(*c));

			if (!c) {
				rc = -ENOMEM;
				break;
			}
			man.c = c;
			cap = cap ? cap * 2 : 16;
		}
		snprintf(man.c[man.n].name, CODEC_NAME_SIZE, "%s", (const char *)sqlite3_column_text(s, 0));
		man.c[man.n].len = (uint32_t)sqlite3_column_int64(s, 1);
		man.n++;
	}
	sqlite3_reset(s);
	/* the chunks must cover the uploaded size exactly */
	if (!rc) {
		uint64_t total = 0;

		for (size_t i = 0; i < man.n; i++)
			total += man.c[i].len;
		if (total != size) {
			free(man.c);
			return 0; /* not a complete upload: publish without data */
		}
	}
	if (!rc)
		rc = snap_manifest_encode(p->c->key, &man, &sealed);
	if (!rc)
		rc = obj_record(m, key, p->seq);
	if (!rc) {
		/* which file it is about: a file that turns private is purged */
		sqlite3_stmt *pm = meta_stmt(m, "INSERT OR IGNORE INTO pubman(manifest, fid) VALUES(?1, ?2)");

		if (!pm)
			rc = -EIO;
		else {
			sqlite3_bind_text(pm, 1, name_out, -1, SQLITE_STATIC);
			sqlite3_bind_int64(pm, 2, (int64_t)ino);
			if (sqlite3_step(pm) != SQLITE_DONE)
				rc = sqlfail(m);
			sqlite3_reset(pm);
		}
	}
	/* its chunks stay alive while the manifest does */
	for (size_t i = 0; !rc && i < man.n; i++) {
		sqlite3_stmt *mc = meta_stmt(m, "INSERT OR IGNORE INTO manchunk(manifest, obj) VALUES(?1, ?2)");

		if (!mc) {
			rc = -EIO;
			break;
		}
		sqlite3_bind_text(mc, 1, name_out, -1, SQLITE_STATIC);
		sqlite3_bind_text(mc, 2, man.c[i].name, -1, SQLITE_STATIC);
		if (sqlite3_step(mc) != SQLITE_DONE)
			rc = sqlfail(m);
		sqlite3_reset(mc);
	}
	if (!rc)
		rc = add_put(p, key, &sealed);
	if (!rc)
		*ok = 1;
	tbuf_release(&sealed);
	free(man.c);
	return rc;
}

struct mset {
	char (*v)[CODEC_NAME_SIZE];
	size_t n, cap;
};

static int mset_add(struct mset *s, const char *name)
{
	if (s->n == s->cap) {
		size_t n = s->cap ? s->cap * 2 : 16;
		void *x = realloc(s->v, n * sizeof(*s->v));

		if (!x)
			return -ENOMEM;
		s->v = x;
		s->cap = n;
	}
	snprintf(s->v[s->n++], CODEC_NAME_SIZE, "%s", name);
	return 0;
}

/* Was this file version uploaded (a manifest can name its chunks)? */
static int uploaded(sqlite3_stmt *s)
{
	int st = (int)sqlite3_column_int64(s, 11);

	if (sqlite3_column_type(s, 12) == SQLITE_NULL)
		return 0;
	if (st == SYNC_SYNCED || st == SYNC_EVICTED || st == SYNC_PARTIAL || st == SYNC_QUEUED ||
	    st == SYNC_UPLOADING)
		return 1;
	/* an empty file has no chunks, so it stays "local" once uploaded */
	return st == SYNC_LOCAL && sqlite3_column_int64(s, 12) == 0 && sqlite3_column_int64(s, 6) == 0;
}

/*
 * Is directory dir inside a cloud-write area: does the rule that would
 * place a file at its path let cloud nodes write there? Such a directory is
 * published even with nothing exported in it, so a node sees the results
 * directory home made for it (its name is exported by that rule anyway).
 */
static int cloud_write_dir(struct pub *p, uint64_t dir)
{
	const struct policy_set *ps = p->c->ps;
	struct tbuf path = TBUF_INIT;
	struct policy_file f;
	struct policy_result r;
	int any = 0, yes = 0;

	for (size_t k = 0; ps && k < ps->n && !any; k++)
		any = ps->rules[k].cloud_write;
	if (!any || placement_path(p->c->meta, dir, &path))
		goto out;
	memset(&f, 0, sizeof(f));
	f.path = (const char *)path.data;
	f.mtime = f.atime = (int64_t)now_real_ns();
	yes = policy_evaluate(ps->rules, ps->n, &f, f.mtime, &r) == 0 && r.matched && r.matched->cloud_write &&
	      r.visible;
out:
	tbuf_release(&path);
	return yes;
}

/*
 * Rebuild one directory's object; *obj_out "" when nothing is exported.
 * Records the directory's time (the newest of its exported entries') in
 * pubdirtime, where its parent's listing and the snapshot read it.
 */
static int build_dir(struct pub *p, uint64_t dir, char obj_out[CODEC_NAME_SIZE])
{
	struct meta *m = p->c->meta;
	struct snap_dir d = { NULL, 0 };
	struct mset mans = { NULL, 0, 0 };
	size_t cap = 0;
	sqlite3_stmt *s;
	int64_t newest = 0;
	int rc = 0, cw = 0;

	obj_out[0] = '\0';
	s = meta_stmt(m, "SELECT d.name, d.ino, d.type, i.mode, i.uid, i.gid, i.size, i.mtime, i.ctime,"
			 " i.placement, i.rule, i.sync_state, i.pub_size, i.pub_mtime, i.target, pd.obj, pt.mtime"
			 " FROM dentry d JOIN inode i ON i.ino=d.ino LEFT JOIN pubdir pd ON pd.ino=d.ino"
			 " LEFT JOIN pubdirtime pt ON pt.ino=d.ino WHERE d.parent=?1");
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)dir);
	while (!rc && sqlite3_step(s) == SQLITE_ROW) {
		int type = (int)sqlite3_column_int64(s, 2);
		struct snap_entry e;
		const char *rule = (const char *)sqlite3_column_text(s, 10);
		int placement = (int)sqlite3_column_int64(s, 9);
		uint64_t ino = (uint64_t)sqlite3_column_int64(s, 1);

		memset(&e, 0, sizeof(e));
		e.mode = (uint32_t)sqlite3_column_int64(s, 3);
		e.uid = (uint32_t)sqlite3_column_int64(s, 4);
		e.gid = (uint32_t)sqlite3_column_int64(s, 5);
		e.size = (uint64_t)sqlite3_column_int64(s, 6);
		e.mtime = sqlite3_column_int64(s, 7);
		if (type == (S_IFDIR >> 12)) {
			const char *child = (const char *)sqlite3_column_text(s, 15);

			if (!child || !child[0])
				continue; /* nothing exported below it */
			e.type = SNAP_DIR;
			e.size = 0;
			e.mtime = sqlite3_column_int64(s, 16); /* its exported entries' newest */
			e.ref = strdup(child);
		} else if (type == (S_IFREG >> 12)) {
			if (!placement_visible(p->c->ps, placement, rule))
				continue;
			e.type = SNAP_FILE;
			rc = publish_fid(m, p->c->key, ino, &e.fid);
			if (!rc && uploaded(s)) {
				char man[CODEC_NAME_SIZE];
				int ok = 0;

				/* the uploaded version: what the store can serve */
				e.size = (uint64_t)sqlite3_column_int64(s, 12);
				e.mtime = sqlite3_column_int64(s, 13);
				rc = make_manifest(p, ino, e.fid, e.size, e.mtime, man, &ok);
				if (!rc && ok) {
					e.has_data = 1;
					rc = mset_add(&mans, man);
				}
			}
			e.ref = strdup("");
		} else if (type == (S_IFLNK >> 12)) {
			char why[512];
			const void *t = sqlite3_column_blob(s, 14);
			size_t tl = (size_t)sqlite3_column_bytes(s, 14);
			int ok;

			if (!placement_visible(p->c->ps, placement, rule))
				continue;
			ok = placement_symlink_ok(m, p->c->ps, dir, t ? t : "", tl, why, sizeof(why));
			if (ok < 0) {
				rc = ok;
				break;
			}
			if (!ok)
				continue; /* its target text would name something private */
			e.type = SNAP_SYMLINK;
			e.ref = strndup(t ? t : "", tl);
		} else {
			continue; /* FIFOs, sockets, devices stay at home */
		}
		if (!rc && e.type != SNAP_FILE)
			rc = publish_fid(m, p->c->key, ino, &e.fid);
		/* Times of exported things only: a ctime would tell when a
		 * private name was linked to or renamed beside an exported one. */
		e.ctime = e.mtime;
		if (e.mtime > newest)
			newest = e.mtime;
		e.name = strndup(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
		if (rc || !e.name || !e.ref) {
			free(e.name);
			free(e.ref);
			rc = rc ? rc : -ENOMEM;
			break;
		}
		if (d.n == cap) {
			struct snap_entry *x = realloc(d.e, (cap ? cap * 2 : 16) * sizeof(*x));

			if (!x) {
				free(e.name);
				free(e.ref);
				rc = -ENOMEM;
				break;
			}
			d.e = x;
			cap = cap ? cap * 2 : 16;
		}
		d.e[d.n++] = e;
	}
	sqlite3_reset(s);
	if (!rc && !d.n && dir != META_ROOT_INO && cloud_write_dir(p, dir)) {
		/* an empty results directory: exported itself, it shows its own time */
		cw = 1;
		s = meta_stmt(m, "SELECT mtime FROM inode WHERE ino=?1");
		if (s) {
			sqlite3_bind_int64(s, 1, (int64_t)dir);
			if (sqlite3_step(s) == SQLITE_ROW)
				newest = sqlite3_column_int64(s, 0);
			sqlite3_reset(s);
		}
	}
	if (!rc) {
		s = meta_stmt(m, "INSERT INTO pubdirtime(ino, mtime) VALUES(?1, ?2)"
				 " ON CONFLICT(ino) DO UPDATE SET mtime=excluded.mtime");
		if (!s)
			rc = -EIO;
		else {
			sqlite3_bind_int64(s, 1, (int64_t)dir);
			sqlite3_bind_int64(s, 2, newest);
			if (sqlite3_step(s) != SQLITE_DONE)
				rc = sqlfail(m);
			sqlite3_reset(s);
		}
	}
	if (!rc && (d.n || dir == META_ROOT_INO || cw)) {
		struct tbuf sealed = TBUF_INIT;
		char key[SNAP_KEY_MAX];

		snap_dir_sort(&d);
		rc = snap_dir_encode(p->c->key, &d, obj_out, &sealed);
		if (!rc) {
			snap_key_dir(obj_out, key);
			rc = obj_known(m, key);
			if (rc == 0) {
				rc = obj_record(m, key, p->seq);
				if (!rc)
					rc = add_put(p, key, &sealed);
			} else if (rc > 0) {
				rc = 0;
			}
		}
		tbuf_release(&sealed);
	}
	/* The manifests this directory's files use now. */
	if (!rc) {
		sqlite3_stmt *del = meta_stmt(m, "DELETE FROM pubdirman WHERE dir=?1");

		if (!del)
			rc = -EIO;
		else {
			sqlite3_bind_int64(del, 1, (int64_t)dir);
			if (sqlite3_step(del) != SQLITE_DONE)
				rc = sqlfail(m);
			sqlite3_reset(del);
		}
		for (size_t i = 0; !rc && i < mans.n; i++) {
			sqlite3_stmt *ins = meta_stmt(m, "INSERT OR IGNORE INTO pubdirman(dir, manifest) VALUES(?1, ?2)");

			if (!ins) {
				rc = -EIO;
				break;
			}
			sqlite3_bind_int64(ins, 1, (int64_t)dir);
			sqlite3_bind_text(ins, 2, mans.v[i], -1, SQLITE_STATIC);
			if (sqlite3_step(ins) != SQLITE_DONE)
				rc = sqlfail(m);
			sqlite3_reset(ins);
		}
	}
	free(mans.v);
	snap_dir_release(&d);
	return rc;
}

/* The parent of a directory, or 0 for the root / an orphan. */
static uint64_t parent_of(struct meta *m, uint64_t ino)
{
	sqlite3_stmt *s = meta_stmt(m, "SELECT parent FROM dentry WHERE ino=?1 LIMIT 1");
	uint64_t p = 0;

	if (!s || ino == META_ROOT_INO)
		return 0;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	if (sqlite3_step(s) == SQLITE_ROW)
		p = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return p;
}

struct dirent_d {
	uint64_t ino;
	int depth;
};

static int cmp_depth_desc(const void *a, const void *b)
{
	const struct dirent_d *x = a, *y = b;

	return y->depth - x->depth;
}

/*
 * Phase A (caller holds the lock, inside a transaction): take the dirty
 * directories, rebuild them and their ancestors, record the new tree.
 */
static int build(struct pub *p, char root_out[CODEC_NAME_SIZE], struct dirent_d **dirs_out, size_t *ndirs_out)
{
	struct meta *m = p->c->meta;
	struct dirent_d *dirs = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int rc = 0;

	s = meta_stmt(m, "SELECT ino FROM pubdirty");
	if (!s)
		return -EIO;
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (n == cap) {
			struct dirent_d *x = realloc(dirs, (cap ? cap * 2 : 64) * sizeof(*x));

			if (!x) {
				rc = -ENOMEM;
				break;
			}
			dirs = x;
			cap = cap ? cap * 2 : 64;
		}
		dirs[n].ino = (uint64_t)sqlite3_column_int64(s, 0);
		dirs[n++].depth = 0;
	}
	sqlite3_reset(s);
	if (rc)
		goto out;
	if (sqlite3_exec(meta_db(m), "DELETE FROM pubdirty", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sqlfail(m);
		goto out;
	}
	/* add ancestors (a set: small, linear check is fine for now) */
	for (size_t i = 0; i < n && !rc; i++) {
		uint64_t a = dirs[i].ino;

		while ((a = parent_of(m, a)) != 0) {
			size_t k;

			for (k = 0; k < n && dirs[k].ino != a; k++)
				;
			if (k < n)
				break; /* already there, and so are its ancestors */
			if (n == cap) {
				struct dirent_d *x = realloc(dirs, cap * 2 * sizeof(*x));

				if (!x) {
					rc = -ENOMEM;
					break;
				}
				dirs = x;
				cap *= 2;
			}
			dirs[n].ino = a;
			dirs[n++].depth = 0;
		}
	}
	/* depth of each, to rebuild children before parents */
	for (size_t i = 0; i < n && !rc; i++) {
		uint64_t a = dirs[i].ino;
		int d = 0;

		while ((a = parent_of(m, a)) != 0 && d < 4096)
			d++;
		dirs[i].depth = d;
	}
	qsort(dirs, n, sizeof(*dirs), cmp_depth_desc);
	for (size_t i = 0; i < n && !rc; i++) {
		struct meta_attr a;
		char obj[CODEC_NAME_SIZE], old[CODEC_NAME_SIZE] = "";
		sqlite3_stmt *q;

		if (meta_inode_get(m, dirs[i].ino, &a) || !S_ISDIR(a.mode))
			continue; /* gone, or not a directory (a file's old parent) */
		rc = build_dir(p, dirs[i].ino, obj);
		if (rc)
			break;
		q = meta_stmt(m, "SELECT obj FROM pubdir WHERE ino=?1");
		if (!q) {
			rc = -EIO;
			break;
		}
		sqlite3_bind_int64(q, 1, (int64_t)dirs[i].ino);
		if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
			snprintf(old, sizeof(old), "%s", (const char *)sqlite3_column_text(q, 0));
		sqlite3_reset(q);
		if (strcmp(old, obj)) {
			char key[SNAP_KEY_MAX];

			if (old[0]) {
				snap_key_dir(old, key);
				rc = obj_users(m, key, -1);
			}
			if (!rc && obj[0]) {
				snap_key_dir(obj, key);
				rc = obj_users(m, key, +1);
			}
			q = meta_stmt(m, "INSERT INTO pubdir(ino, obj) VALUES(?1, ?2)"
					 " ON CONFLICT(ino) DO UPDATE SET obj=excluded.obj");
			if (!rc && q) {
				sqlite3_bind_int64(q, 1, (int64_t)dirs[i].ino);
				if (obj[0])
					sqlite3_bind_text(q, 2, obj, -1, SQLITE_STATIC);
				if (sqlite3_step(q) != SQLITE_DONE)
					rc = sqlfail(m);
				sqlite3_reset(q);
			}
		}
		if (dirs[i].ino == META_ROOT_INO)
			snprintf(root_out, CODEC_NAME_SIZE, "%s", obj);
	}
out:
	*dirs_out = dirs;
	*ndirs_out = n;
	return rc;
}

/*
 * The audit record of a publish (inside phase C's transaction): every
 * object put, the snapshot and head. Old records are pruned at most hourly.
 */
static int note_egress(struct pub *p, const struct publish_stats *st)
{
	struct meta *m = p->c->meta;
	const char **keys = calloc(p->nputs + 2, sizeof(*keys));
	char snap[SNAP_KEY_MAX], head[SNAP_KEY_MAX], path[48];
	int64_t rec = 0, now = (int64_t)now_real_ns(), last = 0;
	char *v = NULL;
	int rc;

	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < p->nputs; i++)
		keys[i] = p->puts[i].key;
	snap_key_snapshot(p->seq, snap);
	snap_key_head(head);
	keys[p->nputs] = snap;
	keys[p->nputs + 1] = head;
	snprintf(path, sizeof(path), "snapshot %llu", (unsigned long long)p->seq);
	rc = audit_note(m, &rec, "publish", 0, path, st->bytes, keys, p->nputs + 2);
	free(keys);
	if (!rc && meta_config_get(m, "audit_pruned", &v) == 0 && v)
		last = strtoll(v, NULL, 10);
	free(v);
	if (!rc && (now - last > 3600ll * 1000000000 || now < last)) {
		char buf[32];

		rc = audit_prune(m, now);
		snprintf(buf, sizeof(buf), "%lld", (long long)now);
		if (rc >= 0)
			rc = meta_config_set(m, "audit_pruned", buf);
	}
	return rc < 0 ? rc : 0;
}

int publish_once(struct publish_ctx *c, int force, struct publish_stats *st)
{
	struct meta *m = c->meta;
	struct pub p;
	struct dirent_d *dirs = NULL;
	size_t ndirs = 0;
	char root[CODEC_NAME_SIZE] = "", key[SNAP_KEY_MAX];
	char wname[CODEC_NAME_SIZE], wprev[CODEC_NAME_SIZE];
	struct tbuf sealed = TBUF_INIT, wsealed = TBUF_INIT;
	int wchanged;
	struct snap_root sr;
	struct meta_attr ra;
	int64_t dirty = 0, last = 0;
	sqlite3_stmt *s;
	int rc, keyed;

	memset(&p, 0, sizeof(p));
	memset(st, 0, sizeof(*st));
	p.c = c;
	c->lock(c->arg);
	s = meta_stmt(m, "SELECT (SELECT count(*) FROM pubdirty), (SELECT coalesce(max(seq),0) FROM snapshot)");
	if (!s) {
		c->unlock(c->arg);
		return -EIO;
	}
	if (sqlite3_step(s) == SQLITE_ROW) {
		dirty = sqlite3_column_int64(s, 0);
		last = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	rc = wrules_make(c, wname, &wsealed);
	if (!rc)
		rc = wrules_of(m, last, wprev);
	if (rc) {
		c->unlock(c->arg);
		tbuf_release(&wsealed);
		return rc;
	}
	/* Snapshots made before keyed file ids and derived times (config
	 * pub_keyed unset) still show inode numbers in every directory not
	 * rebuilt since: rebuild them all once. */
	{
		char *v = NULL;

		keyed = meta_config_get(m, "pub_keyed", &v) == 0 && v && !strcmp(v, "1");
		free(v);
	}
	wchanged = strcmp(wname, wprev) != 0;
	if (!dirty && last && !force && !wchanged && keyed) {
		c->unlock(c->arg);
		tbuf_release(&wsealed);
		return 0; /* nothing changed */
	}
	p.seq = (uint64_t)last + 1;
	rc = meta_begin(m);
	if (!rc && wname[0]) {
		/* put it unless the store has it (users change in phase C) */
		snap_key_wrules(wname, key);
		rc = obj_record(m, key, p.seq);
		if (!rc && obj_known(m, key) == 0)
			rc = add_put(&p, key, &wsealed);
	}
	if (!rc && (!last || !keyed))
		/* the first snapshot (or the first keyed one): every directory */
		rc = sqlite3_exec(meta_db(m), "INSERT OR IGNORE INTO pubdirty SELECT ino FROM inode"
				  " WHERE (mode & 61440) = 16384", NULL, NULL, NULL) == SQLITE_OK ? 0 : sqlfail(m);
	if (!rc && !keyed)
		rc = meta_config_set(m, "pub_keyed", "1");
	/* Whether a symlink may be listed depends on its target, anywhere in
	 * the volume: directories holding symlinks are rebuilt every time
	 * (indexed; an unchanged listing costs no store I/O). */
	if (!rc)
		rc = sqlite3_exec(meta_db(m), "INSERT OR IGNORE INTO pubdirty SELECT DISTINCT parent FROM dentry"
				  " WHERE type=10", NULL, NULL, NULL) == SQLITE_OK ? 0 : sqlfail(m);
	if (!rc)
		rc = build(&p, root, &dirs, &ndirs);
	if (!rc && !root[0]) {
		/* the root did not change: reuse its object */
		s = meta_stmt(m, "SELECT obj FROM pubdir WHERE ino=1");
		if (s && sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
			snprintf(root, sizeof(root), "%s", (const char *)sqlite3_column_text(s, 0));
		if (s)
			sqlite3_reset(s);
		if (!root[0])
			rc = -EIO;
	}
	if (!rc)
		rc = meta_inode_get(m, META_ROOT_INO, &ra);
	if (!rc) {
		/* the root's time, like every directory's, is its exported entries' */
		s = meta_stmt(m, "SELECT mtime FROM pubdirtime WHERE ino=1");
		ra.mtime = 0;
		if (s && sqlite3_step(s) == SQLITE_ROW)
			ra.mtime = sqlite3_column_int64(s, 0);
		if (s)
			sqlite3_reset(s);
	}
	if (!rc && !force && last) {
		/* Nothing exported changed (private activity marks directories
		 * too): no new snapshot, so the store does not even learn that
		 * something happened. */
		char prev[CODEC_NAME_SIZE] = "";

		s = meta_stmt(m, "SELECT root FROM snapshot WHERE seq=?1");
		if (s) {
			sqlite3_bind_int64(s, 1, last);
			if (sqlite3_step(s) == SQLITE_ROW)
				snprintf(prev, sizeof(prev), "%s", (const char *)sqlite3_column_text(s, 0));
			sqlite3_reset(s);
		}
		if (!strcmp(prev, root) && p.nputs == 0 && !wchanged) {
			rc = meta_commit(m, 0);
			c->unlock(c->arg);
			free(dirs);
			free(p.puts);
			tbuf_release(&wsealed);
			return rc;
		}
	}
	/* Phase A is committed before any store I/O (other users of the
	 * connection must never run inside this transaction); the new objects
	 * are recorded as not stored yet, so a failed publish puts them again. */
	if (!rc)
		rc = meta_commit(m, 0);
	else
		meta_rollback(m);
	c->unlock(c->arg);

	/* Phase B: objects, then the snapshot, then head. */
	for (size_t i = 0; !rc && i < p.nputs; i++) {
		rc = store_put(c->store, p.puts[i].key, p.puts[i].data.data, p.puts[i].data.len);
		if (!rc) {
			st->objects++;
			st->bytes += p.puts[i].data.len;
		}
	}
	if (!rc) {
		memset(&sr, 0, sizeof(sr));
		sr.seq = p.seq;
		sr.created = (int64_t)now_real_ns();
		snprintf(sr.volume_id, sizeof(sr.volume_id), "%s", c->volume_id);
		snprintf(sr.root, sizeof(sr.root), "%s", root);
		snprintf(sr.wrules, sizeof(sr.wrules), "%s", wname);
		sr.root_mode = ra.mode;
		sr.root_uid = ra.uid;
		sr.root_gid = ra.gid;
		sr.root_mtime = ra.mtime;
		rc = snap_root_encode(c->key, &sr, &sealed);
		snap_key_snapshot(p.seq, key);
		if (!rc)
			rc = store_put(c->store, key, sealed.data, sealed.len);
		if (!rc) {
			st->objects++;
			st->bytes += sealed.len;
		}
		tbuf_reset(&sealed);
		if (!rc)
			rc = snap_head_encode(c->key, p.seq, &sealed);
		snap_key_head(key);
		if (!rc)
			rc = store_put(c->store, key, sealed.data, sealed.len);
		if (!rc) {
			st->objects++;
			st->bytes += sealed.len;
		}
	}

	/* Phase C: record the snapshot, or mark the directories dirty again. */
	c->lock(c->arg);
	if (!rc && !(rc = meta_begin(m))) {
		sqlite3_stmt *u = meta_stmt(m, "UPDATE pubobj SET stored=1 WHERE key=?1");

		for (size_t i = 0; !rc && i < p.nputs; i++) {
			if (!u) {
				rc = -EIO;
				break;
			}
			sqlite3_reset(u);
			sqlite3_bind_text(u, 1, p.puts[i].key, -1, SQLITE_STATIC);
			if (sqlite3_step(u) != SQLITE_DONE)
				rc = sqlfail(m);
		}
		if (u)
			sqlite3_reset(u);
		if (!rc)
			rc = wrules_record(m, p.seq, wprev, wname);
		/* objects nothing in this tree uses any more were last in the
		 * previous snapshot */
		s = meta_stmt(m, "UPDATE pubobj SET last_seq=?1 WHERE users<=0 AND last_seq IS NULL AND first_seq<?2");
		if (!rc && s) {
			sqlite3_bind_int64(s, 1, (int64_t)p.seq - 1);
			sqlite3_bind_int64(s, 2, (int64_t)p.seq);
			if (sqlite3_step(s) != SQLITE_DONE)
				rc = sqlfail(m);
			sqlite3_reset(s);
		}
		if (!rc)
			rc = note_egress(&p, st);
		s = meta_stmt(m, "INSERT INTO snapshot(seq, created, root) VALUES(?1, ?2, ?3)");
		if (!rc && s) {
			sqlite3_bind_int64(s, 1, (int64_t)p.seq);
			sqlite3_bind_int64(s, 2, (int64_t)now_real_ns());
			sqlite3_bind_text(s, 3, root, -1, SQLITE_STATIC);
			if (sqlite3_step(s) != SQLITE_DONE)
				rc = sqlfail(m);
			sqlite3_reset(s);
		}
		if (!rc)
			rc = meta_commit(m, 0);
		else
			meta_rollback(m);
	}
	if (rc && !meta_begin(m)) {
		sqlite3_stmt *d = meta_stmt(m, "INSERT OR IGNORE INTO pubdirty VALUES(?1)");

		for (size_t i = 0; d && i < ndirs; i++) {
			sqlite3_reset(d);
			sqlite3_bind_int64(d, 1, (int64_t)dirs[i].ino);
			sqlite3_step(d);
		}
		if (d)
			sqlite3_reset(d);
		if (meta_commit(m, 0))
			meta_rollback(m);
	}
	c->unlock(c->arg);
	if (!rc) {
		st->seq = p.seq;
		st->dirs = ndirs;
		log_debug("published snapshot %llu: %zu directories rebuilt, %llu objects, %llu bytes",
			  (unsigned long long)p.seq, ndirs, (unsigned long long)st->objects,
			  (unsigned long long)st->bytes);
	}
	for (size_t i = 0; i < p.nputs; i++)
		tbuf_release(&p.puts[i].data);
	free(p.puts);
	free(dirs);
	tbuf_release(&sealed);
	tbuf_release(&wsealed);
	return rc;
}

int publish_retire(struct publish_ctx *c, int retain, uint64_t *deleted_out)
{
	struct meta *m = c->meta;
	int64_t oldest = 0, last = 0;
	char **keys = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int rc = 0;

	*deleted_out = 0;
	c->lock(c->arg);
	s = meta_stmt(m, "SELECT coalesce(max(seq),0) FROM snapshot");
	if (s && sqlite3_step(s) == SQLITE_ROW)
		last = sqlite3_column_int64(s, 0);
	if (s)
		sqlite3_reset(s);
	oldest = last - retain + 1;
	if (oldest < 1) {
		c->unlock(c->arg);
		return 0;
	}
	/* objects last used by a snapshot older than the window, and those snapshots */
	s = meta_stmt(m, "SELECT key FROM pubobj WHERE last_seq IS NOT NULL AND last_seq < ?1 AND users <= 0"
			 " UNION ALL SELECT printf('snaps/%016x', seq) FROM snapshot WHERE seq < ?1");
	if (!s) {
		c->unlock(c->arg);
		return -EIO;
	}
	sqlite3_bind_int64(s, 1, oldest);
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (n == cap) {
			char **x = realloc(keys, (cap ? cap * 2 : 32) * sizeof(*x));

			if (!x) {
				rc = -ENOMEM;
				break;
			}
			keys = x;
			cap = cap ? cap * 2 : 32;
		}
		keys[n++] = strdup((const char *)sqlite3_column_text(s, 0));
	}
	sqlite3_reset(s);
	/* What made these objects unused may sit in the home mount's group
	 * commit: commit it before the objects go. */
	if (!rc)
		rc = meta_batch_commit(m);
	c->unlock(c->arg);
	for (size_t i = 0; i < n && !rc; i++) {
		int r = store_del(c->store, keys[i]);

		if (r && r != -ENOENT)
			rc = r;
	}
	c->lock(c->arg);
	if (!rc && !meta_begin(m)) {
		for (size_t i = 0; i < n; i++) {
			sqlite3_stmt *d;

			if (!strncmp(keys[i], "snaps/", 6))
				continue;
			if (!strncmp(keys[i], "files/", 6)) {
				d = meta_stmt(m, "DELETE FROM manchunk WHERE manifest=?1");
				if (d) {
					sqlite3_bind_text(d, 1, keys[i] + 9, -1, SQLITE_STATIC);
					sqlite3_step(d);
					sqlite3_reset(d);
				}
				d = meta_stmt(m, "DELETE FROM pubman WHERE manifest=?1");
				if (d) {
					sqlite3_bind_text(d, 1, keys[i] + 9, -1, SQLITE_STATIC);
					sqlite3_step(d);
					sqlite3_reset(d);
				}
			}
			d = meta_stmt(m, "DELETE FROM pubobj WHERE key=?1");
			if (d) {
				sqlite3_bind_text(d, 1, keys[i], -1, SQLITE_STATIC);
				sqlite3_step(d);
				sqlite3_reset(d);
			}
		}
		s = meta_stmt(m, "DELETE FROM snapshot WHERE seq < ?1");
		if (s) {
			sqlite3_bind_int64(s, 1, oldest);
			sqlite3_step(s);
			sqlite3_reset(s);
		}
		s = meta_stmt(m, "DELETE FROM snapwrules WHERE seq < ?1");
		if (s) {
			sqlite3_bind_int64(s, 1, oldest);
			sqlite3_step(s);
			sqlite3_reset(s);
		}
		if (meta_commit(m, 0))
			meta_rollback(m);
		else
			*deleted_out = n;
	}
	c->unlock(c->arg);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return rc;
}
