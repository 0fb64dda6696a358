/* fuse_io: see fuse_io.h. Kept apart from fs.c because it needs the kernel's
 * <linux/fuse.h> wire structures, which libfuse's headers do not expose. */
#include "fuse_io.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
			atomic_store(&io->offered, (in->flags & FUSE_HANDLE_KILLPRIV_V2) != 0);
			atomic_store(&io->init_unique, h->unique);
		}
	}
	return n; /* libfuse wants -1 and errno, as from read(2) */
}

/* writev(2) with the INIT reply amended; -1 and errno as libfuse expects. */
static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fuse_io *io = userdata;
	uint64_t init = atomic_load(&io->init_unique);
	int is_init = 0;
	ssize_t n;

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
	}
	n = writev(fd, iov, count); /* -1 and errno, as libfuse wants */
	if (is_init && n >= 0) {
		int e = errno;

		atomic_store(&io->init_replied, 1);
		if (io->readahead_kb && io->mountpoint)
			set_readahead(io->mountpoint, io->readahead_kb);
		errno = e;
	}
	return n;
}

/* No splice callbacks: libfuse then calls splice(2) itself. */
static const struct fuse_custom_io io_ops = {
	.read = io_read,
	.writev = io_writev,
};

int fuse_io_attach(struct fuse_session *se)
{
	return fuse_session_custom_io(se, &io_ops, fuse_session_fd(se)) ? -1 : 0;
}
