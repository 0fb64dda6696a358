/*
 * cmd_store.c - "tierfs store": object store tools. "store check URL" says
 * line by line whether the store answers, whether it accepts the
 * credentials, and whether put, get, list and delete are allowed, using a
 * random temporary key that it removes again. It exits 0 only when all of
 * them work, so scripts and CI can use it as a gate before formatting a
 * volume on a store.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "cli.h"
#include "log.h"
#include "store.h"

static void store_usage(FILE *f)
{
	fprintf(f, "usage: tierfs store check URL [--endpoint URL]\n"
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

static void line(const char *what, int rc, const char *ok_text)
{
	if (rc)
		printf("  %-12s FAILED: %s\n", what, store_errmsg());
	else
		printf("  %-12s %s\n", what, ok_text);
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

static int store_check(const char *url, const char *endpoint)
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
		tfs_error("cannot get random bytes: %s", strerror(errno));
		return 1;
	}
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(key, sizeof(key), "tierfs-check-%s", hex);
	snprintf(body, sizeof(body), "tierfs store check %s\n", hex);

	printf("checking store '%s'\n", url);
	rc = store_open(url, &opts, &s, err, sizeof(err));
	if (rc) {
		printf("  %-12s FAILED: %s\n", "configure", err);
		tfs_error("cannot open store '%s': %s", url, err);
		return 1;
	}

	/* A listing is the cheapest request that needs a good signature. */
	rc = store_list(s, key, find_key, &f);
	if (is_transport(rc)) {
		line("reachable", rc, "");
		failed = 1;
		goto out;
	}
	printf("  %-12s yes\n", "reachable");
	if (rc == -EACCES) {
		line("credentials", rc, "");
		failed = 1;
	} else if (rc == -ENOENT) {
		line("bucket", rc, "");
		failed = 1;
		goto out;
	} else {
		printf("  %-12s accepted\n", "credentials");
	}

	rc = store_put(s, key, body, strlen(body));
	line("put", rc, "allowed");
	if (rc) {
		failed = 1;
		goto out;
	}
	rc = store_get(s, key, 0, STORE_WHOLE, &got);
	if (!rc && (got.len != strlen(body) || memcmp(got.data, body, got.len))) {
		store_set_errmsg("the object came back different (%zu bytes)", got.len);
		rc = -EIO;
	}
	line("get", rc, "allowed, content verified");
	failed |= rc != 0;

	f.found = 0;
	rc = store_list(s, key, find_key, &f);
	if (!rc && !f.found) {
		store_set_errmsg("the new object '%s' is not listed", key);
		rc = -EIO;
	}
	line("list", rc, "allowed, object listed");
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
	line("delete", rc, "allowed, object gone");
	failed |= rc != 0;
out:
	tbuf_release(&got);
	store_close(s);
	if (failed) {
		tfs_error("store '%s' is not usable", url);
		return 1;
	}
	printf("store '%s' works\n", url);
	return 0;
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
