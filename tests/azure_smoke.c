/*
 * azure_smoke.c - drives the Azure backend through the public store API for
 * tests/integration/store_azure.sh, which runs it against azurite. Each
 * subcommand asserts real behaviour and exits non-zero with a message on the
 * first mismatch:
 *   azure_smoke URL basic            put/get/range/head/list/delete checks,
 *                                    block uploads and list paging (the script
 *                                    lowers the thresholds by environment)
 *   azure_smoke URL eacces           every call fails fast with -EACCES
 *   azure_smoke URL offline          with no server, a call fails with
 *                                    -ECONNREFUSED after a bounded wait
 *   azure_smoke URL putmany N SIZE   put N objects of SIZE bytes (the script
 *                                    kills and restarts the server meanwhile)
 *   azure_smoke URL verifymany FIRST N SIZE
 *                                    read objects FIRST..N-1 back intact
 * AZURE_SMOKE_ENDPOINT, when set, is passed as store_opts.endpoint. Object
 * contents are a pattern derived from the key, so a read of the wrong
 * object or range is caught.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "util.h"

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "azure_smoke:%d: check failed: %s: ", __LINE__, \
				#cond);                                         \
			fprintf(stderr, __VA_ARGS__);                           \
			fprintf(stderr, " [store: %s]\n", store_errmsg());     \
			exit(1);                                                \
		}                                                               \
	} while (0)

/* Deterministic bytes for key: a different stream per key. */
static uint8_t *pattern(const char *key, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	uint64_t x = 1469598103934665603ull;

	CHECK(p != NULL, "out of memory");
	for (const char *k = key; *k; k++)
		x = (x ^ (uint8_t)*k) * 1099511628211ull;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	return p;
}

static void put_pattern(struct store *s, const char *key, size_t len)
{
	uint8_t *p = pattern(key, len);
	int rc = store_put(s, key, p, len);

	CHECK(rc == 0, "put '%s' (%zu bytes) returned %d", key, len, rc);
	free(p);
}

/* Read [off, off+len) of key and compare with the pattern of full size. */
static void check_range(struct store *s, const char *key, size_t size, uint64_t off,
			uint64_t len)
{
	uint8_t *p = pattern(key, size);
	struct tbuf b = TBUF_INIT;
	size_t want;
	int rc;

	/* get appends: start with a sentinel byte to check that too. */
	CHECK(tbuf_append(&b, "#", 1) == 0, "out of memory");
	rc = store_get(s, key, off, len, &b);
	CHECK(rc == 0, "get '%s' [%llu,+%llu) returned %d", key, (unsigned long long)off,
	      (unsigned long long)len, rc);
	want = off >= size ? 0 : (len == STORE_WHOLE || off + len > size ? size - off : len);
	CHECK(b.len == want + 1, "get '%s' off %llu: %zu bytes, want %zu", key,
	      (unsigned long long)off, b.len - 1, want);
	CHECK(b.data[0] == '#' && !memcmp(b.data + 1, p + (off < size ? off : 0), want),
	      "get '%s' off %llu: wrong bytes", key, (unsigned long long)off);
	tbuf_release(&b);
	free(p);
}

struct listed {
	char keys[16][64];
	uint64_t sizes[16];
	int n;
	int stop_after; /* 0: never stop */
};

static int on_key(void *arg, const char *key, uint64_t size)
{
	struct listed *l = arg;

	CHECK(l->n < 16, "too many keys listed (at '%s')", key);
	snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
	l->sizes[l->n++] = size;
	return l->stop_after && l->n >= l->stop_after ? 7 : 0;
}

static void cmd_basic(struct store *s, const char *url)
{
	static const char *const names[] = { "l/a", "l/b/1", "l/b/2", "l/c", "l/d" };
	/* Characters that need percent-encoding in the URL and the signature. */
	static const char odd[] = "odd dir/a+b=c&d;e,f(g)!~'%41$@";
	struct store_opts o = { .endpoint = getenv("AZURE_SMOKE_ENDPOINT") };
	struct listed l = { 0 };
	struct store *other;
	char other_url[512], err[256];
	uint64_t size = 1;
	size_t big = 1024 * 1024 + 12345;
	int rc;

	put_pattern(s, "small", 1000);
	CHECK(store_head(s, "small", &size) == 0 && size == 1000, "head small: %llu",
	      (unsigned long long)size);
	check_range(s, "small", 1000, 0, STORE_WHOLE);
	check_range(s, "small", 1000, 10, 20);
	check_range(s, "small", 1000, 990, 100);  /* runs past the end */
	check_range(s, "small", 1000, 500, STORE_WHOLE);
	check_range(s, "small", 1000, 1000, 5);   /* starts at the end */
	check_range(s, "small", 1000, 5000, STORE_WHOLE);

	put_pattern(s, "empty", 0);
	CHECK(store_head(s, "empty", &size) == 0 && size == 0, "head empty: %llu",
	      (unsigned long long)size);
	check_range(s, "empty", 0, 0, STORE_WHOLE);
	check_range(s, "empty", 0, 0, 10);

	/* Above TIERFS_AZURE_BLOCK_THRESHOLD: Put Block + Put Block List. */
	put_pattern(s, "big", big);
	CHECK(store_head(s, "big", &size) == 0 && size == big, "head big: %llu",
	      (unsigned long long)size);
	check_range(s, "big", big, 0, STORE_WHOLE);
	check_range(s, "big", big, 262144 - 100, 200); /* across a block boundary */
	check_range(s, "big", big, big - 7, STORE_WHOLE);

	/* Overwrite: a block blob replaced by a small one, and back. */
	put_pattern(s, "big", 77);
	check_range(s, "big", 77, 0, STORE_WHOLE);
	put_pattern(s, "big", big);
	check_range(s, "big", big, 0, STORE_WHOLE);

	put_pattern(s, odd, 333);
	check_range(s, odd, 333, 0, STORE_WHOLE);
	CHECK(store_head(s, odd, &size) == 0 && size == 333, "head odd");

	/* Listing: byte order, sizes, prefix filter, paging, early stop. */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		put_pattern(s, names[i], 10 + i);
	rc = store_list(s, "l/", on_key, &l);
	CHECK(rc == 0, "list l/ returned %d", rc);
	CHECK(l.n == 5, "list l/ found %d keys, want 5", l.n);
	for (int i = 0; i < 5; i++)
		CHECK(!strcmp(l.keys[i], names[i]) && l.sizes[i] == 10 + (uint64_t)i,
		      "list l/ entry %d: '%s' %llu", i, l.keys[i], (unsigned long long)l.sizes[i]);
	memset(&l, 0, sizeof(l));
	CHECK(store_list(s, "l/b", on_key, &l) == 0 && l.n == 2 && !strcmp(l.keys[1], "l/b/2"),
	      "list l/b found %d", l.n);
	memset(&l, 0, sizeof(l));
	l.stop_after = 3;
	rc = store_list(s, "l/", on_key, &l);
	CHECK(rc == 7 && l.n == 3, "stopped list returned %d after %d keys", rc, l.n);
	memset(&l, 0, sizeof(l));
	CHECK(store_list(s, "nothing-here/", on_key, &l) == 0 && l.n == 0, "empty list");
	memset(&l, 0, sizeof(l));
	CHECK(store_list(s, "", on_key, &l) == 0 && l.n == 9, "whole list found %d, want 9",
	      l.n);

	/* Another prefix in the same container sees none of it. */
	snprintf(other_url, sizeof(other_url), "%s-other", url);
	CHECK(store_open(other_url, &o, &other, err, sizeof(err)) == 0, "open %s: %s", other_url,
	      err);
	memset(&l, 0, sizeof(l));
	CHECK(store_list(other, "", on_key, &l) == 0 && l.n == 0, "other prefix lists %d", l.n);
	CHECK(store_head(other, "small", &size) == -ENOENT, "other prefix sees 'small'");
	store_close(other);

	/* Delete, missing objects. */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK(store_del(s, names[i]) == 0, "del %s", names[i]);
	memset(&l, 0, sizeof(l));
	CHECK(store_list(s, "l/", on_key, &l) == 0 && l.n == 0, "list after del: %d", l.n);
	CHECK(store_del(s, "small") == 0, "del small");
	CHECK(store_head(s, "small", &size) == -ENOENT, "head deleted");
	rc = store_get(s, "small", 0, STORE_WHOLE, &(struct tbuf)TBUF_INIT);
	CHECK(rc == -ENOENT, "get deleted returned %d", rc);
	CHECK(strstr(store_errmsg(), "small") && strstr(store_errmsg(), "BlobNotFound"),
	      "message names the key and the error code");
	CHECK(store_del(s, "small") == 0, "del of a missing key succeeds");
	printf("basic: ok\n");
}

static void cmd_eacces(struct store *s)
{
	uint64_t t0, ms, size;
	struct tbuf b = TBUF_INIT;
	struct listed l = { 0 };
	int rc;

	t0 = now_mono_ns();
	rc = store_put(s, "k", "data", 4);
	ms = (now_mono_ns() - t0) / 1000000;
	CHECK(rc == -EACCES, "put with a wrong key returned %d", rc);
	printf("eacces: put: %s\n", store_errmsg());
	CHECK(strstr(store_errmsg(), "check the account key"), "message gives the cause");
	/* Opened with retry_base_ms 1000: one retry would cost >= 500 ms. */
	CHECK(ms < 450, "put took %llu ms: was it retried?", (unsigned long long)ms);
	CHECK(store_get(s, "k", 0, STORE_WHOLE, &b) == -EACCES, "get");
	CHECK(store_head(s, "k", &size) == -EACCES, "head");
	CHECK(store_list(s, "", on_key, &l) == -EACCES, "list");
	CHECK(store_del(s, "k") == -EACCES, "del");
	tbuf_release(&b);
	printf("eacces: ok\n");
}

static void cmd_offline(struct store *s)
{
	uint64_t t0 = now_mono_ns(), ms, size;
	int rc = store_head(s, "k", &size);

	ms = (now_mono_ns() - t0) / 1000000;
	CHECK(rc == -ECONNREFUSED, "head with the server down returned %d", rc);
	printf("offline: head: %s (%llu ms)\n", store_errmsg(), (unsigned long long)ms);
	/* 2 retries of at most 100 and 200 ms: bounded, well under 5 s. */
	CHECK(ms < 5000, "took %llu ms", (unsigned long long)ms);
	CHECK(strstr(store_errmsg(), "'k'"), "message names the key");
	printf("offline: ok\n");
}

static void cmd_putmany(struct store *s, int n, size_t size)
{
	char key[32];

	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "many/%04d", i);
		put_pattern(s, key, size);
		printf("putmany: put %s\n", key);
		fflush(stdout);
	}
	printf("putmany: ok\n");
}

static void cmd_verifymany(struct store *s, int first, int n, size_t size)
{
	char key[32];

	for (int i = first; i < n; i++) {
		snprintf(key, sizeof(key), "many/%04d", i);
		check_range(s, key, size, 0, STORE_WHOLE);
	}
	printf("verifymany: %d objects ok\n", n - first);
}

int main(int argc, char **argv)
{
	struct store_opts o = { 0 };
	struct store *s;
	char err[256];
	uint64_t size;
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: azure_smoke URL basic|eacces|offline|putmany N SIZE|"
			"verifymany FIRST N SIZE\n");
		return 2;
	}
	/* Exercise store_opts.endpoint, the override callers pass. */
	o.endpoint = getenv("AZURE_SMOKE_ENDPOINT");
	if (!strcmp(argv[2], "eacces"))
		o.retry_base_ms = 1000;
	if (!strcmp(argv[2], "offline")) {
		o.max_retries = 2;
		o.retry_base_ms = 100;
	}
	if (!strcmp(argv[2], "putmany")) {
		/* Ride out a server restart: at least 20 s of backoff. */
		o.max_retries = 10;
		o.retry_base_ms = 200;
	}
	rc = store_open(argv[1], &o, &s, err, sizeof(err));
	CHECK(rc == 0, "open '%s': %s", argv[1], err);
	if (!strcmp(argv[2], "basic"))
		cmd_basic(s, argv[1]);
	else if (!strcmp(argv[2], "eacces"))
		cmd_eacces(s);
	else if (!strcmp(argv[2], "offline"))
		cmd_offline(s);
	else if (!strcmp(argv[2], "putmany") && argc == 5 && !parse_size(argv[4], &size))
		cmd_putmany(s, atoi(argv[3]), (size_t)size);
	else if (!strcmp(argv[2], "verifymany") && argc == 6 && !parse_size(argv[5], &size))
		cmd_verifymany(s, atoi(argv[3]), atoi(argv[4]), (size_t)size);
	else
		CHECK(0, "unknown subcommand '%s'", argv[2]);
	store_close(s);
	return 0;
}
