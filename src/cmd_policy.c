/*
 * cmd_policy.c - the placement policy commands: policy add/list/move/rm/
 * explain/check, status, pin and unpin.
 *
 * They work on the volume's metadata store directly, beside a live mount
 * (SQLite WAL): a rule change bumps the volume's policy version, which the
 * mount notices within a second and re-evaluates; when nothing is mounted
 * the command re-evaluates the volume itself before it returns. A volume is
 * found from a path inside a tierfs mount, or given with --volume (a volume
 * directory or a mount point).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <mntent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_int.h"
#include "log.h"
#include "placement.h"
#include "policy.h"
#include "volume.h"

/* ---- finding the volume ---- */

/* The tierfs mount whose mount point is the longest prefix of abs. */
static int mount_of(const char *abs, char *mnt, size_t mlen, char *vol, size_t vlen)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *e;
	size_t best = 0;

	if (!f)
		return 0;
	while ((e = getmntent(f))) {
		size_t l = strlen(e->mnt_dir);

		if (strncmp(e->mnt_type, "fuse.tierfs", 11))
			continue;
		if (strncmp(abs, e->mnt_dir, l) || (abs[l] != '/' && abs[l] != '\0' && l != 1))
			continue;
		if (l >= best) {
			best = l;
			snprintf(mnt, mlen, "%s", e->mnt_dir);
			snprintf(vol, vlen, "%s", e->mnt_fsname);
		}
	}
	endmntent(f);
	return best > 0;
}

/*
 * realpath() of the directory part of path, plus its last component: the
 * path may not exist yet, and a final symlink is the link itself (status,
 * pin and explain are about the name the user gave).
 */
static int resolve_loose(const char *path, char *out)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;

	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return realpath(path, out) ? 0 : -1;
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (!realpath(dir, out))
		return -1;
	if (strlen(out) + strlen(base) + 2 > PATH_MAX)
		return -1;
	if (strcmp(out, "/"))
		strcat(out, "/");
	strcat(out, base);
	return 0;
}

/*
 * The home mount commits names and attributes in groups (-o commit_ms): an
 * fsync of its root directory commits what it holds, so this command reads
 * every change made through the mount before it started. Errors are
 * ignored: a dead or read-only mount has nothing pending.
 */
static void mount_barrier(const char *mnt)
{
	int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/*
 * Find the volume: from --volume (a volume directory or a tierfs mount
 * point), else from the first path, else from the current directory.
 */
int target_open(struct target *t, const char *volopt, const char *path, int readonly)
{
	char abs[PATH_MAX], err[1024];
	int rc;

	memset(t, 0, sizeof(*t));
	if (volopt) {
		if (!realpath(volopt, abs)) {
			tfs_error("cannot open volume '%s': %s", volopt, strerror(errno));
			return -1;
		}
		if (!mount_of(abs, t->mnt, sizeof(t->mnt), t->vol, sizeof(t->vol)) ||
		    strcmp(t->mnt, abs)) {
			t->mnt[0] = '\0';
			snprintf(t->vol, sizeof(t->vol), "%s", abs);
		}
	} else {
		const char *p = path ? path : ".";

		if (resolve_loose(p, abs) ||
		    !mount_of(abs, t->mnt, sizeof(t->mnt), t->vol, sizeof(t->vol))) {
			tfs_error("'%s' is not inside a mounted tierfs volume; use --volume DIR", p);
			return -1;
		}
	}
	if (t->mnt[0])
		mount_barrier(t->mnt);
	rc = volume_open(t->vol, readonly ? VOL_READONLY : 0, &t->v, err, sizeof(err));
	if (rc) {
		tfs_error("%s", err);
		return -1;
	}
	/* With --volume naming a volume directory, find its mount too. */
	if (!t->mnt[0] && volume_mount_pid(t->vol) > 0) {
		FILE *f = setmntent("/proc/self/mounts", "r");
		struct mntent *e;

		while (f && (e = getmntent(f)))
			if (!strncmp(e->mnt_type, "fuse.tierfs", 11) && !strcmp(e->mnt_fsname, t->v->dir))
				snprintf(t->mnt, sizeof(t->mnt), "%s", e->mnt_dir);
		if (f)
			endmntent(f);
		if (t->mnt[0])
			mount_barrier(t->mnt);
	}
	return 0;
}

void target_close(struct target *t)
{
	volume_close(t->v);
	t->v = NULL;
}

/*
 * The path within the volume of a user path: a path inside the volume's
 * mount is taken relative to it; otherwise, with --volume, a path is one
 * within the volume ("/datasets/q3.parquet", or relative to its root).
 */
int vpath_of(const struct target *t, const char *path, int have_volopt, char *out, size_t len)
{
	char abs[PATH_MAX];

	if (t->mnt[0] && resolve_loose(path, abs) == 0) {
		size_t l = strlen(t->mnt);

		if (!strncmp(abs, t->mnt, l) && (abs[l] == '/' || abs[l] == '\0')) {
			snprintf(out, len, "%s", abs[l] ? abs + l : "/");
			return 0;
		}
	}
	if (!have_volopt) {
		tfs_error("'%s' is not inside the volume mounted at '%s'", path, t->mnt);
		return -1;
	}
	snprintf(out, len, "%s%s", path[0] == '/' ? "" : "/", path);
	/* drop trailing slashes */
	for (size_t l = strlen(out); l > 1 && out[l - 1] == '/'; l--)
		out[l - 1] = '\0';
	return 0;
}

static int64_t now_ns(void)
{
	return (int64_t)now_real_ns();
}

/* ---- JSON ---- */

/* Length of the valid UTF-8 sequence at p, or 0. */
static int utf8_len(const unsigned char *p)
{
	int n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;

	if (n == 2 && *p < 0xc2)
		return 0; /* overlong */
	for (int i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/*
 * A JSON string. File names are bytes: a byte that is not part of valid
 * UTF-8 is written as \u00XX (its Latin-1 reading), so the output is always
 * valid JSON; such names are the only ones where the escape is ambiguous.
 */
void cli_iso_time(int64_t ns, char *buf, size_t len)
{
	time_t secs = (time_t)(ns / 1000000000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; p && *p;) {
		int n = utf8_len(p);

		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || n == 0)
			fprintf(f, "\\u%04x", *p);
		else {
			fwrite(p, 1, (size_t)n, f);
			p += n;
			continue;
		}
		p++;
	}
	fputc('"', f);
}

/* ---- rule changes ---- */

/*
 * After a rule change: the live mount re-evaluates (it watches the policy
 * version); with nothing mounted we do it here, in batches.
 */
static int reevaluate(struct target *t)
{
	struct policy_set ps;
	uint64_t cursor = 0;
	char err[512];
	int done = 0, rc;

	if (volume_mount_pid(t->vol) > 0)
		return 0;
	rc = policy_set_load(t->v->meta, &ps, err, sizeof(err));
	if (rc) {
		tfs_error("%s", err);
		return rc;
	}
	while (!done) {
		rc = meta_begin(t->v->meta);
		if (rc)
			break;
		rc = placement_apply_batch(t->v->meta, &ps, &cursor, 5000, now_ns(), &done);
		if (rc < 0) {
			meta_rollback(t->v->meta);
			break;
		}
		rc = meta_commit(t->v->meta, 0);
		if (rc)
			break;
	}
	policy_set_release(&ps);
	if (rc < 0)
		tfs_error("cannot re-evaluate placements: %s", strerror(-rc));
	return rc < 0 ? rc : 0;
}

static int rule_exists(struct meta *m, const char *name, int64_t *pos_out)
{
	sqlite3_stmt *s;
	int found = 0;

	if (sqlite3_prepare_v2(meta_db(m), "SELECT pos FROM rule WHERE name=?1", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		found = 1;
		if (pos_out)
			*pos_out = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	return found;
}

static int exec_sql(struct meta *m, const char *sql, const char *a, int64_t b)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(meta_db(m), sql, -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	if (a)
		sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, b);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static const char policy_usage[] =
	"usage: tierfs policy add NAME [MATCH...] --placement PLACEMENT [OPTIONS...] [--dry-run]\n"
	"       tierfs policy list [--json]\n"
	"       tierfs policy move NAME (--before|--after) OTHER [--dry-run]\n"
	"       tierfs policy rm NAME [--dry-run]\n"
	"       tierfs policy explain PATH...\n"
	"       tierfs policy check [--json]\n"
	"\n"
	"Every command takes --volume DIR (a volume directory or a mount point);\n"
	"without it the volume is the tierfs mount holding PATH or the current\n"
	"directory. With --volume, a PATH is a path within the volume.\n"
	"\n"
	"match options (all must hold; rules are ordered, the first match wins,\n"
	"a file no rule matches is private):\n"
	"  --path GLOB            path within the volume; * ? [...] and ** across directories\n"
	"  --min-size SIZE        size >= SIZE (512, 4K, 1M, 2G, 1T)\n"
	"  --max-size SIZE        size <= SIZE\n"
	"  --older-than DURATION  modified at least DURATION ago (30s, 5m, 2h, 7d, 1w)\n"
	"  --newer-than DURATION  modified less than DURATION ago\n"
	"  --idle DURATION        not accessed for DURATION\n"
	"  --owner USER|UID       owned by USER\n"
	"  --group GROUP|GID      group GROUP\n"
	"  --tag NAME[=VALUE]     extended attribute NAME present (with VALUE)\n"
	"placements:\n"
	"  private                never leaves the premises (the default)\n"
	"  on-demand              visible to cloud mounts, uploaded when one asks\n"
	"  mirror                 visible, uploaded once writes settle\n"
	"  tier                   uploaded; local copy evicted when cold\n"
	"placement options:\n"
	"  --settle DURATION      mirror, tier: upload after no write for DURATION (30s)\n"
	"  --evict-after DURATION tier: evict when idle this long\n"
	"  --watermark PCT        tier: evict when local disk use is above PCT%\n"
	"  --export               tier: visible to cloud mounts\n"
	"  --cloud-write          on-demand, mirror, tier --export: cloud nodes with a node\n"
	"                         key may write here; home imports what they write\n"
	"\n"
	"--dry-run lists the files whose placement would change and what would start\n"
	"or stop leaving the premises (--json too), and changes nothing. 'policy add'\n"
	"warns about a rule an earlier rule shadows; 'policy check' reports every rule\n"
	"that can never match, and fails for a private one shadowed by an exporting one.\n"
	"\n"
	"See docs/policy.md for the whole language.\n";

/* Pull "--volume DIR" / "--volume=DIR" and "--json" out of argv. */
struct common {
	const char *volume;
	int json;
	int private_pin;
	const char *before, *after;
	int dry_run; /* add, move, rm */
};

static int take_common(int *argc, char **argv, struct common *c, int allow_json, int allow_dry)
{
	int out = 1;

	for (int k = 1; k < *argc; k++) {
		if (!strcmp(argv[k], "--volume") && k + 1 < *argc) {
			c->volume = argv[++k];
		} else if (!strncmp(argv[k], "--volume=", 9)) {
			c->volume = argv[k] + 9;
		} else if ((allow_json || allow_dry) && !strcmp(argv[k], "--json")) {
			c->json = 1;
		} else if (allow_dry && !strcmp(argv[k], "--dry-run")) {
			c->dry_run = 1;
		} else {
			argv[out++] = argv[k];
		}
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

/* The rules as they are, with room for one more; release with release_rules(). */
static int load_rules(struct target *t, struct policy_set *ps, const char *what)
{
	char err[512];

	if (policy_set_load(t->v->meta, ps, err, sizeof(err))) {
		tfs_error("policy %s: %s", what, err);
		return -1;
	}
	return 0;
}

static int rule_index(const struct policy_set *ps, const char *name)
{
	for (size_t k = 0; k < ps->n; k++)
		if (!strcmp(ps->rules[k].name, name))
			return (int)k;
	return -1;
}

/*
 * Before a rule is added at the end: a rule an earlier one shadows is
 * added with a warning (adding, then moving it forward, is the way to put
 * a rule first), said louder for a private rule that an earlier rule
 * letting files leave shadows: the user would believe those files private.
 * `policy check` makes that an error. With --dry-run, what the rule would
 * change. 0: go on; else the exit status (-1: done, success).
 */
static int add_check(struct target *t, const struct policy_rule *r, const struct common *c)
{
	struct policy_set ps, neu;
	struct policy_rule *all;
	int rc = 0;

	if (load_rules(t, &ps, "add"))
		return 1;
	if (rule_index(&ps, r->name) >= 0) {
		tfs_error("policy add: rule '%s' already exists", r->name);
		policy_set_release(&ps);
		return 1;
	}
	for (size_t i = 0; i < ps.n; i++) {
		const struct policy_rule *a = &ps.rules[i];

		if (!policy_rule_covers(a, r))
			continue;
		if (r->placement == PLACEMENT_PRIVATE && a->placement != PLACEMENT_PRIVATE) {
			fprintf(stderr, "warning: private rule '%s' will never match: rule '%s' comes first and"
				" makes every file it matches %s, so they leave the premises; put it first with"
				" 'tierfs policy move %s --before %s'\n", r->name, a->name,
				placement_name(a->placement), r->name, a->name);
		} else {
			fprintf(stderr, "warning: rule '%s' will never match: rule '%s' comes first and matches"
				" every file it matches\n", r->name, a->name);
		}
		break;
	}
	if (!rc && c->dry_run) {
		all = malloc((ps.n + 1) * sizeof(*all));
		if (!all) {
			tfs_error("out of memory");
			rc = 1;
		} else {
			if (ps.n)
				memcpy(all, ps.rules, ps.n * sizeof(*all));
			all[ps.n] = *r;
			neu = ps;
			neu.rules = all;
			neu.n = ps.n + 1;
			rc = policy_dry_run(t, &ps, &neu, c->json) ? 1 : -1;
			free(all);
		}
	}
	policy_set_release(&ps);
	return rc;
}

/* policy move/rm --dry-run: the rule set after the change, then the preview. */
static int dry_run_edit(struct target *t, const char *what, const char *name, const char *other, int before,
			int json)
{
	struct policy_set ps, neu;
	struct policy_rule *all;
	int k, o = -1, rc;
	size_t n = 0;

	if (load_rules(t, &ps, what))
		return 1;
	k = rule_index(&ps, name);
	if (other)
		o = rule_index(&ps, other);
	if (k < 0 || (other && o < 0)) {
		tfs_error("policy %s: no rule named '%s'", what, k < 0 ? name : other);
		policy_set_release(&ps);
		return 1;
	}
	all = malloc((ps.n ? ps.n : 1) * sizeof(*all));
	if (!all) {
		policy_set_release(&ps);
		tfs_error("out of memory");
		return 1;
	}
	for (size_t i = 0; i < ps.n; i++) {
		if ((int)i == o && before)
			all[n++] = ps.rules[k];
		if ((int)i != k)
			all[n++] = ps.rules[i];
		if ((int)i == o && !before)
			all[n++] = ps.rules[k];
	}
	neu = ps;
	neu.rules = all;
	neu.n = n;
	rc = policy_dry_run(t, &ps, &neu, json);
	free(all);
	policy_set_release(&ps);
	return rc;
}

static int policy_add(int argc, char **argv, struct common *c)
{
	struct policy_rule r;
	struct target t;
	char err[POLICY_ERR_MAX], *args = NULL;
	int64_t maxpos = 0;
	int rc;

	if (argc < 2) {
		tfs_error("policy add: expected a rule NAME; see 'tierfs policy --help'");
		return 2;
	}
	rc = policy_rule_parse(argv[1], argc - 2, argv + 2, &r, err, sizeof(err));
	if (rc) {
		tfs_error("policy add: %s", rc == -EINVAL ? err : strerror(-rc));
		return 2;
	}
	rc = policy_rule_to_args(&r, &args);
	if (rc || target_open(&t, c->volume, NULL, c->dry_run)) {
		policy_rule_release(&r);
		free(args);
		return 1;
	}
	rc = add_check(&t, &r, c);
	if (rc) {
		rc = rc < 0 ? 0 : rc;
		goto out;
	}
	rc = meta_begin(t.v->meta);
	if (!rc && rule_exists(t.v->meta, r.name, NULL) > 0) {
		meta_rollback(t.v->meta);
		tfs_error("policy add: rule '%s' already exists", r.name);
		rc = 1;
		goto out;
	}
	if (!rc) {
		sqlite3_stmt *s;

		if (sqlite3_prepare_v2(meta_db(t.v->meta), "SELECT coalesce(max(pos),0) FROM rule", -1, &s,
				       NULL) == SQLITE_OK) {
			if (sqlite3_step(s) == SQLITE_ROW)
				maxpos = sqlite3_column_int64(s, 0);
			sqlite3_finalize(s);
		}
		if (sqlite3_prepare_v2(meta_db(t.v->meta),
				       "INSERT INTO rule(name,pos,args,created) VALUES(?1,?2,?3,?4)", -1, &s,
				       NULL) != SQLITE_OK) {
			rc = -EIO;
		} else {
			sqlite3_bind_text(s, 1, r.name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, maxpos + 1);
			sqlite3_bind_text(s, 3, args, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 4, now_ns());
			rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
			sqlite3_finalize(s);
		}
	}
	if (!rc)
		rc = policy_version_bump(t.v->meta);
	if (!rc)
		rc = meta_commit(t.v->meta, 1);
	else
		meta_rollback(t.v->meta);
	if (rc) {
		tfs_error("policy add: cannot store rule '%s': %s", r.name, strerror(-rc));
		rc = 1;
		goto out;
	}
	rc = reevaluate(&t) ? 1 : 0;
	if (!rc)
		printf("added rule '%s': %s\n", r.name, args);
out:
	target_close(&t);
	policy_rule_release(&r);
	free(args);
	return rc;
}

static int policy_list(int argc, char **argv, struct common *c)
{
	struct target t;
	sqlite3_stmt *s;
	int n = 0;

	if (argc != 1) {
		tfs_error("policy list: unexpected argument '%s'", argv[1]);
		return 2;
	}
	if (target_open(&t, c->volume, NULL, 1))
		return 1;
	if (sqlite3_prepare_v2(meta_db(t.v->meta), "SELECT name, args FROM rule ORDER BY pos", -1, &s,
			       NULL) != SQLITE_OK) {
		tfs_error("cannot read rules: %s", sqlite3_errmsg(meta_db(t.v->meta)));
		target_close(&t);
		return 1;
	}
	if (c->json)
		printf("[");
	else
		printf("%-4s %-24s %-10s %s\n", "#", "NAME", "PLACEMENT", "RULE");
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 0);
		const char *args = (const char *)sqlite3_column_text(s, 1);
		const char *pl = strstr(args, "--placement ");
		char placement[16] = "?";
		struct policy_rule r;
		bool cw = false;
		char **av;
		int ac;

		if (pl)
			sscanf(pl + 12, "%15s", placement);
		if (!policy_args_split(args, &ac, &av)) {
			if (!policy_rule_parse(NULL, ac, av, &r, NULL, 0)) {
				cw = r.cloud_write;
				policy_rule_release(&r);
			}
			policy_args_free(av);
		}
		n++;
		if (c->json) {
			printf("%s{\"position\":%d,\"name\":", n > 1 ? "," : "", n);
			json_str(stdout, name);
			printf(",\"placement\":");
			json_str(stdout, placement);
			printf(",\"cloud_write\":%s,\"args\":", cw ? "true" : "false");
			json_str(stdout, args);
			printf("}");
		} else {
			printf("%-4d %-24s %-10s %s\n", n, name, placement, args);
		}
	}
	sqlite3_finalize(s);
	if (c->json)
		printf("]\n");
	else if (!n)
		printf("(no rules: every file is private)\n");
	target_close(&t);
	return 0;
}

static int policy_move(int argc, char **argv, struct common *c)
{
	struct target t;
	const char *name, *other;
	int64_t pos, opos;
	int before, rc;

	if (argc != 4 || (strcmp(argv[2], "--before") && strcmp(argv[2], "--after"))) {
		tfs_error("policy move: expected NAME --before OTHER or NAME --after OTHER");
		return 2;
	}
	name = argv[1];
	other = argv[3];
	before = !strcmp(argv[2], "--before");
	if (!strcmp(name, other)) {
		tfs_error("policy move: cannot move rule '%s' relative to itself", name);
		return 2;
	}
	if (target_open(&t, c->volume, NULL, c->dry_run))
		return 1;
	if (c->dry_run) {
		rc = dry_run_edit(&t, "move", name, other, before, c->json);
		target_close(&t);
		return rc;
	}
	rc = meta_begin(t.v->meta);
	if (rc)
		goto fail;
	if (rule_exists(t.v->meta, name, &pos) <= 0) {
		tfs_error("policy move: no rule named '%s'", name);
		goto fail_rollback;
	}
	if (rule_exists(t.v->meta, other, &opos) <= 0) {
		tfs_error("policy move: no rule named '%s'", other);
		goto fail_rollback;
	}
	/* Renumber: take name out, open a gap at other, put it there. */
	rc = exec_sql(t.v->meta, "UPDATE rule SET pos=-1 WHERE name=?1", name, 0);
	if (!rc)
		rc = exec_sql(t.v->meta, "UPDATE rule SET pos=pos-1 WHERE pos>?2", NULL, pos);
	if (!rc && rule_exists(t.v->meta, other, &opos) <= 0)
		rc = -EIO;
	if (!before)
		opos++;
	if (!rc)
		rc = exec_sql(t.v->meta, "UPDATE rule SET pos=pos+1 WHERE pos>=?2", NULL, opos);
	if (!rc)
		rc = exec_sql(t.v->meta, "UPDATE rule SET pos=?2 WHERE name=?1", name, opos);
	if (!rc)
		rc = policy_version_bump(t.v->meta);
	if (rc)
		goto fail_rollback;
	rc = meta_commit(t.v->meta, 1);
	if (rc)
		goto fail;
	rc = reevaluate(&t) ? 1 : 0;
	target_close(&t);
	return rc;
fail_rollback:
	meta_rollback(t.v->meta);
fail:
	if (rc)
		tfs_error("policy move: cannot reorder rules: %s", strerror(-rc));
	target_close(&t);
	return 1;
}

static int policy_rm(int argc, char **argv, struct common *c)
{
	struct target t;
	int64_t pos;
	int rc;

	if (argc != 2) {
		tfs_error("policy rm: expected one rule NAME");
		return 2;
	}
	if (target_open(&t, c->volume, NULL, c->dry_run))
		return 1;
	if (c->dry_run) {
		rc = dry_run_edit(&t, "rm", argv[1], NULL, 0, c->json);
		target_close(&t);
		return rc;
	}
	rc = meta_begin(t.v->meta);
	if (!rc && rule_exists(t.v->meta, argv[1], &pos) <= 0) {
		meta_rollback(t.v->meta);
		tfs_error("policy rm: no rule named '%s'", argv[1]);
		target_close(&t);
		return 1;
	}
	if (!rc)
		rc = exec_sql(t.v->meta, "DELETE FROM rule WHERE name=?1", argv[1], 0);
	if (!rc)
		rc = exec_sql(t.v->meta, "UPDATE rule SET pos=pos-1 WHERE pos>?2", NULL, pos);
	if (!rc)
		rc = policy_version_bump(t.v->meta);
	if (!rc)
		rc = meta_commit(t.v->meta, 1);
	else
		meta_rollback(t.v->meta);
	if (rc) {
		tfs_error("policy rm: cannot remove rule '%s': %s", argv[1], strerror(-rc));
		target_close(&t);
		return 1;
	}
	rc = reevaluate(&t) ? 1 : 0;
	if (!rc)
		printf("removed rule '%s' (was #%lld)\n", argv[1], (long long)pos);
	target_close(&t);
	return rc;
}

static const char *pin_name(int pin)
{
	return pin == POLICY_PIN_PRIVATE ? "private" : pin == POLICY_PIN_LOCAL ? "local" : "none";
}

static int file_size(struct meta *m, uint64_t ino, uint64_t *size, uint32_t *mode)
{
	struct meta_attr a;
	int rc = meta_inode_get(m, ino, &a);

	if (!rc) {
		*size = a.size;
		*mode = a.mode;
	}
	return rc;
}

static int policy_explain_cmd(int argc, char **argv, struct common *c)
{
	struct policy_set ps;
	struct target t;
	char err[512], vp[PATH_MAX];
	int ret = 0;

	if (argc < 2) {
		tfs_error("policy explain: expected a PATH");
		return 2;
	}
	if (target_open(&t, c->volume, argv[1], 1))
		return 1;
	if (policy_set_load(t.v->meta, &ps, err, sizeof(err))) {
		tfs_error("%s", err);
		target_close(&t);
		return 1;
	}
	for (int k = 1; k < argc; k++) {
		struct placement_info pi;
		uint64_t ino, size;
		uint32_t mode;

		if (vpath_of(&t, argv[k], c->volume != NULL, vp, sizeof(vp))) {
			ret = 1;
			continue;
		}
		if (placement_resolve(t.v->meta, vp, &ino)) {
			tfs_error("policy explain: no file '%s' in volume '%s'", vp, t.vol);
			ret = 1;
			continue;
		}
		if (argc > 2)
			printf("%s:\n", vp);
		placement_explain(t.v->meta, &ps, ino, now_ns(), stdout);
		if (!placement_get(t.v->meta, ino, &pi) && !file_size(t.v->meta, ino, &size, &mode) &&
		    (S_ISREG(mode) || S_ISLNK(mode))) {
			printf("state: placement %s", placement_name((enum placement)pi.placement));
			if (pi.rule[0])
				printf(" (rule '%s')", pi.rule);
			else
				printf(" (%s)", pi.pin == POLICY_PIN_PRIVATE ? "pinned private" : "default");
			printf(", pin %s, sync %s, size %llu\n", pin_name(pi.pin),
			       sync_state_name((enum sync_state)pi.sync_state), (unsigned long long)size);
		}
	}
	policy_set_release(&ps);
	target_close(&t);
	return ret;
}

/* Evaluate every file without writing: the distribution and the changes. */
static int policy_check(int argc, char **argv, struct common *c)
{
	struct policy_set ps;
	struct target t;
	sqlite3_stmt *s;
	char err[512];
	uint64_t files[4] = { 0 }, bytes[4] = { 0 };
	uint64_t chf[4][4] = { { 0 } }, chb[4][4] = { { 0 } };
	int64_t now = now_ns();
	int first = 1, rc = 0, errors = 0, warnings = 0;

	if (argc != 1) {
		tfs_error("policy check: unexpected argument '%s'", argv[1]);
		return 2;
	}
	if (target_open(&t, c->volume, NULL, 1))
		return 1;
	if (policy_set_load(t.v->meta, &ps, err, sizeof(err))) {
		tfs_error("%s", err);
		target_close(&t);
		return 1;
	}
	if (sqlite3_prepare_v2(meta_db(t.v->meta),
			       "SELECT ino, size FROM inode WHERE (mode & 61440) IN (32768, 40960) AND nlink > 0",
			       -1, &s, NULL) != SQLITE_OK) {
		tfs_error("cannot read the volume: %s", sqlite3_errmsg(meta_db(t.v->meta)));
		rc = 1;
		goto out;
	}
	{
		uint64_t *inos = NULL, *sizes = NULL;
		size_t n = 0, cap = 0;

		while (sqlite3_step(s) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				inos = realloc(inos, cap * sizeof(*inos));
				sizes = realloc(sizes, cap * sizeof(*sizes));
				if (!inos || !sizes) {
					tfs_error("out of memory");
					exit(1);
				}
			}
			inos[n] = (uint64_t)sqlite3_column_int64(s, 0);
			sizes[n++] = (uint64_t)sqlite3_column_int64(s, 1);
		}
		sqlite3_finalize(s);
		for (size_t k = 0; k < n; k++) {
			struct placement_info now_pi, stored;
			int a, b;

			if (placement_get(t.v->meta, inos[k], &stored) ||
			    placement_evaluate(t.v->meta, &ps, inos[k], now, &now_pi))
				continue;
			a = (int)stored.placement & 3;
			b = (int)now_pi.placement & 3;
			files[b]++;
			bytes[b] += sizes[k];
			if (a != b) {
				chf[a][b]++;
				chb[a][b] += sizes[k];
			}
		}
		free(inos);
		free(sizes);
	}
	if (c->json) {
		printf("{\"placements\":[");
		for (int p = 0; p < 4; p++)
			printf("%s{\"placement\":\"%s\",\"files\":%llu,\"bytes\":%llu}", p ? "," : "",
			       placement_name((enum placement)p), (unsigned long long)files[p],
			       (unsigned long long)bytes[p]);
		printf("],\"changes\":[");
		for (int a = 0; a < 4; a++)
			for (int b = 0; b < 4; b++)
				if (chf[a][b]) {
					printf("%s{\"from\":\"%s\",\"to\":\"%s\",\"files\":%llu,\"bytes\":%llu}",
					       first ? "" : ",", placement_name((enum placement)a),
					       placement_name((enum placement)b), (unsigned long long)chf[a][b],
					       (unsigned long long)chb[a][b]);
					first = 0;
				}
		printf("],\"shadowed\":[");
		first = 1;
		errors = policy_shadowed(ps.rules, ps.n, 0, 1, &first, &warnings);
		printf("]}\n");
	} else {
		printf("%-10s %10s %16s\n", "PLACEMENT", "FILES", "BYTES");
		for (int p = 0; p < 4; p++)
			printf("%-10s %10llu %16llu\n", placement_name((enum placement)p),
			       (unsigned long long)files[p], (unsigned long long)bytes[p]);
		for (int a = 0; a < 4; a++)
			for (int b = 0; b < 4; b++)
				if (chf[a][b]) {
					if (first)
						printf("\nwould change (the mount applies this within a second):\n");
					printf("  %s -> %s: %llu files, %llu bytes\n",
					       placement_name((enum placement)a), placement_name((enum placement)b),
					       (unsigned long long)chf[a][b], (unsigned long long)chb[a][b]);
					first = 0;
				}
		if (first)
			printf("\nstored placements match the rules\n");
		errors = policy_shadowed(ps.rules, ps.n, 0, 0, &first, &warnings);
		if (errors || warnings)
			printf("\n%d rule%s can never match (%d error%s, see above)\n", errors + warnings,
			       errors + warnings == 1 ? "" : "s", errors, errors == 1 ? "" : "s");
	}
	if (errors) {
		tfs_error("policy check: %d private rule%s can never match: the files %s believed private"
			  " leave the premises", errors, errors == 1 ? "" : "s", errors == 1 ? "it is" : "they are");
		rc = 1;
	}
out:
	policy_set_release(&ps);
	target_close(&t);
	return rc;
}

int cmd_policy(int argc, char **argv)
{
	struct common c = { NULL, 0, 0, NULL, NULL, 0 };
	const char *sub;

	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(policy_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (int k = 2; k < argc; k++)
		if (cli_is_help(argv[k])) {
			fputs(policy_usage, stdout);
			return 0;
		}
	/* "--volume DIR" may come before the subcommand too */
	while (argc > 2 && (!strcmp(argv[1], "--volume") || !strncmp(argv[1], "--volume=", 9))) {
		int take = argv[1][8] == '=' ? 1 : 2;

		c.volume = take == 1 ? argv[1] + 9 : argv[2];
		argc -= take;
		argv += take;
	}
	if (argc < 2) {
		fputs(policy_usage, stderr);
		return 2;
	}
	sub = argv[1];
	argc--;
	argv++;
	take_common(&argc, argv, &c, !strcmp(sub, "list") || !strcmp(sub, "check"),
		    !strcmp(sub, "add") || !strcmp(sub, "move") || !strcmp(sub, "rm"));
	if (!strcmp(sub, "add"))
		return policy_add(argc, argv, &c);
	if (!strcmp(sub, "list"))
		return policy_list(argc, argv, &c);
	if (!strcmp(sub, "move"))
		return policy_move(argc, argv, &c);
	if (!strcmp(sub, "rm"))
		return policy_rm(argc, argv, &c);
	if (!strcmp(sub, "explain"))
		return policy_explain_cmd(argc, argv, &c);
	if (!strcmp(sub, "check"))
		return policy_check(argc, argv, &c);
	tfs_error("policy: unknown subcommand '%s'; see 'tierfs policy --help'", sub);
	return 2;
}

/* ---- status ---- */

static const char status_usage[] =
	"usage: tierfs status [--json] [--volume DIR] [PATH...]\n"
	"       tierfs status --errors [--json] [--volume DIR]\n"
	"       tierfs status --check [--max-upload-failures N] [--max-queue-age DURATION]\n"
	"                     [--volume DIR]\n"
	"       tierfs status --conflicts [--json] [--volume DIR]\n"
	"\n"
	"--conflicts: the conflict copies home kept when it imported a cloud\n"
	"node's change to a file that had changed meanwhile, and the changes it\n"
	"skipped (a delete or attribute change of a file changed at home).\n"
	"\n"
	"Without PATH, or with the mount point: the volume, its files and bytes\n"
	"per placement and sync state, the upload queue and the store's health\n"
	"per direction (upload, download, publish, requests, gc) as the sync\n"
	"engine's operations recorded it. With PATHs: each file's placement, the\n"
	"rule that gave it, its pin and its sync state (a directory lists the\n"
	"files below it).\n"
	"--errors lists the files that do not sync, with the reason: transient\n"
	"(retried by itself) or persistent (needs the operator).\n"
	"--check exits 0 when healthy, 1 with a one-line reason when uploads have\n"
	"failed N times in a row (default 5) or the oldest queued file waits\n"
	"longer than DURATION (default 1h; 30m, 2h or seconds); 3 when the volume\n"
	"cannot be read.\n";

struct status_row {
	int first;
	int json;
};

static void status_file(struct target *t, uint64_t ino, const char *vp, struct status_row *row)
{
	struct placement_info pi;
	uint64_t size;
	uint32_t mode;

	if (placement_get(t->v->meta, ino, &pi) || file_size(t->v->meta, ino, &size, &mode))
		return;
	if (!S_ISREG(mode) && !S_ISLNK(mode))
		return;
	pi.visible = pi.placement == PLACEMENT_ON_DEMAND || pi.placement == PLACEMENT_MIRROR;
	if (pi.placement == PLACEMENT_TIER && pi.rule[0]) {
		/* tier is visible only with --export: ask the rule */
		struct policy_set ps;
		char err[256];

		if (!policy_set_load(t->v->meta, &ps, err, sizeof(err))) {
			for (size_t k = 0; k < ps.n; k++)
				if (!strcmp(ps.rules[k].name, pi.rule))
					pi.visible = ps.rules[k].export;
			policy_set_release(&ps);
		}
	}
	if (row->json) {
		printf("%s{\"path\":", row->first ? "" : ",");
		json_str(stdout, vp);
		printf(",\"placement\":\"%s\",\"rule\":", placement_name((enum placement)pi.placement));
		if (pi.rule[0])
			json_str(stdout, pi.rule);
		else
			printf("null");
		printf(",\"pin\":\"%s\",\"sync\":\"%s\",\"size\":%llu,\"visible\":%s}", pin_name(pi.pin),
		       sync_state_name((enum sync_state)pi.sync_state), (unsigned long long)size,
		       pi.visible ? "true" : "false");
	} else {
		printf("%-10s %-20s %-8s %-9s %12llu  %s\n", placement_name((enum placement)pi.placement),
		       pi.rule[0] ? pi.rule : "-", pin_name(pi.pin),
		       sync_state_name((enum sync_state)pi.sync_state), (unsigned long long)size, vp);
	}
	row->first = 0;
}

/* Every file below dir (depth first), with its path. */
static void status_tree(struct target *t, uint64_t dir, const char *vp, struct status_row *row)
{
	sqlite3_stmt *s;
	struct entry {
		uint64_t ino;
		int type;
		char *name;
	} *ents = NULL;
	size_t n = 0, cap = 0;

	if (sqlite3_prepare_v2(meta_db(t->v->meta),
			       "SELECT ino, type, name FROM dentry WHERE parent=?1 ORDER BY name", -1, &s,
			       NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(s, 1, (int64_t)dir);
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (n == cap) {
			struct entry *e = realloc(ents, (cap ? cap * 2 : 64) * sizeof(*e));

			if (!e)
				break;
			ents = e;
			cap = cap ? cap * 2 : 64;
		}
		ents[n].ino = (uint64_t)sqlite3_column_int64(s, 0);
		ents[n].type = (int)sqlite3_column_int64(s, 1);
		ents[n].name = strndup(sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2));
		n++;
	}
	sqlite3_finalize(s);
	for (size_t k = 0; k < n; k++) {
		char child[PATH_MAX];

		snprintf(child, sizeof(child), "%s/%s", strcmp(vp, "/") ? vp : "", ents[k].name ? ents[k].name : "?");
		if (ents[k].type == (S_IFDIR >> 12))
			status_tree(t, ents[k].ino, child, row);
		else
			status_file(t, ents[k].ino, child, row);
		free(ents[k].name);
	}
	free(ents);
}

static int status_volume(struct target *t, int json)
{
	sqlite3_stmt *s;
	char *url = NULL;
	uint64_t tf = 0, tb = 0;
	int first = 1, pid = volume_mount_pid(t->vol);
	int64_t nrules = 0;

	meta_config_get(t->v->meta, "store_url", &url);
	if (sqlite3_prepare_v2(meta_db(t->v->meta), "SELECT count(*) FROM rule", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			nrules = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	if (sqlite3_prepare_v2(meta_db(t->v->meta),
			       "SELECT placement, sync_state, count(*), coalesce(sum(size),0) FROM inode"
			       " WHERE (mode & 61440) IN (32768, 40960) AND nlink > 0"
			       " GROUP BY placement, sync_state ORDER BY placement, sync_state",
			       -1, &s, NULL) != SQLITE_OK) {
		tfs_error("cannot read the volume: %s", sqlite3_errmsg(meta_db(t->v->meta)));
		free(url);
		return 1;
	}
	if (json) {
		printf("{\"volume\":");
		json_str(stdout, t->v->dir);
		printf(",\"mounted\":%s,\"mountpoint\":", pid > 0 ? "true" : "false");
		if (t->mnt[0])
			json_str(stdout, t->mnt);
		else
			printf("null");
		printf(",\"store\":");
		json_str(stdout, url ? url : "");
		printf(",\"rules\":%lld,\"totals\":[", (long long)nrules);
	} else {
		printf("volume:     %s\n", t->v->dir);
		if (pid > 0)
			printf("mounted:    %s (pid %d)\n", t->mnt[0] ? t->mnt : "yes", pid);
		else
			printf("mounted:    no\n");
		printf("store:      %s\n", url ? url : "?");
		printf("rules:      %lld\n\n", (long long)nrules);
		printf("%-10s %-10s %10s %16s\n", "PLACEMENT", "SYNC", "FILES", "BYTES");
	}
	while (sqlite3_step(s) == SQLITE_ROW) {
		int p = (int)sqlite3_column_int64(s, 0), st = (int)sqlite3_column_int64(s, 1);
		uint64_t f = (uint64_t)sqlite3_column_int64(s, 2), b = (uint64_t)sqlite3_column_int64(s, 3);

		tf += f;
		tb += b;
		if (json)
			printf("%s{\"placement\":\"%s\",\"sync\":\"%s\",\"files\":%llu,\"bytes\":%llu}",
			       first ? "" : ",", placement_name((enum placement)p),
			       sync_state_name((enum sync_state)st), (unsigned long long)f, (unsigned long long)b);
		else
			printf("%-10s %-10s %10llu %16llu\n", placement_name((enum placement)p),
			       sync_state_name((enum sync_state)st), (unsigned long long)f, (unsigned long long)b);
		first = 0;
	}
	sqlite3_finalize(s);
	/* the sync engine: queue and store health as its operations recorded them */
	{
		long long wb[7] = { 0 };

		/* write-back: the cloud nodes' counters (import.c keeps them) */
		if (sqlite3_prepare_v2(meta_db(t->v->meta),
				       "SELECT count(*), count(revoked), coalesce(sum(files),0), coalesce(sum(bytes),0),"
				       " coalesce(sum(pending),0), coalesce(sum(rejected),0), coalesce(sum(conflicts),0)"
				       " FROM node", -1, &s, NULL) == SQLITE_OK) {
			if (sqlite3_step(s) == SQLITE_ROW)
				for (int k = 0; k < 7; k++)
					wb[k] = sqlite3_column_int64(s, k);
			sqlite3_finalize(s);
		}
		if (json) {
			printf("],\"files\":%llu,\"bytes\":%llu,", (unsigned long long)tf, (unsigned long long)tb);
			cli_status_sync(t->v, 1);
			printf(",\"writeback\":{\"nodes\":%lld,\"revoked\":%lld,\"imported_files\":%lld,"
			       "\"imported_bytes\":%lld,\"waiting\":%lld,\"rejected\":%lld,"
			       "\"conflicts\":%lld}}\n", wb[0], wb[1], wb[2], wb[3], wb[4], wb[5], wb[6]);
		} else {
			printf("%-10s %-10s %10llu %16llu\n\n", "total", "", (unsigned long long)tf,
			       (unsigned long long)tb);
			cli_status_sync(t->v, 0);
			if (wb[0])
				printf("write-back:   %lld nodes (%lld revoked): %lld files (%lld bytes)"
				       " imported, %lld change sets waiting, %lld changes rejected, %lld"
				       " conflicts (tierfs node list, status --conflicts)\n", wb[0], wb[1],
				       wb[2], wb[3], wb[4], wb[5], wb[6]);
		}
	}
	free(url);
	return 0;
}

/* status --conflicts: the conflict table (import.c), oldest first. */
static int status_conflicts(const char *volume, int json)
{
	struct target t;
	sqlite3_stmt *s;
	int n = 0;

	if (target_open(&t, volume, NULL, 1))
		return 1;
	if (sqlite3_prepare_v2(meta_db(t.v->meta), "SELECT path, copy, node, seq, reason, time FROM"
			       " conflict ORDER BY id", -1, &s, NULL) != SQLITE_OK) {
		tfs_error("cannot read the conflicts of volume '%s': %s", t.vol,
			  sqlite3_errmsg(meta_db(t.v->meta)));
		target_close(&t);
		return 1;
	}
	if (json)
		printf("{\"conflicts\":[");
	else
		printf("%-20s %-10s %6s  %-40s %-40s %s\n", "TIME", "NODE", "SET", "PATH", "COPY", "WHY");
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(s, 0);
		const char *copy = (const char *)sqlite3_column_text(s, 1);
		const char *node = (const char *)sqlite3_column_text(s, 2);
		const char *why = (const char *)sqlite3_column_text(s, 4);
		char when[32];
		uint64_t ino;
		int there = copy && placement_resolve(t.v->meta, copy, &ino) == 0;

		cli_iso_time(sqlite3_column_int64(s, 5), when, sizeof(when));
		if (json) {
			printf("%s{\"path\":", n ? "," : "");
			json_str(stdout, path);
			printf(",\"copy\":");
			if (copy)
				json_str(stdout, copy);
			else
				printf("null");
			printf(",\"node\":");
			json_str(stdout, node);
			printf(",\"copy_exists\":%s,\"change_set\":%lld,\"reason\":", there ? "true" : "false",
			       (long long)sqlite3_column_int64(s, 3));
			json_str(stdout, why);
			printf(",\"time\":\"%s\"}", when);
		} else {
			printf("%-20s %-10s %6lld  %-40s %-40s %s%s\n", when, node,
			       (long long)sqlite3_column_int64(s, 3), path, copy ? copy : "-", why,
			       copy && !there ? " (copy deleted since)" : "");
		}
		n++;
	}
	sqlite3_finalize(s);
	if (json)
		printf("]}\n");
	else if (!n)
		printf("(no conflicts)\n");
	target_close(&t);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	struct common c = { NULL, 0, 0, NULL, NULL, 0 };
	struct status_row row = { 1, 0 };
	struct target t;
	int ret = 0, errors = 0, check = 0, conflicts = 0;
	long max_failures = 5, max_age = 3600;

	for (int k = 1; k < argc; k++)
		if (cli_is_help(argv[k])) {
			fputs(status_usage, stdout);
			return 0;
		}
	take_common(&argc, argv, &c, 1, 0);
	{
		int out = 1;

		for (int k = 1; k < argc; k++) {
			if (!strcmp(argv[k], "--errors")) {
				errors = 1;
			} else if (!strcmp(argv[k], "--conflicts")) {
				conflicts = 1;
			} else if (!strcmp(argv[k], "--check")) {
				check = 1;
			} else if (!strncmp(argv[k], "--max-upload-failures", 21) &&
				   (argv[k][21] == '=' || (!argv[k][21] && k + 1 < argc))) {
				const char *v = argv[k][21] ? argv[k] + 22 : argv[++k];
				char *end;

				max_failures = strtol(v, &end, 10);
				if (!*v || *end || max_failures < 1) {
					tfs_error("status: --max-upload-failures wants a number >= 1");
					return 2;
				}
			} else if (!strncmp(argv[k], "--max-queue-age", 15) &&
				   (argv[k][15] == '=' || (!argv[k][15] && k + 1 < argc))) {
				uint64_t secs;

				if (parse_duration(argv[k][15] ? argv[k] + 16 : argv[++k], &secs) || secs > LONG_MAX) {
					tfs_error("status: --max-queue-age wants a duration (SECONDS, or 30m, 2h ...)");
					return 2;
				}
				max_age = (long)secs;
			} else if (argv[k][0] == '-' && argv[k][1]) {
				tfs_error("status: unknown option '%s'; see 'tierfs status --help'", argv[k]);
				return 2;
			} else {
				argv[out++] = argv[k];
			}
		}
		argc = out;
		argv[argc] = NULL;
	}
	if (conflicts) {
		if (argc > 1 || errors || check) {
			tfs_error("status --conflicts: takes no PATH, --errors or --check");
			return 2;
		}
		return status_conflicts(c.volume, c.json);
	}
	if ((errors || check) && argc > 2) {
		tfs_error("status: --errors and --check take at most one volume or mount point");
		return 2;
	}
	if (argc > 1 && !errors && !check && (ret = cloud_status_main(argv[1], c.json)) >= 0)
		return ret;
	ret = 0;
	if (target_open(&t, c.volume, argc > 1 ? argv[1] : NULL, 1))
		return check ? 3 : 1;
	if (check || errors) {
		ret = check ? cli_status_check(t.v, max_failures, max_age) : cli_status_errors(t.v, c.json);
		target_close(&t);
		return ret;
	}
	if (argc == 2 && !c.volume) {
		/* the mount point itself: the volume's status, as for a cloud mount */
		char abs[PATH_MAX];

		if (t.mnt[0] && realpath(argv[1], abs) && !strcmp(abs, t.mnt))
			argc = 1;
	}
	if (argc == 1) {
		ret = status_volume(&t, c.json);
		target_close(&t);
		return ret;
	}
	row.json = c.json;
	if (c.json)
		printf("{\"files\":[");
	else
		printf("%-10s %-20s %-8s %-9s %12s  %s\n", "PLACEMENT", "RULE", "PIN", "SYNC", "SIZE", "PATH");
	for (int k = 1; k < argc; k++) {
		char vp[PATH_MAX];
		uint64_t ino, size;
		uint32_t mode;

		if (vpath_of(&t, argv[k], c.volume != NULL, vp, sizeof(vp))) {
			ret = 1;
			continue;
		}
		if (placement_resolve(t.v->meta, vp, &ino) || file_size(t.v->meta, ino, &size, &mode)) {
			tfs_error("status: no file '%s' in volume '%s'", vp, t.vol);
			ret = 1;
			continue;
		}
		if (S_ISDIR(mode))
			status_tree(&t, ino, vp, &row);
		else
			status_file(&t, ino, vp, &row);
	}
	if (c.json)
		printf("]}\n");
	target_close(&t);
	return ret;
}

/* ---- pin / unpin ---- */

static const char pin_usage[] =
	"usage: tierfs pin [--private] [--volume DIR] PATH...\n"
	"       tierfs unpin [--volume DIR] PATH...\n"
	"\n"
	"A pin overrides every rule: the file keeps its local copy (never\n"
	"evicted); with --private it is also private (never visible or uploaded).\n"
	"Pinning a directory pins every file below it.\n";

static int pin_tree(struct meta *m, uint64_t ino, int pin, struct policy_set *ps, int64_t now)
{
	uint64_t size;
	uint32_t mode;
	int rc = file_size(m, ino, &size, &mode);

	if (rc)
		return rc;
	if (S_ISDIR(mode)) {
		sqlite3_stmt *s;
		uint64_t *kids = NULL;
		size_t n = 0, cap = 0;

		if (sqlite3_prepare_v2(meta_db(m), "SELECT ino FROM dentry WHERE parent=?1", -1, &s, NULL) !=
		    SQLITE_OK)
			return -EIO;
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		while (sqlite3_step(s) == SQLITE_ROW) {
			if (n == cap) {
				uint64_t *p = realloc(kids, (cap ? cap * 2 : 64) * sizeof(*p));

				if (!p)
					break;
				kids = p;
				cap = cap ? cap * 2 : 64;
			}
			kids[n++] = (uint64_t)sqlite3_column_int64(s, 0);
		}
		sqlite3_finalize(s);
		for (size_t k = 0; k < n && !rc; k++)
			rc = pin_tree(m, kids[k], pin, ps, now);
		free(kids);
		return rc;
	}
	if (!S_ISREG(mode) && !S_ISLNK(mode))
		return 0;
	rc = placement_set_pin(m, ino, pin);
	if (!rc)
		rc = placement_apply(m, ps, ino, now, NULL);
	return rc;
}

static int do_pin(int argc, char **argv, int unpin)
{
	struct common c = { NULL, 0, 0, NULL, NULL, 0 };
	struct policy_set ps;
	struct target t;
	char err[512];
	int pin = unpin ? POLICY_PIN_NONE : POLICY_PIN_LOCAL, out = 1, ret = 0;

	for (int k = 1; k < argc; k++)
		if (cli_is_help(argv[k])) {
			fputs(pin_usage, stdout);
			return 0;
		}
	take_common(&argc, argv, &c, 0, 0);
	for (int k = 1; k < argc; k++) {
		if (!unpin && !strcmp(argv[k], "--private"))
			pin = POLICY_PIN_PRIVATE;
		else if (argv[k][0] == '-' && argv[k][1]) {
			tfs_error("%s: unknown option '%s'; see 'tierfs %s --help'", argv[0], argv[k], argv[0]);
			return 2;
		} else
			argv[out++] = argv[k];
	}
	argc = out;
	if (argc < 2) {
		tfs_error("%s: expected at least one PATH", argv[0]);
		return 2;
	}
	if (target_open(&t, c.volume, argv[1], 0))
		return 1;
	if (policy_set_load(t.v->meta, &ps, err, sizeof(err))) {
		tfs_error("%s", err);
		target_close(&t);
		return 1;
	}
	for (int k = 1; k < argc; k++) {
		char vp[PATH_MAX];
		uint64_t ino;
		int rc;

		if (vpath_of(&t, argv[k], c.volume != NULL, vp, sizeof(vp))) {
			ret = 1;
			continue;
		}
		if (placement_resolve(t.v->meta, vp, &ino)) {
			tfs_error("%s: no file '%s' in volume '%s'", argv[0], vp, t.vol);
			ret = 1;
			continue;
		}
		rc = meta_begin(t.v->meta);
		if (!rc)
			rc = pin_tree(t.v->meta, ino, pin, &ps, now_ns());
		if (!rc)
			rc = meta_commit(t.v->meta, 1);
		else
			meta_rollback(t.v->meta);
		if (rc) {
			tfs_error("%s: cannot change '%s': %s", argv[0], vp, strerror(-rc));
			ret = 1;
		}
	}
	policy_set_release(&ps);
	target_close(&t);
	return ret;
}

int cmd_pin(int argc, char **argv)
{
	return do_pin(argc, argv, 0);
}

int cmd_unpin(int argc, char **argv)
{
	return do_pin(argc, argv, 1);
}
