/*
 * cmd_audit.c - `tierfs audit`: what left the premises (the egress audit
 * log, audit.h), `tierfs audit verify`: is every object in the store
 * accounted for by the log, and is every logged live object there, and
 * `tierfs audit keep`: how long records are kept.
 */
#include <errno.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "cli.h"
#include "cli_int.h"
#include "log.h"
#include "policy.h"
#include "store.h"

static const char usage[] =
	"usage: tierfs audit [--since DURATION] [--path GLOB] [--objects] [--json] [--volume DIR]\n"
	"       tierfs audit verify [--json] [--volume DIR]\n"
	"       tierfs audit keep [DURATION] [--volume DIR]\n"
	"\n"
	"Lists what left the premises: one record per upload of a file version and\n"
	"per published snapshot (time, path, rule, placement, bytes, objects).\n"
	"--since 7d shows the last 7 days; --path matches file paths with a policy\n"
	"glob ('/shared/**'); --objects lists each record's object keys.\n"
	"'verify' lists the store and reports every object the log does not account\n"
	"for and every logged live object that is missing; exit status 1 if any.\n"
	"'keep' shows or sets how long records are kept (default 90d).\n";

struct audit_args {
	const char *volume, *path, *since;
	int json, objects;
	int argc;
	char **argv;
};

static int parse(int argc, char **argv, struct audit_args *a)
{
	static const struct option opts[] = {
		{ "volume", required_argument, NULL, 'V' }, { "since", required_argument, NULL, 's' },
		{ "path", required_argument, NULL, 'p' },   { "json", no_argument, NULL, 'j' },
		{ "objects", no_argument, NULL, 'o' },      { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(a, 0, sizeof(*a));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'V': a->volume = optarg; break;
		case 's': a->since = optarg; break;
		case 'p': a->path = optarg; break;
		case 'j': a->json = 1; break;
		case 'o': a->objects = 1; break;
		case 'h': fputs(usage, stdout); return -1;
		default:
			tfs_error("audit: unknown option '%s'; see 'tierfs audit --help'", cli_bad_option(argv));
			return 2;
		}
	}
	a->argc = argc - optind;
	a->argv = argv + optind;
	return 0;
}

static void fmt_time(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int objects_of(struct meta *m, int64_t rec, int json)
{
	sqlite3_stmt *s = meta_stmt(m, "SELECT key FROM egress_obj WHERE rec=?1 ORDER BY key");
	int first = 1;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, rec);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(s, 0);

		if (json) {
			if (!first)
				fputc(',', stdout);
			json_str(stdout, k);
		} else {
			printf("    %s\n", k);
		}
		first = 0;
	}
	sqlite3_reset(s);
	return 0;
}

static int audit_list(struct target *t, const struct audit_args *a)
{
	struct meta *m = t->v->meta;
	sqlite3_stmt *s;
	int64_t from = 0;
	uint64_t n = 0, bytes = 0, objs = 0;
	char err[POLICY_ERR_MAX];

	if (a->since) {
		uint64_t secs;

		if (parse_duration(a->since, &secs)) {
			tfs_error("audit: invalid duration '%s' for --since", a->since);
			return 2;
		}
		from = (int64_t)now_real_ns() - (int64_t)secs * 1000000000ll;
	}
	if (a->path && policy_glob_check(a->path, err, sizeof(err))) {
		tfs_error("audit: --path: %s", err);
		return 2;
	}
	s = meta_stmt(m, "SELECT id, time, kind, path, rule, placement, bytes, objects FROM egress"
			 " WHERE time >= ?1 ORDER BY time, id");
	if (!s) {
		tfs_error("audit: cannot read the audit log: %s", sqlite3_errmsg(meta_db(m)));
		return 1;
	}
	sqlite3_bind_int64(s, 1, from);
	if (a->json)
		fputs("{\"records\":[", stdout);
	while (sqlite3_step(s) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(s, 0);
		const char *kind = (const char *)sqlite3_column_text(s, 2);
		const char *path = (const char *)sqlite3_column_text(s, 3);
		const char *rule = (const char *)sqlite3_column_text(s, 4);
		const char *pl = (const char *)sqlite3_column_text(s, 5);
		char when[32];

		/* --path selects files: publish records have no file path */
		if (a->path && (strcmp(kind, "upload") || !policy_glob_match(a->path, path)))
			continue;
		fmt_time(sqlite3_column_int64(s, 1), when, sizeof(when));
		if (a->json) {
			printf("%s{\"time\":", n ? "," : "");
			json_str(stdout, when);
			printf(",\"time_ns\":%lld,\"kind\":", (long long)sqlite3_column_int64(s, 1));
			json_str(stdout, kind);
			fputs(",\"path\":", stdout);
			json_str(stdout, path);
			fputs(",\"rule\":", stdout);
			if (rule)
				json_str(stdout, rule);
			else
				fputs("null", stdout);
			fputs(",\"placement\":", stdout);
			if (pl)
				json_str(stdout, pl);
			else
				fputs("null", stdout);
			printf(",\"bytes\":%lld,\"objects\":[", (long long)sqlite3_column_int64(s, 6));
			objects_of(m, id, 1);
			fputs("]}", stdout);
		} else {
			printf("%s  %-7s '%s'  rule %s  %s  %lld bytes  %lld object%s\n", when, kind, path,
			       rule ? rule : "-", pl ? pl : "-", (long long)sqlite3_column_int64(s, 6),
			       (long long)sqlite3_column_int64(s, 7), sqlite3_column_int64(s, 7) == 1 ? "" : "s");
			if (a->objects)
				objects_of(m, id, 0);
		}
		n++;
		bytes += (uint64_t)sqlite3_column_int64(s, 6);
		objs += (uint64_t)sqlite3_column_int64(s, 7);
	}
	sqlite3_reset(s);
	if (a->json)
		printf("],\"count\":%llu,\"bytes\":%llu,\"objects\":%llu,\"keep_seconds\":%lld}\n",
		       (unsigned long long)n, (unsigned long long)bytes, (unsigned long long)objs,
		       (long long)audit_keep(m));
	else
		printf("%llu record%s, %llu bytes, %llu objects\n", (unsigned long long)n, n == 1 ? "" : "s",
		       (unsigned long long)bytes, (unsigned long long)objs);
	return 0;
}

/* ---- verify ---- */

struct keylist {
	char **k;
	size_t n, cap;
	int oom;
};

static int add_key(void *arg, const char *key, uint64_t size)
{
	struct keylist *l = arg;

	(void)size;
	if (l->n == l->cap) {
		size_t n = l->cap ? l->cap * 2 : 256;
		char **x = realloc(l->k, n * sizeof(*x));

		if (!x) {
			l->oom = 1;
			return 1;
		}
		l->k = x;
		l->cap = n;
	}
	l->k[l->n] = strdup(key);
	if (!l->k[l->n]) {
		l->oom = 1;
		return 1;
	}
	l->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Prefixes of objects other writers own: cloud nodes' write-back outboxes
 * and requests, the publisher's cloud-write rules. */
static int others(const char *k)
{
	return !strncmp(k, "outbox/", 7) || !strncmp(k, "requests/", 9) || !strncmp(k, "rules/", 6);
}

static void report(int json, int *first, const char *what, const char *key)
{
	if (json) {
		printf("%s{\"problem\":", *first ? "" : ",");
		json_str(stdout, what);
		fputs(",\"key\":", stdout);
		json_str(stdout, key);
		fputc('}', stdout);
	} else {
		printf("%s: %s\n", what, key);
	}
	*first = 0;
}

static int audit_verify(struct target *t, const struct audit_args *a)
{
	struct meta *m = t->v->meta;
	struct keylist l = { NULL, 0, 0, 0 };
	struct store *st = NULL;
	struct store_opts so;
	char *url = NULL, err[512];
	uint64_t foreign = 0, missing = 0, accounted = 0, other = 0;
	sqlite3_stmt *s;
	int first = 1, rc, ret = 1;

	if (meta_config_get(m, "store_url", &url) || !url) {
		tfs_error("audit verify: volume '%s' has no store configured", t->vol);
		return 1;
	}
	memset(&so, 0, sizeof(so));
	rc = store_open(url, &so, &st, err, sizeof(err));
	if (rc) {
		tfs_error("audit verify: cannot open store '%s': %s", url, err);
		goto out;
	}
	rc = store_list(st, "", add_key, &l);
	if (l.oom)
		rc = -ENOMEM;
	if (rc < 0) {
		tfs_error("audit verify: cannot list store '%s': %s", url,
			  store_errmsg()[0] ? store_errmsg() : strerror(-rc));
		goto out;
	}
	qsort(l.k, l.n, sizeof(*l.k), cmp_str);
	if (a->json)
		fputs("{\"problems\":[", stdout);
	/* every object in the store: logged, or another writer's */
	s = meta_stmt(m, "SELECT 1 FROM egress_obj WHERE key=?1 LIMIT 1");
	for (size_t i = 0; s && i < l.n; i++) {
		int found;

		if (others(l.k[i])) {
			other++;
			continue;
		}
		sqlite3_bind_text(s, 1, l.k[i], -1, SQLITE_STATIC);
		found = sqlite3_step(s) == SQLITE_ROW;
		sqlite3_reset(s);
		if (found) {
			accounted++;
		} else {
			report(a->json, &first, "not in the audit log", l.k[i]);
			foreign++;
		}
	}
	/* every logged object home still keeps in the store: there */
	s = meta_stmt(m, "SELECT DISTINCT o.key FROM egress_obj o WHERE " AUDIT_LIVE_SQL("o.key"));
	while (s && sqlite3_step(s) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(s, 0);

		if (!bsearch(&k, l.k, l.n, sizeof(*l.k), cmp_str)) {
			report(a->json, &first, "missing from the store", k);
			missing++;
		}
	}
	if (s)
		sqlite3_reset(s);
	else {
		tfs_error("audit verify: cannot read the audit log: %s", sqlite3_errmsg(meta_db(m)));
		goto out;
	}
	if (a->json)
		printf("],\"objects\":%zu,\"accounted\":%llu,\"others\":%llu,\"unaccounted\":%llu,\"missing\":%llu}\n",
		       l.n, (unsigned long long)accounted, (unsigned long long)other,
		       (unsigned long long)foreign, (unsigned long long)missing);
	else
		printf("%zu objects in the store: %llu accounted for by the audit log, %llu written by cloud"
		       " nodes or for them, %llu not accounted for; %llu logged live objects missing\n",
		       l.n, (unsigned long long)accounted, (unsigned long long)other,
		       (unsigned long long)foreign, (unsigned long long)missing);
	ret = foreign || missing ? 1 : 0;
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.k[i]);
	free(l.k);
	if (st)
		store_close(st);
	free(url);
	return ret;
}

static int audit_set_keep(struct target *t, const char *dur)
{
	struct meta *m = t->v->meta;
	uint64_t secs;
	char buf[32];
	int rc;

	if (!dur) {
		printf("audit records are kept %lld seconds (and while an object they list is in the store)\n",
		       (long long)audit_keep(m));
		return 0;
	}
	if (parse_duration(dur, &secs) || !secs || secs > (uint64_t)INT64_MAX / 1000000000ull) {
		tfs_error("audit keep: invalid duration '%s'", dur);
		return 2;
	}
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)secs);
	rc = meta_begin(m);
	if (!rc)
		rc = meta_config_set(m, "audit_keep", buf);
	if (!rc)
		rc = audit_prune(m, (int64_t)now_real_ns()) < 0 ? -EIO : 0;
	if (!rc)
		rc = meta_commit(m, 0);
	else
		meta_rollback(m);
	if (rc) {
		tfs_error("audit keep: cannot set the keep period: %s", strerror(-rc));
		return 1;
	}
	printf("audit records are now kept %llu seconds\n", (unsigned long long)secs);
	return 0;
}

int cmd_audit(int argc, char **argv)
{
	struct audit_args a;
	struct target t;
	const char *sub = NULL;
	int rc = parse(argc, argv, &a);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (a.argc > 0)
		sub = a.argv[0];
	if (sub && strcmp(sub, "verify") && strcmp(sub, "keep")) {
		tfs_error("audit: unknown subcommand '%s'; see 'tierfs audit --help'", sub);
		return 2;
	}
	if (a.argc > (sub && !strcmp(sub, "keep") ? 2 : sub ? 1 : 0)) {
		tfs_error("audit: unexpected argument '%s'; see 'tierfs audit --help'", a.argv[a.argc - 1]);
		return 2;
	}
	if (sub && (a.since || a.path || a.objects)) {
		tfs_error("audit %s: --since, --path and --objects apply to the listing only", sub);
		return 2;
	}
	if (target_open(&t, a.volume, NULL, !(sub && !strcmp(sub, "keep") && a.argc == 2)))
		return 1;
	if (!sub)
		rc = audit_list(&t, &a);
	else if (!strcmp(sub, "verify"))
		rc = audit_verify(&t, &a);
	else
		rc = audit_set_keep(&t, a.argc == 2 ? a.argv[1] : NULL);
	target_close(&t);
	return rc;
}
