/*
 * http.h - the HTTP layer shared by the S3 and Azure backends: a thread-safe
 * pool of libcurl easy handles that share one connection cache, DNS cache and
 * TLS session cache (a CURLSH), so many threads reuse a few keep-alive
 * connections. http_request() runs one request with timeouts and a retry
 * loop: connection errors, timeouts, HTTP 5xx and 429 are retried with
 * exponential backoff and full jitter; any other status is final. Headers are
 * rebuilt by a callback before every attempt, so that signed requests carry a
 * fresh date on each retry.
 */
#ifndef TIERFS_HTTP_H
#define TIERFS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "util.h"

struct http_pool;
struct store_opts;

/*
 * Create a pool. Timeouts, retries and the number of connections come from
 * opts (NULL or zero fields: the defaults documented in store.h). Returns 0
 * or -ENOMEM; free with http_pool_free() once no request is running.
 */
int http_pool_new(const struct store_opts *opts, struct http_pool **out);
void http_pool_free(struct http_pool *p);

/*
 * Builds the request headers for one attempt into *out (a list the pool
 * frees after the attempt). Called before every attempt, including retries.
 * Return 0 or a negative errno (which ends the request with that error).
 */
typedef int (*http_headers_fn)(void *arg, struct curl_slist **out);

struct http_request {
	const char *method;   /* "GET", "HEAD", "PUT", "POST", "DELETE" */
	const char *url;      /* fully encoded */
	const void *body;     /* request body for PUT/POST, may be NULL */
	size_t body_len;
	http_headers_fn headers; /* may be NULL: no extra headers */
	void *headers_arg;
	/*
	 * Retry also on these statuses (besides 5xx and 429); 0-terminated,
	 * may be NULL. Unused by S3; kept for stores with odd busy codes.
	 */
	const long *retry_status;
};

/*
 * The result of a request. Zero-initialise (HTTP_RESPONSE_INIT); after
 * http_request() the caller owns body and must call http_response_release().
 */
struct http_response {
	long status;            /* final HTTP status, 0 if none was received */
	struct tbuf body;       /* response body of the final attempt */
	struct tbuf hdrs;       /* raw response headers of the final attempt */
	int attempts;           /* how many attempts were made */
	char error[CURL_ERROR_SIZE]; /* transport error text, "" if none */
};
#define HTTP_RESPONSE_INIT { 0, TBUF_INIT, TBUF_INIT, 0, "" }

/*
 * Run a request. Returns 0 when an HTTP response was received, whatever its
 * status (after retries, a 5xx may be the final one; see http_status_errno).
 * Returns a negative errno when no response could be had after the retry
 * budget: -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -EIO (resp->error then
 * says why), or -ENOMEM / the headers callback's error.
 */
int http_request(struct http_pool *p, const struct http_request *req,
		 struct http_response *resp);

/*
 * The value of a response header (case-insensitive name, trimmed), copied
 * into buf. Returns buf, or NULL when the header is absent.
 */
const char *http_response_header(const struct http_response *resp, const char *name,
				 char *buf, size_t buflen);

void http_response_release(struct http_response *resp);

/*
 * Map a final HTTP status to the store's errno convention: 2xx -> 0,
 * 404 -> -ENOENT, 401/403 -> -EACCES, 5xx/429 -> -EIO, other 4xx -> -EINVAL.
 */
int http_status_errno(long status);

#endif
