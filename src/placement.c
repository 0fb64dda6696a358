/*
 * placement.c - keeps each file's placement in the metadata store in step
 * with the volume's rules (the engine is policy.c). A file's facts come from
 * its inode row (size, times, owner), its xattrs (tags), its pin and every
 * path that names it; the result (placement, rule, next_eval) is written
 * back only when it changed. next_eval is indexed, so the age tick visits
 * only the files whose placement time can change.
 */
#include "placement.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static const char *const sync_names[SYNC__COUNT] = {
	"local", "queued", "uploading", "synced", "evicted", "partial",
};

const char *sync_state_name(enum sync_state s)
{
	return (unsigned)s < SYNC__COUNT ? sync_names[s] : "?";
}

static const char SQL_RULES[] = "SELECT name, args FROM rule ORDER BY pos";
static const char SQL_VERSION[] = "SELECT value FROM config WHERE key='policy_version'";
static const char SQL_BUMP[] =
	"INSERT INTO config(key,value) VALUES('policy_version', '1') ON CONFLICT(key) DO UPDATE"
	" SET value = CAST(value AS INTEGER) + 1";
static const char SQL_PARENT[] = "SELECT parent, name FROM dentry WHERE ino=?1 LIMIT 1";
static const char SQL_NAMES[] = "SELECT parent, name FROM dentry WHERE ino=?1";
static const char SQL_CHILD[] = "SELECT ino FROM dentry WHERE parent=?1 AND name=?2";
static const char SQL_FACTS[] =
	"SELECT mode, uid, gid, size, atime, mtime, placement, rule, pin, sync_state, next_eval"
	" FROM inode WHERE ino=?1";
static const char SQL_XATTR[] = "SELECT value FROM xattr WHERE ino=?1 AND name=?2";
static const char SQL_STORE[] =
	"UPDATE inode SET placement=?2, rule=?3, next_eval=?4, sync_state=?5 WHERE ino=?1";
static const char SQL_CHILDREN[] = "SELECT ino, type FROM dentry WHERE parent=?1";
static const char SQL_BATCH[] =
	"SELECT ino FROM inode WHERE ino>?1 AND (mode & 61440) IN (32768, 40960) ORDER BY ino LIMIT ?2";
static const char SQL_DUE[] = "SELECT ino FROM inode WHERE next_eval <= ?1 LIMIT ?2";
static const char SQL_PIN[] = "UPDATE inode SET pin=?2 WHERE ino=?1";
static const char SQL_UNPUBLISH[] = "DELETE FROM chunk WHERE ino=?1";
static const char SQL_UNQUEUE[] = "DELETE FROM upload WHERE ino=?1";
static const char SQL_PURGE_CHUNKS[] =
	"DELETE FROM manchunk WHERE manifest IN (SELECT manifest FROM pubman WHERE fid=?1)";
static const char SQL_PURGE_MANIFESTS[] =
	"UPDATE pubobj SET users=0, last_seq=0 WHERE key IN"
	" (SELECT 'files/'||substr(manifest,1,2)||'/'||manifest FROM pubman WHERE fid=?1)";
static const char SQL_PURGE_FLAG[] =
	"INSERT INTO config(key, value) VALUES('privacy_purge', '1')"
	" ON CONFLICT(key) DO UPDATE SET value='1'";
static const char SQL_QUEUE[] =
	"INSERT INTO upload(ino, changed, forced) VALUES(?1, ?2, ?2 = 0) ON CONFLICT(ino) DO UPDATE"
	" SET changed=max(changed, excluded.changed), forced=forced OR excluded.forced, next_try=0";
static const char SQL_QUEUED[] = "UPDATE inode SET sync_state=1 WHERE ino=?1 AND sync_state IN (0, 3, 4, 5)";

static int sqlerr(struct meta *m)
{
	log_error("metadata store: %s", sqlite3_errmsg(meta_db(m)));
	return -EIO;
}

/* ---- rules ---- */

int64_t policy_version(struct meta *m)
{
	sqlite3_stmt *s = meta_stmt(m, SQL_VERSION);
	int64_t v = 0;

	if (!s)
		return -EIO;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return v;
}

int policy_version_bump(struct meta *m)
{
	sqlite3_stmt *s = meta_stmt(m, SQL_BUMP);
	int rc;

	if (!s)
		return -EIO;
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : sqlerr(m);
}

void policy_set_release(struct policy_set *ps)
{
	for (size_t k = 0; k < ps->n; k++)
		policy_rule_release(&ps->rules[k]);
	free(ps->rules);
	ps->rules = NULL;
	ps->n = 0;
}

int policy_set_load(struct meta *m, struct policy_set *out, char *err, size_t errlen)
{
	sqlite3_stmt *s = meta_stmt(m, SQL_RULES);
	struct policy_set ps = { NULL, 0, 0 };
	size_t cap = 0;
	int rc = 0;

	if (!s)
		return -EIO;
	ps.version = policy_version(m);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 0);
		const char *args = (const char *)sqlite3_column_text(s, 1);
		char **argv = NULL, perr[POLICY_ERR_MAX];
		int argc = 0;

		if (ps.n == cap) {
			struct policy_rule *r = realloc(ps.rules, (cap ? cap * 2 : 8) * sizeof(*r));

			if (!r) {
				rc = -ENOMEM;
				goto fail;
			}
			ps.rules = r;
			cap = cap ? cap * 2 : 8;
		}
		rc = policy_args_split(args ? args : "", &argc, &argv);
		if (!rc)
			rc = policy_rule_parse(name, argc, argv, &ps.rules[ps.n], perr, sizeof(perr));
		policy_args_free(argv);
		if (rc) {
			snprintf(err, errlen, "stored rule '%s' is invalid: %s", name ? name : "?",
				 rc == -EINVAL ? perr : strerror(-rc));
			goto fail;
		}
		ps.n++;
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "cannot read rules: %s", sqlite3_errmsg(meta_db(m)));
		rc = -EIO;
		goto fail;
	}
	sqlite3_reset(s);
	*out = ps;
	return 0;
fail:
	sqlite3_reset(s);
	policy_set_release(&ps);
	return rc;
}

/* ---- paths ---- */

/* Prepend "/name" for each ancestor of (parent, name). */
static int build_path(struct meta *m, uint64_t parent, const void *name, size_t len,
		      struct tbuf *out)
{
	struct tbuf rev = TBUF_INIT; /* components, each stored as len + bytes, leaf first */
	sqlite3_stmt *s = meta_stmt(m, SQL_PARENT);
	size_t depth = 0, pos;
	int rc = 0;

	if (!s)
		return -EIO;
	if (tbuf_append(&rev, &len, sizeof(len)) || tbuf_append(&rev, name, len)) {
		rc = -ENOMEM;
		goto out;
	}
	while (parent != META_ROOT_INO) {
		size_t l;

		if (++depth > 4096) {
			rc = -ELOOP;
			goto out;
		}
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, (int64_t)parent);
		if (sqlite3_step(s) != SQLITE_ROW) {
			rc = -ENOENT;
			goto out;
		}
		l = (size_t)sqlite3_column_bytes(s, 1);
		if (tbuf_append(&rev, &l, sizeof(l)) ||
		    tbuf_append(&rev, sqlite3_column_blob(s, 1), l)) {
			rc = -ENOMEM;
			goto out;
		}
		parent = (uint64_t)sqlite3_column_int64(s, 0);
	}
	/* Walk the components back to front. */
	{
		size_t *offs = NULL, n = 0;

		for (pos = 0; pos < rev.len;) {
			size_t l;
			size_t *o = realloc(offs, (n + 1) * sizeof(*o));

			if (!o) {
				free(offs);
				rc = -ENOMEM;
				goto out;
			}
			offs = o;
			offs[n++] = pos;
			memcpy(&l, rev.data + pos, sizeof(l));
			pos += sizeof(l) + l;
		}
		for (size_t k = n; k-- > 0 && !rc;) {
			size_t l;

			memcpy(&l, rev.data + offs[k], sizeof(l));
			if (tbuf_append(out, "/", 1) ||
			    tbuf_append(out, rev.data + offs[k] + sizeof(l), l))
				rc = -ENOMEM;
		}
		free(offs);
	}
	if (!rc && tbuf_append(out, "", 1))
		rc = -ENOMEM;
out:
	sqlite3_reset(s);
	tbuf_release(&rev);
	return rc;
}

int placement_path(struct meta *m, uint64_t ino, struct tbuf *out)
{
	sqlite3_stmt *s;
	uint64_t parent;
	struct tbuf name = TBUF_INIT;
	int rc;

	if (ino == META_ROOT_INO)
		return tbuf_append(out, "/", 2);
	s = meta_stmt(m, SQL_PARENT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return -ENOENT;
	}
	parent = (uint64_t)sqlite3_column_int64(s, 0);
	rc = tbuf_append(&name, sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1));
	sqlite3_reset(s);
	if (!rc)
		rc = build_path(m, parent, name.data, name.len, out);
	tbuf_release(&name);
	return rc;
}

int placement_resolve(struct meta *m, const char *path, uint64_t *ino_out)
{
	sqlite3_stmt *s = meta_stmt(m, SQL_CHILD);
	uint64_t ino = META_ROOT_INO;
	const char *p = path;

	if (!s)
		return -EIO;
	if (*p != '/')
		return -EINVAL;
	while (*p) {
		const char *e;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		e = strchr(p, '/');
		if (!e)
			e = p + strlen(p);
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		sqlite3_bind_blob(s, 2, p, (int)(e - p), SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_ROW) {
			sqlite3_reset(s);
			return -ENOENT;
		}
		ino = (uint64_t)sqlite3_column_int64(s, 0);
		p = e;
	}
	sqlite3_reset(s);
	*ino_out = ino;
	return 0;
}

/* ---- evaluation ---- */

struct xattr_ctx {
	struct meta *m;
	uint64_t ino;
};

static ssize_t get_tag(void *arg, const char *name, void *buf, size_t size)
{
	struct xattr_ctx *x = arg;
	sqlite3_stmt *s = meta_stmt(x->m, SQL_XATTR);
	ssize_t n;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)x->ino);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return -ENODATA;
	}
	n = sqlite3_column_bytes(s, 0);
	if (size && (size_t)n > size)
		n = -ERANGE;
	else if (size && n)
		memcpy(buf, sqlite3_column_blob(s, 0), (size_t)n);
	sqlite3_reset(s);
	return n;
}

/* What the engine needs to know of xc->ino (all but its path). */
static int load_facts(struct meta *m, struct xattr_ctx *xc, struct policy_file *f, uint32_t *mode_out)
{
	sqlite3_stmt *s = meta_stmt(m, SQL_FACTS);

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)xc->ino);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return -ENOENT;
	}
	*mode_out = (uint32_t)sqlite3_column_int64(s, 0);
	memset(f, 0, sizeof(*f));
	f->uid = (uint32_t)sqlite3_column_int64(s, 1);
	f->gid = (uint32_t)sqlite3_column_int64(s, 2);
	f->size = (uint64_t)sqlite3_column_int64(s, 3);
	f->atime = sqlite3_column_int64(s, 4);
	f->mtime = sqlite3_column_int64(s, 5);
	f->pin = (enum policy_pin)sqlite3_column_int64(s, 8);
	f->getxattr = get_tag;
	f->getxattr_arg = xc;
	sqlite3_reset(s);
	return 0;
}

/* Rank for "most private": private first, then what is uploaded least. */
static int privacy_rank(const struct policy_result *r)
{
	if (r->placement == PLACEMENT_PRIVATE)
		return 0;
	if (!r->visible)
		return 1;
	return 2;
}

int placement_get(struct meta *m, uint64_t ino, struct placement_info *out)
{
	sqlite3_stmt *s = meta_stmt(m, SQL_FACTS);
	int rc = 0;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return -ENOENT;
	}
	memset(out, 0, sizeof(*out));
	out->placement = sqlite3_column_int64(s, 6);
	if (sqlite3_column_type(s, 7) != SQLITE_NULL)
		snprintf(out->rule, sizeof(out->rule), "%s", (const char *)sqlite3_column_text(s, 7));
	out->pin = (int)sqlite3_column_int64(s, 8);
	out->sync_state = (int)sqlite3_column_int64(s, 9);
	out->next_eval = sqlite3_column_type(s, 10) == SQLITE_NULL ? INT64_MAX : sqlite3_column_int64(s, 10);
	out->mtime = sqlite3_column_int64(s, 5);
	out->visible = out->placement == PLACEMENT_ON_DEMAND || out->placement == PLACEMENT_MIRROR;
	sqlite3_reset(s);
	return rc;
}

/*
 * Evaluate ino under every name it has. Returns 1 and fills out for a file,
 * 0 for an inode without placement (a directory, a FIFO...), or an error.
 */
static int evaluate(struct meta *m, const struct policy_set *ps, uint64_t ino, int64_t now,
		    struct policy_result *best_out, struct placement_info *stored)
{
	sqlite3_stmt *names;
	struct xattr_ctx xc = { m, ino };
	struct policy_file f;
	struct tbuf path = TBUF_INIT;
	struct {
		uint64_t parent;
		struct tbuf name;
	} *list = NULL;
	size_t nlist = 0;
	uint32_t mode;
	int rc, have = 0;

	rc = load_facts(m, &xc, &f, &mode);
	if (rc)
		return rc;
	if (stored)
		placement_get(m, ino, stored);
	if (!S_ISREG(mode) && !S_ISLNK(mode))
		return 0;
	/* Collect the names first: evaluation runs other statements. */
	names = meta_stmt(m, SQL_NAMES);
	if (!names)
		return -EIO;
	sqlite3_bind_int64(names, 1, (int64_t)ino);
	while (sqlite3_step(names) == SQLITE_ROW) {
		void *l = realloc(list, (nlist + 1) * sizeof(*list));

		if (!l) {
			rc = -ENOMEM;
			break;
		}
		list = l;
		list[nlist].parent = (uint64_t)sqlite3_column_int64(names, 0);
		memset(&list[nlist].name, 0, sizeof(list[nlist].name));
		if (tbuf_append(&list[nlist].name, sqlite3_column_blob(names, 1),
				(size_t)sqlite3_column_bytes(names, 1))) {
			rc = -ENOMEM;
			break;
		}
		nlist++;
	}
	sqlite3_reset(names);
	for (size_t k = 0; k < nlist && !rc; k++) {
		struct policy_result r;

		tbuf_reset(&path);
		rc = build_path(m, list[k].parent, list[k].name.data, list[k].name.len, &path);
		if (rc == -ENOENT) {
			rc = 0; /* a name in a directory being deleted */
			continue;
		}
		if (rc)
			break;
		f.path = (const char *)path.data;
		rc = policy_evaluate(ps->rules, ps->n, &f, now, &r);
		if (rc)
			break;
		if (!have || privacy_rank(&r) < privacy_rank(best_out) ||
		    (privacy_rank(&r) == privacy_rank(best_out) && r.next_eval < best_out->next_eval)) {
			int64_t ne = have && best_out->next_eval < r.next_eval ? best_out->next_eval : r.next_eval;

			*best_out = r;
			best_out->next_eval = ne;
		} else if (r.next_eval < best_out->next_eval) {
			best_out->next_eval = r.next_eval;
		}
		have = 1;
	}
	for (size_t k = 0; k < nlist; k++)
		tbuf_release(&list[k].name);
	free(list);
	tbuf_release(&path);
	if (rc)
		return rc;
	if (!have) {
		/* unreachable (being deleted): private, the safe default */
		memset(best_out, 0, sizeof(*best_out));
		best_out->rule = -1;
		best_out->placement = PLACEMENT_PRIVATE;
		best_out->next_eval = INT64_MAX;
	}
	return 1;
}

static void result_to_info(const struct policy_result *r, struct placement_info *out)
{
	out->placement = r->placement;
	snprintf(out->rule, sizeof(out->rule), "%s", r->matched ? r->matched->name : "");
	out->next_eval = r->next_eval;
	out->visible = r->visible;
}

int placement_evaluate(struct meta *m, const struct policy_set *ps, uint64_t ino, int64_t now,
		       struct placement_info *out)
{
	struct policy_result r;
	int rc = evaluate(m, ps, ino, now, &r, out);

	if (rc > 0)
		result_to_info(&r, out);
	return rc < 0 ? rc : 0;
}

int placement_apply(struct meta *m, const struct policy_set *ps, uint64_t ino, int64_t now,
		    int *changed_out)
{
	struct placement_info old, neu;
	struct policy_result r;
	sqlite3_stmt *s;
	int rc = evaluate(m, ps, ino, now, &r, &old);

	if (changed_out)
		*changed_out = 0;
	if (rc <= 0)
		return rc;
	neu = old;
	result_to_info(&r, &neu);
	/* A file that turns private leaves the upload queue and the store's
	 * books at once (gc deletes its objects); only an evicted one must
	 * first be recalled, which the sync engine does. */
	if (neu.placement == PLACEMENT_PRIVATE &&
	    (old.sync_state == SYNC_QUEUED || old.sync_state == SYNC_UPLOADING ||
	     old.sync_state == SYNC_SYNCED)) {
		s = meta_stmt(m, SQL_UNPUBLISH);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return sqlerr(m);
		s = meta_stmt(m, SQL_UNQUEUE);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return sqlerr(m);
		neu.sync_state = SYNC_LOCAL;
	}
	/* A file that was visible to cloud mounts and turns private is purged
	 * from the store: its manifests are retired at once (their chunks lose
	 * those references) and the sync engine retires every older snapshot
	 * after the next publish (config privacy_purge). */
	if (neu.placement == PLACEMENT_PRIVATE && old.placement != PLACEMENT_PRIVATE) {
		s = meta_stmt(m, SQL_PURGE_CHUNKS);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc == SQLITE_DONE) {
			s = meta_stmt(m, SQL_PURGE_MANIFESTS);
			if (!s)
				return -EIO;
			sqlite3_bind_int64(s, 1, (int64_t)ino);
			rc = sqlite3_step(s);
			sqlite3_reset(s);
		}
		if (rc == SQLITE_DONE) {
			s = meta_stmt(m, SQL_PURGE_FLAG);
			if (!s)
				return -EIO;
			rc = sqlite3_step(s);
			sqlite3_reset(s);
		}
		if (rc != SQLITE_DONE)
			return sqlerr(m);
	}
	if (neu.placement == old.placement && !strcmp(neu.rule, old.rule) &&
	    neu.next_eval == old.next_eval && neu.sync_state == old.sync_state)
		return 0;
	s = meta_stmt(m, SQL_STORE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, neu.placement);
	if (neu.rule[0])
		sqlite3_bind_text(s, 3, neu.rule, -1, SQLITE_TRANSIENT);
	if (neu.next_eval != INT64_MAX)
		sqlite3_bind_int64(s, 4, neu.next_eval);
	sqlite3_bind_int64(s, 5, neu.sync_state);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return sqlerr(m);
	if (changed_out)
		*changed_out = neu.placement != old.placement;
	/* Newly mirrored or tiered: upload it (after --settle, counted from
	 * its last change). */
	if ((neu.placement == PLACEMENT_MIRROR || neu.placement == PLACEMENT_TIER) &&
	    neu.placement != old.placement && neu.sync_state == SYNC_LOCAL)
		return placement_queue_upload(m, ino, old.mtime);
	return 0;
}

int placement_apply_tree(struct meta *m, const struct policy_set *ps, uint64_t dir, int64_t now)
{
	uint64_t *stack = NULL, *kids = NULL;
	size_t nstack = 0, cstack = 0;
	int changed = 0, rc = 0;

	stack = malloc(16 * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	cstack = 16;
	stack[nstack++] = dir;
	while (nstack && !rc) {
		uint64_t d = stack[--nstack];
		sqlite3_stmt *s = meta_stmt(m, SQL_CHILDREN);
		size_t nk = 0, ck = 0;

		if (!s) {
			rc = -EIO;
			break;
		}
		sqlite3_bind_int64(s, 1, (int64_t)d);
		while (sqlite3_step(s) == SQLITE_ROW) {
			uint64_t ino = (uint64_t)sqlite3_column_int64(s, 0);
			int type = (int)sqlite3_column_int64(s, 1);

			if (type == (S_IFDIR >> 12)) {
				if (nstack == cstack) {
					uint64_t *n = realloc(stack, cstack * 2 * sizeof(*n));

					if (!n) {
						rc = -ENOMEM;
						break;
					}
					stack = n;
					cstack *= 2;
				}
				stack[nstack++] = ino;
			} else {
				if (nk == ck) {
					uint64_t *n = realloc(kids, (ck ? ck * 2 : 64) * sizeof(*n));

					if (!n) {
						rc = -ENOMEM;
						break;
					}
					kids = n;
					ck = ck ? ck * 2 : 64;
				}
				kids[nk++] = ino;
			}
		}
		sqlite3_reset(s);
		for (size_t k = 0; k < nk && !rc; k++) {
			int ch;

			rc = placement_apply(m, ps, kids[k], now, &ch);
			changed += ch;
		}
		free(kids);
		kids = NULL;
	}
	free(stack);
	return rc ? rc : changed;
}

/* Apply to the inodes a query returns (ino in column 0). */
static int apply_query(struct meta *m, const struct policy_set *ps, sqlite3_stmt *s, int64_t now,
		       uint64_t *last_out, size_t *count_out)
{
	uint64_t *inos = NULL;
	size_t n = 0, cap = 0;
	int changed = 0, rc = 0;

	while (sqlite3_step(s) == SQLITE_ROW) {
		if (n == cap) {
			uint64_t *p = realloc(inos, (cap ? cap * 2 : 256) * sizeof(*p));

			if (!p) {
				rc = -ENOMEM;
				break;
			}
			inos = p;
			cap = cap ? cap * 2 : 256;
		}
		inos[n++] = (uint64_t)sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	for (size_t k = 0; k < n && !rc; k++) {
		int ch;

		rc = placement_apply(m, ps, inos[k], now, &ch);
		changed += ch;
	}
	if (last_out && n)
		*last_out = inos[n - 1];
	if (count_out)
		*count_out = n;
	free(inos);
	return rc ? rc : changed;
}

int placement_apply_batch(struct meta *m, const struct policy_set *ps, uint64_t *cursor,
			  size_t limit, int64_t now, int *done)
{
	sqlite3_stmt *s = meta_stmt(m, SQL_BATCH);
	size_t n = 0;
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)*cursor);
	sqlite3_bind_int64(s, 2, (int64_t)limit);
	rc = apply_query(m, ps, s, now, cursor, &n);
	*done = rc >= 0 && n < limit;
	return rc;
}

int placement_apply_due(struct meta *m, const struct policy_set *ps, int64_t now, size_t limit)
{
	sqlite3_stmt *s = meta_stmt(m, SQL_DUE);

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_int64(s, 2, (int64_t)limit);
	return apply_query(m, ps, s, now, NULL, NULL);
}

int placement_queue_upload(struct meta *m, uint64_t ino, int64_t changed)
{
	sqlite3_stmt *s = meta_stmt(m, SQL_QUEUE);
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, changed);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return sqlerr(m);
	s = meta_stmt(m, SQL_QUEUED);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : sqlerr(m);
}

int placement_set_pin(struct meta *m, uint64_t ino, int pin)
{
	sqlite3_stmt *s = meta_stmt(m, SQL_PIN);
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, pin);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : sqlerr(m);
}

/* ---- visibility and symlinks ---- */

int placement_visible(const struct policy_set *ps, int placement, const char *rule)
{
	if (placement == PLACEMENT_ON_DEMAND || placement == PLACEMENT_MIRROR)
		return 1;
	if (placement != PLACEMENT_TIER || !rule)
		return 0;
	for (size_t k = 0; k < ps->n; k++)
		if (!strcmp(ps->rules[k].name, rule))
			return ps->rules[k].export;
	return 0;
}

static const char SQL_LOOKUP[] =
	"SELECT d.ino, i.mode, i.target, i.placement, i.rule FROM dentry d JOIN inode i ON i.ino=d.ino"
	" WHERE d.parent=?1 AND d.name=?2";
/* The regular files below a directory that have a placement other than private. */
static const char SQL_BELOW[] =
	"WITH RECURSIVE sub(ino) AS (SELECT ?1 UNION ALL SELECT d.ino FROM dentry d JOIN sub"
	" ON d.parent=sub.ino WHERE d.type=4)"
	" SELECT i.placement, i.rule FROM sub JOIN dentry d ON d.parent=sub.ino JOIN inode i ON i.ino=d.ino"
	" WHERE d.type=8 AND i.placement<>0";

#define LINK_HOPS 16

enum { W_PRIVATE = 0, W_EXPORTED = 1, W_NONE = 2 };

struct walk {
	struct meta *m;
	const struct policy_set *ps;
	char *why;
	size_t whylen;
	int hops;
};

/* Is the directory listed in snapshots (an exported file below it)? */
static int dir_listed(struct walk *w, uint64_t dir)
{
	sqlite3_stmt *s = meta_stmt(w->m, SQL_BELOW);
	int listed = 0, rc = SQLITE_DONE;

	if (dir == META_ROOT_INO)
		return 1;
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)dir);
	while (!listed && (rc = sqlite3_step(s)) == SQLITE_ROW)
		listed = placement_visible(w->ps, (int)sqlite3_column_int64(s, 0),
					   (const char *)sqlite3_column_text(s, 1));
	sqlite3_reset(s);
	if (!listed && rc != SQLITE_DONE)
		return sqlerr(w->m);
	return listed;
}

/* Set the reason: pre, ino's path quoted, post. W_PRIVATE, or an error. */
static int private_because(struct walk *w, uint64_t ino, const char *pre, const char *post)
{
	struct tbuf path = TBUF_INIT;
	int rc = placement_path(w->m, ino, &path);

	if (rc == -ENOMEM)
		return rc;
	snprintf(w->why, w->whylen, "%s'%s'%s", pre, rc ? "?" : (const char *)path.data, post);
	tbuf_release(&path);
	return W_PRIVATE;
}

static int walk_outside(struct walk *w, const char *text);

/*
 * Resolve path from directory cur. tail: a tail of a target that left the
 * volume: names that do not exist, or leave the volume again, are W_NONE
 * (they name nothing inside) instead of private.
 */
static int walk_from(struct walk *w, uint64_t cur, const char *path, int tail)
{
	const char *p = path;

	for (;;) {
		const char *e;
		size_t len;
		sqlite3_stmt *s;
		uint64_t ino;
		uint32_t mode;
		int placement, rc;
		char rule[POLICY_NAME_MAX + 1] = "";
		char *target = NULL;

		while (*p == '/')
			p++;
		if (!*p)
			return W_EXPORTED; /* a directory on the way, checked when entered */
		e = strchr(p, '/');
		if (!e)
			e = p + strlen(p);
		len = (size_t)(e - p);
		if (len == 1 && p[0] == '.') {
			p = e;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (cur == META_ROOT_INO)
				return tail ? W_NONE : walk_outside(w, e);
			s = meta_stmt(w->m, SQL_PARENT);
			if (!s)
				return -EIO;
			sqlite3_bind_int64(s, 1, (int64_t)cur);
			rc = sqlite3_step(s);
			if (rc == SQLITE_ROW)
				cur = (uint64_t)sqlite3_column_int64(s, 0);
			sqlite3_reset(s);
			if (rc != SQLITE_ROW)
				return rc == SQLITE_DONE ? -ENOENT : sqlerr(w->m);
			p = e;
			continue;
		}
		s = meta_stmt(w->m, SQL_LOOKUP);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, (int64_t)cur);
		sqlite3_bind_blob(s, 2, p, (int)len, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc != SQLITE_ROW) {
			sqlite3_reset(s);
			if (rc != SQLITE_DONE)
				return sqlerr(w->m);
			if (tail)
				return W_NONE;
			return private_because(w, cur, "its target names something that does not exist in ", "");
		}
		ino = (uint64_t)sqlite3_column_int64(s, 0);
		mode = (uint32_t)sqlite3_column_int64(s, 1);
		placement = (int)sqlite3_column_int64(s, 3);
		if (sqlite3_column_type(s, 4) != SQLITE_NULL)
			snprintf(rule, sizeof(rule), "%s", (const char *)sqlite3_column_text(s, 4));
		if (S_ISLNK(mode)) {
			size_t tl = (size_t)sqlite3_column_bytes(s, 2), rl = strlen(e);

			target = malloc(tl + rl + 2);
			if (target) {
				memcpy(target, sqlite3_column_blob(s, 2) ? sqlite3_column_blob(s, 2) : "", tl);
				target[tl] = '/';
				memcpy(target + tl + 1, e, rl + 1);
			}
		}
		sqlite3_reset(s);
		if (S_ISLNK(mode)) {
			if (!target)
				return -ENOMEM;
			if (++w->hops > LINK_HOPS) {
				free(target);
				return private_because(w, ino, "its target leads through too many symlinks, from ", "");
			}
			rc = target[0] == '/' ? walk_outside(w, target) : walk_from(w, cur, target, tail);
			free(target);
			return rc;
		}
		if (S_ISDIR(mode)) {
			rc = dir_listed(w, ino);
			if (rc < 0)
				return rc;
			if (!rc)
				return private_because(w, ino, "its target leads through ", ", which has nothing exported");
			cur = ino;
			p = e;
			continue;
		}
		while (*e == '/')
			e++;
		if (*e) /* a file in the middle of the path */
			return tail ? W_NONE
				    : private_because(w, ino, "its target names something below the file ", "");
		if (S_ISREG(mode) && placement_visible(w->ps, placement, rule[0] ? rule : NULL))
			return W_EXPORTED;
		return private_because(w, ino, "its target leads to ", ", which is not exported");
	}
}

/*
 * A target (or what is left of one) that leaves the volume: outside, unless
 * a tail of it names something private inside the volume.
 */
static int walk_outside(struct walk *w, const char *text)
{
	const char *p = text;

	for (;;) {
		int rc;

		while (*p == '/')
			p++;
		if (!*p)
			return W_EXPORTED;
		rc = walk_from(w, META_ROOT_INO, p, 1);
		if (rc < 0 || rc == W_PRIVATE)
			return rc;
		p = strchr(p, '/');
		if (!p)
			return W_EXPORTED;
	}
}

int placement_symlink_ok(struct meta *m, const struct policy_set *ps, uint64_t parent,
			 const void *target, size_t len, char *why, size_t whylen)
{
	struct walk w = { m, ps, why, whylen, 0 };
	char *t;
	int rc;

	why[0] = '\0';
	if (!len || memchr(target, '\0', len)) {
		snprintf(why, whylen, "its target is not a path");
		return 0;
	}
	t = strndup(target, len);
	if (!t)
		return -ENOMEM;
	rc = t[0] == '/' ? walk_outside(&w, t) : walk_from(&w, parent, t, 0);
	free(t);
	if (rc < 0)
		return rc;
	return rc == W_EXPORTED || rc == W_NONE;
}

/* What the publisher does with a symlink whose rule exports it. */
static int explain_symlink(struct meta *m, const struct policy_set *ps, uint64_t ino, FILE *out)
{
	struct placement_info pi;
	sqlite3_stmt *s;
	char why[PATH_MAX + 128];
	uint64_t parent = 0;
	void *target = NULL;
	size_t len = 0;
	int rc = placement_get(m, ino, &pi);

	if (rc)
		return rc;
	if (!placement_visible(ps, (int)pi.placement, pi.rule[0] ? pi.rule : NULL))
		return 0;
	s = meta_stmt(m, "SELECT d.parent, i.target FROM dentry d JOIN inode i ON i.ino=d.ino WHERE d.ino=?1 LIMIT 1");
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	if (sqlite3_step(s) == SQLITE_ROW) {
		parent = (uint64_t)sqlite3_column_int64(s, 0);
		len = (size_t)sqlite3_column_bytes(s, 1);
		target = malloc(len + 1);
		if (target)
			memcpy(target, sqlite3_column_blob(s, 1) ? sqlite3_column_blob(s, 1) : "", len);
	}
	sqlite3_reset(s);
	if (!target)
		return parent ? -ENOMEM : -ENOENT;
	rc = placement_symlink_ok(m, ps, parent, target, len, why, sizeof(why));
	free(target);
	if (rc < 0)
		return rc;
	if (rc)
		fprintf(out, "symlink: exported (its target is exported, or outside the volume)\n");
	else
		fprintf(out, "symlink: kept private: %s\n", why);
	return 0;
}

int placement_explain(struct meta *m, const struct policy_set *ps, uint64_t ino, int64_t now,
		      FILE *out)
{
	struct xattr_ctx xc = { m, ino };
	struct policy_file f;
	struct tbuf path = TBUF_INIT;
	uint32_t mode;
	int rc = load_facts(m, &xc, &f, &mode);

	if (rc)
		return rc;
	rc = placement_path(m, ino, &path);
	if (rc)
		return rc;
	if (!S_ISREG(mode) && !S_ISLNK(mode)) {
		fprintf(out, "%s is a %s: placement applies to the files in it\n",
			(const char *)path.data, S_ISDIR(mode) ? "directory" : "special file");
	} else {
		f.path = (const char *)path.data;
		policy_explain(ps->rules, ps->n, &f, now, out);
		if (S_ISLNK(mode))
			rc = explain_symlink(m, ps, ino, out);
	}
	tbuf_release(&path);
	return rc;
}
