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
};

struct fuse_session;

/* Run se over this transport; call after fuse_session_mount(). libfuse
 * hands the callbacks the session's userdata, so that userdata must begin
 * with its struct fuse_io (io here), fields set (users static-assert the
 * offset). 0 or -1. */
int fuse_io_attach(struct fuse_session *se, struct fuse_io *io);

/* Register fd (a local file) as a backing file: its id (> 0) for
 * fuse_io_passthrough_next(), or -errno. */
int fuse_io_backing_open(struct fuse_io *io, int fd);
void fuse_io_backing_close(struct fuse_io *io, int id);
/* The next OPEN or CREATE reply this thread sends opens the file in
 * passthrough mode on backing file id (0: a normal open). */
void fuse_io_passthrough_next(int id);

#endif
