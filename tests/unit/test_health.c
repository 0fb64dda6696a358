/*
 * test_health.c - unit tests of the store health record (include/health.h)
 * on a real metadata store in a temporary directory: errors are told apart
 * as transient or persistent (table); a direction is failing exactly when
 * its latest operation failed, counts failures since the last success and
 * keeps when the failing began; a cancelled operation (shutdown) is not
 * recorded; the record survives a save and a load (as across a remount);
 * per-file errors are recorded, counted by kind, updated and cleared.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "health.h"
#include "meta.h"

struct fx {
	char dir[64];
	char path[96];
	struct meta *m;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/tierfs-health.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/meta.db", f->dir);
	assert_int_equal(meta_open(f->path, META_CREATE, &f->m, err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	meta_close(f->m);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd))
		return -1;
	free(f);
	return 0;
}

static void test_transient(void **state)
{
	static const struct {
		int rc, transient;
	} cases[] = {
		{ -EIO, 1 },	      { -ETIMEDOUT, 1 }, { -ECONNREFUSED, 1 }, { -ECONNRESET, 1 },
		{ -EHOSTUNREACH, 1 }, { -EAGAIN, 1 },	  { -EBUSY, 1 },	 { -EACCES, 0 },
		{ -EPERM, 0 },	      { -ENOENT, 0 },	  { -ENOSPC, 0 },	 { -EINVAL, 0 },
		{ -EBADMSG, 0 },      { -EROFS, 0 },
	};

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		if (health_transient(cases[k].rc) != cases[k].transient)
			fail_msg("health_transient(%s) is %d, expected %d", strerror(-cases[k].rc),
				 health_transient(cases[k].rc), cases[k].transient);
	}
}

static void test_failing_and_recovery(void **state)
{
	struct health h;
	struct health_rec r;
	int64_t since;

	(void)state;
	health_init(&h);
	assert_false(health_failing(&h, HEALTH_UPLOAD));
	health_note(&h, HEALTH_UPLOAD, 0, NULL);
	health_note(&h, HEALTH_UPLOAD, -ENOENT, "upload: no such directory");
	health_note(&h, HEALTH_UPLOAD, -ECANCELED, "shutdown"); /* not recorded */
	health_note(&h, HEALTH_UPLOAD, -EPERM, "upload: immutable");
	assert_true(health_failing(&h, HEALTH_UPLOAD));
	assert_false(health_failing(&h, HEALTH_DOWNLOAD));
	health_get(&h, HEALTH_UPLOAD, &r);
	assert_int_equal(r.failures, 2);
	assert_int_equal(r.ok_total, 1);
	assert_int_equal(r.error_total, 2);
	assert_int_equal(r.last_code, EPERM);
	assert_string_equal(r.last_error, "upload: immutable");
	assert_true(r.failing_since > 0 && r.failing_since <= r.last_error_at);
	assert_true(r.last_ok > 0 && r.last_ok <= r.failing_since);
	since = r.failing_since;
	health_note(&h, HEALTH_UPLOAD, -EIO, NULL);
	health_get(&h, HEALTH_UPLOAD, &r);
	assert_int_equal(r.failing_since, since); /* when the failing began */
	assert_string_equal(r.last_error, strerror(EIO));
	health_note(&h, HEALTH_UPLOAD, 0, NULL);
	assert_false(health_failing(&h, HEALTH_UPLOAD));
	health_get(&h, HEALTH_UPLOAD, &r);
	assert_int_equal(r.failures, 0);
	assert_int_equal(r.failing_since, 0);
	assert_int_equal(r.error_total, 3); /* the history stays */
	assert_true(r.last_error_at > 0);
	health_release(&h);
}

static void test_save_load(void **state)
{
	struct fx *f = *state;
	struct health h, back;
	struct health_rec r[HEALTH__COUNT];

	health_init(&h);
	health_note(&h, HEALTH_PUBLISH, 0, NULL);
	health_note(&h, HEALTH_REQUESTS, -ECONNREFUSED, "list requests: refused");
	assert_int_equal(meta_begin(f->m), 0);
	assert_int_equal(health_save(&h, f->m), 0);
	assert_int_equal(meta_commit(f->m, 0), 0);
	assert_int_equal(health_load(f->m, r), 0);
	assert_int_equal(r[HEALTH_PUBLISH].ok_total, 1);
	assert_int_equal(r[HEALTH_PUBLISH].failures, 0);
	assert_int_equal(r[HEALTH_REQUESTS].failures, 1);
	assert_int_equal(r[HEALTH_REQUESTS].last_code, ECONNREFUSED);
	assert_string_equal(r[HEALTH_REQUESTS].last_error, "list requests: refused");
	assert_int_equal(r[HEALTH_UPLOAD].ok_total + r[HEALTH_UPLOAD].error_total, 0); /* never used */
	health_init(&back);
	assert_int_equal(health_restore(&back, f->m), 0);
	assert_true(health_failing(&back, HEALTH_REQUESTS));
	assert_false(health_failing(&back, HEALTH_PUBLISH));
	health_release(&back);
	health_release(&h);
}

static void test_file_errors(void **state)
{
	struct fx *f = *state;
	struct health_queue q;

	assert_int_equal(meta_begin(f->m), 0);
	assert_int_equal(health_file_error(f->m, 7, HEALTH_UPLOAD, -ECONNREFUSED, -1, "refused"), 0);
	assert_int_equal(health_file_error(f->m, 8, HEALTH_UPLOAD, -EACCES, -1, "denied"), 0);
	assert_int_equal(health_file_error(f->m, 9, HEALTH_DOWNLOAD, -ENOENT, 1, "lost"), 0);
	assert_int_equal(health_file_error(f->m, 7, HEALTH_UPLOAD, -ETIMEDOUT, -1, "timed out"), 0);
	assert_int_equal(meta_commit(f->m, 0), 0);
	assert_int_equal(health_queue_facts(f->m, &q), 0);
	assert_int_equal(q.transient, 1);
	assert_int_equal(q.persistent, 2);
	/* clearing one direction leaves the other's row */
	assert_int_equal(meta_begin(f->m), 0);
	assert_int_equal(health_file_error(f->m, 9, HEALTH_UPLOAD, 0, 0, NULL), 0);
	assert_int_equal(health_file_error(f->m, 7, HEALTH_UPLOAD, 0, 0, NULL), 0);
	assert_int_equal(meta_commit(f->m, 0), 0);
	assert_int_equal(health_queue_facts(f->m, &q), 0);
	assert_int_equal(q.transient, 0);
	assert_int_equal(q.persistent, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transient),
		cmocka_unit_test(test_failing_and_recovery),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
