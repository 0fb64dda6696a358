/*
 * test_policy.c - unit tests of the placement policy engine
 * (include/policy.h): a table of glob matches and invalid globs, rule
 * parsing with one row per validation error (each message must name the
 * offending value), canonical option strings that round-trip through
 * policy_args_split() and policy_rule_parse(), evaluation (first match
 * wins, default private, inclusive size bounds, owner, group, tags through
 * both xattr interfaces, ages, pins), next_eval in hand-computed cases and
 * as a property over random files, pathological globs, and explain output.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "policy.h"

#define SEC 1000000000LL
#define MIN (60 * SEC)
#define HOUR (3600 * SEC)
#define DAY (86400 * SEC)
#define NOW (1700000000LL * SEC)
#define MiB (1024ULL * 1024)
#define GiB (1024ULL * MiB)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ARGS 32

/* ---- globs ---- */

struct glob_case {
	const char *glob;
	const char *path;
	int match;
};

static const struct glob_case glob_cases[] = {
	/* '*' within one component */
	{ "/*", "/a", 1 },
	{ "/*", "/", 0 },
	{ "/*", "/a/b", 0 },
	{ "/a/*", "/a/b", 1 },
	{ "/a/*", "/a/b/c", 0 },
	{ "/a/*", "/a", 0 },
	{ "/a/*", "/a/.hidden", 1 },
	{ "/a/*.txt", "/a/x.txt", 1 },
	{ "/a/*.txt", "/a/.txt", 1 },
	{ "/a/*.txt", "/a/x.txt.bak", 0 },
	{ "/a/*.txt", "/a/dir/x.txt", 0 },
	{ "/*a*b*", "/xxaxxbxx", 1 },
	{ "/*a*b", "/ab/b", 0 },
	{ "/*a*b", "/aXbXb", 1 },
	/* '?' */
	{ "/a/?", "/a/b", 1 },
	{ "/a/?", "/a/bc", 0 },
	{ "/a?c", "/abc", 1 },
	{ "/a?c", "/a/c", 0 },
	{ "/a?c", "/ac", 0 },
	/* sets */
	{ "/[abc].log", "/b.log", 1 },
	{ "/[abc].log", "/d.log", 0 },
	{ "/[a-c]x", "/bx", 1 },
	{ "/[a-c]x", "/Bx", 0 },
	{ "/[!a-c]x", "/dx", 1 },
	{ "/[!a-c]x", "/ax", 0 },
	{ "/[^a-c]x", "/dx", 1 },
	{ "/[]]", "/]", 1 },
	{ "/[!]]", "/a", 1 },
	{ "/[!]]", "/]", 0 },
	{ "/[a-]", "/-", 1 },
	{ "/[0-9][0-9]", "/42", 1 },
	{ "/[0-9][0-9]", "/4x", 0 },
	{ "/report-[0-9][0-9][0-9][0-9].pdf", "/report-2024.pdf", 1 },
	/* literals, escapes, spaces, case */
	{ "/a.b", "/a.b", 1 },
	{ "/a.b", "/axb", 0 },
	{ "/\\*", "/*", 1 },
	{ "/\\*", "/a", 0 },
	{ "/a\\?", "/a?", 1 },
	{ "/a\\?", "/ab", 0 },
	{ "/my files/*.doc", "/my files/cv.doc", 1 },
	{ "/my files/*.doc", "/my_files/cv.doc", 0 },
	{ "/a", "/A", 0 },
	{ "/a", "/a", 1 },
	{ "/a", "/ab", 0 },
	{ "/a", "/a/b", 0 },
	{ "/", "/", 1 },
	{ "/", "/a", 0 },
	/* '**' at the end */
	{ "/finance/**", "/finance", 1 },
	{ "/finance/**", "/finance/a", 1 },
	{ "/finance/**", "/finance/a/b/c", 1 },
	{ "/finance/**", "/finance2/a", 0 },
	{ "/finance/**", "/finance2", 0 },
	{ "/finance/**", "/financ", 0 },
	{ "/finance/**", "/", 0 },
	{ "/**", "/", 1 },
	{ "/**", "/a/b", 1 },
	/* '**' at the start */
	{ "/**/x", "/x", 1 },
	{ "/**/x", "/a/b/x", 1 },
	{ "/**/x", "/a/b/xy", 0 },
	{ "/**/x", "/a/x/b", 0 },
	{ "/**/*.csv", "/d/e/f.csv", 1 },
	{ "/**/*.csv", "/f.csv", 1 },
	{ "/**/*.csv", "/d/e/f.csv/g", 0 },
	/* '**' in the middle, with backtracking */
	{ "/a/**/b", "/a/b", 1 },
	{ "/a/**/b", "/a/x/y/b", 1 },
	{ "/a/**/b", "/a/x/y/c", 0 },
	{ "/a/**/b", "/a/b/b/b", 1 },
	{ "/a/**/b/c", "/a/b/b/c", 1 },
	{ "/a/**/b/c", "/a/b/c/b", 0 },
	{ "/a/**/b/**/c", "/a/b/c", 1 },
	{ "/a/**/b/**/c", "/a/1/b/2/3/c", 1 },
	{ "/a/**/b/**/c", "/a/c/b", 0 },
	{ "/a/**/**/b", "/a/b", 1 },
	{ "/datasets/*/raw/**", "/datasets/x/raw/1/2", 1 },
	{ "/datasets/*/raw/**", "/datasets/x/y/raw/1", 0 },
	{ "/datasets/*/raw/**", "/datasets/x/raw", 1 },
	/* not absolute */
	{ "/a", "a", 0 },
};

static void test_glob_match(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(glob_cases); i++) {
		const struct glob_case *c = &glob_cases[i];
		char err[POLICY_ERR_MAX];
		int got = policy_glob_match(c->glob, c->path);

		if (got != c->match)
			fail_msg("glob '%s' path '%s': got %d want %d", c->glob, c->path, got,
				 c->match);
		if (policy_glob_check(c->glob, err, sizeof(err)))
			fail_msg("glob '%s' should be valid: %s", c->glob, err);
	}
}

struct bad_glob {
	const char *glob;
	const char *msg; /* expected in the message besides the glob */
};

static const struct bad_glob bad_globs[] = {
	{ "", "empty" },
	{ "a/b", "must start with '/'" },
	{ "*.txt", "must start with '/'" },
	{ "/a[", "unbalanced '['" },
	{ "/a[bc", "unbalanced '['" },
	{ "/[]", "unbalanced '['" },
	{ "/[!]", "unbalanced '['" },
	{ "/a[b/c]", "unbalanced '['" },
	{ "/***", "whole path component" },
	{ "/a/***/b", "whole path component" },
	{ "/a**", "whole path component" },
	{ "/**b", "whole path component" },
	{ "/a/**x/b", "whole path component" },
	{ "/a//b", "empty path component" },
	{ "/a/", "empty path component" },
	{ "/a/../b", "'..'" },
	{ "/./a", "'.'" },
	{ "/[z-a]", "reversed range 'z-a'" },
	{ "/a\\", "trailing backslash" },
};

static void test_glob_invalid(void **state)
{
	char err[POLICY_ERR_MAX];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad_globs); i++) {
		const struct bad_glob *c = &bad_globs[i];
		char quoted[128];

		err[0] = '\0';
		if (policy_glob_check(c->glob, err, sizeof(err)) != -EINVAL)
			fail_msg("glob '%s' should be invalid", c->glob);
		snprintf(quoted, sizeof(quoted), "'%s'", c->glob);
		if (!strstr(err, quoted) || !strstr(err, c->msg))
			fail_msg("glob '%s': message '%s' lacks %s or %s", c->glob, err, quoted,
				 c->msg);
	}
	assert_int_equal(policy_glob_check("/", NULL, 0), 0);
	assert_int_equal(policy_glob_check(NULL, NULL, 0), -EINVAL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Patterns that are exponential for a naive recursive matcher. The bound
 * on time is very generous: the point is "linear-ish", not a benchmark.
 */
static void test_glob_pathological(void **state)
{
	size_t depth = 2000, len = 4000;
	char *path = malloc(depth * 2 + 8), *name = malloc(len + 8);
	char glob[512];
	double t0 = now_s();
	size_t o = 0;

	(void)state;
	assert_non_null(path);
	assert_non_null(name);
	for (size_t i = 0; i < depth; i++) {
		path[o++] = '/';
		path[o++] = 'x';
	}
	strcpy(path + o, "/b");
	assert_int_equal(policy_glob_match("/**/**/**/a", path), 0);
	assert_int_equal(policy_glob_match("/**/**/**/b", path), 1);
	assert_int_equal(policy_glob_match("/**/x/**/x/**/x/**/x/**/a", path), 0);
	assert_int_equal(policy_glob_match("/**/x/**/x/**/x/**/x/**/b", path), 1);
	o = 0;
	for (int i = 0; i < 20; i++)
		o += (size_t)snprintf(glob + o, sizeof(glob) - o, "/**");
	snprintf(glob + o, sizeof(glob) - o, "/a");
	assert_int_equal(policy_glob_check(glob, NULL, 0), 0);
	assert_int_equal(policy_glob_match(glob, path), 0);
	o = 0;
	for (int i = 0; i < 20; i++)
		o += (size_t)snprintf(glob + o, sizeof(glob) - o, "/**/x*");
	snprintf(glob + o, sizeof(glob) - o, "/a");
	assert_int_equal(policy_glob_match(glob, path), 0);

	name[0] = '/';
	memset(name + 1, 'a', len);
	name[len + 1] = '\0';
	assert_int_equal(policy_glob_match("/*a*a*a*a*a*a*a*a*a*a*b", name), 0);
	assert_int_equal(policy_glob_match("/*a*a*a*a*a*a*a*a*a*a*a", name), 1);
	assert_int_equal(policy_glob_match("/*?*?*?*?*?*?*?*?*[!a]", name), 0);
	if (now_s() - t0 > 5.0)
		fail_msg("pathological globs took %.2fs", now_s() - t0);
	free(path);
	free(name);
}

/* ---- parsing ---- */

/* Split a NULL-terminated list of words into argc/argv. */
static int count_args(const char *const *words)
{
	int n = 0;

	while (words[n])
		n++;
	return n;
}

struct parse_err_case {
	const char *words[MAX_ARGS];
	const char *needle; /* the offending value, must appear in the message */
};

static const struct parse_err_case parse_err_cases[] = {
	{ { "--path", "a/b", "--placement", "private" }, "'a/b'" },
	{ { "--path", "/a[", "--placement", "private" }, "'/a['" },
	{ { "--path", "", "--placement", "private" }, "invalid glob ''" },
	{ { "--path", "/***", "--placement", "private" }, "'/***'" },
	{ { "--placement", "public" }, "'public'" },
	{ { "--placement", "Mirror" }, "'Mirror'" },
	{ { "--path", "/x" }, "missing --placement" },
	{ { 0 }, "missing --placement" },
	{ { "--placement", "private", "--evict-after", "1d" }, "--evict-after" },
	{ { "--placement", "private", "--watermark", "85%" }, "--watermark" },
	{ { "--placement", "private", "--settle", "1m" }, "--settle" },
	{ { "--placement", "private", "--export" }, "--export" },
	{ { "--placement", "on-demand", "--settle", "1m" }, "--settle" },
	{ { "--placement", "on-demand", "--export" }, "--export" },
	{ { "--placement", "mirror", "--export" }, "--export" },
	{ { "--placement", "mirror", "--evict-after", "1d" }, "--evict-after" },
	{ { "--placement", "mirror", "--watermark", "50" }, "--watermark" },
	{ { "--placement", "tier" }, "--evict-after or --watermark" },
	{ { "--placement", "tier", "--export" }, "--evict-after or --watermark" },
	{ { "--min-size", "2M", "--max-size", "1M", "--placement", "mirror" }, "'2M'" },
	{ { "--min-size", "2049K", "--max-size", "2M", "--placement", "mirror" }, "'2049K'" },
	{ { "--older-than", "30d", "--newer-than", "7d", "--placement", "mirror" }, "'30d'" },
	{ { "--older-than", "1w", "--newer-than", "7d", "--placement", "mirror" }, "'1w'" },
	{ { "--min-size", "12Q", "--placement", "mirror" }, "'12Q'" },
	{ { "--max-size", "-1", "--placement", "mirror" }, "'-1'" },
	{ { "--min-size", "", "--placement", "mirror" }, "''" },
	{ { "--idle", "5x", "--placement", "mirror" }, "'5x'" },
	{ { "--older-than", "-1d", "--placement", "mirror" }, "'-1d'" },
	{ { "--newer-than", "1.5d", "--placement", "mirror" }, "'1.5d'" },
	{ { "--placement", "mirror", "--settle", "soon" }, "'soon'" },
	{ { "--placement", "tier", "--evict-after", "1y" }, "'1y'" },
	{ { "--placement", "tier", "--watermark", "101" }, "'101'" },
	{ { "--placement", "tier", "--watermark", "85.5%" }, "'85.5%'" },
	{ { "--placement", "tier", "--watermark", "-5" }, "'-5'" },
	{ { "--placement", "tier", "--watermark", "%" }, "'%'" },
	{ { "--owner", "no-such-user-tierfs", "--placement", "mirror" }, "'no-such-user-tierfs'" },
	{ { "--group", "no-such-group-tierfs", "--placement", "mirror" }, "'no-such-group-tierfs'" },
	{ { "--owner", "4294967295", "--placement", "mirror" }, "'4294967295'" },
	{ { "--owner", "", "--placement", "mirror" }, "''" },
	{ { "--tag", "=x", "--placement", "mirror" }, "'=x'" },
	{ { "--tag", "", "--placement", "mirror" }, "''" },
	{ { "--foo", "--placement", "mirror" }, "'--foo'" },
	{ { "--pat=/x", "--placement", "mirror" }, "'--pat'" },
	{ { "stray", "--placement", "mirror" }, "'stray'" },
	{ { "-p", "/x", "--placement", "mirror" }, "'-p'" },
	{ { "--path", "/a", "--path", "/b", "--placement", "mirror" }, "'--path'" },
	{ { "--placement", "mirror", "--placement", "tier" }, "'--placement'" },
	{ { "--placement", "mirror", "--path" }, "'--path'" },
	{ { "--placement" }, "'--placement'" },
	{ { "--placement", "tier", "--watermark", "5", "--export=yes" }, "'--export'" },
	{ { "--placement", "private", "--cloud-write" }, "not private" },
	{ { "--path", "/r/**", "--placement", "tier", "--watermark", "5", "--cloud-write" },
	  "not tier without --export" },
	{ { "--placement", "mirror", "--cloud-write=yes" }, "'--cloud-write'" },
	{ { "--placement", "mirror", "--cloud-write", "--cloud-write" }, "'--cloud-write'" },
};

static void test_parse_errors(void **state)
{
	char err[POLICY_ERR_MAX];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(parse_err_cases); i++) {
		const struct parse_err_case *c = &parse_err_cases[i];
		struct policy_rule r;
		int rc;

		strcpy(err, "unset");
		rc = policy_rule_parse("r", count_args(c->words), (char *const *)c->words, &r, err,
				       sizeof(err));
		if (rc != -EINVAL)
			fail_msg("case %zu ('%s'): rc %d, want -EINVAL", i, c->needle, rc);
		if (!strstr(err, c->needle))
			fail_msg("case %zu: message '%s' lacks %s", i, err, c->needle);
		/* git style: lowercase start, one line, no final period */
		if (err[0] < 'a' || err[0] > 'z' || strchr(err, '\n') ||
		    err[strlen(err) - 1] == '.')
			fail_msg("case %zu: message '%s' is not git style", i, err);
		/* nothing to release, the rule is zeroed */
		assert_null(r.glob);
		assert_null(r.tag_name);
	}
}

static void test_rule_names(void **state)
{
	static const char *const good[] = { "a", "finance-private", "cold.v2", "A_b-9",
		"0123456789012345678901234567890123456789012345678901234567890123" };
	static const char *const bad[] = { "", "-x", "a b", "a/b", "a'b", "\xc3\xbc", "x=y",
		"01234567890123456789012345678901234567890123456789012345678901234" };
	const char *words[] = { "--placement", "private" };
	char err[POLICY_ERR_MAX];
	char quoted[128];
	struct policy_rule r;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(policy_rule_name_ok(good[i], err, sizeof(err)), 0);
		assert_int_equal(policy_rule_parse(good[i], 2, (char *const *)words, &r, err,
						   sizeof(err)), 0);
		assert_string_equal(r.name, good[i]);
		policy_rule_release(&r);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(quoted, sizeof(quoted), "'%s'", bad[i]);
		assert_int_equal(policy_rule_name_ok(bad[i], err, sizeof(err)), -EINVAL);
		if (!strstr(err, quoted))
			fail_msg("name %s: message '%s'", quoted, err);
		assert_int_equal(policy_rule_parse(bad[i], 2, (char *const *)words, &r, err,
						   sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, quoted));
	}
	assert_int_equal(policy_rule_name_ok(NULL, NULL, 0), -EINVAL);
}

struct roundtrip_case {
	const char *words[MAX_ARGS];
	const char *canonical; /* NULL: not checked, only the round trip */
};

static const struct roundtrip_case roundtrip_cases[] = {
	{ { "--placement", "private" }, "--placement private" },
	{ { "--path", "/datasets/**", "--min-size", "1M", "--placement", "on-demand" },
	  "--path '/datasets/**' --min-size 1M --placement on-demand" },
	{ { "--placement", "on-demand", "--min-size=1048576", "--path=/datasets/**" },
	  "--path '/datasets/**' --min-size 1M --placement on-demand" },
	{ { "--path", "/finance/**", "--placement", "private" },
	  "--path '/finance/**' --placement private" },
	{ { "--path", "/finance", "--placement", "private" }, "--path /finance --placement private" },
	{ { "--path", "/web/**", "--placement", "mirror" }, "--path '/web/**' --placement mirror" },
	{ { "--path", "/web/**", "--placement", "mirror", "--settle", "30s" },
	  "--path '/web/**' --placement mirror" },
	{ { "--path", "/web/**", "--placement", "mirror", "--settle", "300" },
	  "--path '/web/**' --placement mirror --settle 5m" },
	{ { "--placement", "mirror", "--settle", "0" }, "--placement mirror --settle 0s" },
	{ { "--min-size", "1536", "--max-size", "1.5K", "--placement", "mirror" },
	  "--min-size 1536 --max-size 1536 --placement mirror" },
	{ { "--max-size", "2g", "--min-size", "0", "--placement", "mirror" },
	  "--min-size 0 --max-size 2G --placement mirror" },
	{ { "--older-than", "7d", "--newer-than", "30d", "--idle", "36h", "--placement", "mirror" },
	  "--older-than 1w --newer-than 30d --idle 36h --placement mirror" },
	{ { "--idle", "90", "--placement", "on-demand" }, "--idle 90s --placement on-demand" },
	{ { "--owner", "0", "--group", "0", "--placement", "mirror" },
	  "--owner 0 --group 0 --placement mirror" },
	{ { "--owner", "root", "--group", "root", "--placement", "mirror" },
	  "--owner 0 --group 0 --placement mirror" },
	{ { "--tag", "user.tierfs.class=export", "--placement", "tier", "--evict-after", "14d",
	    "--export" },
	  "--tag user.tierfs.class=export --placement tier --evict-after 2w --export" },
	{ { "--tag", "user.tierfs.keep", "--placement", "on-demand" },
	  "--tag user.tierfs.keep --placement on-demand" },
	{ { "--tag", "user.note=", "--placement", "on-demand" },
	  "--tag user.note= --placement on-demand" },
	{ { "--tag", "user.note=two words", "--placement", "on-demand" },
	  "--tag 'user.note=two words' --placement on-demand" },
	{ { "--path", "/cold/**", "--placement", "tier", "--watermark", "85%" },
	  "--path '/cold/**' --placement tier --watermark 85%" },
	{ { "--path", "/cold/**", "--placement", "tier", "--watermark", "0", "--settle", "2h",
	    "--evict-after", "0" },
	  "--path '/cold/**' --placement tier --settle 2h --evict-after 0s --watermark 0%" },
	{ { "--path", "/it's a [!x] \"test\"/\\**", "--placement", "mirror" },
	  "--path '/it'\\''s a [!x] \"test\"/\\**' --placement mirror" },
	{ { "--path", "/my files/$HOME/`x`/*.doc", "--tag", "user.a='b'", "--placement", "mirror" },
	  NULL },
	{ { "--path", "/archive/**", "--min-size", "1", "--max-size", "1T", "--older-than", "1w",
	    "--newer-than", "52w", "--idle", "1d", "--owner", "1000", "--group", "100", "--tag",
	    "user.tierfs.class=cold", "--placement", "tier", "--settle", "1m", "--evict-after",
	    "30d", "--watermark", "90%", "--export" },
	  "--path '/archive/**' --min-size 1 --max-size 1T --older-than 1w --newer-than 52w "
	  "--idle 1d --owner 1000 --group 100 --tag user.tierfs.class=cold --placement tier "
	  "--settle 1m --evict-after 30d --watermark 90% --export" },
	{ { "--cloud-write", "--path", "/jobs/*/out/**", "--placement", "mirror" },
	  "--path '/jobs/*/out/**' --placement mirror --cloud-write" },
	{ { "--placement", "on-demand", "--cloud-write" }, "--placement on-demand --cloud-write" },
	{ { "--placement", "tier", "--evict-after", "1d", "--export", "--cloud-write" },
	  "--placement tier --evict-after 1d --export --cloud-write" },
};

static void test_roundtrip(void **state)
{
	char err[POLICY_ERR_MAX];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(roundtrip_cases); i++) {
		const struct roundtrip_case *c = &roundtrip_cases[i];
		struct policy_rule r, back;
		char *args = NULL, *args2 = NULL, **argv = NULL;
		int argc;

		if (policy_rule_parse("rt", count_args(c->words), (char *const *)c->words, &r, err,
				      sizeof(err)))
			fail_msg("case %zu: %s", i, err);
		assert_int_equal(policy_rule_to_args(&r, &args), 0);
		if (c->canonical && strcmp(args, c->canonical))
			fail_msg("case %zu: canonical '%s', want '%s'", i, args, c->canonical);
		assert_int_equal(policy_args_split(args, &argc, &argv), 0);
		assert_null(argv[argc]);
		if (policy_rule_parse("rt", argc, argv, &back, err, sizeof(err)))
			fail_msg("case %zu: reparse of '%s': %s", i, args, err);
		if (!policy_rule_equal(&r, &back))
			fail_msg("case %zu: '%s' does not round-trip", i, args);
		assert_int_equal(policy_rule_to_args(&back, &args2), 0);
		assert_string_equal(args, args2);
		free(args);
		free(args2);
		policy_args_free(argv);
		policy_rule_release(&r);
		policy_rule_release(&back);
	}
}

static void test_parse_fields(void **state)
{
	const char *words[] = { "--path", "/a/**", "--min-size", "1M", "--max-size", "1G",
				"--older-than", "1d", "--newer-than", "2w", "--idle", "3h",
				"--tag", "user.k=v=w", "--placement", "tier", "--evict-after",
				"5m", "--watermark", "85%", "--export" };
	const char *mirror[] = { "--placement", "mirror" };
	const char *priv[] = { "--placement", "private" };
	char err[POLICY_ERR_MAX];
	struct policy_rule r;

	(void)state;
	assert_int_equal(policy_rule_parse(NULL, (int)ARRAY_SIZE(words), (char *const *)words, &r,
					   err, sizeof(err)), 0);
	assert_string_equal(r.name, "");
	assert_string_equal(r.glob, "/a/**");
	assert_int_equal(r.min_size, MiB);
	assert_int_equal(r.max_size, GiB);
	assert_int_equal(r.older_than, 86400);
	assert_int_equal(r.newer_than, 14 * 86400);
	assert_int_equal(r.idle, 3 * 3600);
	assert_string_equal(r.tag_name, "user.k");
	assert_string_equal(r.tag_value, "v=w");
	assert_int_equal(r.placement, PLACEMENT_TIER);
	assert_true(r.export);
	assert_int_equal(r.settle, POLICY_SETTLE_DEFAULT);
	assert_int_equal(r.evict_after, 300);
	assert_int_equal(r.watermark, 85);
	assert_int_equal(r.has, POLICY_HAS_MIN_SIZE | POLICY_HAS_MAX_SIZE | POLICY_HAS_OLDER_THAN |
				POLICY_HAS_NEWER_THAN | POLICY_HAS_IDLE |
				POLICY_HAS_EVICT_AFTER | POLICY_HAS_WATERMARK);
	policy_rule_release(&r);
	assert_null(r.glob);
	policy_rule_release(&r); /* twice is harmless */

	assert_int_equal(policy_rule_parse("m", 2, (char *const *)mirror, &r, err, sizeof(err)), 0);
	assert_int_equal(r.settle, 30);
	assert_null(r.glob);
	policy_rule_release(&r);
	assert_int_equal(policy_rule_parse("p", 2, (char *const *)priv, &r, NULL, 0), 0);
	assert_int_equal(r.settle, 0);
	policy_rule_release(&r);
}

static void test_cloud_write_equal(void **state)
{
	const char *a[] = { "--path", "/r/**", "--placement", "mirror" };
	const char *b[] = { "--path", "/r/**", "--placement", "mirror", "--cloud-write" };
	struct policy_rule ra, rb, rb2;

	(void)state;
	assert_int_equal(policy_rule_parse("x", 4, (char *const *)a, &ra, NULL, 0), 0);
	assert_int_equal(policy_rule_parse("x", 5, (char *const *)b, &rb, NULL, 0), 0);
	assert_int_equal(policy_rule_parse("x", 5, (char *const *)b, &rb2, NULL, 0), 0);
	assert_false(ra.cloud_write);
	assert_true(rb.cloud_write);
	assert_false(policy_rule_equal(&ra, &rb));
	assert_true(policy_rule_equal(&rb, &rb2));
	policy_rule_release(&ra);
	policy_rule_release(&rb);
	policy_rule_release(&rb2);
}

struct prefix_case {
	const char *glob, *dir;
	int want;
};

static const struct prefix_case prefix_cases[] = {
	{ "/jobs/*/out/**", "/", 1 },
	{ "/jobs/*/out/**", "/jobs", 1 },
	{ "/jobs/*/out/**", "/jobs/q4", 1 },
	{ "/jobs/*/out/**", "/jobs/q4/out", 1 },
	{ "/jobs/*/out/**", "/jobs/q4/out/a/b", 1 },
	{ "/jobs/*/out/**", "/data", 0 },
	{ "/jobs/*/out/**", "/jobs/q4/in", 0 },
	{ "/jobs/*/out/**", "/jobs2", 0 },
	{ "/jobs/*/out", "/jobs/q4", 1 },
	{ "/jobs/*/out", "/jobs/q4/out", 0 },  /* nothing below out matches */
	{ "/a", "/", 1 },
	{ "/a", "/a", 0 },
	{ "/", "/", 0 },
	{ "/**", "/", 1 },
	{ "/**", "/x/y/z", 1 },
	{ "/**/out/*", "/a/b/c", 1 },
	{ "/**/out/*", "/a/out", 1 },
	{ "/**/out", "/a/out", 1 },      /* '/a/out/out' matches */
	{ "/r/[0-9]*/x", "/r/7a", 1 },
	{ "/r/[0-9]*/x", "/r/a7", 0 },
	{ "/r/[0-9]*/x", "/r/7a/x", 0 },
	{ "/a/**/b", "/a/x/y", 1 },
	{ "/a/**/b", "/c", 0 },
	{ "/a/b", "/A", 0 },
	{ "relative", "/", 0 },
	{ "/a", "relative", 0 },
};

static void test_glob_match_prefix(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(prefix_cases); i++) {
		const struct prefix_case *c = &prefix_cases[i];
		int got = policy_glob_match_prefix(c->glob, c->dir);

		if (got != c->want)
			fail_msg("glob '%s' dir '%s': got %d want %d", c->glob, c->dir, got, c->want);
	}
}

static void test_placement_names(void **state)
{
	enum placement p;

	(void)state;
	for (int i = PLACEMENT_PRIVATE; i <= PLACEMENT_TIER; i++) {
		assert_int_equal(placement_parse(placement_name((enum placement)i), &p), 0);
		assert_int_equal(p, i);
	}
	assert_string_equal(placement_name(PLACEMENT_ON_DEMAND), "on-demand");
	assert_string_equal(placement_name((enum placement)42), "?");
	assert_int_equal(placement_parse("ondemand", &p), -EINVAL);
	assert_int_equal(placement_parse(NULL, &p), -EINVAL);
}

static void test_args_split(void **state)
{
	static const struct {
		const char *in;
		int rc;
		const char *words[8];
	} cases[] = {
		{ "", 0, { 0 } },
		{ "   \t ", 0, { 0 } },
		{ "a  b\tc", 0, { "a", "b", "c" } },
		{ "'b c' x''y ''", 0, { "b c", "xy", "" } },
		{ "\"d\\\"e\\\\\" \"\\n\"", 0, { "d\"e\\", "\\n" } },
		{ "f\\ g 'it'\\''s'", 0, { "f g", "it's" } },
		{ "'abc", -EINVAL, { 0 } },
		{ "\"abc", -EINVAL, { 0 } },
		{ "abc\\", -EINVAL, { 0 } },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char **argv = NULL;
		int argc = -1, n = count_args(cases[i].words);

		assert_int_equal(policy_args_split(cases[i].in, &argc, &argv), cases[i].rc);
		if (cases[i].rc) {
			assert_null(argv);
			continue;
		}
		assert_int_equal(argc, n);
		for (int j = 0; j < n; j++)
			assert_string_equal(argv[j], cases[i].words[j]);
		assert_null(argv[n]);
		policy_args_free(argv);
	}
}

/* ---- evaluation ---- */

/* Parse a table of rules given as option strings. */
static struct policy_rule *load_rules(const char *const *specs, size_t n)
{
	struct policy_rule *rules = calloc(n, sizeof(*rules));
	char err[POLICY_ERR_MAX], name[32];

	assert_non_null(rules);
	for (size_t i = 0; i < n; i++) {
		char **argv;
		int argc;

		assert_int_equal(policy_args_split(specs[i], &argc, &argv), 0);
		snprintf(name, sizeof(name), "r%zu", i);
		if (policy_rule_parse(name, argc, argv, &rules[i], err, sizeof(err)))
			fail_msg("rule '%s': %s", specs[i], err);
		policy_args_free(argv);
	}
	return rules;
}

static void free_rules(struct policy_rule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++)
		policy_rule_release(&rules[i]);
	free(rules);
}

static const char *const eval_rules[] = {
	/* 0 */ "--path '/finance/**' --placement private",
	/* 1 */ "--path '/datasets/**' --min-size 1M --max-size 1G --placement on-demand",
	/* 2 */ "--owner 1000 --placement mirror",
	/* 3 */ "--group 50 --path '/shared/**' --placement mirror",
	/* 4 */ "--tag user.tierfs.class=export --placement tier --evict-after 30d --export",
	/* 5 */ "--tag user.tierfs.keep --placement on-demand",
	/* 6 */ "--path '/archive/**' --older-than 30d --placement tier --watermark 85%",
	/* 7 */ "--path '/hot/**' --newer-than 1d --placement mirror",
	/* 8 */ "--path '/scratch/**' --idle 7d --placement tier --evict-after 1d",
};

struct eval_case {
	const char *path;
	uint64_t size;
	uint32_t uid, gid;
	const char *xname, *xvalue; /* one attribute or none */
	int64_t mage, aage;         /* now - mtime, now - atime */
	enum policy_pin pin;
	int rule;
	enum placement placement;
	bool visible, evictable;
};

static const struct eval_case eval_cases[] = {
	/* first match wins: /finance is private even for uid 1000 */
	{ "/finance/q1.xlsx", 10, 1000, 0, NULL, NULL, 0, 0, 0, 0, PLACEMENT_PRIVATE, false, false },
	{ "/finance", 0, 0, 0, NULL, NULL, 0, 0, 0, 0, PLACEMENT_PRIVATE, false, false },
	/* default private */
	{ "/etc/x", 10, 0, 0, NULL, NULL, 0, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	/* inclusive size bounds */
	{ "/datasets/a", MiB, 0, 0, NULL, NULL, 0, 0, 0, 1, PLACEMENT_ON_DEMAND, true, false },
	{ "/datasets/a", MiB - 1, 0, 0, NULL, NULL, 0, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	{ "/datasets/a", GiB, 0, 0, NULL, NULL, 0, 0, 0, 1, PLACEMENT_ON_DEMAND, true, false },
	{ "/datasets/a", GiB + 1, 0, 0, NULL, NULL, 0, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	{ "/datasets/a", GiB + 1, 1000, 0, NULL, NULL, 0, 0, 0, 2, PLACEMENT_MIRROR, true, false },
	/* owner, group */
	{ "/home/a", 1, 1000, 0, NULL, NULL, 0, 0, 0, 2, PLACEMENT_MIRROR, true, false },
	{ "/home/a", 1, 1001, 0, NULL, NULL, 0, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	{ "/shared/x", 1, 0, 50, NULL, NULL, 0, 0, 0, 3, PLACEMENT_MIRROR, true, false },
	{ "/shared/x", 1, 0, 51, NULL, NULL, 0, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	{ "/other/x", 1, 0, 50, NULL, NULL, 0, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	/* tags: value match, presence */
	{ "/x", 1, 0, 0, "user.tierfs.class", "export", 0, 0, 0, 4, PLACEMENT_TIER, true, true },
	{ "/x", 1, 0, 0, "user.tierfs.class", "exports", 0, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	{ "/x", 1, 0, 0, "user.tierfs.class", "expor", 0, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	{ "/x", 1, 0, 0, "user.tierfs.class", "", 0, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	{ "/x", 1, 0, 0, "user.tierfs.keep", "", 0, 0, 0, 5, PLACEMENT_ON_DEMAND, true, false },
	{ "/x", 1, 0, 0, "user.tierfs.keep", "yes", 0, 0, 0, 5, PLACEMENT_ON_DEMAND, true, false },
	{ "/x", 1, 0, 0, "user.other", "export", 0, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	/* --older-than: at 30d exactly it holds */
	{ "/archive/a", 1, 0, 0, NULL, NULL, 31 * DAY, 0, 0, 6, PLACEMENT_TIER, false, true },
	{ "/archive/a", 1, 0, 0, NULL, NULL, 30 * DAY, 0, 0, 6, PLACEMENT_TIER, false, true },
	{ "/archive/a", 1, 0, 0, NULL, NULL, 30 * DAY - 1, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	/* --newer-than: at 1d exactly it no longer holds */
	{ "/hot/a", 1, 0, 0, NULL, NULL, HOUR, 0, 0, 7, PLACEMENT_MIRROR, true, false },
	{ "/hot/a", 1, 0, 0, NULL, NULL, DAY - 1, 0, 0, 7, PLACEMENT_MIRROR, true, false },
	{ "/hot/a", 1, 0, 0, NULL, NULL, DAY, 0, 0, -1, PLACEMENT_PRIVATE, false, false },
	{ "/hot/a", 1, 0, 0, NULL, NULL, -HOUR, 0, 0, 7, PLACEMENT_MIRROR, true, false },
	/* --idle */
	{ "/scratch/a", 1, 0, 0, NULL, NULL, 30 * DAY, 8 * DAY, 0, 8, PLACEMENT_TIER, false, true },
	{ "/scratch/a", 1, 0, 0, NULL, NULL, 30 * DAY, 6 * DAY, 0, -1, PLACEMENT_PRIVATE, false, false },
	/* pins */
	{ "/datasets/a", MiB, 0, 0, NULL, NULL, 0, 0, POLICY_PIN_PRIVATE, -1, PLACEMENT_PRIVATE, false, false },
	{ "/datasets/a", MiB, 0, 0, NULL, NULL, 0, 0, POLICY_PIN_LOCAL, 1, PLACEMENT_ON_DEMAND, true, false },
	{ "/x", 1, 0, 0, "user.tierfs.class", "export", 0, 0, POLICY_PIN_LOCAL, 4, PLACEMENT_TIER, true, false },
};

struct fake_xattr {
	const char *name, *value;
	int calls;
	int fail; /* negative errno to return */
};

static ssize_t fake_getxattr(void *arg, const char *name, void *buf, size_t size)
{
	struct fake_xattr *x = arg;
	size_t len;

	x->calls++;
	if (x->fail)
		return x->fail;
	if (!x->name || strcmp(name, x->name))
		return -ENODATA;
	len = strlen(x->value);
	if (!size)
		return (ssize_t)len;
	if (len > size)
		return -ERANGE;
	memcpy(buf, x->value, len);
	return (ssize_t)len;
}

static void test_evaluate(void **state)
{
	size_t n = ARRAY_SIZE(eval_rules);
	struct policy_rule *rules = load_rules(eval_rules, n);

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(eval_cases); i++) {
		const struct eval_case *c = &eval_cases[i];
		struct policy_xattr xa = { c->xname, c->xvalue, c->xvalue ? strlen(c->xvalue) : 0 };
		struct fake_xattr fx = { c->xname, c->xvalue, 0, 0 };
		struct policy_file f = {
			.path = c->path, .size = c->size, .mtime = NOW - c->mage,
			.atime = NOW - c->aage, .uid = c->uid, .gid = c->gid, .pin = c->pin,
		};
		struct policy_result res;

		/* both attribute interfaces must agree */
		for (int way = 0; way < 2; way++) {
			f.xattrs = way == 0 && c->xname ? &xa : NULL;
			f.nxattrs = way == 0 && c->xname ? 1 : 0;
			f.getxattr = way == 1 ? fake_getxattr : NULL;
			f.getxattr_arg = way == 1 ? &fx : NULL;
			assert_int_equal(policy_evaluate(rules, n, &f, NOW, &res), 0);
			if (res.rule != c->rule || res.placement != c->placement ||
			    res.visible != c->visible || res.evictable != c->evictable)
				fail_msg("case %zu (%s, way %d): rule %d %s visible %d evictable %d",
					 i, c->path, way, res.rule, placement_name(res.placement),
					 res.visible, res.evictable);
			assert_true(res.matched == (c->rule < 0 ? NULL : &rules[c->rule]));
			assert_int_equal(res.pinned, c->pin != POLICY_PIN_NONE);
		}
	}
	free_rules(rules, n);
}

static void test_evaluate_xattr_errors(void **state)
{
	const char *const specs[] = {
		"--path '/a/**' --tag user.k --placement mirror",
		"--path '/**' --placement on-demand",
	};
	struct policy_rule *rules = load_rules(specs, 2);
	struct fake_xattr fx = { "user.k", "v", 0, -EIO };
	struct policy_file f = { .path = "/b/x", .getxattr = fake_getxattr, .getxattr_arg = &fx };
	struct policy_result res;

	(void)state;
	/* attributes are not read when the path already fails */
	assert_int_equal(policy_evaluate(rules, 2, &f, NOW, &res), 0);
	assert_int_equal(res.rule, 1);
	assert_int_equal(fx.calls, 0);
	f.path = "/a/x";
	assert_int_equal(policy_evaluate(rules, 2, &f, NOW, &res), -EIO);
	assert_int_equal(fx.calls, 1);
	fx.fail = 0;
	assert_int_equal(policy_evaluate(rules, 2, &f, NOW, &res), 0);
	assert_int_equal(res.rule, 0);
	free_rules(rules, 2);
}

static void test_evaluate_long_tag_value(void **state)
{
	char spec[1200], value[1001];
	const char *specs[] = { spec };
	struct policy_rule *rules;
	struct fake_xattr fx = { "user.big", value, 0, 0 };
	struct policy_file f = { .path = "/a", .getxattr = fake_getxattr, .getxattr_arg = &fx };
	struct policy_result res;

	(void)state;
	memset(value, 'v', 1000);
	value[1000] = '\0';
	snprintf(spec, sizeof(spec), "--tag user.big=%s --placement mirror", value);
	rules = load_rules(specs, 1);
	assert_int_equal(policy_evaluate(rules, 1, &f, NOW, &res), 0);
	assert_int_equal(res.rule, 0);
	value[999] = 'w';
	assert_int_equal(policy_evaluate(rules, 1, &f, NOW, &res), 0);
	assert_int_equal(res.rule, -1);
	free_rules(rules, 1);
}

/* ---- next_eval ---- */

struct next_case {
	const char *name;
	const char *specs[4];
	int64_t mage, aage;
	int rule;
	int64_t next_rel; /* next_eval - NOW, or INT64_MAX */
};

static const struct next_case next_cases[] = {
	{ "older-than will match in 10 days",
	  { "--older-than 10d --placement tier --evict-after 1d" }, 0, 0, -1, 10 * DAY },
	{ "older-than matched stays matched", { "--older-than 10d --placement mirror" }, 11 * DAY,
	  0, 0, INT64_MAX },
	{ "newer-than matched expires", { "--newer-than 1d --placement mirror" }, HOUR, 0, 0,
	  DAY - HOUR },
	{ "newer-than expired for good", { "--newer-than 1d --placement mirror" }, 2 * DAY, 0, -1,
	  INT64_MAX },
	{ "idle will match", { "--idle 7d --placement tier --evict-after 1d" }, 30 * DAY, 2 * DAY,
	  -1, 5 * DAY },
	{ "no time condition", { "--path '/**' --placement mirror" }, 0, 0, 0, INT64_MAX },
	{ "no rules", { NULL }, 0, 0, -1, INT64_MAX },
	{ "earlier rule fails on path, not age",
	  { "--path '/other/**' --older-than 1d --placement private",
	    "--path '/**' --placement mirror" },
	  0, 0, 1, INT64_MAX },
	{ "earlier rule fails on size",
	  { "--min-size 1G --older-than 1d --placement private", "--placement mirror" }, 0, 0, 1,
	  INT64_MAX },
	{ "earlier rule takes over before the matched one expires",
	  { "--older-than 10d --placement private", "--newer-than 30d --placement mirror" }, 0, 0,
	  1, 10 * DAY },
	{ "matched rule expires before the earlier one takes over",
	  { "--older-than 10d --placement private", "--newer-than 2d --placement mirror" }, 0, 0,
	  1, 2 * DAY },
	{ "rules after the match do not count",
	  { "--placement mirror", "--older-than 1d --placement private" }, 0, 0, 0, INT64_MAX },
	{ "without a match every rule counts",
	  { "--path /nope --placement mirror", "--older-than 3d --placement on-demand",
	    "--idle 2d --placement on-demand" },
	  0, 0, -1, 2 * DAY },
	{ "age window already past",
	  { "--older-than 1d --newer-than 2d --placement mirror" }, 3 * DAY, 0, -1, INT64_MAX },
	{ "age window ahead: opens",
	  { "--older-than 1d --newer-than 2d --placement mirror" }, 0, 0, -1, DAY },
	{ "age window open: closes",
	  { "--older-than 1d --newer-than 2d --placement mirror" }, DAY + HOUR, 0, 0, DAY - HOUR },
	{ "older-than and idle: the later one",
	  { "--older-than 1d --idle 5d --placement tier --evict-after 1h" }, 0, 0, -1, 5 * DAY },
	{ "older-than and idle: idle satisfied already",
	  { "--older-than 4d --idle 1d --placement tier --evict-after 1h" }, 0, 3 * DAY, -1,
	  4 * DAY },
	{ "modified in the future", { "--older-than 1d --placement mirror" }, -DAY, 0, -1,
	  2 * DAY },
};

static void check_next(const struct next_case *c)
{
	size_t n = 0;
	struct policy_rule *rules;
	struct policy_file f = { .path = "/data/x", .size = 100 };
	struct policy_result res, at, before;

	while (n < ARRAY_SIZE(c->specs) && c->specs[n])
		n++;
	rules = load_rules(c->specs, n);
	f.mtime = NOW - c->mage;
	f.atime = NOW - c->aage;
	assert_int_equal(policy_evaluate(rules, n, &f, NOW, &res), 0);
	if (res.rule != c->rule)
		fail_msg("%s: rule %d, want %d", c->name, res.rule, c->rule);
	if (c->next_rel == INT64_MAX) {
		if (res.next_eval != INT64_MAX)
			fail_msg("%s: next_eval now%+" PRId64 "s, want never", c->name,
				 (res.next_eval - NOW) / SEC);
	} else {
		if (res.next_eval != NOW + c->next_rel)
			fail_msg("%s: next_eval now%+" PRId64 "ns, want now%+" PRId64 "ns",
				 c->name, res.next_eval - NOW, c->next_rel);
		/* the result holds until next_eval and changes exactly then */
		assert_int_equal(policy_evaluate(rules, n, &f, res.next_eval - 1, &before), 0);
		assert_int_equal(before.rule, res.rule);
		assert_int_equal(policy_evaluate(rules, n, &f, res.next_eval, &at), 0);
		if (at.rule == res.rule)
			fail_msg("%s: nothing changes at next_eval", c->name);
	}
	free_rules(rules, n);
}

static void test_next_eval(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(next_cases); i++)
		check_next(&next_cases[i]);
}

static void test_next_eval_pinned(void **state)
{
	const char *const specs[] = { "--older-than 1d --placement mirror" };
	struct policy_rule *rules = load_rules(specs, 1);
	struct policy_file f = { .path = "/a", .mtime = NOW, .atime = NOW };
	struct policy_result res;

	(void)state;
	f.pin = POLICY_PIN_PRIVATE;
	assert_int_equal(policy_evaluate(rules, 1, &f, NOW, &res), 0);
	assert_int_equal(res.next_eval, INT64_MAX);
	f.pin = POLICY_PIN_LOCAL;
	assert_int_equal(policy_evaluate(rules, 1, &f, NOW, &res), 0);
	assert_int_equal(res.next_eval, NOW + DAY);
	free_rules(rules, 1);
}

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Property: with random age rules and files, the rule index is constant on
 * [now, next_eval) (sampled) and differs at next_eval; when next_eval is
 * "never", it is the same far in the future.
 */
static void test_next_eval_property(void **state)
{
	static const char *const opts[] = { "--older-than", "--newer-than", "--idle" };
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	(void)state;
	for (int round = 0; round < 300; round++) {
		char specs[4][128];
		const char *ptrs[4];
		size_t n = 1 + rng(&seed) % 4;
		struct policy_rule *rules;
		struct policy_file f = { .path = "/p/x", .size = rng(&seed) % 3 };
		struct policy_result res, other;

		for (size_t i = 0; i < n; i++) {
			int o = (int)(rng(&seed) % 3);
			uint64_t d = 1 + rng(&seed) % 20;
			size_t len = (size_t)snprintf(specs[i], sizeof(specs[i]), "%s %" PRIu64 "d",
						      opts[o], d);

			if (rng(&seed) % 2)
				len += (size_t)snprintf(specs[i] + len, sizeof(specs[i]) - len,
							" --max-size %" PRIu64, rng(&seed) % 3);
			snprintf(specs[i] + len, sizeof(specs[i]) - len, " --placement mirror");
			ptrs[i] = specs[i];
		}
		rules = load_rules(ptrs, n);
		f.mtime = NOW - (int64_t)(rng(&seed) % (25 * 24)) * HOUR;
		f.atime = f.mtime + (int64_t)(rng(&seed) % (25 * 24)) * HOUR;
		assert_int_equal(policy_evaluate(rules, n, &f, NOW, &res), 0);
		assert_true(res.next_eval > NOW);
		if (res.next_eval == INT64_MAX) {
			for (int k = 1; k <= 60; k++) {
				policy_evaluate(rules, n, &f, NOW + k * DAY, &other);
				assert_int_equal(other.rule, res.rule);
			}
		} else {
			for (int k = 0; k < 16; k++) {
				int64_t t = NOW + (int64_t)(rng(&seed) % (uint64_t)(res.next_eval - NOW));

				policy_evaluate(rules, n, &f, t, &other);
				assert_int_equal(other.rule, res.rule);
			}
			policy_evaluate(rules, n, &f, res.next_eval, &other);
			assert_int_not_equal(other.rule, res.rule);
		}
		free_rules(rules, n);
	}
}

/* ---- explain ---- */

static char *explain(const char *const *specs, size_t n, const struct policy_file *f)
{
	struct policy_rule *rules = load_rules(specs, n);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	for (size_t i = 0; i < n; i++)
		snprintf(rules[i].name, sizeof(rules[i].name), "%s",
			 i == 0 ? "finance-private" : i == 1 ? "big-data" : "cold");
	policy_explain(rules, n, f, NOW, out);
	fclose(out);
	free_rules(rules, n);
	return buf;
}

static void expect(const char *text, const char *needle)
{
	if (!strstr(text, needle))
		fail_msg("explain output lacks \"%s\":\n%s", needle, text);
}

static void test_explain(void **state)
{
	const char *const specs[] = {
		"--path '/finance/**' --placement private",
		"--path '/data/**' --min-size 1M --placement on-demand",
		"--path '/data/**' --older-than 7d --placement tier --evict-after 30d --watermark 85% --export",
	};
	struct policy_xattr xa = { "user.tierfs.class", "x", 1 };
	struct policy_file f = { .path = "/data/a.csv", .size = 1000, .mtime = NOW - 2 * DAY,
				 .atime = NOW, .xattrs = &xa, .nxattrs = 1 };
	char *text;

	(void)state;
	text = explain(specs, 3, &f);
	expect(text, "rule 1 'finance-private': path '/finance/**' does not match\n");
	expect(text, "rule 2 'big-data': size 1000 is below --min-size 1M\n");
	expect(text, "rule 3 'cold': modified 2d ago, not --older-than 1w (matches in 5d)\n");
	expect(text, "no rule matches: default private\n");
	expect(text, "placement: private");
	expect(text, "time alone may change this in 5d\n");
	free(text);

	f.mtime = NOW - 9 * DAY - 2 * HOUR;
	text = explain(specs, 3, &f);
	expect(text, "rule 3 'cold' matches: path '/data/**' matches; modified 9d 2h ago, "
		     "--older-than 1w\n");
	expect(text, "placement: tier (visible to cloud mounts");
	expect(text, "evicted when idle 30d or when local disk usage is above 85%");
	assert_null(strstr(text, "time alone"));
	assert_null(strstr(text, "cloud write"));
	free(text);

	f.size = 2 * MiB;
	text = explain(specs, 3, &f);
	expect(text, "rule 2 'big-data' matches: path '/data/**' matches; size 2097152 is at least "
		     "--min-size 1M\n");
	expect(text, "placement: on-demand");
	assert_null(strstr(text, "rule 3"));
	free(text);

	f.pin = POLICY_PIN_PRIVATE;
	text = explain(specs, 3, &f);
	expect(text, "pinned --private");
	expect(text, "placement: private");
	free(text);

	f.pin = POLICY_PIN_NONE;
	f.path = "/finance/x";
	text = explain(specs, 1, &f);
	expect(text, "rule 1 'finance-private' matches: path '/finance/**' matches\n");
	free(text);
}

static void test_explain_catch_all(void **state)
{
	const char *const specs[] = { "--placement mirror --settle 5m" };
	const char *const cw[] = { "--placement mirror --cloud-write" };
	struct policy_file f = { .path = "/x", .mtime = NOW, .atime = NOW };
	char *text;

	(void)state;
	text = explain(specs, 1, &f);
	expect(text, "matches: no conditions, matches every path\n");
	expect(text, "placement: mirror (visible to cloud mounts, uploaded once writes settle "
		     "for 5m, always local)\n");
	assert_null(strstr(text, "cloud write"));
	free(text);
	text = explain(cw, 1, &f);
	expect(text, "cloud write: nodes with a node key may write here");
	free(text);
}

/* ---- shadowed rules ---- */

struct covers_case {
	const char *a, *b;
	bool covers;
};

static const struct covers_case covers_cases[] = {
	{ "--placement mirror", "--path '/finance/**' --placement private", true },
	{ "--path '/**' --placement mirror", "--min-size 1M --placement private", true },
	{ "--path '/data/**' --placement mirror", "--path '/data/**' --placement private", true },
	{ "--path '/data/**' --placement mirror", "--path '/data/x/*.csv' --placement private", true },
	{ "--path '/data/**' --placement mirror", "--path /data --placement private", true },
	{ "--path '/data/**' --placement mirror", "--path '/database/**' --placement private", false },
	{ "--path '/data/**' --placement mirror", "--path '/dat*/x' --placement private", false },
	{ "--path '/data/**' --placement mirror", "--placement private", false },
	{ "--path '/d*/**' --placement mirror", "--path '/data/x' --placement private", false },
	{ "--path '/a/*.csv' --placement mirror", "--path '/a/x.csv' --placement private", false },
	{ "--min-size 1M --placement mirror", "--placement private", false },
	{ "--min-size 1M --placement mirror", "--min-size 2M --placement private", true },
	{ "--min-size 2M --placement mirror", "--min-size 1M --placement private", false },
	{ "--max-size 1G --placement mirror", "--max-size 1M --placement private", true },
	{ "--older-than 7d --placement mirror", "--older-than 30d --placement private", true },
	{ "--older-than 30d --placement mirror", "--older-than 7d --placement private", false },
	{ "--newer-than 7d --placement mirror", "--newer-than 1d --placement private", true },
	{ "--idle 1d --placement mirror", "--placement private", false },
	{ "--owner 1000 --placement mirror", "--owner 1000 --path '/x/**' --placement private", true },
	{ "--owner 1000 --placement mirror", "--owner 1001 --placement private", false },
	{ "--tag user.c --placement mirror", "--tag user.c=x --placement private", true },
	{ "--tag user.c=x --placement mirror", "--tag user.c --placement private", false },
	{ "--tag user.c=x --placement mirror", "--tag user.c=x --placement private", true },
};

static void test_covers(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(covers_cases) / sizeof(covers_cases[0]); i++) {
		const struct covers_case *c = &covers_cases[i];
		const char *specs[2] = { c->a, c->b };
		struct policy_rule *r = load_rules(specs, 2);

		if (policy_rule_covers(&r[0], &r[1]) != c->covers)
			fail_msg("'%s' covers '%s': expected %d", c->a, c->b, c->covers);
		assert_true(policy_rule_covers(&r[1], &r[1]));
		free_rules(r, 2);
	}
	{
		const char *specs[4] = { "--placement mirror", "--placement tier --export --evict-after 1d", "--placement tier --evict-after 1d",
					 "--placement private" };
		struct policy_rule *r = load_rules(specs, 4);

		assert_true(policy_rule_exports(&r[0]));
		assert_true(policy_rule_exports(&r[1]));
		assert_false(policy_rule_exports(&r[2]));
		assert_false(policy_rule_exports(&r[3]));
		free_rules(r, 4);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_glob_match),
		cmocka_unit_test(test_glob_invalid),
		cmocka_unit_test(test_glob_pathological),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_rule_names),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_cloud_write_equal),
		cmocka_unit_test(test_glob_match_prefix),
		cmocka_unit_test(test_placement_names),
		cmocka_unit_test(test_args_split),
		cmocka_unit_test(test_evaluate),
		cmocka_unit_test(test_evaluate_xattr_errors),
		cmocka_unit_test(test_evaluate_long_tag_value),
		cmocka_unit_test(test_next_eval),
		cmocka_unit_test(test_next_eval_pinned),
		cmocka_unit_test(test_next_eval_property),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_explain_catch_all),
		cmocka_unit_test(test_covers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
