/*
 * codec.c - the object codec: zstd then AES-256-GCM on the way out,
 * authenticate then decompress on the way back, plus keyed chunk names.
 * Encoding compresses straight into the caller's buffer and encrypts in
 * place (or encrypts the plaintext directly into it when compression did
 * not help), so a chunk is touched once by zstd and once by AES. Decoding
 * never exposes a byte before the GCM tag has been checked: raw payloads
 * are decrypted into the spare capacity of the output buffer and only
 * counted in out->len after the tag (and the optional name check) passed;
 * compressed payloads are decrypted into a scratch buffer first. zstd
 * contexts are cached per thread (pthread key with a destructor); the
 * fetched OpenSSL algorithms are shared but immutable after pthread_once.
 */
#include "codec.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zstd.h>

#define CODEC_MAGIC "TFC1"
#define CODEC_VERSION 1
#define CODEC_NONCE_LEN 12
#define CODEC_NONCE_OFF 28
#define CODEC_DEFAULT_ZSTD_LEVEL 1

struct codec_tls {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
};

static pthread_once_t codec_once = PTHREAD_ONCE_INIT;
static pthread_key_t codec_tls_key;
static EVP_CIPHER *codec_gcm; /* immutable after codec_init */
static EVP_MAC *codec_hmac;   /* immutable after codec_init */
static int codec_init_rc;

static __thread char codec_err[256];

static void codec_set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void codec_set_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(codec_err, sizeof(codec_err), fmt, ap);
	va_end(ap);
}

const char *codec_errmsg(void)
{
	return codec_err;
}

static void codec_tls_free(void *p)
{
	struct codec_tls *t = p;

	ZSTD_freeCCtx(t->cctx);
	ZSTD_freeDCtx(t->dctx);
	free(t);
}

static void codec_init(void)
{
	if (pthread_key_create(&codec_tls_key, codec_tls_free)) {
		codec_init_rc = -EAGAIN;
		return;
	}
	codec_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	codec_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!codec_gcm || !codec_hmac)
		codec_init_rc = -EIO;
}

static int codec_ready(void)
{
	pthread_once(&codec_once, codec_init);
	if (codec_init_rc)
		codec_set_err("cannot initialise OpenSSL (AES-256-GCM, HMAC)");
	return codec_init_rc;
}

static struct codec_tls *codec_tls_get(void)
{
	struct codec_tls *t = pthread_getspecific(codec_tls_key);

	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (pthread_setspecific(codec_tls_key, t)) {
		free(t);
		return NULL;
	}
	return t;
}

static ZSTD_CCtx *codec_cctx(void)
{
	struct codec_tls *t = codec_tls_get();

	if (!t)
		return NULL;
	if (!t->cctx)
		t->cctx = ZSTD_createCCtx();
	return t->cctx;
}

static ZSTD_DCtx *codec_dctx(void)
{
	struct codec_tls *t = codec_tls_get();

	if (!t)
		return NULL;
	if (!t->dctx)
		t->dctx = ZSTD_createDCtx();
	return t->dctx;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* HMAC-SHA256 of data under a 32-byte key. */
static int codec_hmac_sha256(const uint8_t *key, const void *data, size_t len, uint8_t mac[32])
{
	OSSL_PARAM params[2];
	EVP_MAC_CTX *ctx = NULL;
	size_t outl = 0;
	int rc = -EIO;

	if ((rc = codec_ready()))
		return rc;
	rc = -EIO;
	ctx = EVP_MAC_CTX_new(codec_hmac);
	if (!ctx)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(ctx, key, VOLKEY_LEN, params) || !EVP_MAC_update(ctx, data, len) ||
	    !EVP_MAC_final(ctx, mac, &outl, 32) || outl != 32) {
		codec_set_err("HMAC-SHA256 failed");
		goto out;
	}
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	return rc;
}

int codec_chunk_name(const struct volkey *k, const void *data, size_t len,
		     char name_out[CODEC_NAME_SIZE])
{
	uint8_t mac[32];
	int rc;

	if (!k || (!data && len))
		return -EINVAL;
	rc = codec_hmac_sha256(k->name, data ? data : "", len, mac);
	if (!rc)
		hex_encode(mac, sizeof(mac), name_out);
	return rc;
}

/* One AES-256-GCM pass; enc = 1 encrypts (tag written), 0 decrypts (tag checked). */
static int codec_gcm_run(int enc, const uint8_t *key, const uint8_t *hdr, const void *aad,
			 size_t aad_len, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	const uint8_t *nonce = hdr + CODEC_NONCE_OFF;
	int outl, rc = -EIO;

	if (!ctx)
		goto out;
	if (!EVP_CipherInit_ex2(ctx, codec_gcm, key, nonce, enc, NULL))
		goto out;
	if (!EVP_CipherUpdate(ctx, NULL, &outl, hdr, CODEC_HEADER_LEN))
		goto out;
	if (aad_len && !EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len))
		goto out;
	if (len && (!EVP_CipherUpdate(ctx, out, &outl, in, (int)len) || (size_t)outl != len))
		goto out;
	if (!enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, CODEC_TAG_LEN, tag))
		goto out;
	if (!EVP_CipherFinal_ex(ctx, out + len, &outl)) {
		/* For decryption this is the authentication failure. */
		rc = enc ? -EIO : -EBADMSG;
		goto out;
	}
	if (enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, CODEC_TAG_LEN, tag))
		goto out;
	rc = 0;
out:
	if (rc == -EIO)
		codec_set_err("AES-256-GCM failed inside OpenSSL");
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

static int codec_seal_kind(uint8_t kind, const uint8_t *key, const void *data, size_t len,
			   const void *aad, size_t aad_len, int level, struct tbuf *out)
{
	size_t base = out ? out->len : 0, bound = len, stored = len;
	uint8_t comp = CODEC_COMP_NONE, hflags = 0;
	const void *src = data;
	uint8_t *hdr, *payload;
	int rc;

	if (!out || (!data && len) || (!aad && aad_len) || aad_len > INT_MAX) {
		codec_set_err("invalid arguments to the codec");
		return -EINVAL;
	}
	if ((uint64_t)len > CODEC_MAX_PLAIN) {
		codec_set_err("object of %zu bytes exceeds the codec limit of %llu", len,
			      (unsigned long long)CODEC_MAX_PLAIN);
		return -EINVAL;
	}
	if ((rc = codec_ready()))
		return rc;
	if (level != CODEC_LEVEL_NONE && len > 0) {
		size_t zb = ZSTD_compressBound(len);

		bound = zb > len ? zb : len;
	}
	rc = tbuf_grow(out, CODEC_OVERHEAD + bound);
	if (rc) {
		codec_set_err("out of memory encoding %zu bytes", len);
		return rc;
	}
	hdr = out->data + base;
	payload = hdr + CODEC_HEADER_LEN;
	if (level != CODEC_LEVEL_NONE && len > 0) {
		ZSTD_CCtx *cctx = codec_cctx();
		size_t csize;

		if (level == CODEC_LEVEL_DEFAULT)
			level = CODEC_DEFAULT_ZSTD_LEVEL;
		if (level < ZSTD_minCLevel())
			level = ZSTD_minCLevel();
		if (level > ZSTD_maxCLevel())
			level = ZSTD_maxCLevel();
		if (!cctx) {
			codec_set_err("cannot allocate a zstd context");
			return -ENOMEM;
		}
		csize = ZSTD_compressCCtx(cctx, payload, bound, data, len, level);
		if (ZSTD_isError(csize)) {
			codec_set_err("zstd compression failed: %s", ZSTD_getErrorName(csize));
			return -EIO;
		}
		/* Keep the compressed form only if it saves at least 1/64. */
		if (csize < len && len - csize >= len / 64) {
			comp = CODEC_COMP_ZSTD;
			stored = csize;
			src = payload; /* encrypted in place below */
		} else {
			hflags |= CODEC_HF_INCOMPRESSIBLE;
		}
	}

	memcpy(hdr, CODEC_MAGIC, 4);
	hdr[4] = CODEC_VERSION;
	hdr[5] = kind;
	hdr[6] = comp;
	hdr[7] = CODEC_CIPHER_AES256GCM;
	hdr[8] = hflags;
	hdr[9] = hdr[10] = hdr[11] = 0;
	put_le64(hdr + 12, len);
	put_le64(hdr + 20, stored);
	if (RAND_bytes(hdr + CODEC_NONCE_OFF, CODEC_NONCE_LEN) != 1) {
		codec_set_err("random number generator failed");
		return -EIO;
	}
	rc = codec_gcm_run(1, key, hdr, aad, aad_len, src, stored, payload, payload + stored);
	if (rc)
		return rc;
	out->len = base + CODEC_OVERHEAD + stored;
	return 0;
}

static int codec_parse(const uint8_t *p, size_t len, struct codec_header *h)
{
	uint64_t need;

	if (len < CODEC_OVERHEAD) {
		codec_set_err("object truncated: %zu bytes, shorter than any object", len);
		return -EBADMSG;
	}
	if (memcmp(p, CODEC_MAGIC, 4)) {
		codec_set_err("not a tierfs object (bad magic)");
		return -EBADMSG;
	}
	h->version = p[4];
	h->kind = p[5];
	h->compression = p[6];
	h->cipher = p[7];
	h->flags = p[8];
	h->plain_len = get_le64(p + 12);
	h->stored_len = get_le64(p + 20);
	if (h->version != CODEC_VERSION) {
		codec_set_err("unsupported object format version %u", h->version);
		return -EBADMSG;
	}
	if ((h->kind != CODEC_KIND_CHUNK && h->kind != CODEC_KIND_SEALED) ||
	    h->compression > CODEC_COMP_ZSTD || h->cipher != CODEC_CIPHER_AES256GCM ||
	    (h->flags & ~CODEC_HF_INCOMPRESSIBLE) || p[9] || p[10] || p[11]) {
		codec_set_err("corrupt object header (unknown kind, algorithm or flags)");
		return -EBADMSG;
	}
	need = h->stored_len + CODEC_OVERHEAD;
	if (h->stored_len > CODEC_MAX_PLAIN + (CODEC_MAX_PLAIN >> 6) || need != len) {
		codec_set_err("object truncated or extended: header says %llu bytes, got %zu",
			      (unsigned long long)need, len);
		return -EBADMSG;
	}
	if (h->plain_len > CODEC_MAX_PLAIN ||
	    (h->compression == CODEC_COMP_NONE && h->plain_len != h->stored_len) ||
	    (h->compression == CODEC_COMP_ZSTD &&
	     (h->stored_len == 0 || (h->flags & CODEC_HF_INCOMPRESSIBLE)))) {
		codec_set_err("corrupt object header (inconsistent lengths)");
		return -EBADMSG;
	}
	return 0;
}

int codec_inspect(const void *obj, size_t len, struct codec_header *out)
{
	if (!obj || !out)
		return -EINVAL;
	return codec_parse(obj, len, out);
}

static int codec_check_name(const struct volkey *k, const uint8_t *plain, size_t len,
			    const char *name)
{
	char got[CODEC_NAME_SIZE];
	int rc;

	if (strlen(name) != CODEC_NAME_LEN) {
		codec_set_err("chunk name '%.80s' is not a content name", name);
		return -EBADMSG;
	}
	rc = codec_chunk_name(k, plain, len, got);
	if (rc)
		return rc;
	if (CRYPTO_memcmp(got, name, CODEC_NAME_LEN)) {
		codec_set_err("chunk content does not match its name '%s'", name);
		return -EBADMSG;
	}
	return 0;
}

static int codec_open_kind(uint8_t kind, const struct volkey *k, const uint8_t *key,
			   const void *obj, size_t len, const void *aad, size_t aad_len,
			   const char *verify_name, struct tbuf *out)
{
	const uint8_t *p = obj, *payload, *tag;
	struct codec_header h;
	size_t base = out ? out->len : 0;
	uint8_t *scratch = NULL, *dst = NULL;
	size_t written = 0; /* bytes of plaintext-derived data at out->data + base */
	int rc;

	if (!out || !obj || (!aad && aad_len) || aad_len > INT_MAX) {
		codec_set_err("invalid arguments to the codec");
		return -EINVAL;
	}
	if ((rc = codec_ready()))
		return rc;
	if ((rc = codec_parse(p, len, &h)))
		return rc;
	if (h.kind != kind) {
		codec_set_err("object is a %s object where a %s was expected",
			      h.kind == CODEC_KIND_CHUNK ? "chunk" : "sealed",
			      kind == CODEC_KIND_CHUNK ? "chunk" : "sealed object");
		return -EBADMSG;
	}
	payload = p + CODEC_HEADER_LEN;
	tag = payload + h.stored_len;

	/* +1: never a NULL buffer, even for an empty payload. */
	rc = tbuf_grow(out, (h.compression == CODEC_COMP_NONE ? h.stored_len : 0) + 1);
	if (rc)
		goto out;
	if (h.compression == CODEC_COMP_NONE) {
		dst = out->data + base;
		written = h.stored_len;
	} else {
		dst = scratch = malloc(h.stored_len);
		if (!scratch) {
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = codec_gcm_run(0, key, p, aad, aad_len, payload, h.stored_len, dst, (uint8_t *)tag);
	if (rc) {
		if (rc == -EBADMSG)
			codec_set_err("object failed authentication: damaged, wrong key or wrong name");
		goto out;
	}
	if (h.compression == CODEC_COMP_ZSTD) {
		ZSTD_DCtx *dctx = codec_dctx();
		unsigned long long fsize = ZSTD_getFrameContentSize(scratch, h.stored_len);
		size_t n;

		if (!dctx || (rc = tbuf_grow(out, h.plain_len))) {
			rc = -ENOMEM;
			goto out;
		}
		if (fsize != h.plain_len) {
			codec_set_err("zstd frame size %llu disagrees with the header's %llu", fsize,
				      (unsigned long long)h.plain_len);
			rc = -EBADMSG;
			goto out;
		}
		written = h.plain_len;
		n = ZSTD_decompressDCtx(dctx, out->data + base, h.plain_len, scratch, h.stored_len);
		if (ZSTD_isError(n) || n != h.plain_len) {
			codec_set_err("zstd payload does not decompress to %llu bytes: %s",
				      (unsigned long long)h.plain_len,
				      ZSTD_isError(n) ? ZSTD_getErrorName(n) : "length differs");
			rc = -EBADMSG;
			goto out;
		}
	}
	if (verify_name)
		rc = codec_check_name(k, out->data + base, h.plain_len, verify_name);
out:
	if (rc == -ENOMEM)
		codec_set_err("out of memory decoding an object of %zu bytes", len);
	if (rc && written)
		OPENSSL_cleanse(out->data + base, written);
	if (!rc)
		out->len = base + h.plain_len;
	if (scratch) {
		OPENSSL_cleanse(scratch, h.stored_len);
		free(scratch);
	}
	return rc;
}

int codec_encode(const struct volkey *k, const void *data, size_t len,
		 const char *aad_name, int level, struct tbuf *out)
{
	if (!k || !aad_name) {
		codec_set_err("invalid arguments to the codec");
		return -EINVAL;
	}
	return codec_seal_kind(CODEC_KIND_CHUNK, k->enc, data, len, aad_name, strlen(aad_name),
			       level, out);
}

int codec_decode(const struct volkey *k, const void *obj, size_t len,
		 const char *aad_name, unsigned flags, struct tbuf *out)
{
	if (!k || !aad_name) {
		codec_set_err("invalid arguments to the codec");
		return -EINVAL;
	}
	return codec_open_kind(CODEC_KIND_CHUNK, k, k->enc, obj, len, aad_name, strlen(aad_name),
			       (flags & CODEC_VERIFY_NAME) ? aad_name : NULL, out);
}

int codec_seal(const struct volkey *k, const void *data, size_t len,
	       const void *aad, size_t aad_len, int level, struct tbuf *out)
{
	if (!k) {
		codec_set_err("invalid arguments to the codec");
		return -EINVAL;
	}
	return codec_seal_kind(CODEC_KIND_SEALED, k->meta, data, len, aad, aad_len, level, out);
}

int codec_open(const struct volkey *k, const void *obj, size_t len,
	       const void *aad, size_t aad_len, struct tbuf *out)
{
	if (!k) {
		codec_set_err("invalid arguments to the codec");
		return -EINVAL;
	}
	return codec_open_kind(CODEC_KIND_SEALED, k, k->meta, obj, len, aad, aad_len, NULL, out);
}
