/*
 * crash_storm.c - a write storm for crash tests, and its verifier.
 * "crash_storm DIR JOURNAL" runs several threads in DIR until killed. Each
 * thread owns its names: it publishes new versions of its files fNNN by
 * writing a temporary file (random sizes, chunks written out of order,
 * sometimes in another directory), fsyncing it, renaming it over the final
 * name and fsyncing the directory; it creates and unlinks files cNNNNNN; and
 * it scribbles over in-place files that are never verified. Every version
 * carries a header with its name, a per-name sequence number, its length and
 * a CRC-64 of its payload. Only after a version is durable (file and
 * directory fsynced) is a line "V name seq len crc" appended to JOURNAL, which
 * lives outside the filesystem under test and is fdatasync'd per line; an
 * unlink is bracketed by "U name" (intent) and "G name" (done, dir fsynced).
 * "crash_storm --verify DIR JOURNAL [--min N]" then demands, after any crash:
 * a name whose last record is V exists and holds that version or a newer,
 * self-consistent one (newer versions were fsynced before their rename); a
 * name marked G does not exist; a name marked U may be gone; any unjournaled
 * fNNN is self-consistent; and at least N versions were journaled, so the
 * check cannot pass vacuously. Exit status 0 means verified.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#define MAGIC "CSTORM01"
#define NAME_LEN 40
#define FINALS 16   /* final names per thread */
#define INPLACE 3   /* in-place scratch files per thread */
#define MAX_LIVE 8  /* live churn files per thread */
#define MAX_FILE (2u << 20)

/* On-disk header at offset 0 of every verified file (little endian). */
struct hdr {
	char magic[8];
	char name[NAME_LEN]; /* path relative to DIR, NUL padded */
	uint64_t seq;
	uint64_t len; /* whole file, header included */
	uint64_t crc; /* CRC-64 of the bytes after the header */
};
#define HDR_SIZE sizeof(struct hdr)

static uint64_t crc_table[256];

static void crc_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint64_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xc96c5795d7870f42ull : c >> 1;
		crc_table[i] = c;
	}
}

/* CRC-64/XZ. */
static uint64_t crc64(const unsigned char *p, size_t n)
{
	uint64_t c = ~0ull;

	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ---- the storm ---- */

static const char *root;
static int journal_fd;
static pthread_mutex_t journal_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int stop;

struct worker {
	int id;
	pthread_t th;
	uint64_t rng;
	uint64_t seq[FINALS];
	long churn_next;
	long live[MAX_LIVE];
	int nlive;
	unsigned char *buf;
	long versions;
};

static void die_thread(struct worker *w, const char *what, const char *path)
{
	fprintf(stderr, "crash_storm: thread %d: %s '%s': %s\n", w->id, what, path, strerror(errno));
	pthread_exit(NULL);
}

static void journal(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void journal(struct worker *w, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&journal_lock);
	if (write(journal_fd, line, (size_t)n) != n || fdatasync(journal_fd)) {
		fprintf(stderr, "crash_storm: journal write: %s\n", strerror(errno));
		exit(3);
	}
	pthread_mutex_unlock(&journal_lock);
	(void)w;
}

static int open_dir(struct worker *w, const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY);

	if (fd < 0)
		die_thread(w, "open dir", path);
	return fd;
}

static void fsync_dir(struct worker *w, const char *path)
{
	int fd = open_dir(w, path);

	if (fsync(fd))
		die_thread(w, "fsync dir", path);
	close(fd);
}

/* Fill w->buf with a complete version of name; returns its length. */
static size_t make_version(struct worker *w, const char *name, uint64_t seq)
{
	uint64_t r = xorshift(&w->rng) % 100, s = w->rng | 1;
	size_t payload, len;
	struct hdr h = { .magic = MAGIC };

	if (r < 5)
		payload = 0;
	else if (r < 75)
		payload = xorshift(&w->rng) % 16384;
	else if (r < 97)
		payload = 16384 + xorshift(&w->rng) % (256 * 1024);
	else
		payload = xorshift(&w->rng) % (MAX_FILE - HDR_SIZE);
	len = HDR_SIZE + payload;
	for (size_t i = 0; i < payload; i += 8) {
		uint64_t v = xorshift(&s);

		memcpy(w->buf + HDR_SIZE + i, &v, payload - i < 8 ? payload - i : 8);
	}
	snprintf(h.name, sizeof(h.name), "%s", name);
	h.seq = seq;
	h.len = len;
	h.crc = crc64(w->buf + HDR_SIZE, payload);
	memcpy(w->buf, &h, HDR_SIZE);
	return len;
}

/* Write buf[0..len) to fd in random chunks, in order or shuffled. */
static int scatter_write(struct worker *w, int fd, size_t len)
{
	enum { MAXCH = 64 };
	size_t start[MAXCH], size[MAXCH], n = 0, off = 0;

	if (xorshift(&w->rng) % 4 == 0 && ftruncate(fd, (off_t)len))
		return -1;
	while (off < len) {
		size_t c = 1 + xorshift(&w->rng) % (len / 4 + 1);

		if (n == MAXCH - 1 || off + c > len)
			c = len - off;
		start[n] = off;
		size[n++] = c;
		off += c;
	}
	if (xorshift(&w->rng) % 2) /* shuffle: writes land at random offsets */
		for (size_t i = n; i > 1; i--) {
			size_t j = xorshift(&w->rng) % i, t;

			t = start[i - 1], start[i - 1] = start[j], start[j] = t;
			t = size[i - 1], size[i - 1] = size[j], size[j] = t;
		}
	for (size_t i = 0; i < n; i++)
		if (pwrite(fd, w->buf + start[i], size[i], (off_t)start[i]) != (ssize_t)size[i])
			return -1;
	return 0;
}

static void new_version(struct worker *w, int idx)
{
	char name[NAME_LEN], final[PATH_MAX], tmp[PATH_MAX], dir[PATH_MAX], tdir[PATH_MAX];
	bool cross = xorshift(&w->rng) % 2;
	uint64_t seq = ++w->seq[idx];
	size_t len;
	int fd;

	snprintf(name, sizeof(name), "t%02d/f%03d", w->id, idx);
	snprintf(final, sizeof(final), "%s/%s", root, name);
	snprintf(dir, sizeof(dir), "%s/t%02d", root, w->id);
	snprintf(tdir, sizeof(tdir), "%s/t%02d/tmp", root, w->id);
	snprintf(tmp, sizeof(tmp), cross ? "%s/t%02d/tmp/f%03d" : "%s/t%02d/.f%03d.tmp", root, w->id, idx);
	len = make_version(w, name, seq);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die_thread(w, "create", tmp);
	if (scatter_write(w, fd, len))
		die_thread(w, "write", tmp);
	if (xorshift(&w->rng) % 2 ? fsync(fd) : fdatasync(fd))
		die_thread(w, "fsync", tmp);
	close(fd);
	if (rename(tmp, final))
		die_thread(w, "rename to", final);
	fsync_dir(w, dir);
	if (cross)
		fsync_dir(w, tdir);
	struct hdr h;

	memcpy(&h, w->buf, HDR_SIZE);
	journal(w, "V %s %" PRIu64 " %zu %016" PRIx64 "\n", name, seq, len, h.crc);
	w->versions++;
}

static void churn_create(struct worker *w)
{
	char name[NAME_LEN], path[PATH_MAX], dir[PATH_MAX];
	long id = w->churn_next++;
	struct hdr h;
	size_t len;
	int fd;

	snprintf(name, sizeof(name), "t%02d/c%07ld", w->id, id);
	snprintf(path, sizeof(path), "%s/%s", root, name);
	snprintf(dir, sizeof(dir), "%s/t%02d", root, w->id);
	len = make_version(w, name, 1);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		die_thread(w, "create", path);
	if (scatter_write(w, fd, len))
		die_thread(w, "write", path);
	if (fsync(fd))
		die_thread(w, "fsync", path);
	close(fd);
	fsync_dir(w, dir);
	memcpy(&h, w->buf, HDR_SIZE);
	journal(w, "V %s 1 %zu %016" PRIx64 "\n", name, len, h.crc);
	w->live[w->nlive++] = id;
}

static void churn_unlink(struct worker *w)
{
	char name[NAME_LEN], path[PATH_MAX], dir[PATH_MAX];
	int k = (int)(xorshift(&w->rng) % (uint64_t)w->nlive);

	snprintf(name, sizeof(name), "t%02d/c%07ld", w->id, w->live[k]);
	snprintf(path, sizeof(path), "%s/%s", root, name);
	snprintf(dir, sizeof(dir), "%s/t%02d", root, w->id);
	w->live[k] = w->live[--w->nlive];
	journal(w, "U %s\n", name);
	if (unlink(path))
		die_thread(w, "unlink", path);
	fsync_dir(w, dir);
	journal(w, "G %s\n", name);
}

static void scribble(struct worker *w)
{
	char path[PATH_MAX];
	int fd, n = 1 + (int)(xorshift(&w->rng) % 8);

	snprintf(path, sizeof(path), "%s/t%02d/inplace%d", root, w->id, (int)(xorshift(&w->rng) % INPLACE));
	fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		die_thread(w, "open", path);
	for (int i = 0; i < n; i++) {
		size_t len = 1 + xorshift(&w->rng) % 65536;
		off_t off = (off_t)(xorshift(&w->rng) % (4u << 20));

		memset(w->buf, (int)(xorshift(&w->rng) & 0xff), len);
		if (pwrite(fd, w->buf, len, off) != (ssize_t)len)
			die_thread(w, "pwrite", path);
	}
	switch (xorshift(&w->rng) % 6) {
	case 0:
		if (ftruncate(fd, (off_t)(xorshift(&w->rng) % (4u << 20))))
			die_thread(w, "ftruncate", path);
		break;
	case 1:
		if (fsync(fd))
			die_thread(w, "fsync", path);
		break;
	case 2:
		if (fdatasync(fd))
			die_thread(w, "fdatasync", path);
		break;
	}
	close(fd);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/t%02d", root, w->id);
	if (mkdir(dir, 0755) && errno != EEXIST)
		die_thread(w, "mkdir", dir);
	snprintf(dir, sizeof(dir), "%s/t%02d/tmp", root, w->id);
	if (mkdir(dir, 0755) && errno != EEXIST)
		die_thread(w, "mkdir", dir);
	fsync_dir(w, dir);
	snprintf(dir, sizeof(dir), "%s/t%02d", root, w->id);
	fsync_dir(w, dir);
	fsync_dir(w, root);
	while (!stop) {
		uint64_t r = xorshift(&w->rng) % 100;

		if (r < 55)
			new_version(w, (int)(xorshift(&w->rng) % FINALS));
		else if (r < 70 && w->nlive < MAX_LIVE)
			churn_create(w);
		else if (r < 80 && w->nlive > 0)
			churn_unlink(w);
		else
			scribble(w);
	}
	return NULL;
}

static int storm(const char *dir, const char *jpath, int nthreads, int seconds, uint64_t seed)
{
	struct worker *ws = calloc((size_t)nthreads, sizeof(*ws));
	char parent[PATH_MAX], *slash;
	int fd;

	root = dir;
	if (!ws)
		return 1;
	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "crash_storm: cannot create '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = 0;
	else
		snprintf(parent, sizeof(parent), "%s", slash ? "/" : ".");
	fd = open(parent, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fsync(fd)) {
		fprintf(stderr, "crash_storm: cannot fsync '%s': %s\n", parent, strerror(errno));
		return 1;
	}
	close(fd);
	journal_fd = open(jpath, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0644);
	if (journal_fd < 0) {
		fprintf(stderr, "crash_storm: cannot open journal '%s': %s\n", jpath, strerror(errno));
		return 1;
	}
	dprintf(journal_fd, "# crash_storm dir %s threads %d seed %" PRIu64 "\n", dir, nthreads, seed);
	fdatasync(journal_fd);
	for (int i = 0; i < nthreads; i++) {
		ws[i].id = i;
		ws[i].rng = seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 0xbf58476d1ce4e5b9ull + 1;
		ws[i].buf = malloc(MAX_FILE + 65536);
		if (!ws[i].buf || pthread_create(&ws[i].th, NULL, worker_main, &ws[i]))
			return 1;
	}
	if (seconds > 0) {
		sleep((unsigned)seconds);
		stop = 1;
	}
	long total = 0;

	for (int i = 0; i < nthreads; i++) {
		pthread_join(ws[i].th, NULL);
		total += ws[i].versions;
	}
	fprintf(stderr, "crash_storm: %ld versions published\n", total);
	return 0;
}

/* ---- the verifier ---- */

struct rec {
	char kind; /* V, U or G */
	char name[NAME_LEN];
	uint64_t seq, len, crc;
	long line;
};

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static unsigned char *filebuf;

/*
 * Read DIR/name and check it is a self-consistent version of name. Returns 1
 * and fills *h when it is, 0 when the file does not exist, -1 (with why)
 * when it exists but is not a complete version of name.
 */
static int load(const char *dir, const char *name, struct hdr *h, char *why, size_t whylen)
{
	char path[PATH_MAX];
	struct stat st;
	size_t got = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		snprintf(why, whylen, "lstat: %s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file (mode %o)", st.st_mode);
		return -1;
	}
	if ((size_t)st.st_size < HDR_SIZE || (size_t)st.st_size > MAX_FILE) {
		snprintf(why, whylen, "size %jd out of range", (intmax_t)st.st_size);
		return -1;
	}
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		snprintf(why, whylen, "open: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, filebuf + got, MAX_FILE + 1 - got);

		if (n < 0) {
			snprintf(why, whylen, "read: %s", strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != (size_t)st.st_size) {
		snprintf(why, whylen, "read %zu bytes, stat says %jd", got, (intmax_t)st.st_size);
		return -1;
	}
	memcpy(h, filebuf, HDR_SIZE);
	if (memcmp(h->magic, MAGIC, 8) || strncmp(h->name, name, NAME_LEN)) {
		snprintf(why, whylen, "bad header (magic or name)");
		return -1;
	}
	if (h->len != got) {
		snprintf(why, whylen, "header length %" PRIu64 ", file has %zu", h->len, got);
		return -1;
	}
	if (crc64(filebuf + HDR_SIZE, got - HDR_SIZE) != h->crc) {
		snprintf(why, whylen, "payload CRC mismatch (seq %" PRIu64 ")", h->seq);
		return -1;
	}
	return 1;
}

static int verify(const char *dir, const char *jpath, long min)
{
	long nrec = 0, cap = 1024, lineno = 0, versions = 0, bad = 0;
	long checked = 0, newer = 0, gone = 0, maybe = 0, extra = 0;
	struct rec *recs = malloc((size_t)cap * sizeof(*recs));
	char line[512], why[256];
	FILE *f = fopen(jpath, "r");

	filebuf = malloc(MAX_FILE + 1);
	if (!f) {
		fprintf(stderr, "crash_storm: cannot open journal '%s': %s\n", jpath, strerror(errno));
		return 1;
	}
	if (!recs || !filebuf)
		return 1;
	while (fgets(line, sizeof(line), f)) {
		struct rec r = { 0 };
		char name[128];

		lineno++;
		if (line[0] == '#')
			continue;
		if (!strchr(line, '\n'))
			break; /* a torn last line was never acknowledged */
		if (sscanf(line, "V %127s %" SCNu64 " %" SCNu64 " %" SCNx64, name, &r.seq, &r.len, &r.crc) == 4)
			r.kind = 'V', versions++;
		else if (sscanf(line, "U %127s", name) == 1)
			r.kind = 'U';
		else if (sscanf(line, "G %127s", name) == 1)
			r.kind = 'G';
		else {
			fprintf(stderr, "crash_storm: %s:%ld: bad journal line\n", jpath, lineno);
			return 1;
		}
		if (strlen(name) >= NAME_LEN) {
			fprintf(stderr, "crash_storm: %s:%ld: name too long\n", jpath, lineno);
			return 1;
		}
		snprintf(r.name, sizeof(r.name), "%s", name);
		r.line = lineno;
		if (nrec == cap) {
			cap *= 2;
			recs = realloc(recs, (size_t)cap * sizeof(*recs));
			if (!recs)
				return 1;
		}
		recs[nrec++] = r;
	}
	fclose(f);
	qsort(recs, (size_t)nrec, sizeof(*recs), rec_cmp);
	for (long i = 0; i < nrec;) {
		long j = i;
		const struct rec *lastv = NULL, *last;
		struct hdr h;
		int rc;

		while (j < nrec && !strcmp(recs[j].name, recs[i].name)) {
			if (recs[j].kind == 'V')
				lastv = &recs[j];
			j++;
		}
		last = &recs[j - 1];
		rc = load(dir, last->name, &h, why, sizeof(why));
		checked++;
		switch (last->kind) {
		case 'V':
			if (rc == 0) {
				printf("LOST %s: journaled version %" PRIu64 " (line %ld) does not exist\n",
				       last->name, last->seq, last->line);
				bad++;
			} else if (rc < 0) {
				printf("CORRUPT %s: %s; journaled version %" PRIu64 " (line %ld)\n", last->name,
				       why, last->seq, last->line);
				bad++;
			} else if (h.seq < last->seq) {
				printf("STALE %s: holds version %" PRIu64 ", journaled %" PRIu64 " (line %ld)\n",
				       last->name, h.seq, last->seq, last->line);
				bad++;
			} else if (h.seq == last->seq && (h.len != last->len || h.crc != last->crc)) {
				printf("MISMATCH %s: version %" PRIu64 " differs from the journal (line %ld)\n",
				       last->name, h.seq, last->line);
				bad++;
			} else if (h.seq > last->seq) {
				newer++;
			}
			break;
		case 'U':
			maybe++;
			if (rc < 0 || (rc == 1 && lastv && h.seq < lastv->seq)) {
				printf("CORRUPT %s: being unlinked, but holds %s\n", last->name,
				       rc < 0 ? why : "an older version");
				bad++;
			}
			break;
		case 'G':
			gone++;
			if (rc != 0) {
				printf("RESURRECTED %s: unlinked (line %ld) but exists\n", last->name, last->line);
				bad++;
			}
			break;
		}
		i = j;
	}
	/* Unjournaled final names may exist, but only as complete versions. */
	for (int t = 0; t < 100; t++) {
		char tdir[PATH_MAX];
		struct dirent *e;
		DIR *d;

		snprintf(tdir, sizeof(tdir), "%s/t%02d", dir, t);
		if (!(d = opendir(tdir)))
			continue;
		while ((e = readdir(d))) {
			char name[NAME_LEN + 16];
			long lo = 0, hi = nrec;
			struct hdr h;

			if (e->d_name[0] != 'f' || strlen(e->d_name) != 4)
				continue;
			snprintf(name, sizeof(name), "t%02d/%s", t, e->d_name);
			while (lo < hi) { /* recs are sorted by name */
				long mid = lo + (hi - lo) / 2;

				if (strcmp(recs[mid].name, name) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < nrec && !strcmp(recs[lo].name, name))
				continue;
			extra++;
			if (load(dir, name, &h, why, sizeof(why)) != 1) {
				printf("CORRUPT %s (unjournaled): %s\n", name, why);
				bad++;
			}
		}
		closedir(d);
	}
	printf("verify %s: %ld journal records, %ld versions, %ld names checked (%ld newer than the journal, "
	       "%ld unlinked, %ld mid-unlink, %ld unjournaled finals): %ld bad\n",
	       dir, nrec, versions, checked, newer, gone, maybe, extra, bad);
	if (versions < min) {
		printf("TOO FEW: %ld versions journaled, at least %ld required\n", versions, min);
		return 1;
	}
	return bad ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: crash_storm DIR JOURNAL [--threads N] [--seconds S] [--seed N]\n"
			"       crash_storm --verify DIR JOURNAL [--min N]\n");
}

int main(int argc, char **argv)
{
	int threads = 4, seconds = 0;
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	long min = 20;
	bool verify_mode = false;
	const char *pos[2];
	int npos = 0;

	crc_init();
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--verify"))
			verify_mode = true;
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--min") && i + 1 < argc)
			min = atol(argv[++i]);
		else if (argv[i][0] == '-' || npos == 2) {
			usage();
			return 2;
		} else
			pos[npos++] = argv[i];
	}
	if (npos != 2 || threads < 1 || threads > 99) {
		usage();
		return 2;
	}
	return verify_mode ? verify(pos[0], pos[1], min) : storm(pos[0], pos[1], threads, seconds, seed);
}
