/*
 * sigv4.c - AWS Signature Version 4: builds the canonical request, the
 * string to sign and the signature with OpenSSL's SHA-256 and HMAC-SHA256,
 * following the steps of the AWS documentation ("Signature Calculations for
 * the Authorization Header: Transferring Payload in a Single Chunk").
 */
#include "sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "util.h"

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	hex_encode(md, sizeof(md), out);
}

void sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

char *sigv4_uri_encode(const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	struct tbuf b = TBUF_INIT;

	if (tbuf_grow(&b, strlen(s) * 3 + 1))
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
		    (*p == '/' && keep_slash)) {
			b.data[b.len++] = *p;
		} else {
			b.data[b.len++] = '%';
			b.data[b.len++] = (uint8_t)hex[*p >> 4];
			b.data[b.len++] = (uint8_t)hex[*p & 15];
		}
	}
	b.data[b.len] = '\0';
	return (char *)b.data;
}

struct qparam {
	const char *key;
	size_t klen;
	const char *val; /* "" when the parameter had no '=' */
	size_t vlen;
};

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = cmp_bytes(x->key, x->klen, y->key, y->klen);

	return c ? c : cmp_bytes(x->val, x->vlen, y->val, y->vlen);
}

/* Query parameters sorted by name then value, each as name=value. */
static int canonical_query(const char *q, struct tbuf *out)
{
	struct qparam *ps = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	while (q && *q) {
		const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
		const char *eq = memchr(q, '=', (size_t)(end - q));

		if (end > q) {
			if (n == cap) {
				struct qparam *np;

				cap = cap ? cap * 2 : 8;
				np = realloc(ps, cap * sizeof(*ps));
				if (!np) {
					rc = -ENOMEM;
					goto out;
				}
				ps = np;
			}
			ps[n].key = q;
			ps[n].klen = (size_t)((eq ? eq : end) - q);
			ps[n].val = eq ? eq + 1 : "";
			ps[n].vlen = eq ? (size_t)(end - eq - 1) : 0;
			n++;
		}
		q = amp ? amp + 1 : end;
	}
	if (n)
		qsort(ps, n, sizeof(*ps), qparam_cmp);
	for (size_t i = 0; i < n && !rc; i++) {
		if (i)
			rc = tbuf_append(out, "&", 1);
		if (!rc)
			rc = tbuf_append(out, ps[i].key, ps[i].klen);
		if (!rc)
			rc = tbuf_append(out, "=", 1);
		if (!rc)
			rc = tbuf_append(out, ps[i].val, ps[i].vlen);
	}
out:
	free(ps);
	return rc;
}

struct chdr {
	char *name;  /* lowercased copy */
	const char *value;
};

static int chdr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct chdr *)a)->name, ((const struct chdr *)b)->name);
}

/* Append a header value trimmed, with runs of spaces collapsed to one. */
static int append_value(struct tbuf *out, const char *v)
{
	int rc = 0, space = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v && !rc; v++) {
		if (*v == ' ' || *v == '\t') {
			space = 1;
			continue;
		}
		if (space)
			rc = tbuf_append(out, " ", 1);
		space = 0;
		if (!rc)
			rc = tbuf_append(out, v, 1);
	}
	return rc;
}

/*
 * The canonical headers block ("name:value\n" each, same names joined with
 * ',') into out, and the signed header list ("a;b;c") into signed_out.
 */
static int canonical_headers(const struct sigv4_request *r, struct tbuf *out,
			     struct tbuf *signed_out)
{
	struct chdr *hs = calloc(r->nheaders ? r->nheaders : 1, sizeof(*hs));
	int rc = 0;

	if (!hs)
		return -ENOMEM;
	for (size_t i = 0; i < r->nheaders; i++) {
		hs[i].name = strdup(r->headers[i].name);
		if (!hs[i].name) {
			rc = -ENOMEM;
			goto out;
		}
		for (char *p = hs[i].name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		hs[i].value = r->headers[i].value;
	}
	/* qsort is not stable: equal names keep no order, so keep them adjacent
	 * and joined in input order by a stable insertion sort instead. */
	for (size_t i = 1; i < r->nheaders; i++) {
		struct chdr t = hs[i];
		size_t j = i;

		while (j > 0 && chdr_cmp(&hs[j - 1], &t) > 0) {
			hs[j] = hs[j - 1];
			j--;
		}
		hs[j] = t;
	}
	for (size_t i = 0; i < r->nheaders && !rc; i++) {
		int same = i && !strcmp(hs[i].name, hs[i - 1].name);

		if (same) {
			/* Replace the previous "\n" by ",". */
			out->data[out->len - 1] = ',';
		} else {
			rc = tbuf_append(out, hs[i].name, strlen(hs[i].name));
			if (!rc)
				rc = tbuf_append(out, ":", 1);
			if (!rc && i)
				rc = tbuf_append(signed_out, ";", 1);
			if (!rc)
				rc = tbuf_append(signed_out, hs[i].name, strlen(hs[i].name));
		}
		if (!rc)
			rc = append_value(out, hs[i].value);
		if (!rc)
			rc = tbuf_append(out, "\n", 1);
	}
	if (!rc)
		rc = tbuf_append(signed_out, "", 1);
out:
	for (size_t i = 0; i < r->nheaders; i++)
		free(hs[i].name);
	free(hs);
	return rc;
}

/* Build the canonical request; also hand back the signed header list. */
static char *build_canonical(const struct sigv4_request *r, char **signed_out)
{
	struct tbuf b = TBUF_INIT, hdrs = TBUF_INIT, sh = TBUF_INIT;
	const char *path = r->path && *r->path ? r->path : "/";
	int rc;

	rc = canonical_headers(r, &hdrs, &sh);
	if (!rc)
		rc = tbuf_append(&b, r->method, strlen(r->method));
	if (!rc)
		rc = tbuf_append(&b, "\n", 1);
	if (!rc)
		rc = tbuf_append(&b, path, strlen(path));
	if (!rc)
		rc = tbuf_append(&b, "\n", 1);
	if (!rc)
		rc = canonical_query(r->query, &b);
	if (!rc)
		rc = tbuf_append(&b, "\n", 1);
	if (!rc)
		rc = tbuf_append(&b, hdrs.data, hdrs.len);
	if (!rc)
		rc = tbuf_append(&b, "\n", 1);
	if (!rc)
		rc = tbuf_append(&b, sh.data, sh.len - 1);
	if (!rc)
		rc = tbuf_append(&b, "\n", 1);
	if (!rc)
		rc = tbuf_append(&b, r->payload_hash, strlen(r->payload_hash));
	if (!rc)
		rc = tbuf_append(&b, "", 1);
	tbuf_release(&hdrs);
	if (rc) {
		tbuf_release(&b);
		tbuf_release(&sh);
		return NULL;
	}
	if (signed_out)
		*signed_out = (char *)tbuf_detach(&sh, NULL);
	else
		tbuf_release(&sh);
	return (char *)tbuf_detach(&b, NULL);
}

char *sigv4_canonical_request(const struct sigv4_request *r)
{
	return build_canonical(r, NULL);
}

/* HMAC-SHA256; out may alias key (the key is consumed before the output). */
static void hmac(const void *key, size_t klen, const char *msg, uint8_t out[32])
{
	uint8_t md[32];
	unsigned int len = sizeof(md);

	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), md, &len);
	memcpy(out, md, sizeof(md));
	OPENSSL_cleanse(md, sizeof(md));
}

int sigv4_authorization(const struct sigv4_creds *c, const struct sigv4_request *r,
			char *out, size_t outlen, char *sig_out)
{
	char *canon = NULL, *signed_hdrs = NULL, *sts = NULL, *kinit = NULL;
	char date[9], scope[256], canon_hash[65], sig[65];
	uint8_t k[32], mac[32];
	int rc = -ENOMEM, n;

	if (!r->amz_date || strlen(r->amz_date) != 16)
		return -EINVAL;
	memcpy(date, r->amz_date, 8);
	date[8] = '\0';
	canon = build_canonical(r, &signed_hdrs);
	if (!canon)
		goto out;
	sigv4_sha256_hex(canon, strlen(canon), canon_hash);
	snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, c->region, c->service);
	if (asprintf(&sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", r->amz_date, scope, canon_hash) < 0) {
		sts = NULL;
		goto out;
	}
	if (asprintf(&kinit, "AWS4%s", c->secret_key) < 0) {
		kinit = NULL;
		goto out;
	}
	hmac(kinit, strlen(kinit), date, k);
	hmac(k, sizeof(k), c->region, k);
	hmac(k, sizeof(k), c->service, k);
	hmac(k, sizeof(k), "aws4_request", k);
	hmac(k, sizeof(k), sts, mac);
	hex_encode(mac, sizeof(mac), sig);
	n = snprintf(out, outlen,
		     "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		     c->access_key, scope, signed_hdrs, sig);
	rc = n < 0 || (size_t)n >= outlen ? -ENOSPC : 0;
	if (sig_out)
		memcpy(sig_out, sig, sizeof(sig));
out:
	if (kinit)
		OPENSSL_cleanse(kinit, strlen(kinit));
	OPENSSL_cleanse(k, sizeof(k));
	free(kinit);
	free(sts);
	free(canon);
	free(signed_hdrs);
	return rc;
}
