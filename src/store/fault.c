/*
 * fault.c - a store wrapper that injects failures, for tests (in the spirit
 * of SQLite's fault simulation and curl's torture mode). The wrapper counts
 * the calls of each operation and, when a rule matches, fails the call
 * without reaching the inner store or corrupts the data a get returned.
 *
 * Spec: comma-separated rules ACTION=OP:WHEN[:ERR]
 *   ACTION  fail     the call returns an error (inner store not called)
 *           corrupt  get only: the call succeeds but one byte of the data
 *                    it returned is flipped (xor 0x01, in the middle)
 *   OP      put, get, head, list, del, or any
 *   WHEN    N        only the Nth call of OP (1-based)
 *           N+       the Nth call and every later one
 *           *        every call
 *   ERR     for fail: eio (default), enoent, eacces, etimedout,
 *           econnrefused, enospc
 * Example: "fail=put:3,corrupt=get:2" fails the third put and corrupts the
 * data of the second get. Calls are counted per operation across threads;
 * with "any", the count is of all calls. Set TIERFS_FAULT to wrap every
 * store a program opens (store.c).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

enum fault_op { OP_PUT, OP_GET, OP_HEAD, OP_LIST, OP_DEL, OP_ANY, OP_COUNT };

static const char *const op_names[OP_COUNT] = { "put", "get", "head", "list", "del", "any" };

enum fault_action { FAULT_FAIL, FAULT_CORRUPT };

struct fault_rule {
	enum fault_action action;
	enum fault_op op;
	unsigned long n;  /* 1-based call number; 0 with every: all calls */
	int and_later;
	int err;          /* negative errno for FAULT_FAIL */
};

#define FAULT_MAX_RULES 16

struct fault_store {
	struct store base;
	struct store *inner;
	struct fault_rule rules[FAULT_MAX_RULES];
	int nrules;
	atomic_ulong calls[OP_COUNT]; /* per-op counters; [OP_ANY] counts all */
};

static const struct {
	const char *name;
	int err;
} err_names[] = {
	{ "eio", -EIO }, { "enoent", -ENOENT }, { "eacces", -EACCES },
	{ "etimedout", -ETIMEDOUT }, { "econnrefused", -ECONNREFUSED }, { "enospc", -ENOSPC },
};

static int parse_rule(char *s, struct fault_rule *r)
{
	char *op, *when, *err, *end;
	size_t i;

	op = strchr(s, '=');
	if (!op)
		return -EINVAL;
	*op++ = '\0';
	if (!strcmp(s, "fail"))
		r->action = FAULT_FAIL;
	else if (!strcmp(s, "corrupt"))
		r->action = FAULT_CORRUPT;
	else
		return -EINVAL;
	when = strchr(op, ':');
	if (!when)
		return -EINVAL;
	*when++ = '\0';
	for (i = 0; i < OP_COUNT && strcmp(op, op_names[i]); i++)
		;
	if (i == OP_COUNT)
		return -EINVAL;
	r->op = (enum fault_op)i;
	if (r->action == FAULT_CORRUPT && r->op != OP_GET)
		return -EINVAL;
	err = strchr(when, ':');
	if (err)
		*err++ = '\0';
	if (!strcmp(when, "*")) {
		r->n = 1;
		r->and_later = 1;
	} else {
		r->n = strtoul(when, &end, 10);
		if (end == when || r->n == 0)
			return -EINVAL;
		r->and_later = *end == '+';
		if (*end && strcmp(end, "+"))
			return -EINVAL;
	}
	r->err = -EIO;
	if (err) {
		for (i = 0; i < sizeof(err_names) / sizeof(err_names[0]); i++)
			if (!strcmp(err, err_names[i].name))
				break;
		if (i == sizeof(err_names) / sizeof(err_names[0]) || r->action != FAULT_FAIL)
			return -EINVAL;
		r->err = err_names[i].err;
	}
	return 0;
}

static int parse_spec(struct fault_store *f, const char *spec)
{
	char *copy = strdup(spec), *rest = copy, *tok;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	while ((tok = strsep(&rest, ","))) {
		if (f->nrules == FAULT_MAX_RULES || !*tok) {
			rc = -EINVAL;
			break;
		}
		rc = parse_rule(tok, &f->rules[f->nrules++]);
		if (rc)
			break;
	}
	free(copy);
	return rc || !f->nrules ? -EINVAL : 0;
}

static struct fault_store *fault_of(struct store *s)
{
	return (struct fault_store *)s;
}

/* Count this call and return the first rule it triggers, or NULL. */
static const struct fault_rule *fault_hit(struct fault_store *f, enum fault_op op)
{
	unsigned long nth = atomic_fetch_add(&f->calls[op], 1) + 1;
	unsigned long nany = atomic_fetch_add(&f->calls[OP_ANY], 1) + 1;

	for (int i = 0; i < f->nrules; i++) {
		const struct fault_rule *r = &f->rules[i];
		unsigned long c = r->op == OP_ANY ? nany : nth;

		if (r->op != op && r->op != OP_ANY)
			continue;
		if (c == r->n || (r->and_later && c > r->n))
			return r;
	}
	return NULL;
}

static int injected(const struct fault_rule *r, const char *op, const char *key)
{
	store_set_errmsg("fault: injected %s failure for '%s' (%s)", op, key, strerror(-r->err));
	return r->err;
}

static int fault_put(struct store *s, const char *key, const void *data, size_t len)
{
	struct fault_store *f = fault_of(s);
	const struct fault_rule *r = fault_hit(f, OP_PUT);

	if (r)
		return injected(r, "put", key);
	return store_put(f->inner, key, data, len);
}

static int fault_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		     struct tbuf *out)
{
	struct fault_store *f = fault_of(s);
	const struct fault_rule *r = fault_hit(f, OP_GET);
	size_t start = out->len;
	int rc;

	if (r && r->action == FAULT_FAIL)
		return injected(r, "get", key);
	rc = store_get(f->inner, key, off, len, out);
	if (!rc && r && out->len > start)
		out->data[start + (out->len - start) / 2] ^= 0x01;
	return rc;
}

static int fault_head(struct store *s, const char *key, uint64_t *size_out)
{
	struct fault_store *f = fault_of(s);
	const struct fault_rule *r = fault_hit(f, OP_HEAD);

	if (r)
		return injected(r, "head", key);
	return store_head(f->inner, key, size_out);
}

static int fault_list(struct store *s, const char *prefix, store_list_cb cb, void *arg)
{
	struct fault_store *f = fault_of(s);
	const struct fault_rule *r = fault_hit(f, OP_LIST);

	if (r)
		return injected(r, "list", prefix);
	return store_list(f->inner, prefix, cb, arg);
}

static int fault_del(struct store *s, const char *key)
{
	struct fault_store *f = fault_of(s);
	const struct fault_rule *r = fault_hit(f, OP_DEL);

	if (r)
		return injected(r, "del", key);
	return store_del(f->inner, key);
}

static void fault_close(struct store *s)
{
	struct fault_store *f = fault_of(s);

	store_close(f->inner);
	free(f->base.url);
	free(f);
}

static const struct store_ops fault_ops = {
	.scheme = "fault",
	.put = fault_put,
	.get = fault_get,
	.head = fault_head,
	.list = fault_list,
	.del = fault_del,
	.close = fault_close,
};

struct store *store_fault_wrap(struct store *inner, const char *spec)
{
	struct fault_store *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->base.ops = &fault_ops;
	f->inner = inner;
	for (int i = 0; i < OP_COUNT; i++)
		atomic_init(&f->calls[i], 0);
	f->base.url = strdup(inner->url);
	if (!f->base.url || parse_spec(f, spec)) {
		free(f->base.url);
		free(f);
		return NULL;
	}
	return &f->base;
}
