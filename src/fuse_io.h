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
 * (see fs.c, "killpriv"). Everything else is the plain read/writev libfuse
 * would have done. */
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
};

struct fuse_session;

/* Run se over this transport; call after fuse_session_mount(). libfuse
 * hands the callbacks the session's userdata, so that userdata must begin
 * with its struct fuse_io, fields set (users static-assert the offset).
 * 0 or -1. */
int fuse_io_attach(struct fuse_session *se);

#endif
