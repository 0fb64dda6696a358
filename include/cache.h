/*
 * cache.h - the cloud mount's local cache: file chunks as plaintext files
 * named by their chunk name, and the sealed metadata objects (directory
 * listings, manifests) as fetched, in one directory with a size limit and
 * LRU eviction, plus a bounded set of recently used chunks in memory.
 *
 * Layout of the cache directory (created if missing):
 *   chunks/XX/NAME   a chunk's plaintext; NAME = HMAC(naming key, plaintext)
 *   dirs/XX/NAME     a directory object, sealed, exactly as in the store
 *   files/XX/NAME    a manifest, sealed, exactly as in the store
 *   lock             flock'd by the mount using the cache (one at a time)
 * Files are written to a temporary name and renamed into place, so a crash
 * leaves whole files or none. The LRU index lives in memory and is rebuilt
 * from the directory at open (oldest modification first), so the cache and
 * its limit survive remounts.
 *
 * What callers may rely on: a chunk handed out by cache_chunk_get() has
 * been verified since it was last read from disk or the store (its HMAC is
 * its name and its length the expected one): a damaged cache file is
 * logged, removed and fetched again, never served. Metadata objects are not
 * checked here: their decoders (snapshot.h) authenticate them, and callers
 * drop a cached copy that fails with cache_obj_drop().
 *
 * All functions are thread safe. Concurrent gets of one chunk share one
 * load (disk or fetch); different chunks load in parallel.
 */
#ifndef TIERFS_CACHE_H
#define TIERFS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "util.h"

struct cache;

/*
 * Fetch a chunk from the store: append its verified plaintext (exactly len
 * bytes) to out. Called without any cache lock held, from any thread.
 * 0 or a negative errno (-EIO for a damaged object).
 */
typedef int (*cache_fetch_fn)(void *arg, const char *name, uint32_t len, struct tbuf *out);

struct cache_opts {
	const char *dir;       /* the cache directory */
	uint64_t limit;        /* bytes on disk before LRU eviction */
	uint64_t mem_limit;    /* bytes of unreferenced chunks kept in memory */
	const struct volkey *key; /* for the name check; must outlive the cache */
	cache_fetch_fn fetch;
	void *fetch_arg;
};

/*
 * Open (create) the cache directory, take its lock and index what it
 * holds. -EBUSY if another process holds the lock; other errors of mkdir
 * and open. A one-line message goes to err.
 */
int cache_open(const struct cache_opts *o, struct cache **out, char *err, size_t errlen);
/* Release everything; no chunk may still be referenced. NULL is fine. */
void cache_close(struct cache *c);

/* A referenced chunk: data stays valid until cache_chunk_put(). */
struct cache_chunk {
	const uint8_t *data;
	size_t len;
};

enum cache_get_flags {
	CACHE_PREFETCH = 1 << 0, /* a readahead: not counted as a hit or miss */
	CACHE_MEM_ONLY = 1 << 1, /* only a chunk in memory or being fetched; else -EAGAIN */
};

/*
 * Get chunk name (len bytes of plaintext): from memory, else from its cache
 * file (verified), else through the fetch function (then written to the
 * cache). One reference per successful get; release it with
 * cache_chunk_put(). 0, or the fetch function's error, -ENOMEM; with
 * CACHE_MEM_ONLY, -EAGAIN when the chunk is neither in memory nor being
 * fetched (nothing is loaded then).
 */
int cache_chunk_get(struct cache *c, const char *name, uint32_t len, unsigned flags,
		    const struct cache_chunk **out);
void cache_chunk_put(struct cache *c, const struct cache_chunk *ch);

/*
 * Copy n bytes at off of a chunk straight from memory or from its cache
 * file, when that file was verified against the chunk's name since the
 * cache was opened (by cache_chunk_get): small random reads then cost a
 * pread, not a 4 MiB load and hash. -EAGAIN when the chunk must go
 * through cache_chunk_get() first. Counts a hit.
 */
int cache_chunk_pread(struct cache *c, const char *name, uint32_t len, uint64_t off, void *buf,
		      size_t n);
/* Is the chunk in memory, being loaded, or on disk? (no I/O) */
int cache_chunk_present(struct cache *c, const char *name);

/*
 * Metadata objects, by their store key ("dirs/XX/NAME", "files/XX/NAME").
 * load appends the cached bytes to out (-ENOENT when not cached); store
 * writes them (best effort: failures are logged, not returned); drop
 * removes a copy its decoder rejected.
 */
int cache_obj_load(struct cache *c, const char *key, struct tbuf *out);
void cache_obj_store(struct cache *c, const char *key, const void *data, size_t len);
void cache_obj_drop(struct cache *c, const char *key);

struct cache_stats {
	uint64_t bytes, limit;  /* on disk, counted by content length */
	uint64_t files;
	uint64_t mem_bytes;     /* chunks held in memory */
	uint64_t hits, misses;  /* demand gets since open: served locally / fetched */
	uint64_t prefetched;    /* chunks fetched by readahead */
	uint64_t corrupt;       /* damaged cache files found (and dropped) */
	uint64_t evicted;       /* files removed by the size limit */
};
void cache_get_stats(struct cache *c, struct cache_stats *out);
const char *cache_dir(const struct cache *c);

#endif
