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
