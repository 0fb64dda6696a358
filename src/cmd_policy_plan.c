/*
 * cmd_policy_plan.c - looking before leaping with placement rules: what a
 * rule change would do to every file (`policy add/move/rm --dry-run`),
 * and which rules can never match because an earlier rule matches every
 * file they match (`policy check`, `policy add`). Nothing here writes.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_int.h"
#include "log.h"
#include "placement.h"
#include "policy.h"

/* Does a file with this placement leave the premises (uploaded or shown)? */
static int leaves(int64_t p)
{
	return p != PLACEMENT_PRIVATE;
}

struct change {
	uint64_t ino, size;
	int64_t from, to;
};

int policy_dry_run(struct target *t, const struct policy_set *old, const struct policy_set *neu, int json)
{
	struct meta *m = t->v->meta;
	struct change *ch = NULL;
	size_t n = 0, cap = 0;
	uint64_t files = 0, bytes = 0, start[2] = { 0, 0 }, stop[2] = { 0, 0 };
	int64_t now = (int64_t)now_real_ns();
	sqlite3_stmt *s;
	int rc = 0;

	if (sqlite3_prepare_v2(meta_db(m), "SELECT ino, size FROM inode WHERE (mode & 61440) IN (32768, 40960)"
			       " AND nlink > 0 ORDER BY ino", -1, &s, NULL) != SQLITE_OK) {
		tfs_error("cannot read the volume: %s", sqlite3_errmsg(meta_db(m)));
		return 1;
	}
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (n == cap) {
			struct change *x = realloc(ch, (cap ? cap * 2 : 1024) * sizeof(*x));

			if (!x) {
				rc = -ENOMEM;
				break;
			}
			ch = x;
			cap = cap ? cap * 2 : 1024;
		}
		ch[n].ino = (uint64_t)sqlite3_column_int64(s, 0);
		ch[n++].size = (uint64_t)sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	if (json)
		fputs("{\"dry_run\":true,\"changes\":[", stdout);
	for (size_t k = 0; !rc && k < n; k++) {
		struct placement_info a, b;
		struct tbuf path = TBUF_INIT;
		const char *leaving;

		/* the edit's effect alone: both sets evaluated now */
		if (placement_evaluate(m, old, ch[k].ino, now, &a) ||
		    placement_evaluate(m, neu, ch[k].ino, now, &b) || a.placement == b.placement)
			continue;
		if (placement_path(m, ch[k].ino, &path))
			continue;
		leaving = leaves(a.placement) == leaves(b.placement) ? NULL
			  : leaves(b.placement)			     ? "starts"
								     : "stops";
		if (leaving) {
			uint64_t *c = leaving[1] == 't' && leaving[2] == 'a' ? start : stop;

			c[0]++;
			c[1] += ch[k].size;
		}
		if (json) {
			printf("%s{\"path\":", files ? "," : "");
			json_str(stdout, (const char *)path.data);
			printf(",\"from\":\"%s\",\"to\":\"%s\",\"bytes\":%llu,\"leaving\":",
			       placement_name((enum placement)a.placement), placement_name((enum placement)b.placement),
			       (unsigned long long)ch[k].size);
			if (leaving)
				printf("\"%s\"}", leaving);
			else
				fputs("null}", stdout);
		} else {
			printf("  '%s': %s -> %s, %llu bytes%s%s%s\n", (const char *)path.data,
			       placement_name((enum placement)a.placement), placement_name((enum placement)b.placement),
			       (unsigned long long)ch[k].size, leaving ? " (" : "", leaving ? leaving : "",
			       leaving ? " leaving)" : "");
		}
		files++;
		bytes += ch[k].size;
		tbuf_release(&path);
	}
	free(ch);
	if (rc) {
		if (json)
			fputs("]}\n", stdout);
		tfs_error("cannot evaluate the rules: %s", strerror(-rc));
		return 1;
	}
	if (json)
		printf("],\"files\":%llu,\"bytes\":%llu,\"start_leaving\":{\"files\":%llu,\"bytes\":%llu},"
		       "\"stop_leaving\":{\"files\":%llu,\"bytes\":%llu}}\n",
		       (unsigned long long)files, (unsigned long long)bytes, (unsigned long long)start[0],
		       (unsigned long long)start[1], (unsigned long long)stop[0], (unsigned long long)stop[1]);
	else
		printf("dry run, nothing changed: %llu files (%llu bytes) would change placement;"
		       " %llu files (%llu bytes) would start leaving the premises, %llu files (%llu bytes)"
		       " would stop\n",
		       (unsigned long long)files, (unsigned long long)bytes, (unsigned long long)start[0],
		       (unsigned long long)start[1], (unsigned long long)stop[0], (unsigned long long)stop[1]);
	return 0;
}

int policy_shadowed(const struct policy_rule *rules, size_t n, size_t from, int json, int *first,
		    int *warnings_out)
{
	int errors = 0;

	*warnings_out = 0;
	for (size_t j = from; j < n; j++) {
		for (size_t i = 0; i < j; i++) {
			const struct policy_rule *a = &rules[i], *b = &rules[j];
			int err;

			if (!policy_rule_covers(a, b))
				continue;
			/* the user believes those files private; they leave */
			err = b->placement == PLACEMENT_PRIVATE && a->placement != PLACEMENT_PRIVATE;
			if (json) {
				printf("%s{\"rule\":", *first ? "" : ",");
				json_str(stdout, b->name);
				fputs(",\"shadowed_by\":", stdout);
				json_str(stdout, a->name);
				printf(",\"severity\":\"%s\"}", err ? "error" : "warning");
				*first = 0;
			} else if (err) {
				fprintf(stderr, "error: private rule '%s' can never match: rule '%s' comes first,"
					" matches every file it matches and makes them %s\n", b->name, a->name,
					placement_name(a->placement));
			} else {
				fprintf(stderr, "warning: rule '%s' can never match: rule '%s' comes first and"
					" matches every file it matches\n", b->name, a->name);
			}
			if (err)
				errors++;
			else
				(*warnings_out)++;
			break; /* the first rule that shadows it is enough */
		}
	}
	return errors;
}
