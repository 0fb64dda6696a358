/* datapool: see include/datapool.h.
 *
 * DESIGN
 * - p->lock protects the ring of ready files (fd and name number), its
 *   count and the stop flag. The filler creates files with no lock held
 *   and pushes them; datapool_take pops one under the lock and renames it
 *   after dropping the lock, so neither the filler's allocation nor the
 *   rename is ever done under p->lock.
 * - Files are "p<16 hex>" in data/pool, numbered from a counter that starts
 *   at 0 every mount (the directory is emptied first, so names never clash).
 */
#include "datapool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define POOL_DIR "pool"

struct slot {
	int fd;
	uint64_t no;
};

struct datapool {
	int datafd;
	int dirfd;             /* data/pool */
	unsigned target;
	pthread_t filler;
	pthread_mutex_t lock;
	pthread_cond_t cv;     /* filler waits here for "below half" or stop */
	struct slot *ring;     /* lock: ready files, ring[head .. head+n) */
	unsigned head, n;      /* lock */
	int stop;              /* lock */
	uint64_t next_no;      /* filler thread only */
};

static void slot_name(uint64_t no, char name[20])
{
	snprintf(name, 20, "p%016llx", (unsigned long long)no);
}

/* Remove every entry of data/pool (leftovers, or the rest at unmount). */
static void empty_dir(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* not dup: own offset */
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd, e->d_name, 0);
	closedir(d);
}

static void *filler_main(void *arg)
{
	struct datapool *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (p->n >= p->target / 2 && p->n > 0) {
			pthread_cond_wait(&p->cv, &p->lock);
			continue;
		}
		while (!p->stop && p->n < p->target) {
			char name[20];
			uint64_t no = p->next_no++;
			int fd;

			pthread_mutex_unlock(&p->lock);
			slot_name(no, name);
			fd = openat(p->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			pthread_mutex_lock(&p->lock);
			if (fd < 0) {
				/* a full disk or the like: CREATE makes its own */
				struct timespec ts;

				log_warn("cannot make pooled data file 'data/%s/%s': %s", POOL_DIR, name,
					 strerror(errno));
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_sec += 5;
				pthread_cond_timedwait(&p->cv, &p->lock, &ts);
				break;
			}
			p->ring[(p->head + p->n) % p->target] = (struct slot){ fd, no };
			p->n++;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int datapool_start(int datafd, unsigned target, struct datapool **out)
{
	struct datapool *p;
	int rc;

	*out = NULL;
	if (!target)
		return 0;
	if (mkdirat(datafd, POOL_DIR, 0700) && errno != EEXIST)
		return -errno;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ring = calloc(target, sizeof(*p->ring));
	p->dirfd = openat(datafd, POOL_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!p->ring || p->dirfd < 0) {
		rc = p->ring ? -errno : -ENOMEM;
		goto fail;
	}
	p->datafd = datafd;
	p->target = target;
	empty_dir(p->dirfd);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cv, NULL);
	rc = -pthread_create(&p->filler, NULL, filler_main, p);
	if (rc) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->lock);
		goto fail;
	}
	*out = p;
	return 0;
fail:
	if (p->dirfd >= 0)
		close(p->dirfd);
	free(p->ring);
	free(p);
	return rc;
}

int datapool_take(struct datapool *p, const char *dname)
{
	struct slot s;
	char name[20];

	if (!p)
		return -EAGAIN;
	pthread_mutex_lock(&p->lock);
	if (!p->n) {
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->lock);
		return -EAGAIN;
	}
	s = p->ring[p->head];
	p->head = (p->head + 1) % p->target;
	p->n--;
	if (p->n < p->target / 2)
		pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->lock);
	slot_name(s.no, name);
	if (renameat(p->dirfd, name, p->datafd, dname)) {
		int rc = -errno;

		close(s.fd);
		unlinkat(p->dirfd, name, 0);
		return rc;
	}
	return s.fd;
}

void datapool_stop(struct datapool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->filler, NULL);
	for (unsigned k = 0; k < p->n; k++)
		close(p->ring[(p->head + k) % p->target].fd);
	empty_dir(p->dirfd);
	close(p->dirfd);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->lock);
	free(p->ring);
	free(p);
}
