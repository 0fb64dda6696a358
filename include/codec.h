/*
 * codec.h - turns plaintext into the bytes that leave the premises, and
 * back. An object is a 40-byte header (magic, version, kind, algorithms,
 * flags, lengths, nonce), the payload compressed with zstd (or stored raw
 * when compression does not help) and encrypted with AES-256-GCM, and the
 * 16-byte tag. The header and the object's name are authenticated as AAD,
 * so a flipped bit anywhere, a truncated or extended object, a wrong key, or
 * a valid object stored under another name all fail to decode. The byte
 * layout is in docs/formats-objects.md.
 *
 * Chunks (file contents) are named by the hex HMAC-SHA256 of their
 * plaintext under the volume's naming key: equal chunks dedupe, and the
 * store learns nothing from the names. Sealed objects (snapshot metadata
 * and the like) use a separate key and kind, and any AAD the caller picks.
 *
 * All functions are thread safe: the only state is per thread (cached zstd
 * contexts and the error message) or immutable after one initialisation.
 * They return 0 or a negative errno; on failure codec_errmsg() describes it.
 */
#ifndef TIERFS_CODEC_H
#define TIERFS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "util.h"

#define CODEC_NAME_LEN 64                 /* hex chars of a chunk name */
#define CODEC_NAME_SIZE (CODEC_NAME_LEN + 1)
#define CODEC_HEADER_LEN 40
#define CODEC_TAG_LEN 16
#define CODEC_OVERHEAD (CODEC_HEADER_LEN + CODEC_TAG_LEN)
/* Largest plaintext accepted by encode (and believed by decode): 1 GiB. */
#define CODEC_MAX_PLAIN ((uint64_t)1 << 30)

/* Compression levels: 0 means the default (zstd 1); CODEC_LEVEL_NONE stores raw. */
#define CODEC_LEVEL_DEFAULT 0
#define CODEC_LEVEL_NONE (-1000000)

enum codec_decode_flags {
	/* Also check HMAC(naming key, plaintext) equals the expected name. */
	CODEC_VERIFY_NAME = 1 << 0,
};

/* Header fields as decoded by codec_inspect() (nothing is authenticated). */
struct codec_header {
	uint8_t version;
	uint8_t kind;        /* 1 chunk, 2 sealed */
	uint8_t compression; /* 0 none, 1 zstd */
	uint8_t cipher;      /* 1 AES-256-GCM */
	uint8_t flags;       /* bit 0: compression tried and did not help */
	uint64_t plain_len;
	uint64_t stored_len;
};
#define CODEC_KIND_CHUNK 1
#define CODEC_KIND_SEALED 2
#define CODEC_COMP_NONE 0
#define CODEC_COMP_ZSTD 1
#define CODEC_CIPHER_AES256GCM 1
#define CODEC_HF_INCOMPRESSIBLE (1 << 0)

/* Name of a chunk: hex HMAC-SHA256(k->name, data); NUL-terminated. 0 or -EIO. */
int codec_chunk_name(const struct volkey *k, const void *data, size_t len,
		     char name_out[CODEC_NAME_SIZE]);

/*
 * Encode a chunk. aad_name is the name the object will be stored under
 * (normally codec_chunk_name() of data). level: CODEC_LEVEL_DEFAULT, a zstd
 * level, or CODEC_LEVEL_NONE. The object is appended to out (so a caller
 * can reuse one buffer: tbuf_reset() it first); at most
 * len + CODEC_OVERHEAD bytes are appended. 0, -EINVAL (NULL args, len over
 * CODEC_MAX_PLAIN), -ENOMEM, -EIO (OpenSSL or zstd failure). On failure
 * out->len is unchanged.
 */
int codec_encode(const struct volkey *k, const void *data, size_t len,
		 const char *aad_name, int level, struct tbuf *out);

/*
 * Decode a chunk object fetched under aad_name and append the plaintext to
 * out. Everything is verified before a byte is appended: -EBADMSG for any
 * damage, a wrong key or a wrong name (and, with CODEC_VERIFY_NAME, a
 * plaintext whose HMAC is not aad_name). On any failure out->len is
 * unchanged and any plaintext written to its spare capacity is wiped.
 * Also -EINVAL, -ENOMEM, -EIO.
 */
int codec_decode(const struct volkey *k, const void *obj, size_t len,
		 const char *aad_name, unsigned flags, struct tbuf *out);

/*
 * Sealed objects: as encode/decode, with kind "sealed", encrypted with
 * k->meta, and an arbitrary caller-chosen AAD (e.g. "snap/000123/dir/42":
 * bind an object to where and what it is). No name check.
 */
int codec_seal(const struct volkey *k, const void *data, size_t len,
	       const void *aad, size_t aad_len, int level, struct tbuf *out);
int codec_open(const struct volkey *k, const void *obj, size_t len,
	       const void *aad, size_t aad_len, struct tbuf *out);

/* Parse the (unauthenticated) header, e.g. for fsck and tests. 0 or -EBADMSG. */
int codec_inspect(const void *obj, size_t len, struct codec_header *out);

/* Message for the last failure on this thread ("" when none). */
const char *codec_errmsg(void);

#endif
