/*
 * log.c - logging to stderr or syslog, thread safe (one write per line).
 * A line on stderr (the daemon's log file, or the terminal with -f) starts
 * with the time in ISO 8601 UTC with milliseconds and the level:
 *   2026-12-04T17:03:51.123Z tierfs: error: object store failing: ...
 * syslog and journald stamp lines themselves.
 */
#include "log.h"

#include <stdio.h>
#include <syslog.h>
#include <time.h>

static int use_syslog;
static enum log_level max_level = LOG_LVL_INFO;

void log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	use_syslog = 1;
}

void log_set_level(enum log_level lvl)
{
	max_level = lvl;
}

void tfs_log(enum log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[1024];
	va_list ap;

	if (lvl > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (use_syslog) {
		syslog(prio[lvl], "%s", msg);
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32] = "";

		clock_gettime(CLOCK_REALTIME, &ts);
		if (gmtime_r(&ts.tv_sec, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ tierfs: %s: %s\n", when, ts.tv_nsec / 1000000, names[lvl], msg);
	}
}

void tfs_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "tierfs: %s\n", msg);
}
