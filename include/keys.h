/*
 * keys.h - the volume key and its key file. A volume has one 256-bit random
 * master key; every key actually used is derived from it with HKDF-SHA256
 * under a distinct label, so the chunk cipher, the chunk namer and the
 * metadata cipher never share key material and more purposes can be added
 * with volkey_derive() without changing the key file. The key file is a
 * small text file (docs/formats-objects.md) holding the master key either in
 * the clear (protected by mode 0600 only) or wrapped with AES-256-GCM under
 * a key stretched from a passphrase with scrypt.
 *
 * Errors are negative errnos; a one-line human message for the last failure
 * on the calling thread is available from keys_errmsg().
 */
#ifndef TIERFS_KEYS_H
#define TIERFS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define VOLKEY_LEN 32                    /* bytes of every key */
#define KEY_ID_LEN 8                     /* bytes of a key id */
#define KEY_ID_SIZE (2 * KEY_ID_LEN + 1) /* hex + NUL */

/* HKDF labels ("info") of the built-in subkeys; never change them. */
#define VOLKEY_LABEL_ENC "tierfs/v1/chunk-encryption"
#define VOLKEY_LABEL_NAME "tierfs/v1/chunk-naming"
#define VOLKEY_LABEL_META "tierfs/v1/meta-encryption"
#define VOLKEY_LABEL_ID "tierfs/v1/key-id"

/*
 * A loaded volume key. Filled by volkey_generate(), volkey_from_master() or
 * key_file_load(); immutable afterwards, so any number of threads may use one
 * struct volkey at once. Release with volkey_release(), which wipes it.
 */
struct volkey {
	uint8_t master[VOLKEY_LEN]; /* the secret in the key file */
	uint8_t enc[VOLKEY_LEN];    /* AES-256-GCM key for chunk objects */
	uint8_t name[VOLKEY_LEN];   /* HMAC-SHA256 key naming chunk objects */
	uint8_t meta[VOLKEY_LEN];   /* AES-256-GCM key for sealed (metadata) objects */
	char id[KEY_ID_SIZE];       /* key id, hex, see key_id() */
};

/* A new random key (RAND_bytes). 0, or -EIO if the RNG fails. */
int volkey_generate(struct volkey *out);
/* Derive all subkeys from a master key. 0 or -EIO. */
int volkey_from_master(const uint8_t master[VOLKEY_LEN], struct volkey *out);
/*
 * Derive len (1..8160) bytes for another purpose: HKDF-SHA256 with the
 * master key as input key material, no salt, info = label. Labels must be
 * unique per purpose; the convention is "tierfs/v1/PURPOSE". 0, -EINVAL, -EIO.
 */
int volkey_derive(const struct volkey *k, const char *label, uint8_t *out, size_t len);
/* Wipe the key (OPENSSL_cleanse). Safe on a zeroed or released struct. */
void volkey_release(struct volkey *k);

/*
 * The key id: hex of the first KEY_ID_LEN bytes derived under
 * VOLKEY_LABEL_ID. It is not secret; a volume records it so a mount can
 * tell it holds the right key before reading anything. Writes KEY_ID_SIZE
 * bytes (NUL-terminated) to out; same as k->id.
 */
void key_id(const struct volkey *k, char out[KEY_ID_SIZE]);

/* Default scrypt cost; the env TIERFS_SCRYPT_N (power of two, 2^10..2^20) overrides it. */
#define KEY_SCRYPT_N_DEFAULT (1u << 17)
#define KEY_SCRYPT_R 8
#define KEY_SCRYPT_P 1

/*
 * Serialise k as a key file into out (appended). With a passphrase (non-NULL,
 * non-empty) the key is wrapped: fresh salt and nonce every call. With NULL
 * it is written in the clear. 0, -EINVAL (empty passphrase), -ENOMEM, -EIO.
 */
int key_file_format(const struct volkey *k, const char *passphrase, struct tbuf *out);

/*
 * Parse key file bytes and load the key into *out. Return values:
 *   0        loaded; *out must be released with volkey_release()
 *   -EBADMSG the bytes are not a well-formed tierfs key file, or a clear
 *            key does not match its recorded id (corruption, truncation)
 *   -ENOKEY  the key is passphrase-wrapped and passphrase is NULL
 *   -EACCES  the passphrase does not unlock the key: a wrong passphrase, or
 *            a wrapped file whose bytes were altered (the two cannot be told
 *            apart, by design of authenticated encryption)
 *   -ENOMEM, -EIO
 * A passphrase given for a clear key file is ignored. On failure *out is
 * zeroed and nothing needs releasing.
 */
int key_file_parse(const void *data, size_t len, const char *passphrase, struct volkey *out);

/*
 * Write k to a new key file at path: mode 0600, written to a temporary file
 * in the same directory, fsync'd and renamed into place without replacing
 * anything (then the directory is fsync'd). -EEXIST if path exists, else
 * the errors of key_file_format() and of the system calls.
 */
int key_file_write(const char *path, const struct volkey *k, const char *passphrase);

/*
 * Write data to a new file at path the way key files are written: mode
 * 0600, a temporary file in the same directory, fsync, a rename that never
 * replaces anything (-EEXIST), then an fsync of the directory.
 */
int key_write_new_file(const char *path, const void *data, size_t len);

/* key_file_write() of a new random key; *id_out (optional) gets its id. */
int key_file_create(const char *path, const char *passphrase, char id_out[KEY_ID_SIZE]);

/*
 * Read and parse the key file at path (errors of key_file_parse(), plus
 * -ENOENT, -EACCES (permission), -EFBIG (over 64 KiB) from reading it).
 */
int key_file_load(const char *path, const char *passphrase, struct volkey *out);

/* What can be learnt from a key file without its passphrase. */
struct key_file_info {
	int wrapped;              /* 1: passphrase-wrapped, 0: clear */
	char id[KEY_ID_SIZE];     /* recorded key id (verified only by a load) */
	uint64_t scrypt_n;        /* wrapped only */
	uint32_t scrypt_r, scrypt_p;
};
/* Parse the file's header only. 0, -EBADMSG, or a read error as key_file_load(). */
int key_file_info(const char *path, struct key_file_info *out);
int key_file_info_mem(const void *data, size_t len, struct key_file_info *out);

/*
 * Read a whole small file (at most 64 KiB) into out, appended; path "-"
 * reads stdin. 0, -EFBIG, or -errno of open/read.
 */
int key_read_small_file(const char *path, struct tbuf *out);

/* Message for the last failure on this thread ("" when none). */
const char *keys_errmsg(void);

#endif
