/*
 * cloud_fixture.c - publishes a local directory tree into an object store
 * in the published-snapshot format (snapshot.h), for the cloud mount's
 * tests: chunk objects (codec), one manifest per file version, directory
 * objects bottom-up, the snapshot object and, last, head, with the next
 * sequence number after the store's current head. Fids are the source
 * tree's inode numbers (the root is 1), so a file keeps its fid across
 * publishes and a modified file gets a new manifest (new mtime or size).
 *
 * usage: cloud_fixture --key-file FILE [--new-key] [--chunk-size SIZE]
 *                      [--no-data RELPATH]... SRC URL
 *   --new-key      create FILE (a clear key) if it does not exist
 *   --no-data P    publish file P (relative to SRC) without data, as home
 *                  does for an on-demand file nobody asked for yet
 *   --writable G   name a cloud-write rules object with glob G (repeatable),
 *                  as home does for rules marked --cloud-write
 * Prints one line: "published snapshot SEQ: D dirs, F files, C chunks (U uploaded)".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "keys.h"
#include "snapshot.h"
#include "store.h"
#include "util.h"

struct fixture {
	struct volkey key;
	struct store *st;
	uint64_t chunk_size;
	char **nodata;
	int nnodata;
	unsigned long dirs, files, chunks, uploaded;
};

static void die(const char *what, int rc)
{
	fprintf(stderr, "cloud_fixture: %s: %s\n", what, rc < 0 ? strerror(-rc) : "failed");
	exit(1);
}

static int64_t ns_of(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void put(struct fixture *f, const char *key, const struct tbuf *b)
{
	int rc = store_put(f->st, key, b->data, b->len);

	if (rc) {
		fprintf(stderr, "cloud_fixture: put '%s': %s\n", key, store_errmsg());
		exit(1);
	}
}

static int want_data(struct fixture *f, const char *rel)
{
	for (int k = 0; k < f->nnodata; k++)
		if (!strcmp(f->nodata[k], rel))
			return 0;
	return 1;
}

/* Chunk the file at path and publish its manifest. */
static void publish_file(struct fixture *f, const char *path, const struct stat *st)
{
	struct snap_manifest m;
	struct tbuf obj = TBUF_INIT, sealed = TBUF_INIT;
	uint8_t *buf = malloc(f->chunk_size);
	char mname[CODEC_NAME_SIZE], key[SNAP_KEY_MAX];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 0;
	uint64_t off = 0;

	if (fd < 0 || !buf)
		die(path, -errno);
	memset(&m, 0, sizeof(m));
	m.fid = st->st_ino;
	m.size = (uint64_t)st->st_size;
	m.mtime = ns_of(&st->st_mtim);
	m.chunk_size = (uint32_t)f->chunk_size;
	while (off < m.size) {
		size_t want = m.size - off < f->chunk_size ? (size_t)(m.size - off) : f->chunk_size;
		size_t got = 0;
		uint64_t size;

		while (got < want) {
			ssize_t n = pread(fd, buf + got, want - got, (off_t)(off + got));

			if (n <= 0)
				die(path, n < 0 ? -errno : -EIO);
			got += (size_t)n;
		}
		if (m.n == cap) {
			cap = cap ? cap * 2 : 16;
			m.c = realloc(m.c, cap * sizeof(*m.c));
			if (!m.c)
				die("realloc", -ENOMEM);
		}
		if (codec_chunk_name(&f->key, buf, want, m.c[m.n].name))
			die("codec_chunk_name", -EIO);
		m.c[m.n].len = (uint32_t)want;
		snap_key_chunk(m.c[m.n].name, key);
		if (store_head(f->st, key, &size)) {
			tbuf_reset(&obj);
			if (codec_encode(&f->key, buf, want, m.c[m.n].name, CODEC_LEVEL_DEFAULT, &obj))
				die("codec_encode", -EIO);
			put(f, key, &obj);
			f->uploaded++;
		}
		f->chunks++;
		m.n++;
		off += want;
	}
	close(fd);
	if (snap_manifest_encode(&f->key, &m, &sealed) ||
	    snap_manifest_name(&f->key, m.fid, m.mtime, m.size, mname))
		die("snap_manifest_encode", -EIO);
	snap_key_manifest(mname, key);
	put(f, key, &sealed);
	free(m.c);
	free(buf);
	tbuf_release(&obj);
	tbuf_release(&sealed);
}

/* Publish the directory at path (rel: relative to the source root); its object name to name_out. */
static void publish_dir(struct fixture *f, const char *path, const char *rel, char name_out[CODEC_NAME_SIZE])
{
	struct snap_dir d = { NULL, 0 };
	struct tbuf sealed = TBUF_INIT;
	char key[SNAP_KEY_MAX];
	size_t cap = 0;
	struct dirent *de;
	DIR *dir = opendir(path);

	if (!dir)
		die(path, -errno);
	while ((de = readdir(dir))) {
		char child[PATH_MAX], crel[PATH_MAX];
		struct snap_entry *e;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
		snprintf(crel, sizeof(crel), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		if (lstat(child, &st))
			die(child, -errno);
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
			continue;
		if (d.n == cap) {
			cap = cap ? cap * 2 : 16;
			d.e = realloc(d.e, cap * sizeof(*d.e));
			if (!d.e)
				die("realloc", -ENOMEM);
		}
		e = &d.e[d.n++];
		memset(e, 0, sizeof(*e));
		e->fid = st.st_ino;
		e->mode = st.st_mode;
		e->uid = st.st_uid;
		e->gid = st.st_gid;
		e->size = (uint64_t)st.st_size;
		e->mtime = ns_of(&st.st_mtim);
		e->ctime = ns_of(&st.st_ctim);
		e->name = strdup(de->d_name);
		if (S_ISDIR(st.st_mode)) {
			e->type = SNAP_DIR;
			e->size = 0;
			e->ref = calloc(1, CODEC_NAME_SIZE);
			publish_dir(f, child, crel, e->ref);
		} else if (S_ISLNK(st.st_mode)) {
			ssize_t n;

			e->type = SNAP_SYMLINK;
			e->ref = calloc(1, (size_t)st.st_size + 1);
			n = readlink(child, e->ref, (size_t)st.st_size + 1);
			if (n < 0)
				die(child, -errno);
			e->ref[n] = '\0';
		} else {
			e->type = SNAP_FILE;
			e->ref = strdup("");
			e->has_data = (uint8_t)want_data(f, crel);
			if (e->has_data)
				publish_file(f, child, &st);
			f->files++;
		}
	}
	closedir(dir);
	snap_dir_sort(&d);
	if (snap_dir_encode(&f->key, &d, name_out, &sealed))
		die("snap_dir_encode", -EIO);
	snap_key_dir(name_out, key);
	put(f, key, &sealed);
	f->dirs++;
	snap_dir_release(&d);
	tbuf_release(&sealed);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "key-file", required_argument, NULL, 'k' },
		{ "new-key", no_argument, NULL, 'n' },
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "no-data", required_argument, NULL, 'D' },
		{ "writable", required_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	struct fixture f;
	struct snap_root r;
	struct snap_wrules w = { NULL, 0 };
	struct tbuf b = TBUF_INIT;
	struct stat st;
	const char *keyfile = NULL;
	char err[512];
	uint64_t seq = 0;
	int c, newkey = 0, rc;

	memset(&f, 0, sizeof(f));
	f.chunk_size = 4u << 20;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'k':
			keyfile = optarg;
			break;
		case 'n':
			newkey = 1;
			break;
		case 'c':
			if (parse_size(optarg, &f.chunk_size) || !f.chunk_size || f.chunk_size > (64u << 20))
				die("bad --chunk-size", -EINVAL);
			break;
		case 'W':
			w.glob = realloc(w.glob, (w.n + 1) * sizeof(*w.glob));
			w.glob[w.n++] = strdup(optarg);
			break;
		case 'D':
			f.nodata = realloc(f.nodata, (size_t)(f.nnodata + 1) * sizeof(*f.nodata));
			f.nodata[f.nnodata++] = optarg;
			break;
		default:
			fprintf(stderr, "usage: cloud_fixture --key-file FILE [--new-key] [--chunk-size SIZE] "
					"[--no-data RELPATH]... [--writable GLOB]... SRC URL\n");
			return 2;
		}
	}
	if (argc - optind != 2 || !keyfile) {
		fprintf(stderr, "usage: cloud_fixture --key-file FILE [--new-key] [--chunk-size SIZE] "
				"[--no-data RELPATH]... [--writable GLOB]... SRC URL\n");
		return 2;
	}
	if (newkey && access(keyfile, F_OK) && (rc = key_file_create(keyfile, NULL, NULL)))
		die("cannot create key file", rc);
	rc = key_file_load(keyfile, getenv("TIERFS_PASSPHRASE"), &f.key);
	if (rc)
		die("cannot load key file", rc);
	rc = store_open(argv[optind + 1], NULL, &f.st, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cloud_fixture: %s\n", err);
		return 1;
	}
	rc = store_get(f.st, "head", 0, STORE_WHOLE, &b);
	if (rc == 0) {
		rc = snap_head_decode(&f.key, b.data, b.len, &seq);
		if (rc)
			die("head exists but does not open with this key", rc);
	} else if (rc != -ENOENT) {
		fprintf(stderr, "cloud_fixture: get head: %s\n", store_errmsg());
		return 1;
	}
	if (lstat(argv[optind], &st) || !S_ISDIR(st.st_mode))
		die(argv[optind], -ENOTDIR);
	memset(&r, 0, sizeof(r));
	r.seq = seq + 1;
	r.created = (int64_t)now_real_ns();
	memcpy(r.volume_id, "cloudfixture0000cloudfixture0000", 32);
	r.root_mode = st.st_mode;
	r.root_uid = st.st_uid;
	r.root_gid = st.st_gid;
	r.root_mtime = ns_of(&st.st_mtim);
	publish_dir(&f, argv[optind], "", r.root);
	if (w.n) {
		char key[SNAP_KEY_MAX];

		tbuf_reset(&b);
		if (snap_wrules_encode(&f.key, &w, r.wrules, &b))
			die("snap_wrules_encode", -EIO);
		snap_key_wrules(r.wrules, key);
		put(&f, key, &b);
		snap_wrules_release(&w);
	}
	tbuf_reset(&b);
	if (snap_root_encode(&f.key, &r, &b))
		die("snap_root_encode", -EIO);
	{
		char key[SNAP_KEY_MAX];

		snap_key_snapshot(r.seq, key);
		put(&f, key, &b);
	}
	tbuf_reset(&b);
	if (snap_head_encode(&f.key, r.seq, &b))
		die("snap_head_encode", -EIO);
	put(&f, "head", &b);
	printf("published snapshot %llu: %lu dirs, %lu files, %lu chunks (%lu uploaded)\n",
	       (unsigned long long)r.seq, f.dirs, f.files, f.chunks, f.uploaded);
	tbuf_release(&b);
	store_close(f.st);
	volkey_release(&f.key);
	free(f.nodata);
	return 0;
}
