/*
 * store_int.h - private interface between store.c and the backends. Each
 * backend exports one open function, called by store_open() with the URL
 * minus its "scheme://" prefix. An open function returns 0 and a store in
 * *out (whose ops and url it has set; url is malloc'd and freed by the
 * backend's close), or a negative errno and a one-line message in err.
 */
#ifndef TIERFS_STORE_INT_H
#define TIERFS_STORE_INT_H

#include <stddef.h>

#include "store.h"

/* file:///DIR: url_rest is "/DIR". */
int store_file_open(const char *url_rest, const struct store_opts *o, struct store **out,
		    char *err, size_t errlen);
/* s3://BUCKET[/PREFIX] */
int store_s3_open(const char *url_rest, const struct store_opts *o, struct store **out,
		  char *err, size_t errlen);
/* azure://CONTAINER[/PREFIX] */
int store_azure_open(const char *url_rest, const struct store_opts *o, struct store **out,
		     char *err, size_t errlen);

/*
 * Check a key: non-empty, at most 512 bytes, no leading '/', no empty, "."
 * or ".." component, no control characters. Returns 0 or -EINVAL (and sets
 * the error message).
 */
int store_check_key(const char *key);

/*
 * Normalise a URL prefix: strip leading and trailing '/', so that an object
 * is named PREFIX/KEY (or KEY when the prefix is empty). Returns a malloc'd
 * string or NULL on -ENOMEM.
 */
char *store_norm_prefix(const char *p);

#endif
