/*
 * azure_auth.h - Azure Blob Storage credentials and SharedKey signing, kept
 * apart from the HTTP code in store/azure.c so that they can be unit tested
 * without a server. It turns the configuration Azure tools take (a
 * connection string, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or
 * AZURE_STORAGE_SAS_TOKEN) into one struct azure_cred, and builds the
 * SharedKey string-to-sign and Authorization header as specified for
 * service version 2009-09-19 and later ("Authorize with Shared Key").
 */
#ifndef TIERFS_AZURE_AUTH_H
#define TIERFS_AZURE_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

/* Azurite's well-known development account (public, documented). */
#define AZURE_DEV_ACCOUNT "devstoreaccount1"
#define AZURE_DEV_KEY \
	"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define AZURE_DEV_ENDPOINT "http://127.0.0.1:10000/devstoreaccount1"

/*
 * Resolved credentials for one storage account. Every string is owned by
 * the struct and freed by azure_cred_release(). Exactly one of key and sas
 * is set: with a key requests are signed (SharedKey), with a SAS token the
 * token is appended to every URL and nothing is signed.
 */
struct azure_cred {
	char *account;   /* account name; may be NULL with a SAS and an endpoint */
	uint8_t *key;    /* base64-decoded AccountKey, or NULL */
	size_t keylen;
	char *sas;       /* SAS query string without the leading '?', or NULL */
	char *endpoint;  /* blob service base URL without trailing '/' */
};

/*
 * Parse an Azure connection string ("Key=Value;Key=Value;..."; key names
 * are case-insensitive, values may contain '='). Understands
 * DefaultEndpointsProtocol, AccountName, AccountKey, BlobEndpoint,
 * SharedAccessSignature, EndpointSuffix and UseDevelopmentStorage=true
 * (azurite's default account on 127.0.0.1:10000). Without BlobEndpoint the
 * endpoint is PROTOCOL://ACCOUNT.blob.SUFFIX (defaults https and
 * core.windows.net). Returns 0, or -EINVAL with a message in err (which
 * never contains the key), or -ENOMEM. On failure out is left zeroed.
 */
int azure_cred_from_connstr(const char *cs, struct azure_cred *out, char *err,
			    size_t errlen);

/*
 * Resolve credentials the way the Azure CLI does: AZURE_STORAGE_CONNECTION_STRING
 * if set, else AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or
 * AZURE_STORAGE_SAS_TOKEN. A non-NULL endpoint overrides the endpoint found
 * in the environment. Same returns as azure_cred_from_connstr().
 */
int azure_cred_from_env(const char *endpoint, struct azure_cred *out, char *err,
			size_t errlen);

/* Free everything azure_cred owns and zero it. Safe on a zeroed struct. */
void azure_cred_release(struct azure_cred *c);

/* A name/value pair: a request header or a query parameter. */
struct azure_kv {
	const char *name;
	const char *value;
};

/*
 * One request as the signer sees it. path is the URL path exactly as sent
 * (percent-encoded, starting with '/'; for path-style endpoints such as
 * azurite's it begins with "/ACCOUNT"). query values are raw (not
 * percent-encoded). headers are all headers the request will carry, the
 * standard ones (Content-Length, Content-Type, ...) included; names are
 * matched case-insensitively.
 */
struct azure_sign_req {
	const char *method;
	const char *path;
	const struct azure_kv *query;
	size_t nquery;
	const struct azure_kv *headers;
	size_t nheaders;
};

/*
 * Append the SharedKey string-to-sign for r to out: the verb, the twelve
 * standard header values (Content-Length empty when 0), the canonicalized
 * x-ms- headers (lowercase names, sorted, values trimmed with whitespace
 * runs folded, repeated names joined with ','), and the canonicalized
 * resource "/ACCOUNT" + path followed by "\nname:value" for each query
 * parameter (lowercase names, sorted, repeated names' values sorted and
 * joined with ','). 0 or -ENOMEM.
 */
int azure_string_to_sign(const char *account, const struct azure_sign_req *r,
			 struct tbuf *out);

/*
 * Compute the Authorization header value "SharedKey ACCOUNT:SIGNATURE"
 * where SIGNATURE is base64(HMAC-SHA256(key, string-to-sign)). c must hold
 * a key. Writes a NUL-terminated string to out; 0, -ENOMEM, -EINVAL (no
 * key) or -ENAMETOOLONG (out too small).
 */
int azure_authorization(const struct azure_cred *c, const struct azure_sign_req *r,
			char *out, size_t outlen);

/* Format t as an RFC 1123 date in GMT ("Sun, 06 Nov 1994 08:49:37 GMT"). */
void azure_http_date(time_t t, char out[32]);

/*
 * Append s to out percent-encoded: unreserved characters (RFC 3986) are
 * kept, and '/' too when keep_slash is set. 0 or -ENOMEM.
 */
int azure_url_encode(const char *s, int keep_slash, struct tbuf *out);

/*
 * Base64 helpers (OpenSSL underneath). azure_b64_encode writes a
 * NUL-terminated string of 4 * ceil(len / 3) characters; out must hold
 * that plus one. azure_b64_decode returns a malloc'ed buffer the caller
 * frees, or NULL when s is not valid base64 (or out of memory).
 */
void azure_b64_encode(const uint8_t *in, size_t len, char *out);
uint8_t *azure_b64_decode(const char *s, size_t *len_out);

#endif
