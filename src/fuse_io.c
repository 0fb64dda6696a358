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
#include <sys/ioctl.h>
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

			if (n >= (ssize_t)(sizeof(*h) + sizeof(*in2)) && (in2->flags & TFS_INIT_EXT))
				atomic_store(&io->pt_offered, (in2->flags2 & TFS_PASSTHROUGH2) != 0);
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

int fuse_io_attach(struct fuse_session *se, struct fuse_io *io)
{
	io->devfd = fuse_session_fd(se);
	return fuse_session_custom_io(se, &io_ops, fuse_session_fd(se)) ? -1 : 0;
}
