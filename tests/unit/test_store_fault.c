/*
 * test_store_fault.c - the fault-injecting store wrapper (store/fault.c)
 * over a real file:// store in a temporary directory: which call of which
 * operation fails, with which errno, what a corrupted get returns, and which
 * specs are refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"

static char dir[] = "/tmp/tierfs-fault-XXXXXX";

static struct store *open_wrapped(const char *spec)
{
	struct store *inner, *w;
	char url[256], err[256];

	snprintf(url, sizeof(url), "file://%s", dir);
	assert_int_equal(store_open(url, NULL, &inner, err, sizeof(err)), 0);
	w = store_fault_wrap(inner, spec);
	assert_non_null(w);
	return w;
}

/* spec, the operation driven, the result of calls 1..5 */
static const struct {
	const char *spec;
	const char *op;
	int rc[5];
} seq[] = {
	{ "fail=put:3", "put", { 0, 0, -EIO, 0, 0 } },
	{ "fail=put:2+", "put", { 0, -EIO, -EIO, -EIO, -EIO } },
	{ "fail=get:1:enoent,fail=get:4:etimedout", "get", { -ENOENT, 0, 0, -ETIMEDOUT, 0 } },
	{ "fail=head:*:eacces", "head", { -EACCES, -EACCES, -EACCES, -EACCES, -EACCES } },
	{ "fail=del:5:econnrefused", "del", { 0, 0, 0, 0, -ECONNREFUSED } },
	{ "fail=any:2", "head", { 0, -EIO, 0, 0, 0 } },
	{ "fail=put:1", "head", { 0, 0, 0, 0, 0 } }, /* other operations untouched */
};

static int call(struct store *s, const char *op)
{
	struct tbuf b = TBUF_INIT;
	int rc;

	if (!strcmp(op, "put"))
		rc = store_put(s, "obj", "data", 4);
	else if (!strcmp(op, "get"))
		rc = store_get(s, "obj", 0, STORE_WHOLE, &b);
	else if (!strcmp(op, "head"))
		rc = store_head(s, "obj", NULL);
	else
		rc = store_del(s, "other");
	tbuf_release(&b);
	return rc;
}

static void test_fail_sequences(void **state)
{
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		struct store *s = open_wrapped(seq[i].spec);

		print_message("spec %s\n", seq[i].spec);
		for (int n = 0; n < 5; n++) {
			/* "obj" must exist for get and head to succeed */
			struct store *plain;
			char url[256], err[256];

			snprintf(url, sizeof(url), "file://%s", dir);
			assert_int_equal(store_open(url, NULL, &plain, err, sizeof(err)), 0);
			assert_int_equal(store_put(plain, "obj", "data", 4), 0);
			store_close(plain);

			assert_int_equal(call(s, seq[i].op), seq[i].rc[n]);
			if (seq[i].rc[n])
				assert_non_null(strstr(store_errmsg(), "fault: injected"));
		}
		store_close(s);
	}
}

static void test_corrupt(void **state)
{
	static const char data[] = "0123456789abcdefghij";
	struct store *s = open_wrapped("corrupt=get:2");
	struct tbuf b = TBUF_INIT;
	size_t diff = 0, at = 0;

	assert_int_equal(store_put(s, "c", data, 20), 0);
	assert_int_equal(store_get(s, "c", 0, STORE_WHOLE, &b), 0);
	assert_memory_equal(b.data, data, 20);

	/* the second get: one byte flipped, in the middle of what it read */
	tbuf_reset(&b);
	tbuf_append(&b, "prefix", 6);
	assert_int_equal(store_get(s, "c", 0, STORE_WHOLE, &b), 0);
	assert_int_equal(b.len, 26);
	assert_memory_equal(b.data, "prefix", 6);
	for (size_t i = 0; i < 20; i++)
		if (b.data[6 + i] != (uint8_t)data[i]) {
			diff++;
			at = i;
		}
	assert_int_equal(diff, 1);
	assert_int_equal(at, 10);
	assert_int_equal(b.data[6 + at] ^ (uint8_t)data[at], 0x01);

	tbuf_reset(&b);
	assert_int_equal(store_get(s, "c", 0, STORE_WHOLE, &b), 0);
	assert_memory_equal(b.data, data, 20);
	tbuf_release(&b);
	store_close(s);
}

static void test_bad_specs(void **state)
{
	static const char *const bad[] = {
		"", "nonsense", "fail=put", "fail=put:0", "fail=put:x", "fail=put:2-",
		"corrupt=put:1", "fail=put:1:ebogus", "corrupt=get:1:eio", "explode=get:1",
		"fail=rename:1", "fail=put:1,", ",",
	};
	struct store *inner;
	char url[256], err[256];

	snprintf(url, sizeof(url), "file://%s", dir);
	assert_int_equal(store_open(url, NULL, &inner, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("spec '%s'\n", bad[i]);
		assert_null(store_fault_wrap(inner, bad[i]));
	}
	/* inner is still the caller's and still works */
	assert_int_equal(store_put(inner, "still", "ok", 2), 0);
	store_close(inner);
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fail_sequences),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_bad_specs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
