/* fuse_io: see fuse_io.h. Kept apart from fs.c because it needs the kernel's
 * <linux/fuse.h> wire structures, which libfuse's headers do not expose. */
#include "fuse_io.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <linux/fuse.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "log.h"

/* The device number of the mount at mountpoint, from /proc/self/mountinfo
 * (the last entry for it: the newest mount). */
static int mount_devno(const char *mountpoint, unsigned *maj, unsigned *min)
{
	char real[PATH_MAX], line[PATH_MAX * 2 + 256], mp[PATH_MAX + 1];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int found = 0;

	if (!f || !realpath(mountpoint, real)) {
		if (f)
			fclose(f);
		return -ENOENT;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned a, b;

		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... (octal escapes in paths
		 * are left as they are: such a mount point just gets no match) */
		if (sscanf(line, "%*u %*u %u:%u %*s %4096s", &a, &b, mp) == 3 && !strcmp(mp, real)) {
			*maj = a;
			*min = b;
			found = 1;
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

/* Raise the mount's read-ahead (fuse_io.h, 1). */
static void set_readahead(const char *mountpoint, unsigned kb)
{
	unsigned maj, min;
	char path[96];
	FILE *f;

	/* Not stat(mountpoint): this runs in a request thread of the mount. */
	if (mount_devno(mountpoint, &maj, &min))
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
	f = fopen(path, "we");
	int ok = f != NULL;

	if (f) {
		ok = fprintf(f, "%u\n", kb) > 0;
		if (fclose(f)) /* the write happens here */
			ok = 0;
	}
	if (!ok) {
		log_info("cannot set the mount's read-ahead to %u KiB (%s)", kb, path);
		return;
	}
	log_info("read-ahead %u KiB", kb);
}


/* The parts of the FUSE protocol newer than the system's <linux/fuse.h>
 * (Debian 12 ships 6.1's; passthrough is 7.40, kernel 6.9). */
#define TFS_INIT_EXT (1u << 30)               /* flags: flags2 is valid */
#define TFS_PASSTHROUGH2 (1u << (37 - 32))    /* flags2: FUSE_PASSTHROUGH */
#define TFS_FOPEN_KEEP_CACHE (1u << 1)
#define TFS_FOPEN_PASSTHROUGH (1u << 7)
struct tfs_init_in_head {   /* fuse_init_in up to flags2 */
	uint32_t major, minor, max_readahead, flags, flags2;
};
struct tfs_init_out_head {  /* fuse_init_out up to max_stack_depth */
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2, max_stack_depth;
};
struct tfs_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};
struct tfs_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define TFS_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct tfs_backing_map)
#define TFS_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)
_Static_assert(offsetof(struct tfs_init_out_head, flags2) == 32, "fuse_init_out layout");
_Static_assert(sizeof(struct tfs_open_out) == 16, "fuse_open_out layout");

/* FUSE over io_uring (protocol 7.42, kernel 6.14; not in Debian 12's headers). */
#define TFS_OVER_IO_URING2 (1u << (41 - 32)) /* flags2: FUSE_OVER_IO_URING */
#define TFS_URING_HDR_SZ 128                  /* FUSE_URING_IN_OUT_HEADER_SZ */
#define TFS_URING_OP_SZ 128                   /* FUSE_URING_OP_IN_OUT_SZ */
#define TFS_URING_CMD_REGISTER 1
#define TFS_URING_CMD_COMMIT_AND_FETCH 2
struct tfs_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};
struct tfs_uring_req_header {
	char in_out[TFS_URING_HDR_SZ];  /* fuse_in_header, then fuse_out_header */
	char op_in[TFS_URING_OP_SZ];    /* the request's first argument */
	struct tfs_uring_ent_in_out ent;
};
struct tfs_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};
_Static_assert(sizeof(struct tfs_uring_req_header) == 288, "fuse_uring_req_header layout");
_Static_assert(sizeof(struct tfs_uring_cmd_req) == 24, "fuse_uring_cmd_req layout");

static __thread int next_backing; /* fuse_io_passthrough_next() */

void fuse_io_passthrough_next(int id)
{
	next_backing = id;
}

int fuse_io_backing_open(struct fuse_io *io, int fd)
{
	struct tfs_backing_map map = { fd, 0, 0 };
	int id = ioctl(io->devfd, TFS_DEV_IOC_BACKING_OPEN, &map);

	return id < 0 ? -errno : id;
}

void fuse_io_backing_close(struct fuse_io *io, int id)
{
	uint32_t v = (uint32_t)id;

	if (ioctl(io->devfd, TFS_DEV_IOC_BACKING_CLOSE, &v))
		log_warn("cannot release passthrough backing file %d: %s", id, strerror(errno));
}

/* read(2) with INIT noted; -1 and errno as libfuse expects. */
static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fuse_io *io = userdata;
	ssize_t n = read(fd, buf, len);

	/* INIT is the first request of a connection; libfuse reads it with
	 * read() (splice needs the negotiated protocol), so it passes here. */
	/* (kernels before 5.17 send a 16-byte fuse_init_in: flags is in it) */
	if (n >= (ssize_t)(sizeof(struct fuse_in_header) + offsetof(struct fuse_init_in, flags) +
			   sizeof(uint32_t)) &&
	    atomic_load(&io->init_unique) == 0) {
		const struct fuse_in_header *h = buf;
		const struct fuse_init_in *in = (const void *)(h + 1);

		if (h->opcode == FUSE_INIT) {
			const struct tfs_init_in_head *in2 = (const void *)(h + 1);

			if (n >= (ssize_t)(sizeof(*h) + sizeof(*in2)) && (in2->flags & TFS_INIT_EXT)) {
				atomic_store(&io->pt_offered, (in2->flags2 & TFS_PASSTHROUGH2) != 0);
				atomic_store(&io->uring_offered, (in2->flags2 & TFS_OVER_IO_URING2) != 0);
			}
			atomic_store(&io->offered, (in->flags & FUSE_HANDLE_KILLPRIV_V2) != 0);
			atomic_store(&io->init_unique, h->unique);
		}
	}
	return n; /* libfuse wants -1 and errno, as from read(2) */
}

/* ---- FUSE over io_uring (fuse_io.h, 4) ---- */

/* Room in front of the payload for the request's header and first
 * argument, so that the three make one /dev/fuse-style message in place. */
#define UR_PREFIX 256
/* Threads (each with one ring entry and a max_write payload buffer) per
 * online CPU: 16 in all, as the /dev/fuse loop allows, but at least 4 and at
 * most 8 per CPU, since the kernel never moves a request to another CPU's
 * queue. An entry is only offered to the kernel while its thread is free, so
 * a request waits behind a slow one only when all its queue's threads are
 * busy. Possible CPUs that are not online get one thread (the kernel wants
 * every queue to have an entry before it uses any). */
#define UR_THREADS_TOTAL 16
#define UR_THREADS_MIN 4
#define UR_THREADS_MAX 8

struct ur_ent {
	struct fuse_io *io;
	struct fuse_uring *ur;
	struct io_uring ring;
	pthread_t thread;
	int qid, started, ring_ok;
	struct tfs_uring_req_header *hdr; /* iov[0] */
	uint8_t *buf;                     /* UR_PREFIX bytes, then the payload (iov[1]) */
	struct iovec iov[2];
	atomic_uint_fast64_t unique;      /* the request being served, 0: none */
	pthread_mutex_t mu;               /* replied, for replies from other threads */
	pthread_cond_t cv;
	int replied;
};

struct fuse_uring {
	struct ur_ent *ents;
	int nents;
	atomic_int stop;
	atomic_int warned;  /* a queue's failure was logged */
	size_t payload_max;
	pthread_mutex_t go_mu; /* go: the INIT reply is out, register now */
	pthread_cond_t go_cv;
	int go;
};

static __thread struct ur_ent *ur_current; /* the entry this thread serves */

int fuse_io_uring_planned(const struct fuse_io *io)
{
	return io->uring_want && atomic_load(&io->uring_offered);
}

/* Put libfuse's reply (out header, then the arguments) into e's entry. */
static ssize_t ur_take_reply(struct ur_ent *e, const struct iovec *iov, int count)
{
	struct fuse_out_header *oh = (void *)e->hdr->in_out;
	size_t total = 0, hdr_done = 0, pay = 0;

	for (int k = 0; k < count; k++)
		total += iov[k].iov_len;
	if (total < sizeof(*oh) || total - sizeof(*oh) > e->ur->payload_max) {
		errno = EINVAL;
		return -1;
	}
	for (int k = 0; k < count; k++) {
		const uint8_t *p = iov[k].iov_base;
		size_t len = iov[k].iov_len;

		if (hdr_done < sizeof(*oh)) {
			size_t n = len < sizeof(*oh) - hdr_done ? len : sizeof(*oh) - hdr_done;

			memcpy((uint8_t *)oh + hdr_done, p, n);
			hdr_done += n;
			p += n;
			len -= n;
		}
		if (len) {
			memcpy(e->buf + UR_PREFIX + pay, p, len);
			pay += len;
		}
	}
	oh->len = (uint32_t)total;
	e->hdr->ent.payload_sz = (uint32_t)pay;
	return (ssize_t)total;
}

/* Answer the request in e's entry with EIO instead of its reply. */
static void ur_take_eio(struct ur_ent *e, uint64_t unique)
{
	struct fuse_out_header eh = { sizeof(eh), -EIO, unique };
	struct iovec ev = { &eh, sizeof(eh) };

	ur_take_reply(e, &ev, 1);
}

/* A reply for a request served through a ring: taken into its entry
 * (returns its length), else -2 (not a ring request: write it to fd). */
static ssize_t ur_reply(struct fuse_io *io, const struct iovec *iov, int count)
{
	const struct fuse_out_header *oh = iov[0].iov_base;
	struct ur_ent *e = ur_current;
	struct fuse_uring *ur;
	ssize_t n;

	/* notifications (unique 0) always go to /dev/fuse */
	if (count < 1 || iov[0].iov_len < sizeof(*oh) || oh->unique == 0)
		return -2;
	if (!e || atomic_load(&e->unique) != oh->unique) {
		/* answered from another thread than the one serving it */
		e = NULL;
		ur = atomic_load(&io->ur);
		for (int k = 0; ur && k < ur->nents; k++)
			if (atomic_load(&ur->ents[k].unique) == oh->unique) {
				e = &ur->ents[k];
				break;
			}
		if (!e)
			return -2;
	}
	pthread_mutex_lock(&e->mu);
	if (e->replied) {
		pthread_mutex_unlock(&e->mu);
		errno = ENOENT; /* as /dev/fuse says to a second reply */
		return -1;
	}
	n = ur_take_reply(e, iov, count);
	if (n < 0) {
		/* too big for the entry: the request fails instead */
		log_error("io_uring: a reply does not fit its ring entry; EIO");
		ur_take_eio(e, oh->unique);
	}
	e->replied = 1;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	return n;
}

/* Queue e's command (register, or commit the reply and fetch the next). */
static int ur_queue_cmd(struct ur_ent *e, int op, uint64_t commit_id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
	struct tfs_uring_cmd_req *cmd;

	if (!sqe)
		return -EBUSY;
	if (op == TFS_URING_CMD_REGISTER)
		io_uring_prep_rw(IORING_OP_URING_CMD, sqe, e->io->devfd, e->iov, 2, 0);
	else
		io_uring_prep_rw(IORING_OP_URING_CMD, sqe, e->io->devfd, NULL, 0, 0);
	sqe->cmd_op = (uint32_t)op;
	cmd = (void *)sqe->cmd;
	memset(cmd, 0, sizeof(*cmd));
	cmd->commit_id = commit_id;
	cmd->qid = (uint16_t)e->qid;
	io_uring_sqe_set_data(sqe, e);
	return 0;
}

/* Serve the request in e's entry through libfuse; the reply lands in the
 * entry (ur_reply). */
static void ur_serve(struct ur_ent *e)
{
	struct fuse_in_header ih;
	uint32_t pay = e->hdr->ent.payload_sz;
	size_t arg0;
	uint8_t *msg;
	struct fuse_buf fb;

	memcpy(&ih, e->hdr->in_out, sizeof(ih));
	/* The kernel puts the first argument in op_in and the rest in the
	 * payload; the header's len is the whole /dev/fuse message. */
	if (ih.len < sizeof(ih) + (uint64_t)pay || ih.len - sizeof(ih) - pay > TFS_URING_OP_SZ ||
	    pay > e->ur->payload_max) {
		log_error("io_uring: malformed request (opcode %u, len %u, payload %u)", ih.opcode,
			  ih.len, pay);
		ur_take_eio(e, ih.unique);
		return;
	}
	arg0 = ih.len - sizeof(ih) - pay;
	msg = e->buf + UR_PREFIX - arg0 - sizeof(ih);
	memcpy(msg, &ih, sizeof(ih));
	memcpy(msg + sizeof(ih), e->hdr->op_in, arg0);
	memset(&fb, 0, sizeof(fb));
	fb.mem = msg;
	fb.size = ih.len;
	pthread_mutex_lock(&e->mu);
	e->replied = 0;
	pthread_mutex_unlock(&e->mu);
	atomic_store(&e->unique, ih.unique);
	ur_current = e;
	fuse_session_process_buf(e->io->se, &fb);
	ur_current = NULL;
	/* Replies come from this thread; wait for one sent from elsewhere. */
	pthread_mutex_lock(&e->mu);
	while (!e->replied && !atomic_load(&e->ur->stop))
		pthread_cond_wait(&e->cv, &e->mu);
	pthread_mutex_unlock(&e->mu);
	atomic_store(&e->unique, 0);
	atomic_fetch_add(&e->io->uring_served, 1);
}

static void ur_warn(struct fuse_uring *ur, int qid, const char *what, int err)
{
	if (!atomic_exchange(&ur->warned, 1))
		log_error("io_uring: queue %d: %s: %s (logged once)", qid, what, strerror(-err));
}

static void *ur_main(void *arg)
{
	struct ur_ent *e = arg;
	struct fuse_uring *ur = e->ur;
	struct __kernel_timespec ts = { 1, 0 };
	cpu_set_t cpus;
	int rc, served = 0, retries = 0;

	CPU_ZERO(&cpus);
	CPU_SET(e->qid, &cpus);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus); /* else unpinned */
	/* the kernel takes registrations once it has the INIT reply */
	pthread_mutex_lock(&ur->go_mu);
	while (!ur->go && !atomic_load(&ur->stop))
		pthread_cond_wait(&ur->go_cv, &ur->go_mu);
	pthread_mutex_unlock(&ur->go_mu);
	rc = ur_queue_cmd(e, TFS_URING_CMD_REGISTER, 0);
	while (!rc && !atomic_load(&ur->stop)) {
		struct io_uring_cqe *cqe = NULL;
		int res;

		rc = io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, &ts, NULL);
		if (rc == -ETIME || rc == -EINTR || (rc >= 0 && !cqe && io_uring_peek_cqe(&e->ring, &cqe))) {
			rc = 0;
			continue; /* nothing yet (or only our submission went out) */
		}
		if (rc < 0) {
			/* the submission did not go out (EBUSY, EAGAIN, ENOMEM):
			 * once the rings are complete the kernel sends this
			 * queue's requests nowhere else, so keep the entry */
			ur_warn(ur, e->qid, "submitting", rc);
			usleep(10000);
			rc = 0;
			continue;
		}
		res = cqe->res;
		io_uring_cqe_seen(&e->ring, cqe);
		if (res == -ENOTCONN || res == -ECANCELED || res == -ENODEV) {
			rc = res; /* the mount is going away */
			break;
		}
		if (res < 0) {
			/* A refused registration (the rings then never complete:
			 * requests stay on /dev/fuse), or an entry the kernel
			 * dropped after a commit: registered again, a few times. */
			ur_warn(ur, e->qid, served ? "committing a reply" : "registering", res);
			if (!served || ++retries > 3) {
				rc = res;
				break;
			}
			usleep(10000);
			rc = ur_queue_cmd(e, TFS_URING_CMD_REGISTER, 0);
			continue;
		}
		served = 1;
		retries = 0;
		ur_serve(e);
		rc = ur_queue_cmd(e, TFS_URING_CMD_COMMIT_AND_FETCH, e->hdr->ent.commit_id);
	}
	if (!rc)
		io_uring_submit(&e->ring); /* a reply queued as stop came still goes out */
	return NULL; /* the ring is freed by fuse_io_detach */
}

/* Highest CPU number + 1 in a sysfs CPU list ("0-3,6,8-9"), with each CPU
 * set in *set when set is not NULL; 0 when the file cannot be read. */
static int cpu_list(const char *path, cpu_set_t *set)
{
	char buf[4096], *p = buf;
	FILE *f = fopen(path, "re");
	int top = 0;

	if (set)
		CPU_ZERO(set);
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	while (*p >= '0' && *p <= '9') {
		char *end;
		long a = strtol(p, &end, 10), b = a;

		if (*end == '-')
			b = strtol(end + 1, &end, 10);
		for (long c = a; c <= b && c < CPU_SETSIZE; c++)
			if (set)
				CPU_SET((int)c, set);
		if (b + 1 > top)
			top = (int)(b + 1);
		if (*end != ',')
			break;
		p = end + 1;
	}
	return top;
}

static void ur_free(struct fuse_uring *ur);

/*
 * Everything the rings need, made before the INIT reply goes out: the
 * reply then says FUSE_OVER_IO_URING, which ties the connection to its
 * rings (turning enable_uring off later no longer breaks them) but makes the
 * kernel hold every request until all queues have an entry, so nothing that
 * can fail may be left for after it: the entries, their rings and their
 * threads (which wait for ur_go() to register) exist first, or the reply
 * does not mention the rings and requests stay on /dev/fuse. A refused
 * registration makes the kernel give up the rings and use /dev/fuse.
 * 0, or -1 (nothing left behind).
 */
static int ur_prepare(struct fuse_io *io, uint32_t max_write, uint32_t max_pages)
{
	/* The kernel makes a queue per possible CPU (not per present one,
	 * which is what get_nprocs_conf() counts) and sends a request to the
	 * queue of the CPU it was made on. */
	int ncpu = cpu_list("/sys/devices/system/cpu/possible", NULL), online = 0, n = 0;
	int started = 0, per_cpu;
	cpu_set_t live; /* online CPUs */
	struct fuse_uring *ur;
	size_t pay = max_write, page = (size_t)sysconf(_SC_PAGESIZE);

	if (ncpu <= 0 || ncpu > CPU_SETSIZE || !cpu_list("/sys/devices/system/cpu/online", &live)) {
		log_error("io_uring: cannot read this machine's CPUs; requests stay on /dev/fuse");
		return -1;
	}
	if ((size_t)max_pages * page > pay)
		pay = (size_t)max_pages * page;
	if (pay < 8192) /* FUSE_MIN_READ_BUFFER */
		pay = 8192;
	ur = calloc(1, sizeof(*ur));
	if (!ur)
		goto fail;
	pthread_mutex_init(&ur->go_mu, NULL);
	pthread_cond_init(&ur->go_cv, NULL);
	for (int q = 0; q < ncpu; q++)
		online += CPU_ISSET(q, &live) != 0;
	per_cpu = UR_THREADS_TOTAL / (online > 0 ? online : 1);
	per_cpu = per_cpu < UR_THREADS_MIN ? UR_THREADS_MIN : per_cpu > UR_THREADS_MAX ? UR_THREADS_MAX : per_cpu;
	/* every possible CPU needs an entry before the kernel uses the ring;
	 * CPUs that are not online get one thread */
	for (int q = 0; q < ncpu; q++)
		n += CPU_ISSET(q, &live) ? per_cpu : 1;
	ur->ents = calloc((size_t)n, sizeof(*ur->ents));
	if (!ur->ents)
		goto fail;
	ur->payload_max = pay;
	for (int q = 0, k = 0; q < ncpu; q++) {
		int per = CPU_ISSET(q, &live) ? per_cpu : 1;

		for (int t = 0; t < per; t++, k++) {
			struct ur_ent *e = &ur->ents[k];

			e->io = io;
			e->ur = ur;
			e->qid = q;
			pthread_mutex_init(&e->mu, NULL);
			pthread_cond_init(&e->cv, NULL);
			ur->nents = k + 1; /* what fail: frees */
			if (posix_memalign((void **)&e->hdr, 4096, sizeof(*e->hdr)) ||
			    posix_memalign((void **)&e->buf, 4096, UR_PREFIX + pay))
				goto fail;
			memset(e->hdr, 0, sizeof(*e->hdr));
			e->iov[0] = (struct iovec){ e->hdr, sizeof(*e->hdr) };
			e->iov[1] = (struct iovec){ e->buf + UR_PREFIX, pay };
			/* All rings are made here and freed together at detach, so
			 * none is unmapped while others are set up (liburing maps
			 * them with raw syscalls, which ThreadSanitizer cannot see).
			 * No DEFER_TASKRUN or COOP_TASKRUN: with them the wakeup of
			 * a waiting ring thread comes later (empty creates 11.7k/s
			 * against 13.8k/s without, same disk). */
			{
				struct io_uring_params p;
				int rc;

				memset(&p, 0, sizeof(p));
				p.flags = IORING_SETUP_SQE128;
				rc = io_uring_queue_init_params(4, &e->ring, &p);
				if (rc) {
					log_error("io_uring: cannot create a ring: %s", strerror(-rc));
					goto fail;
				}
				e->ring_ok = 1;
			}
		}
	}
	for (int k = 0; k < ur->nents; k++) {
		if (pthread_create(&ur->ents[k].thread, NULL, ur_main, &ur->ents[k])) {
			log_error("io_uring: cannot start a ring thread");
			goto fail;
		}
		ur->ents[k].started = 1;
		started++;
	}
	atomic_store(&io->ur, ur);
	log_info("FUSE over io_uring: %d queues, %d threads", ncpu, started);
	return 0;
fail:
	log_error("io_uring: cannot set up the rings; requests stay on /dev/fuse");
	ur_free(ur);
	return -1;
}

/* The INIT reply is out: the threads register their entries. */
static void ur_go(struct fuse_uring *ur)
{
	pthread_mutex_lock(&ur->go_mu);
	ur->go = 1;
	pthread_cond_broadcast(&ur->go_cv);
	pthread_mutex_unlock(&ur->go_mu);
}

/* Stop and join the threads, free the rings and buffers. */
static void ur_free(struct fuse_uring *ur)
{
	if (!ur)
		return;
	atomic_store(&ur->stop, 1);
	pthread_mutex_lock(&ur->go_mu);
	pthread_cond_broadcast(&ur->go_cv);
	pthread_mutex_unlock(&ur->go_mu);
	for (int k = 0; k < ur->nents; k++) {
		struct ur_ent *e = &ur->ents[k];

		pthread_mutex_lock(&e->mu);
		pthread_cond_signal(&e->cv);
		pthread_mutex_unlock(&e->mu);
	}
	for (int k = 0; k < ur->nents; k++)
		if (ur->ents[k].started)
			pthread_join(ur->ents[k].thread, NULL);
	for (int k = 0; k < ur->nents; k++) {
		if (ur->ents[k].ring_ok)
			io_uring_queue_exit(&ur->ents[k].ring);
		pthread_mutex_destroy(&ur->ents[k].mu);
		pthread_cond_destroy(&ur->ents[k].cv);
		free(ur->ents[k].hdr);
		free(ur->ents[k].buf);
	}
	pthread_mutex_destroy(&ur->go_mu);
	pthread_cond_destroy(&ur->go_cv);
	free(ur->ents);
	free(ur);
}

void fuse_io_detach(struct fuse_io *io)
{
	struct fuse_uring *ur = atomic_load(&io->ur);

	if (!ur)
		return;
	atomic_store(&io->ur, NULL);
	ur_free(ur);
	log_info("FUSE over io_uring: %llu requests served",
		 (unsigned long long)atomic_load(&io->uring_served));
}

/* writev(2) with the INIT reply amended; -1 and errno as libfuse expects. */
static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fuse_io *io = userdata;
	uint64_t init = atomic_load(&io->init_unique);
	int is_init = 0;
	uint32_t max_write = 0, max_pages = 0;
	ssize_t n;

	if (next_backing) {
		/* the OPEN or CREATE reply fuse_io_passthrough_next() asked for:
		 * fuse_open_out ends the reply's argument */
		if (count >= 2 && iov[0].iov_len == sizeof(struct fuse_out_header) &&
		    ((const struct fuse_out_header *)iov[0].iov_base)->error == 0 &&
		    iov[1].iov_len >= sizeof(struct tfs_open_out)) {
			struct tfs_open_out *o = (void *)((char *)iov[1].iov_base + iov[1].iov_len -
							  sizeof(struct tfs_open_out));

			o->open_flags = (o->open_flags & ~TFS_FOPEN_KEEP_CACHE) | TFS_FOPEN_PASSTHROUGH;
			o->backing_id = next_backing;
		}
		next_backing = 0;
	}

	if (init && !atomic_load(&io->init_replied) && count >= 1 &&
	    iov[0].iov_len == sizeof(struct fuse_out_header)) {
		const struct fuse_out_header *oh = iov[0].iov_base;

		is_init = oh->unique == init;
		if (is_init && oh->error == 0 && io->want && atomic_load(&io->offered) && count >= 2 &&
		    iov[1].iov_len >= offsetof(struct fuse_init_out, max_background)) {
			struct fuse_init_out *out = iov[1].iov_base;

			out->flags |= FUSE_HANDLE_KILLPRIV_V2;
			atomic_store(&io->negotiated, 1);
		}
		if (is_init && oh->error == 0 && count >= 2 &&
		    iov[1].iov_len >= sizeof(struct tfs_init_out_head)) {
			struct tfs_init_out_head *out = iov[1].iov_base;

			max_write = out->max_write;
			max_pages = out->max_pages;
			/* announce the rings only once they exist (ur_prepare) */
			if (fuse_io_uring_planned(io) && max_write &&
			    !atomic_exchange(&io->uring_started, 1) &&
			    ur_prepare(io, max_write, max_pages) == 0) {
				out->flags |= TFS_INIT_EXT;
				out->flags2 |= TFS_OVER_IO_URING2;
			}
		}
		if (is_init && oh->error == 0 && io->pt_want && atomic_load(&io->pt_offered) &&
		    count >= 2 && iov[1].iov_len >= sizeof(struct tfs_init_out_head)) {
			struct tfs_init_out_head *out = iov[1].iov_base;

			if (!(out->flags & FUSE_WRITEBACK_CACHE)) {
				out->flags |= TFS_INIT_EXT;
				out->flags2 |= TFS_PASSTHROUGH2;
				out->max_stack_depth = 1;
				atomic_store(&io->pt_negotiated, 1);
			}
		}
	}
	n = ur_reply(io, iov, count);
	if (n != -2)
		return n;
	n = writev(fd, iov, count); /* -1 and errno, as libfuse wants */
	if (is_init && n >= 0) {
		int e = errno;

		atomic_store(&io->init_replied, 1);
		if (io->readahead_kb && io->mountpoint)
			set_readahead(io->mountpoint, io->readahead_kb);
		/* the kernel has taken the INIT reply: rings can register now */
		if (atomic_load(&io->ur))
			ur_go(atomic_load(&io->ur));
		errno = e;
	}
	return n;
}

/* No splice callbacks: libfuse then calls splice(2) itself. */
static const struct fuse_custom_io io_ops = {
	.read = io_read,
	.writev = io_writev,
};

int fuse_io_attach(struct fuse_session *se, struct fuse_io *io)
{
	io->devfd = fuse_session_fd(se);
	io->se = se;
	return fuse_session_custom_io(se, &io_ops, fuse_session_fd(se)) ? -1 : 0;
}
