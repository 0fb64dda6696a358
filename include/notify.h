/*
 * notify.h - systemd's service notification protocol (sd_notify(3),
 * "Type=notify" services) without libsystemd: each message is one datagram
 * of "VAR=VALUE" lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET
 * (a path, or an abstract socket when it starts with '@'). Without
 * NOTIFY_SOCKET every call does nothing, so a daemon calls these whether
 * or not systemd started it.
 *
 * The mount daemons send READY=1 once the mount is live, STATUS= lines
 * from a reporter thread (notify_status_start) while they serve, and
 * STOPPING=1 when the mount goes away, before their final writes.
 */
#ifndef TIERFS_NOTIFY_H
#define TIERFS_NOTIFY_H

#include <stddef.h>

/* Non-zero when $NOTIFY_SOCKET is set (a service manager listens). */
int notify_enabled(void);

/* Send one message (printf format). 0 (also when not enabled) or -errno. */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Start a thread that sends "STATUS=<text>" now and then every interval_s
 * seconds, the text from fn(arg, buf, len) (fn returns 0, or non-zero to
 * skip this round). Only one reporter per process; nothing happens when
 * not enabled. notify_status_stop() ends it (waits for it) and may be
 * called when none runs.
 */
int notify_status_start(int (*fn)(void *arg, char *buf, size_t len), void *arg, int interval_s);
void notify_status_stop(void);

#endif
