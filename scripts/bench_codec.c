/*
 * bench_codec.c - driver for scripts/bench-codec: generates the benchmark
 * inputs (text-like compressible data and random data) so that the zstd and
 * openssl command line tools can be run on the very same bytes, and times
 * the codec on one core: chunk naming (HMAC-SHA256), encode, decode, and
 * decode with the name check, over a whole file cut into fixed-size chunks.
 * Each phase runs several times and the best run is reported (the machines
 * are shared and noisy); MB is 10^6 bytes, as zstd -b and openssl speed use.
 *
 *   bench_codec gen text|random SIZE FILE
 *   bench_codec run FILE [CHUNK [LEVEL [REPEATS]]]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Text-like: log/CSV-ish lines from a vocabulary with numbers; zstd -1 gets ~3-4x. */
static void gen_text(uint8_t *p, size_t len)
{
	static const char *const words[] = {
		"the", "volume", "chunk", "object", "store", "cloud", "mount", "policy",
		"snapshot", "tier", "evict", "recall", "metadata", "private", "mirror", "of",
		"and", "a", "to", "in", "is", "with", "encrypted", "compressed", "invoice",
		"customer", "total", "amount", "EUR", "status", "ok", "failed", "request",
		"response", "latency", "user", "session", "GET", "PUT", "/api/v1/orders",
	};
	uint64_t s = 0x9e3779b97f4a7c15ull;
	size_t i = 0;

	while (i < len) {
		char w[32];
		uint64_t r = rng_next(&s);
		int n;

		if (r % 7 == 0)
			n = snprintf(w, sizeof(w), "%llu", (unsigned long long)(r >> 40) % 100000);
		else
			n = snprintf(w, sizeof(w), "%s",
				     words[(r >> 8) % (sizeof(words) / sizeof(words[0]))]);
		for (int j = 0; j < n && i < len; j++)
			p[i++] = (uint8_t)w[j];
		if (i < len)
			p[i++] = (r >> 32) % 13 == 0 ? '\n' : ((r >> 36) % 5 == 0 ? ',' : ' ');
	}
}

static void gen_random(uint8_t *p, size_t len)
{
	uint64_t s = 0x2545f4914f6cdd1dull;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = rng_next(&s);

		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
}

static int cmd_gen(const char *kind, const char *size_s, const char *path)
{
	uint64_t size;
	uint8_t *p;
	FILE *f;
	int rc = 1;

	if (parse_size(size_s, &size) || !(p = malloc(size ? size : 1))) {
		fprintf(stderr, "bench_codec: bad size '%s'\n", size_s);
		return 2;
	}
	if (!strcmp(kind, "text"))
		gen_text(p, size);
	else
		gen_random(p, size);
	f = fopen(path, "wb");
	if (f && fwrite(p, 1, size, f) == size && fclose(f) == 0)
		rc = 0;
	else
		fprintf(stderr, "bench_codec: cannot write '%s': %s\n", path, strerror(errno));
	free(p);
	return rc;
}

static double mbs(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / 1e6 / ((double)ns / 1e9) : 0;
}

static int cmd_run(const char *path, size_t chunk, int level, int repeats)
{
	struct tbuf data = TBUF_INIT, out = TBUF_INIT;
	struct tbuf *objs = NULL;
	char (*names)[CODEC_NAME_SIZE] = NULL;
	uint64_t best[4] = { UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX }, stored = 0;
	size_t nchunks, raw = 0;
	struct volkey k;
	int rc = 1;

	if (volkey_generate(&k)) {
		fprintf(stderr, "bench_codec: %s\n", keys_errmsg());
		return 1;
	}
	{
		FILE *f = fopen(path, "rb");
		long sz;

		if (!f || fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
		    tbuf_grow(&data, (size_t)sz + 1) || fread(data.data, 1, (size_t)sz, f) != (size_t)sz) {
			fprintf(stderr, "bench_codec: cannot read '%s'\n", path);
			if (f)
				fclose(f);
			goto out;
		}
		data.len = (size_t)sz;
		fclose(f);
	}
	nchunks = (data.len + chunk - 1) / chunk;
	objs = calloc(nchunks, sizeof(*objs));
	names = calloc(nchunks, sizeof(*names));
	if (!objs || !names)
		goto out;
	for (int r = 0; r < repeats; r++) {
		uint64_t t0, t1, t2, t3, t4;

		t0 = now_mono_ns();
		for (size_t i = 0; i < nchunks; i++) {
			size_t off = i * chunk, n = data.len - off < chunk ? data.len - off : chunk;

			if (codec_chunk_name(&k, data.data + off, n, names[i]))
				goto fail;
		}
		t1 = now_mono_ns();
		stored = 0;
		raw = 0;
		for (size_t i = 0; i < nchunks; i++) {
			size_t off = i * chunk, n = data.len - off < chunk ? data.len - off : chunk;
			struct codec_header h;

			tbuf_reset(&objs[i]);
			if (codec_encode(&k, data.data + off, n, names[i], level, &objs[i]))
				goto fail;
			stored += objs[i].len;
			if (!codec_inspect(objs[i].data, objs[i].len, &h) &&
			    h.compression == CODEC_COMP_NONE)
				raw++;
		}
		t2 = now_mono_ns();
		for (size_t i = 0; i < nchunks; i++) {
			tbuf_reset(&out);
			if (codec_decode(&k, objs[i].data, objs[i].len, names[i], 0, &out))
				goto fail;
		}
		t3 = now_mono_ns();
		for (size_t i = 0; i < nchunks; i++) {
			size_t off = i * chunk;

			tbuf_reset(&out);
			if (codec_decode(&k, objs[i].data, objs[i].len, names[i], CODEC_VERIFY_NAME,
					 &out) || memcmp(out.data, data.data + off, out.len))
				goto fail;
		}
		t4 = now_mono_ns();
		if (t1 - t0 < best[0]) best[0] = t1 - t0;
		if (t2 - t1 < best[1]) best[1] = t2 - t1;
		if (t3 - t2 < best[2]) best[2] = t3 - t2;
		if (t4 - t3 < best[3]) best[3] = t4 - t3;
	}
	printf("bytes=%zu chunks=%zu chunk=%zu raw_chunks=%zu stored=%llu ratio=%.3f "
	       "name_mbs=%.1f encode_mbs=%.1f decode_mbs=%.1f decode_verify_mbs=%.1f "
	       "name_encode_mbs=%.1f\n",
	       data.len, nchunks, chunk, raw, (unsigned long long)stored,
	       stored ? (double)data.len / (double)stored : 0, mbs(data.len, best[0]),
	       mbs(data.len, best[1]), mbs(data.len, best[2]), mbs(data.len, best[3]),
	       mbs(data.len, best[0] + best[1]));
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "bench_codec: codec failed: %s\n", codec_errmsg());
out:
	for (size_t i = 0; objs && i < nchunks; i++)
		tbuf_release(&objs[i]);
	free(objs);
	free(names);
	tbuf_release(&data);
	tbuf_release(&out);
	volkey_release(&k);
	return rc;
}

int main(int argc, char **argv)
{
	uint64_t chunk = 4 << 20;

	if (argc == 5 && !strcmp(argv[1], "gen"))
		return cmd_gen(argv[2], argv[3], argv[4]);
	if (argc >= 3 && argc <= 6 && !strcmp(argv[1], "run")) {
		if (argc > 3 && (parse_size(argv[3], &chunk) || chunk == 0)) {
			fprintf(stderr, "bench_codec: bad chunk size '%s'\n", argv[3]);
			return 2;
		}
		return cmd_run(argv[2], chunk, argc > 4 ? atoi(argv[4]) : CODEC_LEVEL_DEFAULT,
			       argc > 5 ? atoi(argv[5]) : 3);
	}
	fprintf(stderr, "usage: bench_codec gen text|random SIZE FILE\n"
			"       bench_codec run FILE [CHUNK [LEVEL [REPEATS]]]\n");
	return 2;
}
