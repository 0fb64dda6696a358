/*
 * azure_auth.c - Azure credentials and SharedKey request signing. The
 * configuration is parsed here from connection strings and environment
 * variables, and the string-to-sign is canonicalized as Microsoft's
 * "Authorize with Shared Key" specifies for versions 2009-09-19 and later;
 * HMAC-SHA256 and base64 come from OpenSSL. Nothing here does I/O, so the
 * unit test (tests/unit/test_azure_auth.c) covers it all without a server.
 */
#include "azure_auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* The standard headers in the order the string-to-sign lists them. */
static const char *const std_headers[] = {
	"Content-Encoding", "Content-Language", "Content-Length", "Content-MD5",
	"Content-Type", "Date", "If-Modified-Since", "If-Match", "If-None-Match",
	"If-Unmodified-Since", "Range",
};

void azure_b64_encode(const uint8_t *in, size_t len, char *out)
{
	if (!len) {
		out[0] = '\0';
		return;
	}
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

uint8_t *azure_b64_decode(const char *s, size_t *len_out)
{
	size_t n = strlen(s), pad = 0;
	uint8_t *buf;
	int got;

	if (n == 0 || n % 4 || n > (size_t)INT32_MAX)
		return NULL;
	if (s[n - 1] == '=')
		pad++;
	if (s[n - 2] == '=')
		pad++;
	buf = malloc(n / 4 * 3 + 1);
	if (!buf)
		return NULL;
	got = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
	if (got < 0 || (size_t)got < pad) {
		free(buf);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	*len_out = (size_t)got - pad;
	return buf;
}

void azure_http_date(time_t t, char out[32])
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	char buf[80]; /* room for any int the compiler imagines */

	/* Day and month names by hand: strftime's %a and %b follow the locale. */
	gmtime_r(&t, &tm);
	snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
		 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
		 tm.tm_min, tm.tm_sec);
	snprintf(out, 32, "%.31s", buf);
}

int azure_url_encode(const char *s, int keep_slash, struct tbuf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
		char enc[3] = { '%', hex[*p >> 4], hex[*p & 15] };

		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
		    (keep_slash && *p == '/'))
			rc = tbuf_append(out, p, 1);
		else
			rc = tbuf_append(out, enc, 3);
	}
	return rc;
}

static int append_str(struct tbuf *b, const char *s)
{
	return tbuf_append(b, s, strlen(s));
}

/* Append a header value trimmed, with each whitespace run folded to one space. */
static int append_folded(struct tbuf *b, const char *v)
{
	int rc = 0, space = 0;

	while (isspace((unsigned char)*v))
		v++;
	for (; *v && !rc; v++) {
		if (isspace((unsigned char)*v)) {
			space = 1;
			continue;
		}
		if (space)
			rc = tbuf_append(b, " ", 1);
		space = 0;
		if (!rc)
			rc = tbuf_append(b, v, 1);
	}
	return rc;
}

/* A name lowercased into its own buffer, paired with the original entry. */
struct canon_item {
	char *name;
	const char *value;
	size_t idx;      /* position in the request, to keep header order */
	int sort_values; /* query: repeated names' values are sorted */
};

static int cmp_canon_item(const void *a, const void *b)
{
	const struct canon_item *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	if (x->sort_values) {
		c = strcmp(x->value, y->value);
		if (c)
			return c;
	}
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/*
 * Lowercase and sort kv by name. Headers (only_prefix set: only the names
 * starting with it) keep their values in request order; query parameters
 * get repeated names' values sorted. Free the result with canon_free().
 */
static int canon_sort(const struct azure_kv *kv, size_t n, const char *only_prefix,
		      struct canon_item **items_out, size_t *n_out)
{
	struct canon_item *items = calloc(n ? n : 1, sizeof(*items));
	size_t m = 0;

	if (!items)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (only_prefix && strncasecmp(kv[i].name, only_prefix, strlen(only_prefix)))
			continue;
		items[m].name = strdup(kv[i].name);
		if (!items[m].name) {
			for (size_t j = 0; j < m; j++)
				free(items[j].name);
			free(items);
			return -ENOMEM;
		}
		for (char *p = items[m].name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		items[m].value = kv[i].value ? kv[i].value : "";
		items[m].idx = i;
		items[m].sort_values = !only_prefix;
		m++;
	}
	qsort(items, m, sizeof(*items), cmp_canon_item);
	*items_out = items;
	*n_out = m;
	return 0;
}

static void canon_free(struct canon_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i].name);
	free(items);
}

/*
 * Append "name:v1,v2\n" per distinct name (headers) or "\nname:v1,v2" per
 * distinct name (query), folding header values.
 */
static int append_canon(struct tbuf *b, const struct canon_item *items, size_t n,
			int is_query)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		int first = i == 0 || strcmp(items[i].name, items[i - 1].name);
		int last = i + 1 == n || strcmp(items[i].name, items[i + 1].name);

		if (first) {
			if (is_query)
				rc = rc ? rc : tbuf_append(b, "\n", 1);
			rc = rc ? rc : append_str(b, items[i].name);
			rc = rc ? rc : tbuf_append(b, ":", 1);
		} else {
			rc = rc ? rc : tbuf_append(b, ",", 1);
		}
		if (is_query)
			rc = rc ? rc : append_str(b, items[i].value);
		else
			rc = rc ? rc : append_folded(b, items[i].value);
		if (last && !is_query)
			rc = rc ? rc : tbuf_append(b, "\n", 1);
	}
	return rc;
}

static const char *find_header(const struct azure_sign_req *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (!strcasecmp(r->headers[i].name, name))
			return r->headers[i].value ? r->headers[i].value : "";
	return "";
}

int azure_string_to_sign(const char *account, const struct azure_sign_req *r,
			 struct tbuf *out)
{
	struct canon_item *hdrs = NULL, *qs = NULL;
	size_t nh = 0, nq = 0;
	int rc;

	rc = append_str(out, r->method);
	rc = rc ? rc : tbuf_append(out, "\n", 1);
	for (size_t i = 0; i < sizeof(std_headers) / sizeof(std_headers[0]) && !rc; i++) {
		const char *v = find_header(r, std_headers[i]);

		/* Since 2015-02-21 a zero Content-Length is signed as empty. */
		if (!strcasecmp(std_headers[i], "Content-Length") && !strcmp(v, "0"))
			v = "";
		rc = append_str(out, v);
		rc = rc ? rc : tbuf_append(out, "\n", 1);
	}
	rc = rc ? rc : canon_sort(r->headers, r->nheaders, "x-ms-", &hdrs, &nh);
	rc = rc ? rc : append_canon(out, hdrs, nh, 0);
	rc = rc ? rc : tbuf_append(out, "/", 1);
	rc = rc ? rc : append_str(out, account ? account : "");
	rc = rc ? rc : append_str(out, r->path);
	rc = rc ? rc : canon_sort(r->query, r->nquery, NULL, &qs, &nq);
	rc = rc ? rc : append_canon(out, qs, nq, 1);
	if (hdrs)
		canon_free(hdrs, nh);
	if (qs)
		canon_free(qs, nq);
	return rc;
}

int azure_authorization(const struct azure_cred *c, const struct azure_sign_req *r,
			char *out, size_t outlen)
{
	struct tbuf sts = TBUF_INIT;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char sig[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
	int rc;

	if (!c->key || !c->account)
		return -EINVAL;
	rc = azure_string_to_sign(c->account, r, &sts);
	if (rc)
		goto out;
	if (!HMAC(EVP_sha256(), c->key, (int)c->keylen, sts.data, sts.len, mac, &maclen)) {
		rc = -ENOMEM;
		goto out;
	}
	azure_b64_encode(mac, maclen, sig);
	if ((size_t)snprintf(out, outlen, "SharedKey %s:%s", c->account, sig) >= outlen)
		rc = -ENAMETOOLONG;
out:
	tbuf_release(&sts);
	return rc;
}

void azure_cred_release(struct azure_cred *c)
{
	free(c->account);
	if (c->key)
		memset(c->key, 0, c->keylen);
	free(c->key);
	free(c->sas);
	free(c->endpoint);
	memset(c, 0, sizeof(*c));
}

static char *dup_trimmed_endpoint(const char *e)
{
	size_t n = strlen(e);

	while (n > 0 && e[n - 1] == '/')
		n--;
	return strndup(e, n);
}

/*
 * Fill c from its parts (any may be NULL) and validate the combination.
 * This is the single place both configuration sources end up in.
 */
static int cred_build(struct azure_cred *c, const char *account, const char *key,
		      const char *sas, const char *endpoint, const char *protocol,
		      const char *suffix, char *err, size_t errlen)
{
	int rc = -ENOMEM;

	memset(c, 0, sizeof(*c));
	if (key && *key && sas && *sas) {
		/* Both given: the key is more capable; the SAS is ignored. */
		sas = NULL;
	}
	if (!(key && *key) && !(sas && *sas)) {
		snprintf(err, errlen, "no azure credentials: need an account key or a SAS token");
		rc = -EINVAL;
		goto fail;
	}
	if (key && *key && !(account && *account)) {
		snprintf(err, errlen, "an azure account key needs an account name");
		rc = -EINVAL;
		goto fail;
	}
	if (!(endpoint && *endpoint) && !(account && *account)) {
		snprintf(err, errlen, "no azure blob endpoint: need an account name or BlobEndpoint");
		rc = -EINVAL;
		goto fail;
	}
	if (account && *account && !(c->account = strdup(account)))
		goto fail;
	if (key && *key) {
		c->key = azure_b64_decode(key, &c->keylen);
		if (!c->key) {
			snprintf(err, errlen, "the azure account key is not valid base64");
			rc = -EINVAL;
			goto fail;
		}
	} else {
		if (*sas == '?')
			sas++;
		if (!(c->sas = strdup(sas)))
			goto fail;
	}
	if (endpoint && *endpoint) {
		if (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)) {
			snprintf(err, errlen, "azure endpoint '%s' is not an http(s) URL", endpoint);
			rc = -EINVAL;
			goto fail;
		}
		c->endpoint = dup_trimmed_endpoint(endpoint);
	} else if (asprintf(&c->endpoint, "%s://%s.blob.%s", protocol && *protocol ? protocol : "https",
			    account, suffix && *suffix ? suffix : "core.windows.net") < 0) {
		c->endpoint = NULL;
	}
	if (!c->endpoint)
		goto fail;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	azure_cred_release(c);
	return rc;
}

int azure_cred_from_connstr(const char *cs, struct azure_cred *out, char *err,
			    size_t errlen)
{
	/* Indices into val[]; names[] lists the keys we understand. */
	enum { PROTO, ACCOUNT, KEY, ENDPOINT, SAS, SUFFIX, DEVSTORE, NKEYS };
	static const char *const names[NKEYS] = {
		"DefaultEndpointsProtocol", "AccountName", "AccountKey", "BlobEndpoint",
		"SharedAccessSignature", "EndpointSuffix", "UseDevelopmentStorage",
	};
	const char *val[NKEYS] = { NULL };
	char *copy = strdup(cs), *save = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		char *eq;

		while (isspace((unsigned char)*tok))
			tok++;
		if (!*tok)
			continue;
		eq = strchr(tok, '=');
		if (!eq) {
			snprintf(err, errlen, "malformed azure connection string: '%.40s' has no '='", tok);
			rc = -EINVAL;
			goto out;
		}
		/* Trim the blanks around the key and the value. */
		for (char *e = eq; e > tok && isspace((unsigned char)e[-1]); e--)
			e[-1] = '\0';
		*eq++ = '\0';
		while (isspace((unsigned char)*eq))
			eq++;
		for (char *e = eq + strlen(eq); e > eq && isspace((unsigned char)e[-1]); e--)
			e[-1] = '\0';
		for (int i = 0; i < NKEYS; i++)
			if (!strcasecmp(tok, names[i]))
				val[i] = eq;
		/* Other keys (QueueEndpoint, TableEndpoint, ...) do not concern blobs. */
	}
	if (val[DEVSTORE] && !strcasecmp(val[DEVSTORE], "true")) {
		rc = cred_build(out, AZURE_DEV_ACCOUNT, AZURE_DEV_KEY, NULL,
				val[ENDPOINT] ? val[ENDPOINT] : AZURE_DEV_ENDPOINT, NULL, NULL,
				err, errlen);
		goto out;
	}
	rc = cred_build(out, val[ACCOUNT], val[KEY], val[SAS], val[ENDPOINT], val[PROTO],
			val[SUFFIX], err, errlen);
out:
	free(copy);
	return rc;
}

int azure_cred_from_env(const char *endpoint, struct azure_cred *out, char *err,
			size_t errlen)
{
	const char *cs = getenv("AZURE_STORAGE_CONNECTION_STRING");
	char *ep;
	int rc;

	memset(out, 0, sizeof(*out));
	if (cs && *cs) {
		rc = azure_cred_from_connstr(cs, out, err, errlen);
	} else {
		const char *acct = getenv("AZURE_STORAGE_ACCOUNT");

		if (!(acct && *acct)) {
			snprintf(err, errlen, "no azure credentials: set AZURE_STORAGE_CONNECTION_STRING, "
				 "or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN");
			return -EINVAL;
		}
		rc = cred_build(out, acct, getenv("AZURE_STORAGE_KEY"),
				getenv("AZURE_STORAGE_SAS_TOKEN"), endpoint, NULL, NULL, err,
				errlen);
	}
	if (rc || !endpoint || !*endpoint)
		return rc;
	if (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)) {
		snprintf(err, errlen, "azure endpoint '%s' is not an http(s) URL", endpoint);
		azure_cred_release(out);
		return -EINVAL;
	}
	ep = dup_trimmed_endpoint(endpoint);
	if (!ep) {
		snprintf(err, errlen, "out of memory");
		azure_cred_release(out);
		return -ENOMEM;
	}
	free(out->endpoint);
	out->endpoint = ep;
	return 0;
}
