/*
 * import.c - the home side of write-back: applies the change sets cloud
 * nodes leave in their outboxes (outbox.h) to the volume, through the home
 * mount itself.
 *
 * DESIGN. One thread (import_start), never the sync scheduler: it does file
 * I/O through the mount. Every interval it lists, for each node of the
 * `node` table, outbox/DIR/cs/ and takes the change sets above the node's
 * last_seq in order:
 *
 *   fetch + decode     the commit, opened with the node's own key. What
 *                      does not open (damage, truncation, another node's
 *                      object, a commit under another seq) is recorded in
 *                      import_bad, logged and counted once, and left in the
 *                      store for the operator; the node's later sets go on.
 *                      A seq at or below last_seq is a replay: logged,
 *                      counted, deleted.
 *   check              every change against home's own rules (never the
 *                      node's): a well-formed path, the first matching rule
 *                      has --cloud-write (directories: or lead to such an
 *                      area), the node's quota. Refused: REJECTED, reason.
 *   place              DIR shallowest first, then FILE/SYMLINK/ATTR, then
 *                      DELETE deepest first, with ordinary syscalls on the
 *                      mount (so placement, publishing and the kernel's
 *                      caches behave as for any local write), walking the
 *                      path with O_NOFOLLOW. A file is written to
 *                      .tierfs-import.SEQ.IDX in its directory, given its
 *                      mode (& 0777), mtime, the directory's owner and the
 *                      xattr user.tierfs.origin = NODE:SERIAL:SEQ:IDX,
 *                      fsync'd and renamed over the name.
 *   conflicts          each change names its base; when what is at the path
 *                      is not that base, home's version keeps the name and
 *                      the node's goes to NAME.conflict-NODE-DATE-TIME[.EXT]
 *                      (table conflict); a change beats a delete; past
 *                      CONFLICT_CAP copies of one path the change is KEPT.
 *   commit             one transaction: node.last_seq and counters, the
 *                      import row (state 'applied', the sealed ack),
 *                      import_file rows (what each change produced, for
 *                      BASE_OWN), conflict rows; durable.
 *   ack + cleanup      put the ack, delete the commit and its chunks, mark
 *                      the row 'done'. A restart finishes 'applied' rows.
 *
 * Exactly once: a redo after a crash before the commit finds each placed
 * file by its origin xattr (at the name or as a conflict copy) and counts
 * it as placed; stale temporaries are replaced. TIERFS_IMPORT_CRASH=STEP
 * (fetched, placed, committed, acked) kills the process right after that
 * step, for tests.
 *
 * The metadata store is used under the host's lock, never across a
 * syscall on the mount or a store request.
 */
#include "import.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "codec.h"
#include "log.h"
#include "nodes.h"
#include "outbox.h"
#include "publish.h"
#include "placement.h"
#include "policy.h"
#include "store.h"
#include "util.h"

#define ORIGIN_XATTR "user.tierfs.origin"
#define TMP_PREFIX ".tierfs-import."
#define CONFLICT_CAP 16 /* conflict copies kept per path */
#define NS 1000000000LL
#define MAX_STALE 1024  /* uncommitted change sets tracked */

/* The chunks of one change set with no commit yet. */
struct stale {
	char key[OUTBOX_KEY_MAX]; /* outbox_key_chunks() */
	size_t count;             /* chunks listed */
	int64_t seen;             /* CLOCK_MONOTONIC ns when count last changed */
};

struct import {
	struct volume *vol;
	struct meta *meta;
	struct store *store;
	struct volkey key;
	struct import_host h;
	struct import_opts o;
	char *mnt;
	dev_t dev;     /* of the mount's root, seen when the thread started */
	int rootfd;    /* the mount's root while a change set is applied, else -1 */
	struct policy_set ps; /* used by the thread only */
	int have_ps;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;   /* protects stop */
	pthread_cond_t cv;
	int stop;
	int cancel;             /* set once at stop (atomically): store calls abort */
	char last_msg[256];    /* the last node_error(), thread only */
	struct stale *stale;   /* thread only */
	size_t nstale;
};

/* The state of one change set being applied. */
struct cset {
	struct import *im;
	const struct node_key *nk;
	const struct node_info *ni;
	const struct outbox_cs *cs;
	struct outbox_result *r;   /* one per change */
	struct stat *res;          /* what each IMPORTED/CONFLICT change produced */
	uint8_t *have_res;
	char **copy_reason;        /* CONFLICT with a copy: why */
	uint64_t quota_used;
	uint64_t files, bytes, rejected, conflicts;
	int redo;                  /* an earlier attempt may have placed files: look for them */
	char *pdir;                /* the directory of the last change_parent() (volume path) */
	int pfd;                   /* open on it, or -1 */
	int pdirty;                /* entries placed in it since its last fsync */
};

static void hlock(struct import *im)
{
	im->h.lock(im->h.arg);
}

static void hunlock(struct import *im)
{
	im->h.unlock(im->h.arg);
}

static void crash_point(const char *step)
{
	const char *e = getenv("TIERFS_IMPORT_CRASH");

	if (e && !strcmp(e, step)) {
		log_warn("import: TIERFS_IMPORT_CRASH=%s: killing the mount (test hook)", step);
		raise(SIGKILL);
	}
}

static int stopping(struct import *im)
{
	int s;

	pthread_mutex_lock(&im->lock);
	s = im->stop;
	pthread_mutex_unlock(&im->lock);
	return s;
}

/* ---- metadata ---- */

/* Run sql binding ?1 text, ?2..?4 integers, ?5 text (parameters a statement lacks are ignored). */
static int exec_sql(struct import *im, const char *sql, const char *t1, int64_t i2, int64_t i3,
		    int64_t i4, const char *t5)
{
	sqlite3_stmt *s = meta_stmt(im->meta, sql);
	int n, rc;

	if (!s)
		return -EIO;
	n = sqlite3_bind_parameter_count(s);
	if (t1)
		sqlite3_bind_text(s, 1, t1, -1, SQLITE_STATIC);
	if (n >= 2)
		sqlite3_bind_int64(s, 2, i2);
	if (n >= 3)
		sqlite3_bind_int64(s, 3, i3);
	if (n >= 4)
		sqlite3_bind_int64(s, 4, i4);
	if (n >= 5 && t5)
		sqlite3_bind_text(s, 5, t5, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Run one statement in its own transaction (under the lock). */
static int exec_tx(struct import *im, const char *sql, const char *t1, int64_t i2, int64_t i3,
		   int64_t i4, const char *t5)
{
	int rc;

	hlock(im);
	rc = meta_begin(im->meta);
	if (!rc) {
		rc = exec_sql(im, sql, t1, i2, i3, i4, t5);
		if (!rc)
			rc = meta_commit(im->meta, 0);
		else
			meta_rollback(im->meta);
	}
	hunlock(im);
	return rc;
}

static void node_error(struct import *im, const char *node, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Log a line about node and keep it as the node's last_error. */
static void node_error(struct import *im, const char *node, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* a set retried every pass (home's disk full, the mount busy) logs once */
	if (strcmp(im->last_msg, msg))
		log_warn("import from node '%s': %s", node, msg);
	snprintf(im->last_msg, sizeof(im->last_msg), "%s", msg);
	exec_tx(im, "UPDATE node SET last_error=?5 WHERE name=?1", node, 0, 0, 0, msg);
}

/* ---- the mount ---- */

/* Is every character of a path component acceptable (not a temporary of ours)? */
static int name_reserved(const char *leaf)
{
	return !strncmp(leaf, TMP_PREFIX, strlen(TMP_PREFIX));
}

/*
 * Open the directory holding path (relative to the mount's root, never
 * following a symlink) and point *leaf at its last component. With
 * create, missing directories are made when allowed(path prefix) says so
 * (mode 0755, owned like their parent). Returns the fd, or -ENOENT (a
 * component is missing), -ENOTDIR (one is not a directory at home),
 * -EPERM (a missing one may not be created; *bad names it), other errors.
 */
static int open_parent(struct import *im, const char *path, int create,
		       int (*allowed)(struct import *im, const char *dir), const char **leaf,
		       char *bad, size_t badlen)
{
	char buf[OUTBOX_PATH_MAX + 1];
	char *p, *slash;
	int fd = dup(im->rootfd), nfd;

	if (fd < 0)
		return -errno;
	snprintf(buf, sizeof(buf), "%s", path);
	*leaf = strrchr(path, '/') + 1;
	p = buf + 1;
	while ((slash = strchr(p, '/'))) {
		struct stat st;

		*slash = '\0';
		nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (!allowed(im, buf)) {
				snprintf(bad, badlen, "%s", buf);
				close(fd);
				return -EPERM;
			}
			if (mkdirat(fd, p, 0755) && errno != EEXIST) {
				nfd = -errno;
				close(fd);
				return nfd;
			}
			nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (nfd >= 0 && fstat(fd, &st) == 0 && fchown(nfd, st.st_uid, st.st_gid) &&
			    errno != EPERM)
				log_warn("import: cannot give '%s' its parent's owner: %s", buf,
					 strerror(errno));
		}
		if (nfd < 0) {
			nfd = errno == ELOOP ? -ENOTDIR : -errno;
			snprintf(bad, badlen, "%s", buf);
			close(fd);
			return nfd;
		}
		close(fd);
		fd = nfd;
		*slash = '/';
		p = slash + 1;
	}
	return fd;
}

/* The origin tag of the regular file leaf in dirfd into out ("" if none). */
static void origin_of(int dirfd, const char *leaf, char *out, size_t len)
{
	int fd = openat(dirfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	ssize_t n = -1;

	out[0] = '\0';
	if (fd < 0)
		return;
	n = fgetxattr(fd, ORIGIN_XATTR, out, len - 1);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
}

/* ---- policy ---- */

static void reload_rules(struct import *im)
{
	char err[512];
	struct policy_set ps;

	hlock(im);
	if ((!im->have_ps || policy_version(im->meta) != im->ps.version) &&
	    policy_set_load(im->meta, &ps, err, sizeof(err)) == 0) {
		if (im->have_ps)
			policy_set_release(&im->ps);
		im->ps = ps;
		im->have_ps = 1;
	}
	hunlock(im);
}

/* Does the first rule matching f have --cloud-write? */
static int rule_allows(struct import *im, const struct policy_file *f)
{
	struct policy_result res;

	if (!im->have_ps || policy_evaluate(im->ps.rules, im->ps.n, f, (int64_t)now_real_ns(), &res))
		return 0;
	return res.matched && res.matched->cloud_write;
}

/* May a node create the directory dir: inside a writable area, or on the way to one? */
static int dir_allowed(struct import *im, const char *dir)
{
	struct policy_file f = { 0 };

	f.path = dir;
	f.mtime = f.atime = (int64_t)now_real_ns();
	if (rule_allows(im, &f))
		return 1;
	for (size_t k = 0; im->have_ps && k < im->ps.n; k++)
		if (im->ps.rules[k].cloud_write &&
		    policy_glob_match_prefix(im->ps.rules[k].glob ? im->ps.rules[k].glob : "/**", dir))
			return 1;
	return 0;
}

/* ---- results ---- */

static int set_result(struct cset *c, size_t i, int state, const char *detail)
{
	free(c->r[i].detail);
	c->r[i].state = (uint8_t)state;
	c->r[i].detail = strdup(detail ? detail : "");
	if (!c->r[i].detail)
		return -ENOMEM;
	if (state == OUTBOX_REJECTED) {
		c->rejected++;
		log_warn("import from node '%s' change set %" PRIu64 ": '%s' rejected: %s", c->nk->name,
			 c->cs->seq, c->cs->ch[i].path, detail);
	} else if (state == OUTBOX_KEPT) {
		log_warn("import from node '%s' change set %" PRIu64 ": '%s' kept aside: %s",
			 c->nk->name, c->cs->seq, c->cs->ch[i].path, detail);
	}
	return 0;
}

static void set_res(struct cset *c, size_t i, const struct stat *st)
{
	c->res[i] = *st;
	c->have_res[i] = 1;
	c->r[i].mtime = (int64_t)st->st_mtim.tv_sec * NS + st->st_mtim.tv_nsec;
	c->r[i].size = (uint64_t)st->st_size;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * NS + st->st_mtim.tv_nsec;
}

/*
 * Does what is at the path now (cur, or absent) still hold the change's
 * base? A change beats a delete: an absent file holds every base but NONE
 * trivially too.
 */
static int base_holds(struct cset *c, const struct outbox_change *ch, const struct stat *cur)
{
	sqlite3_stmt *s;
	int ok = 0;

	if (!cur)
		return 1;
	switch (ch->base) {
	case OUTBOX_BASE_NONE:
		return 0;
	case OUTBOX_BASE_HOME: {
		/* the node names home's file by the id snapshots show (snap_fid) */
		uint64_t ino = 0;

		hlock(c->im);
		ok = publish_fid_ino(c->im->meta, ch->base_fid, &ino) == 0;
		hunlock(c->im);
		return ok && (uint64_t)cur->st_ino == ino && mtime_ns(cur) == ch->base_mtime &&
		       (uint64_t)cur->st_size == ch->base_size;
	}
	case OUTBOX_BASE_OWN:
		hlock(c->im);
		s = meta_stmt(c->im->meta, "SELECT ino, mtime, size FROM import_file WHERE node=?1"
					   " AND serial=?2 AND seq=?3 AND idx=?4");
		if (s) {
			sqlite3_bind_text(s, 1, c->nk->name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, c->nk->serial);
			sqlite3_bind_int64(s, 3, (int64_t)ch->base_fid);
			sqlite3_bind_int64(s, 4, (int64_t)ch->base_size);
			ok = sqlite3_step(s) == SQLITE_ROW &&
			     (uint64_t)sqlite3_column_int64(s, 0) == (uint64_t)cur->st_ino &&
			     sqlite3_column_int64(s, 1) == mtime_ns(cur) &&
			     sqlite3_column_int64(s, 2) == (int64_t)cur->st_size;
			sqlite3_reset(s);
		}
		hunlock(c->im);
		return ok;
	}
	return 0;
}

/* ---- placing files ---- */

/* utimensat() times that set mtime to ns and leave atime alone. */
static void mtime_times(int64_t ns, struct timespec ts[2])
{
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = ns / NS;
	ts[1].tv_nsec = ns % NS;
	if (ts[1].tv_nsec < 0) {
		ts[1].tv_sec--;
		ts[1].tv_nsec += NS;
	}
}

/* Write change i's content (or symlink) as tmp in dirfd, ready to rename. */
static int write_tmp(struct cset *c, size_t i, int dirfd, const char *tmp, const struct stat *dst,
		     struct stat *st_out)
{
	const struct outbox_change *ch = &c->cs->ch[i];
	char key[OUTBOX_KEY_MAX], tag[NODE_NAME_MAX + 64];
	struct tbuf raw = TBUF_INIT, plain = TBUF_INIT;
	struct timespec ts[2];
	uint64_t total = 0;
	int fd, rc = 0;

	if (c->redo)
		unlinkat(dirfd, tmp, 0); /* a temporary left by a crash */
	if (ch->op == OUTBOX_SYMLINK) {
		if (symlinkat(ch->target, dirfd, tmp))
			return -errno;
		if (fchownat(dirfd, tmp, dst->st_uid, dst->st_gid, AT_SYMLINK_NOFOLLOW) && errno != EPERM)
			log_warn("import: cannot chown a symlink: %s", strerror(errno));
		return fstatat(dirfd, tmp, st_out, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (size_t k = 0; k < ch->n && !rc; k++) {
		outbox_key_chunk(c->nk->dir, c->cs->seq, ch->c[k].name, key);
		tbuf_reset(&raw);
		tbuf_reset(&plain);
		rc = store_get(c->im->store, key, 0, STORE_WHOLE, &raw);
		if (rc)
			break;
		rc = codec_decode(&c->nk->node, raw.data, raw.len, ch->c[k].name, CODEC_VERIFY_NAME,
				  &plain);
		if (rc) {
			rc = -EBADMSG;
			break;
		}
		if (plain.len != ch->c[k].len) {
			rc = -EBADMSG;
			break;
		}
		for (size_t off = 0; off < plain.len && !rc;) {
			ssize_t w = write(fd, plain.data + off, plain.len - off);

			if (w < 0)
				rc = -errno;
			else
				off += (size_t)w;
		}
		total += plain.len;
	}
	if (!rc && total != ch->size)
		rc = -EBADMSG;
	snprintf(tag, sizeof(tag), "%s:%" PRIu32 ":%" PRIu64 ":%zu", c->nk->name, c->nk->serial,
		 c->cs->seq, i);
	if (!rc && fchown(fd, dst->st_uid, dst->st_gid) && errno != EPERM)
		rc = -errno;
	if (!rc && fchmod(fd, ch->mode & 0777))
		rc = -errno;
	if (!rc && fsetxattr(fd, ORIGIN_XATTR, tag, strlen(tag), 0))
		rc = -errno;
	mtime_times(ch->mtime, ts);
	if (!rc && futimens(fd, ts))
		rc = -errno;
	if (!rc && fsync(fd))
		rc = -errno;
	if (!rc && fstat(fd, st_out))
		rc = -errno;
	close(fd);
	if (rc)
		unlinkat(dirfd, tmp, 0);
	tbuf_release(&raw);
	tbuf_release(&plain);
	return rc;
}

/* Write change i under name in dirfd: temporary, then rename, then fsync the directory. */
static int place(struct cset *c, size_t i, int dirfd, const char *name, struct stat *st_out)
{
	char tmp[64];
	struct stat dst;
	int rc;

	if (fstat(dirfd, &dst))
		return -errno;
	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%" PRIu64 ".%zu", c->cs->seq, i);
	rc = write_tmp(c, i, dirfd, tmp, &dst, st_out);
	if (rc)
		return rc;
	if (renameat(dirfd, tmp, dirfd, name)) {
		rc = -errno;
		unlinkat(dirfd, tmp, 0);
		return rc;
	}
	c->pdirty = 1; /* dirfd is the kept directory: fsync'd before the set commits */
	return 0;
}

/* "NAME.conflict-NODE-YYYYMMDD-HHMMSS[.EXT]" (home's clock, UTC), unused in dirfd. */
static void conflict_name(struct cset *c, int dirfd, const char *leaf, char *out, size_t len)
{
	const char *dot = strrchr(leaf, '.');
	char stamp[32];
	struct tm tm;
	time_t t = time(NULL);
	struct stat st;
	int stem;

	if (!dot || dot == leaf)
		dot = leaf + strlen(leaf);
	stem = (int)(dot - leaf);
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	for (int n = 1; n < 1000; n++) {
		if (n == 1)
			snprintf(out, len, "%.*s.conflict-%s-%s%s", stem, leaf, c->nk->name, stamp, dot);
		else
			snprintf(out, len, "%.*s.conflict-%s-%s-%d%s", stem, leaf, c->nk->name, stamp, n,
				 dot);
		if (fstatat(dirfd, out, &st, AT_SYMLINK_NOFOLLOW) && errno == ENOENT)
			return;
	}
}

/* A conflict copy of this change placed before a crash: its name in out. */
static int find_copy(struct cset *c, int dirfd, const char *leaf, const char *tag, char *out,
		     size_t len)
{
	const char *dot = strrchr(leaf, '.');
	char prefix[NAME_MAX + 80], o[128];
	struct dirent *e;
	int fd = dup(dirfd), found = 0;
	DIR *d;

	if (!dot || dot == leaf)
		dot = leaf + strlen(leaf);
	snprintf(prefix, sizeof(prefix), "%.*s.conflict-%s-", (int)(dot - leaf), leaf, c->nk->name);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	rewinddir(d);
	while (!found && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		origin_of(dirfd, e->d_name, o, sizeof(o));
		if (!strcmp(o, tag)) {
			snprintf(out, len, "%s", e->d_name);
			found = 1;
		}
	}
	closedir(d);
	return found;
}

/* Conflict copies of path at home now (committed ones still there, and this set's). */
static int copies_of(struct cset *c, const char *path)
{
	sqlite3_stmt *s;
	uint64_t ino;
	int n = 0;

	/* the copies still there: once the operator cleans them up, the cap frees */
	hlock(c->im);
	s = meta_stmt(c->im->meta, "SELECT copy FROM conflict WHERE path=?1 AND copy IS NOT NULL");
	if (s) {
		sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
		while (sqlite3_step(s) == SQLITE_ROW)
			n += placement_resolve(c->im->meta, (const char *)sqlite3_column_text(s, 0), &ino) == 0;
		sqlite3_reset(s);
	}
	hunlock(c->im);
	for (size_t k = 0; k < c->cs->n; k++)
		if (c->r[k].state == OUTBOX_CONFLICT && c->copy_reason[k] &&
		    !strcmp(c->cs->ch[k].path, path))
			n++;
	return n;
}

/* The volume path of a copy next to path named leaf. */
static char *sibling(const char *path, const char *leaf)
{
	const char *slash = strrchr(path, '/');
	char *out = NULL;

	if (asprintf(&out, "%.*s/%s", (int)(slash - path), path, leaf) < 0)
		return NULL;
	return out;
}

/* fsync the kept directory if entries were placed in it, and let it go. */
static int parent_flush(struct cset *c)
{
	int rc = 0;

	if (c->pfd >= 0 && c->pdirty && fsync(c->pfd))
		rc = -errno;
	if (c->pfd >= 0)
		close(c->pfd);
	free(c->pdir);
	c->pdir = NULL;
	c->pfd = -1;
	c->pdirty = 0;
	return rc;
}

/*
 * The directory holding change i's path, with the directories on the way
 * made where allowed; a refusal becomes change i's result (-ECANCELED).
 */
static int change_parent(struct cset *c, size_t i, const char **leaf)
{
	const char *path = c->cs->ch[i].path, *slash = strrchr(path, '/');
	char bad[OUTBOX_PATH_MAX + 1] = "", msg[OUTBOX_PATH_MAX + 64];
	size_t dlen = (size_t)(slash - path);
	int fd;

	/* many files of a set share a directory: keep it open (and fsync it once) */
	if (c->pfd >= 0 && strlen(c->pdir) == dlen && !memcmp(c->pdir, path, dlen)) {
		*leaf = slash + 1;
		fd = dup(c->pfd);
		return fd < 0 ? -errno : fd;
	}
	fd = parent_flush(c);
	if (fd)
		return fd;
	fd = open_parent(c->im, path, 1, dir_allowed, leaf, bad, sizeof(bad));
	if (fd >= 0) {
		c->pdir = strndup(path, dlen);
		c->pfd = c->pdir ? dup(fd) : -1;
	}
	if (fd != -EPERM && fd != -ENOTDIR)
		return fd;
	snprintf(msg, sizeof(msg), fd == -EPERM ? "no rule lets a node create directory '%s'" :
		 "'%s' is not a directory at home", bad);
	fd = set_result(c, i, OUTBOX_REJECTED, msg);
	return fd ? fd : -ECANCELED;
}

/* FILE and SYMLINK. */
static int apply_file(struct cset *c, size_t i)
{
	const struct outbox_change *ch = &c->cs->ch[i];
	char tag[NODE_NAME_MAX + 64], o[128], copy[NAME_MAX + 1], msg[OUTBOX_PATH_MAX + 128];
	const char *leaf, *why;
	struct stat cur, st;
	int dirfd, have, rc = 0;
	char *cpath;

	if (ch->op == OUTBOX_FILE && c->ni->quota && c->quota_used + ch->size > c->ni->quota) {
		snprintf(msg, sizeof(msg), "over the node's quota of %" PRIu64 " bytes per change set",
			 c->ni->quota);
		return set_result(c, i, OUTBOX_REJECTED, msg);
	}
	dirfd = change_parent(c, i, &leaf);
	if (dirfd < 0)
		return dirfd == -ECANCELED ? 0 : dirfd;
	snprintf(tag, sizeof(tag), "%s:%" PRIu32 ":%" PRIu64 ":%zu", c->nk->name, c->nk->serial,
		 c->cs->seq, i);
	have = fstatat(dirfd, leaf, &cur, AT_SYMLINK_NOFOLLOW) == 0;
	if (ch->op == OUTBOX_FILE)
		c->quota_used += ch->size;
	/* placed before a crash? */
	if (c->redo && have && S_ISREG(cur.st_mode)) {
		origin_of(dirfd, leaf, o, sizeof(o));
		if (!strcmp(o, tag)) {
			set_res(c, i, &cur);
			goto imported;
		}
	}
	if (c->redo && find_copy(c, dirfd, leaf, tag, copy, sizeof(copy))) {
		if (fstatat(dirfd, copy, &st, AT_SYMLINK_NOFOLLOW) == 0)
			set_res(c, i, &st);
		why = "changed at home since the node's version";
		goto conflict_named;
	}
	if (have && ch->op == OUTBOX_SYMLINK && S_ISLNK(cur.st_mode)) {
		char t[OUTBOX_PATH_MAX + 1];
		ssize_t n = readlinkat(dirfd, leaf, t, sizeof(t) - 1);

		if (n >= 0 && (t[n] = '\0', !strcmp(t, ch->target))) {
			set_res(c, i, &cur);
			goto imported;
		}
	}
	if (!have || (!S_ISDIR(cur.st_mode) && base_holds(c, ch, &cur))) {
		rc = place(c, i, dirfd, leaf, &st);
		if (rc)
			goto out;
		set_res(c, i, &st);
		goto imported;
	}
	/* the base does not hold: home keeps the name */
	why = S_ISDIR(cur.st_mode) ? "a directory at home has this name" :
	      ch->base == OUTBOX_BASE_NONE ? "created at home or by another node meanwhile" :
	      ch->base == OUTBOX_BASE_OWN ? "changed at home or by another node since this node's version" :
					    "changed at home since the node's version";
	if (copies_of(c, ch->path) >= CONFLICT_CAP) {
		snprintf(msg, sizeof(msg), "%s; %d conflict copies already kept", why, CONFLICT_CAP);
		rc = set_result(c, i, OUTBOX_KEPT, msg);
		goto out;
	}
	conflict_name(c, dirfd, leaf, copy, sizeof(copy));
	rc = place(c, i, dirfd, copy, &st);
	if (rc)
		goto out;
	set_res(c, i, &st);
conflict_named:
	cpath = sibling(ch->path, copy);
	if (!cpath) {
		rc = -ENOMEM;
		goto out;
	}
	rc = set_result(c, i, OUTBOX_CONFLICT, cpath);
	free(c->copy_reason[i]);
	c->copy_reason[i] = strdup(why);
	log_warn("import from node '%s' change set %" PRIu64 ": conflict on '%s' (%s): home's version"
		 " kept, the node's is '%s'", c->nk->name, c->cs->seq, ch->path, why, cpath);
	free(cpath);
	c->conflicts++;
	goto out;
imported:
	rc = set_result(c, i, OUTBOX_IMPORTED, "");
	if (ch->op == OUTBOX_FILE) {
		c->files++;
		c->bytes += ch->size;
	}
out:
	close(dirfd);
	return rc;
}

static int apply_dir(struct cset *c, size_t i)
{
	const struct outbox_change *ch = &c->cs->ch[i];
	const char *leaf;
	struct stat st, dst;
	int dirfd, have, rc = 0;

	if (!strcmp(ch->path, "/"))
		return set_result(c, i, OUTBOX_IMPORTED, "");
	dirfd = change_parent(c, i, &leaf);
	if (dirfd < 0)
		return dirfd == -ECANCELED ? 0 : dirfd;
	have = fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (!have && errno != ENOENT) {
		rc = -errno;
		goto out;
	}
	if (have && !S_ISDIR(st.st_mode)) {
		c->conflicts++;
		rc = set_result(c, i, OUTBOX_CONFLICT, "a file at home has this name; directory not made");
		goto out;
	}
	if (have) {
		/* a node's chmod of a directory inside its area; those on the way stay home's */
		struct policy_file f = { .path = ch->path, .uid = st.st_uid, .gid = st.st_gid };

		f.mtime = mtime_ns(&st);
		f.atime = (int64_t)now_real_ns();
		if ((st.st_mode & 0777) != (ch->mode & 0777) && rule_allows(c->im, &f) &&
		    (fchmodat(dirfd, leaf, ch->mode & 0777, 0) ||
		     fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW))) {
			rc = -errno;
			goto out;
		}
		set_res(c, i, &st);
		rc = set_result(c, i, OUTBOX_IMPORTED, "");
		goto out;
	}
	if (mkdirat(dirfd, leaf, ch->mode & 0777) && errno != EEXIST) {
		rc = -errno;
		goto out;
	}
	if (fstat(dirfd, &dst) == 0 && fchownat(dirfd, leaf, dst.st_uid, dst.st_gid, AT_SYMLINK_NOFOLLOW) &&
	    errno != EPERM)
		log_warn("import: cannot chown '%s': %s", ch->path, strerror(errno));
	if (fchmodat(dirfd, leaf, ch->mode & 0777, 0) || fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW)) {
		rc = -errno;
		goto out;
	}
	c->pdirty = 1;
	set_res(c, i, &st);
	rc = set_result(c, i, OUTBOX_IMPORTED, "");
out:
	close(dirfd);
	return rc;
}

/* ATTR and DELETE: on what is there; a missing entry or parent is "gone". */
static int apply_attr_delete(struct cset *c, size_t i)
{
	const struct outbox_change *ch = &c->cs->ch[i];
	char bad[OUTBOX_PATH_MAX + 1];
	const char *leaf;
	struct stat cur;
	int dirfd, rc = 0;

	dirfd = open_parent(c->im, ch->path, 0, dir_allowed, &leaf, bad, sizeof(bad));
	if ((dirfd == -ENOENT || dirfd == -ENOTDIR) && ch->op == OUTBOX_DELETE)
		return set_result(c, i, OUTBOX_IMPORTED, "already gone at home");
	if (dirfd == -ENOENT || dirfd == -ENOTDIR) {
		c->conflicts++;
		return set_result(c, i, OUTBOX_CONFLICT, "deleted at home; attribute change skipped");
	}
	if (dirfd < 0)
		return dirfd;
	if (fstatat(dirfd, leaf, &cur, AT_SYMLINK_NOFOLLOW)) {
		if (errno != ENOENT)
			rc = -errno;
		else if (ch->op == OUTBOX_DELETE)
			rc = set_result(c, i, OUTBOX_IMPORTED, "already gone at home");
		else {
			c->conflicts++;
			rc = set_result(c, i, OUTBOX_CONFLICT, "deleted at home; attribute change skipped");
		}
		goto out;
	}
	if (!S_ISDIR(cur.st_mode) && !base_holds(c, ch, &cur)) {
		c->conflicts++;
		rc = set_result(c, i, OUTBOX_CONFLICT, ch->op == OUTBOX_DELETE ?
			"changed at home; delete skipped" : "changed at home; attribute change skipped");
		goto out;
	}
	if (ch->op == OUTBOX_DELETE) {
		if (unlinkat(dirfd, leaf, S_ISDIR(cur.st_mode) ? AT_REMOVEDIR : 0)) {
			if (errno == ENOTEMPTY || errno == EEXIST) {
				c->conflicts++;
				rc = set_result(c, i, OUTBOX_CONFLICT, "directory not empty at home; delete skipped");
			} else {
				rc = -errno;
			}
			goto out;
		}
		rc = fsync(dirfd) ? -errno : set_result(c, i, OUTBOX_IMPORTED, "");
		goto out;
	}
	{
		struct timespec ts[2];

		mtime_times(ch->mtime, ts);
		if ((!S_ISLNK(cur.st_mode) && fchmodat(dirfd, leaf, ch->mode & 0777, 0)) ||
		    utimensat(dirfd, leaf, ts, AT_SYMLINK_NOFOLLOW) ||
		    fstatat(dirfd, leaf, &cur, AT_SYMLINK_NOFOLLOW)) {
			rc = -errno;
			goto out;
		}
	}
	set_res(c, i, &cur);
	rc = set_result(c, i, OUTBOX_IMPORTED, "");
out:
	close(dirfd);
	return rc;
}

/* Home's rules on change i, before anything is done. 1: go on, 0: refused (result set). */
static int check_change(struct cset *c, size_t i, int *rc)
{
	const struct outbox_change *ch = &c->cs->ch[i];
	const char *leaf = strrchr(ch->path, '/') + 1;
	struct policy_file f = { 0 };
	struct stat cur;
	char rel[OUTBOX_PATH_MAX + 2];

	*rc = 0;
	if (!outbox_path_ok(ch->path)) {
		*rc = set_result(c, i, OUTBOX_REJECTED, "malformed path");
		return 0;
	}
	for (const char *p = ch->path; p; p = strchr(p + 1, '/'))
		if (name_reserved(p + 1)) {
			*rc = set_result(c, i, OUTBOX_REJECTED, "a name reserved for home's importer");
			return 0;
		}
	if (ch->op == OUTBOX_DIR) {
		if (!dir_allowed(c->im, ch->path)) {
			*rc = set_result(c, i, OUTBOX_REJECTED, "no --cloud-write rule covers this directory");
			return 0;
		}
		return 1;
	}
	if (!*leaf) {
		*rc = set_result(c, i, OUTBOX_REJECTED, "not a file path");
		return 0;
	}
	f.path = ch->path;
	f.size = ch->op == OUTBOX_FILE ? ch->size : ch->op == OUTBOX_SYMLINK ? strlen(ch->target) : 0;
	f.mtime = ch->mtime;
	f.atime = (int64_t)now_real_ns();
	snprintf(rel, sizeof(rel), ".%s", ch->path);
	if ((ch->op == OUTBOX_DELETE || ch->op == OUTBOX_ATTR) &&
	    fstatat(c->im->rootfd, rel, &cur, AT_SYMLINK_NOFOLLOW) == 0) {
		/* the facts of what the change would touch */
		f.size = (uint64_t)cur.st_size;
		f.mtime = mtime_ns(&cur);
		f.uid = cur.st_uid;
		f.gid = cur.st_gid;
	} else {
		/* a new file gets the owner of its directory (or of the nearest that exists) */
		char *slash;

		while ((slash = strrchr(rel, '/')) && (*slash = '\0', fstatat(c->im->rootfd, rel, &cur, 0)))
			;
		if (slash) {
			f.uid = cur.st_uid;
			f.gid = cur.st_gid;
		}
	}
	if (!rule_allows(c->im, &f)) {
		*rc = set_result(c, i, OUTBOX_REJECTED, "outside every --cloud-write rule");
		return 0;
	}
	return 1;
}

static int depth(const char *path)
{
	int d = 0;

	for (; *path; path++)
		d += *path == '/';
	return d;
}

/* Order change indexes by the depth of their paths, then by index (qsort_r, arg: the set). */
static int by_depth_asc(const void *a, const void *b, void *arg)
{
	const struct outbox_cs *cs = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int dx = depth(cs->ch[x].path), dy = depth(cs->ch[y].path);

	return dx != dy ? dx - dy : (x > y) - (x < y);
}

static int by_depth_desc(const void *a, const void *b, void *arg)
{
	return by_depth_asc(b, a, arg);
}

/* Apply every change of c->cs (results in c->r). <0: stop, retry the set later. */
static int apply_changes(struct cset *c)
{
	const struct outbox_cs *cs = c->cs;
	size_t *ord = malloc((cs->n ? cs->n : 1) * sizeof(*ord));
	int rc = 0, rc2;

	if (!ord)
		return -ENOMEM;
	for (int phase = 0; phase < 3 && !rc; phase++) {
		size_t n = 0;

		for (size_t i = 0; i < cs->n; i++) {
			int op = cs->ch[i].op;

			if ((phase == 0 && op == OUTBOX_DIR) || (phase == 2 && op == OUTBOX_DELETE) ||
			    (phase == 1 && op != OUTBOX_DIR && op != OUTBOX_DELETE))
				ord[n++] = i;
		}
		if (phase == 2 && (rc = parent_flush(c)))
			break; /* deletes may remove the kept directory */
		if (phase != 1) {
			qsort_r(ord, n, sizeof(*ord), phase == 0 ? by_depth_asc : by_depth_desc,
				(void *)cs);
		}
		for (size_t k = 0; k < n && !rc; k++) {
			size_t i = ord[k];
			int ok = check_change(c, i, &rc);

			if (!ok || rc)
				continue;
			switch (cs->ch[i].op) {
			case OUTBOX_DIR:
				rc = apply_dir(c, i);
				break;
			case OUTBOX_FILE:
			case OUTBOX_SYMLINK:
				rc = apply_file(c, i);
				break;
			case OUTBOX_ATTR:
			case OUTBOX_DELETE:
				rc = apply_attr_delete(c, i);
				break;
			default:
				rc = set_result(c, i, OUTBOX_REJECTED, "unknown operation");
			}
			if (rc == -EBADMSG || rc == -ENOENT) {
				/* a chunk missing from the outbox or not the node's */
				rc = set_result(c, i, OUTBOX_REJECTED, rc == -ENOENT ?
						OUTBOX_REASON_MISSING :
						"a chunk does not open with the node's key");
			}
		}
	}
	free(ord);
	rc2 = parent_flush(c);
	return rc ? rc : rc2;
}

/* ---- change sets ---- */

static void delete_chunks(struct import *im, const char *dir, uint64_t seq);

/* The ack is in the import row: put it, delete the commit and its chunks, mark the row done. */
static int finish(struct import *im, const char *node, uint32_t serial, const char *dir, uint64_t seq,
		  const void *ack, size_t acklen)
{
	char key[OUTBOX_KEY_MAX];
	int rc;

	outbox_key_ack(dir, seq, key);
	rc = store_put(im->store, key, ack, acklen);
	if (rc)
		return rc;
	crash_point("acked");
	outbox_key_cs(dir, seq, key);
	rc = store_del(im->store, key);
	if (rc && rc != -ENOENT)
		return rc;
	delete_chunks(im, dir, seq);
	return exec_tx(im, "UPDATE import SET state='done', done=?4 WHERE node=?1 AND serial=?2"
			   " AND seq=?3", node, serial, (int64_t)seq, (int64_t)now_real_ns(), NULL);
}

struct keylist {
	char **k;
	size_t n, cap;
};

static int list_cb(void *arg, const char *key, uint64_t size)
{
	struct keylist *l = arg;

	(void)size;
	if (l->n == l->cap) {
		size_t n = l->cap ? l->cap * 2 : 16;
		char **x = realloc(l->k, n * sizeof(*x));

		if (!x)
			return -ENOMEM;
		l->k = x;
		l->cap = n;
	}
	l->k[l->n] = strdup(key);
	if (!l->k[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static void keylist_free(struct keylist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->k[i]);
	free(l->k);
	memset(l, 0, sizeof(*l));
}

static void delete_chunks(struct import *im, const char *dir, uint64_t seq)
{
	char prefix[OUTBOX_KEY_MAX];
	struct keylist l = { 0 };

	outbox_key_chunks(dir, seq, prefix);
	if (store_list(im->store, prefix, list_cb, &l) >= 0)
		for (size_t i = 0; i < l.n; i++)
			store_del(im->store, l.k[i]);
	keylist_free(&l);
}

/* Record the set in one transaction; the sealed ack in *ack. */
static int commit_set(struct cset *c, struct tbuf *ack)
{
	struct import *im = c->im;
	const struct outbox_cs *cs = c->cs;
	struct outbox_ack a = { 0 };
	sqlite3_stmt *s;
	int rc;

	hlock(im);
	rc = meta_begin(im->meta);
	if (rc) {
		hunlock(im);
		return rc;
	}
	a.seq = cs->seq;
	a.when = (int64_t)now_real_ns();
	a.r = c->r;
	a.n = cs->n;
	s = meta_stmt(im->meta, "SELECT coalesce(max(seq),0)+1 FROM snapshot");
	if (s && sqlite3_step(s) == SQLITE_ROW)
		a.snap_seq = (uint64_t)sqlite3_column_int64(s, 0);
	if (s)
		sqlite3_reset(s);
	/* the ack names home's versions by the ids snapshots show, never by inode number */
	for (size_t i = 0; !rc && i < cs->n; i++)
		if (c->have_res[i])
			rc = publish_fid(im->meta, &im->key, c->res[i].st_ino, &c->r[i].fid);
	if (!rc)
		rc = outbox_ack_encode(c->nk, &a, ack);
	s = meta_stmt(im->meta, "INSERT OR REPLACE INTO import(node, serial, seq, state, ack, changes,"
				" applied, done) VALUES(?1, ?2, ?3, 'applied', ?4, ?5, ?6, NULL)");
	if (!rc && s) {
		sqlite3_bind_text(s, 1, c->nk->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, c->nk->serial);
		sqlite3_bind_int64(s, 3, (int64_t)cs->seq);
		sqlite3_bind_blob(s, 4, ack->data, (int)ack->len, SQLITE_STATIC);
		sqlite3_bind_int64(s, 5, (int64_t)cs->n);
		sqlite3_bind_int64(s, 6, a.when);
		if (sqlite3_step(s) != SQLITE_DONE)
			rc = -EIO;
		sqlite3_reset(s);
	} else if (!rc) {
		rc = -EIO;
	}
	for (size_t i = 0; !rc && i < cs->n; i++) {
		if (c->have_res[i] && (c->r[i].state == OUTBOX_IMPORTED || c->r[i].state == OUTBOX_CONFLICT)) {
			s = meta_stmt(im->meta, "INSERT OR REPLACE INTO import_file(node, serial, seq, idx, ino,"
						" mtime, size) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
			if (!s) {
				rc = -EIO;
				break;
			}
			sqlite3_bind_text(s, 1, c->nk->name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, c->nk->serial);
			sqlite3_bind_int64(s, 3, (int64_t)cs->seq);
			sqlite3_bind_int64(s, 4, (int64_t)i);
			sqlite3_bind_int64(s, 5, (int64_t)c->res[i].st_ino);
			sqlite3_bind_int64(s, 6, mtime_ns(&c->res[i]));
			sqlite3_bind_int64(s, 7, (int64_t)c->res[i].st_size);
			if (sqlite3_step(s) != SQLITE_DONE)
				rc = -EIO;
			sqlite3_reset(s);
		}
		if (!rc && c->r[i].state == OUTBOX_CONFLICT) {
			s = meta_stmt(im->meta, "INSERT INTO conflict(path, copy, node, serial, seq, idx,"
						" reason, time) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
			if (!s) {
				rc = -EIO;
				break;
			}
			sqlite3_bind_text(s, 1, cs->ch[i].path, -1, SQLITE_STATIC);
			if (c->copy_reason[i])
				sqlite3_bind_text(s, 2, c->r[i].detail, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 3, c->nk->name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 4, c->nk->serial);
			sqlite3_bind_int64(s, 5, (int64_t)cs->seq);
			sqlite3_bind_int64(s, 6, (int64_t)i);
			sqlite3_bind_text(s, 7, c->copy_reason[i] ? c->copy_reason[i] : c->r[i].detail, -1,
					  SQLITE_STATIC);
			sqlite3_bind_int64(s, 8, a.when);
			if (sqlite3_step(s) != SQLITE_DONE)
				rc = -EIO;
			sqlite3_reset(s);
		}
	}
	s = meta_stmt(im->meta, "UPDATE node SET last_seq=?2, last_import=?3, files=files+?4,"
				" bytes=bytes+?5, rejected=rejected+?6, conflicts=conflicts+?7"
				" WHERE name=?1 AND serial=?8");
	if (!rc && s) {
		sqlite3_bind_text(s, 1, c->nk->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (int64_t)cs->seq);
		sqlite3_bind_int64(s, 3, a.when);
		sqlite3_bind_int64(s, 4, (int64_t)c->files);
		sqlite3_bind_int64(s, 5, (int64_t)c->bytes);
		sqlite3_bind_int64(s, 6, (int64_t)c->rejected);
		sqlite3_bind_int64(s, 7, (int64_t)c->conflicts);
		sqlite3_bind_int64(s, 8, c->nk->serial);
		if (sqlite3_step(s) != SQLITE_DONE)
			rc = -EIO;
		sqlite3_reset(s);
	} else if (!rc) {
		rc = -EIO;
	}
	if (!rc)
		rc = meta_commit(im->meta, 1);
	else
		meta_rollback(im->meta);
	hunlock(im);
	return rc;
}

/* Does a row of node nk match sql, with ?3 = key (text) or else seq? */
static int node_row(struct import *im, const char *sql, const struct node_key *nk, const char *key,
		    uint64_t seq)
{
	sqlite3_stmt *s;
	int yes = 0;

	hlock(im);
	s = meta_stmt(im->meta, sql);
	if (s) {
		sqlite3_bind_text(s, 1, nk->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, nk->serial);
		if (key)
			sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
		else
			sqlite3_bind_int64(s, 3, (int64_t)seq);
		yes = sqlite3_step(s) == SQLITE_ROW;
		sqlite3_reset(s);
	}
	hunlock(im);
	return yes;
}

/* A commit object that did not open before (left in the store)? */
static int is_bad(struct import *im, const struct node_key *nk, const char *key)
{
	return node_row(im, "SELECT 1 FROM import_bad WHERE node=?1 AND serial=?2 AND key=?3", nk, key, 0);
}

/* Change set seq applied, its ack not written yet? */
static int seq_applied_pending(struct import *im, const struct node_key *nk, uint64_t seq)
{
	return node_row(im, "SELECT 1 FROM import WHERE node=?1 AND serial=?2 AND seq=?3"
			    " AND state='applied'", nk, NULL, seq);
}

/* Note a commit object that does not open: once (import_bad), logged, counted, left in place. */
static void bad_object(struct import *im, const struct node_key *nk, const char *key, const char *why)
{
	if (is_bad(im, nk, key))
		return;
	node_error(im, nk->name, "'%s' does not open with the node's key (%s): left in the store,"
		   " not applied", key, why);
	exec_tx(im, "INSERT OR IGNORE INTO import_bad(node, serial, key, seen) VALUES(?1, ?2, ?5, ?3)",
		nk->name, nk->serial, (int64_t)now_real_ns(), 0, key);
	exec_tx(im, "UPDATE node SET rejected=rejected+1 WHERE name=?1 AND serial=?2", nk->name,
		nk->serial, 0, 0, NULL);
}

/*
 * Open the mount's root for one change set: by its path, so it must still
 * be the mount seen at start (after an unmount the path is a plain
 * directory that must never be written). -ENOTCONN otherwise.
 */
static int mount_open(struct import *im)
{
	struct stat st;

	im->rootfd = open(im->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (im->rootfd < 0)
		return -errno;
	if (fstat(im->rootfd, &st) || st.st_dev != im->dev) {
		close(im->rootfd);
		im->rootfd = -1;
		return -ENOTCONN;
	}
	return 0;
}

/* Fetch, check, apply and commit change set seq of a node. <0: retry later. */
static int import_set(struct import *im, const struct node_key *nk, const struct node_info *ni,
		      const char *key)
{
	struct tbuf obj = TBUF_INIT, ack = TBUF_INIT;
	struct outbox_cs cs;
	struct cset c;
	int rc;

	memset(&c, 0, sizeof(c));
	rc = store_get(im->store, key, 0, STORE_WHOLE, &obj);
	if (rc) {
		tbuf_release(&obj);
		return rc == -ENOENT ? 0 : rc;
	}
	rc = outbox_cs_decode(nk, key, obj.data, obj.len, &cs);
	tbuf_release(&obj);
	if (rc == -EBADMSG) {
		bad_object(im, nk, key, outbox_errmsg());
		return 0;
	}
	if (rc)
		return rc;
	crash_point("fetched");
	rc = mount_open(im);
	if (rc) {
		outbox_cs_release(&cs);
		return rc;
	}
	c.im = im;
	c.nk = nk;
	c.ni = ni;
	c.cs = &cs;
	c.pfd = -1;
	/* A 'started' row: an earlier attempt may have placed some files. */
	c.redo = node_row(im, "SELECT 1 FROM import WHERE node=?1 AND serial=?2 AND seq=?3", nk, NULL,
			  cs.seq);
	if (!c.redo && (rc = exec_tx(im, "INSERT INTO import(node, serial, seq, state, ack, changes,"
				     " applied) VALUES(?1, ?2, ?3, 'started', X'', ?4, 0)", nk->name,
				     nk->serial, (int64_t)cs.seq, (int64_t)cs.n, NULL)))
		goto out;
	if (c.redo)
		log_info("import: change set %" PRIu64 " of node '%s' was begun before: looking for"
			 " what is already placed", cs.seq, nk->name);
	c.r = calloc(cs.n ? cs.n : 1, sizeof(*c.r));
	c.res = calloc(cs.n ? cs.n : 1, sizeof(*c.res));
	c.have_res = calloc(cs.n ? cs.n : 1, 1);
	c.copy_reason = calloc(cs.n ? cs.n : 1, sizeof(*c.copy_reason));
	if (!c.r || !c.res || !c.have_res || !c.copy_reason) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < cs.n; i++)
		c.r[i].state = OUTBOX_REJECTED;
	rc = apply_changes(&c);
	if (rc) {
		node_error(im, nk->name, "change set %" PRIu64 " not applied yet: %s", cs.seq,
			   strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < cs.n; i++)
		if (!c.r[i].detail && !(c.r[i].detail = strdup(""))) {
			rc = -ENOMEM;
			goto out;
		}
	crash_point("placed");
	rc = commit_set(&c, &ack);
	if (rc)
		goto out;
	crash_point("committed");
	log_info("imported change set %" PRIu64 " of node '%s': %zu changes, %" PRIu64 " files (%"
		 PRIu64 " bytes), %" PRIu64 " rejected, %" PRIu64 " conflicts", cs.seq, nk->name, cs.n,
		 c.files, c.bytes, c.rejected, c.conflicts);
	rc = finish(im, nk->name, nk->serial, nk->dir, cs.seq, ack.data, ack.len);
	if (rc)
		node_error(im, nk->name, "cannot acknowledge change set %" PRIu64 ": %s (retried)",
			   cs.seq, strerror(-rc));
	rc = 0; /* applied: the rest is finished from the import row */
out:
	for (size_t i = 0; c.r && i < cs.n; i++) {
		free(c.r[i].detail);
		if (c.copy_reason)
			free(c.copy_reason[i]);
	}
	free(c.r);
	free(c.res);
	free(c.have_res);
	free(c.copy_reason);
	outbox_cs_release(&cs);
	tbuf_release(&ack);
	close(im->rootfd);
	im->rootfd = -1;
	return rc;
}

/* Finish the sets of this node that were applied but not acknowledged. */
static void finish_applied(struct import *im, const struct node_key *nk)
{
	uint64_t seqs[64];
	size_t n = 0;
	sqlite3_stmt *s;

	hlock(im);
	s = meta_stmt(im->meta, "SELECT seq FROM import WHERE node=?1 AND serial=?2 AND state='applied'"
				" ORDER BY seq LIMIT 64");
	if (s) {
		sqlite3_bind_text(s, 1, nk->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, nk->serial);
		while (n < 64 && sqlite3_step(s) == SQLITE_ROW)
			seqs[n++] = (uint64_t)sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	}
	hunlock(im);
	for (size_t i = 0; i < n; i++) {
		void *ack = NULL;
		size_t len = 0;

		hlock(im);
		s = meta_stmt(im->meta, "SELECT ack FROM import WHERE node=?1 AND serial=?2 AND seq=?3");
		if (s) {
			sqlite3_bind_text(s, 1, nk->name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, nk->serial);
			sqlite3_bind_int64(s, 3, (int64_t)seqs[i]);
			if (sqlite3_step(s) == SQLITE_ROW && (len = (size_t)sqlite3_column_bytes(s, 0)) &&
			    (ack = malloc(len)))
				memcpy(ack, sqlite3_column_blob(s, 0), len);
			sqlite3_reset(s);
		}
		hunlock(im);
		if (ack) {
			log_info("import: finishing change set %" PRIu64 " of node '%s' (applied before a"
				 " restart)", seqs[i], nk->name);
			if (finish(im, nk->name, nk->serial, nk->dir, seqs[i], ack, len))
				node_error(im, nk->name, "cannot acknowledge change set %" PRIu64 " (retried)",
					   seqs[i]);
		}
		free(ack);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Chunks of change sets that never committed (a node killed mid-upload):
 * a set's chunks are deleted once their number has not changed for outbox_grace
 * while no commit names the set (a node still uploading keeps adding
 * chunks); chunks of sets already applied go at once.
 */
static void sweep_chunks(struct import *im, const struct node_key *nk, uint64_t last_seq,
			 const struct keylist *cs)
{
	char prefix[OUTBOX_KEY_MAX], want[OUTBOX_KEY_MAX], set[OUTBOX_KEY_MAX];
	struct keylist l = { 0 };
	/* long by default: a node that stalls (its own store outage) must find its chunks when it goes on */
	int64_t grace = (int64_t)(im->o.grace_s > 0 ? im->o.grace_s : 3600) * NS;
	int64_t now = (int64_t)now_mono_ns();

	outbox_key_prefix(nk->dir, prefix);
	strncat(prefix, "chunks/", sizeof(prefix) - strlen(prefix) - 1);
	if (store_list(im->store, prefix, list_cb, &l) < 0)
		return;
	qsort(l.k, l.n, sizeof(*l.k), cmp_str);
	for (size_t i = 0, j; i < l.n; i = j) {
		const char *p = l.k[i] + strlen(prefix);
		uint64_t seq;
		char *end;
		size_t k;
		int committed = 0;

		seq = strtoull(p, &end, 16);
		outbox_key_chunks(nk->dir, seq, set);
		for (j = i + 1; j < l.n && !strncmp(l.k[j], set, strlen(set)); j++)
			;
		if (end == p || *end != '/')
			continue;
		if (seq <= last_seq) {
			for (k = i; k < j && !seq_applied_pending(im, nk, seq); k++)
				store_del(im->store, l.k[k]);
			continue;
		}
		outbox_key_cs(nk->dir, seq, want);
		for (k = 0; k < cs->n && !committed; k++)
			committed = !strcmp(cs->k[k], want);
		if (committed)
			continue;
		for (k = 0; k < im->nstale && strcmp(im->stale[k].key, set); k++)
			;
		if (k == im->nstale) {
			if (im->nstale == MAX_STALE)
				continue;
			snprintf(im->stale[k].key, OUTBOX_KEY_MAX, "%s", set);
			im->stale[k].count = 0;
			im->nstale++;
		}
		if (im->stale[k].count != j - i) { /* still growing */
			im->stale[k].count = j - i;
			im->stale[k].seen = now;
		}
		if (now - im->stale[k].seen >= grace) {
			log_info("import: deleting %zu chunks of change set %" PRIu64 " of node '%s':"
				 " no commit came for them", j - i, seq, nk->name);
			for (size_t x = i; x < j; x++)
				store_del(im->store, l.k[x]);
			im->stale[k] = im->stale[--im->nstale];
		}
	}
	keylist_free(&l);
}

/* Put the ack home wrote for an applied change set again. 0, -ENOENT (never applied here). */
static int ack_again(struct import *im, const struct node_key *nk, uint64_t seq)
{
	struct tbuf ack = TBUF_INIT;
	char key[OUTBOX_KEY_MAX];
	sqlite3_stmt *s;
	int rc = -ENOENT;

	hlock(im);
	s = meta_stmt(im->meta, "SELECT ack FROM import WHERE node=?1 AND serial=?2 AND seq=?3");
	if (s) {
		sqlite3_bind_text(s, 1, nk->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, nk->serial);
		sqlite3_bind_int64(s, 3, (int64_t)seq);
		if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_bytes(s, 0) > 0 &&
		    tbuf_append(&ack, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0)) == 0)
			rc = 0;
		sqlite3_reset(s);
	}
	hunlock(im);
	if (!rc) {
		outbox_key_ack(nk->dir, seq, key);
		rc = store_put(im->store, key, ack.data, ack.len);
	}
	tbuf_release(&ack);
	return rc;
}

static void import_node(struct import *im, const struct node_info *ni)
{
	struct node_key nk;
	struct keylist l = { 0 };
	char prefix[OUTBOX_KEY_MAX];
	uint64_t pending = 0, last_seq = ni->last_seq;
	int rc;

	hlock(im);
	rc = nodes_key(im->meta, &im->key, ni->name, &nk);
	hunlock(im);
	if (rc) {
		log_warn("import: no key for node '%s': %s", ni->name, strerror(-rc));
		return;
	}
	/* first what was applied before a restart: its commits then leave the listing */
	finish_applied(im, &nk);
	outbox_key_prefix(nk.dir, prefix);
	strncat(prefix, "cs/", sizeof(prefix) - strlen(prefix) - 1);
	rc = store_list(im->store, prefix, list_cb, &l);
	if (rc < 0) {
		node_error(im, ni->name, "cannot list the outbox: %s", strerror(-rc));
		goto out;
	}
	qsort(l.k, l.n, sizeof(*l.k), cmp_str); /* 16 hex digits: by seq */
	if (ni->revoked) {
		for (size_t i = 0; i < l.n; i++)
			pending++;
		if (pending != ni->pending)
			log_warn("import: node '%s' is revoked: %" PRIu64 " change sets kept aside in its"
				 " outbox, not applied", ni->name, pending);
		exec_tx(im, "UPDATE node SET pending=?2 WHERE name=?1", ni->name, (int64_t)pending, 0, 0,
			NULL);
		goto out;
	}
	for (size_t i = 0; i < l.n && !stopping(im); i++) {
		uint64_t seq;

		if (outbox_key_seq(l.k[i], &seq) || is_bad(im, &nk, l.k[i]))
			continue;
		if (seq <= last_seq) {
			if (seq_applied_pending(im, &nk, seq))
				continue;
			if (ack_again(im, &nk, seq) == 0) {
				/* the node put this set again (it died before it noted the
				 * first put): home applied it once; it gets the same answer */
				log_info("import: change set %" PRIu64 " of node '%s' came again: acknowledged"
					 " again, not applied again", seq, ni->name);
				store_del(im->store, l.k[i]);
				continue;
			}
			node_error(im, ni->name, "change set %" PRIu64 " was applied before (last %"
				   PRIu64 "): a replay, deleted", seq, last_seq);
			exec_tx(im, "UPDATE node SET rejected=rejected+1 WHERE name=?1", ni->name, 0, 0, 0,
				NULL);
			store_del(im->store, l.k[i]);
			continue;
		}
		rc = import_set(im, &nk, ni, l.k[i]);
		if (rc)
			break; /* retried next time, in order */
		hlock(im);
		{
			sqlite3_stmt *s = meta_stmt(im->meta, "SELECT last_seq FROM node WHERE name=?1");

			if (s) {
				sqlite3_bind_text(s, 1, ni->name, -1, SQLITE_STATIC);
				if (sqlite3_step(s) == SQLITE_ROW)
					last_seq = (uint64_t)sqlite3_column_int64(s, 0);
				sqlite3_reset(s);
			}
		}
		hunlock(im);
	}
	for (size_t i = 0; i < l.n; i++) {
		uint64_t seq;

		if (!outbox_key_seq(l.k[i], &seq) && seq > last_seq)
			pending++;
	}
	exec_tx(im, "UPDATE node SET pending=?2 WHERE name=?1", ni->name, (int64_t)pending, 0, 0, NULL);
	sweep_chunks(im, &nk, last_seq, &l);
out:
	keylist_free(&l);
	node_key_release(&nk);
}

static void import_pass(struct import *im)
{
	struct node_info *ni = NULL;
	size_t n = 0;
	int rc;

	reload_rules(im);
	hlock(im);
	rc = nodes_list(im->meta, &ni, &n);
	hunlock(im);
	if (rc)
		return;
	for (size_t i = 0; i < n && !stopping(im); i++)
		import_node(im, &ni[i]);
	free(ni);
}

static void *import_main(void *arg)
{
	struct import *im = arg;
	int interval = im->o.interval_s > 0 ? im->o.interval_s : 1;

	struct stat st;

	/* stat, not open: an open directory, even for an instant, makes umount busy */
	if (stat(im->mnt, &st)) {
		log_error("import: cannot reach the mount '%s': %s; nothing is imported", im->mnt,
			  strerror(errno));
		return NULL;
	}
	im->dev = st.st_dev;
	pthread_mutex_lock(&im->lock);
	while (!im->stop) {
		struct timespec ts;

		pthread_mutex_unlock(&im->lock);
		import_pass(im);
		pthread_mutex_lock(&im->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += interval;
		if (!im->stop)
			pthread_cond_timedwait(&im->cv, &im->lock, &ts);
	}
	pthread_mutex_unlock(&im->lock);
	return NULL;
}

int import_open(struct volume *vol, const struct volkey *key, const struct import_host *h,
		const char *mountpoint, const struct import_opts *o, struct import **out)
{
	struct import *im = calloc(1, sizeof(*im));
	struct store_opts so;
	char *url = NULL, err[512];
	int rc;

	*out = NULL;
	if (!im)
		return -ENOMEM;
	im->mnt = realpath(mountpoint, NULL);
	im->stale = calloc(MAX_STALE, sizeof(*im->stale));
	h->lock(h->arg);
	rc = meta_config_get(vol->meta, "store_url", &url);
	h->unlock(h->arg);
	memset(&so, 0, sizeof(so));
	so.max_retries = 2; /* a failed pass is retried whole */
	so.cancel = &im->cancel;
	if (!rc && (!im->mnt || !im->stale))
		rc = -ENOMEM;
	if (!rc && (rc = store_open(url, &so, &im->store, err, sizeof(err))))
		log_error("import: %s", err);
	free(url);
	if (rc) {
		free(im->mnt);
		free(im->stale);
		free(im);
		return rc;
	}
	im->vol = vol;
	im->meta = vol->meta;
	im->key = *key;
	im->h = *h;
	im->o = *o;
	im->rootfd = -1;
	pthread_mutex_init(&im->lock, NULL);
	pthread_cond_init(&im->cv, NULL);
	*out = im;
	return 0;
}

int import_start(struct import *im)
{
	int rc = pthread_create(&im->thread, NULL, import_main, im);

	if (rc)
		return -rc;
	im->started = 1;
	return 0;
}

void import_stop(struct import *im)
{
	if (!im)
		return;
	pthread_mutex_lock(&im->lock);
	im->stop = 1;
	__atomic_store_n(&im->cancel, 1, __ATOMIC_SEQ_CST); /* store calls return at once */
	pthread_cond_signal(&im->cv);
	pthread_mutex_unlock(&im->lock);
}

void import_close(struct import *im)
{
	if (!im)
		return;
	import_stop(im);
	if (im->started)
		pthread_join(im->thread, NULL);
	if (im->rootfd >= 0)
		close(im->rootfd);
	if (im->have_ps)
		policy_set_release(&im->ps);
	store_close(im->store);
	free(im->stale);
	free(im->mnt);
	pthread_mutex_destroy(&im->lock);
	pthread_cond_destroy(&im->cv);
	OPENSSL_cleanse(&im->key, sizeof(im->key));
	free(im);
}
