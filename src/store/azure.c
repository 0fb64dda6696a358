/*
 * azure.c - the native Azure Blob Storage backend, azure://CONTAINER[/PREFIX].
 * Objects are block blobs named PREFIX/KEY, reached through the Blob REST
 * API (x-ms-version 2021-08-06) over the shared HTTP layer (http.c: pooled
 * keep-alive connections, timeouts, retries on 5xx, 429 and connection
 * errors). Credentials come from the environment the way Azure tools take
 * them (azure_auth.c); with an account key every attempt is signed afresh
 * (SharedKey, new x-ms-date), with a SAS token the token rides in the query
 * string. A put is one Put Blob up to TIERFS_AZURE_BLOCK_THRESHOLD bytes
 * (default 16 MiB), else Put Block per TIERFS_AZURE_BLOCK_SIZE slice
 * (default 8 MiB) and one Put Block List. Listing pages through List Blobs
 * (TIERFS_AZURE_LIST_MAX names per page, default 5000) and reads the XML
 * with libxml2. The container is created on the first put that finds it
 * missing; until then it lists as empty. Opening does no I/O, so a store
 * opens while offline.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/uri.h>
#include <openssl/rand.h>

#include "azure_auth.h"
#include "http.h"
#include "log.h"
#include "store.h"
#include "store_int.h"

#define AZURE_API_VERSION "2021-08-06"
#define AZURE_DEFAULT_THRESHOLD (16ull << 20)
#define AZURE_DEFAULT_BLOCK (8ull << 20)
#define AZURE_MAX_BLOCK (4000ull << 20) /* service limit since 2019-12-12 */
#define AZURE_MAX_BLOCKS 50000
#define AZURE_DEFAULT_LIST_MAX 5000
#define AZURE_MAX_QUERY 6
#define AZURE_MAX_HEADERS 4

struct azure_store {
	struct store base;
	struct http_pool *pool;
	struct azure_cred cred;
	char *origin;    /* "http(s)://host[:port]" of the endpoint */
	char *base_path; /* endpoint path ("" or "/ACCOUNT" for path-style) */
	char *container;
	char *prefix;    /* normalised, "" for none */
	uint64_t block_threshold;
	uint64_t block_size;
	int list_max;
};

/*
 * One REST call. The same description builds the URL once and the signed
 * headers before every attempt (azure_headers()).
 */
struct azure_call {
	struct azure_store *az;
	const char *method;
	const char *blob;       /* blob name (PREFIX/KEY), NULL for the container */
	struct azure_kv query[AZURE_MAX_QUERY];   /* raw values */
	size_t nquery;
	struct azure_kv headers[AZURE_MAX_HEADERS]; /* x-ms-* and Content-Type */
	size_t nheaders;
	const void *body;
	size_t body_len;
	char *path;             /* encoded URL path, set by call_run() */
};

static struct azure_store *az_of(struct store *s)
{
	return (struct azure_store *)s;
}

static void call_query(struct azure_call *c, const char *name, const char *value)
{
	c->query[c->nquery].name = name;
	c->query[c->nquery++].value = value;
}

static void call_header(struct azure_call *c, const char *name, const char *value)
{
	c->headers[c->nheaders].name = name;
	c->headers[c->nheaders++].value = value;
}

/* PREFIX/KEY, or KEY without a prefix. NULL on ENOMEM. */
static char *blob_name(const struct azure_store *az, const char *key)
{
	char *name;

	if (!*az->prefix)
		return strdup(key);
	if (asprintf(&name, "%s/%s", az->prefix, key) < 0)
		return NULL;
	return name;
}

static int append_cstr(struct tbuf *b, const char *s)
{
	return tbuf_append(b, s, strlen(s));
}

/* Build the encoded path and the full URL of c (SAS appended). */
static int call_url(struct azure_call *c, char **url_out)
{
	struct azure_store *az = c->az;
	struct tbuf path = TBUF_INIT, url = TBUF_INIT;
	int rc;

	rc = append_cstr(&path, az->base_path);
	rc = rc ? rc : tbuf_append(&path, "/", 1);
	rc = rc ? rc : azure_url_encode(az->container, 0, &path);
	if (c->blob) {
		rc = rc ? rc : tbuf_append(&path, "/", 1);
		rc = rc ? rc : azure_url_encode(c->blob, 1, &path);
	}
	rc = rc ? rc : tbuf_append(&path, "", 1);
	rc = rc ? rc : append_cstr(&url, az->origin);
	rc = rc ? rc : append_cstr(&url, (const char *)path.data);
	for (size_t i = 0; i < c->nquery && !rc; i++) {
		rc = tbuf_append(&url, i ? "&" : "?", 1);
		rc = rc ? rc : append_cstr(&url, c->query[i].name);
		rc = rc ? rc : tbuf_append(&url, "=", 1);
		rc = rc ? rc : azure_url_encode(c->query[i].value, 0, &url);
	}
	if (az->cred.sas) {
		rc = rc ? rc : tbuf_append(&url, c->nquery ? "&" : "?", 1);
		rc = rc ? rc : append_cstr(&url, az->cred.sas);
	}
	rc = rc ? rc : tbuf_append(&url, "", 1);
	if (rc) {
		tbuf_release(&path);
		tbuf_release(&url);
		return rc;
	}
	c->path = (char *)tbuf_detach(&path, NULL);
	*url_out = (char *)tbuf_detach(&url, NULL);
	return 0;
}

static int slist_add(struct curl_slist **l, const char *name, const char *value)
{
	char line[1024];
	struct curl_slist *n;

	if ((size_t)snprintf(line, sizeof(line), "%s: %s", name, value) >= sizeof(line))
		return -EINVAL;
	n = curl_slist_append(*l, line);
	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

/*
 * http_headers_fn: the headers of one attempt, signed with a fresh date.
 * The signed set must equal what goes on the wire: libcurl adds
 * Content-Length itself for uploads (from the body length), so it is
 * signed here from the same number.
 */
static int azure_headers(void *arg, struct curl_slist **out)
{
	struct azure_call *c = arg;
	struct azure_store *az = c->az;
	struct azure_kv all[AZURE_MAX_HEADERS + 3];
	size_t n = 0;
	char date[32], clen[24], auth[256];
	int rc = 0;

	azure_http_date(time(NULL), date);
	snprintf(clen, sizeof(clen), "%zu", c->body_len);
	all[n++] = (struct azure_kv){ "x-ms-date", date };
	all[n++] = (struct azure_kv){ "x-ms-version", AZURE_API_VERSION };
	for (size_t i = 0; i < c->nheaders; i++)
		all[n++] = c->headers[i];
	for (size_t i = 0; i < n && !rc; i++)
		rc = slist_add(out, all[i].name, all[i].value);
	if (!rc && az->cred.key) {
		struct azure_sign_req r = { c->method, c->path, c->query, c->nquery, all, n };

		if (!strcmp(c->method, "PUT") || !strcmp(c->method, "POST"))
			all[r.nheaders++] = (struct azure_kv){ "Content-Length", clen };
		rc = azure_authorization(&az->cred, &r, auth, sizeof(auth));
		rc = rc ? rc : slist_add(out, "Authorization", auth);
	}
	return rc;
}

/* The first line of the <Message> of an Azure error body, parsed with libxml2. */
static void error_message(const struct http_response *resp, char *buf, size_t len)
{
	xmlDocPtr doc;
	xmlNodePtr root;

	buf[0] = '\0';
	if (!resp->body.len || resp->body.len > (1 << 20))
		return;
	doc = xmlReadMemory((const char *)resp->body.data, (int)resp->body.len, "error.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return;
	root = xmlDocGetRootElement(doc);
	for (xmlNodePtr n = root ? root->children : NULL; n; n = n->next) {
		xmlChar *text;

		if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST "Message"))
			continue;
		text = xmlNodeGetContent(n);
		if (text) {
			snprintf(buf, len, "%.*s", (int)strcspn((const char *)text, "\r\n"),
				 (const char *)text);
			xmlFree(text);
		}
		break;
	}
	xmlFreeDoc(doc);
}

/*
 * Turn a finished request into the store's errno and, on failure, a one-line
 * message naming the operation, the object and Azure's error code.
 */
static int call_result(const struct azure_call *c, int rc, const struct http_response *resp,
		       const char *what, const char *key)
{
	const struct azure_store *az = c->az;
	char code[128], msg[256];

	if (rc) {
		store_set_errmsg("azure: cannot %s '%s' in container '%s': %s%s%s", what, key,
				 az->container, strerror(-rc), resp->error[0] ? ": " : "",
				 resp->error);
		return rc;
	}
	rc = http_status_errno(resp->status);
	if (!rc)
		return 0;
	if (!http_response_header(resp, "x-ms-error-code", code, sizeof(code)))
		snprintf(code, sizeof(code), "HTTP %ld", resp->status);
	error_message(resp, msg, sizeof(msg));
	if (rc == -EACCES)
		store_set_errmsg("azure: %s '%s': access denied by %s '%s' (%s): check the account "
				 "key or SAS token%s%s", what, key, az->cred.account ? "account" : "endpoint",
				 az->cred.account ? az->cred.account : az->cred.endpoint, code,
				 msg[0] ? ": " : "", msg);
	else
		store_set_errmsg("azure: cannot %s '%s' in container '%s': %s%s%s (after %d attempt%s)",
				 what, key, az->container, code, msg[0] ? ": " : "", msg,
				 resp->attempts, resp->attempts == 1 ? "" : "s");
	return rc;
}

/* Run c; 0 when a response arrived (any status), else a negative errno. */
static int call_run(struct azure_call *c, struct http_response *resp)
{
	struct http_request req = { 0 };
	char *url = NULL;
	int rc;

	rc = call_url(c, &url);
	if (rc)
		goto out;
	req.method = c->method;
	req.url = url;
	req.body = c->body;
	req.body_len = c->body_len;
	req.headers = azure_headers;
	req.headers_arg = c;
	rc = http_request(c->az->pool, &req, resp);
	/* The path only: the query may hold a SAS signature. */
	log_debug("azure: %s %s -> %d, HTTP %ld", c->method, c->path, rc, resp->status);
out:
	free(url);
	free(c->path);
	c->path = NULL;
	return rc;
}

static int is_error_code(const struct http_response *resp, const char *want)
{
	char code[128];

	return http_response_header(resp, "x-ms-error-code", code, sizeof(code)) &&
	       !strcmp(code, want);
}

/* Create the container; one that already exists is fine. */
static int create_container(struct azure_store *az)
{
	struct azure_call c = { .az = az, .method = "PUT" };
	struct http_response resp = HTTP_RESPONSE_INIT;
	int rc;

	call_query(&c, "restype", "container");
	rc = call_run(&c, &resp);
	if (!rc && resp.status == 409 && is_error_code(&resp, "ContainerAlreadyExists"))
		resp.status = 201;
	rc = call_result(&c, rc, &resp, "create container", az->container);
	if (!rc)
		log_info("azure: created container '%s'", az->container);
	http_response_release(&resp);
	return rc;
}

/*
 * Run a blob write; when the container does not exist yet, create it and
 * run the write once more.
 */
static int run_write(struct azure_call *c, struct http_response *resp)
{
	int rc = call_run(c, resp);

	if (rc || resp->status != 404 || !is_error_code(resp, "ContainerNotFound"))
		return rc;
	rc = create_container(c->az);
	if (rc)
		return rc;
	http_response_release(resp);
	return call_run(c, resp);
}

static int put_blob(struct azure_store *az, const char *key, const char *name,
		    const void *data, size_t len)
{
	struct azure_call c = { .az = az, .method = "PUT", .blob = name, .body = data,
				.body_len = len };
	struct http_response resp = HTTP_RESPONSE_INIT;
	int rc;

	call_header(&c, "x-ms-blob-type", "BlockBlob");
	rc = run_write(&c, &resp);
	rc = call_result(&c, rc, &resp, "put", key);
	http_response_release(&resp);
	return rc;
}

/*
 * Block IDs must be base64 and of one length within a blob. A random nonce
 * per upload keeps two writers of the same key from committing each
 * other's uncommitted blocks.
 */
static void block_id(const uint8_t nonce[8], unsigned idx, char out[48])
{
	char raw[24];

	snprintf(raw, sizeof(raw), "%02x%02x%02x%02x%02x%02x%02x%02x%06u", nonce[0], nonce[1],
		 nonce[2], nonce[3], nonce[4], nonce[5], nonce[6], nonce[7], idx % 1000000);
	azure_b64_encode((const uint8_t *)raw, 22, out);
}

static int put_blocks_once(struct azure_store *az, const char *key, const char *name,
			   const void *data, size_t len, int *lost_blocks)
{
	struct http_response resp = HTTP_RESPONSE_INIT;
	struct tbuf list = TBUF_INIT;
	uint64_t nblocks = (len + az->block_size - 1) / az->block_size;
	uint8_t nonce[8];
	char id[48];
	int rc;

	*lost_blocks = 0;
	if (nblocks > AZURE_MAX_BLOCKS) {
		store_set_errmsg("azure: cannot put '%s': %zu bytes need more than %d blocks of %llu",
				 key, len, AZURE_MAX_BLOCKS, (unsigned long long)az->block_size);
		return -EFBIG;
	}
	if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
		store_set_errmsg("azure: cannot put '%s': no random bytes", key);
		return -EIO;
	}
	rc = append_cstr(&list, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>");
	for (uint64_t i = 0; i < nblocks && !rc; i++) {
		uint64_t off = i * az->block_size;
		struct azure_call c = { .az = az, .method = "PUT", .blob = name,
					.body = (const uint8_t *)data + off,
					.body_len = (size_t)(len - off < az->block_size
								     ? len - off : az->block_size) };

		block_id(nonce, (unsigned)i, id);
		call_query(&c, "comp", "block");
		call_query(&c, "blockid", id);
		rc = run_write(&c, &resp);
		rc = call_result(&c, rc, &resp, "put block of", key);
		http_response_release(&resp);
		rc = rc ? rc : append_cstr(&list, "<Latest>");
		rc = rc ? rc : append_cstr(&list, id);
		rc = rc ? rc : append_cstr(&list, "</Latest>");
	}
	rc = rc ? rc : append_cstr(&list, "</BlockList>\n");
	if (!rc) {
		struct azure_call c = { .az = az, .method = "PUT", .blob = name,
					.body = list.data, .body_len = list.len };

		call_query(&c, "comp", "blocklist");
		call_header(&c, "Content-Type", "application/xml");
		rc = call_run(&c, &resp);
		*lost_blocks = !rc && resp.status == 400 && is_error_code(&resp, "InvalidBlockList");
		rc = call_result(&c, rc, &resp, "commit blocks of", key);
		http_response_release(&resp);
	}
	tbuf_release(&list);
	return rc;
}

/*
 * Put Block for each slice, then Put Block List. Uncommitted blocks can
 * vanish before the commit: another writer committing the same blob
 * discards them, and so does a server that lost state in a restart. The
 * commit then fails with InvalidBlockList, and the whole upload is done
 * once more with fresh block IDs.
 */
static int put_blocks(struct azure_store *az, const char *key, const char *name,
		      const void *data, size_t len)
{
	int lost = 0, rc;

	rc = put_blocks_once(az, key, name, data, len, &lost);
	if (rc && lost) {
		log_warn("azure: uncommitted blocks of '%s' were lost; uploading again", key);
		rc = put_blocks_once(az, key, name, data, len, &lost);
	}
	return rc;
}

static int azure_put(struct store *s, const char *key, const void *data, size_t len)
{
	struct azure_store *az = az_of(s);
	char *name = blob_name(az, key);
	int rc;

	if (!name)
		return -ENOMEM;
	if (len > az->block_threshold)
		rc = put_blocks(az, key, name, data, len);
	else
		rc = put_blob(az, key, name, data, len);
	free(name);
	return rc;
}

static int azure_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		     struct tbuf *out)
{
	struct azure_store *az = az_of(s);
	struct azure_call c = { .az = az, .method = "GET" };
	struct http_response resp = HTTP_RESPONSE_INIT;
	char range[64];
	int rc;

	c.blob = blob_name(az, key);
	if (!c.blob)
		return -ENOMEM;
	if (len != STORE_WHOLE) {
		snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
			 (unsigned long long)(off + len - 1));
		call_header(&c, "x-ms-range", range);
	} else if (off) {
		snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)off);
		call_header(&c, "x-ms-range", range);
	}
	if (!out->len && out->cap) {
		/* The caller's buffer receives the body (no copy when it fits). */
		resp.body = *out;
		*out = (struct tbuf)TBUF_INIT;
	}
	rc = call_run(&c, &resp);
	/* A range starting at or past the end reads nothing, like pread(). */
	if (!rc && resp.status == 416) {
		rc = 0;
		goto out;
	}
	rc = call_result(&c, rc, &resp, "get", key);
	if (rc)
		goto out;
	if (!out->len) {
		/* Hand the response buffer over instead of copying it. */
		tbuf_release(out);
		*out = resp.body;
		resp.body = (struct tbuf)TBUF_INIT;
	} else {
		rc = tbuf_append(out, resp.body.data, resp.body.len);
	}
out:
	http_response_release(&resp);
	free((char *)c.blob);
	return rc;
}

static int azure_head(struct store *s, const char *key, uint64_t *size_out)
{
	struct azure_store *az = az_of(s);
	struct azure_call c = { .az = az, .method = "HEAD" };
	struct http_response resp = HTTP_RESPONSE_INIT;
	char val[32];
	char *end;
	int rc;

	c.blob = blob_name(az, key);
	if (!c.blob)
		return -ENOMEM;
	rc = call_run(&c, &resp);
	rc = call_result(&c, rc, &resp, "stat", key);
	if (rc || !size_out)
		goto out;
	if (!http_response_header(&resp, "Content-Length", val, sizeof(val))) {
		store_set_errmsg("azure: no Content-Length for '%s'", key);
		rc = -EIO;
		goto out;
	}
	errno = 0;
	*size_out = strtoull(val, &end, 10);
	if (errno || end == val || *end) {
		store_set_errmsg("azure: bad Content-Length '%s' for '%s'", val, key);
		rc = -EIO;
	}
out:
	http_response_release(&resp);
	free((char *)c.blob);
	return rc;
}

static int azure_del(struct store *s, const char *key)
{
	struct azure_store *az = az_of(s);
	struct azure_call c = { .az = az, .method = "DELETE" };
	struct http_response resp = HTTP_RESPONSE_INIT;
	int rc;

	c.blob = blob_name(az, key);
	if (!c.blob)
		return -ENOMEM;
	rc = call_run(&c, &resp);
	/* Deleting what is not there succeeds, as with the other backends. */
	if (!rc && resp.status == 404)
		resp.status = 202;
	rc = call_result(&c, rc, &resp, "delete", key);
	http_response_release(&resp);
	free((char *)c.blob);
	return rc;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && !xmlStrcmp(n->name, BAD_CAST name))
			return n;
	return NULL;
}

struct list_state {
	struct azure_store *az;
	size_t strip;   /* bytes of "PREFIX/" to remove from names */
	store_list_cb cb;
	void *arg;
	char *marker;   /* NextMarker of the last page, NULL at the end */
};

/*
 * Feed one List Blobs page to the callback. Returns 0, the callback's
 * non-zero value, or -EIO for a page that is not what Azure sends.
 */
static int list_page(struct list_state *st, const struct http_response *resp)
{
	xmlDocPtr doc;
	xmlNodePtr root, next;
	int rc = 0;

	free(st->marker);
	st->marker = NULL;
	if (resp->body.len > INT32_MAX)
		return -EIO;
	doc = xmlReadMemory((const char *)resp->body.data, (int)resp->body.len, "list.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!root || xmlStrcmp(root->name, BAD_CAST "EnumerationResults")) {
		store_set_errmsg("azure: unreadable List Blobs reply for container '%s'",
				 st->az->container);
		rc = -EIO;
		goto out;
	}
	for (xmlNodePtr b = child(child(root, "Blobs"), "Blob"); b && !rc; b = b->next) {
		xmlNodePtr name_node = child(b, "Name");
		xmlNodePtr size_node = child(child(b, "Properties"), "Content-Length");
		xmlChar *name = NULL, *size = NULL, *encoded = NULL;
		char *plain = NULL;

		if (b->type != XML_ELEMENT_NODE || xmlStrcmp(b->name, BAD_CAST "Blob"))
			continue;
		name = name_node ? xmlNodeGetContent(name_node) : NULL;
		size = size_node ? xmlNodeGetContent(size_node) : NULL;
		encoded = name_node ? xmlGetProp(name_node, BAD_CAST "Encoded") : NULL;
		/* Names with characters XML cannot carry come percent-encoded. */
		if (name && encoded && !xmlStrcmp(encoded, BAD_CAST "true"))
			plain = xmlURIUnescapeString((const char *)name, 0, NULL);
		else if (name)
			plain = strdup((const char *)name);
		if (!plain || !size || strlen(plain) < st->strip) {
			store_set_errmsg("azure: malformed blob entry in container '%s'",
					 st->az->container);
			rc = -EIO;
		} else {
			rc = st->cb(st->arg, plain + st->strip, strtoull((const char *)size, NULL, 10));
		}
		free(plain);
		xmlFree(name);
		xmlFree(size);
		xmlFree(encoded);
	}
	next = child(root, "NextMarker");
	if (!rc && next) {
		xmlChar *m = xmlNodeGetContent(next);

		if (m && *m && !(st->marker = strdup((const char *)m)))
			rc = -ENOMEM;
		xmlFree(m);
	}
out:
	xmlFreeDoc(doc);
	return rc;
}

static int azure_list(struct store *s, const char *prefix, store_list_cb cb, void *arg)
{
	struct azure_store *az = az_of(s);
	struct list_state st = { .az = az, .cb = cb, .arg = arg };
	char *full = NULL, maxresults[16];
	int rc = 0;

	snprintf(maxresults, sizeof(maxresults), "%d", az->list_max);
	if (*az->prefix) {
		if (asprintf(&full, "%s/%s", az->prefix, prefix) < 0)
			full = NULL;
		st.strip = strlen(az->prefix) + 1;
	} else {
		full = strdup(prefix);
	}
	if (!full)
		return -ENOMEM;
	do {
		struct azure_call c = { .az = az, .method = "GET" };
		struct http_response resp = HTTP_RESPONSE_INIT;

		call_query(&c, "restype", "container");
		call_query(&c, "comp", "list");
		if (*full)
			call_query(&c, "prefix", full);
		if (st.marker)
			call_query(&c, "marker", st.marker);
		call_query(&c, "maxresults", maxresults);
		rc = call_run(&c, &resp);
		/* No container yet: nothing was ever stored. */
		if (!rc && resp.status == 404 && is_error_code(&resp, "ContainerNotFound")) {
			http_response_release(&resp);
			break;
		}
		rc = call_result(&c, rc, &resp, "list", full);
		if (!rc)
			rc = list_page(&st, &resp);
		http_response_release(&resp);
	} while (!rc && st.marker);
	free(st.marker);
	free(full);
	return rc;
}

static void azure_close(struct store *s)
{
	struct azure_store *az = az_of(s);

	if (!az)
		return;
	http_pool_free(az->pool);
	azure_cred_release(&az->cred);
	free(az->origin);
	free(az->base_path);
	free(az->container);
	free(az->prefix);
	free(az->base.url);
	free(az);
}

static const struct store_ops azure_ops = {
	.scheme = "azure",
	.put = azure_put,
	.get = azure_get,
	.head = azure_head,
	.list = azure_list,
	.del = azure_del,
	.close = azure_close,
};

/* Azure's rule: 3-63 of [a-z0-9-], starting with a letter or digit, no "--". */
static int valid_container(const char *c)
{
	size_t n = strlen(c);

	if (n < 3 || n > 63 || c[0] == '-' || c[n - 1] == '-' || strstr(c, "--"))
		return 0;
	for (; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return 0;
	return 1;
}

/* A size from the environment, or def when unset. */
static int env_size(const char *var, uint64_t def, uint64_t min, uint64_t max,
		    uint64_t *out, char *err, size_t errlen)
{
	const char *v = getenv(var);

	*out = def;
	if (!v || !*v)
		return 0;
	if (parse_size(v, out) || *out < min || *out > max) {
		snprintf(err, errlen, "invalid %s '%s'", var, v);
		return -EINVAL;
	}
	return 0;
}

/* Split the endpoint URL into origin ("scheme://host:port") and path. */
static int split_endpoint(struct azure_store *az, char *err, size_t errlen)
{
	const char *ep = az->cred.endpoint;
	const char *host = strstr(ep, "://");
	const char *slash = host ? strchr(host + 3, '/') : NULL;

	if (!host || !host[3] || strchr(ep, '?')) {
		snprintf(err, errlen, "invalid azure endpoint '%s'", ep);
		return -EINVAL;
	}
	az->origin = slash ? strndup(ep, (size_t)(slash - ep)) : strdup(ep);
	az->base_path = strdup(slash ? slash : "");
	return az->origin && az->base_path ? 0 : -ENOMEM;
}

int store_azure_open(const char *url_rest, const struct store_opts *o, struct store **out,
		     char *err, size_t errlen)
{
	struct azure_store *az = calloc(1, sizeof(*az));
	const char *slash = strchr(url_rest, '/');
	uint64_t list_max;
	int rc = -ENOMEM;

	if (!az)
		goto fail;
	az->base.ops = &azure_ops;
	if (asprintf(&az->base.url, "azure://%s", url_rest) < 0) {
		az->base.url = NULL;
		goto fail;
	}
	az->container = slash ? strndup(url_rest, (size_t)(slash - url_rest)) : strdup(url_rest);
	az->prefix = store_norm_prefix(slash ? slash : "");
	if (!az->container || !az->prefix)
		goto fail;
	if (!valid_container(az->container)) {
		snprintf(err, errlen, "invalid azure container name '%s' (3-63 lowercase letters, "
			 "digits and single hyphens)", az->container);
		rc = -EINVAL;
		goto fail;
	}
	rc = env_size("TIERFS_AZURE_BLOCK_THRESHOLD", AZURE_DEFAULT_THRESHOLD, 0, UINT64_MAX,
		      &az->block_threshold, err, errlen);
	rc = rc ? rc : env_size("TIERFS_AZURE_BLOCK_SIZE", AZURE_DEFAULT_BLOCK, 1, AZURE_MAX_BLOCK,
				&az->block_size, err, errlen);
	rc = rc ? rc : env_size("TIERFS_AZURE_LIST_MAX", AZURE_DEFAULT_LIST_MAX, 1, 5000,
				&list_max, err, errlen);
	if (rc)
		goto fail;
	az->list_max = (int)list_max;
	rc = azure_cred_from_env(o ? o->endpoint : NULL, &az->cred, err, errlen);
	if (rc)
		goto fail;
	rc = split_endpoint(az, err, errlen);
	if (rc)
		goto fail;
	rc = http_pool_new(o, &az->pool);
	if (rc)
		goto fail;
	*out = &az->base;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	azure_close(az ? &az->base : NULL);
	return rc;
}
