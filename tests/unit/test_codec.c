/*
 * test_codec.c - unit tests of the object codec: round trips from empty to
 * 64 MiB of compressible and random data, the raw fallback for
 * incompressible data, tamper tests (every bit of a small object, sampled
 * positions and every header, nonce and tag byte of larger ones,
 * truncation, extension, swapped names, wrong keys, wrong kinds), keyed
 * naming and dedupe, sealed objects, and concurrent use from threads.
 * Failures must return -EBADMSG and leave the output buffer untouched.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "codec.h"

#define MiB (1024 * 1024)
#define PREFIX "prefix-kept"

static struct volkey key_a, key_b;

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Pseudo-random bytes: incompressible for zstd. */
static void fill_random(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t s = seed | 1;

	for (size_t i = 0; i < len; i++) {
		if (i % 8 == 0)
			rng_next(&s);
		p[i] = (uint8_t)(s >> (8 * (i % 8)));
	}
}

/* Text-like bytes: words from a small vocabulary, compressible about 3-4x. */
static void fill_text(uint8_t *p, size_t len, uint64_t seed)
{
	static const char *const words[] = {
		"the", "volume", "chunk", "object", "store", "cloud", "mount", "policy",
		"snapshot", "tier", "evict", "recall", "metadata", "private", "mirror", "of",
		"and", "a", "to", "in", "is", "with", "encrypted", "compressed", "2024",
		"invoice", "customer", "total", "amount", "EUR", "id", "status",
	};
	uint64_t s = seed | 1;
	size_t i = 0;

	while (i < len) {
		const char *w = words[rng_next(&s) % (sizeof(words) / sizeof(words[0]))];
		size_t wl = strlen(w);

		for (size_t j = 0; j < wl && i < len; j++)
			p[i++] = (uint8_t)w[j];
		if (i < len)
			p[i++] = (s >> 20) % 11 == 0 ? '\n' : ' ';
	}
}

static int setup_keys(void **state)
{
	assert_int_equal(volkey_generate(&key_a), 0);
	assert_int_equal(volkey_generate(&key_b), 0);
	return 0;
}

static int teardown_keys(void **state)
{
	volkey_release(&key_a);
	volkey_release(&key_b);
	return 0;
}

/* Decode obj and assert it fails with -EBADMSG leaving out == PREFIX. */
static void expect_reject(const struct volkey *k, const uint8_t *obj, size_t len,
			  const char *name, unsigned flags, const char *what, size_t pos)
{
	struct tbuf out = TBUF_INIT;
	int rc;

	assert_int_equal(tbuf_append(&out, PREFIX, strlen(PREFIX)), 0);
	rc = codec_decode(k, obj, len, name, flags, &out);
	if (rc != -EBADMSG)
		fail_msg("%s at %zu: decode returned %d, want -EBADMSG", what, pos, rc);
	assert_int_equal(out.len, strlen(PREFIX));
	assert_memory_equal(out.data, PREFIX, strlen(PREFIX));
	assert_true(strlen(codec_errmsg()) > 0);
	tbuf_release(&out);
}

enum fill { FILL_ZERO, FILL_TEXT, FILL_RANDOM };

struct rt_case {
	const char *name;
	size_t len;
	enum fill fill;
	int level;
	int want_comp;  /* expected compression id */
	int want_flag;  /* expected CODEC_HF_INCOMPRESSIBLE */
};

static const struct rt_case rt_cases[] = {
	{ "empty", 0, FILL_TEXT, CODEC_LEVEL_DEFAULT, CODEC_COMP_NONE, 0 },
	{ "one byte", 1, FILL_TEXT, CODEC_LEVEL_DEFAULT, CODEC_COMP_NONE, CODEC_HF_INCOMPRESSIBLE },
	{ "tiny text 200", 200, FILL_TEXT, CODEC_LEVEL_DEFAULT, CODEC_COMP_ZSTD, 0 },
	{ "tiny random 100", 100, FILL_RANDOM, CODEC_LEVEL_DEFAULT, CODEC_COMP_NONE,
	  CODEC_HF_INCOMPRESSIBLE },
	{ "zeros 4 MiB", 4 * MiB, FILL_ZERO, CODEC_LEVEL_DEFAULT, CODEC_COMP_ZSTD, 0 },
	{ "text 1 MiB level none", MiB, FILL_TEXT, CODEC_LEVEL_NONE, CODEC_COMP_NONE, 0 },
	{ "text 1 MiB level 19", MiB, FILL_TEXT, 19, CODEC_COMP_ZSTD, 0 },
	{ "random 1 MiB", MiB, FILL_RANDOM, CODEC_LEVEL_DEFAULT, CODEC_COMP_NONE,
	  CODEC_HF_INCOMPRESSIBLE },
	{ "text 64 MiB", 64 * MiB, FILL_TEXT, CODEC_LEVEL_DEFAULT, CODEC_COMP_ZSTD, 0 },
	{ "random 64 MiB", 64 * MiB, FILL_RANDOM, CODEC_LEVEL_DEFAULT, CODEC_COMP_NONE,
	  CODEC_HF_INCOMPRESSIBLE },
};

static void test_roundtrip(void **state)
{
	const struct rt_case *c = *state;
	uint8_t *plain = malloc(c->len ? c->len : 1);
	struct tbuf obj = TBUF_INIT, obj2 = TBUF_INIT, out = TBUF_INIT;
	char name[CODEC_NAME_SIZE];
	struct codec_header h;

	assert_non_null(plain);
	if (c->fill == FILL_ZERO)
		memset(plain, 0, c->len);
	else if (c->fill == FILL_TEXT)
		fill_text(plain, c->len, 42);
	else
		fill_random(plain, c->len, 42);

	assert_int_equal(codec_chunk_name(&key_a, plain, c->len, name), 0);
	assert_int_equal(strlen(name), CODEC_NAME_LEN);
	assert_int_equal(codec_encode(&key_a, plain, c->len, name, c->level, &obj), 0);
	assert_true(obj.len <= c->len + CODEC_OVERHEAD);
	assert_int_equal(codec_inspect(obj.data, obj.len, &h), 0);
	assert_int_equal(h.kind, CODEC_KIND_CHUNK);
	assert_int_equal(h.cipher, CODEC_CIPHER_AES256GCM);
	assert_int_equal(h.compression, c->want_comp);
	assert_int_equal(h.flags & CODEC_HF_INCOMPRESSIBLE, c->want_flag);
	assert_int_equal(h.plain_len, c->len);
	assert_int_equal(h.stored_len + CODEC_OVERHEAD, obj.len);
	if (c->want_comp == CODEC_COMP_NONE)
		assert_int_equal(obj.len, c->len + CODEC_OVERHEAD);
	else if (c->len >= MiB)
		assert_true(obj.len < c->len / 2);
	/* The ciphertext must not contain the plaintext. */
	if (c->len >= 64 && c->fill != FILL_ZERO)
		assert_null(memmem(obj.data, obj.len, plain, 64));

	/* Fresh nonce: encoding again gives different bytes, same meaning. */
	assert_int_equal(codec_encode(&key_a, plain, c->len, name, c->level, &obj2), 0);
	assert_int_equal(obj2.len, obj.len);
	assert_memory_not_equal(obj.data + 28, obj2.data + 28, 12);

	/* Decode appends after existing content. */
	assert_int_equal(tbuf_append(&out, PREFIX, strlen(PREFIX)), 0);
	assert_int_equal(codec_decode(&key_a, obj.data, obj.len, name, CODEC_VERIFY_NAME, &out), 0);
	assert_int_equal(out.len, strlen(PREFIX) + c->len);
	assert_memory_equal(out.data, PREFIX, strlen(PREFIX));
	if (c->len)
		assert_memory_equal(out.data + strlen(PREFIX), plain, c->len);
	tbuf_reset(&out);
	assert_int_equal(codec_decode(&key_a, obj2.data, obj2.len, name, 0, &out), 0);
	assert_int_equal(out.len, c->len);
	if (c->len)
		assert_memory_equal(out.data, plain, c->len);

	/* The other key rejects it. */
	expect_reject(&key_b, obj.data, obj.len, name, 0, "wrong key", 0);

	tbuf_release(&obj);
	tbuf_release(&obj2);
	tbuf_release(&out);
	free(plain);
}

/* Encode one object of len bytes filled by fill; caller releases obj. */
static void make_object(size_t len, enum fill fill, uint64_t seed, char name[CODEC_NAME_SIZE],
			struct tbuf *obj, uint8_t **plain_out)
{
	uint8_t *plain = malloc(len ? len : 1);

	assert_non_null(plain);
	if (fill == FILL_TEXT)
		fill_text(plain, len, seed);
	else
		fill_random(plain, len, seed);
	assert_int_equal(codec_chunk_name(&key_a, plain, len, name), 0);
	assert_int_equal(codec_encode(&key_a, plain, len, name, CODEC_LEVEL_DEFAULT, obj), 0);
	if (plain_out)
		*plain_out = plain;
	else
		free(plain);
}

/* Every bit of every byte of a small object, compressed and raw. */
static void test_tamper_every_bit(void **state)
{
	static const enum fill fills[] = { FILL_TEXT, FILL_RANDOM };

	for (size_t f = 0; f < 2; f++) {
		struct tbuf obj = TBUF_INIT;
		char name[CODEC_NAME_SIZE];
		struct codec_header h;
		size_t checked = 0;

		make_object(300, fills[f], 7, name, &obj, NULL);
		assert_int_equal(codec_inspect(obj.data, obj.len, &h), 0);
		assert_int_equal(h.compression, f == 0 ? CODEC_COMP_ZSTD : CODEC_COMP_NONE);
		for (size_t pos = 0; pos < obj.len; pos++) {
			for (int bit = 0; bit < 8; bit++) {
				obj.data[pos] ^= (uint8_t)(1u << bit);
				expect_reject(&key_a, obj.data, obj.len, name, 0, "bit flip", pos);
				obj.data[pos] ^= (uint8_t)(1u << bit);
				checked++;
			}
		}
		assert_int_equal(checked, obj.len * 8);
		/* Restored object still decodes. */
		{
			struct tbuf out = TBUF_INIT;

			assert_int_equal(codec_decode(&key_a, obj.data, obj.len, name,
						      CODEC_VERIFY_NAME, &out), 0);
			assert_int_equal(out.len, 300);
			tbuf_release(&out);
		}
		tbuf_release(&obj);
	}
}

/* Sampled positions across 4 MiB objects, plus every header, nonce and tag byte. */
static void test_tamper_large(void **state)
{
	static const enum fill fills[] = { FILL_TEXT, FILL_RANDOM };

	for (size_t f = 0; f < 2; f++) {
		struct tbuf obj = TBUF_INIT;
		char name[CODEC_NAME_SIZE];
		size_t n = 0, positions[400];

		make_object(4 * MiB, fills[f], 99, name, &obj, NULL);
		for (size_t i = 0; i < CODEC_HEADER_LEN; i++) /* header incl. nonce (28..39) */
			positions[n++] = i;
		positions[n++] = CODEC_HEADER_LEN;        /* first ciphertext byte */
		positions[n++] = CODEC_HEADER_LEN + 1;
		positions[n++] = obj.len / 2;             /* middle of the ciphertext */
		positions[n++] = obj.len - CODEC_TAG_LEN - 1; /* last ciphertext byte */
		for (size_t i = obj.len - CODEC_TAG_LEN; i < obj.len; i++) /* tag */
			positions[n++] = i;
		assert_int_equal(n, 60);
		for (; n < 400; n++) /* 340 more, evenly spread over the whole object */
			positions[n] = (obj.len - 1) * (n - 60) / 339;
		for (size_t i = 0; i < n; i++) {
			uint8_t bit = (uint8_t)(1u << (i % 8));

			obj.data[positions[i]] ^= bit;
			expect_reject(&key_a, obj.data, obj.len, name, 0, "large bit flip",
				      positions[i]);
			obj.data[positions[i]] ^= bit;
		}
		tbuf_release(&obj);
	}
}

static void test_truncate_extend(void **state)
{
	struct tbuf obj = TBUF_INIT, ext = TBUF_INIT;
	char name[CODEC_NAME_SIZE];
	size_t lens[] = { 0, 1, 4, 27, 39, 40, 41, 55, 56, 0, 0, 0, 0 };
	size_t nl = 9;

	make_object(5000, FILL_TEXT, 3, name, &obj, NULL);
	lens[nl++] = obj.len - CODEC_TAG_LEN - 1;
	lens[nl++] = obj.len - CODEC_TAG_LEN;
	lens[nl++] = obj.len - 1;
	lens[nl++] = obj.len / 2;
	for (size_t i = 0; i < nl; i++)
		expect_reject(&key_a, obj.data, lens[i], name, 0, "truncated to", lens[i]);

	/* Extension by 1, 16 and 4096 bytes of zeros and of garbage. */
	for (size_t extra = 1; extra <= 4096; extra *= 16) {
		for (int garbage = 0; garbage < 2; garbage++) {
			tbuf_reset(&ext);
			assert_int_equal(tbuf_append(&ext, obj.data, obj.len), 0);
			for (size_t i = 0; i < extra; i++) {
				uint8_t b = garbage ? (uint8_t)(i * 37 + 1) : 0;

				assert_int_equal(tbuf_append(&ext, &b, 1), 0);
			}
			expect_reject(&key_a, ext.data, ext.len, name, 0, "extended by", extra);
		}
	}
	/* A header patched to agree with the truncated length still fails (tag). */
	tbuf_reset(&ext);
	assert_int_equal(tbuf_append(&ext, obj.data, obj.len - 10), 0);
	{
		uint64_t stored = obj.len - 10 - CODEC_OVERHEAD;

		for (int i = 0; i < 8; i++)
			ext.data[20 + i] = (uint8_t)(stored >> (8 * i));
	}
	expect_reject(&key_a, ext.data, ext.len, name, 0, "patched length", 0);
	tbuf_release(&obj);
	tbuf_release(&ext);
}

static void test_swapped_names(void **state)
{
	struct tbuf a = TBUF_INIT, b = TBUF_INIT, out = TBUF_INIT;
	char na[CODEC_NAME_SIZE], nb[CODEC_NAME_SIZE], upper[CODEC_NAME_SIZE];
	uint8_t *pa;

	make_object(10000, FILL_TEXT, 1, na, &a, &pa);
	make_object(10000, FILL_TEXT, 2, nb, &b, NULL);
	assert_string_not_equal(na, nb);
	expect_reject(&key_a, a.data, a.len, nb, 0, "A under B's name", 0);
	expect_reject(&key_a, b.data, b.len, na, 0, "B under A's name", 0);
	expect_reject(&key_a, a.data, a.len, "", 0, "empty name", 0);
	memcpy(upper, na, sizeof(upper));
	upper[0] = upper[0] >= 'a' ? (char)(upper[0] - 32) : (char)(upper[0] == '0' ? '1' : '0');
	expect_reject(&key_a, a.data, a.len, upper, 0, "one char of name changed", 0);

	/*
	 * A valid object stored under a content-looking name that is not its
	 * content's: authentication passes, the name check catches it.
	 */
	tbuf_reset(&a);
	assert_int_equal(codec_encode(&key_a, pa, 10000, nb, CODEC_LEVEL_DEFAULT, &a), 0);
	assert_int_equal(codec_decode(&key_a, a.data, a.len, nb, 0, &out), 0);
	assert_int_equal(out.len, 10000);
	expect_reject(&key_a, a.data, a.len, nb, CODEC_VERIFY_NAME, "name check", 0);

	tbuf_release(&a);
	tbuf_release(&b);
	tbuf_release(&out);
	free(pa);
}

static void test_names_dedupe(void **state)
{
	uint8_t p1[4096], p2[4096];
	char n1[CODEC_NAME_SIZE], n1b[CODEC_NAME_SIZE], n2[CODEC_NAME_SIZE], nk[CODEC_NAME_SIZE];

	fill_random(p1, sizeof(p1), 5);
	memcpy(p2, p1, sizeof(p2));
	p2[4095] ^= 1;
	assert_int_equal(codec_chunk_name(&key_a, p1, sizeof(p1), n1), 0);
	assert_int_equal(codec_chunk_name(&key_a, p1, sizeof(p1), n1b), 0);
	assert_int_equal(codec_chunk_name(&key_a, p2, sizeof(p2), n2), 0);
	assert_int_equal(codec_chunk_name(&key_b, p1, sizeof(p1), nk), 0);
	assert_string_equal(n1, n1b);     /* same content, same key: dedupes */
	assert_string_not_equal(n1, n2);  /* one bit differs */
	assert_string_not_equal(n1, nk);  /* other volume key */
	assert_int_equal(strspn(n1, "0123456789abcdef"), CODEC_NAME_LEN);
	/* The name is keyed: it is not the plain SHA-256 of the content. */
	{
		uint8_t md[32];
		unsigned int mdl = 0;
		char hex[65];

		assert_int_equal(EVP_Digest(p1, sizeof(p1), md, &mdl, EVP_sha256(), NULL), 1);
		hex_encode(md, 32, hex);
		assert_string_not_equal(hex, n1);
	}
	/* Deterministic from the master key: a copy of the key names alike. */
	{
		struct volkey copy;

		assert_int_equal(volkey_from_master(key_a.master, &copy), 0);
		assert_int_equal(codec_chunk_name(&copy, p1, sizeof(p1), nk), 0);
		assert_string_equal(n1, nk);
		assert_string_equal(copy.id, key_a.id);
		volkey_release(&copy);
	}
}

static void test_subkeys(void **state)
{
	uint8_t x[32], y[32], z[32];

	assert_memory_not_equal(key_a.enc, key_a.name, VOLKEY_LEN);
	assert_memory_not_equal(key_a.enc, key_a.meta, VOLKEY_LEN);
	assert_memory_not_equal(key_a.name, key_a.meta, VOLKEY_LEN);
	assert_memory_not_equal(key_a.enc, key_a.master, VOLKEY_LEN);
	assert_int_equal(volkey_derive(&key_a, "tierfs/v1/test", x, 32), 0);
	assert_int_equal(volkey_derive(&key_a, "tierfs/v1/test", y, 32), 0);
	assert_int_equal(volkey_derive(&key_a, "tierfs/v1/test2", z, 32), 0);
	assert_memory_equal(x, y, 32);
	assert_memory_not_equal(x, z, 32);
	assert_int_equal(volkey_derive(&key_a, VOLKEY_LABEL_ENC, z, 32), 0);
	assert_memory_equal(z, key_a.enc, 32);
	assert_int_equal(volkey_derive(&key_a, "", z, 32), -EINVAL);
	assert_int_equal(volkey_derive(&key_a, "x", z, 0), -EINVAL);
	assert_string_not_equal(key_a.id, key_b.id);
	assert_int_equal(strlen(key_a.id), 2 * KEY_ID_LEN);
}

static void test_sealed(void **state)
{
	static const char aad1[] = "snap/000001/dir/42", aad2[] = "snap/000001/dir/43";
	struct tbuf obj = TBUF_INIT, chunk = TBUF_INIT, out = TBUF_INIT;
	uint8_t plain[20000];
	char name[CODEC_NAME_SIZE];
	struct codec_header h;

	fill_text(plain, sizeof(plain), 11);
	assert_int_equal(codec_seal(&key_a, plain, sizeof(plain), aad1, strlen(aad1),
				    CODEC_LEVEL_DEFAULT, &obj), 0);
	assert_int_equal(codec_inspect(obj.data, obj.len, &h), 0);
	assert_int_equal(h.kind, CODEC_KIND_SEALED);
	assert_int_equal(codec_open(&key_a, obj.data, obj.len, aad1, strlen(aad1), &out), 0);
	assert_int_equal(out.len, sizeof(plain));
	assert_memory_equal(out.data, plain, sizeof(plain));
	tbuf_reset(&out);
	assert_int_equal(codec_open(&key_a, obj.data, obj.len, aad2, strlen(aad2), &out), -EBADMSG);
	assert_int_equal(out.len, 0);
	assert_int_equal(codec_open(&key_b, obj.data, obj.len, aad1, strlen(aad1), &out), -EBADMSG);
	assert_int_equal(codec_open(&key_a, obj.data, obj.len, NULL, 0, &out), -EBADMSG);
	/* A sealed object is not a chunk, and a chunk is not a sealed object. */
	expect_reject(&key_a, obj.data, obj.len, aad1, 0, "sealed as chunk", 0);
	assert_int_equal(codec_chunk_name(&key_a, plain, sizeof(plain), name), 0);
	assert_int_equal(codec_encode(&key_a, plain, sizeof(plain), name, 0, &chunk), 0);
	assert_int_equal(codec_open(&key_a, chunk.data, chunk.len, name, strlen(name), &out),
			 -EBADMSG);
	/* Patch the kind byte of the chunk: still rejected (header is AAD, keys differ). */
	chunk.data[5] = CODEC_KIND_SEALED;
	assert_int_equal(codec_open(&key_a, chunk.data, chunk.len, name, strlen(name), &out),
			 -EBADMSG);
	assert_int_equal(out.len, 0);
	/* Empty sealed object with empty AAD. */
	tbuf_reset(&obj);
	assert_int_equal(codec_seal(&key_a, NULL, 0, NULL, 0, CODEC_LEVEL_DEFAULT, &obj), 0);
	assert_int_equal(codec_open(&key_a, obj.data, obj.len, NULL, 0, &out), 0);
	assert_int_equal(out.len, 0);
	tbuf_release(&obj);
	tbuf_release(&chunk);
	tbuf_release(&out);
}

static void test_bad_args(void **state)
{
	struct tbuf out = TBUF_INIT;
	char name[CODEC_NAME_SIZE];

	assert_int_equal(codec_encode(NULL, "x", 1, "n", 0, &out), -EINVAL);
	assert_int_equal(codec_encode(&key_a, "x", 1, NULL, 0, &out), -EINVAL);
	assert_int_equal(codec_encode(&key_a, NULL, 1, "n", 0, &out), -EINVAL);
	assert_int_equal(codec_encode(&key_a, "x", (size_t)CODEC_MAX_PLAIN + 1, "n", 0, &out),
			 -EINVAL);
	assert_int_equal(codec_decode(&key_a, "x", 1, NULL, 0, &out), -EINVAL);
	assert_int_equal(codec_chunk_name(NULL, "x", 1, name), -EINVAL);
	assert_int_equal(out.len, 0);
	tbuf_release(&out);
}

struct thread_arg {
	uint64_t seed;
	int failures;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	struct tbuf obj = TBUF_INIT, out = TBUF_INIT;
	size_t len = 256 * 1024;
	uint8_t *plain = malloc(len);
	char name[CODEC_NAME_SIZE];

	for (int i = 0; plain && i < 40; i++) {
		size_t n = len - (size_t)i * 1000;

		if (i % 2)
			fill_random(plain, n, a->seed + (uint64_t)i);
		else
			fill_text(plain, n, a->seed + (uint64_t)i);
		tbuf_reset(&obj);
		tbuf_reset(&out);
		if (codec_chunk_name(&key_a, plain, n, name) ||
		    codec_encode(&key_a, plain, n, name, 0, &obj) ||
		    codec_decode(&key_a, obj.data, obj.len, name, CODEC_VERIFY_NAME, &out) ||
		    out.len != n || memcmp(out.data, plain, n))
			a->failures++;
	}
	if (!plain)
		a->failures++;
	free(plain);
	tbuf_release(&obj);
	tbuf_release(&out);
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t th[4];
	struct thread_arg args[4];

	for (int i = 0; i < 4; i++) {
		args[i].seed = 1000 * (uint64_t)(i + 1);
		args[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
}

/*
 * The cloud mount's cold-read buffers: a 4 MiB chunk decodes into a pooled
 * page-aligned buffer in place (no reallocation, so O_DIRECT can write it),
 * the buffer goes back to the pool and out again, and a pointer that cannot
 * serve as one (small, or not page-aligned) is freed rather than pooled.
 */
static void test_bigbuf(void **state)
{
	struct tbuf obj = TBUF_INIT, out = TBUF_INIT;
	char name[CODEC_NAME_SIZE];
	uint8_t *plain;
	void *first, *again, *small;

	(void)state;
	for (int fill = 0; fill < 2; fill++) {
		make_object(4 * MiB, fill ? FILL_RANDOM : FILL_TEXT, 77 + (uint64_t)fill, name, &obj,
			    &plain);
		assert_int_equal(tbuf_use_chunkbuf(&out, 4 * MiB + 1), 0);
		first = out.data;
		assert_true(((uintptr_t)first & 4095) == 0);
		assert_int_equal(codec_decode(&key_a, obj.data, obj.len, name, 0, &out), 0);
		assert_ptr_equal(out.data, first);
		assert_int_equal(out.len, 4 * MiB);
		assert_memory_equal(out.data, plain, 4 * MiB);
		tbuf_release_chunkbuf(&out);
		assert_null(out.data);
		again = bigbuf_get();
		assert_ptr_equal(again, first); /* kept, handed out again */
		bigbuf_put(again);
		tbuf_release(&obj);
		free(plain);
	}
	small = malloc(4096);
	assert_non_null(small);
	bigbuf_put(small); /* freed (ASan would report a leak or reuse otherwise) */
	again = bigbuf_get();
	assert_ptr_not_equal(again, small);
	assert_true(((uintptr_t)again & 4095) == 0);
	memset(again, 0xa5, BIGBUF_SIZE); /* all of it is ours */
	bigbuf_put(again);
}

#define RT(i) { rt_cases[i].name, test_roundtrip, NULL, NULL, (void *)&rt_cases[i] }

int main(void)
{
	static const struct CMUnitTest tests[] = {
		RT(0), RT(1), RT(2), RT(3), RT(4), RT(5), RT(6), RT(7), RT(8), RT(9),
		cmocka_unit_test(test_tamper_every_bit),
		cmocka_unit_test(test_tamper_large),
		cmocka_unit_test(test_truncate_extend),
		cmocka_unit_test(test_swapped_names),
		cmocka_unit_test(test_names_dedupe),
		cmocka_unit_test(test_subkeys),
		cmocka_unit_test(test_sealed),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_bigbuf),
	};

	_Static_assert(sizeof(rt_cases) / sizeof(rt_cases[0]) == 10, "update RT() list");
	return cmocka_run_group_tests_name("codec", tests, setup_keys, teardown_keys);
}
