/*
 * keys.c - volume keys: generation, HKDF-SHA256 subkey derivation, and the
 * key file (text, docs/formats-objects.md). A clear key file records the
 * key id next to the key, so a damaged key is caught on load instead of
 * silently producing a different volume key. A wrapped key file stretches
 * the passphrase with scrypt (parameters and salt in the file) and seals
 * the master key with AES-256-GCM, with every byte of the file before the
 * key line as AAD: no header field can be changed without the unwrap
 * failing. Files are written to a temporary name, fsync'd and linked into
 * place with RENAME_NOREPLACE, so a key file is either absent or complete,
 * and an existing key is never replaced.
 */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#define KEY_FILE_MAGIC "tierfs-key v1\n"
#define KEY_WRAP_NONE "none"
#define KEY_WRAP_SCRYPT "scrypt-aes-256-gcm"
#define KEY_SALT_LEN 16
#define KEY_NONCE_LEN 12
#define KEY_TAG_LEN 16
#define KEY_FILE_MAX (64 * 1024)
#define KEY_SCRYPT_N_MIN (1u << 10)
#define KEY_SCRYPT_N_MAX (1u << 20)
#define KEY_SCRYPT_MEM_MAX ((uint64_t)1 << 30)

static __thread char keys_err[256];

static void keys_set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void keys_set_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(keys_err, sizeof(keys_err), fmt, ap);
	va_end(ap);
}

const char *keys_errmsg(void)
{
	return keys_err;
}

int volkey_derive(const struct volkey *k, const char *label, uint8_t *out, size_t len)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[4];
	int rc = -EINVAL;

	if (!k || !label || !*label || !out || len == 0 || len > 255 * 32)
		goto out;
	rc = -EIO;
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (!ctx)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)k->master,
						      VOLKEY_LEN);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label,
						      strlen(label));
	params[3] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, len, params) != 1)
		goto out;
	rc = 0;
out:
	if (rc)
		keys_set_err("cannot derive a key (HKDF-SHA256)");
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

int volkey_from_master(const uint8_t master[VOLKEY_LEN], struct volkey *out)
{
	uint8_t id[KEY_ID_LEN];
	int rc;

	memset(out, 0, sizeof(*out));
	memcpy(out->master, master, VOLKEY_LEN);
	if ((rc = volkey_derive(out, VOLKEY_LABEL_ENC, out->enc, VOLKEY_LEN)) ||
	    (rc = volkey_derive(out, VOLKEY_LABEL_NAME, out->name, VOLKEY_LEN)) ||
	    (rc = volkey_derive(out, VOLKEY_LABEL_META, out->meta, VOLKEY_LEN)) ||
	    (rc = volkey_derive(out, VOLKEY_LABEL_ID, id, sizeof(id)))) {
		volkey_release(out);
		return rc;
	}
	hex_encode(id, sizeof(id), out->id);
	return 0;
}

int volkey_generate(struct volkey *out)
{
	uint8_t master[VOLKEY_LEN];
	int rc;

	if (RAND_priv_bytes(master, sizeof(master)) != 1) {
		keys_set_err("random number generator failed");
		memset(out, 0, sizeof(*out));
		return -EIO;
	}
	rc = volkey_from_master(master, out);
	OPENSSL_cleanse(master, sizeof(master));
	return rc;
}

void volkey_release(struct volkey *k)
{
	if (k)
		OPENSSL_cleanse(k, sizeof(*k));
}

void key_id(const struct volkey *k, char out[KEY_ID_SIZE])
{
	memcpy(out, k->id, KEY_ID_SIZE);
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode exactly 2*len lowercase hex chars. 0 or -EBADMSG. */
static int hex_decode(const char *in, size_t in_len, uint8_t *out, size_t len)
{
	if (in_len != 2 * len)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_val(in[2 * i]), lo = hex_val(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EBADMSG;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int scrypt_n_from_env(uint64_t *n_out)
{
	const char *s = getenv("TIERFS_SCRYPT_N");
	char *end;
	unsigned long long n;

	*n_out = KEY_SCRYPT_N_DEFAULT;
	if (!s || !*s)
		return 0;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || *end || n < KEY_SCRYPT_N_MIN || n > KEY_SCRYPT_N_MAX || (n & (n - 1))) {
		keys_set_err("TIERFS_SCRYPT_N='%s' is not a power of two in [%u, %u]", s,
			     KEY_SCRYPT_N_MIN, KEY_SCRYPT_N_MAX);
		return -EINVAL;
	}
	*n_out = n;
	return 0;
}

static int scrypt_params_ok(uint64_t n, uint64_t r, uint64_t p)
{
	return n >= KEY_SCRYPT_N_MIN && n <= KEY_SCRYPT_N_MAX && !(n & (n - 1)) && r >= 1 &&
	       r <= 32 && p >= 1 && p <= 16 && 128 * r * (n + 2) <= KEY_SCRYPT_MEM_MAX;
}

/* Stretch a passphrase into a 32-byte wrapping key. */
static int scrypt_derive(const char *pass, const uint8_t *salt, uint64_t n, uint32_t r,
			 uint32_t p, uint8_t out[VOLKEY_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	uint64_t maxmem = 128ull * r * (n + 2) + 128ull * r * p + (1u << 20);
	OSSL_PARAM params[7];
	int rc = -EIO;

	if (!ctx)
		goto out;
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pass,
						      strlen(pass));
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
						      KEY_SALT_LEN);
	params[2] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	params[3] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
	params[4] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
	params[5] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
	params[6] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, VOLKEY_LEN, params) != 1) {
		keys_set_err("scrypt failed (N=%llu r=%u p=%u; out of memory?)",
			     (unsigned long long)n, r, p);
		goto out;
	}
	rc = 0;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* AES-256-GCM of one 32-byte key; enc: ct_tag gets 48 bytes; dec: checks the tag. */
static int key_gcm(int enc, const uint8_t key[VOLKEY_LEN], const uint8_t *nonce,
		   const void *aad, size_t aad_len, const uint8_t *in, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int outl, rc = -EIO;

	if (!ctx)
		goto out;
	if (!EVP_CipherInit_ex2(ctx, EVP_aes_256_gcm(), key, nonce, enc, NULL) ||
	    !EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) ||
	    !EVP_CipherUpdate(ctx, out, &outl, in, VOLKEY_LEN) ||
	    (!enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, KEY_TAG_LEN, tag)))
		goto out;
	if (!EVP_CipherFinal_ex(ctx, out + VOLKEY_LEN, &outl)) {
		rc = enc ? -EIO : -EACCES;
		goto out;
	}
	if (enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, KEY_TAG_LEN, tag))
		goto out;
	rc = 0;
out:
	if (rc == -EIO)
		keys_set_err("AES-256-GCM failed inside OpenSSL");
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

static int tbuf_printf(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int tbuf_printf(struct tbuf *b, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -EINVAL;
	return tbuf_append(b, line, (size_t)n);
}

int key_file_format(const struct volkey *k, const char *passphrase, struct tbuf *out)
{
	uint8_t salt[KEY_SALT_LEN], nonce[KEY_NONCE_LEN], wkey[VOLKEY_LEN];
	uint8_t ct[VOLKEY_LEN + KEY_TAG_LEN];
	char hex[2 * sizeof(ct) + 1];
	size_t base = out->len, hdr_len;
	uint64_t n;
	int rc;

	if (passphrase && !*passphrase) {
		keys_set_err("empty passphrase");
		return -EINVAL;
	}
	if ((rc = tbuf_append(out, KEY_FILE_MAGIC, strlen(KEY_FILE_MAGIC))) ||
	    (rc = tbuf_printf(out, "id=%s\n", k->id)))
		goto out;
	if (!passphrase) {
		hex_encode(k->master, VOLKEY_LEN, hex);
		rc = tbuf_printf(out, "wrap=" KEY_WRAP_NONE "\nkey=%s\n", hex);
		goto out;
	}
	if ((rc = scrypt_n_from_env(&n)))
		goto out;
	if (RAND_bytes(salt, sizeof(salt)) != 1 || RAND_bytes(nonce, sizeof(nonce)) != 1) {
		keys_set_err("random number generator failed");
		rc = -EIO;
		goto out;
	}
	if ((rc = tbuf_printf(out, "wrap=" KEY_WRAP_SCRYPT "\nscrypt-n=%llu\nscrypt-r=%u\n"
			      "scrypt-p=%u\n", (unsigned long long)n, KEY_SCRYPT_R, KEY_SCRYPT_P)))
		goto out;
	hex_encode(salt, sizeof(salt), hex);
	if ((rc = tbuf_printf(out, "salt=%s\n", hex)))
		goto out;
	hex_encode(nonce, sizeof(nonce), hex);
	if ((rc = tbuf_printf(out, "nonce=%s\n", hex)))
		goto out;
	hdr_len = out->len - base;
	if ((rc = scrypt_derive(passphrase, salt, n, KEY_SCRYPT_R, KEY_SCRYPT_P, wkey)) ||
	    (rc = key_gcm(1, wkey, nonce, out->data + base, hdr_len, k->master, ct,
			  ct + VOLKEY_LEN)))
		goto out;
	hex_encode(ct, sizeof(ct), hex);
	rc = tbuf_printf(out, "key=%s\n", hex);
out:
	OPENSSL_cleanse(wkey, sizeof(wkey));
	OPENSSL_cleanse(hex, sizeof(hex));
	if (rc) {
		if (rc == -ENOMEM)
			keys_set_err("out of memory");
		if (out->len > base)
			OPENSSL_cleanse(out->data + base, out->len - base);
		out->len = base;
	}
	return rc;
}

/* A cursor over key file text: one "name=value\n" line at a time. */
struct kf_cursor {
	const char *p, *end;
};

/* Take the next line, which must be "name=VALUE\n"; value points into the text. */
static int kf_field(struct kf_cursor *c, const char *name, const char **val, size_t *val_len)
{
	size_t nl = strlen(name);
	const char *eol;

	if ((size_t)(c->end - c->p) < nl + 1 || memcmp(c->p, name, nl) || c->p[nl] != '=')
		goto bad;
	eol = memchr(c->p + nl + 1, '\n', (size_t)(c->end - c->p - (ptrdiff_t)nl - 1));
	if (!eol)
		goto bad;
	*val = c->p + nl + 1;
	*val_len = (size_t)(eol - *val);
	c->p = eol + 1;
	return 0;
bad:
	keys_set_err("not a valid tierfs key file (expected field '%s')", name);
	return -EBADMSG;
}

static int kf_uint(struct kf_cursor *c, const char *name, uint64_t *v)
{
	const char *s;
	size_t len;
	int rc = kf_field(c, name, &s, &len);

	if (rc)
		return rc;
	if (len == 0 || len > 10 || (s[0] == '0' && len > 1))
		goto bad;
	*v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto bad;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return 0;
bad:
	keys_set_err("not a valid tierfs key file (bad number in '%s')", name);
	return -EBADMSG;
}

static int kf_hex(struct kf_cursor *c, const char *name, uint8_t *out, size_t len)
{
	const char *s;
	size_t slen;
	int rc = kf_field(c, name, &s, &slen);

	if (!rc && (rc = hex_decode(s, slen, out, len)))
		keys_set_err("not a valid tierfs key file (bad value of '%s')", name);
	return rc;
}

/*
 * Parse a key file; with want_key, also recover the key into *key (needs a
 * passphrase when wrapped). Header-only when key is NULL.
 */
static int kf_parse(const void *data, size_t len, const char *pass, struct key_file_info *info,
		    struct volkey *key)
{
	struct kf_cursor c = { data, (const char *)data + len };
	uint8_t idb[KEY_ID_LEN], salt[KEY_SALT_LEN], nonce[KEY_NONCE_LEN];
	uint8_t ct[VOLKEY_LEN + KEY_TAG_LEN], master[VOLKEY_LEN], wkey[VOLKEY_LEN];
	const char *wrap;
	size_t wrap_len, hdr_len;
	uint64_t r = 0, p = 0;
	int rc;

	memset(info, 0, sizeof(*info));
	if (key)
		memset(key, 0, sizeof(*key));
	if (len < strlen(KEY_FILE_MAGIC) || memcmp(data, KEY_FILE_MAGIC, strlen(KEY_FILE_MAGIC))) {
		keys_set_err("not a tierfs key file (no 'tierfs-key v1' line)");
		rc = -EBADMSG;
		goto out;
	}
	c.p += strlen(KEY_FILE_MAGIC);
	if ((rc = kf_hex(&c, "id", idb, sizeof(idb))) ||
	    (rc = kf_field(&c, "wrap", &wrap, &wrap_len)))
		goto out;
	hex_encode(idb, sizeof(idb), info->id);
	if (wrap_len == strlen(KEY_WRAP_NONE) && !memcmp(wrap, KEY_WRAP_NONE, wrap_len)) {
		info->wrapped = 0;
	} else if (wrap_len == strlen(KEY_WRAP_SCRYPT) && !memcmp(wrap, KEY_WRAP_SCRYPT, wrap_len)) {
		info->wrapped = 1;
		if ((rc = kf_uint(&c, "scrypt-n", &info->scrypt_n)) ||
		    (rc = kf_uint(&c, "scrypt-r", &r)) || (rc = kf_uint(&c, "scrypt-p", &p)) ||
		    (rc = kf_hex(&c, "salt", salt, sizeof(salt))) ||
		    (rc = kf_hex(&c, "nonce", nonce, sizeof(nonce))))
			goto out;
		if (!scrypt_params_ok(info->scrypt_n, r, p)) {
			keys_set_err("not a valid tierfs key file (scrypt parameters out of range)");
			rc = -EBADMSG;
			goto out;
		}
		info->scrypt_r = (uint32_t)r;
		info->scrypt_p = (uint32_t)p;
	} else {
		keys_set_err("unsupported key wrapping '%.*s'", (int)(wrap_len > 40 ? 40 : wrap_len),
			     wrap);
		rc = -EBADMSG;
		goto out;
	}
	hdr_len = (size_t)(c.p - (const char *)data);
	rc = kf_hex(&c, "key", info->wrapped ? ct : master, info->wrapped ? sizeof(ct) : VOLKEY_LEN);
	if (rc)
		goto out;
	if (c.p != c.end) {
		keys_set_err("not a valid tierfs key file (trailing data)");
		rc = -EBADMSG;
		goto out;
	}
	if (!key)
		goto out;
	if (info->wrapped) {
		if (!pass) {
			keys_set_err("key is protected by a passphrase and none was given");
			rc = -ENOKEY;
			goto out;
		}
		if ((rc = scrypt_derive(pass, salt, info->scrypt_n, info->scrypt_r, info->scrypt_p,
					wkey)))
			goto out;
		rc = key_gcm(0, wkey, nonce, data, hdr_len, ct, master, ct + VOLKEY_LEN);
		if (rc) {
			if (rc == -EACCES)
				keys_set_err("wrong passphrase (or the key file was altered)");
			goto out;
		}
	}
	if ((rc = volkey_from_master(master, key)))
		goto out;
	if (CRYPTO_memcmp(key->id, info->id, KEY_ID_SIZE)) {
		keys_set_err("key does not match its id %s: the key file is corrupt", info->id);
		volkey_release(key);
		rc = -EBADMSG;
	}
out:
	OPENSSL_cleanse(master, sizeof(master));
	OPENSSL_cleanse(wkey, sizeof(wkey));
	OPENSSL_cleanse(ct, sizeof(ct));
	return rc;
}

int key_file_parse(const void *data, size_t len, const char *passphrase, struct volkey *out)
{
	struct key_file_info info;

	if (!data || !out)
		return -EINVAL;
	return kf_parse(data, len, passphrase, &info, out);
}

int key_file_info_mem(const void *data, size_t len, struct key_file_info *out)
{
	if (!data || !out)
		return -EINVAL;
	return kf_parse(data, len, NULL, out, NULL);
}

int key_read_small_file(const char *path, struct tbuf *out)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	size_t base = out->len;
	ssize_t n;
	int rc = 0;

	if (fd < 0) {
		rc = -errno;
		keys_set_err("%s", strerror(errno));
		return rc;
	}
	for (;;) {
		if ((rc = tbuf_grow(out, 4096)))
			break;
		n = read(fd, out->data + out->len, 4096);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			keys_set_err("%s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		if (out->len - base > KEY_FILE_MAX) {
			keys_set_err("file too large for a key file");
			rc = -EFBIG;
			break;
		}
	}
	if (rc) {
		OPENSSL_cleanse(out->data + base, out->len - base);
		out->len = base;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	return rc;
}

int key_file_load(const char *path, const char *passphrase, struct volkey *out)
{
	struct tbuf b = TBUF_INIT;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = key_read_small_file(path, &b);
	if (!rc)
		rc = key_file_parse(b.data, b.len, passphrase, out);
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	tbuf_release(&b);
	return rc;
}

int key_file_info(const char *path, struct key_file_info *out)
{
	struct tbuf b = TBUF_INIT;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = key_read_small_file(path, &b);
	if (!rc)
		rc = key_file_info_mem(b.data, b.len, out);
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	tbuf_release(&b);
	return rc;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
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

/* fsync the directory holding path, so a rename into it is durable. */
static int fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = -ENOMEM;

	if (!copy)
		return rc;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 || fsync(fd) ? -errno : 0;
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

int key_write_new_file(const char *path, const void *data, size_t len)
{
	char *tmp = NULL;
	int fd = -1, rc;

	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		keys_set_err("out of memory");
		return -ENOMEM;
	}
	fd = mkostemp(tmp, O_CLOEXEC); /* created with mode 0600 */
	if (fd < 0) {
		rc = -errno;
		keys_set_err("cannot create a temporary file: %s", strerror(errno));
		free(tmp);
		return rc;
	}
	rc = 0;
	if (fchmod(fd, 0600) || (rc = write_all(fd, data, len)) || fsync(fd)) {
		rc = rc ? rc : -errno;
		keys_set_err("cannot write: %s", strerror(-rc));
		goto out;
	}
	if (close(fd)) {
		fd = -1;
		rc = -errno;
		keys_set_err("cannot write: %s", strerror(-rc));
		goto out;
	}
	fd = -1;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE)) {
		rc = -errno;
		/* Filesystems without RENAME_NOREPLACE: link() never replaces either. */
		if ((rc == -EINVAL || rc == -ENOSYS) && link(tmp, path) == 0)
			rc = 0;
		else if (rc == -EINVAL || rc == -ENOSYS)
			rc = -errno;
		if (rc) {
			if (rc == -EEXIST)
				keys_set_err("file exists; a key is never overwritten");
			else
				keys_set_err("cannot rename into place: %s", strerror(-rc));
			goto out;
		}
		unlink(tmp);
	}
	free(tmp);
	tmp = NULL;
	if ((rc = fsync_parent(path)))
		keys_set_err("cannot sync the directory: %s", strerror(-rc));
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	return rc;
}

int key_file_write(const char *path, const struct volkey *k, const char *passphrase)
{
	struct tbuf b = TBUF_INIT;
	struct stat st;
	int rc;

	if (!path || !k)
		return -EINVAL;
	/* Fail before spending a second on scrypt; the rename re-checks atomically. */
	if (lstat(path, &st) == 0) {
		keys_set_err("file exists; a key is never overwritten");
		return -EEXIST;
	}
	rc = key_file_format(k, passphrase, &b);
	if (!rc)
		rc = key_write_new_file(path, b.data, b.len);
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	tbuf_release(&b);
	return rc;
}

int key_file_create(const char *path, const char *passphrase, char id_out[KEY_ID_SIZE])
{
	struct volkey k;
	int rc = volkey_generate(&k);

	if (!rc)
		rc = key_file_write(path, &k, passphrase);
	if (!rc && id_out)
		key_id(&k, id_out);
	volkey_release(&k);
	return rc;
}
