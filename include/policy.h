/*
 * policy.h - the placement policy engine: rules, globs, evaluation.
 *
 * Pure logic with no SQLite, FUSE or I/O besides getpwnam_r/getgrnam_r at
 * rule creation and the FILE * of policy_explain(). A rule is a match
 * (path glob, size range, age since modification or last access, owner,
 * group, an extended-attribute tag) and a placement. Rules are ordered,
 * the first match wins, the built-in default is private, and pins override
 * every rule. The user-facing language is the option list of
 * `tierfs policy add NAME ...` (docs/policy.md); a rule is stored and
 * listed as its canonical option string (policy_rule_to_args()), which
 * policy_rule_parse() reads back to an identical rule.
 *
 * Units: sizes in bytes; rule durations in seconds (as the CLI gives
 * them); file times and `now` in nanoseconds since the epoch, the unit of
 * struct meta_attr, so attributes pass through unconverted. Every call is
 * reentrant and thread safe on distinct or read-only arguments.
 */
#ifndef TIERFS_POLICY_H
#define TIERFS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define POLICY_NAME_MAX 64      /* rule names: [A-Za-z0-9._-]{1,64}, no leading '-' */
#define POLICY_GLOB_MAX 4096    /* bytes, like PATH_MAX */
#define POLICY_TAG_NAME_MAX 255 /* bytes, like XATTR_NAME_MAX */
#define POLICY_SETTLE_DEFAULT 30 /* seconds, mirror and tier */
#define POLICY_ERR_MAX 512      /* err buffer size that fits messages about ordinary names */

enum placement {
	PLACEMENT_PRIVATE = 0, /* invisible to cloud mounts, never uploaded, always local */
	PLACEMENT_ON_DEMAND,   /* visible, uploaded when a cloud mount asks, always local */
	PLACEMENT_MIRROR,      /* visible, uploaded once writes settle, always local */
	PLACEMENT_TIER,        /* visible with --export, uploaded eagerly, evicted when cold */
};

/* "private", "on-demand", "mirror", "tier"; "?" for an out-of-range value. */
const char *placement_name(enum placement p);
/* Parse one of the names above (exact, lowercase). 0 or -EINVAL. */
int placement_parse(const char *s, enum placement *out);

/* Which optional fields of a struct policy_rule are set. */
enum policy_has {
	POLICY_HAS_MIN_SIZE = 1 << 0,
	POLICY_HAS_MAX_SIZE = 1 << 1,
	POLICY_HAS_OLDER_THAN = 1 << 2,
	POLICY_HAS_NEWER_THAN = 1 << 3,
	POLICY_HAS_IDLE = 1 << 4,
	POLICY_HAS_UID = 1 << 5,
	POLICY_HAS_GID = 1 << 6,
	POLICY_HAS_EVICT_AFTER = 1 << 7,
	POLICY_HAS_WATERMARK = 1 << 8,
};

/*
 * One rule. Fill it with policy_rule_parse() (which validates it) and free
 * it with policy_rule_release(); the strings are owned by the rule. A rule
 * with no match condition at all matches every path (a catch-all).
 *
 * Age conditions, with age = now - mtime and idle = now - atime:
 *   --older-than D  holds when age >= D
 *   --newer-than D  holds when age <  D
 *   --idle D        holds when idle >= D
 * so each flips exactly at mtime + D (atime + D), the instant reported as
 * next_eval. Size bounds are inclusive: min_size <= size <= max_size.
 */
struct policy_rule {
	char name[POLICY_NAME_MAX + 1]; /* "" when parsed without a name */
	char *glob;                     /* --path; NULL: every path */
	unsigned has;                   /* enum policy_has bits */
	uint64_t min_size, max_size;    /* bytes, inclusive */
	uint64_t older_than;            /* seconds since modification */
	uint64_t newer_than;            /* seconds since modification */
	uint64_t idle;                  /* seconds since last access */
	uint32_t uid, gid;              /* --owner, --group, resolved to numbers */
	char *tag_name;                 /* --tag NAME[=VALUE]; NULL: none */
	char *tag_value;                /* NULL: NAME present with any value */
	enum placement placement;
	bool export;                    /* tier only: visible to cloud mounts */
	bool cloud_write;               /* --cloud-write: cloud nodes with a node key may
					 * write here (exporting placements only) */
	uint64_t settle;                /* seconds; mirror and tier (default 30), else 0 */
	uint64_t evict_after;           /* seconds idle; tier only */
	unsigned watermark;             /* percent 0-100; tier only */
};

/*
 * Check a rule name: [A-Za-z0-9._-]{1,64}, not starting with '-'. 0, or
 * -EINVAL with a one-line message in err (when err is not NULL).
 */
int policy_rule_name_ok(const char *name, char *err, size_t errlen);

/*
 * Parse the options of `tierfs policy add NAME OPTIONS...` into *out and
 * validate the whole rule. name may be NULL (the rule is left unnamed);
 * otherwise it is checked with policy_rule_name_ok(). argv holds argc
 * option words ("--path", GLOB, ... or "--path=GLOB"); it is not
 * modified and need not be NULL terminated. --owner/--group names are
 * resolved now with getpwnam_r()/getgrnam_r() and stored as numbers.
 *
 * Returns 0 (the caller must policy_rule_release(out)), -EINVAL with a
 * one-line git-style message in err naming the offending option and value
 * ("invalid size '12Q' for --min-size"), or -ENOMEM. On failure *out holds
 * nothing to release.
 */
int policy_rule_parse(const char *name, int argc, char *const argv[],
		      struct policy_rule *out, char *err, size_t errlen);

/* Free the rule's strings and zero it. Safe on a zeroed rule. */
void policy_rule_release(struct policy_rule *r);

/* True when two rules are the same (name included). */
bool policy_rule_equal(const struct policy_rule *a, const struct policy_rule *b);

/*
 * Does rule a match every file rule b matches (so b can never match when
 * a comes first)? Conservative: true only when each condition of a is
 * implied by a condition of b: a has no glob or the lone component '**',
 * the globs are equal, or a's glob is a literal directory P followed by a
 * '**' component and b's glob is P or below P; size bounds and
 * ages at least as tight in b; the same owner, group and tag. A false
 * answer does not prove that b can match.
 */
bool policy_rule_covers(const struct policy_rule *a, const struct policy_rule *b);

/* Is the rule's placement visible to cloud mounts (on-demand, mirror, tier with --export)? */
bool policy_rule_exports(const struct policy_rule *r);

/*
 * Render a rule's options (not its name) as the canonical option string,
 * e.g. "--path '/datasets/[a-z]*.csv' --min-size 1M --placement on-demand": fixed
 * option order, defaults omitted, sizes and durations in the largest exact
 * unit, owner and group as numbers, words quoted for a POSIX shell where
 * needed. policy_args_split() + policy_rule_parse() give back an equal
 * rule, so the string can be stored in a TEXT column as it is.
 * 0 with *out set (caller frees), or -ENOMEM.
 */
int policy_rule_to_args(const struct policy_rule *r, char **out);

/*
 * Split a string into words like a POSIX shell without expansions:
 * blanks separate words, '...' is literal, "..." honours \" \\ \$ \`,
 * and a backslash outside quotes escapes the next character. Reads every
 * string policy_rule_to_args() writes. On success *argv_out is a
 * NULL-terminated array of *argc_out words; free it with
 * policy_args_free(). -EINVAL on an unterminated quote or trailing
 * backslash, -ENOMEM.
 */
int policy_args_split(const char *s, int *argc_out, char ***argv_out);
void policy_args_free(char **argv);

/*
 * Globs. A glob is an absolute path pattern, matched component by
 * component against an absolute path:
 *   *       any run of characters within one component (maybe empty)
 *   ?       exactly one byte other than '/'
 *   [abc] [a-z] [!a-z] [^a-z]   one byte from (not from) the set; ']'
 *           first in the set is literal; '-' first or last is literal
 *   **      a whole component: zero or more components. So a glob with
 *           the components 'a' and '**' matches '/a' itself and
 *           everything below it; 'a', '**', 'b' matches '/a/b' and
 *           '/a/x/y/b'; the lone component '**' matches every path
 *   \c      the character c literally
 * Nothing but '**' crosses a '/'. A leading '.' is not special.
 *
 * policy_glob_check() validates one: 0 or -EINVAL with a message. Rejected:
 * empty, not starting with '/', longer than POLICY_GLOB_MAX, an empty
 * component ('//' or a trailing '/', except the glob "/"), a '.' or '..'
 * component, '**' inside a component ('***', 'a**'), an unbalanced '[', a
 * reversed range ('[z-a]'), a trailing backslash.
 *
 * policy_glob_match() returns 1 when path matches, else 0. Paths are
 * absolute within the volume ("/" is the root); they are not normalised.
 * It never allocates or recurses; the cost is bounded by
 * O(components(glob) * components(path) * component length^2), so many
 * '**' components against deep paths stay cheap. On an invalid glob
 * the result is 0 or 1 but unspecified.
 */
int policy_glob_check(const char *glob, char *err, size_t errlen);
int policy_glob_match(const char *glob, const char *path);
/*
 * 1 when some path strictly below the directory dir could match glob (with
 * '/jobs/[*]/out/[**]' (brackets for the comment's sake): '/jobs', '/jobs/q4' and
 * '/jobs/q4/out' qualify, '/data' does not), else 0. Cloud nodes may create
 * directories on the way to a writable area.
 */
int policy_glob_match_prefix(const char *glob, const char *dir);

/* Pins override every rule (tierfs pin [--private] PATH). */
enum policy_pin {
	POLICY_PIN_NONE = 0,
	POLICY_PIN_LOCAL,   /* placement from the rules, local copy never evicted */
	POLICY_PIN_PRIVATE, /* private: local, invisible, never uploaded */
};

/* One extended attribute for the array form of struct policy_file. */
struct policy_xattr {
	const char *name;
	const void *value;
	size_t len;
};

/*
 * What the engine knows of a file. The caller owns everything. Tag
 * conditions read extended attributes through getxattr when set, which
 * has getxattr(2)'s contract: the value's length, -ENODATA when absent,
 * -ERANGE when larger than size, another negative errno on failure (which
 * policy_evaluate() returns). Otherwise they look in xattrs[0..nxattrs).
 * Attributes are only read for rules whose other conditions hold.
 */
struct policy_file {
	const char *path;  /* absolute within the volume, "/" is the root */
	uint64_t size;     /* bytes */
	int64_t mtime;     /* ns since the epoch */
	int64_t atime;     /* ns since the epoch */
	uint32_t uid, gid;
	enum policy_pin pin;
	ssize_t (*getxattr)(void *arg, const char *name, void *buf, size_t size);
	void *getxattr_arg;
	const struct policy_xattr *xattrs;
	size_t nxattrs;
};

struct policy_result {
	int rule;                       /* index of the matching rule, -1: default or pinned private */
	const struct policy_rule *matched; /* rules + rule, NULL when rule == -1 */
	enum placement placement;
	bool visible;   /* to cloud mounts: on-demand, mirror, tier with export */
	bool evictable; /* tier and not pinned */
	bool pinned;    /* f->pin != POLICY_PIN_NONE */
	/*
	 * Earliest time (ns, > now) at which the result could change only
	 * because time passes with mtime/atime fixed: an earlier rule whose
	 * other conditions hold starting to match by age, or the matched
	 * rule's --newer-than expiring. INT64_MAX when time alone cannot
	 * change it. Access (atime) and writes are events the caller handles.
	 */
	int64_t next_eval;
};

/*
 * Evaluate rules[0..n) in order for f at time now (ns). Fills *out and
 * returns 0, or a negative errno from f->getxattr (then *out is unset).
 */
int policy_evaluate(const struct policy_rule *rules, size_t n, const struct policy_file *f,
		    int64_t now, struct policy_result *out);

/*
 * Print for a human why f gets its placement: each rule in order up to the
 * match with every condition that failed ("rule 1 'finance-private': path
 * '/finance/...' does not match"), the matching rule with the conditions it
 * met (or "no rule matches: default private"), the placement and when time
 * alone could change it.
 */
void policy_explain(const struct policy_rule *rules, size_t n, const struct policy_file *f,
		    int64_t now, FILE *out);

#endif
