/*
 * cmd_store.c - "tierfs store": object store tools. "store check URL" says
 * line by line whether the store answers, whether it accepts the
 * credentials, and whether put, get, list and delete are allowed, using a
 * random temporary key that it removes again. It exits 0 only when all of
 * them work, so scripts and CI can use it as a gate before formatting a
 * volume on a store. "store verify" checks a volume's store against its
 * metadata and mends it (verify.h), through the mount's job table when the
 * volume is mounted.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli.h"
#include "cli_int.h"
#include "log.h"
#include "snapshot.h"
#include "store.h"
#include "sync.h"
#include "verify.h"

static void store_usage(FILE *f)
{
	fprintf(f, "usage: tierfs store check URL [--endpoint URL]\n"
		   "       tierfs store verify [--deep] [--repair] [--volume DIR | PATH]\n"
		   "       tierfs store set URL [--no-check] [--force] --volume DIR\n"
		   "\n"
		   "verify: check that every object the volume's metadata references is in\n"
		   "its store (--deep: read, decrypt and authenticate each), and name the\n"
		   "files that miss data. --repair uploads them again from their local\n"
		   "copies and publishes again; files whose evicted data is gone are named.\n"
		   "Runs through the mount when the volume is mounted. Exit status as\n"
		   "fsck(8): 0 all present, 1 problems found and all repaired, 4 problems\n"
		   "left, 8 could not check (store failing, no volume), 2 usage.\n"
		   "\n"
		   "set: move an unmounted volume to another store: checked first as with\n"
		   "'check' (and refused if it holds another volume's objects, unless\n"
		   "--force), every object the volume uses is copied (those already there\n"
		   "are skipped: run it again after an interruption), then the volume uses\n"
		   "the new store, and whatever the old store could not give is uploaded\n"
		   "again from local copies. Exit status 0 moved, 1 failed (the volume keeps\n"
		   "its store), 4 moved but some data could not be mended, 2 usage.\n"
		   "\n"
		   "Check that an object store works for tierfs: reachable, credentials\n"
		   "accepted, and put, get, list and delete allowed (with a temporary\n"
		   "object that is removed again). Exit status 0 only if all work.\n"
		   "\n"
		   "  URL              file:///DIR, s3://BUCKET[/PREFIX] or\n"
		   "                   azure://CONTAINER[/PREFIX]\n"
		   "  --endpoint URL   S3 or Azure endpoint (default: from the environment,\n"
		   "                   AWS_ENDPOINT_URL, or the public cloud)\n");
}

/* Where a check reports: lines on out (NULL: quiet), the first failure in why. */
struct check_out {
	FILE *out;
	char *why;
	size_t len;
};

static void line(struct check_out *o, const char *what, int rc, const char *ok_text)
{
	if (rc && o->why && !o->why[0])
		snprintf(o->why, o->len, "%s: %s", what, store_errmsg());
	if (!o->out)
		return;
	if (rc)
		fprintf(o->out, "  %-12s FAILED: %s\n", what, store_errmsg());
	else
		fprintf(o->out, "  %-12s %s\n", what, ok_text);
}

static int is_transport(int rc)
{
	return rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH || rc == -EIO;
}

struct find {
	const char *key;
	int found;
};

static int find_key(void *arg, const char *key, uint64_t size)
{
	struct find *f = arg;

	if (!strcmp(key, f->key))
		f->found = 1;
	return 0;
}

/* 0 when the store works (reachable, credentials, put, get, list, delete). */
static int check_store(const char *url, const char *endpoint, struct check_out *o)
{
	/* Fail fast: a check should answer in seconds, not minutes. */
	struct store_opts opts = { .endpoint = endpoint, .max_retries = 2,
				   .connect_timeout_ms = 5000, .timeout_ms = 20000 };
	struct tbuf got = TBUF_INIT;
	struct store *s = NULL;
	uint8_t rnd[8];
	char key[64], hex[17], body[64], err[512];
	struct find f = { key, 0 };
	int rc, failed = 0;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(o->why, o->len, "cannot get random bytes: %s", strerror(errno));
		return 1;
	}
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(key, sizeof(key), "tierfs-check-%s", hex);
	snprintf(body, sizeof(body), "tierfs store check %s\n", hex);

	if (o->out)
		fprintf(o->out, "checking store '%s'\n", url);
	rc = store_open(url, &opts, &s, err, sizeof(err));
	if (rc) {
		if (o->out)
			fprintf(o->out, "  %-12s FAILED: %s\n", "configure", err);
		snprintf(o->why, o->len, "%s", err);
		return 1;
	}

	/* A listing is the cheapest request that needs a good signature. */
	rc = store_list(s, key, find_key, &f);
	if (is_transport(rc)) {
		line(o, "reachable", rc, "");
		failed = 1;
		goto out;
	}
	line(o, "reachable", 0, "yes");
	if (rc == -EACCES) {
		line(o, "credentials", rc, "");
		failed = 1;
	} else if (rc == -ENOENT) {
		line(o, "bucket", rc, "");
		failed = 1;
		goto out;
	} else {
		line(o, "credentials", 0, "accepted");
	}

	rc = store_put(s, key, body, strlen(body));
	line(o, "put", rc, "allowed");
	if (rc) {
		failed = 1;
		goto out;
	}
	rc = store_get(s, key, 0, STORE_WHOLE, &got);
	if (!rc && (got.len != strlen(body) || memcmp(got.data, body, got.len))) {
		store_set_errmsg("the object came back different (%zu bytes)", got.len);
		rc = -EIO;
	}
	line(o, "get", rc, "allowed, content verified");
	failed |= rc != 0;

	f.found = 0;
	rc = store_list(s, key, find_key, &f);
	if (!rc && !f.found) {
		store_set_errmsg("the new object '%s' is not listed", key);
		rc = -EIO;
	}
	line(o, "list", rc, "allowed, object listed");
	failed |= rc != 0;

	rc = store_del(s, key);
	if (!rc) {
		rc = store_head(s, key, NULL);
		if (rc == -ENOENT) {
			rc = 0;
		} else if (!rc) {
			store_set_errmsg("the object '%s' still exists after delete", key);
			rc = -EIO;
		}
	}
	line(o, "delete", rc, "allowed, object gone");
	failed |= rc != 0;
out:
	tbuf_release(&got);
	store_close(s);
	return failed;
}

static int store_check(const char *url, const char *endpoint)
{
	char why[600] = "";
	struct check_out o = { stdout, why, sizeof(why) };

	if (check_store(url, endpoint, &o)) {
		tfs_error("store '%s' is not usable: %s", url, why);
		return 1;
	}
	printf("store '%s' works\n", url);
	return 0;
}

static int first_key(void *arg, const char *key, uint64_t size)
{
	(void)size;
	snprintf(arg, SNAP_KEY_MAX, "%s", key);
	return 1;
}

int cli_store_claim_check(const char *url, char *why, size_t len)
{
	struct check_out o = { NULL, why, len };
	struct store_opts opts = { .max_retries = 2, .connect_timeout_ms = 5000, .timeout_ms = 20000 };
	char err[512], found[SNAP_KEY_MAX] = "";
	static const char *const prefixes[] = { "head", "snaps/", "chunks/", "files/", "dirs/" };
	struct store *s;
	int rc;

	why[0] = '\0';
	if (check_store(url, NULL, &o))
		return -EIO;
	rc = store_open(url, &opts, &s, err, sizeof(err));
	if (rc) {
		snprintf(why, len, "%s", err);
		return rc;
	}
	for (size_t k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]) && !found[0] && rc >= 0; k++)
		rc = store_list(s, prefixes[k], first_key, found);
	if (rc < 0)
		snprintf(why, len, "cannot list it: %s", store_errmsg());
	else if (found[0])
		snprintf(why, len, "it already holds another volume's objects ('%s')", found);
	store_close(s);
	return rc < 0 ? rc : found[0] ? -EEXIST : 0;
}

/* ---- store verify ---- */

struct verify_cli {
	int tty;
	int lost, missing, repaired;
};

static void verify_line(void *arg, enum verify_kind kind, const char *text)
{
	struct verify_cli *vc = arg;
	static const char *const tag[] = { "", "MISSING: ", "repaired: ", "LOST: " };

	if (vc->tty)
		fputs("\r\033[K", stderr);
	vc->lost += kind == VERIFY_LOST;
	vc->missing += kind == VERIFY_MISSING;
	vc->repaired += kind == VERIFY_REPAIRED;
	printf("%s%s\n", tag[kind <= VERIFY_LOST ? kind : 0], text);
	fflush(stdout);
}

static void verify_progress(void *arg, uint64_t done, uint64_t total)
{
	struct verify_cli *vc = arg;

	if (vc->tty)
		fprintf(stderr, "\rverify    %llu/%llu objects ", (unsigned long long)done, (unsigned long long)total);
}

/* The exit status from what the lines said (a job through the mount). */
static int verify_status(const struct verify_cli *vc)
{
	if (vc->lost || vc->missing)
		return 4;
	return vc->repaired ? 1 : 0;
}

/* Through the mount: a job, its lines from job_line. */
static int verify_mounted(struct target *t, const char *arg, struct verify_cli *vc)
{
	int64_t id = cli_job_submit(t, "verify", arg);
	sqlite3_stmt *s;
	int rc;

	if (id < 0) {
		tfs_error("store verify: cannot queue the request in '%s'", t->vol);
		return 8;
	}
	rc = cli_job_follow(t, id, "verify", 0, NULL);
	if (sqlite3_prepare_v2(meta_db(t->v->meta), "SELECT kind, line FROM job_line WHERE job=?1 ORDER BY seq",
			       -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, id);
		while (sqlite3_step(s) == SQLITE_ROW)
			verify_line(vc, (enum verify_kind)sqlite3_column_int(s, 0),
				    (const char *)sqlite3_column_text(s, 1));
		sqlite3_finalize(s);
	}
	if (!meta_begin(t->v->meta)) {
		if (sqlite3_prepare_v2(meta_db(t->v->meta), "DELETE FROM job_line WHERE job=?1", -1, &s, NULL) ==
		    SQLITE_OK) {
			sqlite3_bind_int64(s, 1, id);
			sqlite3_step(s);
			sqlite3_finalize(s);
		}
		if (meta_commit(t->v->meta, 0))
			meta_rollback(t->v->meta);
	}
	return rc ? 8 : verify_status(vc);
}

static int store_verify(int argc, char **argv)
{
	const char *volume = NULL, *path = NULL;
	struct verify_cli vc = { isatty(2), 0, 0, 0 };
	int flags = 0, ret;
	struct target t;

	for (int i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			store_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--deep")) {
			flags |= VERIFY_DEEP;
		} else if (!strcmp(argv[i], "--repair")) {
			flags |= VERIFY_REPAIR;
		} else if (!strcmp(argv[i], "--volume") && i + 1 < argc) {
			volume = argv[++i];
		} else if (!strncmp(argv[i], "--volume=", 9)) {
			volume = argv[i] + 9;
		} else if (argv[i][0] == '-' || path) {
			tfs_error("store verify: unexpected argument '%s'; see 'tierfs store --help'", argv[i]);
			return 2;
		} else {
			path = argv[i];
		}
	}
	if (target_open(&t, volume, path, 0))
		return 8;
	if (volume_mount_pid(t.vol) > 0) {
		ret = verify_mounted(&t, flags == (VERIFY_DEEP | VERIFY_REPAIR) ? "deep,repair" :
					  flags == VERIFY_DEEP ? "deep" : flags == VERIFY_REPAIR ? "repair" : NULL, &vc);
	} else {
		struct verify_ops ops = { &vc, verify_line, verify_progress };
		struct verify_stats st;
		struct sync *s;
		char err[1024];
		int rc = sync_open(t.v, NULL, NULL, &s, err, sizeof(err));

		if (rc) {
			tfs_error("store verify: %s", err);
			target_close(&t);
			return 8;
		}
		rc = verify_run(s, flags, &ops, &st);
		if (vc.tty)
			fputs("\r\033[K", stderr);
		sync_close(s);
		ret = rc ? 8 : verify_exit_status(&st, flags);
	}
	if (ret == 8)
		tfs_error("store verify: could not check the store of '%s'", t.vol);
	target_close(&t);
	return ret;
}

/* ---- store set ---- */

static int store_set(int argc, char **argv)
{
	const char *volume = NULL, *url = NULL;
	struct verify_cli vc = { isatty(2), 0, 0, 0 };
	struct verify_ops ops = { &vc, verify_line, verify_progress };
	struct verify_stats vst;
	uint64_t copied = 0, present = 0, unreadable = 0;
	char err[1024], *cur = NULL, *pending = NULL;
	int check = 1, force = 0, ret = 1, rc;
	struct store *dst = NULL;
	struct sync *s = NULL;
	struct target t;

	for (int i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			store_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--no-check")) {
			check = 0;
		} else if (!strcmp(argv[i], "--force")) {
			force = 1;
		} else if (!strcmp(argv[i], "--volume") && i + 1 < argc) {
			volume = argv[++i];
		} else if (!strncmp(argv[i], "--volume=", 9)) {
			volume = argv[i] + 9;
		} else if (argv[i][0] == '-' || url) {
			tfs_error("store set: unexpected argument '%s'; see 'tierfs store --help'", argv[i]);
			return 2;
		} else {
			url = argv[i];
		}
	}
	if (!url) {
		tfs_error("store set: expected the new store's URL; see 'tierfs store --help'");
		return 2;
	}
	if (target_open(&t, volume, NULL, 0))
		return 1;
	if (volume_mount_pid(t.vol) > 0) {
		tfs_error("store set: volume '%s' is mounted; unmount it first", t.vol);
		goto out;
	}
	meta_config_get(t.v->meta, "store_url", &cur);
	meta_config_get(t.v->meta, "store_move_to", &pending);
	if (cur && !strcmp(cur, url)) {
		printf("volume '%s' already uses store '%s'\n", t.vol, url);
		ret = 0;
		goto out;
	}
	/* a move already under way to this store goes on: its objects are ours */
	if (check && !(pending && !strcmp(pending, url))) {
		char why[600];

		rc = cli_store_claim_check(url, why, sizeof(why));
		if (rc == -EEXIST && !force) {
			tfs_error("store set: store '%s' is in use: %s (--force to use it anyway)", url, why);
			goto out;
		}
		if (rc && rc != -EEXIST) {
			tfs_error("store set: cannot use store '%s': %s", url, why);
			goto out;
		}
	}
	if (meta_begin(t.v->meta) || meta_config_set(t.v->meta, "store_move_to", url) ||
	    meta_commit(t.v->meta, 0)) {
		meta_rollback(t.v->meta);
		tfs_error("store set: cannot record the move in '%s'", t.vol);
		goto out;
	}
	rc = sync_open(t.v, NULL, NULL, &s, err, sizeof(err));
	if (!rc) {
		struct store_opts so = { .max_retries = 2 };

		rc = store_open(url, &so, &dst, err, sizeof(err));
	}
	if (rc) {
		tfs_error("store set: %s", err);
		goto out;
	}
	rc = verify_copy(s, dst, &ops, &copied, &present, &unreadable);
	if (vc.tty)
		fputs("\r\033[K", stderr);
	sync_close(s);
	s = NULL;
	if (rc) {
		tfs_error("store set: stopped after copying %llu objects; the volume still uses '%s';"
			  " run it again to go on", (unsigned long long)copied, cur ? cur : "?");
		goto out;
	}
	if (unreadable && !copied && !present && !force) {
		tfs_error("store set: the old store '%s' has none of the volume's %llu objects (is it"
			  " there?); the volume still uses it (--force moves anyway, uploading local copies)",
			  cur ? cur : "?", (unsigned long long)unreadable);
		goto out;
	}
	if (meta_begin(t.v->meta) || meta_config_set(t.v->meta, "store_url", url) ||
	    meta_config_set(t.v->meta, "store_move_to", "") || meta_commit(t.v->meta, 0)) {
		meta_rollback(t.v->meta);
		tfs_error("store set: cannot record the new store in '%s'", t.vol);
		goto out;
	}
	printf("volume '%s' now uses store '%s': %llu objects copied, %llu already there\n", t.vol, url,
	       (unsigned long long)copied, (unsigned long long)present);
	ret = 0;
	if (unreadable) {
		/* what the old store could not give: from local copies */
		printf("%llu objects the old store did not have: mending from local copies\n",
		       (unsigned long long)unreadable);
		rc = sync_open(t.v, NULL, NULL, &s, err, sizeof(err));
		if (!rc)
			rc = verify_run(s, VERIFY_REPAIR, &ops, &vst);
		ret = rc ? 4 : verify_exit_status(&vst, VERIFY_REPAIR) == 4 ? 4 : 0;
		if (ret)
			tfs_error("store set: some data could not be mended; see the lines above");
	}
out:
	if (s)
		sync_close(s);
	if (dst)
		store_close(dst);
	free(cur);
	free(pending);
	target_close(&t);
	return ret;
}

int cmd_store(int argc, char **argv)
{
	const char *url = NULL, *endpoint = NULL;

	if (argc < 2) {
		store_usage(stderr);
		return 2;
	}
	if (cli_is_help(argv[1])) {
		store_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "verify"))
		return store_verify(argc, argv);
	if (!strcmp(argv[1], "set"))
		return store_set(argc, argv);
	if (strcmp(argv[1], "check")) {
		tfs_error("'%s' is not a store command; see 'tierfs store --help'", argv[1]);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			store_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--endpoint") && i + 1 < argc) {
			endpoint = argv[++i];
		} else if (!strncmp(argv[i], "--endpoint=", 11)) {
			endpoint = argv[i] + 11;
		} else if (argv[i][0] == '-' || url) {
			tfs_error("unexpected argument '%s'; see 'tierfs store --help'", argv[i]);
			return 2;
		} else {
			url = argv[i];
		}
	}
	if (!url) {
		tfs_error("store check needs a URL; see 'tierfs store --help'");
		return 2;
	}
	return store_check(url, endpoint);
}
