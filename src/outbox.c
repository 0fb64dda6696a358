/*
 * outbox.c - the write-back formats (interface in outbox.h; bytes in
 * docs/formats-objects.md, "Outboxes"): node keys and their key files, the
 * store keys of a node's outbox, change sets (TFW1) and acknowledgements
 * (TFK1). Every object is sealed with the node's own metadata key and the
 * key it is stored under as associated data, so an object moved to another
 * key, another node's outbox or another sequence number fails to open.
 */
#include "outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "wire_int.h"

#define MAGIC_CS "TFW1"
#define MAGIC_ACK "TFK1"
#define NODE_KEY_HEADER "tierfs-node-key v1\n"
#define CHUNK_MAX ((uint32_t)64 << 20) /* a change's chunk: at most 64 MiB of plaintext */

static __thread char errbuf[256];

static void set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
}

const char *outbox_errmsg(void)
{
	return errbuf;
}

int node_name_ok(const char *name, char *err, size_t errlen)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > NODE_NAME_MAX || name[0] == '-' ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n) {
		if (err)
			snprintf(err, errlen, "invalid node name '%.80s': use 1 to %d of A-Z a-z 0-9 . _ -,"
				 " not starting with '-'", name ? name : "", NODE_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

int outbox_dir(const struct volkey *vol, const char *name, uint32_t serial, char out[OUTBOX_DIR_SIZE])
{
	char buf[NODE_NAME_MAX + 32], h[CODEC_NAME_SIZE];
	int n = snprintf(buf, sizeof(buf), "outbox:%s:%u", name, serial);

	if (n < 0 || (size_t)n >= sizeof(buf) || codec_chunk_name(vol, buf, (size_t)n, h))
		return -EINVAL;
	memcpy(out, h, OUTBOX_DIR_SIZE - 1);
	out[OUTBOX_DIR_SIZE - 1] = '\0';
	return 0;
}

int node_key_make(const struct volkey *vol, const char *name, uint32_t serial,
		  const uint8_t secret[VOLKEY_LEN], struct node_key *out)
{
	memset(out, 0, sizeof(*out));
	if (node_name_ok(name, NULL, 0) || serial == 0)
		return -EINVAL;
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->serial = serial;
	out->vol = *vol;
	memcpy(out->secret, secret, VOLKEY_LEN);
	if (volkey_from_master(secret, &out->node) || outbox_dir(vol, name, serial, out->dir)) {
		node_key_release(out);
		return -EIO;
	}
	return 0;
}

void node_key_release(struct node_key *k)
{
	if (!k)
		return;
	volkey_release(&k->vol);
	volkey_release(&k->node);
	OPENSSL_cleanse(k, sizeof(*k));
}

/* ---- node key files ---- */

int node_key_file_format(const struct node_key *k, struct tbuf *out)
{
	char m[2 * VOLKEY_LEN + 1], s[2 * VOLKEY_LEN + 1], *text = NULL;
	int n, rc = 0;

	hex_encode(k->vol.master, VOLKEY_LEN, m);
	hex_encode(k->secret, VOLKEY_LEN, s);
	n = asprintf(&text, NODE_KEY_HEADER "node=%s\nserial=%u\nid=%s\nkey=%s\nsecret=%s\n", k->name,
		     k->serial, k->vol.id, m, s);
	if (n < 0 || tbuf_append(out, text, (size_t)n))
		rc = -ENOMEM;
	if (n >= 0) {
		OPENSSL_cleanse(text, (size_t)n);
		free(text);
	}
	OPENSSL_cleanse(m, sizeof(m));
	OPENSSL_cleanse(s, sizeof(s));
	return rc;
}

/* The value of "field=" at *p up to its newline; advances *p. NULL if absent. */
static const char *field(const char **p, const char *end, const char *name, size_t *len)
{
	size_t n = strlen(name);
	const char *nl;

	if ((size_t)(end - *p) <= n || memcmp(*p, name, n) || (*p)[n] != '=')
		return NULL;
	nl = memchr(*p + n + 1, '\n', (size_t)(end - *p - (ptrdiff_t)n - 1));
	if (!nl)
		return NULL;
	*len = (size_t)(nl - (*p + n + 1));
	const char *v = *p + n + 1;
	*p = nl + 1;
	return v;
}

static int unhex32(const char *v, size_t len, uint8_t out[VOLKEY_LEN])
{
	if (len != 2 * VOLKEY_LEN)
		return -1;
	for (size_t i = 0; i < VOLKEY_LEN; i++) {
		int hi, lo;
		char a = v[2 * i], b = v[2 * i + 1];

		hi = a >= '0' && a <= '9' ? a - '0' : a >= 'a' && a <= 'f' ? a - 'a' + 10 : -1;
		lo = b >= '0' && b <= '9' ? b - '0' : b >= 'a' && b <= 'f' ? b - 'a' + 10 : -1;
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int node_key_file_parse(const void *data, size_t len, struct node_key *out)
{
	const char *p = data, *end = p + len, *v;
	char name[NODE_NAME_MAX + 1], id[KEY_ID_SIZE];
	uint8_t master[VOLKEY_LEN], secret[VOLKEY_LEN];
	unsigned long serial;
	struct volkey vol;
	size_t n;
	char *e;
	int rc = -EBADMSG;

	memset(out, 0, sizeof(*out));
	if (len < strlen(NODE_KEY_HEADER) || memcmp(p, NODE_KEY_HEADER, strlen(NODE_KEY_HEADER))) {
		set_err("not a tierfs node key file");
		return -EBADMSG;
	}
	p += strlen(NODE_KEY_HEADER);
	if (!(v = field(&p, end, "node", &n)) || n > NODE_NAME_MAX)
		goto bad;
	memcpy(name, v, n);
	name[n] = '\0';
	if (node_name_ok(name, NULL, 0))
		goto bad;
	if (!(v = field(&p, end, "serial", &n)) || n == 0 || n > 10 || v[0] == '0')
		goto bad;
	{
		char num[12];

		memcpy(num, v, n);
		num[n] = '\0';
		serial = strtoul(num, &e, 10);
		if (*e || serial == 0 || serial > UINT32_MAX)
			goto bad;
	}
	if (!(v = field(&p, end, "id", &n)) || n != KEY_ID_SIZE - 1)
		goto bad;
	memcpy(id, v, n);
	id[n] = '\0';
	if (!(v = field(&p, end, "key", &n)) || unhex32(v, n, master))
		goto bad;
	if (!(v = field(&p, end, "secret", &n)) || unhex32(v, n, secret))
		goto bad;
	if (p != end)
		goto bad;
	if (volkey_from_master(master, &vol)) {
		rc = -EIO;
		goto out;
	}
	if (strcmp(vol.id, id)) {
		set_err("the volume key does not match its id %s (damaged key file)", id);
		volkey_release(&vol);
		goto out;
	}
	rc = node_key_make(&vol, name, (uint32_t)serial, secret, out);
	volkey_release(&vol);
	goto out;
bad:
	set_err("malformed node key file");
out:
	OPENSSL_cleanse(master, sizeof(master));
	OPENSSL_cleanse(secret, sizeof(secret));
	return rc;
}

int node_key_file_write(const char *path, const struct node_key *k)
{
	struct tbuf b = TBUF_INIT;
	int rc = node_key_file_format(k, &b);

	if (!rc && !strcmp(path, "-")) {
		rc = fwrite(b.data, 1, b.len, stdout) == b.len && fflush(stdout) == 0 ? 0 : -EIO;
	} else if (!rc) {
		rc = key_write_new_file(path, b.data, b.len);
		if (rc)
			set_err("%s", keys_errmsg());
	}
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	tbuf_release(&b);
	return rc;
}

int node_key_file_load(const char *path, struct node_key *out)
{
	struct tbuf b = TBUF_INIT;
	int rc = key_read_small_file(path, &b);

	if (rc)
		set_err("cannot read '%s': %s", path, strerror(-rc));
	else
		rc = node_key_file_parse(b.data, b.len, out);
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	tbuf_release(&b);
	return rc;
}

int outbox_is_node_key_file(const char *path)
{
	char head[sizeof(NODE_KEY_HEADER)];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, head, strlen(NODE_KEY_HEADER));
	close(fd);
	if (n < 0)
		return -errno;
	return (size_t)n == strlen(NODE_KEY_HEADER) && !memcmp(head, NODE_KEY_HEADER, (size_t)n);
}

/* ---- store keys ---- */

void outbox_key_prefix(const char *dir, char *out)
{
	snprintf(out, OUTBOX_KEY_MAX, "outbox/%s/", dir);
}

void outbox_key_cs(const char *dir, uint64_t seq, char *out)
{
	snprintf(out, OUTBOX_KEY_MAX, "outbox/%s/cs/%016llx", dir, (unsigned long long)seq);
}

void outbox_key_ack(const char *dir, uint64_t seq, char *out)
{
	snprintf(out, OUTBOX_KEY_MAX, "outbox/%s/acks/%016llx", dir, (unsigned long long)seq);
}

void outbox_key_chunks(const char *dir, uint64_t seq, char *out)
{
	snprintf(out, OUTBOX_KEY_MAX, "outbox/%s/chunks/%016llx/", dir, (unsigned long long)seq);
}

void outbox_key_chunk(const char *dir, uint64_t seq, const char *name, char *out)
{
	snprintf(out, OUTBOX_KEY_MAX, "outbox/%s/chunks/%016llx/%s", dir, (unsigned long long)seq, name);
}

int outbox_key_seq(const char *key, uint64_t *seq_out)
{
	const char *s = strrchr(key, '/');
	uint64_t v = 0;

	s = s ? s + 1 : key;
	if (strlen(s) != 16)
		return -EINVAL;
	for (int i = 0; i < 16; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -EINVAL;
		v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	if (!v)
		return -EINVAL;
	*seq_out = v;
	return 0;
}

/* ---- change sets ---- */

int outbox_path_ok(const char *path)
{
	size_t n = path ? strlen(path) : 0;

	if (n < 2 || n > OUTBOX_PATH_MAX || path[0] != '/' || path[n - 1] == '/')
		return 0;
	for (const char *c = path + 1; *c;) {
		size_t l = strcspn(c, "/");

		if (l == 0 || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.') || l > 255)
			return 0;
		c += l;
		if (*c)
			c++;
	}
	return 1;
}

static int seal(const struct node_key *k, const char *key, struct tbuf *plain, struct tbuf *out)
{
	return codec_seal(&k->node, plain->data, plain->len, key, strlen(key), CODEC_LEVEL_DEFAULT, out);
}

/* Open a sealed object of the node's outbox; message on failure. */
static int unseal(const struct node_key *k, const char *key, const void *obj, size_t len,
		  struct tbuf *out)
{
	int rc = codec_open(&k->node, obj, len, key, strlen(key), out);

	if (rc)
		set_err("'%s' failed verification (not sealed by node '%s' under this name: tampered,"
			" damaged, moved or another node's): %s", key, k->name, codec_errmsg());
	return rc;
}

int outbox_cs_encode(const struct node_key *k, const struct outbox_cs *cs, struct tbuf *sealed_out)
{
	struct tbuf p = TBUF_INIT;
	char key[OUTBOX_KEY_MAX];
	int rc = put(&p, MAGIC_CS, 4) || put_str16(&p, k->name) || put_u32(&p, k->serial) ||
			 put_u64(&p, cs->seq) || put_u64(&p, (uint64_t)cs->created) ||
			 put_u32(&p, (uint32_t)cs->n) ? -ENOMEM : 0;

	for (size_t i = 0; !rc && i < cs->n; i++) {
		const struct outbox_change *c = &cs->ch[i];

		if (!outbox_path_ok(c->path) || c->op < OUTBOX_FILE || c->op > OUTBOX_ATTR) {
			rc = -EINVAL;
			break;
		}
		rc = put_u8(&p, c->op) || put_str16(&p, c->path) || put_u32(&p, c->mode) ||
				     put_u64(&p, (uint64_t)c->mtime) || put_u8(&p, c->base) ||
				     put_u64(&p, c->base_fid) || put_u64(&p, (uint64_t)c->base_mtime) ||
				     put_u64(&p, c->base_size) ? -ENOMEM : 0;
		if (!rc && c->op == OUTBOX_FILE) {
			rc = put_u64(&p, c->size) || put_u32(&p, (uint32_t)c->n) ? -ENOMEM : 0;
			for (size_t j = 0; !rc && j < c->n; j++)
				rc = put(&p, c->c[j].name, CODEC_NAME_LEN) || put_u32(&p, c->c[j].len) ? -ENOMEM : 0;
		} else if (!rc && c->op == OUTBOX_SYMLINK) {
			rc = put_str16(&p, c->target);
		}
	}
	if (!rc) {
		outbox_key_cs(k->dir, cs->seq, key);
		rc = seal(k, key, &p, sealed_out);
	}
	tbuf_release(&p);
	return rc;
}

void outbox_cs_release(struct outbox_cs *cs)
{
	for (size_t i = 0; cs->ch && i < cs->n; i++) {
		free(cs->ch[i].path);
		free(cs->ch[i].c);
		free(cs->ch[i].target);
	}
	free(cs->ch);
	memset(cs, 0, sizeof(*cs));
}

static int hexname_ok(const uint8_t *s)
{
	for (int i = 0; i < CODEC_NAME_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* One change; sets r->bad (with a message) on anything malformed. */
static int cs_read_change(struct rd *r, struct outbox_change *c)
{
	c->op = (uint8_t)get_le(r, 1);
	c->path = get_str16(r);
	c->mode = (uint32_t)get_le(r, 4);
	c->mtime = (int64_t)get_le(r, 8);
	c->base = (uint8_t)get_le(r, 1);
	c->base_fid = get_le(r, 8);
	c->base_mtime = (int64_t)get_le(r, 8);
	c->base_size = get_le(r, 8);
	if (r->bad)
		return -EBADMSG;
	if (c->op < OUTBOX_FILE || c->op > OUTBOX_ATTR || c->base > OUTBOX_BASE_OWN) {
		set_err("unknown change kind %u or base %u", c->op, c->base);
		return -EBADMSG;
	}
	if (!outbox_path_ok(c->path)) {
		set_err("malformed path in a change (empty, relative, '.', '..' or '//' component)");
		return -EBADMSG;
	}
	if (c->op == OUTBOX_FILE) {
		uint64_t n, sum = 0;

		c->size = get_le(r, 8);
		n = get_le(r, 4);
		if (r->bad || n > r->left / (CODEC_NAME_LEN + 4)) {
			set_err("truncated chunk list");
			return -EBADMSG;
		}
		c->c = calloc(n ? n : 1, sizeof(*c->c));
		if (!c->c)
			return -ENOMEM;
		for (uint64_t j = 0; j < n; j++) {
			const uint8_t *s = take(r, CODEC_NAME_LEN);

			c->c[j].len = (uint32_t)get_le(r, 4);
			if (!s || r->bad || !hexname_ok(s) || c->c[j].len == 0 || c->c[j].len > CHUNK_MAX) {
				set_err("malformed chunk entry");
				return -EBADMSG;
			}
			memcpy(c->c[j].name, s, CODEC_NAME_LEN);
			c->c[j].name[CODEC_NAME_LEN] = '\0';
			sum += c->c[j].len;
			c->n++;
		}
		if (sum != c->size) {
			set_err("chunk lengths add up to %llu, the change says %llu bytes",
				(unsigned long long)sum, (unsigned long long)c->size);
			return -EBADMSG;
		}
	} else if (c->op == OUTBOX_SYMLINK) {
		c->target = get_str16(r);
		if (r->bad || !c->target || !*c->target) {
			set_err("malformed symlink target");
			return -EBADMSG;
		}
	}
	return r->bad ? -EBADMSG : 0;
}

int outbox_cs_decode(const struct node_key *k, const char *key, const void *obj, size_t len,
		     struct outbox_cs *out)
{
	struct tbuf p = TBUF_INIT;
	char expect[OUTBOX_KEY_MAX], *name = NULL;
	uint64_t n, kseq;
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (outbox_key_seq(key, &kseq)) {
		set_err("'%s' is not a change set key", key);
		return -EBADMSG;
	}
	outbox_key_cs(k->dir, kseq, expect);
	if (strcmp(expect, key)) {
		set_err("'%s' is not in the outbox of node '%s'", key, k->name);
		return -EBADMSG;
	}
	rc = unseal(k, key, obj, len, &p);
	if (rc)
		return rc;
	r.p = p.data;
	r.left = p.len;
	r.bad = 0;
	r.bad = !magic_ok(&r, MAGIC_CS);
	name = get_str16(&r);
	out->serial = (uint32_t)get_le(&r, 4);
	out->seq = get_le(&r, 8);
	out->created = (int64_t)get_le(&r, 8);
	n = get_le(&r, 4);
	if (r.bad || !name || strcmp(name, k->name) || out->serial != k->serial || out->seq != kseq) {
		set_err("'%s' names another node, key or sequence than it is stored as", key);
		rc = -EBADMSG;
		goto out;
	}
	snprintf(out->node, sizeof(out->node), "%s", name);
	if (n > OUTBOX_MAX_CHANGES || n > r.left / 30) {
		set_err("'%s' claims %llu changes", key, (unsigned long long)n);
		rc = -EBADMSG;
		goto out;
	}
	out->ch = calloc(n ? n : 1, sizeof(*out->ch));
	if (!out->ch) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; !rc && i < n; i++) {
		out->n++;
		rc = cs_read_change(&r, &out->ch[i]);
	}
	if (!rc && (r.bad || r.left)) {
		set_err("'%s' has trailing or missing bytes", key);
		rc = -EBADMSG;
	}
out:
	free(name);
	if (rc)
		outbox_cs_release(out);
	tbuf_release(&p);
	return rc;
}

/* ---- acknowledgements ---- */

const char *outbox_state_name(int state)
{
	static const char *const names[] = { "pending", "uploaded", "imported", "conflict", "rejected", "kept" };

	return state >= 0 && state <= OUTBOX_KEPT ? names[state] : "?";
}

int outbox_ack_encode(const struct node_key *k, const struct outbox_ack *a, struct tbuf *sealed_out)
{
	struct tbuf p = TBUF_INIT;
	char key[OUTBOX_KEY_MAX];
	int rc = put(&p, MAGIC_ACK, 4) || put_u64(&p, a->seq) || put_u64(&p, (uint64_t)a->when) ||
			 put_u64(&p, a->snap_seq) || put_u32(&p, (uint32_t)a->n) ? -ENOMEM : 0;

	for (size_t i = 0; !rc && i < a->n; i++) {
		const struct outbox_result *x = &a->r[i];

		rc = put_u8(&p, x->state) || put_u64(&p, x->fid) || put_u64(&p, (uint64_t)x->mtime) ||
				     put_u64(&p, x->size) ? -ENOMEM : 0;
		if (!rc)
			rc = put_str16(&p, x->detail ? x->detail : "");
	}
	if (!rc) {
		outbox_key_ack(k->dir, a->seq, key);
		rc = seal(k, key, &p, sealed_out);
	}
	tbuf_release(&p);
	return rc;
}

void outbox_ack_release(struct outbox_ack *a)
{
	for (size_t i = 0; a->r && i < a->n; i++)
		free(a->r[i].detail);
	free(a->r);
	memset(a, 0, sizeof(*a));
}

int outbox_ack_decode(const struct node_key *k, const char *key, const void *obj, size_t len,
		      struct outbox_ack *out)
{
	struct tbuf p = TBUF_INIT;
	uint64_t n, kseq;
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (outbox_key_seq(key, &kseq)) {
		set_err("'%s' is not an acknowledgement key", key);
		return -EBADMSG;
	}
	rc = unseal(k, key, obj, len, &p);
	if (rc)
		return rc;
	r.p = p.data;
	r.left = p.len;
	r.bad = 0;
	r.bad = !magic_ok(&r, MAGIC_ACK);
	out->seq = get_le(&r, 8);
	out->when = (int64_t)get_le(&r, 8);
	out->snap_seq = get_le(&r, 8);
	n = get_le(&r, 4);
	if (r.bad || out->seq != kseq || n > OUTBOX_MAX_CHANGES || n > r.left / 27) {
		set_err("'%s' is malformed or answers another change set", key);
		rc = -EBADMSG;
		goto out;
	}
	out->r = calloc(n ? n : 1, sizeof(*out->r));
	if (!out->r) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < n && !r.bad; i++) {
		struct outbox_result *x = &out->r[i];

		x->state = (uint8_t)get_le(&r, 1);
		x->fid = get_le(&r, 8);
		x->mtime = (int64_t)get_le(&r, 8);
		x->size = get_le(&r, 8);
		x->detail = get_str16(&r);
		out->n++;
		if (x->state < OUTBOX_IMPORTED || x->state > OUTBOX_KEPT)
			r.bad = 1;
	}
	if (r.bad || r.left) {
		set_err("'%s' is malformed", key);
		rc = -EBADMSG;
	}
out:
	if (rc)
		outbox_ack_release(out);
	tbuf_release(&p);
	return rc;
}
