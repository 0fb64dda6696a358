/*
 * store.h - the object store interface: one method table, many backends.
 *
 * A store is opened from a URL:
 *   file:///DIR                embedded store in a local directory
 *   s3://BUCKET[/PREFIX]       AWS S3 and S3-compatible stores (SigV4)
 *   azure://CONTAINER[/PREFIX] Azure Blob Storage (SharedKey or SAS)
 *
 * All calls are blocking and thread safe: many threads may call one store
 * at once (the HTTP backends keep a pool of keep-alive connections). Every
 * call returns 0 or a negative errno:
 *   -ENOENT     the key does not exist
 *   -EACCES     authentication or authorisation failed (never retried)
 *   -EINVAL     a request the store rejected as malformed (never retried)
 *   -EIO, -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH
 *               transient failures, returned after the retry budget
 *               (exponential backoff with jitter) is spent
 * On failure a one-line human message is available from store_errmsg(),
 * valid until the calling thread's next store call.
 *
 * Keys are relative to the URL's prefix; they are '/'-separated ASCII
 * without leading '/', at most 512 bytes, with no empty, "." or ".."
 * component (the wrappers reject others with -EINVAL).
 *
 * What callers may rely on, for every backend:
 *   - put replaces the whole object atomically: readers see the old or the
 *     new content, never a mix;
 *   - get of a range past the end appends only the bytes that exist (none
 *     when off >= size) and succeeds; a missing key is -ENOENT;
 *   - list reports the keys that start with prefix (a plain string prefix,
 *     relative to the URL's prefix) in ascending byte order; when the
 *     callback returns non-zero, listing stops and store_list returns that
 *     value;
 *   - del of a missing key succeeds (deletes are idempotent).
 */
#ifndef TIERFS_STORE_H
#define TIERFS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct store;

/* Options for store_open(); zero-initialise, then set what you need. */
struct store_opts {
	const char *endpoint;     /* S3/Azure endpoint URL override (else env) */
	int timeout_ms;           /* per request; 0: default 30000 */
	int connect_timeout_ms;   /* 0: default 5000 */
	int max_retries;          /* transient retries; 0: default 5, -1: none */
	int retry_base_ms;        /* first backoff; 0: default 100 */
	int max_connections;      /* connection pool size; 0: default 16 */
	/* When *cancel becomes non-zero (stored atomically), transfers in
	 * flight are aborted and calls return -ECANCELED at once, without
	 * retrying (shutdown). */
	const int *cancel;
};

/* Called once per key found by store_list(); return non-zero to stop. */
typedef int (*store_list_cb)(void *arg, const char *key, uint64_t size);

/*
 * Backend method table. A backend fills one of these and embeds
 * struct store as the first member of its own state.
 */
struct store_ops {
	const char *scheme;
	int (*put)(struct store *s, const char *key, const void *data, size_t len);
	/* off/len select a byte range; len == STORE_WHOLE reads to the end. */
	int (*get)(struct store *s, const char *key, uint64_t off, uint64_t len,
		   struct tbuf *out);
	int (*head)(struct store *s, const char *key, uint64_t *size_out);
	int (*list)(struct store *s, const char *prefix, store_list_cb cb, void *arg);
	int (*del)(struct store *s, const char *key);
	void (*close)(struct store *s);
};

#define STORE_WHOLE UINT64_MAX

struct store {
	const struct store_ops *ops;
	char *url; /* the URL it was opened with, owned */
};

/*
 * Open a store from a URL. On failure returns a negative errno and writes
 * a one-line message to err. The store is released with store_close().
 */
int store_open(const char *url, const struct store_opts *opts,
	       struct store **out, char *err, size_t errlen);
void store_close(struct store *s);

/* Thin wrappers over the method table. get appends to out (not reset). */
int store_put(struct store *s, const char *key, const void *data, size_t len);
int store_get(struct store *s, const char *key, uint64_t off, uint64_t len,
	      struct tbuf *out);
int store_head(struct store *s, const char *key, uint64_t *size_out);
int store_list(struct store *s, const char *prefix, store_list_cb cb, void *arg);
int store_del(struct store *s, const char *key);

/* Thread-local message for the last failed store call on this thread. */
const char *store_errmsg(void);
/* Set it (backends use this); printf-style. */
void store_set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Fault injection for tests: wrap a store so that selected calls fail or
 * return corrupted data. Configured by the TIERFS_FAULT environment
 * variable or programmatically; see store/fault.c.
 */
/*
 * On success the wrapper owns inner (store_close() closes both); on an
 * invalid spec or -ENOMEM it returns NULL and inner stays the caller's.
 */
struct store *store_fault_wrap(struct store *inner, const char *spec);

#endif
