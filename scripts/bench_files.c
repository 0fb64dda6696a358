/* bench_files - small-file metadata rates for scripts/bench-local.
 *
 *   bench_files DIR N PHASE [SIZE]
 *
 * PHASE is one of
 *   create  open(O_CREAT|O_WRONLY) + write SIZE bytes (default 1024) + close, N files
 *   stat    stat() each of the N files
 *   unlink  unlink() each of the N files
 *   absent  stat() N names that do not exist (DIR/a0000000 ...): each must
 *           fail with ENOENT. On a FUSE mount every one is a LOOKUP the
 *           daemon answers "no such entry", so this measures what one request
 *           round trip costs with next to no work behind it
 * Files are DIR/f0000000 ... in one directory. Prints one line:
 *   PHASE N SECONDS OPS_PER_SECOND
 * and exits non-zero on the first failing call (after naming it).
 * The same program runs against every target so that only the file system
 * differs between them.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "bench_files: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: bench_files DIR N create|stat|unlink|absent [SIZE]\n");
		return 2;
	}
	const char *dir = argv[1];
	long n = strtol(argv[2], NULL, 10);
	const char *phase = argv[3];
	long size = argc == 5 ? strtol(argv[4], NULL, 10) : 1024;
	if (n <= 0 || size < 0) {
		fprintf(stderr, "bench_files: bad N or SIZE\n");
		return 2;
	}
	char *buf = malloc((size_t)size + 1);
	if (!buf)
		return 1;
	for (long i = 0; i < size; i++)
		buf[i] = (char)('a' + i % 26);

	size_t plen = strlen(dir) + 32;
	char *path = malloc(plen);
	if (!path)
		return 1;

	int op = strcmp(phase, "create") == 0 ? 0 : strcmp(phase, "stat") == 0 ? 1
		: strcmp(phase, "unlink") == 0 ? 2 : strcmp(phase, "absent") == 0 ? 3 : -1;
	if (op < 0) {
		fprintf(stderr, "bench_files: unknown phase '%s'\n", phase);
		return 2;
	}

	double t0 = now();
	for (long i = 0; i < n; i++) {
		snprintf(path, plen, "%s/%c%07ld", dir, op == 3 ? 'a' : 'f', i);
		if (op == 0) {
			int fd = open(path, O_CREAT | O_WRONLY, 0644);
			if (fd < 0)
				return fail("open", path);
			for (long off = 0; off < size;) {
				ssize_t w = write(fd, buf + off, (size_t)(size - off));
				if (w < 0) {
					if (errno == EINTR)
						continue;
					close(fd);
					return fail("write", path);
				}
				off += w;
			}
			if (close(fd) < 0)
				return fail("close", path);
		} else if (op == 1) {
			struct stat st;
			if (stat(path, &st) < 0)
				return fail("stat", path);
			if (st.st_size != size) {
				fprintf(stderr, "bench_files: %s has size %lld, expected %ld\n",
					path, (long long)st.st_size, size);
				return 1;
			}
		} else if (op == 3) {
			struct stat st;
			if (stat(path, &st) == 0) {
				fprintf(stderr, "bench_files: %s exists\n", path);
				return 1;
			}
			if (errno != ENOENT)
				return fail("stat", path);
		} else {
			if (unlink(path) < 0)
				return fail("unlink", path);
		}
	}
	double secs = now() - t0;
	if (secs <= 0)
		secs = 1e-9;
	printf("%s %ld %.3f %.0f\n", phase, n, secs, (double)n / secs);
	free(path);
	free(buf);
	return 0;
}
