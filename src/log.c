/*
 * log.c - logging to stderr or syslog, thread safe (one write per line).
 * A line on stderr (the daemon's log file, or the terminal with -f) starts
 * with the time in ISO 8601 UTC with milliseconds and the level:
 *   2026-12-04T17:03:51.123Z tierfs: error: object store failing: ...
 * syslog and journald stamp lines themselves.
 *
 * An outage repeats the same error: a message identical to the one before,
 * within a minute, is counted instead of written, and the count is told
 * ("last message repeated N times") before the next different message, or
 * with the first repeat after the minute.
 */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define REPEAT_WINDOW_S 60

static int use_syslog;
static enum log_level max_level = LOG_LVL_INFO;

static pthread_mutex_t rep_lock = PTHREAD_MUTEX_INITIALIZER;
static char rep_msg[1024];          /* protected by rep_lock */
static enum log_level rep_lvl;      /* protected by rep_lock */
static unsigned long rep_count;     /* protected by rep_lock */
static time_t rep_since;            /* protected by rep_lock */

void log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	use_syslog = 1;
}

void log_set_level(enum log_level lvl)
{
	max_level = lvl;
}

int log_level_parse(const char *s, enum log_level *out)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	for (int k = 0; k <= LOG_LVL_DEBUG; k++)
		if (!strcmp(s, names[k])) {
			*out = (enum log_level)k;
			return 0;
		}
	return -1;
}

static void emit(enum log_level lvl, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

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

/* Tell how often the remembered message repeated (rep_lock held). */
static void flush_repeats(void)
{
	char line[64];

	if (!rep_count)
		return;
	snprintf(line, sizeof(line), "last message repeated %lu times", rep_count);
	emit(rep_lvl, line);
	rep_count = 0;
}

void tfs_log(enum log_level lvl, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	time_t now;

	if (lvl > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	now = time(NULL);
	pthread_mutex_lock(&rep_lock);
	if (lvl == rep_lvl && !strcmp(msg, rep_msg) && now - rep_since < REPEAT_WINDOW_S) {
		rep_count++;
		pthread_mutex_unlock(&rep_lock);
		return;
	}
	flush_repeats();
	emit(lvl, msg);
	snprintf(rep_msg, sizeof(rep_msg), "%s", msg);
	rep_lvl = lvl;
	rep_since = now;
	pthread_mutex_unlock(&rep_lock);
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
