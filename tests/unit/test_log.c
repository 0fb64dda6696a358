/*
 * test_log.c - unit tests of the log (src/log.c), written to a temporary
 * file put in place of stderr: each line starts with an ISO 8601 UTC time
 * with milliseconds and the level; a message identical to the one before
 * is counted, not repeated, and the count is told before the next
 * different message; levels above the set one are dropped; level names
 * parse (table).
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* Run fn with stderr going to a file; the lines written, in out. */
static void capture(void (*fn)(void), char *out, size_t len)
{
	char path[] = "/tmp/tierfs-log.XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, out, len - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
}

static void lines_repeat(void)
{
	log_set_level(LOG_LVL_INFO);
	log_error("store failing: %s", "refused");
	for (int k = 0; k < 4; k++)
		log_error("store failing: %s", "refused");
	log_info("store works again");
	log_debug("not shown at level info");
}

static void test_lines(void **state)
{
	char out[4096], *line, *save = NULL;
	regex_t re;
	int n = 0;

	(void)state;
	capture(lines_repeat, out, sizeof(out));
	assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
				      "tierfs: (error|warning|info|debug): ", REG_EXTENDED | REG_NOSUB), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		if (regexec(&re, line, 0, NULL, 0))
			fail_msg("line without time and level: '%s'", line);
		if (n == 0)
			assert_non_null(strstr(line, "error: store failing: refused"));
		if (n == 1)
			assert_non_null(strstr(line, "last message repeated 4 times"));
		if (n == 2)
			assert_non_null(strstr(line, "info: store works again"));
	}
	regfree(&re);
	assert_int_equal(n, 3);
}

static void test_parse(void **state)
{
	static const struct {
		const char *s;
		int rc;
		enum log_level lvl;
	} cases[] = {
		{ "error", 0, LOG_LVL_ERROR }, { "warning", 0, LOG_LVL_WARN }, { "info", 0, LOG_LVL_INFO },
		{ "debug", 0, LOG_LVL_DEBUG }, { "verbose", -1, LOG_LVL_INFO }, { "", -1, LOG_LVL_INFO },
	};

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		enum log_level lvl = LOG_LVL_INFO;

		assert_int_equal(log_level_parse(cases[k].s, &lvl), cases[k].rc);
		assert_int_equal(lvl, cases[k].lvl);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
