/*
 * s3.c - the S3 backend (AWS and S3-compatible stores) over the shared
 * HTTP pool (http.c), signed with SigV4 (sigv4.c) using the SHA-256 of every
 * payload. Configuration follows the AWS conventions: credentials from
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or the
 * AWS_PROFILE section of ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE),
 * region from AWS_REGION / AWS_DEFAULT_REGION or ~/.aws/config
 * (AWS_CONFIG_FILE), endpoint from store_opts.endpoint, AWS_ENDPOINT_URL_S3
 * or AWS_ENDPOINT_URL. With an endpoint the bucket goes in the path
 * (path-style, what MinIO, Ceph and s3rver expect) unless
 * AWS_S3_ADDRESSING_STYLE=virtual; against AWS itself the bucket goes in the
 * host name (virtual-hosted) unless AWS_S3_ADDRESSING_STYLE=path or the
 * bucket name has a dot (which breaks the wildcard certificate). Objects
 * larger than TIERFS_S3_MULTIPART_THRESHOLD (default 16 MiB) are uploaded
 * in parts of TIERFS_S3_PART_SIZE (default 8 MiB, at least 5 MiB, S3's
 * minimum); a failed multipart upload is aborted. Responses are XML, read
 * with libxml2.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "http.h"
#include "log.h"
#include "sigv4.h"
#include "store.h"
#include "store_int.h"

#define S3_DEFAULT_THRESHOLD (16ull << 20)
#define S3_DEFAULT_PART (8ull << 20)
#define S3_MIN_PART (5ull << 20)
#define S3_MAX_PARTS 10000
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_store {
	struct store base;
	struct http_pool *http;
	char *bucket;
	char *prefix;       /* "" or "a/b/" (with the trailing '/') */
	char *origin;       /* "https://host[:port]" */
	char *host;         /* Host header value */
	char *path_base;    /* "" or "/bucket" (path-style), after any endpoint path */
	char *access_key;
	char *secret_key;
	char *session_token; /* NULL when none */
	char *region;
	uint64_t threshold;
	uint64_t part_size;
};

/* One request: what the headers callback needs to sign every attempt. */
struct s3_call {
	const struct s3_store *s;
	const char *method;
	const char *path;     /* encoded */
	const char *query;    /* encoded, NULL or "" for none */
	char payload_hash[65];
	char range[64];       /* "" for none */
};

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_setup(void)
{
	xmlInitParser();
}

static struct s3_store *s3_of(struct store *s)
{
	return (struct s3_store *)s;
}

static int s3_headers(void *arg, struct curl_slist **out)
{
	const struct s3_call *c = arg;
	const struct s3_store *s = c->s;
	const struct sigv4_creds creds = { s->access_key, s->secret_key, s->region, "s3" };
	struct sigv4_header h[5];
	struct sigv4_request r;
	struct curl_slist *list = NULL, *next;
	char date[17], auth[512], line[1024];
	size_t n = 0;
	int rc;

	sigv4_amz_date(time(NULL), date);
	h[n++] = (struct sigv4_header){ "host", s->host };
	h[n++] = (struct sigv4_header){ "x-amz-content-sha256", c->payload_hash };
	h[n++] = (struct sigv4_header){ "x-amz-date", date };
	if (c->range[0])
		h[n++] = (struct sigv4_header){ "range", c->range };
	if (s->session_token)
		h[n++] = (struct sigv4_header){ "x-amz-security-token", s->session_token };
	r = (struct sigv4_request){ c->method, c->path, c->query, h, n, c->payload_hash, date };
	rc = sigv4_authorization(&creds, &r, auth, sizeof(auth), NULL);
	if (rc)
		return rc;
	for (size_t i = 0; i <= n; i++) {
		if (i < n)
			snprintf(line, sizeof(line), "%s: %s", h[i].name, h[i].value);
		else
			snprintf(line, sizeof(line), "Authorization: %s", auth);
		next = curl_slist_append(list, line);
		if (!next) {
			curl_slist_free_all(list);
			return -ENOMEM;
		}
		list = next;
	}
	*out = list;
	return 0;
}

/* Run one signed request; body may be NULL. */
static int s3_do(const struct s3_store *s, struct s3_call *c, const void *body, size_t len,
		 struct http_response *resp)
{
	struct http_request req = {
		.method = c->method,
		.body = body,
		.body_len = len,
		.headers = s3_headers,
		.headers_arg = c,
	};
	char *url;
	int rc;

	c->s = s;
	if (body || len)
		sigv4_sha256_hex(body, len, c->payload_hash);
	else
		memcpy(c->payload_hash, EMPTY_SHA256, sizeof(EMPTY_SHA256));
	if (asprintf(&url, "%s%s%s%s", s->origin, c->path, c->query && *c->query ? "?" : "",
		     c->query ? c->query : "") < 0)
		return -ENOMEM;
	req.url = url;
	rc = http_request(s->http, &req, resp);
	free(url);
	return rc;
}

/* Object path, encoded: PATH_BASE/PREFIXKEY. NULL on ENOMEM. */
static char *object_path(const struct s3_store *s, const char *key)
{
	char *full = NULL, *enc, *path = NULL;

	if (asprintf(&full, "%s%s", s->prefix, key) < 0)
		return NULL;
	enc = sigv4_uri_encode(full, 1);
	free(full);
	if (enc && asprintf(&path, "%s/%s", s->path_base, enc) < 0)
		path = NULL;
	free(enc);
	return path;
}

static xmlDoc *parse_xml(const struct http_response *r)
{
	if (!r->body.len)
		return NULL;
	return xmlReadMemory((const char *)r->body.data, (int)r->body.len, NULL, NULL,
			     XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR |
				     XML_PARSE_NOWARNING);
}

static xmlNode *xml_child(xmlNode *parent, const char *name)
{
	for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name))
			return n;
	return NULL;
}

/* Text of parent's child element name into buf; "" when absent. */
static const char *xml_text(xmlNode *parent, const char *name, char *buf, size_t buflen)
{
	xmlNode *n = xml_child(parent, name);
	xmlChar *t = n ? xmlNodeGetContent(n) : NULL;

	snprintf(buf, buflen, "%s", t ? (const char *)t : "");
	xmlFree(t);
	return buf;
}

/*
 * Turn a failed request into an errno and a message that says what
 * happened: transport failures name the endpoint, HTTP errors carry the
 * status, S3's error code and message.
 */
static int s3_fail(const struct s3_store *s, const char *op, const char *key, int rc,
		   const struct http_response *r)
{
	char code[128] = "", msg[256] = "";
	xmlDoc *doc;

	if (rc < 0 && r->status == 0) {
		store_set_errmsg("s3: cannot %s '%s': %s unreachable: %s (%d attempts)", op, key,
				 s->origin, r->error[0] ? r->error : strerror(-rc), r->attempts);
		return rc;
	}
	if (rc < 0) {
		store_set_errmsg("s3: cannot %s '%s': %s", op, key, strerror(-rc));
		return rc;
	}
	doc = parse_xml(r);
	if (doc) {
		xmlNode *root = xmlDocGetRootElement(doc);

		if (root && !strcmp((const char *)root->name, "Error")) {
			xml_text(root, "Code", code, sizeof(code));
			xml_text(root, "Message", msg, sizeof(msg));
		}
		xmlFreeDoc(doc);
	}
	rc = http_status_errno(r->status);
	if (!rc)
		rc = -EIO; /* an error document inside a 200 */
	if (!strcmp(code, "NoSuchBucket")) {
		store_set_errmsg("s3: bucket '%s' does not exist at %s", s->bucket, s->origin);
		return -ENOENT;
	}
	if (rc == -ENOENT) {
		store_set_errmsg("s3: no such key '%s' in bucket '%s'", key, s->bucket);
	} else if (rc == -EACCES) {
		store_set_errmsg("s3: access denied for '%s' (%ld %s)%s%s", key, r->status,
				 code[0] ? code : "Forbidden", msg[0] ? ": " : "", msg);
	} else {
		store_set_errmsg("s3: cannot %s '%s' (%ld%s%s)%s%s%s", op, key, r->status,
				 code[0] ? " " : "", code, msg[0] ? ": " : "", msg,
				 r->attempts > 1 ? " after retries" : "");
	}
	return rc;
}

static int s3_put_single(struct s3_store *s, const char *key, const char *path,
			 const void *data, size_t len)
{
	struct http_response resp = HTTP_RESPONSE_INIT;
	struct s3_call c = { .method = "PUT", .path = path };
	int rc = s3_do(s, &c, data, len, &resp);

	if (rc || resp.status != 200)
		rc = s3_fail(s, "put", key, rc, &resp);
	http_response_release(&resp);
	return rc;
}

static void s3_abort_multipart(struct s3_store *s, const char *path, const char *upload_q)
{
	struct http_response resp = HTTP_RESPONSE_INIT;
	struct s3_call c = { .method = "DELETE", .path = path, .query = upload_q };

	if (s3_do(s, &c, NULL, 0, &resp) || http_status_errno(resp.status))
		log_warn("s3: cannot abort multipart upload of '%s' (status %ld)", path,
			 resp.status);
	http_response_release(&resp);
}

/* The CompleteMultipartUpload document, built with libxml2. */
static int complete_doc(char *const *etags, unsigned nparts, xmlChar **out, int *outlen)
{
	xmlDoc *doc = xmlNewDoc(BAD_CAST "1.0");
	xmlNode *root = doc ? xmlNewNode(NULL, BAD_CAST "CompleteMultipartUpload") : NULL;
	int rc = -ENOMEM;

	if (!root)
		goto out;
	xmlDocSetRootElement(doc, root);
	for (unsigned i = 0; i < nparts; i++) {
		xmlNode *part = xmlNewChild(root, NULL, BAD_CAST "Part", NULL);
		char num[16];

		snprintf(num, sizeof(num), "%u", i + 1);
		if (!part || !xmlNewTextChild(part, NULL, BAD_CAST "PartNumber", BAD_CAST num) ||
		    !xmlNewTextChild(part, NULL, BAD_CAST "ETag", BAD_CAST etags[i]))
			goto out;
	}
	xmlDocDumpMemory(doc, out, outlen);
	rc = *out ? 0 : -ENOMEM;
out:
	xmlFreeDoc(doc);
	return rc;
}

static int s3_put_multipart(struct s3_store *s, const char *key, const char *path,
			    const uint8_t *data, size_t len)
{
	struct http_response resp = HTTP_RESPONSE_INIT;
	uint64_t part = s->part_size;
	unsigned nparts, done = 0;
	char **etags = NULL, upload_id[1024], *enc_id = NULL, *upload_q = NULL;
	xmlChar *doc_text = NULL;
	int doc_len = 0, rc;
	xmlDoc *doc;

	while ((len + part - 1) / part > S3_MAX_PARTS)
		part *= 2;
	nparts = (unsigned)((len + part - 1) / part);

	/* CreateMultipartUpload */
	{
		struct s3_call c = { .method = "POST", .path = path, .query = "uploads" };

		rc = s3_do(s, &c, NULL, 0, &resp);
		if (rc || resp.status != 200) {
			rc = s3_fail(s, "start multipart upload of", key, rc, &resp);
			goto out;
		}
	}
	doc = parse_xml(&resp);
	xml_text(doc ? xmlDocGetRootElement(doc) : NULL, "UploadId", upload_id, sizeof(upload_id));
	xmlFreeDoc(doc);
	if (!upload_id[0]) {
		store_set_errmsg("s3: cannot start multipart upload of '%s': no UploadId in reply",
				 key);
		rc = -EIO;
		goto out;
	}
	enc_id = sigv4_uri_encode(upload_id, 0);
	etags = calloc(nparts, sizeof(*etags));
	if (!enc_id || !etags || asprintf(&upload_q, "uploadId=%s", enc_id) < 0) {
		upload_q = NULL; /* cannot even name the upload to abort it */
		rc = -ENOMEM;
		goto out;
	}

	/* UploadPart, in order. */
	for (done = 0; done < nparts; done++) {
		uint64_t off = (uint64_t)done * part;
		size_t n = (size_t)(len - off < part ? len - off : part);
		char query[1200], etag[256];
		struct s3_call c = { .method = "PUT", .path = path, .query = query };

		snprintf(query, sizeof(query), "partNumber=%u&uploadId=%s", done + 1, enc_id);
		http_response_release(&resp);
		rc = s3_do(s, &c, data + off, n, &resp);
		if (rc || resp.status != 200) {
			rc = s3_fail(s, "upload part of", key, rc, &resp);
			goto out;
		}
		if (!http_response_header(&resp, "ETag", etag, sizeof(etag))) {
			store_set_errmsg("s3: no ETag for part %u of '%s'", done + 1, key);
			rc = -EIO;
			goto out;
		}
		etags[done] = strdup(etag);
		if (!etags[done]) {
			rc = -ENOMEM;
			goto out;
		}
	}

	/* CompleteMultipartUpload: a 200 may still carry an <Error>. */
	rc = complete_doc(etags, nparts, &doc_text, &doc_len);
	if (rc)
		goto out;
	{
		struct s3_call c = { .method = "POST", .path = path, .query = upload_q };
		xmlNode *root;

		http_response_release(&resp);
		rc = s3_do(s, &c, doc_text, (size_t)doc_len, &resp);
		doc = rc ? NULL : parse_xml(&resp);
		root = doc ? xmlDocGetRootElement(doc) : NULL;
		if (rc || resp.status != 200 || !root || !strcmp((const char *)root->name, "Error"))
			rc = s3_fail(s, "complete multipart upload of", key, rc, &resp);
		xmlFreeDoc(doc);
	}
out:
	if (rc && upload_q) {
		/* Abort, keeping the message of the failure, not of the abort. */
		char saved[512];

		snprintf(saved, sizeof(saved), "%s", store_errmsg());
		s3_abort_multipart(s, path, upload_q);
		store_set_errmsg("%s", saved);
	}
	for (unsigned i = 0; etags && i < nparts; i++)
		free(etags[i]);
	free(etags);
	free(enc_id);
	free(upload_q);
	xmlFree(doc_text);
	http_response_release(&resp);
	return rc;
}

static int s3_put(struct store *st, const char *key, const void *data, size_t len)
{
	struct s3_store *s = s3_of(st);
	char *path = object_path(s, key);
	int rc;

	if (!path)
		return -ENOMEM;
	if (len > s->threshold)
		rc = s3_put_multipart(s, key, path, data, len);
	else
		rc = s3_put_single(s, key, path, data, len);
	free(path);
	return rc;
}

static int s3_get(struct store *st, const char *key, uint64_t off, uint64_t len,
		  struct tbuf *out)
{
	struct s3_store *s = s3_of(st);
	struct http_response resp = HTTP_RESPONSE_INIT;
	char *path = object_path(s, key), cr[128];
	struct s3_call c = { .method = "GET", .path = path };
	uint64_t start = 0, from, n;
	int rc;

	if (!path)
		return -ENOMEM;
	if (len != STORE_WHOLE)
		snprintf(c.range, sizeof(c.range), "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
	else if (off)
		snprintf(c.range, sizeof(c.range), "bytes=%" PRIu64 "-", off);
	if (!out->len && out->cap) {
		/* The caller's buffer receives the body (no copy when it fits). */
		resp.body = *out;
		*out = (struct tbuf)TBUF_INIT;
	}
	rc = s3_do(s, &c, NULL, 0, &resp);
	if (!rc && resp.status == 416)
		goto out; /* the range starts past the end: nothing to read */
	if (rc || (resp.status != 200 && resp.status != 206)) {
		rc = s3_fail(s, "get", key, rc, &resp);
		goto out;
	}
	/*
	 * Take exactly the bytes asked for from what came: a server that
	 * ignores Range sends everything (200), and s3rver answers "bytes=0-0"
	 * with the whole object (206), which its Content-Range tells.
	 */
	if (resp.status == 206) {
		start = off;
		if (http_response_header(&resp, "Content-Range", cr, sizeof(cr)) &&
		    sscanf(cr, "bytes %" SCNu64, &start) != 1)
			start = off;
	}
	if (start > off) {
		store_set_errmsg("s3: get '%s': the server sent bytes from %" PRIu64 ", not %" PRIu64,
				 key, start, off);
		rc = -EIO;
		goto out;
	}
	from = off - start;
	n = resp.body.len;
	if (from >= n)
		n = 0;
	else if (len != STORE_WHOLE && len < n - from)
		n = len;
	else
		n -= from;
	if (n && !from && n == resp.body.len && !out->len) {
		/* Hand the response buffer over instead of copying it. */
		tbuf_release(out);
		*out = resp.body;
		resp.body = (struct tbuf)TBUF_INIT;
	} else if (n) {
		rc = tbuf_append(out, resp.body.data + from, (size_t)n);
	}
out:
	http_response_release(&resp);
	free(path);
	return rc;
}

static int s3_head(struct store *st, const char *key, uint64_t *size_out)
{
	struct s3_store *s = s3_of(st);
	struct http_response resp = HTTP_RESPONSE_INIT;
	char *path = object_path(s, key), clen[32];
	struct s3_call c = { .method = "HEAD", .path = path };
	int rc;

	if (!path)
		return -ENOMEM;
	rc = s3_do(s, &c, NULL, 0, &resp);
	if (rc || resp.status != 200) {
		rc = s3_fail(s, "stat", key, rc, &resp);
	} else if (!http_response_header(&resp, "Content-Length", clen, sizeof(clen))) {
		store_set_errmsg("s3: no Content-Length for '%s'", key);
		rc = -EIO;
	} else if (size_out) {
		*size_out = strtoull(clen, NULL, 10);
	}
	http_response_release(&resp);
	free(path);
	return rc;
}

static int s3_del(struct store *st, const char *key)
{
	struct s3_store *s = s3_of(st);
	struct http_response resp = HTTP_RESPONSE_INIT;
	char *path = object_path(s, key);
	struct s3_call c = { .method = "DELETE", .path = path };
	int rc;

	if (!path)
		return -ENOMEM;
	rc = s3_do(s, &c, NULL, 0, &resp);
	if (rc || (resp.status != 204 && resp.status != 200 && resp.status != 404))
		rc = s3_fail(s, "delete", key, rc, &resp);
	http_response_release(&resp);
	free(path);
	return rc;
}

/* Report one ListObjectsV2 page; *token_out gets the next token or "". */
static int list_page(struct s3_store *s, const struct http_response *r, store_list_cb cb,
		     void *arg, char *token_out, size_t toklen)
{
	size_t plen = strlen(s->prefix);
	xmlDoc *doc = parse_xml(r);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	char truncated[8], key[1100], size[32];
	int rc = 0;

	token_out[0] = '\0';
	if (!root || strcmp((const char *)root->name, "ListBucketResult")) {
		store_set_errmsg("s3: unreadable listing of bucket '%s'", s->bucket);
		rc = -EIO;
		goto out;
	}
	for (xmlNode *n = root->children; n && !rc; n = n->next) {
		if (n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, "Contents"))
			continue;
		xml_text(n, "Key", key, sizeof(key));
		xml_text(n, "Size", size, sizeof(size));
		if (strncmp(key, s->prefix, plen) || !key[plen])
			continue;
		rc = cb(arg, key + plen, strtoull(size, NULL, 10));
	}
	if (rc)
		goto out;
	if (!strcmp(xml_text(root, "IsTruncated", truncated, sizeof(truncated)), "true")) {
		xml_text(root, "NextContinuationToken", token_out, toklen);
		if (!token_out[0]) {
			store_set_errmsg("s3: truncated listing without a continuation token");
			rc = -EIO;
		}
	}
out:
	xmlFreeDoc(doc);
	return rc;
}

static int s3_list(struct store *st, const char *prefix, store_list_cb cb, void *arg)
{
	struct s3_store *s = s3_of(st);
	struct http_response resp = HTTP_RESPONSE_INIT;
	char token[2048] = "", *full = NULL, *enc_prefix = NULL, *enc_token = NULL;
	char *query = NULL;
	int rc = -ENOMEM;

	if (asprintf(&full, "%s%s", s->prefix, prefix) < 0) {
		full = NULL;
		goto out;
	}
	enc_prefix = sigv4_uri_encode(full, 0);
	if (!enc_prefix)
		goto out;
	do {
		struct s3_call c = { .method = "GET", .path = *s->path_base ? s->path_base : "/" };

		free(enc_token);
		free(query);
		query = NULL;
		enc_token = sigv4_uri_encode(token, 0);
		if (!enc_token ||
		    asprintf(&query, "list-type=2&prefix=%s%s%s", enc_prefix,
			     token[0] ? "&continuation-token=" : "", enc_token) < 0) {
			query = NULL;
			rc = -ENOMEM;
			goto out;
		}
		c.query = query;
		http_response_release(&resp);
		rc = s3_do(s, &c, NULL, 0, &resp);
		if (rc || resp.status != 200) {
			rc = s3_fail(s, "list", prefix, rc, &resp);
			goto out;
		}
		rc = list_page(s, &resp, cb, arg, token, sizeof(token));
	} while (!rc && token[0]);
out:
	http_response_release(&resp);
	free(full);
	free(enc_prefix);
	free(enc_token);
	free(query);
	return rc;
}

static void s3_close(struct store *st)
{
	struct s3_store *s = s3_of(st);

	http_pool_free(s->http);
	free(s->bucket);
	free(s->prefix);
	free(s->origin);
	free(s->host);
	free(s->path_base);
	free(s->access_key);
	if (s->secret_key)
		memset(s->secret_key, 0, strlen(s->secret_key));
	free(s->secret_key);
	free(s->session_token);
	free(s->region);
	free(s->base.url);
	free(s);
}

static const struct store_ops s3_ops = {
	.scheme = "s3",
	.put = s3_put,
	.get = s3_get,
	.head = s3_head,
	.list = s3_list,
	.del = s3_del,
	.close = s3_close,
};

/*
 * Read KEY from [SECTION] of an INI file (the ~/.aws format). Returns a
 * malloc'd value or NULL when absent.
 */
static char *ini_get(const char *file, const char *section, const char *key)
{
	FILE *f = fopen(file, "r");
	char line[1024], *val = NULL;
	int in = 0;

	if (!f)
		return NULL;
	while (!val && fgets(line, sizeof(line), f)) {
		char *p = line, *e, *eq;

		while (*p == ' ' || *p == '\t')
			p++;
		e = p + strlen(p);
		while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*p == '#' || *p == ';' || !*p)
			continue;
		if (*p == '[') {
			e = strchr(p, ']');
			in = e && (size_t)(e - p - 1) == strlen(section) &&
			     !strncmp(p + 1, section, strlen(section));
			continue;
		}
		eq = strchr(p, '=');
		if (!in || !eq)
			continue;
		for (e = eq; e > p && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		if ((size_t)(e - p) != strlen(key) || strncmp(p, key, strlen(key)))
			continue;
		for (p = eq + 1; *p == ' ' || *p == '\t'; p++)
			;
		val = strdup(p);
	}
	fclose(f);
	return val;
}

static char *aws_file(const char *env, const char *name)
{
	const char *v = getenv(env), *home = getenv("HOME");
	char *path;

	if (v && *v)
		return strdup(v);
	if (!home || asprintf(&path, "%s/.aws/%s", home, name) < 0)
		return NULL;
	return path;
}

static char *env_dup(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? strdup(v) : NULL;
}

/* Credentials and region from the environment, then the AWS files. */
static int load_config(struct s3_store *s, char *err, size_t errlen)
{
	const char *profile = getenv("AWS_PROFILE");
	char *cred_file = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
	char *conf_file = aws_file("AWS_CONFIG_FILE", "config");
	char section[256];
	int rc = 0;

	if (!profile || !*profile)
		profile = "default";
	s->access_key = env_dup("AWS_ACCESS_KEY_ID");
	s->secret_key = env_dup("AWS_SECRET_ACCESS_KEY");
	if (s->access_key && s->secret_key) {
		s->session_token = env_dup("AWS_SESSION_TOKEN");
	} else if (cred_file) {
		free(s->access_key);
		free(s->secret_key);
		s->access_key = ini_get(cred_file, profile, "aws_access_key_id");
		s->secret_key = ini_get(cred_file, profile, "aws_secret_access_key");
		s->session_token = ini_get(cred_file, profile, "aws_session_token");
	}
	if (!s->access_key || !s->secret_key) {
		snprintf(err, errlen,
			 "s3: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
			 "or profile '%s' in '%s'", profile, cred_file ? cred_file : "~/.aws/credentials");
		rc = -EACCES;
		goto out;
	}
	s->region = env_dup("AWS_REGION");
	if (!s->region)
		s->region = env_dup("AWS_DEFAULT_REGION");
	if (!s->region && conf_file) {
		if (!strcmp(profile, "default"))
			snprintf(section, sizeof(section), "default");
		else
			snprintf(section, sizeof(section), "profile %s", profile);
		s->region = ini_get(conf_file, section, "region");
	}
	if (!s->region)
		s->region = strdup("us-east-1");
	if (!s->region)
		rc = -ENOMEM;
out:
	free(cred_file);
	free(conf_file);
	return rc;
}

static uint64_t env_size(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	uint64_t n;

	if (!v || !*v)
		return dflt;
	if (parse_size(v, &n) || n == 0) {
		log_warn("ignoring %s='%s': not a size", name, v);
		return dflt;
	}
	return n;
}

/* Where requests go: origin, Host header and the path before the key. */
static int set_endpoint(struct s3_store *s, const char *endpoint, char *err, size_t errlen)
{
	const char *style = getenv("AWS_S3_ADDRESSING_STYLE");
	int path_style;
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	int rc = -ENOMEM;

	if (!endpoint) {
		path_style = (style && !strcmp(style, "path")) || strchr(s->bucket, '.');
		if (path_style) {
			if (asprintf(&s->host, "s3.%s.amazonaws.com", s->region) < 0)
				s->host = NULL;
			if (asprintf(&s->path_base, "/%s", s->bucket) < 0)
				s->path_base = NULL;
		} else {
			if (asprintf(&s->host, "%s.s3.%s.amazonaws.com", s->bucket, s->region) < 0)
				s->host = NULL;
			s->path_base = strdup("");
		}
		if (s->host && asprintf(&s->origin, "https://%s", s->host) < 0)
			s->origin = NULL;
		return s->host && s->path_base && s->origin ? 0 : -ENOMEM;
	}
	path_style = !(style && !strcmp(style, "virtual"));
	u = curl_url();
	if (!u)
		goto out;
	if (curl_url_set(u, CURLUPART_URL, endpoint, 0) ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) ||
	    (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
		snprintf(err, errlen, "s3: invalid endpoint '%s' (want http[s]://HOST[:PORT])",
			 endpoint);
		rc = -EINVAL;
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, 0))
		port = NULL;
	if (curl_url_get(u, CURLUPART_PATH, &path, 0))
		path = NULL;
	if (path) /* no trailing '/', so "/bucket" follows directly */
		for (size_t n = strlen(path); n && path[n - 1] == '/'; n--)
			path[n - 1] = '\0';
	if (asprintf(&s->host, "%s%s%s%s", path_style ? "" : s->bucket, path_style ? "" : ".",
		     host, port ? ":" : "") < 0) {
		s->host = NULL;
		goto out;
	}
	if (port) {
		char *h = s->host;

		if (asprintf(&s->host, "%s%s", h, port) < 0)
			s->host = NULL;
		free(h);
		if (!s->host)
			goto out;
	}
	if (asprintf(&s->origin, "%s://%s", scheme, s->host) < 0) {
		s->origin = NULL;
		goto out;
	}
	if (asprintf(&s->path_base, "%s%s%s", path ? path : "", path_style ? "/" : "",
		     path_style ? s->bucket : "") < 0) {
		s->path_base = NULL;
		goto out;
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return rc;
}

static int valid_bucket(const char *b)
{
	if (!*b || strlen(b) > 255)
		return 0;
	for (; *b; b++)
		if (!((*b >= 'a' && *b <= 'z') || (*b >= 'A' && *b <= 'Z') ||
		      (*b >= '0' && *b <= '9') || *b == '-' || *b == '.' || *b == '_'))
			return 0;
	return 1;
}

int store_s3_open(const char *rest, const struct store_opts *o, struct store **out, char *err,
		  size_t errlen)
{
	const char *slash = strchr(rest, '/');
	const char *endpoint = o->endpoint;
	struct s3_store *s;
	char *pfx = NULL;
	int rc = -ENOMEM;

	pthread_once(&xml_once, xml_setup);
	s = calloc(1, sizeof(*s));
	if (!s)
		goto fail;
	s->base.ops = &s3_ops;
	if (asprintf(&s->base.url, "s3://%s", rest) < 0) {
		s->base.url = NULL;
		goto fail;
	}
	s->bucket = slash ? strndup(rest, (size_t)(slash - rest)) : strdup(rest);
	pfx = store_norm_prefix(slash ? slash : "");
	if (!s->bucket || !pfx)
		goto fail;
	if (!valid_bucket(s->bucket)) {
		snprintf(err, errlen, "s3: invalid bucket name in 's3://%s'", rest);
		rc = -EINVAL;
		goto fail;
	}
	if (asprintf(&s->prefix, "%s%s", pfx, *pfx ? "/" : "") < 0) {
		s->prefix = NULL;
		goto fail;
	}
	rc = load_config(s, err, errlen);
	if (rc)
		goto fail;
	if (!endpoint || !*endpoint)
		endpoint = getenv("AWS_ENDPOINT_URL_S3");
	if (!endpoint || !*endpoint)
		endpoint = getenv("AWS_ENDPOINT_URL");
	rc = set_endpoint(s, endpoint && *endpoint ? endpoint : NULL, err, errlen);
	if (rc)
		goto fail;
	s->threshold = env_size("TIERFS_S3_MULTIPART_THRESHOLD", S3_DEFAULT_THRESHOLD);
	s->part_size = env_size("TIERFS_S3_PART_SIZE", S3_DEFAULT_PART);
	if (s->part_size < S3_MIN_PART)
		s->part_size = S3_MIN_PART;
	rc = http_pool_new(o, &s->http);
	if (rc)
		goto fail;
	free(pfx);
	*out = &s->base;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	free(pfx);
	if (s)
		s3_close(&s->base);
	return rc;
}
