/*
 * store_bench.c - throughput driver for scripts/bench-store: puts and then
 * gets TOTAL bytes as objects of OBJECT bytes under PREFIX with THREADS
 * threads through the store layer, and prints one line per phase:
 *   put BYTES SECONDS MB/s
 *   get BYTES SECONDS MB/s
 * Every object gets distinct pseudo-random content; gets check the length
 * and the first and last bytes of each object.
 *
 * usage: store_bench [--total SIZE] [--object SIZE] [--threads N]
 *                    [--prefix P] [--keep] URL
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

struct bench {
	struct store *s;
	const char *prefix;
	uint64_t object;
	unsigned nobjects;
	atomic_uint next;
	atomic_int failed;
	uint8_t *data;       /* one buffer of object + nobjects bytes */
	int get;
};

static void *worker(void *arg)
{
	struct bench *b = arg;
	struct tbuf buf = TBUF_INIT;
	char key[600];
	unsigned i;

	while ((i = atomic_fetch_add(&b->next, 1)) < b->nobjects && !atomic_load(&b->failed)) {
		/* object i is the buffer shifted by i: distinct content, no copy */
		const uint8_t *obj = b->data + i;
		int rc;

		snprintf(key, sizeof(key), "%sobj%06u", b->prefix, i);
		if (!b->get) {
			rc = store_put(b->s, key, obj, (size_t)b->object);
		} else {
			tbuf_reset(&buf);
			rc = store_get(b->s, key, 0, STORE_WHOLE, &buf);
			if (!rc && (buf.len != b->object || buf.data[0] != obj[0] ||
				    buf.data[buf.len - 1] != obj[b->object - 1])) {
				store_set_errmsg("object '%s' came back wrong", key);
				rc = -EIO;
			}
		}
		if (rc) {
			fprintf(stderr, "store_bench: %s\n", store_errmsg());
			atomic_store(&b->failed, 1);
		}
	}
	tbuf_release(&buf);
	return NULL;
}

static double run_phase(struct bench *b, int threads, int get)
{
	pthread_t th[256];
	uint64_t t0 = now_mono_ns();

	b->get = get;
	atomic_store(&b->next, 0);
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, b);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	return (double)(now_mono_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t total = 1ull << 30, object = 4ull << 20;
	int threads = 16, keep = 0, rc = 0;
	const char *url = NULL, *prefix = "bench/";
	struct bench b = { 0 };
	struct store_opts opts = { 0 };
	char err[512];
	double secs;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--total") && i + 1 < argc) {
			if (parse_size(argv[++i], &total))
				goto usage;
		} else if (!strcmp(argv[i], "--object") && i + 1 < argc) {
			if (parse_size(argv[++i], &object) || !object)
				goto usage;
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			threads = atoi(argv[++i]);
			if (threads < 1 || threads > 256)
				goto usage;
		} else if (!strcmp(argv[i], "--prefix") && i + 1 < argc) {
			prefix = argv[++i];
		} else if (!strcmp(argv[i], "--keep")) {
			keep = 1;
		} else if (argv[i][0] != '-' && !url) {
			url = argv[i];
		} else {
			goto usage;
		}
	}
	if (!url)
		goto usage;
	opts.max_connections = threads;
	if (store_open(url, &opts, &b.s, err, sizeof(err))) {
		fprintf(stderr, "store_bench: cannot open '%s': %s\n", url, err);
		return 1;
	}
	b.prefix = prefix;
	b.object = object;
	b.nobjects = (unsigned)((total + object - 1) / object);
	b.data = malloc((size_t)object + b.nobjects);
	if (!b.data) {
		rc = 1;
		goto out;
	}
	for (uint64_t i = 0, x = 88172645463325252ull; i < object + b.nobjects; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b.data[i] = (uint8_t)x;
	}
	total = object * b.nobjects;
	secs = run_phase(&b, threads, 0);
	if (b.failed) {
		rc = 1;
		goto out;
	}
	printf("put %llu %.3f %.1f\n", (unsigned long long)total, secs, total / secs / 1e6);
	secs = run_phase(&b, threads, 1);
	if (b.failed) {
		rc = 1;
		goto out;
	}
	printf("get %llu %.3f %.1f\n", (unsigned long long)total, secs, total / secs / 1e6);
	if (!keep) {
		for (unsigned i = 0; i < b.nobjects; i++) {
			char key[600];

			snprintf(key, sizeof(key), "%sobj%06u", prefix, i);
			store_del(b.s, key);
		}
	}
out:
	store_close(b.s);
	free(b.data);
	return rc;
usage:
	fprintf(stderr, "usage: store_bench [--total SIZE] [--object SIZE] [--threads N] "
			"[--prefix P] [--keep] URL\n");
	return 2;
}
