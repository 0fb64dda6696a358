/*
 * cmd_health.c - what `tierfs status` says about the sync engine: the
 * upload queue, the store's health per direction as the engine's own
 * operations recorded it (health.h), the files that do not sync
 * (--errors) and the monitoring verdict (--check). Nothing here asks the
 * store: the status is what really happened, not a guess.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_int.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "placement.h"

#define NS 1000000000ll

/* ISO 8601 UTC of a time in ns since the epoch ("" for 0). */
static const char *iso(int64_t ns, char *buf, size_t len)
{
	time_t secs = (time_t)(ns / NS);
	struct tm tm;

	buf[0] = '\0';
	if (ns > 0 && gmtime_r(&secs, &tm))
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static void json_time(int64_t ns)
{
	char b[40];

	if (ns > 0)
		printf("\"%s\"", iso(ns, b, sizeof(b)));
	else
		printf("null");
}

static void json_opt_str(const char *s)
{
	if (s && s[0])
		json_str(stdout, s);
	else
		printf("null");
}

/* The direction failing since the earliest time, or -1 when all are ok. */
static int worst(const struct health_rec *r)
{
	int w = -1;

	for (int d = 0; d < HEALTH__COUNT; d++)
		if (r[d].failures && (w < 0 || r[d].failing_since < r[w].failing_since))
			w = d;
	return w;
}

void cli_status_sync(struct volume *v, int json)
{
	struct health_rec r[HEALTH__COUNT];
	struct health_queue q;
	int64_t now = (int64_t)now_real_ns();
	char b1[40], b2[40];
	const char *state;
	int w, known, used = 0;

	health_queue_facts(v->meta, &q);
	known = !health_load(v->meta, r);
	w = worst(r);
	for (int d = 0; d < HEALTH__COUNT; d++)
		used |= r[d].ok_total || r[d].error_total;
	/* "ok" only from a record of operations that succeeded */
	state = !known ? "unknown" : w >= 0 ? "failing" : used ? "ok" : "unused";
	if (json) {
		printf("\"sync\":{\"queue\":%" PRIu64 ",\"pending_bytes\":%" PRIu64 ",\"oldest_queued\":", q.files,
		       q.bytes);
		json_time(q.oldest);
		printf(",\"queue_age_s\":%lld,\"store\":\"%s\",\"store_reachable\":%s,\"unreachable_since\":",
		       q.oldest ? (long long)((now - q.oldest) / NS) : 0LL, state,
		       w < 0 ? "true" : "false");
		json_time(w < 0 ? 0 : r[w].failing_since);
		printf(",\"last_error\":");
		json_opt_str(w < 0 ? NULL : r[w].last_error);
		printf(",\"health\":{");
		for (int d = 0; d < HEALTH__COUNT; d++) {
			const struct health_rec *h = &r[d];

			printf("%s\"%s\":{\"state\":\"%s\",\"last_success\":", d ? "," : "", health_dir_name(d),
			       h->failures ? "failing" : h->ok_total ? "ok" : "unused");
			json_time(h->last_ok);
			printf(",\"failing_since\":");
			json_time(h->failing_since);
			printf(",\"last_error_at\":");
			json_time(h->last_error_at);
			printf(",\"last_error\":");
			json_opt_str(h->last_error_at ? h->last_error : NULL);
			printf(",\"failures\":%" PRIu64 ",\"ok_total\":%" PRIu64 ",\"error_total\":%" PRIu64 "}",
			       h->failures, h->ok_total, h->error_total);
		}
		printf("},\"not_syncing\":{\"transient\":%" PRIu64 ",\"persistent\":%" PRIu64 "}}", q.transient,
		       q.persistent);
		return;
	}
	printf("upload queue: %" PRIu64 " files, %" PRIu64 " bytes", q.files, q.bytes);
	if (q.oldest)
		printf(", oldest since %s (%lld s)", iso(q.oldest, b1, sizeof(b1)),
		       (long long)((now - q.oldest) / NS));
	printf("\n");
	if (w < 0)
		printf("store:        %s\n", !strcmp(state, "ok") ? "ok (every latest operation succeeded)" :
		       !strcmp(state, "unused") ? "no operations yet" : "unknown (no health record in this volume)");
	else
		printf("store:        FAILING since %s: %s\n", iso(r[w].failing_since, b1, sizeof(b1)),
		       r[w].last_error);
	for (int d = 0; d < HEALTH__COUNT; d++) {
		const struct health_rec *h = &r[d];

		printf("  %-10s  ", health_dir_name(d));
		if (h->failures)
			printf("FAILING since %s, %" PRIu64 " failures; last error at %s: %s", iso(h->failing_since, b1, sizeof(b1)),
			       h->failures, iso(h->last_error_at, b2, sizeof(b2)), h->last_error);
		else if (h->ok_total)
			printf("ok, last success %s", iso(h->last_ok, b1, sizeof(b1)));
		else
			printf("not used yet");
		if (!h->failures && h->last_ok)
			printf(h->last_error_at ? "; last error %s" : "", iso(h->last_error_at, b2, sizeof(b2)));
		printf("\n");
	}
	if (q.transient || q.persistent)
		printf("not syncing:  %" PRIu64 " files (%" PRIu64 " need the operator); see 'tierfs status --errors'\n",
		       q.transient + q.persistent, q.persistent);
}

int cli_status_errors(struct volume *v, int json)
{
	sqlite3_stmt *s;
	int first = 1;

	if (sqlite3_prepare_v2(meta_db(v->meta),
			       "SELECT ino, dir, persistent, error, since, last, attempts FROM file_error"
			       " ORDER BY persistent DESC, since", -1, &s, NULL) != SQLITE_OK) {
		tfs_error("status: cannot read the list of files that do not sync: %s",
			  sqlite3_errmsg(meta_db(v->meta)));
		return 1;
	}
	if (json)
		printf("{\"errors\":[");
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(s, 0);
		const char *dir = (const char *)sqlite3_column_text(s, 1);
		int persistent = (int)sqlite3_column_int64(s, 2);
		const char *err = (const char *)sqlite3_column_text(s, 3);
		int64_t since = sqlite3_column_int64(s, 4), last = sqlite3_column_int64(s, 5);
		int64_t attempts = sqlite3_column_int64(s, 6);
		struct tbuf p = TBUF_INIT;
		char b1[40], b2[40];
		const char *path;

		placement_path(v->meta, ino, &p);
		path = p.data ? (const char *)p.data : "?";
		if (json) {
			printf("%s{\"path\":", first ? "" : ",");
			json_str(stdout, path);
			printf(",\"direction\":\"%s\",\"kind\":\"%s\",\"error\":", dir,
			       persistent ? "persistent" : "transient");
			json_str(stdout, err ? err : "");
			printf(",\"since\":");
			json_time(since);
			printf(",\"last\":");
			json_time(last);
			printf(",\"attempts\":%lld}", (long long)attempts);
		} else {
			if (first)
				printf("%-10s %-8s %-20s %8s  %s\n", "KIND", "DIR", "SINCE", "ATTEMPTS", "PATH: ERROR");
			printf("%-10s %-8s %-20s %8lld  %s: %s%s\n", persistent ? "persistent" : "transient", dir,
			       iso(since, b1, sizeof(b1)), (long long)attempts, path, err ? err : "",
			       persistent ? "" : " (will retry)");
			(void)b2;
			(void)last;
		}
		first = 0;
		tbuf_release(&p);
	}
	sqlite3_finalize(s);
	if (json)
		printf("]}\n");
	else if (first)
		printf("every file syncs: no errors\n");
	return 0;
}

int cli_status_check(struct volume *v, long max_failures, long max_queue_age_s)
{
	struct health_rec r[HEALTH__COUNT];
	struct health_queue q;
	int64_t now = (int64_t)now_real_ns();
	const struct health_rec *u = &r[HEALTH_UPLOAD];
	char b[40];

	if (health_queue_facts(v->meta, &q) || health_load(v->meta, r)) {
		tfs_error("status: cannot read the health of '%s'", v->dir);
		return 3;
	}
	if (u->failures && (long)u->failures >= max_failures) {
		tfs_error("unhealthy: uploads failing since %s (%" PRIu64 " failures): %s",
			  iso(u->failing_since, b, sizeof(b)), u->failures, u->last_error);
		return 1;
	}
	if (q.oldest && (now - q.oldest) / NS > max_queue_age_s) {
		tfs_error("unhealthy: the oldest of %" PRIu64 " queued files waits since %s (%lld s, bound %ld s)",
			  q.files, iso(q.oldest, b, sizeof(b)), (long long)((now - q.oldest) / NS), max_queue_age_s);
		return 1;
	}
	printf("healthy: %" PRIu64 " files queued, uploads %s\n", q.files,
	       u->failures ? "failing below the threshold" : u->ok_total ? "ok" : "not used yet");
	return 0;
}

static const char metrics_usage[] =
	"usage: tierfs metrics [--volume DIR | PATH]\n"
	"\n"
	"Print the volume's metrics in the Prometheus text format: store requests\n"
	"per direction and result, failures since the last success, the upload\n"
	"queue and its oldest entry's age, the files that do not sync, files and\n"
	"bytes per placement and sync state. The same record 'tierfs status' shows.\n";

int cmd_metrics(int argc, char **argv)
{
	const char *volume = NULL, *path = NULL;
	struct tbuf b = TBUF_INIT;
	struct target t;
	int rc;

	for (int k = 1; k < argc; k++) {
		if (cli_is_help(argv[k])) {
			fputs(metrics_usage, stdout);
			return 0;
		} else if (!strcmp(argv[k], "--volume") && k + 1 < argc) {
			volume = argv[++k];
		} else if (!strncmp(argv[k], "--volume=", 9)) {
			volume = argv[k] + 9;
		} else if (argv[k][0] == '-' || path) {
			tfs_error("metrics: unexpected argument '%s'; see 'tierfs metrics --help'", argv[k]);
			return 2;
		} else {
			path = argv[k];
		}
	}
	if (target_open(&t, volume, path, 1))
		return 1;
	rc = metrics_render(t.v->meta, &b);
	if (rc)
		tfs_error("metrics: cannot read the volume '%s': %s", t.vol, strerror(-rc));
	else
		fwrite(b.data, 1, b.len, stdout);
	tbuf_release(&b);
	target_close(&t);
	return rc ? 1 : 0;
}
