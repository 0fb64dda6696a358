/*
 * cli_int.h - helpers shared by the commands that work on a volume's
 * metadata store beside a live mount (cmd_policy.c, cmd_sync.c).
 */
#ifndef TIERFS_CLI_INT_H
#define TIERFS_CLI_INT_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "volume.h"

/* The volume a command works on. */
struct target {
	char vol[PATH_MAX]; /* volume directory */
	char mnt[PATH_MAX]; /* its mount point, "" when not mounted */
	struct volume *v;
};

/*
 * Find and open the volume: from volopt (--volume: a volume directory or a
 * tierfs mount point), else from path, else from the current directory.
 * Prints the error and returns -1 on failure.
 */
int target_open(struct target *t, const char *volopt, const char *path, int readonly);
void target_close(struct target *t);

/*
 * The path within the volume ("/a/b") of a user path: relative to the
 * volume's mount when the path is inside it; with --volume, taken as a path
 * within the volume. Prints the error and returns -1 on failure.
 */
int vpath_of(const struct target *t, const char *path, int have_volopt, char *out, size_t len);

/*
 * Rule changes looked at before they are made (cmd_policy_plan.c).
 * policy_dry_run: every file whose placement differs between the rule sets
 * old and neu (both evaluated now), with counts and bytes, and what would
 * start or stop leaving the premises; writes nothing. Exit status.
 * policy_shadowed: for each rule from index `from` on, the first earlier
 * rule that matches every file it matches (policy_rule_covers()); a
 * private rule shadowed by a rule that lets files leave is an error, any
 * other shadowing a warning. Human lines go to stderr ("error: ...",
 * "warning: ..."); with json, objects to stdout, comma-separated after the
 * first (*first tracks it). Returns the errors, *warnings_out the warnings.
 */
struct policy_set;
struct policy_rule;
int policy_dry_run(struct target *t, const struct policy_set *old, const struct policy_set *neu, int json);
int policy_shadowed(const struct policy_rule *rules, size_t n, size_t from, int json, int *first,
		    int *warnings_out);

/* The first line of a small file (a passphrase file), caller frees. 0 or -errno. */
int cli_read_line_file(const char *path, char **out);

/* A JSON string literal. */
void json_str(FILE *f, const char *s);
/* ns since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (UTC) into buf. */
void cli_iso_time(int64_t ns, char *buf, size_t len);

/*
 * Jobs for a live mount (cmd_sync.c): leave a job (kind, arg) in the job
 * table for the mount's sync engine (the id, -1 on failure), and follow it
 * to its end with progress on a terminal: 0 done (the job's final done
 * count in *done_out, if not NULL), 1 failed (printed).
 */
int64_t cli_job_submit(struct target *t, const char *kind, const char *arg);
int cli_job_follow(struct target *t, int64_t id, const char *what, int timeout_s, uint64_t *done_out);

/*
 * Before a volume claims a store (format): the store must work (put, get,
 * list, delete, as `store check`) and hold no other volume's objects.
 * 0, -EEXIST (another volume's objects there), other errors; why says it.
 */
int cli_store_claim_check(const char *url, char *why, size_t len);

/* `tierfs status`: the sync engine's health (cmd_health.c). */
/* status: the "sync" part (a JSON member when json), from the recorded health. */
void cli_status_sync(struct volume *v, int json);
/* status --errors: the files that do not sync, with why. Exit status. */
int cli_status_errors(struct volume *v, int json);
/* status --check: 0 healthy, 1 unhealthy (one line on stderr), 3 unknown. */
int cli_status_check(struct volume *v, long max_failures, long max_queue_age_s);

/*
 * Mount daemons (cmd_volume.c). A mount command checks its mount point,
 * then runs serve(arg, pipefd) in a forked daemon (or in the foreground
 * with pipefd -1). The daemon calls cli_daemon_ready() once the mount is
 * live, or writes its one-line error to the pipe and exits; the command
 * prints the error and returns the exit status.
 */
int cli_check_mountpoint(const char *mp, char *abs_out);
/* A mount option both mounts accept and ignore (fstab's defaults, noauto,
 * _netdev, x-*, ...; allow_other and default_permissions, always on). */
int cli_mount_opt_ignored(const char *o);
struct cli_daemon {
	int pipefd;      /* -1 in the foreground */
	const char *log; /* where stderr goes once the daemon is ready */
	/* The daemon's status for systemd's STATUS= (notify.h), or NULL. */
	int (*status)(void *arg, char *buf, size_t len);
	void *status_arg;
	int ready, stopping; /* READY=1, STOPPING=1 sent */
};
/* The mount is live: tell the parent (or systemd: READY=1, then STATUS=
 * lines from d->status). arg: struct cli_daemon *. */
void cli_daemon_ready(void *arg);
/* The mount went away: STOPPING=1 (once, after the last STATUS=). */
void cli_daemon_stopping(void *arg);
/* Report err (if rc) to the parent or stderr, close the pipe; exit status. */
int cli_daemon_done(struct cli_daemon *d, int rc, const char *err);
int cli_run_daemon(const char *what, int foreground, int (*serve)(void *arg, int pipefd), void *arg);

#endif
