/*
 * metrics.h - the volume's metrics in the Prometheus text exposition format
 * (version 0.0.4), from the same records `tierfs status` shows: the store
 * requests the sync engine made per direction and result (health table),
 * the upload queue, the files that do not sync, files and bytes per
 * placement and sync state. Names follow Prometheus' conventions: base
 * units, `_total` for counters, `_seconds` for times, labels for the
 * dimension.
 */
#ifndef TIERFS_METRICS_H
#define TIERFS_METRICS_H

#include "meta.h"
#include "util.h"

/* Append the metrics of the volume whose metadata store is m to out (the
 * caller holds m's lock, if it has one). 0 or a negative errno. */
int metrics_render(struct meta *m, struct tbuf *out);

/*
 * Serve GET /metrics over HTTP (libmicrohttpd, its own thread) on addr,
 * "IPv4:PORT" (e.g. 127.0.0.1:9567). Each scrape calls render(arg, out),
 * which appends the text. Errors with a message in err. Stop and free with
 * metrics_stop().
 */
struct metrics_server;
int metrics_serve(const char *addr, int (*render)(void *arg, struct tbuf *out), void *arg,
		  struct metrics_server **out, char *err, size_t errlen);
void metrics_stop(struct metrics_server *ms);

#endif
