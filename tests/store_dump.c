/*
 * store_dump.c - reads every object of a volume's store and decrypts it
 * with the volume key, for the privacy audits of the integration tests
 * (symlink_privacy.sh): what a thief holding the key file would learn.
 * Prints one block per object: its key, then its decoded content as text
 * (directory entries with every field, manifests, snapshots, head) or, for
 * chunks, the raw plaintext. An object that does not decode is reported
 * as "undecodable KEY" and makes the exit status 1.
 *
 * usage: store_dump KEYFILE URL
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "keys.h"
#include "snapshot.h"
#include "store.h"
#include "util.h"

struct keys {
	char **k;
	size_t n, cap;
};

static int add(void *arg, const char *key, uint64_t size)
{
	struct keys *l = arg;

	(void)size;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->k = realloc(l->k, l->cap * sizeof(*l->k));
		if (!l->k)
			return 1;
	}
	l->k[l->n++] = strdup(key);
	return 0;
}

static const char *base(const char *key)
{
	const char *s = strrchr(key, '/');

	return s ? s + 1 : key;
}

static int dump(const struct volkey *k, const char *key, const struct tbuf *b)
{
	int rc = -EBADMSG;

	printf("== %s\n", key);
	if (!strncmp(key, "chunks/", 7)) {
		struct tbuf out = TBUF_INIT;

		rc = codec_decode(k, b->data, b->len, base(key), CODEC_VERIFY_NAME, &out);
		if (!rc) {
			fwrite(out.data, 1, out.len, stdout);
			fputc('\n', stdout);
		}
		tbuf_release(&out);
	} else if (!strncmp(key, "dirs/", 5)) {
		struct snap_dir d;

		rc = snap_dir_decode(k, base(key), b->data, b->len, &d);
		for (size_t i = 0; !rc && i < d.n; i++) {
			const struct snap_entry *e = &d.e[i];

			printf("entry type=%u name=%s fid=%llu mode=%o uid=%u gid=%u size=%llu mtime=%lld"
			       " ctime=%lld has_data=%u ref=%s\n", e->type, e->name, (unsigned long long)e->fid,
			       e->mode, e->uid, e->gid, (unsigned long long)e->size, (long long)e->mtime,
			       (long long)e->ctime, e->has_data, e->ref);
		}
		if (!rc)
			snap_dir_release(&d);
	} else if (!strncmp(key, "files/", 6)) {
		struct snap_manifest m;

		rc = snap_manifest_decode(k, base(key), b->data, b->len, &m);
		if (!rc) {
			printf("manifest fid=%llu size=%llu mtime=%lld chunks=%zu\n", (unsigned long long)m.fid,
			       (unsigned long long)m.size, (long long)m.mtime, m.n);
			snap_manifest_release(&m);
		}
	} else if (!strncmp(key, "snaps/", 6)) {
		struct snap_root r;

		rc = snap_root_decode(k, strtoull(base(key), NULL, 16), b->data, b->len, &r);
		if (!rc)
			printf("snapshot seq=%llu root=%s mode=%o uid=%u gid=%u mtime=%lld\n",
			       (unsigned long long)r.seq, r.root, r.root_mode, r.root_uid, r.root_gid,
			       (long long)r.root_mtime);
	} else if (!strcmp(key, "head")) {
		uint64_t seq;

		rc = snap_head_decode(k, b->data, b->len, &seq);
		if (!rc)
			printf("head seq=%llu\n", (unsigned long long)seq);
	} else {
		printf("other %zu bytes\n", b->len);
		rc = 0;
	}
	if (rc)
		printf("undecodable %s\n", key);
	return rc;
}

int main(int argc, char **argv)
{
	struct volkey k;
	struct store *st;
	struct store_opts so;
	struct keys l = { NULL, 0, 0 };
	char err[512];
	int bad = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: store_dump KEYFILE URL\n");
		return 2;
	}
	if (key_file_load(argv[1], getenv("TIERFS_PASSPHRASE"), &k)) {
		fprintf(stderr, "store_dump: cannot load key '%s'\n", argv[1]);
		return 1;
	}
	memset(&so, 0, sizeof(so));
	if (store_open(argv[2], &so, &st, err, sizeof(err))) {
		fprintf(stderr, "store_dump: %s\n", err);
		return 1;
	}
	if (store_list(st, "", add, &l) < 0) {
		fprintf(stderr, "store_dump: cannot list '%s'\n", argv[2]);
		return 1;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct tbuf b = TBUF_INIT;

		if (store_get(st, l.k[i], 0, STORE_WHOLE, &b) || dump(&k, l.k[i], &b))
			bad = 1;
		tbuf_release(&b);
		free(l.k[i]);
	}
	free(l.k);
	store_close(st);
	volkey_release(&k);
	return bad;
}
