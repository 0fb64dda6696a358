/*
 * util.h - small shared helpers: a growable byte buffer, time, parsing.
 */
#ifndef TIERFS_UTIL_H
#define TIERFS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * A growable byte buffer. Zero-initialise (TBUF_INIT) before use;
 * tbuf_release() frees the memory and resets it to empty. The buffer owns
 * data; tbuf_detach() hands ownership to the caller.
 */
struct tbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
#define TBUF_INIT { NULL, 0, 0 }

/* Make room for at least extra more bytes. 0 or -ENOMEM. */
int tbuf_grow(struct tbuf *b, size_t extra);
/* Append len bytes. 0 or -ENOMEM. */
int tbuf_append(struct tbuf *b, const void *data, size_t len);
void tbuf_reset(struct tbuf *b);
void tbuf_release(struct tbuf *b);
/* Return the data (caller frees) and leave b empty. */
uint8_t *tbuf_detach(struct tbuf *b, size_t *len_out);

/*
 * Chunk-sized buffers, page-aligned (O_DIRECT), from a small free list
 * (at most BIGBUF_KEEP kept). A cold read of a cloud file moves every chunk
 * through two fresh buffers; from malloc, each was a new mapping, faulted in
 * and zeroed page by page (170,000 page faults per GiB read on this VM).
 * bigbuf_get() returns a buffer of BIGBUF_SIZE bytes (NULL on ENOMEM) that
 * free() may also release; bigbuf_put() keeps it for the next caller, and
 * frees any pointer from malloc that could not serve as one.
 */
#define BIGBUF_SIZE ((size_t)(4u << 20) + 65536)
#define BIGBUF_KEEP 16
void *bigbuf_get(void);
void bigbuf_put(void *p);
/* Point b (empty, unallocated) at a page-aligned buffer of at least need
 * bytes: a pooled bigbuf when need is over half of BIGBUF_SIZE (a full-size
 * chunk), else one of its own size, so that small chunks do not pin 4 MiB
 * each. 0 or -ENOMEM. */
int tbuf_use_chunkbuf(struct tbuf *b, size_t need);
/* Release b's data, whatever it became: kept in the pool when it can serve
 * as a bigbuf (bigbuf_put), else freed. */
void tbuf_release_chunkbuf(struct tbuf *b);

/* Monotonic and wall clock in nanoseconds. */
uint64_t now_mono_ns(void);
uint64_t now_real_ns(void);

/* Parse "512", "4K", "1M", "2G", "1.5T" (binary units) into bytes. 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);
/* Parse "30s", "5m", "2h", "7d", "1w" (or plain seconds) into seconds. 0 or -EINVAL. */
int parse_duration(const char *s, uint64_t *secs_out);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void hex_encode(const uint8_t *in, size_t len, char *out);

#endif
