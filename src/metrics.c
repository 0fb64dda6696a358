/*
 * metrics.c - Prometheus text format of a volume's recorded health and
 * counters (interface in metrics.h). Every value is read from the metadata
 * store, so `tierfs metrics` beside a live mount and the mount itself say
 * the same. The mount serves them over HTTP with libmicrohttpd (-o metrics=).
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "placement.h"
#include "policy.h"

static int put(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int put(struct tbuf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	return tbuf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static int head(struct tbuf *b, const char *name, const char *type, const char *help)
{
	return put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_render(struct meta *m, struct tbuf *b)
{
	struct health_rec r[HEALTH__COUNT];
	struct health_queue q;
	double now = (double)now_real_ns() / 1e9;
	sqlite3_stmt *s;
	int rc;

	rc = health_load(m, r);
	if (!rc)
		rc = health_queue_facts(m, &q);
	if (rc)
		return rc;
	rc = head(b, "tierfs_store_requests_total", "counter",
		  "Object store requests the sync engine made, by direction and result.");
	for (int d = 0; d < HEALTH__COUNT && !rc; d++) {
		rc = put(b, "tierfs_store_requests_total{direction=\"%s\",result=\"ok\"} %" PRIu64 "\n",
			 health_dir_name(d), r[d].ok_total);
		if (!rc)
			rc = put(b, "tierfs_store_requests_total{direction=\"%s\",result=\"error\"} %" PRIu64 "\n",
				 health_dir_name(d), r[d].error_total);
	}
	if (!rc)
		rc = head(b, "tierfs_store_failures", "gauge",
			  "Failed store requests since the last success, by direction (0: working).");
	for (int d = 0; d < HEALTH__COUNT && !rc; d++)
		rc = put(b, "tierfs_store_failures{direction=\"%s\"} %" PRIu64 "\n", health_dir_name(d),
			 r[d].failures);
	if (!rc)
		rc = head(b, "tierfs_store_last_success_timestamp_seconds", "gauge",
			  "When a store request of the direction last succeeded (0: never).");
	for (int d = 0; d < HEALTH__COUNT && !rc; d++)
		rc = put(b, "tierfs_store_last_success_timestamp_seconds{direction=\"%s\"} %.3f\n",
			 health_dir_name(d), (double)r[d].last_ok / 1e9);
	if (!rc)
		rc = head(b, "tierfs_store_last_error_timestamp_seconds", "gauge",
			  "When a store request of the direction last failed (0: never).");
	for (int d = 0; d < HEALTH__COUNT && !rc; d++)
		rc = put(b, "tierfs_store_last_error_timestamp_seconds{direction=\"%s\"} %.3f\n",
			 health_dir_name(d), (double)r[d].last_error_at / 1e9);
	if (!rc)
		rc = head(b, "tierfs_upload_queue_files", "gauge", "Files waiting for upload.");
	if (!rc)
		rc = put(b, "tierfs_upload_queue_files %" PRIu64 "\n", q.files);
	if (!rc)
		rc = head(b, "tierfs_upload_queue_bytes", "gauge", "Bytes of the files waiting for upload.");
	if (!rc)
		rc = put(b, "tierfs_upload_queue_bytes %" PRIu64 "\n", q.bytes);
	if (!rc)
		rc = head(b, "tierfs_upload_queue_oldest_age_seconds", "gauge",
			  "Age of the oldest change waiting for upload (0: queue empty).");
	if (!rc)
		rc = put(b, "tierfs_upload_queue_oldest_age_seconds %.3f\n",
			 q.oldest ? now - (double)q.oldest / 1e9 : 0.0);
	if (!rc)
		rc = head(b, "tierfs_files_not_syncing", "gauge",
			  "Files that do not sync: transient (retried) or persistent (needs the operator).");
	if (!rc)
		rc = put(b, "tierfs_files_not_syncing{kind=\"transient\"} %" PRIu64 "\n"
			    "tierfs_files_not_syncing{kind=\"persistent\"} %" PRIu64 "\n", q.transient, q.persistent);
	if (rc)
		return rc;
	s = meta_stmt(m, "SELECT placement, sync_state, count(*), coalesce(sum(size),0) FROM inode"
			 " WHERE (mode & 61440) IN (32768, 40960) AND nlink > 0"
			 " GROUP BY placement, sync_state ORDER BY placement, sync_state");
	if (!s)
		return -EIO;
	{
		struct tbuf bytes = TBUF_INIT;

		rc = head(b, "tierfs_files", "gauge", "Files and symlinks by placement and sync state.");
		if (!rc)
			rc = head(&bytes, "tierfs_file_bytes", "gauge", "Bytes of files by placement and sync state.");
		while (!rc && sqlite3_step(s) == SQLITE_ROW) {
			const char *p = placement_name((enum placement)sqlite3_column_int64(s, 0));
			const char *st = sync_state_name((enum sync_state)sqlite3_column_int64(s, 1));

			rc = put(b, "tierfs_files{placement=\"%s\",sync=\"%s\"} %lld\n", p, st,
				 (long long)sqlite3_column_int64(s, 2));
			if (!rc)
				rc = put(&bytes, "tierfs_file_bytes{placement=\"%s\",sync=\"%s\"} %lld\n", p, st,
					 (long long)sqlite3_column_int64(s, 3));
		}
		sqlite3_reset(s);
		if (!rc)
			rc = tbuf_append(b, bytes.data, bytes.len);
		tbuf_release(&bytes);
	}
	return rc;
}

/* ---- HTTP (libmicrohttpd) ---- */

struct metrics_server {
	struct MHD_Daemon *d;
	int (*render)(void *arg, struct tbuf *out);
	void *arg;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	static const char not_found[] = "only /metrics here\n", failed[] = "cannot read the volume\n";
	struct metrics_server *ms = cls;
	struct tbuf b = TBUF_INIT;
	struct MHD_Response *r;
	unsigned status = MHD_HTTP_OK;
	enum MHD_Result ret;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)req_cls;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
	else if (strcmp(url, "/metrics"))
		status = MHD_HTTP_NOT_FOUND;
	else if (ms->render(ms->arg, &b))
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	if (status == MHD_HTTP_OK)
		r = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
	else if (status == MHD_HTTP_INTERNAL_SERVER_ERROR)
		r = MHD_create_response_from_buffer(sizeof(failed) - 1, (void *)failed, MHD_RESPMEM_PERSISTENT);
	else
		r = MHD_create_response_from_buffer(sizeof(not_found) - 1, (void *)not_found, MHD_RESPMEM_PERSISTENT);
	tbuf_release(&b);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type",
				status == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

int metrics_serve(const char *addr, int (*render)(void *arg, struct tbuf *out), void *arg,
		  struct metrics_server **out, char *err, size_t errlen)
{
	struct sockaddr_in sa;
	struct metrics_server *ms;
	char host[64];
	const char *colon = strrchr(addr, ':');
	char *end;
	unsigned long port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	port = colon ? strtoul(colon + 1, &end, 10) : 0;
	if (!colon || (size_t)(colon - addr) >= sizeof(host) || !port || port > 65535 || *end) {
		snprintf(err, errlen, "metrics address '%s' is not IPv4:PORT (e.g. 127.0.0.1:9567)", addr);
		return -EINVAL;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "metrics address '%s' is not IPv4:PORT (e.g. 127.0.0.1:9567)", addr);
		return -EINVAL;
	}
	sa.sin_port = htons((uint16_t)port);
	ms = calloc(1, sizeof(*ms));
	if (!ms)
		return -ENOMEM;
	ms->render = render;
	ms->arg = arg;
	ms->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, answer, ms,
				 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, 16u,
				 MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (!ms->d) {
		snprintf(err, errlen, "cannot serve metrics on '%s' (address in use, or not this host's?)", addr);
		free(ms);
		return -EADDRINUSE;
	}
	*out = ms;
	return 0;
}

void metrics_stop(struct metrics_server *ms)
{
	if (!ms)
		return;
	MHD_stop_daemon(ms->d);
	free(ms);
}
