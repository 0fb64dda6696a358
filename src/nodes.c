/*
 * nodes.c - the cloud nodes of a volume (interface in nodes.h): the `node`
 * table of the metadata store. A node's secret is kept sealed with the
 * volume's metadata key, bound to "node/NAME/SERIAL", so a copy of the
 * metadata store alone gives no node's key, and a sealed secret moved to
 * another row does not open.
 */
#include "nodes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "codec.h"
#include "log.h"

#define SQL_MAX_SERIAL "SELECT serial, revoked FROM node WHERE name=?1"
#define SQL_ADD                                                                                  \
	"INSERT OR REPLACE INTO node(name, serial, secret, created, revoked, quota) VALUES(?1,?2,?3,?4,NULL,?5)"
#define SQL_REVOKE "UPDATE node SET revoked=?2 WHERE name=?1 AND revoked IS NULL"
#define SQL_LIST                                                                                 \
	"SELECT name, serial, created, revoked, quota, last_seq, last_import, files, bytes, rejected," \
	" conflicts, pending, last_error FROM node ORDER BY name"
#define SQL_KEY "SELECT serial, secret FROM node WHERE name=?1"

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void secret_aad(const char *name, uint32_t serial, char *out, size_t len)
{
	snprintf(out, len, "node/%s/%u", name, serial);
}

int nodes_add(struct meta *m, const struct volkey *vol, const char *name, uint64_t quota,
	      struct node_key *out, char *err, size_t errlen)
{
	struct sqlite3_stmt *st;
	struct tbuf sealed = TBUF_INIT;
	uint8_t secret[VOLKEY_LEN];
	char aad[NODE_NAME_MAX + 32];
	uint32_t serial = 1;
	int rc;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if ((rc = node_name_ok(name, err, errlen)))
		return rc;
	if ((rc = meta_begin(m))) {
		snprintf(err, errlen, "cannot write the metadata store: %s", strerror(-rc));
		return rc;
	}
	st = meta_stmt(m, SQL_MAX_SERIAL);
	if (!st) {
		rc = -EIO;
		goto fail;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
			sqlite3_reset(st);
			snprintf(err, errlen, "node '%s' exists; revoke it first to issue a new key", name);
			rc = -EEXIST;
			goto fail;
		}
		serial = (uint32_t)sqlite3_column_int64(st, 0) + 1;
	}
	sqlite3_reset(st);
	if (RAND_priv_bytes(secret, sizeof(secret)) != 1) {
		snprintf(err, errlen, "cannot make a random secret");
		rc = -EIO;
		goto fail;
	}
	secret_aad(name, serial, aad, sizeof(aad));
	rc = codec_seal(vol, secret, sizeof(secret), aad, strlen(aad), CODEC_LEVEL_NONE, &sealed);
	if (!rc)
		rc = node_key_make(vol, name, serial, secret, out);
	if (rc) {
		snprintf(err, errlen, "cannot make the node key: %s", strerror(-rc));
		goto fail;
	}
	st = meta_stmt(m, SQL_ADD);
	if (!st) {
		rc = -EIO;
		goto fail;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, serial);
	sqlite3_bind_blob(st, 3, sealed.data, (int)sealed.len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now_ns());
	sqlite3_bind_int64(st, 5, (sqlite3_int64)quota);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_reset(st);
	if (!rc)
		rc = meta_commit(m, 1);
	if (rc) {
		snprintf(err, errlen, "cannot record node '%s' in the metadata store", name);
		goto fail;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	tbuf_release(&sealed);
	return 0;
fail:
	meta_rollback(m);
	node_key_release(out);
	OPENSSL_cleanse(secret, sizeof(secret));
	tbuf_release(&sealed);
	if (!err[0])
		snprintf(err, errlen, "cannot add node '%s': %s", name, strerror(-rc));
	return rc;
}

int nodes_revoke(struct meta *m, const char *name, char *err, size_t errlen)
{
	struct sqlite3_stmt *st;
	int rc = meta_begin(m);

	err[0] = '\0';
	if (rc) {
		snprintf(err, errlen, "cannot write the metadata store: %s", strerror(-rc));
		return rc;
	}
	st = meta_stmt(m, SQL_REVOKE);
	if (!st) {
		meta_rollback(m);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ns());
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_reset(st);
	if (!rc && sqlite3_changes(meta_db(m)) == 0) {
		snprintf(err, errlen, "no active node '%s' (see 'tierfs node list')", name);
		rc = -ENOENT;
	}
	if (!rc)
		rc = meta_commit(m, 1);
	else
		meta_rollback(m);
	if (rc && !err[0])
		snprintf(err, errlen, "cannot revoke node '%s': %s", name, strerror(-rc));
	return rc;
}

int nodes_list(struct meta *m, struct node_info **out, size_t *n_out)
{
	struct sqlite3_stmt *st = meta_stmt(m, SQL_LIST);
	struct node_info *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0, s;

	*out = NULL;
	*n_out = 0;
	if (!st)
		return -EIO;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct node_info *i;
		const char *t;

		if (n == cap) {
			struct node_info *nv = realloc(v, (cap = cap ? 2 * cap : 8) * sizeof(*v));

			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		i = &v[n++];
		memset(i, 0, sizeof(*i));
		snprintf(i->name, sizeof(i->name), "%s", (const char *)sqlite3_column_text(st, 0));
		i->serial = (uint32_t)sqlite3_column_int64(st, 1);
		i->created = sqlite3_column_int64(st, 2);
		i->revoked = sqlite3_column_int64(st, 3);
		i->quota = (uint64_t)sqlite3_column_int64(st, 4);
		i->last_seq = (uint64_t)sqlite3_column_int64(st, 5);
		i->last_import = sqlite3_column_int64(st, 6);
		i->files = (uint64_t)sqlite3_column_int64(st, 7);
		i->bytes = (uint64_t)sqlite3_column_int64(st, 8);
		i->rejected = (uint64_t)sqlite3_column_int64(st, 9);
		i->conflicts = (uint64_t)sqlite3_column_int64(st, 10);
		i->pending = (uint64_t)sqlite3_column_int64(st, 11);
		t = (const char *)sqlite3_column_text(st, 12);
		snprintf(i->last_error, sizeof(i->last_error), "%s", t ? t : "");
	}
	if (!rc && s != SQLITE_DONE)
		rc = -EIO;
	sqlite3_reset(st);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n_out = n;
	return 0;
}

int nodes_key(struct meta *m, const struct volkey *vol, const char *name, struct node_key *out)
{
	struct sqlite3_stmt *st = meta_stmt(m, SQL_KEY);
	struct tbuf secret = TBUF_INIT;
	char aad[NODE_NAME_MAX + 32];
	uint32_t serial;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return -ENOENT;
	}
	serial = (uint32_t)sqlite3_column_int64(st, 0);
	secret_aad(name, serial, aad, sizeof(aad));
	rc = codec_open(vol, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), aad,
			strlen(aad), &secret);
	sqlite3_reset(st);
	if (!rc && secret.len != VOLKEY_LEN)
		rc = -EBADMSG;
	if (rc)
		log_error("the sealed secret of node '%s' does not open with the volume key: %s", name,
			  codec_errmsg());
	else
		rc = node_key_make(vol, name, serial, secret.data, out);
	if (secret.data)
		OPENSSL_cleanse(secret.data, secret.cap);
	tbuf_release(&secret);
	return rc;
}
