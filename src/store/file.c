/*
 * file.c - the embedded object store: file:///DIR keeps each object as a
 * file, key "a/b/c" at DIR/a/b/c. A put writes a temporary file in DIR/.tmp,
 * fsyncs it, renames it over the target and fsyncs the directory, so an
 * object is either the old or the new content after a crash, never a torn
 * mix. Listing walks the tree in the same order S3 uses (byte order of the
 * full key: a directory "a" sorts as "a/"), streaming without collecting the
 * whole namespace. A key whose path collides with another's directory
 * ("a" and "a/b") cannot be stored here and fails with -ENOTDIR or -EISDIR.
 *
 * The store follows its path, not the directory it first opened: when DIR is
 * removed and made again (or replaced, or its temporary area is gone), the
 * next call that fails, and every listing, opens DIR anew, so the store
 * works again as soon as the directory is back, without a remount.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_int.h"

#define TMP_DIR ".tmp"

#define MAX_RETIRED 16

struct file_store {
	struct store base;
	int root;       /* directory fd of DIR; replaced by refresh(), read atomically */
	char *dir;
	pthread_mutex_t lock;
	int retired[MAX_RETIRED]; /* earlier roots, closed at close; protected by lock */
	int nretired;
};

static struct file_store *fs_of(struct store *s)
{
	return (struct file_store *)s;
}

static int root_of(struct file_store *f)
{
	return __atomic_load_n(&f->root, __ATOMIC_ACQUIRE);
}

/*
 * Follow DIR's path again. 1 when something changed (a new directory is
 * open, or the temporary area was made again): the failed call is worth
 * retrying; 0 when nothing did; a negative errno when DIR is not there.
 */
static int refresh(struct file_store *f)
{
	struct stat a, b;
	int fd, changed = 0, saved = errno; /* callers report the failed call's errno */

	pthread_mutex_lock(&f->lock);
	/* gone: fail until it is back */
	if (stat(f->dir, &b)) {
		changed = -errno;
		goto out;
	}
	if (!S_ISDIR(b.st_mode)) {
		changed = -ENOTDIR;
		goto out;
	}
	if (fstat(f->root, &a) || a.st_nlink == 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			goto out;
		/* threads may still use the old descriptor: close it at the end */
		if (f->nretired == MAX_RETIRED) {
			close(f->retired[0]);
			memmove(f->retired, f->retired + 1, (MAX_RETIRED - 1) * sizeof(int));
			f->nretired--;
		}
		f->retired[f->nretired++] = f->root;
		__atomic_store_n(&f->root, fd, __ATOMIC_RELEASE);
		changed = 1;
	}
	if (mkdirat(f->root, TMP_DIR, 0700) == 0)
		changed = 1;
out:
	pthread_mutex_unlock(&f->lock);
	errno = saved;
	return changed;
}

static int fail(int rc, const char *what, const struct file_store *f, const char *key)
{
	store_set_errmsg("file: cannot %s '%s' in '%s': %s", what, key, f->dir, strerror(-rc));
	return rc;
}

/* Keys may not live in the temporary area. */
static int check_file_key(const struct file_store *f, const char *key)
{
	size_t n = strlen(TMP_DIR);

	if (!strncmp(key, TMP_DIR, n) && (key[n] == '/' || !key[n])) {
		store_set_errmsg("file: key '%s' is reserved in '%s'", key, f->dir);
		return -EINVAL;
	}
	return 0;
}

static int fsync_dirat(int root, const char *path)
{
	int fd = openat(root, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * Create the directories leading to key (like mkdir -p), fsyncing the parent
 * of each one created so the new entry is durable.
 */
static int make_parents(int root, const char *key)
{
	char path[600];
	int rc = 0;

	snprintf(path, sizeof(path), "%s", key);
	for (char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
		char *parent_end;

		*p = '\0';
		if (mkdirat(root, path, 0755) == 0) {
			parent_end = strrchr(path, '/');
			if (parent_end) {
				*parent_end = '\0';
				rc = fsync_dirat(root, path);
				*parent_end = '/';
			} else {
				rc = fsync_dirat(root, ".");
			}
		} else if (errno != EEXIST) {
			rc = -errno;
		}
		*p = '/';
		if (rc)
			break;
	}
	return rc;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int put_once(struct file_store *f, const char *key, const void *data, size_t len)
{
	char tmp[4200], parent[600], *slash;
	int fd = -1, rc, n, root = root_of(f);

	n = snprintf(tmp, sizeof(tmp), "%s/" TMP_DIR "/put-XXXXXX", f->dir);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return fail(-ENAMETOOLONG, "write", f, key);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		tmp[0] = '\0';
		goto out;
	}
	rc = write_all(fd, data, len);
	if (!rc && fsync(fd))
		rc = -errno;
	if (rc)
		goto out;
	/* A concurrent del may prune an emptied parent: retry a few times. */
	for (int tries = 0; tries < 5; tries++) {
		rc = make_parents(root, key);
		if (rc)
			goto out;
		if (renameat(AT_FDCWD, tmp, root, key) == 0) {
			rc = 0;
			break;
		}
		rc = -errno;
		if (rc != -ENOENT)
			goto out;
	}
	if (rc)
		goto out;
	tmp[0] = '\0';
	snprintf(parent, sizeof(parent), "%s", key);
	slash = strrchr(parent, '/');
	if (slash)
		*slash = '\0';
	rc = fsync_dirat(root, slash ? parent : ".");
out:
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlink(tmp);
	return rc;
}

static int file_put(struct store *s, const char *key, const void *data, size_t len)
{
	struct file_store *f = fs_of(s);
	int rc = check_file_key(f, key);

	if (rc)
		return rc;
	rc = put_once(f, key, data, len);
	if (rc && refresh(f) == 1)
		rc = put_once(f, key, data, len);
	return rc ? fail(rc, "write", f, key) : 0;
}

static int file_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		    struct tbuf *out)
{
	struct file_store *f = fs_of(s);
	struct stat st;
	uint64_t end;
	int fd, rc = 0;

	fd = openat(root_of(f), key, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && refresh(f) == 1)
		fd = openat(root_of(f), key, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOTDIR || errno == EISDIR ? -ENOENT : -errno;
		goto out;
	}
	if (fstat(fd, &st)) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -ENOENT;
		goto out;
	}
	if (off >= (uint64_t)st.st_size)
		goto out;
	end = len == STORE_WHOLE || len > (uint64_t)st.st_size - off ? (uint64_t)st.st_size
								    : off + len;
	rc = tbuf_grow(out, (size_t)(end - off));
	while (!rc && off < end) {
		ssize_t n = pread(fd, out->data + out->len, (size_t)(end - off), (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		else if (n == 0)
			break; /* truncated under us: return what exists */
		else {
			out->len += (size_t)n;
			off += (uint64_t)n;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	return rc ? fail(rc, "read", f, key) : 0;
}

static int file_head(struct store *s, const char *key, uint64_t *size_out)
{
	struct file_store *f = fs_of(s);
	struct stat st;

	if (fstatat(root_of(f), key, &st, 0) && (refresh(f) != 1 || fstatat(root_of(f), key, &st, 0)))
		return fail(errno == ENOTDIR ? -ENOENT : -errno, "stat", f, key);
	if (!S_ISREG(st.st_mode))
		return fail(-ENOENT, "stat", f, key);
	if (size_out)
		*size_out = (uint64_t)st.st_size;
	return 0;
}

/* Remove now-empty parent directories of key, best effort. */
static void prune_parents(int root, const char *key)
{
	char path[600], *slash;

	snprintf(path, sizeof(path), "%s", key);
	while ((slash = strrchr(path, '/'))) {
		*slash = '\0';
		if (unlinkat(root, path, AT_REMOVEDIR))
			break;
	}
}

static int file_del(struct store *s, const char *key)
{
	struct file_store *f = fs_of(s);
	int rc;

	rc = check_file_key(f, key);
	if (rc)
		return rc;
	if (unlinkat(root_of(f), key, 0)) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return fail(-errno, "delete", f, key);
	}
	prune_parents(root_of(f), key);
	return 0;
}

struct list_ent {
	char *name;
	unsigned char is_dir;
};

/* Byte order of the full key: a directory "a" compares as "a/". */
static int ent_cmp(const void *a, const void *b)
{
	const struct list_ent *x = a, *y = b;
	const unsigned char *p = (const unsigned char *)x->name, *q = (const unsigned char *)y->name;

	while (*p && *p == *q)
		p++, q++;
	return (int)(*p ? *p : x->is_dir ? '/' : 0) - (int)(*q ? *q : y->is_dir ? '/' : 0);
}

struct list_walk {
	struct file_store *f;
	const char *prefix;
	size_t plen;
	store_list_cb cb;
	void *arg;
	int walk_err;   /* set when the walk itself failed, not the callback */
};

/*
 * Can a key starting with path (a directory when is_dir) match the prefix?
 * Only when one is a prefix of the other.
 */
static int may_match(const struct list_walk *w, const char *path, int is_dir)
{
	size_t n = strlen(path);

	if (n >= w->plen)
		return !strncmp(path, w->prefix, w->plen);
	if (!is_dir)
		return 0;
	if (strncmp(path, w->prefix, n))
		return 0;
	return w->prefix[n] == '/';
}

/* List directory rel ("" for the root) in key order. */
static int walk(struct list_walk *w, const char *rel)
{
	struct list_ent *ents = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = NULL;
	int fd, rc = 0;

	fd = openat(root_of(w->f), *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT ? 0 : -errno; /* pruned by a concurrent del */
		w->walk_err = rc;
		goto out;
	}
	d = fdopendir(fd);
	if (!d) {
		rc = w->walk_err = -errno;
		close(fd);
		goto out;
	}
	while ((de = readdir(d))) {
		unsigned char is_dir;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!*rel && !strcmp(de->d_name, TMP_DIR))
			continue;
		is_dir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;

			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
				continue;
			is_dir = S_ISDIR(st.st_mode);
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct list_ent *ne = realloc(ents, ncap * sizeof(*ents));

			if (!ne) {
				rc = w->walk_err = -ENOMEM;
				goto out;
			}
			ents = ne;
			cap = ncap;
		}
		ents[n].name = strdup(de->d_name);
		if (!ents[n].name) {
			rc = w->walk_err = -ENOMEM;
			goto out;
		}
		ents[n++].is_dir = is_dir;
	}
	if (n)
		qsort(ents, n, sizeof(*ents), ent_cmp);
	for (size_t i = 0; i < n && !rc; i++) {
		char path[600];
		int len = snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "",
				   ents[i].name);

		if (len < 0 || (size_t)len >= sizeof(path) ||
		    !may_match(w, path, ents[i].is_dir))
			continue;
		if (ents[i].is_dir) {
			rc = walk(w, path);
		} else {
			struct stat st;

			if (fstatat(root_of(w->f), path, &st, 0))
				continue; /* deleted meanwhile */
			rc = w->cb(w->arg, path, (uint64_t)st.st_size);
		}
	}
out:
	for (size_t i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
	if (d)
		closedir(d);
	return rc;
}

static int file_list(struct store *s, const char *prefix, store_list_cb cb, void *arg)
{
	struct list_walk w = { fs_of(s), prefix, strlen(prefix), cb, arg, 0 };
	int rc;

	/* a removed directory would list as empty: look at the path first */
	rc = refresh(w.f);
	if (rc < 0) {
		store_set_errmsg("file: cannot list '%s' in '%s': %s", prefix, w.f->dir, strerror(-rc));
		return rc;
	}
	rc = walk(&w, "");

	if (w.walk_err)
		store_set_errmsg("file: cannot list '%s' in '%s': %s", prefix, w.f->dir,
				 strerror(-rc));
	return rc;
}

static void file_close(struct store *s)
{
	struct file_store *f = fs_of(s);

	if (f->root >= 0)
		close(f->root);
	for (int k = 0; k < f->nretired; k++)
		close(f->retired[k]);
	pthread_mutex_destroy(&f->lock);
	free(f->dir);
	free(f->base.url);
	free(f);
}

static const struct store_ops file_ops = {
	.scheme = "file",
	.put = file_put,
	.get = file_get,
	.head = file_head,
	.list = file_list,
	.del = file_del,
	.close = file_close,
};

int store_file_open(const char *rest, const struct store_opts *o, struct store **out,
		    char *err, size_t errlen)
{
	struct file_store *f;
	int rc = -ENOMEM;

	if (rest[0] != '/') {
		snprintf(err, errlen, "file store URL must be file:///ABSOLUTE/DIR, not 'file://%s'",
			 rest);
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		goto fail;
	f->root = -1;
	pthread_mutex_init(&f->lock, NULL);
	f->base.ops = &file_ops;
	f->dir = strdup(rest);
	if (asprintf(&f->base.url, "file://%s", rest) < 0)
		f->base.url = NULL;
	if (!f->dir || !f->base.url)
		goto fail;
	/* Strip trailing slashes, keep "/" itself. */
	for (size_t n = strlen(f->dir); n > 1 && f->dir[n - 1] == '/'; n--)
		f->dir[n - 1] = '\0';
	if (mkdir(f->dir, 0755) && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "cannot create store directory '%s': %s", f->dir,
			 strerror(errno));
		goto fail;
	}
	f->root = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->root < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open store directory '%s': %s", f->dir,
			 strerror(errno));
		goto fail;
	}
	if (mkdirat(f->root, TMP_DIR, 0700) && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "cannot create '%s/" TMP_DIR "': %s", f->dir,
			 strerror(errno));
		goto fail;
	}
	*out = &f->base;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (f)
		file_close(&f->base);
	return rc;
}
