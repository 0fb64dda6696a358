/*
 * wire_int.h - the little-endian writer and bounded reader shared by the
 * object codecs (snapshot.c, outbox.c). Writers append to a tbuf and
 * return 0 or -ENOMEM (put_str16: -EINVAL past 65535 bytes). A reader
 * (struct rd) never reads past its end: the first short read sets bad, and
 * every later read returns 0/NULL, so a decoder checks bad once at the end.
 */
#ifndef TIERFS_WIRE_INT_H
#define TIERFS_WIRE_INT_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"


static inline int put(struct tbuf *b, const void *p, size_t n)
{
	return tbuf_append(b, p, n);
}

static inline int put_u8(struct tbuf *b, uint8_t v)
{
	return put(b, &v, 1);
}

static inline int put_u16(struct tbuf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	return put(b, x, 2);
}

static inline int put_u32(struct tbuf *b, uint32_t v)
{
	uint8_t x[4];

	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	return put(b, x, 4);
}

static inline int put_u64(struct tbuf *b, uint64_t v)
{
	uint8_t x[8];

	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	return put(b, x, 8);
}

static inline int put_str16(struct tbuf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n > 0xffff)
		return -EINVAL;
	return put_u16(b, (uint16_t)n) || (n && put(b, s, n)) ? -ENOMEM : 0;
}

struct rd {
	const uint8_t *p;
	size_t left;
	int bad;
};

static inline const uint8_t *take(struct rd *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->bad || r->left < n) {
		r->bad = 1;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static inline uint64_t get_le(struct rd *r, int bytes)
{
	const uint8_t *p = take(r, (size_t)bytes);
	uint64_t v = 0;

	if (!p)
		return 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline char *get_str16(struct rd *r)
{
	size_t n = (size_t)get_le(r, 2);
	const uint8_t *p = take(r, n);
	char *s;

	if (!p)
		return NULL;
	if (memchr(p, '\0', n)) {
		r->bad = 1;
		return NULL;
	}
	s = malloc(n + 1);
	if (!s) {
		r->bad = 1;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static inline int magic_ok(struct rd *r, const char *m)
{
	const uint8_t *p = take(r, 4);

	return p && !memcmp(p, m, 4);
}

#endif
