/*
 * test_meta_batch.c - unit tests of the metadata store's group commit
 * (meta_set_batch, meta_commit_batched, meta_batch_commit in include/meta.h)
 * on a real SQLite store in a temporary directory, watched through a
 * second, read-only connection as the CLI would open it: operations in a
 * batch are invisible outside until it commits and visible after; a failed
 * operation inside a batch rolls back alone; a batch commits at max_ops, on
 * any plain meta_commit() and at close; without the reserve file or disk
 * room, or while paused, no batch opens; a batch lost to a failed COMMIT is
 * reported to the owner once and the connection refuses writes after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "meta.h"

struct fx {
	char dir[64];
	char path[96];
	int dirfd;
	struct meta *m;   /* the writer (the mount) */
	struct meta *ro;  /* a reader (the CLI) */
	unsigned lost;    /* operations reported lost */
	int lost_calls;
};

static void on_lost(void *arg, unsigned ops)
{
	struct fx *f = arg;

	f->lost += ops;
	f->lost_calls++;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/tierfs-batch.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/meta.db", f->dir);
	assert_int_equal(meta_open(f->path, META_CREATE, &f->m, err, sizeof(err)), 0);
	assert_int_equal(meta_open(f->path, META_READONLY, &f->ro, err, sizeof(err)), 0);
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_true(f->dirfd >= 0);
	assert_int_equal(meta_reserve(f->m, f->dirfd, 1u << 20), 0);
	meta_set_batch(f->m, 256, on_lost, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	meta_close(f->ro);
	meta_close(f->m);
	close(f->dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* One namespace operation: inode ino named "nINO" in the root; returns what
 * commit returned (or the failing step's error, after a rollback). */
static int op_create(struct fx *f, uint64_t ino, const char *name, int batched)
{
	struct meta_attr a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.ino = ino;
	a.mode = S_IFREG | 0644;
	a.nlink = 1;
	rc = meta_begin(f->m);
	if (rc)
		return rc;
	rc = meta_inode_insert(f->m, &a, NULL, 0);
	if (!rc)
		rc = meta_dentry_insert(f->m, META_ROOT_INO, name, strlen(name), ino, a.mode);
	if (rc) {
		meta_rollback(f->m);
		return rc;
	}
	return batched ? meta_commit_batched(f->m) : meta_commit(f->m, 0);
}

static int seen(struct meta *m, const char *name)
{
	uint64_t ino = 0;
	int rc = meta_lookup(m, META_ROOT_INO, name, strlen(name), &ino, NULL);

	return rc == 0 ? (int)ino : rc;
}

static int inode_exists(struct meta *m, uint64_t ino)
{
	struct meta_attr a;

	return meta_inode_get(m, ino, &a) == 0;
}

static void test_batch_invisible_until_commit(void **state)
{
	struct fx *f = *state;

	assert_int_equal(meta_batch_age_ns(f->m), -1);
	assert_int_equal(op_create(f, 10, "a", 1), 1); /* opened a batch */
	assert_true(meta_batch_age_ns(f->m) >= 0);
	assert_int_equal(op_create(f, 11, "b", 1), 0); /* joined it */
	/* the writer sees its own batch, a reader does not */
	assert_int_equal(seen(f->m, "a"), 10);
	assert_int_equal(seen(f->m, "b"), 11);
	assert_int_equal(seen(f->ro, "a"), -ENOENT);
	assert_int_equal(seen(f->ro, "b"), -ENOENT);
	assert_int_equal(meta_batch_commit(f->m), 0);
	assert_int_equal(meta_batch_age_ns(f->m), -1);
	assert_int_equal(seen(f->ro, "a"), 10);
	assert_int_equal(seen(f->ro, "b"), 11);
	assert_int_equal(f->lost_calls, 0);
}

static void test_failed_op_rolls_back_alone(void **state)
{
	struct fx *f = *state;

	assert_int_equal(op_create(f, 20, "x", 1), 1);
	/* the same name again: the inode row goes in, the entry fails */
	assert_int_equal(op_create(f, 21, "x", 1), -EEXIST);
	assert_true(meta_batch_age_ns(f->m) >= 0); /* the batch is still open */
	assert_int_equal(op_create(f, 22, "y", 1), 0);
	assert_int_equal(meta_batch_commit(f->m), 0);
	assert_int_equal(seen(f->ro, "x"), 20);
	assert_int_equal(seen(f->ro, "y"), 22);
	assert_false(inode_exists(f->ro, 21)); /* its inode row went with it */
	assert_true(inode_exists(f->ro, 20));
	assert_int_equal(f->lost_calls, 0);
}

static void test_commits_at_max_ops(void **state)
{
	struct fx *f = *state;

	meta_set_batch(f->m, 3, on_lost, f);
	assert_int_equal(op_create(f, 30, "p", 1), 1);
	assert_int_equal(op_create(f, 31, "q", 1), 0);
	assert_int_equal(seen(f->ro, "p"), -ENOENT);
	assert_int_equal(op_create(f, 32, "r", 1), 0); /* the third: commits */
	assert_int_equal(meta_batch_age_ns(f->m), -1);
	assert_int_equal(seen(f->ro, "p"), 30);
	assert_int_equal(seen(f->ro, "r"), 32);
}

static void test_plain_commit_takes_the_batch(void **state)
{
	struct fx *f = *state;

	assert_int_equal(op_create(f, 40, "m", 1), 1);
	assert_int_equal(op_create(f, 41, "n", 0), 0); /* a plain commit */
	assert_int_equal(meta_batch_age_ns(f->m), -1);
	assert_int_equal(seen(f->ro, "m"), 40);
	assert_int_equal(seen(f->ro, "n"), 41);
	/* a durable one too */
	assert_int_equal(op_create(f, 42, "o", 1), 1);
	assert_int_equal(meta_begin(f->m), 0);
	assert_int_equal(meta_config_set(f->m, "k", "v"), 0);
	assert_int_equal(meta_commit(f->m, 1), 0);
	assert_int_equal(seen(f->ro, "o"), 42);
}

static void test_close_commits(void **state)
{
	struct fx *f = *state;
	char err[256];

	assert_int_equal(op_create(f, 50, "c", 1), 1);
	meta_close(f->m);
	assert_int_equal(meta_open(f->path, 0, &f->m, err, sizeof(err)), 0);
	assert_int_equal(seen(f->m, "c"), 50);
}

static void test_no_batch_without_reserve(void **state)
{
	struct fx *f = *state;

	assert_int_equal(meta_release_reserve(f->m), 1);
	/* commits at once: 0, not 1, and the reader sees it */
	assert_int_equal(op_create(f, 60, "s", 1), 0);
	assert_int_equal(meta_batch_age_ns(f->m), -1);
	assert_int_equal(seen(f->ro, "s"), 60);
	/* back once the reserve is */
	assert_int_equal(meta_reserve(f->m, f->dirfd, 1u << 20), 0);
	assert_int_equal(op_create(f, 61, "t", 1), 1);
	assert_int_equal(meta_batch_commit(f->m), 0);
}

static void test_no_batch_when_off(void **state)
{
	struct fx *f = *state;

	meta_set_batch(f->m, 0, NULL, NULL);
	assert_int_equal(op_create(f, 70, "u", 1), 0);
	assert_int_equal(seen(f->ro, "u"), 70);
}

/* SQLite itself rolls back the whole transaction on SQLITE_IOERR, on
 * SQLITE_FULL and when a COMMIT fails: the owner must hear of every
 * operation lost, and the store must go on working. */
static void test_lost_batch_is_reported(void **state)
{
	struct fx *f = *state;

	assert_int_equal(op_create(f, 80, "l1", 1), 1);
	assert_int_equal(op_create(f, 81, "l2", 1), 0);
	/* roll the transaction back behind the batch's back, as SQLite does
	 * itself on SQLITE_IOERR or SQLITE_FULL */
	assert_int_equal(sqlite3_exec(meta_db(f->m), "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	/* the next operation finds the batch gone: reported once, and no write
	 * builds on the lost changes any more; reads go on */
	assert_int_equal(op_create(f, 82, "l3", 1), -EIO);
	assert_int_equal(f->lost_calls, 1);
	assert_int_equal(f->lost, 2);
	assert_int_equal(op_create(f, 83, "l4", 0), -EIO);
	assert_int_equal(seen(f->m, "l1"), -ENOENT);
	assert_int_equal(seen(f->ro, "l3"), -ENOENT);
	assert_int_equal(f->lost_calls, 1);
}

static void test_pause(void **state)
{
	struct fx *f = *state;

	meta_batch_pause(f->m, 60ll * 1000000000);
	assert_int_equal(op_create(f, 90, "z1", 1), 0); /* committed at once */
	assert_int_equal(seen(f->ro, "z1"), 90);
	meta_batch_pause(f->m, 0);
	assert_int_equal(op_create(f, 91, "z2", 1), 1);
	assert_int_equal(meta_batch_commit(f->m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batch_invisible_until_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_op_rolls_back_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commits_at_max_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain_commit_takes_the_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_batch_without_reserve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_batch_when_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_batch_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
