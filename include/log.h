/*
 * log.h - one logging interface for the daemon and the CLI.
 *
 * Messages go to stderr (foreground, CLI, the daemon's log file) with the
 * time and level, or syslog. A message identical to the one before within
 * a minute is counted, not repeated (log.c).
 * tfs_die() and tfs_error() in the CLI follow git's style: lowercase,
 * no final period, names quoted, prefixed with "tierfs: ".
 */
#ifndef TIERFS_LOG_H
#define TIERFS_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Send messages to syslog instead of stderr (after daemonising). */
void log_use_syslog(const char *ident);
/* Messages above this level are dropped; default LOG_LVL_INFO. */
void log_set_level(enum log_level lvl);
/* "error", "warning", "info", "debug" -> level; 0, or -1 when unknown. */
int log_level_parse(const char *s, enum log_level *out);

void tfs_log(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) tfs_log(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) tfs_log(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) tfs_log(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) tfs_log(LOG_LVL_DEBUG, __VA_ARGS__)

/* CLI: print "tierfs: MSG" to stderr. */
void tfs_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
