/*
 * cache.c - the cloud mount's local chunk and metadata cache (interface
 * and guarantees in cache.h): plaintext chunk files and sealed metadata
 * objects in a directory bounded by an LRU size limit, and recently used
 * chunks in memory, verified whenever they are read from disk.
 *
 * DESIGN
 * - Two in-memory structures under one mutex (c->lock): the index of the
 *   files in the cache directory (hash by relative key + LRU list, most
 *   recent first; c->bytes is their total) and the table of chunks in
 *   memory (hash by name; unreferenced ready chunks also sit on an LRU list
 *   that c->mem_limit bounds).
 * - A chunk in memory is LOADING, READY or FAILED. The first getter inserts
 *   it LOADING and loads it with no lock held (cache file, verified; else
 *   the fetch function, then a new cache file); every other getter of the
 *   same name takes a reference and waits on c->cv, so one load serves all.
 *   A failed load is unlinked from the table at once (the next get tries
 *   again) and freed by its last reference.
 * - Disk I/O never happens under c->lock except the unlink of evicted
 *   files. Files are written under tmp/ and renamed into place, so a
 *   reader never sees a partial file; a file evicted while being read is
 *   just a miss.
 * - Verification is the chunk's keyed name (codec_chunk_name) and length,
 *   checked every time a chunk file is read into memory: a file damaged
 *   while the mount runs is caught as surely as one damaged before.
 */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "log.h"
#include "snapshot.h"

enum { CH_LOADING, CH_READY, CH_FAILED };

/* A file in the cache directory. */
struct dent {
	char *key;   /* relative path, e.g. "chunks/ab/ab12..." */
	uint64_t size;
	int64_t mtime; /* only while rebuilding the index */
	int verified;  /* chunk content checked against its name since open */
	struct dent *hnext, *prev, *next;
};

/* A chunk in memory. pub must stay first: handles are &pub. */
/* Alignment of buffers, offsets and lengths for O_DIRECT cache writes. */
#define CACHE_DIO_ALIGN 4096

struct mchunk {
	struct cache_chunk pub;
	uint8_t *data;
	char name[CODEC_NAME_SIZE];
	int refs;  /* protected by c->lock */
	int state; /* protected by c->lock */
	int err;
	int in_lru;
	struct mchunk *hnext, *prev, *next;
};

#define MTAB_SIZE 1024

struct cache {
	char *dir;
	int dirfd, lockfd;
	uint64_t limit, mem_limit;
	const struct volkey *key;
	cache_fetch_fn fetch;
	void *fetch_arg;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	/* file index; protected by lock */
	struct dent **dtab;
	size_t dsize, dcount;
	struct dent *dhead, *dtail;
	uint64_t bytes;
	/* chunks in memory; protected by lock */
	struct mchunk *mtab[MTAB_SIZE];
	struct mchunk *mhead, *mtail; /* unreferenced READY chunks */
	uint64_t mem_bytes;
	uint64_t tmpseq;
	/* counters; protected by lock */
	uint64_t hits, misses, prefetched, corrupt, evicted;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static void chunk_key(const char *name, char *out, size_t len)
{
	snprintf(out, len, "chunks/%.2s/%s", name, name);
}

/* ---- file index (c->lock held) ---- */

static struct dent *dfind(struct cache *c, const char *key)
{
	for (struct dent *d = c->dtab[hash_str(key) & (c->dsize - 1)]; d; d = d->hnext)
		if (!strcmp(d->key, key))
			return d;
	return NULL;
}

static void lru_unlink(struct cache *c, struct dent *d)
{
	if (d->prev)
		d->prev->next = d->next;
	else
		c->dhead = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		c->dtail = d->prev;
	d->prev = d->next = NULL;
}

static void lru_push(struct cache *c, struct dent *d)
{
	d->prev = NULL;
	d->next = c->dhead;
	if (c->dhead)
		c->dhead->prev = d;
	c->dhead = d;
	if (!c->dtail)
		c->dtail = d;
}

static void dgrow(struct cache *c)
{
	size_t nsize = c->dsize * 2;
	struct dent **n = calloc(nsize, sizeof(*n));

	if (!n)
		return;
	for (size_t s = 0; s < c->dsize; s++) {
		struct dent *d = c->dtab[s], *next;

		for (; d; d = next) {
			size_t h = hash_str(d->key) & (nsize - 1);

			next = d->hnext;
			d->hnext = n[h];
			n[h] = d;
		}
	}
	free(c->dtab);
	c->dtab = n;
	c->dsize = nsize;
}

/* Add (or refresh) a file of the index as the most recently used. */
static struct dent *dadd(struct cache *c, const char *key, uint64_t size)
{
	struct dent *d = dfind(c, key);
	size_t h;

	if (d) {
		c->bytes -= d->size;
		d->size = size;
		c->bytes += size;
		lru_unlink(c, d);
		lru_push(c, d);
		return d;
	}
	d = calloc(1, sizeof(*d));
	if (!d || !(d->key = strdup(key))) {
		free(d);
		return NULL;
	}
	d->size = size;
	if (c->dcount + 1 > c->dsize)
		dgrow(c);
	h = hash_str(key) & (c->dsize - 1);
	d->hnext = c->dtab[h];
	c->dtab[h] = d;
	c->dcount++;
	c->bytes += size;
	lru_push(c, d);
	return d;
}

static void dremove(struct cache *c, struct dent *d)
{
	struct dent **p = &c->dtab[hash_str(d->key) & (c->dsize - 1)];

	while (*p && *p != d)
		p = &(*p)->hnext;
	if (*p)
		*p = d->hnext;
	lru_unlink(c, d);
	c->dcount--;
	c->bytes -= d->size;
	free(d->key);
	free(d);
}

/* Evict least recently used files until under the limit, sparing keep. */
static void devict(struct cache *c, const struct dent *keep)
{
	while (c->bytes > c->limit && c->dtail) {
		struct dent *d = c->dtail;

		if (d == keep) {
			if (!d->prev)
				break;
			d = d->prev;
		}
		if (unlinkat(c->dirfd, d->key, 0) && errno != ENOENT)
			log_warn("cannot remove cache file '%s/%s': %s", c->dir, d->key, strerror(errno));
		c->evicted++;
		dremove(c, d);
	}
}

/* ---- chunks in memory (c->lock held) ---- */

static struct mchunk **mslot(struct cache *c, const char *name)
{
	return &c->mtab[hash_str(name) & (MTAB_SIZE - 1)];
}

static struct mchunk *mfind(struct cache *c, const char *name)
{
	for (struct mchunk *m = *mslot(c, name); m; m = m->hnext)
		if (!strcmp(m->name, name))
			return m;
	return NULL;
}

static void mtab_remove(struct cache *c, struct mchunk *m)
{
	struct mchunk **p = mslot(c, m->name);

	while (*p && *p != m)
		p = &(*p)->hnext;
	if (*p)
		*p = m->hnext;
}

static void mlru_unlink(struct cache *c, struct mchunk *m)
{
	if (!m->in_lru)
		return;
	if (m->prev)
		m->prev->next = m->next;
	else
		c->mhead = m->next;
	if (m->next)
		m->next->prev = m->prev;
	else
		c->mtail = m->prev;
	m->prev = m->next = NULL;
	m->in_lru = 0;
}

static void mfree(struct mchunk *m)
{
	bigbuf_put(m->data); /* the fetch's buffer goes back to the pool; others are freed */
	free(m);
}

static void mevict(struct cache *c)
{
	while (c->mem_bytes > c->mem_limit && c->mtail) {
		struct mchunk *m = c->mtail;

		mlru_unlink(c, m);
		mtab_remove(c, m);
		c->mem_bytes -= m->pub.len;
		mfree(m);
	}
}

/* ---- disk I/O (no lock held) ---- */

/* Read a whole cache file of at most max bytes (max 0: any size). */
static int read_file(struct cache *c, const char *key, uint64_t max, struct tbuf *out)
{
	struct stat st;
	size_t done = 0;
	int fd = openat(c->dirfd, key, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		rc = -errno;
		goto out;
	}
	if (max && (uint64_t)st.st_size != max) {
		rc = -EBADMSG;
		goto out;
	}
	rc = tbuf_grow(out, (size_t)st.st_size);
	if (rc)
		goto out;
	while (done < (size_t)st.st_size) {
		ssize_t n = pread(fd, out->data + out->len + done, (size_t)st.st_size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EBADMSG;
			goto out;
		}
		done += (size_t)n;
	}
	out->len += done;
out:
	close(fd);
	return rc;
}

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Write a cache file's bytes. With fd in O_DIRECT (an aligned buffer), the
 * page-aligned bulk goes straight to the disk and only the tail through the
 * page cache: a cold read fills the cache at the cost of the disk's DMA, not
 * of a CPU copy of every byte into page-cache pages, which was the largest
 * single cost of a cold read (a quarter of the CPU time on this VM). A
 * file system that refuses the direct write gets a buffered one.
 */
static int write_direct(int fd, const void *data, size_t len)
{
	int fl = fcntl(fd, F_GETFL);
	size_t bulk = len & ~(size_t)(CACHE_DIO_ALIGN - 1), done = 0;

	if (fl >= 0 && (fl & O_DIRECT)) {
		while (done < bulk) {
			ssize_t n = write(fd, (const uint8_t *)data + done, bulk - done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break; /* refused: the rest goes buffered */
			done += (size_t)n;
			if ((size_t)n % CACHE_DIO_ALIGN)
				break; /* short and unaligned: likewise */
		}
		if (fcntl(fd, F_SETFL, fl & ~O_DIRECT))
			return -errno;
	}
	return write_all(fd, (const uint8_t *)data + done, len - done);
}

/* Write a cache file atomically and index it (evicting others if needed). */
static void store_file(struct cache *c, const char *key, const void *data, size_t len)
{
	char tmp[64], sub[16];
	uint64_t seq;
	int fd, rc;

	pthread_mutex_lock(&c->lock);
	seq = ++c->tmpseq;
	pthread_mutex_unlock(&c->lock);
	snprintf(tmp, sizeof(tmp), "tmp/%llu", (unsigned long long)seq);
	/* key is TOP/XX/NAME: make TOP/XX */
	snprintf(sub, sizeof(sub), "%.*s", (int)(strchr(key, '/') - key + 3), key);
	if (mkdirat(c->dirfd, sub, 0700) && errno != EEXIST) {
		rc = -errno;
		goto fail;
	}
	fd = -1;
	if (len >= CACHE_DIO_ALIGN && !((uintptr_t)data % CACHE_DIO_ALIGN))
		fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0600);
	if (fd < 0)
		fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = write_direct(fd, data, len);
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && renameat(c->dirfd, tmp, c->dirfd, key))
		rc = -errno;
	if (rc) {
		unlinkat(c->dirfd, tmp, 0);
		goto fail;
	}
	pthread_mutex_lock(&c->lock);
	devict(c, dadd(c, key, len));
	pthread_mutex_unlock(&c->lock);
	return;
fail:
	log_warn("cannot write cache file '%s/%s': %s", c->dir, key, strerror(-rc));
}

/* Load a cached chunk into out and verify it. 0, or -ENOENT (not cached, or damaged and dropped). */
static int load_chunk_file(struct cache *c, const char *name, uint32_t len, struct tbuf *out)
{
	char key[SNAP_KEY_MAX], check[CODEC_NAME_SIZE];
	struct dent *d;
	int rc;

	chunk_key(name, key, sizeof(key));
	pthread_mutex_lock(&c->lock);
	d = dfind(c, key);
	if (d) {
		lru_unlink(c, d);
		lru_push(c, d);
	}
	pthread_mutex_unlock(&c->lock);
	if (!d)
		return -ENOENT;
	rc = len ? read_file(c, key, len, out) : 0;
	if (rc == -ENOENT) {
		/* evicted meanwhile */
		pthread_mutex_lock(&c->lock);
		if ((d = dfind(c, key)))
			dremove(c, d);
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	if (!rc && (codec_chunk_name(c->key, out->data, out->len, check) || strcmp(check, name)))
		rc = -EBADMSG;
	if (!rc) {
		pthread_mutex_lock(&c->lock);
		if ((d = dfind(c, key)))
			d->verified = 1;
		pthread_mutex_unlock(&c->lock);
	}
	if (rc) {
		log_warn("cache file '%s/%s' is damaged (%s); fetching the chunk again", c->dir, key,
			 rc == -EBADMSG ? "content does not match its name" : strerror(-rc));
		tbuf_reset(out);
		unlinkat(c->dirfd, key, 0);
		pthread_mutex_lock(&c->lock);
		c->corrupt++;
		if ((d = dfind(c, key)))
			dremove(c, d);
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	return 0;
}

/* ---- chunks ---- */

int cache_chunk_get(struct cache *c, const char *name, uint32_t len, unsigned flags,
		    const struct cache_chunk **out)
{
	struct tbuf b = TBUF_INIT;
	struct mchunk *m;
	int rc, hit = 0;

	pthread_mutex_lock(&c->lock);
	m = mfind(c, name);
	if (m) {
		m->refs++;
		mlru_unlink(c, m);
		while (m->state == CH_LOADING)
			pthread_cond_wait(&c->cv, &c->lock);
		if (m->state == CH_READY) {
			if (!(flags & CACHE_PREFETCH))
				c->hits++;
			pthread_mutex_unlock(&c->lock);
			*out = &m->pub;
			return 0;
		}
		rc = m->err;
		if (--m->refs == 0)
			mfree(m);
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	if (flags & CACHE_MEM_ONLY) {
		pthread_mutex_unlock(&c->lock);
		return -EAGAIN;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		pthread_mutex_unlock(&c->lock);
		return -ENOMEM;
	}
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->refs = 1;
	m->state = CH_LOADING;
	m->hnext = *mslot(c, name);
	*mslot(c, name) = m;
	pthread_mutex_unlock(&c->lock);

	rc = load_chunk_file(c, name, len, &b);
	if (!rc) {
		hit = 1;
	} else {
		rc = c->fetch(c->fetch_arg, name, len, &b);
		if (!rc && b.len != len)
			rc = -EIO;
	}

	pthread_mutex_lock(&c->lock);
	if (!rc) {
		m->data = tbuf_detach(&b, &m->pub.len);
		m->pub.data = m->data;
		m->state = CH_READY;
		c->mem_bytes += m->pub.len;
		if (flags & CACHE_PREFETCH)
			c->prefetched += !hit;
		else if (hit)
			c->hits++;
		else
			c->misses++;
		*out = &m->pub;
	} else {
		m->state = CH_FAILED;
		m->err = rc;
		mtab_remove(c, m);
		if (--m->refs == 0)
			mfree(m);
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
	tbuf_release(&b);
	if (!rc && !hit) {
		/* Readers waiting for the chunk have it already; the cache file
		 * is written after, from the memory copy that our reference
		 * (the caller's, returned in *out) keeps alive. */
		char key[SNAP_KEY_MAX];
		struct dent *d;

		chunk_key(name, key, sizeof(key));
		store_file(c, key, m->data, m->pub.len);
		pthread_mutex_lock(&c->lock);
		if ((d = dfind(c, key)))
			d->verified = 1; /* the fetch verified it */
		pthread_mutex_unlock(&c->lock);
	}
	return rc;
}

int cache_chunk_pread(struct cache *c, const char *name, uint32_t len, uint64_t off, void *buf,
		      size_t n)
{
	char key[SNAP_KEY_MAX];
	struct mchunk *m;
	struct dent *d;
	ssize_t got;
	int fd;

	if (off > len || n > len - off)
		return -EINVAL;
	chunk_key(name, key, sizeof(key));
	pthread_mutex_lock(&c->lock);
	m = mfind(c, name);
	if (m && m->state == CH_READY) {
		memcpy(buf, m->data + off, n);
		c->hits++;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	d = dfind(c, key);
	if (!d || !d->verified || d->size != len) {
		pthread_mutex_unlock(&c->lock);
		return -EAGAIN;
	}
	lru_unlink(c, d);
	lru_push(c, d);
	pthread_mutex_unlock(&c->lock);
	fd = openat(c->dirfd, key, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -EAGAIN; /* evicted meanwhile */
	got = pread(fd, buf, n, (off_t)off);
	close(fd);
	if (got != (ssize_t)n)
		return -EAGAIN;
	pthread_mutex_lock(&c->lock);
	c->hits++;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void cache_chunk_put(struct cache *c, const struct cache_chunk *ch)
{
	struct mchunk *m = (struct mchunk *)ch;

	if (!ch)
		return;
	pthread_mutex_lock(&c->lock);
	if (--m->refs == 0) {
		m->in_lru = 1;
		m->prev = NULL;
		m->next = c->mhead;
		if (c->mhead)
			c->mhead->prev = m;
		c->mhead = m;
		if (!c->mtail)
			c->mtail = m;
		mevict(c);
	}
	pthread_mutex_unlock(&c->lock);
}

int cache_chunk_present(struct cache *c, const char *name)
{
	char key[SNAP_KEY_MAX];
	int present;

	chunk_key(name, key, sizeof(key));
	pthread_mutex_lock(&c->lock);
	present = mfind(c, name) || dfind(c, key);
	pthread_mutex_unlock(&c->lock);
	return present;
}

/* ---- metadata objects ---- */

static int obj_key_ok(const char *key)
{
	/* TOP/XX/NAME with TOP one of ours and nothing that climbs out */
	return (!strncmp(key, "dirs/", 5) || !strncmp(key, "files/", 6)) && !strstr(key, "..") &&
	       strlen(key) < SNAP_KEY_MAX;
}

int cache_obj_load(struct cache *c, const char *key, struct tbuf *out)
{
	struct dent *d;
	int rc;

	if (!obj_key_ok(key))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	d = dfind(c, key);
	if (d) {
		lru_unlink(c, d);
		lru_push(c, d);
	}
	pthread_mutex_unlock(&c->lock);
	if (!d)
		return -ENOENT;
	rc = read_file(c, key, 0, out);
	if (rc == -ENOENT) {
		pthread_mutex_lock(&c->lock);
		if ((d = dfind(c, key)))
			dremove(c, d);
		pthread_mutex_unlock(&c->lock);
	}
	return rc;
}

void cache_obj_store(struct cache *c, const char *key, const void *data, size_t len)
{
	if (obj_key_ok(key))
		store_file(c, key, data, len);
}

void cache_obj_drop(struct cache *c, const char *key)
{
	struct dent *d;

	if (!obj_key_ok(key))
		return;
	unlinkat(c->dirfd, key, 0);
	pthread_mutex_lock(&c->lock);
	c->corrupt++;
	if ((d = dfind(c, key)))
		dremove(c, d);
	pthread_mutex_unlock(&c->lock);
}

/* ---- open, index rebuild, close ---- */

static int cmp_dent_mtime(const void *a, const void *b)
{
	const struct dent *x = *(struct dent *const *)a, *y = *(struct dent *const *)b;

	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Collect TOP/XX/NAME files into a growable array. */
static int scan_top(struct cache *c, const char *top, struct dent ***arr, size_t *n, size_t *cap)
{
	DIR *d1;
	struct dirent *e1;
	int fd = openat(c->dirfd, top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d1 = fdopendir(fd);
	if (!d1) {
		close(fd);
		return -errno;
	}
	while ((e1 = readdir(d1))) {
		char sub[64];
		DIR *d2;
		struct dirent *e2;
		int fd2;

		if (e1->d_name[0] == '.' || strlen(e1->d_name) != 2)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", top, e1->d_name);
		fd2 = openat(c->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd2 < 0 || !(d2 = fdopendir(fd2))) {
			if (fd2 >= 0)
				close(fd2);
			continue;
		}
		while ((e2 = readdir(d2))) {
			struct stat st;
			struct dent *d;

			if (e2->d_name[0] == '.' || fstatat(fd2, e2->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
			    !S_ISREG(st.st_mode) || strlen(e2->d_name) != CODEC_NAME_LEN)
				continue;
			if (*n == *cap) {
				size_t ncap = *cap ? *cap * 2 : 1024;
				struct dent **na = realloc(*arr, ncap * sizeof(*na));

				if (!na)
					break;
				*arr = na;
				*cap = ncap;
			}
			d = calloc(1, sizeof(*d));
			if (!d || asprintf(&d->key, "%s/%s", sub, e2->d_name) < 0) {
				free(d);
				break;
			}
			d->size = (uint64_t)st.st_size;
			d->mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
			(*arr)[(*n)++] = d;
		}
		closedir(d2);
	}
	closedir(d1);
	return 0;
}

static int rebuild_index(struct cache *c)
{
	static const char *const tops[] = { "chunks", "dirs", "files" };
	struct dent **arr = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	for (size_t t = 0; t < 3 && !rc; t++)
		rc = scan_top(c, tops[t], &arr, &n, &cap);
	if (n)
		qsort(arr, n, sizeof(*arr), cmp_dent_mtime);
	for (size_t k = 0; k < n; k++) {
		if (!rc && !dadd(c, arr[k]->key, arr[k]->size))
			rc = -ENOMEM;
		free(arr[k]->key);
		free(arr[k]);
	}
	free(arr);
	if (!rc)
		devict(c, NULL);
	return rc;
}

static void clear_tmp(struct cache *c)
{
	int fd = openat(c->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(fd, e->d_name, 0);
	closedir(d);
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

int cache_open(const struct cache_opts *o, struct cache **out, char *err, size_t errlen)
{
	static const char *const subdirs[] = { "chunks", "dirs", "files", "tmp" };
	struct cache *c = calloc(1, sizeof(*c));
	char pid[32];
	int rc;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->dirfd = c->lockfd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->limit = o->limit;
	c->mem_limit = o->mem_limit;
	c->key = o->key;
	c->fetch = o->fetch;
	c->fetch_arg = o->fetch_arg;
	c->dsize = 1024;
	c->dtab = calloc(c->dsize, sizeof(*c->dtab));
	c->dir = strdup(o->dir);
	if (!c->dtab || !c->dir) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc = mkdir_p(o->dir);
	if (!rc) {
		c->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (c->dirfd < 0)
			rc = -errno;
	}
	if (rc) {
		snprintf(err, errlen, "cannot use cache directory '%s': %s", o->dir, strerror(-rc));
		goto fail;
	}
	c->lockfd = openat(c->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->lockfd < 0 || flock(c->lockfd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(err, errlen, rc == -EBUSY ? "cache directory '%s' is in use by another mount"
						   : "cannot lock cache directory '%s': %s",
			 o->dir, strerror(-rc));
		goto fail;
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(c->lockfd, 0) || pwrite(c->lockfd, pid, strlen(pid), 0) < 0)
		log_warn("cannot write '%s/lock': %s", o->dir, strerror(errno));
	for (size_t k = 0; k < 4; k++)
		if (mkdirat(c->dirfd, subdirs[k], 0700) && errno != EEXIST) {
			rc = -errno;
			snprintf(err, errlen, "cannot create '%s/%s': %s", o->dir, subdirs[k], strerror(errno));
			goto fail;
		}
	clear_tmp(c);
	rc = rebuild_index(c);
	if (rc) {
		snprintf(err, errlen, "cannot index cache directory '%s': %s", o->dir, strerror(-rc));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	cache_close(c);
	return rc;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	for (size_t s = 0; c->dtab && s < c->dsize; s++)
		while (c->dtab[s])
			dremove(c, c->dtab[s]);
	for (size_t s = 0; s < MTAB_SIZE; s++)
		while (c->mtab[s]) {
			struct mchunk *m = c->mtab[s];

			c->mtab[s] = m->hnext;
			mfree(m);
		}
	free(c->dtab);
	if (c->lockfd >= 0)
		close(c->lockfd); /* releases the flock */
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

void cache_get_stats(struct cache *c, struct cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	out->bytes = c->bytes;
	out->limit = c->limit;
	out->files = c->dcount;
	out->mem_bytes = c->mem_bytes;
	out->hits = c->hits;
	out->misses = c->misses;
	out->prefetched = c->prefetched;
	out->corrupt = c->corrupt;
	out->evicted = c->evicted;
	pthread_mutex_unlock(&c->lock);
}

const char *cache_dir(const struct cache *c)
{
	return c->dir;
}
