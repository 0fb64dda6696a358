/*
 * volume.c - creating, opening and locking a volume directory. A volume is
 * a directory holding the SQLite metadata store, the local data area (one
 * sparse file per regular-file inode, spread over 256 subdirectories) and
 * the volume key. The home mount holds an exclusive flock on DIR/lock for
 * its whole life, so a second home mount of the same volume is refused.
 */
#include "volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"

void volume_data_name(uint64_t ino, char out[VOLUME_DATA_NAME_MAX])
{
	snprintf(out, VOLUME_DATA_NAME_MAX, "%02x/%016llx", (unsigned)((ino >> 12) & 0xff),
		 (unsigned long long)ino);
}

static int dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int empty = 1;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

int volume_format(const char *dir, const struct volume_format_opts *o, char *err, size_t errlen)
{
	char abs[PATH_MAX], path[PATH_MAX + 64], url[PATH_MAX + 32], idhex[33];
	char keyid[KEY_ID_SIZE];
	uint8_t id[16];
	struct meta *m = NULL;
	struct meta_attr root;
	int rc;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
		return rc;
	}
	if (!realpath(dir, abs)) {
		rc = -errno;
		snprintf(err, errlen, "cannot resolve '%s': %s", dir, strerror(errno));
		return rc;
	}
	rc = dir_is_empty(abs);
	if (rc <= 0) {
		snprintf(err, errlen, rc < 0 ? "cannot read '%s': %s" : "'%s' is not empty%s", abs,
			 rc < 0 ? strerror(-rc) : "; refusing to format over existing files");
		return rc < 0 ? rc : -EEXIST;
	}
	snprintf(path, sizeof(path), "%s/data", abs);
	if (mkdir(path, 0700)) {
		rc = -errno;
		snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
		return rc;
	}
	for (int i = 0; i < 256; i++) {
		snprintf(path, sizeof(path), "%s/data/%02x", abs, i);
		if (mkdir(path, 0700)) {
			rc = -errno;
			snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
			return rc;
		}
	}
	snprintf(path, sizeof(path), "%s/volume.key", abs);
	rc = key_file_create(path, o ? o->passphrase : NULL, keyid);
	if (rc) {
		snprintf(err, errlen, "cannot create key file '%s': %s", path, strerror(-rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/meta.db", abs);
	rc = meta_open(path, META_CREATE, &m, err, errlen);
	if (rc)
		return rc;
	memset(&root, 0, sizeof(root));
	root.ino = META_ROOT_INO;
	root.mode = S_IFDIR | 0755;
	root.uid = getuid();
	root.gid = getgid();
	root.nlink = 2;
	root.atime = root.mtime = root.ctime = (int64_t)now_real_ns();
	if (o && o->store_url)
		snprintf(url, sizeof(url), "%s", o->store_url);
	else
		snprintf(url, sizeof(url), "file://%s.store", abs);
	{
		int fd = open("/dev/urandom", O_RDONLY);

		if (fd < 0 || read(fd, id, sizeof(id)) != (ssize_t)sizeof(id)) {
			rc = -EIO;
			snprintf(err, errlen, "cannot read /dev/urandom");
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
	}
	hex_encode(id, sizeof(id), idhex);
	rc = meta_begin(m);
	if (!rc)
		rc = meta_inode_insert(m, &root, NULL, 0);
	if (!rc)
		rc = meta_config_set(m, "volume_id", idhex);
	if (!rc)
		rc = meta_config_set(m, "store_url", url);
	if (!rc)
		rc = meta_config_set(m, "key_id", keyid);
	if (!rc)
		rc = meta_config_set(m, "clean", "1");
	if (!rc)
		rc = meta_config_set(m, "created", "tierfs " TIERFS_VERSION);
	if (!rc)
		rc = meta_commit(m, 1);
	if (rc) {
		snprintf(err, errlen, "cannot initialise metadata store: %s", strerror(-rc));
		goto out;
	}
	rc = fsync_dir(abs);
out:
	meta_close(m);
	return rc;
}

#define EXIT_TAG "unmount failed: "

int volume_note_exit(struct volume *v, const char *msg)
{
	char buf[600];
	int n;
	off_t end;

	if (v->lockfd < 0)
		return -EBADF;
	end = lseek(v->lockfd, 0, SEEK_END);
	if (end < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "\n" EXIT_TAG "%s\n", msg);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	if (pwrite(v->lockfd, buf, (size_t)n, end) != n)
		return errno ? -errno : -EIO;
	fdatasync(v->lockfd);
	return 0;
}

int volume_exit_error(const char *dir, char *msg, size_t len)
{
	char path[PATH_MAX], buf[1024], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, EXIT_TAG);
	if (!p)
		return 0;
	p += strlen(EXIT_TAG);
	p[strcspn(p, "\n")] = '\0';
	snprintf(msg, len, "%s", p);
	return 1;
}

int volume_mount_pid(const char *dir)
{
	char path[PATH_MAX], buf[32];
	int fd, pid = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd); /* nobody holds it: not mounted */
		return 0;
	}
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n > 0) {
		buf[n] = '\0';
		pid = atoi(buf);
	}
	close(fd);
	return pid > 0 ? pid : -1;
}

int volume_open(const char *dir, int flags, struct volume **out, char *err, size_t errlen)
{
	struct volume *v = calloc(1, sizeof(*v));
	char abs[PATH_MAX], path[PATH_MAX + 16];
	struct stat st;
	int rc;

	if (!v)
		return -ENOMEM;
	v->dirfd = v->datafd = v->lockfd = -1;
	if (!realpath(dir, abs) || stat(abs, &st)) {
		rc = -errno;
		snprintf(err, errlen, "cannot open volume '%s': %s", dir, strerror(errno));
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = -ENOTDIR;
		snprintf(err, errlen, "cannot open volume '%s': not a directory", dir);
		goto fail;
	}
	v->dir = strdup(abs);
	v->dirfd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/meta.db", abs);
	if (!v->dir || v->dirfd < 0 || access(path, F_OK) ||
	    (v->datafd = open(path, O_RDONLY | O_CLOEXEC), v->datafd < 0)) {
		rc = -EINVAL;
		snprintf(err, errlen, "cannot open volume '%s': not a tierfs volume", dir);
		goto fail;
	}
	close(v->datafd);
	snprintf(path, sizeof(path), "%s/data", abs);
	v->datafd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (v->datafd < 0) {
		rc = -EINVAL;
		snprintf(err, errlen, "cannot open volume '%s': not a tierfs volume (no data area)", dir);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/meta.db", abs);
	/* Validate the store before touching anything: a refused volume is
	 * left byte-identical. */
	rc = meta_open(path, (flags & VOL_READONLY) ? META_READONLY : 0, &v->meta, err, errlen);
	if (rc)
		goto fail;
	if (flags & VOL_LOCK) {
		snprintf(path, sizeof(path), "%s/lock", abs);
		v->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (v->lockfd < 0) {
			rc = -errno;
			snprintf(err, errlen, "cannot lock volume '%s': %s", dir, strerror(errno));
			goto fail;
		}
		if (flock(v->lockfd, LOCK_EX | LOCK_NB)) {
			int other = volume_mount_pid(abs);

			rc = -EBUSY;
			if (other > 0)
				snprintf(err, errlen, "volume '%s' is already mounted (pid %d)", dir, other);
			else
				snprintf(err, errlen, "volume '%s' is in use by another tierfs process", dir);
			goto fail;
		}
	}
	if (v->lockfd >= 0) {
		char pid[32];
		int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());

		if (ftruncate(v->lockfd, 0) || pwrite(v->lockfd, pid, (size_t)n, 0) != n)
			log_warn("cannot record pid in '%s/lock'", abs);
	}
	*out = v;
	return 0;
fail:
	volume_close(v);
	return rc;
}

void volume_close(struct volume *v)
{
	if (!v)
		return;
	meta_close(v->meta);
	if (v->datafd >= 0)
		close(v->datafd);
	if (v->dirfd >= 0)
		close(v->dirfd);
	if (v->lockfd >= 0)
		close(v->lockfd);
	free(v->dir);
	free(v);
}
