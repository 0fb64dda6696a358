/* fuse_io: the /dev/fuse transport of the home and cloud mounts, with two
 * things libfuse 3.14 cannot do.
 *
 * 1. Read-ahead. The kernel gives a FUSE mount 128 KiB of read-ahead,
 * lowered to what the INIT reply says; only the mount's bdi in sysfs raises
 * it. Once the INIT reply is out, fuse_io writes readahead_kb there (root
 * only; best effort, logged).
 *
 * 2. FUSE_HANDLE_KILLPRIV_V2 (home mount only, io->want).
 *
 * Without that flag the kernel asks the daemon for "security.capability"
 * before every write() (FUSE never sets SB_NOSEC otherwise): one round trip
 * per 4 KiB random write. libfuse learnt the flag in 3.16; with 3.14 we add
 * it ourselves to the INIT reply when the kernel offered it, and the daemon
 * then owns clearing setuid/setgid on write, truncate, chown and O_TRUNC
 * (see fs.c, "killpriv").
 *
 * 3. FUSE passthrough (kernel 6.9 and later, home mount only, io->pt_want).
 *
 * The kernel can serve read, write and mmap of a FUSE file from a local
 * "backing" file without asking the daemon. libfuse learnt it in 3.17; with
 * 3.14 we add FUSE_PASSTHROUGH to the INIT reply when the kernel offered it
 * and write-back caching is off (the kernel refuses the two together), and
 * patch FOPEN_PASSTHROUGH and the backing id into an OPEN or CREATE reply the
 * daemon marked with fuse_io_passthrough_next() on the same thread. Backing
 * ids come from fuse_io_backing_open() (an ioctl on /dev/fuse, root only).
 *
 * 4. FUSE over io_uring (kernel 6.14 and later, when the fuse module's
 * enable_uring parameter is on; io->uring_want).
 *
 * Requests then reach the daemon through per-CPU io_uring queues instead of
 * read(2) on /dev/fuse: a request made on CPU n is served by a thread pinned
 * to CPU n, which answers it and fetches the next in one io_uring_enter().
 * The caller and the daemon no longer bounce between the two CPUs of a
 * small VM for every request; that bounce, not the daemon's work, was most
 * of the cost of a create. libfuse learnt it in 3.18; with 3.14 fuse_io runs
 * the rings itself: a request is reassembled into the /dev/fuse message
 * layout and handed to fuse_session_process_buf(), and the reply libfuse
 * writes comes back here (io_writev) and goes into the ring entry. FORGET,
 * INTERRUPT and notifications stay on /dev/fuse, as the kernel wants.
 *
 * Everything else is the plain read/writev libfuse would have done. */
#ifndef TIERFS_FUSE_IO_H
#define TIERFS_FUSE_IO_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <stdatomic.h>

struct fuse_io {
	atomic_uint_fast64_t init_unique; /* unique of the kernel's INIT, 0 until seen */
	atomic_int offered;               /* the kernel offered FUSE_HANDLE_KILLPRIV_V2 */
	atomic_int negotiated;            /* our INIT reply carried it */
	atomic_int init_replied;          /* the INIT reply has been written */
	int want;                         /* set before mount: ask for it */
	const char *mountpoint;           /* set before mount, for read-ahead */
	unsigned readahead_kb;            /* set before mount; 0: kernel default */
	int pt_want;                      /* set before mount: ask for passthrough */
	atomic_int pt_offered;            /* the kernel offered FUSE_PASSTHROUGH */
	atomic_int pt_negotiated;         /* our INIT reply carried it */
	int devfd;                        /* /dev/fuse, for the backing ioctls */
	int uring_want;                   /* set before mount: serve over io_uring when offered */
	atomic_int uring_offered;         /* the kernel offered FUSE_OVER_IO_URING */
	atomic_int uring_started;         /* the rings are being registered */
	atomic_uint_fast64_t uring_served; /* requests answered through the rings */
	struct fuse_session *se;          /* set by fuse_io_attach */
	_Atomic(struct fuse_uring *) ur;  /* the rings, once started */
};

struct fuse_session;

/* Run se over this transport; call after fuse_session_mount(). libfuse
 * hands the callbacks the session's userdata, so that userdata must begin
 * with its struct fuse_io (io here), fields set (users static-assert the
 * offset). 0 or -1. */
int fuse_io_attach(struct fuse_session *se, struct fuse_io *io);

/* Stop the io_uring threads and free the rings (if any). Call after the
 * session loop has ended, before fuse_session_destroy(). */
void fuse_io_detach(struct fuse_io *io);
/* In the filesystem's init callback: will requests come over io_uring?
 * (Splicing replies to /dev/fuse must then be off: ring replies are
 * written into the ring, never into the device.) */
int fuse_io_uring_planned(const struct fuse_io *io);

/* Register fd (a local file) as a backing file: its id (> 0) for
 * fuse_io_passthrough_next(), or -errno. */
int fuse_io_backing_open(struct fuse_io *io, int fd);
void fuse_io_backing_close(struct fuse_io *io, int id);
/* The next OPEN or CREATE reply this thread sends opens the file in
 * passthrough mode on backing file id (0: a normal open). */
void fuse_io_passthrough_next(int id);

#endif
