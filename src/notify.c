/*
 * notify.c - the notify protocol of systemd (include/notify.h): datagrams
 * to $NOTIFY_SOCKET, and one thread that reports the daemon's status.
 *
 * DESIGN: the reporter is a single thread per process (a process serves
 * one mount). It sleeps on a condition variable so that
 * notify_status_stop() wakes and joins it at once; after the stop returns
 * no STATUS= line is sent any more, so a STOPPING=1 sent next is the last
 * word the service manager hears.
 */
#include "notify.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int notify_enabled(void)
{
	const char *e = getenv("NOTIFY_SOCKET");

	return e && e[0];
}

int notify_send(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	char msg[1024];
	socklen_t salen;
	size_t plen;
	va_list ap;
	int fd, rc = 0;

	if (!path || !path[0])
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static pthread_mutex_t rep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rep_cv = PTHREAD_COND_INITIALIZER;
static struct {
	pthread_t thread;
	int running; /* a thread was started and not joined */
	int stop;    /* protected by rep_lock */
	int interval_s;
	int (*fn)(void *arg, char *buf, size_t len);
	void *arg;
} rep;

static void *status_main(void *unused)
{
	char buf[512];
	int stop = 0;

	(void)unused;
	while (!stop) {
		struct timespec ts;

		if (rep.fn(rep.arg, buf, sizeof(buf)) == 0) {
			pthread_mutex_lock(&rep_lock);
			if (!rep.stop) /* never a STATUS= after the stop */
				notify_send("STATUS=%s", buf);
			pthread_mutex_unlock(&rep_lock);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += rep.interval_s;
		pthread_mutex_lock(&rep_lock);
		while (!rep.stop && pthread_cond_timedwait(&rep_cv, &rep_lock, &ts) != ETIMEDOUT)
			;
		stop = rep.stop;
		pthread_mutex_unlock(&rep_lock);
	}
	return NULL;
}

int notify_status_start(int (*fn)(void *arg, char *buf, size_t len), void *arg, int interval_s)
{
	int rc;

	if (!notify_enabled() || rep.running)
		return 0;
	rep.fn = fn;
	rep.arg = arg;
	rep.interval_s = interval_s > 0 ? interval_s : 5;
	rep.stop = 0;
	rc = pthread_create(&rep.thread, NULL, status_main, NULL);
	if (rc) {
		log_warn("cannot start the status reporter: %s", strerror(rc));
		return -rc;
	}
	rep.running = 1;
	return 0;
}

void notify_status_stop(void)
{
	if (!rep.running)
		return;
	pthread_mutex_lock(&rep_lock);
	rep.stop = 1;
	pthread_cond_broadcast(&rep_cv);
	pthread_mutex_unlock(&rep_lock);
	pthread_join(rep.thread, NULL);
	rep.running = 0;
}
