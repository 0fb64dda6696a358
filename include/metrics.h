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

#endif
