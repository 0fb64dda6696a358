/* bench_gen - writes SIZE bytes of a sensor-log CSV to stdout, for
 * scripts/bench-cloud --content text: the kind of exported dataset a cloud
 * job reads, and compressible the way such data is (each line has its own
 * timestamp, ids and readings; nothing repeats verbatim).
 *
 *   bench_gen SIZE [SEED]
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static uint64_t rnd(void) /* xorshift64* */
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

int main(int argc, char **argv)
{
	static const char *const region[] = { "eu-west-1", "eu-central-1", "us-east-1",
					      "us-west-2", "ap-south-1" };
	static const char *const status[] = { "OK", "OK", "OK", "WARN", "OK", "DEGRADED" };
	static char buf[1 << 20];
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: bench_gen SIZE [SEED]\n");
		return 2;
	}
	long long left = strtoll(argv[1], NULL, 10);
	rng_state = argc == 3 ? strtoull(argv[2], NULL, 10) | 1 : 0x9E3779B97F4A7C15ULL;
	uint64_t t = 1795000000000ULL; /* ms */
	size_t used = 0;

	while (left > 0) {
		char line[256];
		uint64_t r = rnd(), r2 = rnd();
		t += 1 + r % 40;
		int n = snprintf(line, sizeof(line),
				 "%" PRIu64 ".%03u,sensor-%05u,%s,%u.%04u,%u.%02u,%u,%s,%016" PRIx64 "\n",
				 t / 1000, (unsigned)(t % 1000), (unsigned)(r % 20000),
				 region[(r >> 20) % 5], (unsigned)(10 + (r >> 24) % 30),
				 (unsigned)((r >> 32) % 10000), (unsigned)(980 + (r2 % 60)),
				 (unsigned)((r2 >> 8) % 100), (unsigned)((r2 >> 16) % 5000),
				 status[(r2 >> 32) % 6], rnd());
		if (n > left)
			n = (int)left;
		if (used + (size_t)n > sizeof(buf)) {
			if (fwrite(buf, 1, used, stdout) != used)
				return 1;
			used = 0;
		}
		memcpy(buf + used, line, (size_t)n);
		used += (size_t)n;
		left -= n;
	}
	if (used && fwrite(buf, 1, used, stdout) != used)
		return 1;
	return fflush(stdout) ? 1 : 0;
}
