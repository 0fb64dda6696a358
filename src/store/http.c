/*
 * http.c - a pool of libcurl easy handles for the HTTP object stores.
 *
 * DESIGN: a request takes an idle easy handle from the pool (or creates one,
 * up to max_connections handles in use; further callers wait on a condition
 * variable), runs the request with curl_easy_perform() and gives the handle
 * back. All handles are attached to one CURLSH sharing the connection cache,
 * DNS cache and TLS session cache, so a connection opened by one thread is
 * reused by the next; the share is guarded by one mutex per curl_lock_data.
 * The retry loop lives here, not in the backends: every attempt rebuilds the
 * request headers through the caller's callback (fresh signature dates),
 * transient failures back off exponentially with jitter up to a cap, and the
 * final outcome is either an HTTP response (any status) or a negative errno.
 */
#include "http.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "store.h"

#define HTTP_DEFAULT_TIMEOUT_MS 30000
#define HTTP_DEFAULT_CONNECT_MS 5000
#define HTTP_DEFAULT_RETRIES 5
#define HTTP_DEFAULT_BASE_MS 100
#define HTTP_DEFAULT_CONNS 16
#define HTTP_MAX_BACKOFF_MS 8000
#define HTTP_IO_BUFFER (512 * 1024)

struct http_pool {
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

	pthread_mutex_t lock;
	pthread_cond_t cond;
	CURL **idle;   /* protected by lock: idle handles, a stack */
	int nidle;     /* protected by lock */
	int in_use;    /* protected by lock: handles lent out */

	int max_conns;
	long timeout_ms;
	long connect_timeout_ms;
	int max_retries;
	int retry_base_ms;
	const int *cancel; /* see store_opts; read atomically */
};

/* Per-attempt transfer state handed to the libcurl callbacks. */
struct http_xfer {
	const struct http_request *req;
	struct http_response *resp;
	CURL *handle;
	size_t upload_off;
	int oom;
};

/* Bodies up to this size are allocated whole from their Content-Length. */
#define HTTP_PRESIZE_MAX ((curl_off_t)256 << 20)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_global_rc;

static void curl_global_setup(void)
{
	curl_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct http_pool *p = arg;

	pthread_mutex_lock(&p->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct http_pool *p = arg;

	pthread_mutex_unlock(&p->share_locks[data]);
}

int http_pool_new(const struct store_opts *o, struct http_pool **out)
{
	struct http_pool *p;
	int rc = -ENOMEM;

	pthread_once(&curl_once, curl_global_setup);
	if (curl_global_rc != CURLE_OK)
		return -ENOMEM;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->max_conns = o && o->max_connections > 0 ? o->max_connections : HTTP_DEFAULT_CONNS;
	p->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
	p->connect_timeout_ms = o && o->connect_timeout_ms > 0 ? o->connect_timeout_ms
							       : HTTP_DEFAULT_CONNECT_MS;
	if (o && o->max_retries < 0)
		p->max_retries = 0;
	else
		p->max_retries = o && o->max_retries > 0 ? o->max_retries : HTTP_DEFAULT_RETRIES;
	p->retry_base_ms = o && o->retry_base_ms > 0 ? o->retry_base_ms : HTTP_DEFAULT_BASE_MS;
	p->cancel = o ? o->cancel : NULL;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&p->share_locks[i], NULL);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->idle = calloc((size_t)p->max_conns, sizeof(*p->idle));
	p->share = curl_share_init();
	if (!p->idle || !p->share)
		goto fail;
	if (curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(p->share, CURLSHOPT_USERDATA, p) ||
	    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) ||
	    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION))
		goto fail;
	*out = p;
	return 0;
fail:
	http_pool_free(p);
	return rc;
}

void http_pool_free(struct http_pool *p)
{
	if (!p)
		return;
	/* Handles first: they hold references into the share. */
	for (int i = 0; i < p->nidle; i++)
		curl_easy_cleanup(p->idle[i]);
	free(p->idle);
	if (p->share)
		curl_share_cleanup(p->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&p->share_locks[i]);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/* Borrow a handle, waiting while max_conns are in use. NULL on ENOMEM. */
static CURL *pool_take(struct http_pool *p)
{
	CURL *h = NULL;

	pthread_mutex_lock(&p->lock);
	while (p->in_use >= p->max_conns)
		pthread_cond_wait(&p->cond, &p->lock);
	p->in_use++;
	if (p->nidle)
		h = p->idle[--p->nidle];
	pthread_mutex_unlock(&p->lock);
	if (!h) {
		h = curl_easy_init();
		if (!h) {
			pthread_mutex_lock(&p->lock);
			p->in_use--;
			pthread_cond_signal(&p->cond);
			pthread_mutex_unlock(&p->lock);
		}
	}
	return h;
}

static void pool_give(struct http_pool *p, CURL *h)
{
	pthread_mutex_lock(&p->lock);
	p->in_use--;
	p->idle[p->nidle++] = h; /* fits: at most max_conns handles exist */
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	size_t n = size * nmemb;
	curl_off_t clen;

	/* One allocation for the whole body, not a doubling series of
	 * reallocations that copies a 4 MiB chunk twice over. */
	if (!x->resp->body.len && !x->resp->body.cap &&
	    curl_easy_getinfo(x->handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen) == CURLE_OK &&
	    clen > 0 && clen <= HTTP_PRESIZE_MAX && tbuf_grow(&x->resp->body, (size_t)clen)) {
		x->oom = 1;
		return 0;
	}
	if (tbuf_append(&x->resp->body, ptr, n)) {
		x->oom = 1;
		return 0;
	}
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	struct http_response *r = x->resp;
	size_t n = size * nmemb;
	char line[64];

	/* A new status line (after 100 Continue): forget earlier headers. */
	if (n >= 5 && !memcmp(ptr, "HTTP/", 5))
		tbuf_reset(&r->hdrs);
	if (tbuf_append(&r->hdrs, ptr, n)) {
		x->oom = 1;
		return 0;
	}
	/* Size the body buffer once from Content-Length. */
	if (n > 15 && n < sizeof(line) && !strncasecmp(ptr, "content-length:", 15)) {
		unsigned long long len;

		memcpy(line, ptr + 15, n - 15);
		line[n - 15] = '\0';
		len = strtoull(line, NULL, 10);
		if (len > 0 && len < (1ull << 32) && tbuf_grow(&r->body, (size_t)len)) {
			x->oom = 1;
			return 0;
		}
	}
	return n;
}

static size_t on_upload(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	size_t room = size * nmemb, left = x->req->body_len - x->upload_off;
	size_t n = left < room ? left : room;

	if (n)
		memcpy(buf, (const char *)x->req->body + x->upload_off, n);
	x->upload_off += n;
	return n;
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
	struct http_xfer *x = arg;

	if (origin != SEEK_SET || off < 0 || (size_t)off > x->req->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->upload_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static int cancelled(const struct http_pool *p)
{
	return p->cancel && __atomic_load_n(p->cancel, __ATOMIC_RELAXED);
}

/* Aborts a transfer in flight once the owner cancels (shutdown). */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return cancelled(arg);
}

static int setup_handle(struct http_pool *p, CURL *h, struct http_xfer *x,
			struct curl_slist *hdrs)
{
	const struct http_request *req = x->req;
	CURLcode cc = CURLE_OK;

	curl_easy_reset(h);
#define SET(opt, val)                                  \
	do {                                           \
		if (cc == CURLE_OK)                    \
			cc = curl_easy_setopt(h, opt, val); \
	} while (0)
	SET(CURLOPT_SHARE, p->share);
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, p->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, p->connect_timeout_ms);
	SET(CURLOPT_MAXCONNECTS, (long)p->max_conns);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	if (p->cancel) {
		SET(CURLOPT_XFERINFOFUNCTION, on_progress);
		SET(CURLOPT_XFERINFODATA, p);
		SET(CURLOPT_NOPROGRESS, 0L);
	}
	/* Tuning only: a libcurl that refuses it (seen after a failed DNS
	 * lookup on a reused handle) must not turn a request into -EINVAL. */
	(void)curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)HTTP_IO_BUFFER);
	SET(CURLOPT_ERRORBUFFER, x->resp->error);
	SET(CURLOPT_HTTPHEADER, hdrs);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, x);
	if (!strcmp(req->method, "HEAD")) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (!strcmp(req->method, "PUT") || !strcmp(req->method, "POST")) {
		SET(CURLOPT_UPLOAD, 1L);
		(void)curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, (long)HTTP_IO_BUFFER);
		SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
		SET(CURLOPT_READFUNCTION, on_upload);
		SET(CURLOPT_READDATA, x);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, x);
		if (strcmp(req->method, "PUT"))
			SET(CURLOPT_CUSTOMREQUEST, req->method);
	} else if (strcmp(req->method, "GET")) {
		SET(CURLOPT_CUSTOMREQUEST, req->method);
	}
#undef SET
	return cc == CURLE_OK ? 0 : (cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL);
}

/* Transport errors: the errno to report, and whether a retry may help. */
static int curl_errno(CURLcode cc, int *transient)
{
	*transient = 0;
	switch (cc) {
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return -EACCES; /* the server failed to authenticate */
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		*transient = 1;
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		*transient = 1;
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		*transient = 1;
		return -ETIMEDOUT;
	default:
		*transient = 1;
		return -EIO;
	}
}

static int status_is_transient(const struct http_request *req, long status)
{
	if (status >= 500 || status == 429)
		return 1;
	for (const long *s = req->retry_status; s && *s; s++)
		if (*s == status)
			return 1;
	return 0;
}

/* Backoff before retry number n (0-based): half fixed, half random. */
static void backoff(const struct http_pool *p, int n)
{
	static __thread uint64_t seed;
	uint64_t cap = (uint64_t)p->retry_base_ms << (n < 20 ? n : 20);
	uint64_t ms, z;
	struct timespec ts;

	if (cap > HTTP_MAX_BACKOFF_MS)
		cap = HTTP_MAX_BACKOFF_MS;
	if (!seed)
		seed = now_mono_ns() ^ (uint64_t)(uintptr_t)&seed;
	/* splitmix64 step */
	z = (seed += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	ms = cap / 2 + z % (cap / 2 + 1);
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int http_request(struct http_pool *p, const struct http_request *req,
		 struct http_response *resp)
{
	struct http_xfer x = { .req = req, .resp = resp };
	CURL *h = pool_take(p);
	int rc = -ENOMEM;

	if (!h)
		return -ENOMEM;
	x.handle = h;
	for (int attempt = 0;; attempt++) {
		struct curl_slist *hdrs = NULL, *more;
		int transient = 0;
		CURLcode cc;

		tbuf_reset(&resp->body);
		tbuf_reset(&resp->hdrs);
		resp->status = 0;
		resp->error[0] = '\0';
		resp->attempts = attempt + 1;
		x.upload_off = 0;
		x.oom = 0;
		if (req->headers) {
			rc = req->headers(req->headers_arg, &hdrs);
			if (rc)
				break;
		}
		/* No "Expect: 100-continue" round trip before uploads. */
		more = curl_slist_append(hdrs, "Expect:");
		if (!more) {
			curl_slist_free_all(hdrs);
			rc = -ENOMEM;
			break;
		}
		hdrs = more;
		rc = setup_handle(p, h, &x, hdrs);
		if (!rc) {
			cc = curl_easy_perform(h);
			if (x.oom) {
				rc = -ENOMEM;
			} else if (cc == CURLE_OK) {
				curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
				rc = 0;
				transient = status_is_transient(req, resp->status);
			} else {
				rc = curl_errno(cc, &transient);
				if (!resp->error[0])
					snprintf(resp->error, sizeof(resp->error), "%s",
						 curl_easy_strerror(cc));
			}
		}
		/* Drop the header list before the handle forgets it. */
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
		curl_slist_free_all(hdrs);
		if (cancelled(p)) {
			rc = -ECANCELED;
			snprintf(resp->error, sizeof(resp->error), "cancelled (shutting down)");
			break;
		}
		if (!transient || attempt >= p->max_retries)
			break;
		backoff(p, attempt);
	}
	pool_give(p, h);
	return rc;
}

const char *http_response_header(const struct http_response *resp, const char *name,
				 char *buf, size_t buflen)
{
	const char *s = (const char *)resp->hdrs.data, *end = s + resp->hdrs.len;
	size_t nlen = strlen(name);

	if (!s || !buflen)
		return NULL;
	while (s < end) {
		const char *eol = memchr(s, '\n', (size_t)(end - s));
		const char *v, *ve;

		if (!eol)
			eol = end;
		if ((size_t)(eol - s) > nlen && s[nlen] == ':' && !strncasecmp(s, name, nlen)) {
			v = s + nlen + 1;
			ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if ((size_t)(ve - v) >= buflen)
				ve = v + buflen - 1;
			memcpy(buf, v, (size_t)(ve - v));
			buf[ve - v] = '\0';
			return buf;
		}
		s = eol + 1;
	}
	return NULL;
}

void http_response_release(struct http_response *resp)
{
	tbuf_release(&resp->body);
	tbuf_release(&resp->hdrs);
}

int http_status_errno(long status)
{
	if (status >= 200 && status < 300)
		return 0;
	if (status == 404)
		return -ENOENT;
	if (status == 401 || status == 403)
		return -EACCES;
	if (status >= 500 || status == 429 || status == 0)
		return -EIO;
	return -EINVAL;
}
