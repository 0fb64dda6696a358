/*
 * store.c - the front of the object store layer: store_open() picks a
 * backend by the URL's scheme, the store_* wrappers call through the method
 * table, and a thread-local buffer keeps the message of the last failure.
 * The wrappers check keys once here, so backends may rely on well-formed
 * keys. If TIERFS_FAULT is set, every store opened is wrapped by the fault
 * injector (fault.c) so tests can break any program's store calls.
 */
#include "store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define STORE_KEY_MAX 512

static __thread char errmsg[512];

const char *store_errmsg(void)
{
	return errmsg;
}

void store_set_errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
}

int store_check_key(const char *key)
{
	size_t len = key ? strlen(key) : 0;
	const char *c;

	if (!len || len > STORE_KEY_MAX || key[0] == '/')
		goto bad;
	for (const char *p = key; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			goto bad;
	/* Every component must be a real name: no "", "." or "..". */
	for (c = key;; ) {
		const char *slash = strchr(c, '/');
		size_t n = slash ? (size_t)(slash - c) : strlen(c);

		if (!n || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			goto bad;
		if (!slash)
			break;
		c = slash + 1;
	}
	return 0;
bad:
	store_set_errmsg("invalid object key '%.*s'", 600, key ? key : "");
	return -EINVAL;
}

char *store_norm_prefix(const char *p)
{
	size_t len;

	while (*p == '/')
		p++;
	len = strlen(p);
	while (len && p[len - 1] == '/')
		len--;
	return strndup(p, len);
}

struct backend {
	const char *scheme; /* with "://" */
	int (*open)(const char *rest, const struct store_opts *o, struct store **out,
		    char *err, size_t errlen);
};

static const struct backend backends[] = {
	{ "file://", store_file_open },
	{ "s3://", store_s3_open },
	{ "azure://", store_azure_open },
};

int store_open(const char *url, const struct store_opts *opts, struct store **out,
	       char *err, size_t errlen)
{
	static const struct store_opts defaults;
	const char *fault = getenv("TIERFS_FAULT");
	struct store *s = NULL;
	int rc = -EINVAL;

	if (!opts)
		opts = &defaults;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		size_t n = strlen(backends[i].scheme);

		if (!strncmp(url, backends[i].scheme, n)) {
			rc = backends[i].open(url + n, opts, &s, err, errlen);
			goto opened;
		}
	}
	snprintf(err, errlen, "unsupported store URL '%s' (use file://, s3:// or azure://)", url);
	return -EINVAL;
opened:
	if (rc)
		return rc;
	if (fault && *fault) {
		struct store *w = store_fault_wrap(s, fault);

		if (!w) {
			snprintf(err, errlen, "invalid TIERFS_FAULT spec '%s'", fault);
			store_close(s);
			return -EINVAL;
		}
		s = w;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

int store_put(struct store *s, const char *key, const void *data, size_t len)
{
	int rc = store_check_key(key);

	return rc ? rc : s->ops->put(s, key, data, len);
}

int store_get(struct store *s, const char *key, uint64_t off, uint64_t len,
	      struct tbuf *out)
{
	int rc = store_check_key(key);

	if (rc)
		return rc;
	if (len == 0)
		return 0;
	if (len != STORE_WHOLE && off + len < off) {
		store_set_errmsg("invalid range for '%s'", key);
		return -EINVAL;
	}
	return s->ops->get(s, key, off, len, out);
}

int store_head(struct store *s, const char *key, uint64_t *size_out)
{
	int rc = store_check_key(key);

	return rc ? rc : s->ops->head(s, key, size_out);
}

int store_list(struct store *s, const char *prefix, store_list_cb cb, void *arg)
{
	if (!prefix)
		prefix = "";
	if (strlen(prefix) > STORE_KEY_MAX || prefix[0] == '/') {
		store_set_errmsg("invalid list prefix '%.*s'", 600, prefix);
		return -EINVAL;
	}
	return s->ops->list(s, prefix, cb, arg);
}

int store_del(struct store *s, const char *key)
{
	int rc = store_check_key(key);

	return rc ? rc : s->ops->del(s, key);
}
