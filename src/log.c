/*
 * log.c - logging to stderr or syslog, thread safe (one write per line).
 */
#include "log.h"

#include <stdio.h>
#include <syslog.h>

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
	if (use_syslog)
		syslog(prio[lvl], "%s", msg);
	else
		fprintf(stderr, "tierfs: %s: %s\n", names[lvl], msg);
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
