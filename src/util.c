/*
 * util.c - growable buffers, clocks, size and duration parsing.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int tbuf_grow(struct tbuf *b, size_t extra)
{
	size_t need = b->len + extra, ncap;
	uint8_t *p;

	if (need < b->len)
		return -ENOMEM;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap = ncap * 2 > ncap ? ncap * 2 : need;
	p = realloc(b->data, ncap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = ncap;
	return 0;
}

int tbuf_append(struct tbuf *b, const void *data, size_t len)
{
	int rc = tbuf_grow(b, len);

	if (rc)
		return rc;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

void tbuf_reset(struct tbuf *b)
{
	b->len = 0;
}

void tbuf_release(struct tbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

uint8_t *tbuf_detach(struct tbuf *b, size_t *len_out)
{
	uint8_t *p = b->data;

	if (len_out)
		*len_out = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

static pthread_mutex_t bigbuf_lock = PTHREAD_MUTEX_INITIALIZER;
static void *bigbuf_free_list[BIGBUF_KEEP];
static unsigned bigbuf_nfree;

void *bigbuf_get(void)
{
	void *p = NULL;

	pthread_mutex_lock(&bigbuf_lock);
	if (bigbuf_nfree)
		p = bigbuf_free_list[--bigbuf_nfree];
	pthread_mutex_unlock(&bigbuf_lock);
	if (!p && posix_memalign(&p, 4096, BIGBUF_SIZE))
		p = NULL;
	return p;
}

/* Give p back: kept when it is a bigbuf-sized aligned buffer, else freed. */
void bigbuf_put(void *p)
{
	if (!p)
		return;
	/* Only what can serve as one goes back: any other buffer is freed. */
	if (((uintptr_t)p & 4095) || malloc_usable_size(p) < BIGBUF_SIZE) {
		free(p);
		return;
	}
	pthread_mutex_lock(&bigbuf_lock);
	if (bigbuf_nfree < BIGBUF_KEEP) {
		bigbuf_free_list[bigbuf_nfree++] = p;
		p = NULL;
	}
	pthread_mutex_unlock(&bigbuf_lock);
	free(p);
}

int tbuf_use_chunkbuf(struct tbuf *b, size_t need)
{
	size_t cap = BIGBUF_SIZE;
	void *p = NULL;

	if (need > BIGBUF_SIZE / 2 && need <= BIGBUF_SIZE) {
		p = bigbuf_get();
	} else {
		cap = (need + 4095) & ~(size_t)4095;
		if (cap < need || posix_memalign(&p, 4096, cap ? cap : 4096))
			p = NULL;
		if (!cap)
			cap = 4096;
	}
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->len = 0;
	b->cap = cap;
	return 0;
}

void tbuf_release_chunkbuf(struct tbuf *b)
{
	bigbuf_put(b->data); /* pooled when it can serve as a bigbuf, else freed */
	b->data = NULL;
	b->len = b->cap = 0;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t now_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t now_real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;
	double mul = 1;

	if (!s || !*s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': mul = 1024.0; end++; break;
	case 'M': mul = 1024.0 * 1024; end++; break;
	case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
	case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end)
		return -EINVAL;
	v *= mul;
	if (!isfinite(v) || v < 0 || v > 1.8e19)
		return -EINVAL;
	*out = (uint64_t)v;
	return 0;
}

int parse_duration(const char *s, uint64_t *secs_out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || !*s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case '\0': break;
	case 's': mul = 1; end++; break;
	case 'm': mul = 60; end++; break;
	case 'h': mul = 3600; end++; break;
	case 'd': mul = 86400; end++; break;
	case 'w': mul = 7 * 86400; end++; break;
	default: return -EINVAL;
	}
	if (*end || (mul > 1 && v > UINT64_MAX / mul))
		return -EINVAL;
	*secs_out = v * mul;
	return 0;
}

void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}
