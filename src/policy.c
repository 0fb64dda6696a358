/*
 * policy.c - the placement policy engine. It parses and validates rules
 * from the option words of `tierfs policy add`, renders them back as a
 * canonical option string (the form they are stored and listed in),
 * matches path globs component by component without recursion or
 * allocation, evaluates an ordered rule list for one file (first match
 * wins, default private, pins first) and computes when the passage of time
 * alone could change the answer, so that the caller can index files by
 * that instant instead of rescanning a million of them. policy_explain()
 * prints the same evaluation for a human. No SQLite, FUSE or I/O here.
 */
#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define NS_PER_SEC 1000000000LL
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *const placement_names[] = {
	[PLACEMENT_PRIVATE] = "private",
	[PLACEMENT_ON_DEMAND] = "on-demand",
	[PLACEMENT_MIRROR] = "mirror",
	[PLACEMENT_TIER] = "tier",
};

const char *placement_name(enum placement p)
{
	if ((unsigned)p >= ARRAY_SIZE(placement_names))
		return "?";
	return placement_names[p];
}

int placement_parse(const char *s, enum placement *out)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(placement_names); i++) {
		if (!strcmp(s, placement_names[i])) {
			*out = (enum placement)i;
			return 0;
		}
	}
	return -EINVAL;
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- globs ---- */

/* A component runs from s to the next '/' or the end of the string. */
static const char *comp_end(const char *s)
{
	return s + strcspn(s, "/");
}

/* The first component of an absolute path or glob; NULL for "/". */
static const char *comp_first(const char *s)
{
	return s[1] ? s + 1 : NULL;
}

/* The component after s; NULL after the last one. */
static const char *comp_next(const char *s)
{
	const char *e = comp_end(s);

	return *e ? e + 1 : NULL;
}

static bool comp_is_dstar(const char *s)
{
	return s[0] == '*' && s[1] == '*' && (s[2] == '/' || !s[2]);
}

/*
 * Match byte c against the set that starts just after '[' at p. Returns 1
 * or 0 with *next just past the closing ']', or -1 when the set is not
 * closed within the component (the '[' is then a literal).
 */
static int class_match(const char *p, const char *pend, unsigned char c, const char **next)
{
	bool neg = false, hit = false, first = true;

	if (p < pend && (*p == '!' || *p == '^')) {
		neg = true;
		p++;
	}
	while (p < pend && (*p != ']' || first)) {
		unsigned char lo, hi;

		first = false;
		if (*p == '\\' && p + 1 < pend)
			p++;
		lo = hi = (unsigned char)*p++;
		if (p + 1 < pend && *p == '-' && p[1] != ']') {
			p++;
			if (*p == '\\' && p + 1 < pend)
				p++;
			hi = (unsigned char)*p++;
		}
		if (lo <= c && c <= hi)
			hit = true;
	}
	if (p >= pend)
		return -1;
	*next = p + 1;
	return hit != neg;
}

/* Match one pattern element at *pp against byte c; advance *pp on a match. */
static bool one_match(const char **pp, const char *pend, unsigned char c)
{
	const char *p = *pp, *next;
	int m;

	switch (*p) {
	case '?':
		*pp = p + 1;
		return true;
	case '[':
		m = class_match(p + 1, pend, c, &next);
		if (m < 0)
			break;
		if (m)
			*pp = next;
		return m;
	case '\\':
		if (p + 1 >= pend)
			break;
		if ((unsigned char)p[1] != c)
			return false;
		*pp = p + 2;
		return true;
	}
	if ((unsigned char)*p != c)
		return false;
	*pp = p + 1;
	return true;
}

/*
 * Match one glob component against one path component. Classic wildcard
 * matching that only remembers the last '*': each other element consumes
 * exactly one byte, so backtracking to the last star is enough and the
 * cost is at most O(pattern * name).
 */
static bool seg_match(const char *p, const char *n)
{
	const char *pend = comp_end(p), *nend = comp_end(n);
	const char *star_p = NULL, *star_n = NULL;

	while (n < nend) {
		if (p < pend && *p == '*') {
			while (p < pend && *p == '*')
				p++;
			star_p = p;
			star_n = n;
			continue;
		}
		if (p < pend && one_match(&p, pend, (unsigned char)*n)) {
			n++;
			continue;
		}
		if (!star_p)
			return false;
		p = star_p;
		n = ++star_n;
	}
	while (p < pend && *p == '*')
		p++;
	return p == pend;
}

/*
 * The same algorithm one level up: '**' is the star, a component pattern
 * the element that consumes exactly one path component.
 */
/*
 * Match path against glob. With prefix, path is a directory and the answer
 * is whether some path strictly below it could match.
 */
static int glob_run(const char *glob, const char *path, int prefix)
{
	const char *g, *p, *star_g = NULL, *star_p = NULL;
	bool star = false;

	if (!glob || !path || glob[0] != '/' || path[0] != '/')
		return 0;
	g = comp_first(glob);
	p = comp_first(path);
	while (p) {
		if (g && comp_is_dstar(g)) {
			while (g && comp_is_dstar(g))
				g = comp_next(g);
			if (!g)
				return 1; /* a trailing '**' takes the rest */
			star = true;
			star_g = g;
			star_p = p;
			continue;
		}
		if (g && seg_match(g, p)) {
			g = comp_next(g);
			p = comp_next(p);
			continue;
		}
		if (!star)
			return 0;
		star_p = comp_next(star_p);
		p = star_p;
		g = star_g;
	}
	/* path is used up. Below a directory, names can match what is left of
	 * the glob, and after a '**' the glob can also start again below it. */
	if (prefix)
		return g != NULL || star;
	while (g && comp_is_dstar(g))
		g = comp_next(g);
	return g == NULL;
}

int policy_glob_match(const char *glob, const char *path)
{
	return glob_run(glob, path, 0);
}

int policy_glob_match_prefix(const char *glob, const char *dir)
{
	return glob_run(glob, dir, 1);
}

/* Validate the set after '[' at p; *next gets the closing ']'. */
static int class_check(const char *glob, const char *p, const char *pend, const char **next,
		       char *err, size_t errlen)
{
	bool first = true;

	if (p < pend && (*p == '!' || *p == '^'))
		p++;
	while (p < pend && (*p != ']' || first)) {
		unsigned char lo, hi;

		first = false;
		if (*p == '\\' && ++p >= pend)
			break;
		lo = hi = (unsigned char)*p++;
		if (p + 1 < pend && *p == '-' && p[1] != ']') {
			p++;
			if (*p == '\\' && ++p >= pend)
				break;
			hi = (unsigned char)*p++;
			if (lo > hi)
				return fail(err, errlen, "invalid glob '%s': reversed range '%c-%c'",
					    glob, lo, hi);
		}
	}
	if (p >= pend)
		return fail(err, errlen, "invalid glob '%s': unbalanced '['", glob);
	*next = p;
	return 0;
}

int policy_glob_check(const char *glob, char *err, size_t errlen)
{
	const char *c, *e, *p;
	int rc;

	if (!glob || !*glob)
		return fail(err, errlen, "invalid glob '': empty");
	if (glob[0] != '/')
		return fail(err, errlen, "invalid glob '%s': must start with '/'", glob);
	if (strlen(glob) > POLICY_GLOB_MAX)
		return fail(err, errlen, "invalid glob '%.40s...': longer than %d bytes", glob,
			    POLICY_GLOB_MAX);
	for (c = comp_first(glob); c; c = comp_next(c)) {
		e = comp_end(c);
		if (e == c)
			return fail(err, errlen, "invalid glob '%s': empty path component", glob);
		if ((e - c == 1 && c[0] == '.') || (e - c == 2 && c[0] == '.' && c[1] == '.'))
			return fail(err, errlen, "invalid glob '%s': component '%.*s' never matches",
				    glob, (int)(e - c), c);
		if (comp_is_dstar(c))
			continue;
		for (p = c; p < e; p++) {
			if (*p == '\\') {
				if (++p >= e)
					return fail(err, errlen,
						    "invalid glob '%s': trailing backslash", glob);
			} else if (*p == '*' && p + 1 < e && p[1] == '*') {
				return fail(err, errlen,
					    "invalid glob '%s': '**' must be a whole path component",
					    glob);
			} else if (*p == '[') {
				rc = class_check(glob, p + 1, e, &p, err, errlen);
				if (rc)
					return rc;
			}
		}
	}
	return 0;
}

/* ---- rules ---- */

int policy_rule_name_ok(const char *name, char *err, size_t errlen)
{
	size_t len = name ? strlen(name) : 0;

	if (len < 1 || len > POLICY_NAME_MAX || name[0] == '-' ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len)
		return fail(err, errlen,
			    "invalid rule name '%s': use 1 to %d of A-Z a-z 0-9 . _ - "
			    "not starting with '-'",
			    name ? name : "", POLICY_NAME_MAX);
	return 0;
}

enum opt_id {
	OPT_PATH, OPT_MIN_SIZE, OPT_MAX_SIZE, OPT_OLDER_THAN, OPT_NEWER_THAN, OPT_IDLE,
	OPT_OWNER, OPT_GROUP, OPT_TAG, OPT_PLACEMENT, OPT_SETTLE, OPT_EVICT_AFTER,
	OPT_WATERMARK, OPT_EXPORT, OPT_CLOUD_WRITE, OPT_COUNT
};

static const struct {
	const char *name;
	bool value;
} options[OPT_COUNT] = {
	[OPT_PATH] = { "--path", true },
	[OPT_MIN_SIZE] = { "--min-size", true },
	[OPT_MAX_SIZE] = { "--max-size", true },
	[OPT_OLDER_THAN] = { "--older-than", true },
	[OPT_NEWER_THAN] = { "--newer-than", true },
	[OPT_IDLE] = { "--idle", true },
	[OPT_OWNER] = { "--owner", true },
	[OPT_GROUP] = { "--group", true },
	[OPT_TAG] = { "--tag", true },
	[OPT_PLACEMENT] = { "--placement", true },
	[OPT_SETTLE] = { "--settle", true },
	[OPT_EVICT_AFTER] = { "--evict-after", true },
	[OPT_WATERMARK] = { "--watermark", true },
	[OPT_EXPORT] = { "--export", false },
	[OPT_CLOUD_WRITE] = { "--cloud-write", false },
};

/* A user or group name, or a number, to a uid/gid. 0, -EINVAL, -ENOENT. */
static int resolve_id(const char *s, bool user, uint32_t *out)
{
	char buf[16384];
	char *end;
	unsigned long long v;
	int rc;

	if (!*s)
		return -EINVAL;
	if (strspn(s, "0123456789") == strlen(s)) {
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno || v >= UINT32_MAX) /* (uid_t)-1 means "no id" */
			return -EINVAL;
		*out = (uint32_t)v;
		return 0;
	}
	if (user) {
		struct passwd pw, *res = NULL;

		rc = getpwnam_r(s, &pw, buf, sizeof(buf), &res);
		if (rc || !res)
			return -ENOENT;
		*out = (uint32_t)res->pw_uid;
	} else {
		struct group gr, *res = NULL;

		rc = getgrnam_r(s, &gr, buf, sizeof(buf), &res);
		if (rc || !res)
			return -ENOENT;
		*out = (uint32_t)res->gr_gid;
	}
	return 0;
}

/* "85" or "85%", 0 to 100. */
static int parse_percent(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end == '%')
		end++;
	if (errno || *end || v > 100)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* Apply one option to r; val is NULL for --export and --cloud-write. */
static int apply_option(enum opt_id id, const char *val, struct policy_rule *r, char *err,
			size_t errlen)
{
	const char *opt = options[id].name;
	const char *eq;
	uint64_t *dur = NULL;
	unsigned bit = 0;
	int rc;

	switch (id) {
	case OPT_PATH:
		rc = policy_glob_check(val, err, errlen);
		if (rc)
			return rc;
		r->glob = strdup(val);
		return r->glob ? 0 : -ENOMEM;
	case OPT_MIN_SIZE:
	case OPT_MAX_SIZE:
		if (parse_size(val, id == OPT_MIN_SIZE ? &r->min_size : &r->max_size))
			return fail(err, errlen, "invalid size '%s' for %s", val, opt);
		r->has |= id == OPT_MIN_SIZE ? POLICY_HAS_MIN_SIZE : POLICY_HAS_MAX_SIZE;
		return 0;
	case OPT_OLDER_THAN:
		dur = &r->older_than;
		bit = POLICY_HAS_OLDER_THAN;
		break;
	case OPT_NEWER_THAN:
		dur = &r->newer_than;
		bit = POLICY_HAS_NEWER_THAN;
		break;
	case OPT_IDLE:
		dur = &r->idle;
		bit = POLICY_HAS_IDLE;
		break;
	case OPT_SETTLE:
		dur = &r->settle;
		break;
	case OPT_EVICT_AFTER:
		dur = &r->evict_after;
		bit = POLICY_HAS_EVICT_AFTER;
		break;
	case OPT_OWNER:
	case OPT_GROUP:
		rc = resolve_id(val, id == OPT_OWNER, id == OPT_OWNER ? &r->uid : &r->gid);
		if (rc == -ENOENT)
			return fail(err, errlen, "unknown %s '%s' for %s",
				    id == OPT_OWNER ? "user" : "group", val, opt);
		if (rc)
			return fail(err, errlen, "invalid %s '%s' for %s",
				    id == OPT_OWNER ? "user" : "group", val, opt);
		r->has |= id == OPT_OWNER ? POLICY_HAS_UID : POLICY_HAS_GID;
		return 0;
	case OPT_TAG:
		eq = strchr(val, '=');
		if (eq == val || !*val)
			return fail(err, errlen, "invalid tag '%s': empty attribute name", val);
		if ((eq ? (size_t)(eq - val) : strlen(val)) > POLICY_TAG_NAME_MAX)
			return fail(err, errlen, "invalid tag '%.40s...': attribute name longer than %d bytes",
				    val, POLICY_TAG_NAME_MAX);
		r->tag_name = eq ? strndup(val, (size_t)(eq - val)) : strdup(val);
		if (!r->tag_name)
			return -ENOMEM;
		if (eq) {
			r->tag_value = strdup(eq + 1);
			if (!r->tag_value)
				return -ENOMEM;
		}
		return 0;
	case OPT_PLACEMENT:
		if (placement_parse(val, &r->placement))
			return fail(err, errlen,
				    "unknown placement '%s' (expected private, on-demand, mirror or tier)",
				    val);
		return 0;
	case OPT_WATERMARK:
		if (parse_percent(val, &r->watermark))
			return fail(err, errlen,
				    "invalid percentage '%s' for --watermark (expected 0-100%%)", val);
		r->has |= POLICY_HAS_WATERMARK;
		return 0;
	case OPT_EXPORT:
		r->export = true;
		return 0;
	case OPT_CLOUD_WRITE:
		r->cloud_write = true;
		return 0;
	case OPT_COUNT:
		break;
	}
	if (!dur)
		return -EINVAL;
	if (parse_duration(val, dur))
		return fail(err, errlen, "invalid duration '%s' for %s", val, opt);
	r->has |= bit;
	return 0;
}

/* The checks that need the whole rule. seen[] holds each option's value. */
static int check_rule(const struct policy_rule *r, const char *const seen[OPT_COUNT], char *err,
		      size_t errlen)
{
	static const enum opt_id tier_only[] = { OPT_EVICT_AFTER, OPT_WATERMARK, OPT_EXPORT };
	const char *pl = placement_name(r->placement);

	if (!seen[OPT_PLACEMENT])
		return fail(err, errlen, "missing --placement (private, on-demand, mirror or tier)");
	if (seen[OPT_SETTLE] && r->placement != PLACEMENT_MIRROR && r->placement != PLACEMENT_TIER)
		return fail(err, errlen,
			    "option '--settle' is not allowed with --placement %s (only mirror or tier)",
			    pl);
	for (size_t i = 0; i < ARRAY_SIZE(tier_only); i++) {
		if (seen[tier_only[i]] && r->placement != PLACEMENT_TIER)
			return fail(err, errlen,
				    "option '%s' is not allowed with --placement %s (only tier)",
				    options[tier_only[i]].name, pl);
	}
	if (r->placement == PLACEMENT_TIER &&
	    !(r->has & (POLICY_HAS_EVICT_AFTER | POLICY_HAS_WATERMARK)))
		return fail(err, errlen, "a tier rule needs --evict-after or --watermark");
	if (r->cloud_write && (r->placement == PLACEMENT_PRIVATE ||
			       (r->placement == PLACEMENT_TIER && !r->export)))
		return fail(err, errlen, "option '--cloud-write' needs an exporting placement"
			    " (on-demand, mirror, or tier with --export), not %s%s", pl,
			    r->placement == PLACEMENT_TIER ? " without --export" : "");
	if ((r->has & POLICY_HAS_MIN_SIZE) && (r->has & POLICY_HAS_MAX_SIZE) &&
	    r->min_size > r->max_size)
		return fail(err, errlen, "empty size range: --min-size '%s' is above --max-size '%s'",
			    seen[OPT_MIN_SIZE], seen[OPT_MAX_SIZE]);
	if ((r->has & POLICY_HAS_OLDER_THAN) && (r->has & POLICY_HAS_NEWER_THAN) &&
	    r->older_than >= r->newer_than)
		return fail(err, errlen,
			    "empty age range: --older-than '%s' is not below --newer-than '%s'",
			    seen[OPT_OLDER_THAN], seen[OPT_NEWER_THAN]);
	return 0;
}

int policy_rule_parse(const char *name, int argc, char *const argv[],
		      struct policy_rule *out, char *err, size_t errlen)
{
	struct policy_rule r = { 0 };
	const char *seen[OPT_COUNT] = { 0 };
	int rc = 0;

	if (err && errlen)
		err[0] = '\0';
	memset(out, 0, sizeof(*out));
	if (name) {
		rc = policy_rule_name_ok(name, err, errlen);
		if (rc)
			goto out;
		strcpy(r.name, name);
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *eq, *val = NULL;
		size_t len;
		int id;

		if (strncmp(a, "--", 2)) {
			rc = fail(err, errlen, "unexpected argument '%s'", a);
			goto out;
		}
		eq = strchr(a, '=');
		len = eq ? (size_t)(eq - a) : strlen(a);
		for (id = 0; id < OPT_COUNT; id++) {
			if (strlen(options[id].name) == len && !memcmp(options[id].name, a, len))
				break;
		}
		if (id == OPT_COUNT) {
			rc = fail(err, errlen, "unknown option '%.*s'", (int)len, a);
			goto out;
		}
		if (seen[id]) {
			rc = fail(err, errlen, "option '%s' given twice", options[id].name);
			goto out;
		}
		if (options[id].value) {
			val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
			if (!val) {
				rc = fail(err, errlen, "option '%s' needs a value", options[id].name);
				goto out;
			}
		} else if (eq) {
			rc = fail(err, errlen, "option '%s' takes no value", options[id].name);
			goto out;
		}
		seen[id] = val ? val : "";
		rc = apply_option((enum opt_id)id, val, &r, err, errlen);
		if (rc)
			goto out;
	}
	rc = check_rule(&r, seen, err, errlen);
	if (rc)
		goto out;
	if (!seen[OPT_SETTLE] && (r.placement == PLACEMENT_MIRROR || r.placement == PLACEMENT_TIER))
		r.settle = POLICY_SETTLE_DEFAULT;
	*out = r;
	return 0;
out:
	if (rc == -ENOMEM)
		fail(err, errlen, "out of memory");
	policy_rule_release(&r);
	return rc;
}

void policy_rule_release(struct policy_rule *r)
{
	free(r->glob);
	free(r->tag_name);
	free(r->tag_value);
	memset(r, 0, sizeof(*r));
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

bool policy_rule_equal(const struct policy_rule *a, const struct policy_rule *b)
{
	return !strcmp(a->name, b->name) && str_eq(a->glob, b->glob) && a->has == b->has &&
	       a->min_size == b->min_size && a->max_size == b->max_size &&
	       a->older_than == b->older_than && a->newer_than == b->newer_than &&
	       a->idle == b->idle && a->uid == b->uid && a->gid == b->gid &&
	       str_eq(a->tag_name, b->tag_name) && str_eq(a->tag_value, b->tag_value) &&
	       a->placement == b->placement && a->export == b->export &&
	       a->cloud_write == b->cloud_write &&
	       a->settle == b->settle && a->evict_after == b->evict_after &&
	       a->watermark == b->watermark;
}

/* ---- shadowed rules ---- */

/* Every path glob b matches, glob a matches too (see policy_rule_covers()). */
static bool glob_covers(const char *a, const char *b)
{
	size_t n = strlen(a);

	if (!strcmp(a, "/**") || (b && !strcmp(a, b)))
		return true;
	if (!b || n < 3 || strcmp(a + n - 3, "/**"))
		return false;
	/* a is a literal directory P, then '**': b must stay in P */
	if (strcspn(a, "*?[\\") < n - 3)
		return false;
	return !strncmp(b, a, n - 2) || (strlen(b) == n - 3 && !strncmp(b, a, n - 3));
}

bool policy_rule_covers(const struct policy_rule *a, const struct policy_rule *b)
{
	unsigned h = a->has;

	if (!glob_covers(a->glob ? a->glob : "/**", b->glob))
		return false;
	if ((h & POLICY_HAS_MIN_SIZE) && (!(b->has & POLICY_HAS_MIN_SIZE) || b->min_size < a->min_size))
		return false;
	if ((h & POLICY_HAS_MAX_SIZE) && (!(b->has & POLICY_HAS_MAX_SIZE) || b->max_size > a->max_size))
		return false;
	if ((h & POLICY_HAS_OLDER_THAN) &&
	    (!(b->has & POLICY_HAS_OLDER_THAN) || b->older_than < a->older_than))
		return false;
	if ((h & POLICY_HAS_NEWER_THAN) &&
	    (!(b->has & POLICY_HAS_NEWER_THAN) || b->newer_than > a->newer_than))
		return false;
	if ((h & POLICY_HAS_IDLE) && (!(b->has & POLICY_HAS_IDLE) || b->idle < a->idle))
		return false;
	if ((h & POLICY_HAS_UID) && (!(b->has & POLICY_HAS_UID) || b->uid != a->uid))
		return false;
	if ((h & POLICY_HAS_GID) && (!(b->has & POLICY_HAS_GID) || b->gid != a->gid))
		return false;
	if (a->tag_name && (!b->tag_name || strcmp(a->tag_name, b->tag_name) ||
			    (a->tag_value && !str_eq(a->tag_value, b->tag_value))))
		return false;
	return true;
}

bool policy_rule_exports(const struct policy_rule *r)
{
	return r->placement == PLACEMENT_ON_DEMAND || r->placement == PLACEMENT_MIRROR ||
	       (r->placement == PLACEMENT_TIER && r->export);
}

/* ---- canonical option strings ---- */

/* Largest binary unit that divides v exactly: "1M", "1536", "3G". */
static void fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "TGMK";

	for (int i = 0; i < 4; i++) {
		uint64_t u = 1ULL << (10 * (4 - i));

		if (v && v % u == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", v / u, units[i]);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, v);
}

/* Largest unit that divides v seconds exactly: "1w", "36h", "90s". */
static void fmt_duration(uint64_t v, char *buf, size_t len)
{
	static const struct {
		uint64_t secs;
		char unit;
	} units[] = { { 604800, 'w' }, { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' } };

	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (v && v % units[i].secs == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", v / units[i].secs, units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64 "s", v);
}

/* Append one word, single-quoted when a POSIX shell would need it. */
static int add_word(struct tbuf *b, const char *w)
{
	static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				   "0123456789%+,-./:=@_";
	int rc = 0;

	if (b->len)
		rc = tbuf_append(b, " ", 1);
	if (!rc && *w && strspn(w, safe) == strlen(w))
		return tbuf_append(b, w, strlen(w));
	if (!rc)
		rc = tbuf_append(b, "'", 1);
	for (; !rc && *w; w++)
		rc = *w == '\'' ? tbuf_append(b, "'\\''", 4) : tbuf_append(b, w, 1);
	if (!rc)
		rc = tbuf_append(b, "'", 1);
	return rc;
}

static int add_opt(struct tbuf *b, const char *opt, const char *val)
{
	int rc = add_word(b, opt);

	return rc || !val ? rc : add_word(b, val);
}

int policy_rule_to_args(const struct policy_rule *r, char **out)
{
	struct tbuf b = TBUF_INIT;
	char v[64];
	char *tag = NULL;
	int rc = 0;

	*out = NULL;
	if (r->glob)
		rc = add_opt(&b, "--path", r->glob);
	if (!rc && (r->has & POLICY_HAS_MIN_SIZE)) {
		fmt_size(r->min_size, v, sizeof(v));
		rc = add_opt(&b, "--min-size", v);
	}
	if (!rc && (r->has & POLICY_HAS_MAX_SIZE)) {
		fmt_size(r->max_size, v, sizeof(v));
		rc = add_opt(&b, "--max-size", v);
	}
	if (!rc && (r->has & POLICY_HAS_OLDER_THAN)) {
		fmt_duration(r->older_than, v, sizeof(v));
		rc = add_opt(&b, "--older-than", v);
	}
	if (!rc && (r->has & POLICY_HAS_NEWER_THAN)) {
		fmt_duration(r->newer_than, v, sizeof(v));
		rc = add_opt(&b, "--newer-than", v);
	}
	if (!rc && (r->has & POLICY_HAS_IDLE)) {
		fmt_duration(r->idle, v, sizeof(v));
		rc = add_opt(&b, "--idle", v);
	}
	if (!rc && (r->has & POLICY_HAS_UID)) {
		snprintf(v, sizeof(v), "%" PRIu32, r->uid);
		rc = add_opt(&b, "--owner", v);
	}
	if (!rc && (r->has & POLICY_HAS_GID)) {
		snprintf(v, sizeof(v), "%" PRIu32, r->gid);
		rc = add_opt(&b, "--group", v);
	}
	if (!rc && r->tag_name) {
		if (r->tag_value && asprintf(&tag, "%s=%s", r->tag_name, r->tag_value) < 0) {
			tag = NULL;
			rc = -ENOMEM;
		}
		if (!rc)
			rc = add_opt(&b, "--tag", tag ? tag : r->tag_name);
	}
	if (!rc)
		rc = add_opt(&b, "--placement", placement_name(r->placement));
	if (!rc && r->settle != POLICY_SETTLE_DEFAULT &&
	    (r->placement == PLACEMENT_MIRROR || r->placement == PLACEMENT_TIER)) {
		fmt_duration(r->settle, v, sizeof(v));
		rc = add_opt(&b, "--settle", v);
	}
	if (!rc && (r->has & POLICY_HAS_EVICT_AFTER)) {
		fmt_duration(r->evict_after, v, sizeof(v));
		rc = add_opt(&b, "--evict-after", v);
	}
	if (!rc && (r->has & POLICY_HAS_WATERMARK)) {
		snprintf(v, sizeof(v), "%u%%", r->watermark);
		rc = add_opt(&b, "--watermark", v);
	}
	if (!rc && r->export)
		rc = add_opt(&b, "--export", NULL);
	if (!rc && r->cloud_write)
		rc = add_opt(&b, "--cloud-write", NULL);
	if (!rc)
		rc = tbuf_append(&b, "", 1);
	if (rc)
		goto out;
	*out = (char *)tbuf_detach(&b, NULL);
out:
	free(tag);
	tbuf_release(&b);
	return rc;
}

void policy_args_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

int policy_args_split(const char *s, int *argc_out, char ***argv_out)
{
	struct tbuf w = TBUF_INIT;
	char **argv = NULL, **grown;
	size_t argc = 0;
	const char *p = s, *q;
	int rc = 0;

	*argc_out = 0;
	*argv_out = NULL;
	argv = calloc(1, sizeof(*argv));
	if (!argv)
		return -ENOMEM;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		while (!rc && *p && *p != ' ' && *p != '\t' && *p != '\n') {
			if (*p == '\'') {
				q = strchr(p + 1, '\'');
				if (!q) {
					rc = -EINVAL;
					break;
				}
				rc = tbuf_append(&w, p + 1, (size_t)(q - p - 1));
				p = q + 1;
			} else if (*p == '"') {
				for (p++; !rc && *p && *p != '"'; p++) {
					if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
						p++;
					rc = tbuf_append(&w, p, 1);
				}
				if (!rc && !*p)
					rc = -EINVAL;
				p++;
			} else if (*p == '\\') {
				if (!p[1]) {
					rc = -EINVAL;
					break;
				}
				rc = tbuf_append(&w, p + 1, 1);
				p += 2;
			} else {
				rc = tbuf_append(&w, p++, 1);
			}
		}
		if (!rc)
			rc = tbuf_append(&w, "", 1);
		if (!rc && argc + 2 > (size_t)INT32_MAX)
			rc = -EINVAL;
		if (!rc) {
			grown = realloc(argv, (argc + 2) * sizeof(*argv));
			if (!grown)
				rc = -ENOMEM;
			else
				argv = grown;
		}
		if (rc)
			goto out;
		argv[argc++] = (char *)tbuf_detach(&w, NULL);
		argv[argc] = NULL;
	}
	*argc_out = (int)argc;
	*argv_out = argv;
	argv = NULL;
out:
	tbuf_release(&w);
	policy_args_free(argv);
	return rc;
}

/* ---- evaluation ---- */

/* t + secs seconds in ns, saturating at INT64_MAX. */
static int64_t add_secs(int64_t t, uint64_t secs)
{
	int64_t d = secs > (uint64_t)(INT64_MAX / NS_PER_SEC) ? INT64_MAX
							       : (int64_t)secs * NS_PER_SEC;

	if (t > 0 && d > INT64_MAX - t)
		return INT64_MAX;
	return t + d;
}

/*
 * The rule's age conditions hold exactly for lo <= now < hi. INT64_MIN and
 * INT64_MAX stand for "always" and "forever".
 */
static void rule_window(const struct policy_rule *r, const struct policy_file *f, int64_t *lo,
			int64_t *hi)
{
	int64_t t;

	*lo = INT64_MIN;
	*hi = INT64_MAX;
	if (r->has & POLICY_HAS_OLDER_THAN)
		*lo = add_secs(f->mtime, r->older_than);
	if (r->has & POLICY_HAS_IDLE) {
		t = add_secs(f->atime, r->idle);
		if (t > *lo)
			*lo = t;
	}
	if (r->has & POLICY_HAS_NEWER_THAN)
		*hi = add_secs(f->mtime, r->newer_than);
}

/* 1 when the rule's tag condition holds (or it has none), 0, or -errno. */
static int tag_holds(const struct policy_rule *r, const struct policy_file *f)
{
	char small[256];
	char *buf = small;
	size_t vlen;
	ssize_t n;
	int rc;

	if (!r->tag_name)
		return 1;
	if (!f->getxattr) {
		for (size_t i = 0; i < f->nxattrs; i++) {
			const struct policy_xattr *x = &f->xattrs[i];

			if (strcmp(x->name, r->tag_name))
				continue;
			if (!r->tag_value)
				return 1;
			vlen = strlen(r->tag_value);
			return x->len == vlen && !memcmp(x->value, r->tag_value, vlen);
		}
		return 0;
	}
	if (!r->tag_value) {
		n = f->getxattr(f->getxattr_arg, r->tag_name, NULL, 0);
		return n == -ENODATA ? 0 : n < 0 ? (int)n : 1;
	}
	vlen = strlen(r->tag_value);
	if (vlen + 1 > sizeof(small)) {
		buf = malloc(vlen + 1);
		if (!buf)
			return -ENOMEM;
	}
	/* One byte more than the wanted value tells a longer value apart. */
	n = f->getxattr(f->getxattr_arg, r->tag_name, buf, vlen + 1);
	if (n == -ENODATA || n == -ERANGE)
		rc = 0;
	else if (n < 0)
		rc = (int)n;
	else
		rc = (size_t)n == vlen && !memcmp(buf, r->tag_value, vlen);
	if (buf != small)
		free(buf);
	return rc;
}

/* Every condition but age, cheapest first. 1, 0 or -errno. */
static int rule_holds_static(const struct policy_rule *r, const struct policy_file *f)
{
	if ((r->has & POLICY_HAS_MIN_SIZE) && f->size < r->min_size)
		return 0;
	if ((r->has & POLICY_HAS_MAX_SIZE) && f->size > r->max_size)
		return 0;
	if ((r->has & POLICY_HAS_UID) && f->uid != r->uid)
		return 0;
	if ((r->has & POLICY_HAS_GID) && f->gid != r->gid)
		return 0;
	if (r->glob && !policy_glob_match(r->glob, f->path))
		return 0;
	return tag_holds(r, f);
}

int policy_evaluate(const struct policy_rule *rules, size_t n, const struct policy_file *f,
		    int64_t now, struct policy_result *out)
{
	int64_t next = INT64_MAX, lo, hi;
	int rc;

	memset(out, 0, sizeof(*out));
	out->rule = -1;
	out->placement = PLACEMENT_PRIVATE;
	out->pinned = f->pin != POLICY_PIN_NONE;
	out->next_eval = INT64_MAX;
	if (f->pin == POLICY_PIN_PRIVATE)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct policy_rule *r = &rules[i];

		rule_window(r, f, &lo, &hi);
		if (lo >= hi || hi <= now)
			continue; /* its age conditions never hold again */
		rc = rule_holds_static(r, f);
		if (rc < 0)
			return rc;
		if (!rc)
			continue;
		if (now < lo) {
			/* It starts matching at lo and takes over from what follows. */
			if (lo < next)
				next = lo;
			continue;
		}
		if (hi < next)
			next = hi; /* INT64_MAX: forever */
		out->rule = (int)i;
		out->matched = r;
		out->placement = r->placement;
		break;
	}
	out->visible = out->placement == PLACEMENT_ON_DEMAND || out->placement == PLACEMENT_MIRROR ||
		       (out->placement == PLACEMENT_TIER && out->matched->export);
	out->evictable = out->placement == PLACEMENT_TIER && f->pin == POLICY_PIN_NONE;
	out->next_eval = next;
	return 0;
}

/* ---- explain ---- */

/* A span of ns for humans: "9d 2h", "3h", "45s". */
static const char *fmt_span(int64_t ns, char *buf, size_t len)
{
	static const struct {
		uint64_t secs;
		char unit;
	} units[] = { { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' } };
	uint64_t s = ns > 0 ? (uint64_t)(ns / NS_PER_SEC) : 0;
	size_t i;

	for (i = 0; i + 1 < ARRAY_SIZE(units) && s < units[i].secs; i++)
		;
	if (i + 1 < ARRAY_SIZE(units) && (s % units[i].secs) / units[i + 1].secs)
		snprintf(buf, len, "%" PRIu64 "%c %" PRIu64 "%c", s / units[i].secs, units[i].unit,
			 (s % units[i].secs) / units[i + 1].secs, units[i + 1].unit);
	else
		snprintf(buf, len, "%" PRIu64 "%c", s / units[i].secs, units[i].unit);
	return buf;
}

struct explain_line {
	FILE *out;
	bool any;
	bool show;
};

__attribute__((format(printf, 2, 3)))
static void say(struct explain_line *l, const char *fmt, ...)
{
	va_list ap;

	if (!l->show)
		return;
	fputs(l->any ? "; " : ": ", l->out);
	l->any = true;
	va_start(ap, fmt);
	vfprintf(l->out, fmt, ap);
	va_end(ap);
}

/*
 * Print the conditions of one rule: the failed ones (matched false) or
 * all of them (matched true). Returns 1 when every non-age condition holds.
 */
static int explain_conditions(const struct policy_rule *r, const struct policy_file *f,
			      int64_t now, bool matched, FILE *out)
{
	struct explain_line l = { out, false, matched };
	struct explain_line bad = { out, false, !matched };
	char a[64], b[64];
	bool ok = true;
	int rc;

	if (r->glob) {
		if (policy_glob_match(r->glob, f->path)) {
			say(&l, "path '%s' matches", r->glob);
		} else {
			say(&bad, "path '%s' does not match", r->glob);
			ok = false;
		}
	}
	if (r->has & POLICY_HAS_MIN_SIZE) {
		fmt_size(r->min_size, a, sizeof(a));
		if (f->size >= r->min_size) {
			say(&l, "size %" PRIu64 " is at least --min-size %s", f->size, a);
		} else {
			say(&bad, "size %" PRIu64 " is below --min-size %s", f->size, a);
			ok = false;
		}
	}
	if (r->has & POLICY_HAS_MAX_SIZE) {
		fmt_size(r->max_size, a, sizeof(a));
		if (f->size <= r->max_size) {
			say(&l, "size %" PRIu64 " is at most --max-size %s", f->size, a);
		} else {
			say(&bad, "size %" PRIu64 " is above --max-size %s", f->size, a);
			ok = false;
		}
	}
	if (r->has & POLICY_HAS_UID) {
		if (f->uid == r->uid) {
			say(&l, "owner is %" PRIu32, r->uid);
		} else {
			say(&bad, "owner %" PRIu32 " is not %" PRIu32, f->uid, r->uid);
			ok = false;
		}
	}
	if (r->has & POLICY_HAS_GID) {
		if (f->gid == r->gid) {
			say(&l, "group is %" PRIu32, r->gid);
		} else {
			say(&bad, "group %" PRIu32 " is not %" PRIu32, f->gid, r->gid);
			ok = false;
		}
	}
	if (r->tag_name) {
		rc = tag_holds(r, f);
		if (rc > 0 && r->tag_value)
			say(&l, "attribute '%s' is '%s'", r->tag_name, r->tag_value);
		else if (rc > 0)
			say(&l, "attribute '%s' is set", r->tag_name);
		else if (rc < 0)
			say(&bad, "attribute '%s' cannot be read: %s", r->tag_name, strerror(-rc));
		else if (r->tag_value)
			say(&bad, "attribute '%s' is not '%s'", r->tag_name, r->tag_value);
		else
			say(&bad, "attribute '%s' is not set", r->tag_name);
		if (rc <= 0)
			ok = false;
	}
	fmt_span(now - f->mtime, a, sizeof(a));
	if (r->has & POLICY_HAS_OLDER_THAN) {
		fmt_duration(r->older_than, b, sizeof(b));
		if (now >= add_secs(f->mtime, r->older_than))
			say(&l, "modified %s ago, --older-than %s", a, b);
		else
			say(&bad, "modified %s ago, not --older-than %s", a, b);
	}
	if (r->has & POLICY_HAS_NEWER_THAN) {
		fmt_duration(r->newer_than, b, sizeof(b));
		if (now < add_secs(f->mtime, r->newer_than))
			say(&l, "modified %s ago, --newer-than %s", a, b);
		else
			say(&bad, "modified %s ago, not --newer-than %s", a, b);
	}
	if (r->has & POLICY_HAS_IDLE) {
		fmt_span(now - f->atime, a, sizeof(a));
		fmt_duration(r->idle, b, sizeof(b));
		if (now >= add_secs(f->atime, r->idle))
			say(&l, "last accessed %s ago, --idle %s", a, b);
		else
			say(&bad, "last accessed %s ago, not --idle %s", a, b);
	}
	if (matched && !l.any)
		say(&l, "no conditions, matches every path");
	return ok;
}

void policy_explain(const struct policy_rule *rules, size_t n, const struct policy_file *f,
		    int64_t now, FILE *out)
{
	struct policy_result res;
	const struct policy_rule *m;
	char a[64], b[64];
	int64_t lo, hi;
	int rc;

	rc = policy_evaluate(rules, n, f, now, &res);
	if (rc < 0) {
		fprintf(out, "cannot evaluate '%s': %s\n", f->path, strerror(-rc));
		return;
	}
	if (f->pin == POLICY_PIN_PRIVATE) {
		fprintf(out, "pinned --private: rules are not consulted\n");
	} else {
		for (size_t i = 0; i < n && (res.rule < 0 || i <= (size_t)res.rule); i++) {
			bool matched = (int)i == res.rule;

			fprintf(out, "rule %zu '%s'%s", i + 1, rules[i].name,
				matched ? " matches" : "");
			rc = explain_conditions(&rules[i], f, now, matched, out);
			rule_window(&rules[i], f, &lo, &hi);
			if (!matched && rc > 0 && now < lo && lo < hi)
				fprintf(out, " (matches in %s)", fmt_span(lo - now, a, sizeof(a)));
			fputc('\n', out);
		}
		if (res.rule < 0)
			fprintf(out, "no rule matches: default private\n");
	}
	m = res.matched;
	switch (res.placement) {
	case PLACEMENT_PRIVATE:
		fprintf(out, "placement: private (invisible to cloud mounts, never uploaded, "
			     "always local)\n");
		break;
	case PLACEMENT_ON_DEMAND:
		fprintf(out, "placement: on-demand (visible to cloud mounts, uploaded when a "
			     "cloud mount asks, always local)\n");
		break;
	case PLACEMENT_MIRROR:
		fmt_duration(m->settle, a, sizeof(a));
		fprintf(out, "placement: mirror (visible to cloud mounts, uploaded once writes "
			     "settle for %s, always local)\n", a);
		break;
	case PLACEMENT_TIER:
		fmt_duration(m->settle, a, sizeof(a));
		fprintf(out, "placement: tier (%s cloud mounts, uploaded once writes settle for %s",
			m->export ? "visible to" : "invisible to", a);
		if (!res.evictable) {
			fprintf(out, ", local copy kept: pinned");
		} else {
			if (m->has & POLICY_HAS_EVICT_AFTER) {
				fmt_duration(m->evict_after, b, sizeof(b));
				fprintf(out, ", local copy evicted when idle %s", b);
			}
			if (m->has & POLICY_HAS_WATERMARK)
				fprintf(out, "%s local disk usage is above %u%%",
					(m->has & POLICY_HAS_EVICT_AFTER) ? " or when" :
					", local copy evicted when", m->watermark);
		}
		fprintf(out, ")\n");
		break;
	}
	if (m && m->cloud_write)
		fprintf(out, "cloud write: nodes with a node key may write here (home imports"
			     " what they write)\n");
	if (f->pin == POLICY_PIN_LOCAL && res.placement != PLACEMENT_TIER)
		fprintf(out, "pinned: the local copy is never evicted\n");
	if (res.next_eval != INT64_MAX)
		fprintf(out, "time alone may change this in %s\n",
			fmt_span(res.next_eval - now, a, sizeof(a)));
}
