/*
 * test_snapshot.c - the published file ids and manifest names against
 * values computed independently from docs/formats-objects.md (Python's
 * cryptography HKDF and hmac, master key 00 01 .. 1f), so the document is
 * exact enough to recompute them; and the id's range.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keys.h"
#include "snapshot.h"

static struct volkey key;

static int setup(void **state)
{
	uint8_t master[VOLKEY_LEN];

	(void)state;
	for (int i = 0; i < VOLKEY_LEN; i++)
		master[i] = (uint8_t)i;
	return volkey_from_master(master, &key);
}

static int teardown(void **state)
{
	(void)state;
	volkey_release(&key);
	return 0;
}

static const struct {
	uint64_t ino;
	uint32_t attempt;
	uint64_t fid;
} fid_cases[] = {
	{ 42, 0, 1127048899010559631ull },
	{ 42, 1, 3604205746360504117ull },
	{ 1, 0, 3545360431890122352ull },
	{ 123456789012ull, 0, 69670792737867976ull },
};

static void test_fid_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fid_cases) / sizeof(fid_cases[0]); i++) {
		uint64_t fid = 0;

		assert_int_equal(snap_fid(&key, fid_cases[i].ino, fid_cases[i].attempt, &fid), 0);
		assert_true(fid == fid_cases[i].fid);
	}
}

static void test_fid_range(void **state)
{
	uint64_t prev = 0;

	(void)state;
	for (uint64_t ino = 1; ino < 2000; ino++) {
		uint64_t fid;

		assert_int_equal(snap_fid(&key, ino, 0, &fid), 0);
		assert_true(fid < (1ull << 62)); /* below the cloud node's own inode numbers (WB_INO_BASE) */
		assert_true(fid != ino);
		assert_true(fid != prev + 1); /* consecutive inodes do not give consecutive ids */
		prev = fid;
	}
}

static void test_manifest_name(void **state)
{
	char name[CODEC_NAME_SIZE];

	(void)state;
	/* "manifest:2254097798021119262:-5:0": decimal, a negative mtime signed */
	assert_int_equal(snap_manifest_name(&key, 2254097798021119262ull, -5, 0, name), 0);
	assert_string_equal(name, "95771d83259420a77ab96e3ce48a90c06b9d23a61017fcfe44e2d992b15bf4c2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fid_vectors),
		cmocka_unit_test(test_fid_range),
		cmocka_unit_test(test_manifest_name),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
