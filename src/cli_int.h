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

/* The first line of a small file (a passphrase file), caller frees. 0 or -errno. */
int cli_read_line_file(const char *path, char **out);

/* A JSON string literal. */
void json_str(FILE *f, const char *s);

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
struct cli_daemon {
	int pipefd;      /* -1 in the foreground */
	const char *log; /* where stderr goes once the daemon is ready */
};
void cli_daemon_ready(void *arg); /* arg: struct cli_daemon * */
/* Report err (if rc) to the parent or stderr, close the pipe; exit status. */
int cli_daemon_done(struct cli_daemon *d, int rc, const char *err);
int cli_run_daemon(const char *what, int foreground, int (*serve)(void *arg, int pipefd), void *arg);

#endif
