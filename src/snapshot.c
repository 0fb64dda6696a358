/*
 * snapshot.c - encoding and decoding of the published namespace's objects
 * (formats in snapshot.h and docs/formats-objects.md). Every object is
 * sealed with the key it is stored under as associated data; directory
 * objects are also named by the keyed hash of their plaintext, which the
 * decoder checks, so a directory cannot be swapped for another.
 */
#include "snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire_int.h"

#define MAGIC_DIR "TFD1"
#define MAGIC_MAN "TFM1"
#define MAGIC_ROOT1 "TFN1" /* version 1 root: no cloud-write rules */
#define MAGIC_ROOT "TFN2"
#define MAGIC_WRULES "TFR1"
#define MAGIC_HEAD "TFP1"
#define MAGIC_REQ "TFQ1"

/* ---- keys ---- */

void snap_key_head(char *out)
{
	snprintf(out, SNAP_KEY_MAX, "head");
}

void snap_key_snapshot(uint64_t seq, char *out)
{
	snprintf(out, SNAP_KEY_MAX, "snaps/%016llx", (unsigned long long)seq);
}

void snap_key_dir(const char *name, char *out)
{
	snprintf(out, SNAP_KEY_MAX, "dirs/%.2s/%s", name, name);
}

void snap_key_manifest(const char *name, char *out)
{
	snprintf(out, SNAP_KEY_MAX, "files/%.2s/%s", name, name);
}

void snap_key_chunk(const char *name, char *out)
{
	snprintf(out, SNAP_KEY_MAX, "chunks/%.2s/%s", name, name);
}

void snap_key_wrules(const char *name, char *out)
{
	snprintf(out, SNAP_KEY_MAX, "rules/%.2s/%s", name, name);
}

int snap_fid(const struct volkey *k, uint64_t ino, uint32_t attempt, uint64_t *fid_out)
{
	char buf[64], h[CODEC_NAME_SIZE];
	int n = attempt ? snprintf(buf, sizeof(buf), "fid:%llu:%u", (unsigned long long)ino, attempt)
			: snprintf(buf, sizeof(buf), "fid:%llu", (unsigned long long)ino);
	int rc = codec_chunk_name(k, buf, (size_t)n, h);

	if (rc)
		return rc;
	h[16] = '\0';
	*fid_out = strtoull(h, NULL, 16) >> 2; /* 62 bits: a cloud node numbers its own files from 2^62 */
	return 0;
}

int snap_manifest_name(const struct volkey *k, uint64_t fid, int64_t mtime, uint64_t size,
		       char out[CODEC_NAME_SIZE])
{
	char buf[96];
	int n = snprintf(buf, sizeof(buf), "manifest:%llu:%lld:%llu", (unsigned long long)fid,
			 (long long)mtime, (unsigned long long)size);

	return codec_chunk_name(k, buf, (size_t)n, out);
}

static int seal_for(const struct volkey *k, const char *key, struct tbuf *plain, struct tbuf *out)
{
	return codec_seal(k, plain->data, plain->len, key, strlen(key), CODEC_LEVEL_DEFAULT, out);
}

static int open_for(const struct volkey *k, const char *key, const void *obj, size_t len, struct tbuf *out)
{
	return codec_open(k, obj, len, key, strlen(key), out);
}

/* Open an object named by the keyed hash of its plaintext (directories,
 * cloud-write rules): sealed for this key, and also this content. */
static int open_named(const struct volkey *k, const char *key, const char *name, const void *obj,
		      size_t len, struct tbuf *out)
{
	char check[CODEC_NAME_SIZE];
	int rc = open_for(k, key, obj, len, out);

	if (!rc && (codec_chunk_name(k, out->data, out->len, check) || strcmp(check, name))) {
		tbuf_reset(out);
		rc = -EBADMSG;
	}
	return rc;
}

/* ---- directories ---- */

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct snap_entry *)a)->name, ((const struct snap_entry *)b)->name);
}

void snap_dir_sort(struct snap_dir *d)
{
	if (d->n > 1)
		qsort(d->e, d->n, sizeof(*d->e), cmp_entry);
}

const struct snap_entry *snap_dir_find(const struct snap_dir *d, const char *name)
{
	struct snap_entry key;

	memset(&key, 0, sizeof(key));
	key.name = (char *)name;
	return d->n ? bsearch(&key, d->e, d->n, sizeof(*d->e), cmp_entry) : NULL;
}

int snap_dir_encode(const struct volkey *k, const struct snap_dir *d, char name_out[CODEC_NAME_SIZE],
		    struct tbuf *sealed_out)
{
	struct tbuf p = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	int rc = put(&p, MAGIC_DIR, 4) || put_u32(&p, (uint32_t)d->n) ? -ENOMEM : 0;

	for (size_t i = 0; !rc && i < d->n; i++) {
		const struct snap_entry *e = &d->e[i];

		if (put_u8(&p, e->type) || put_u8(&p, e->has_data) || put_u64(&p, e->fid) ||
		    put_u32(&p, e->mode) || put_u32(&p, e->uid) || put_u32(&p, e->gid) ||
		    put_u64(&p, e->size) || put_u64(&p, (uint64_t)e->mtime) ||
		    put_u64(&p, (uint64_t)e->ctime))
			rc = -ENOMEM;
		if (!rc)
			rc = put_str16(&p, e->name);
		if (!rc)
			rc = put_str16(&p, e->ref);
	}
	if (!rc)
		rc = codec_chunk_name(k, p.data, p.len, name_out);
	if (!rc) {
		snap_key_dir(name_out, key);
		rc = seal_for(k, key, &p, sealed_out);
	}
	tbuf_release(&p);
	return rc;
}

void snap_dir_release(struct snap_dir *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->e[i].name);
		free(d->e[i].ref);
	}
	free(d->e);
	d->e = NULL;
	d->n = 0;
}

int snap_dir_decode(const struct volkey *k, const char *name, const void *obj, size_t len,
		    struct snap_dir *out)
{
	struct tbuf p = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	struct rd r;
	uint32_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	snap_key_dir(name, key);
	rc = open_named(k, key, name, obj, len, &p); /* the key's, and this content */
	if (rc) {
		tbuf_release(&p);
		return rc;
	}
	r.p = p.data;
	r.left = p.len;
	r.bad = 0;
	if (!magic_ok(&r, MAGIC_DIR)) {
		rc = -EBADMSG;
		goto out;
	}
	n = (uint32_t)get_le(&r, 4);
	if (n > r.left / 40) { /* every entry takes at least 40 bytes */
		rc = -EBADMSG;
		goto out;
	}
	out->e = calloc(n ? n : 1, sizeof(*out->e));
	if (!out->e) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n && !r.bad; i++) {
		struct snap_entry *e = &out->e[i];

		e->type = (uint8_t)get_le(&r, 1);
		e->has_data = (uint8_t)get_le(&r, 1);
		e->fid = get_le(&r, 8);
		e->mode = (uint32_t)get_le(&r, 4);
		e->uid = (uint32_t)get_le(&r, 4);
		e->gid = (uint32_t)get_le(&r, 4);
		e->size = get_le(&r, 8);
		e->mtime = (int64_t)get_le(&r, 8);
		e->ctime = (int64_t)get_le(&r, 8);
		e->name = get_str16(&r);
		e->ref = get_str16(&r);
		out->n = i + 1;
		if (!r.bad && (!e->name[0] || strchr(e->name, '/') || e->type < SNAP_FILE || e->type > SNAP_SYMLINK))
			r.bad = 1;
		if (!r.bad && i && strcmp(out->e[i - 1].name, e->name) >= 0)
			r.bad = 1; /* must be sorted and unique */
	}
	if (r.bad || r.left) {
		rc = -EBADMSG;
		snap_dir_release(out);
	}
out:
	tbuf_release(&p);
	return rc;
}

/* ---- manifests ---- */

int snap_manifest_encode(const struct volkey *k, const struct snap_manifest *m, struct tbuf *sealed_out)
{
	struct tbuf p = TBUF_INIT;
	char name[CODEC_NAME_SIZE], key[SNAP_KEY_MAX];
	int rc = put(&p, MAGIC_MAN, 4) || put_u64(&p, m->fid) || put_u64(&p, m->size) ||
			 put_u64(&p, (uint64_t)m->mtime) || put_u32(&p, m->chunk_size) ||
			 put_u32(&p, (uint32_t)m->n) ? -ENOMEM : 0;

	for (size_t i = 0; !rc && i < m->n; i++)
		if (put(&p, m->c[i].name, CODEC_NAME_LEN) || put_u32(&p, m->c[i].len))
			rc = -ENOMEM;
	if (!rc)
		rc = snap_manifest_name(k, m->fid, m->mtime, m->size, name);
	if (!rc) {
		snap_key_manifest(name, key);
		rc = seal_for(k, key, &p, sealed_out);
	}
	tbuf_release(&p);
	return rc;
}

void snap_manifest_release(struct snap_manifest *m)
{
	free(m->c);
	m->c = NULL;
	m->n = 0;
}

int snap_manifest_decode(const struct volkey *k, const char *name, const void *obj, size_t len,
			 struct snap_manifest *out)
{
	struct tbuf p = TBUF_INIT;
	char key[SNAP_KEY_MAX], check[CODEC_NAME_SIZE];
	struct rd r;
	uint32_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	snap_key_manifest(name, key);
	rc = open_for(k, key, obj, len, &p);
	if (rc)
		return rc;
	r.p = p.data;
	r.left = p.len;
	r.bad = 0;
	if (!magic_ok(&r, MAGIC_MAN))
		r.bad = 1;
	out->fid = get_le(&r, 8);
	out->size = get_le(&r, 8);
	out->mtime = (int64_t)get_le(&r, 8);
	out->chunk_size = (uint32_t)get_le(&r, 4);
	n = (uint32_t)get_le(&r, 4);
	if (!r.bad && (n > r.left / (CODEC_NAME_LEN + 4) || !out->chunk_size))
		r.bad = 1;
	if (!r.bad) {
		out->c = calloc(n ? n : 1, sizeof(*out->c));
		if (!out->c) {
			rc = -ENOMEM;
			goto out;
		}
		out->n = n;
	}
	for (uint32_t i = 0; i < n && !r.bad; i++) {
		const uint8_t *c = take(&r, CODEC_NAME_LEN);

		if (c)
			memcpy(out->c[i].name, c, CODEC_NAME_LEN);
		out->c[i].len = (uint32_t)get_le(&r, 4);
	}
	/* It must be the manifest of the version its key names. */
	if (!r.bad && (snap_manifest_name(k, out->fid, out->mtime, out->size, check) || strcmp(check, name)))
		r.bad = 1;
	if (r.bad || r.left) {
		rc = -EBADMSG;
		snap_manifest_release(out);
	}
out:
	tbuf_release(&p);
	return rc;
}

int snap_root_encode(const struct volkey *k, const struct snap_root *rt, struct tbuf *sealed_out)
{
	struct tbuf p = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	int rc = put(&p, MAGIC_ROOT, 4) || put_u64(&p, rt->seq) || put_u64(&p, (uint64_t)rt->created) ||
			 put(&p, rt->volume_id, 32) || put(&p, rt->root, CODEC_NAME_LEN) ||
			 put_u32(&p, rt->root_mode) || put_u32(&p, rt->root_uid) ||
			 put_u32(&p, rt->root_gid) || put_u64(&p, (uint64_t)rt->root_mtime) ? -ENOMEM : 0;
	size_t wl = strnlen(rt->wrules, CODEC_NAME_SIZE);

	if (!rc && wl != 0 && wl != CODEC_NAME_LEN)
		rc = -EINVAL;
	if (!rc && (put_u8(&p, wl ? 1 : 0) || (wl && put(&p, rt->wrules, CODEC_NAME_LEN))))
		rc = -ENOMEM;
	if (!rc) {
		snap_key_snapshot(rt->seq, key);
		rc = seal_for(k, key, &p, sealed_out);
	}
	tbuf_release(&p);
	return rc;
}

int snap_root_decode(const struct volkey *k, uint64_t seq, const void *obj, size_t len,
		     struct snap_root *out)
{
	struct tbuf p = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	const uint8_t *s;
	struct rd r;
	int rc, v2;

	memset(out, 0, sizeof(*out));
	snap_key_snapshot(seq, key);
	rc = open_for(k, key, obj, len, &p);
	if (rc)
		return rc;
	r.p = p.data;
	r.left = p.len;
	r.bad = 0;
	v2 = p.len >= 4 && !memcmp(p.data, MAGIC_ROOT, 4);
	if (!magic_ok(&r, v2 ? MAGIC_ROOT : MAGIC_ROOT1))
		r.bad = 1;
	out->seq = get_le(&r, 8);
	out->created = (int64_t)get_le(&r, 8);
	s = take(&r, 32);
	if (s)
		memcpy(out->volume_id, s, 32);
	s = take(&r, CODEC_NAME_LEN);
	if (s)
		memcpy(out->root, s, CODEC_NAME_LEN);
	out->root_mode = (uint32_t)get_le(&r, 4);
	out->root_uid = (uint32_t)get_le(&r, 4);
	out->root_gid = (uint32_t)get_le(&r, 4);
	out->root_mtime = (int64_t)get_le(&r, 8);
	if (v2) {
		uint64_t has = get_le(&r, 1);

		s = has == 1 ? take(&r, CODEC_NAME_LEN) : NULL;
		if (has > 1)
			r.bad = 1;
		for (int i = 0; s && i < CODEC_NAME_LEN; i++)
			if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
				r.bad = 1;
		if (s)
			memcpy(out->wrules, s, CODEC_NAME_LEN);
	}
	if (r.bad || r.left || out->seq != seq)
		rc = -EBADMSG;
	tbuf_release(&p);
	return rc;
}

/* ---- cloud-write rules ---- */

int snap_wrules_encode(const struct volkey *k, const struct snap_wrules *w, char name_out[CODEC_NAME_SIZE],
		       struct tbuf *sealed_out)
{
	struct tbuf p = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	int rc = put(&p, MAGIC_WRULES, 4) || put_u32(&p, (uint32_t)w->n) ? -ENOMEM : 0;

	for (size_t i = 0; !rc && i < w->n; i++)
		rc = put_str16(&p, w->glob[i]);
	if (!rc)
		rc = codec_chunk_name(k, p.data, p.len, name_out);
	if (!rc) {
		snap_key_wrules(name_out, key);
		rc = seal_for(k, key, &p, sealed_out);
	}
	tbuf_release(&p);
	return rc;
}

void snap_wrules_release(struct snap_wrules *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->glob[i]);
	free(w->glob);
	w->glob = NULL;
	w->n = 0;
}

int snap_wrules_decode(const struct volkey *k, const char *name, const void *obj, size_t len,
		       struct snap_wrules *out)
{
	struct tbuf p = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	struct rd r;
	uint64_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	snap_key_wrules(name, key);
	rc = open_named(k, key, name, obj, len, &p);
	if (rc) {
		tbuf_release(&p);
		return rc;
	}
	r.p = p.data;
	r.left = p.len;
	r.bad = 0;
	if (!magic_ok(&r, MAGIC_WRULES))
		r.bad = 1;
	n = get_le(&r, 4);
	if (!r.bad && n > r.left / 2)
		r.bad = 1;
	if (!r.bad && n && !(out->glob = calloc(n, sizeof(*out->glob))))
		rc = -ENOMEM;
	for (uint64_t i = 0; !rc && !r.bad && i < n; i++) {
		out->glob[i] = get_str16(&r);
		if (out->glob[i])
			out->n++;
	}
	if (!rc && (r.bad || r.left))
		rc = -EBADMSG;
	if (rc)
		snap_wrules_release(out);
	tbuf_release(&p);
	return rc;
}

int snap_head_encode(const struct volkey *k, uint64_t seq, struct tbuf *sealed_out)
{
	struct tbuf p = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	int rc = put(&p, MAGIC_HEAD, 4) || put_u64(&p, seq) ? -ENOMEM : 0;

	snap_key_head(key);
	if (!rc)
		rc = seal_for(k, key, &p, sealed_out);
	tbuf_release(&p);
	return rc;
}

int snap_head_decode(const struct volkey *k, const void *obj, size_t len, uint64_t *seq_out)
{
	struct tbuf p = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	struct rd r;
	int rc;

	snap_key_head(key);
	rc = open_for(k, key, obj, len, &p);
	if (rc)
		return rc;
	r.p = p.data;
	r.left = p.len;
	r.bad = 0;
	if (!magic_ok(&r, MAGIC_HEAD))
		r.bad = 1;
	*seq_out = get_le(&r, 8);
	if (r.bad || r.left)
		rc = -EBADMSG;
	tbuf_release(&p);
	return rc;
}

int snap_request_encode(const struct volkey *k, const char *key, const struct snap_request *rq,
			struct tbuf *sealed_out)
{
	struct tbuf p = TBUF_INIT;
	int rc = put(&p, MAGIC_REQ, 4) || put_u64(&p, rq->fid) || put_u64(&p, rq->size) ||
			 put_u64(&p, (uint64_t)rq->mtime) ? -ENOMEM : 0;

	if (!rc)
		rc = seal_for(k, key, &p, sealed_out);
	tbuf_release(&p);
	return rc;
}

int snap_request_decode(const struct volkey *k, const char *key, const void *obj, size_t len,
			struct snap_request *out)
{
	struct tbuf p = TBUF_INIT;
	struct rd r;
	int rc = open_for(k, key, obj, len, &p);

	if (rc)
		return rc;
	r.p = p.data;
	r.left = p.len;
	r.bad = 0;
	if (!magic_ok(&r, MAGIC_REQ))
		r.bad = 1;
	out->fid = get_le(&r, 8);
	out->size = get_le(&r, 8);
	out->mtime = (int64_t)get_le(&r, 8);
	if (r.bad || r.left)
		rc = -EBADMSG;
	tbuf_release(&p);
	return rc;
}
