/*
 * cmd_sync.c - the sync engine commands: sync, hydrate, evict, gc.
 *
 * With the volume mounted, a command leaves a job in the metadata store's
 * `job` table; the mount's sync engine runs it and writes its progress back
 * there, which the command follows (with a progress bar on a terminal).
 * With nothing mounted the command runs the same job itself.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_int.h"
#include "health.h"
#include "log.h"
#include "placement.h"
#include "publish.h"
#include "sync.h"

struct sync_args {
	const char *volume;
	int wait, dry_run, force, imported;
	int timeout_s;
	char **paths;
	int npaths;
};

static void print_published(uint64_t seq, uint64_t objects)
{
	if (seq)
		printf("published snapshot %llu (%llu objects)\n", (unsigned long long)seq,
		       (unsigned long long)objects);
	else
		printf("nothing exported changed: no new snapshot\n");
}

static int parse_args(int argc, char **argv, struct sync_args *a, const char *usage, int allow_wait,
		      int allow_dry)
{
	memset(a, 0, sizeof(*a));
	a->paths = calloc((size_t)argc, sizeof(*a->paths));
	if (!a->paths)
		return 1;
	for (int k = 1; k < argc; k++) {
		if (cli_is_help(argv[k])) {
			fputs(usage, stdout);
			return -1;
		} else if (!strcmp(argv[k], "--volume") && k + 1 < argc) {
			a->volume = argv[++k];
		} else if (!strncmp(argv[k], "--volume=", 9)) {
			a->volume = argv[k] + 9;
		} else if (allow_wait && !strcmp(argv[k], "--wait")) {
			a->wait = 1;
		} else if (allow_wait && !strcmp(argv[k], "--imported")) {
			a->wait = a->imported = 1;
		} else if (allow_wait && !strncmp(argv[k], "--timeout=", 10)) {
			a->timeout_s = atoi(argv[k] + 10);
		} else if (allow_dry && (!strcmp(argv[k], "--dry-run") || !strcmp(argv[k], "-n"))) {
			a->dry_run = 1;
		} else if (allow_dry && !strcmp(argv[k], "--force")) {
			a->force = 1;
		} else if (argv[k][0] == '-' && argv[k][1]) {
			tfs_error("%s: unknown option '%s'; see 'tierfs %s --help'", argv[0], argv[k], argv[0]);
			return 2;
		} else {
			a->paths[a->npaths++] = argv[k];
		}
	}
	return 0;
}

/* ---- progress ---- */

static void progress(int tty, const char *what, uint64_t done, uint64_t total, const char *unit)
{
	int width = 30, fill;

	if (!tty)
		return;
	fill = total ? (int)((double)done / (double)total * width) : 0;
	if (fill > width)
		fill = width;
	fprintf(stderr, "\r%-9s [%.*s%*s] %llu/%llu %s ", what, fill,
		"##############################", width - fill, "", (unsigned long long)done,
		(unsigned long long)total, unit);
	fflush(stderr);
}

static void progress_end(int tty)
{
	if (tty)
		fputc('\n', stderr);
}

/* ---- jobs through a live mount ---- */

int64_t cli_job_submit(struct target *t, const char *kind, const char *arg)
{
	sqlite3_stmt *s;
	int64_t id = -1;

	if (meta_begin(t->v->meta))
		return -1;
	if (sqlite3_prepare_v2(meta_db(t->v->meta),
			       "INSERT INTO job(kind, arg, created) VALUES(?1, ?2, ?3)", -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
		if (arg)
			sqlite3_bind_text(s, 2, arg, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, (int64_t)now_real_ns());
		if (sqlite3_step(s) == SQLITE_DONE)
			id = sqlite3_last_insert_rowid(meta_db(t->v->meta));
		sqlite3_finalize(s);
	}
	if (id < 0 || meta_commit(t->v->meta, 0)) {
		meta_rollback(t->v->meta);
		return -1;
	}
	return id;
}

int cli_job_follow(struct target *t, int64_t id, const char *what, int timeout_s, uint64_t *done_out)
{
	int tty = isatty(2), rc = 1;
	time_t start = time(NULL);

	for (;;) {
		sqlite3_stmt *s;
		char state[16] = "", err[512] = "";
		uint64_t done = 0, total = 0;

		if (sqlite3_prepare_v2(meta_db(t->v->meta), "SELECT state, done, total, error FROM job WHERE id=?1",
				       -1, &s, NULL) != SQLITE_OK)
			break;
		sqlite3_bind_int64(s, 1, id);
		if (sqlite3_step(s) == SQLITE_ROW) {
			snprintf(state, sizeof(state), "%s", (const char *)sqlite3_column_text(s, 0));
			done = (uint64_t)sqlite3_column_int64(s, 1);
			total = (uint64_t)sqlite3_column_int64(s, 2);
			if (sqlite3_column_type(s, 3) != SQLITE_NULL)
				snprintf(err, sizeof(err), "%s", (const char *)sqlite3_column_text(s, 3));
		}
		sqlite3_finalize(s);
		if (strcmp(what, "gc") && strcmp(what, "publish") && total &&
		    (strcmp(what, "sync") || strcmp(state, "done")))
			progress(tty, what, done, total, strcmp(what, "verify") ? "files" : "objects");
		if (!strcmp(state, "done")) {
			progress_end(tty);
			if (done_out)
				*done_out = done;
			if (!strcmp(what, "gc"))
				printf("gc: deleted %llu objects (%llu bytes)\n", (unsigned long long)done,
				       (unsigned long long)total);
			else if (!strcmp(what, "publish"))
				print_published(done, total);
			else if (!strcmp(what, "sync") && tty && total)
				fprintf(stderr, "sync: %llu of %llu files queued for upload\n", (unsigned long long)done,
					(unsigned long long)total);
			rc = 0;
			break;
		}
		if (!strcmp(state, "failed")) {
			progress_end(tty);
			tfs_error("%s", err[0] ? err : "job failed");
			break;
		}
		if (volume_mount_pid(t->vol) <= 0) {
			progress_end(tty);
			tfs_error("%s: the mount of '%s' went away; the request stays queued", what, t->vol);
			break;
		}
		if (timeout_s > 0 && time(NULL) - start > timeout_s) {
			progress_end(tty);
			tfs_error("%s: timed out after %d s", what, timeout_s);
			break;
		}
		usleep(100000);
	}
	return rc;
}

/* Upload queue entries of the files at or below vpath ("/" all): count, bytes. */
static int queue_left(struct target *t, const char *vpath, uint64_t *files, uint64_t *bytes,
		      char *lasterr, size_t elen)
{
	sqlite3_stmt *s;
	uint64_t root;

	*files = *bytes = 0;
	lasterr[0] = '\0';
	if (placement_resolve(t->v->meta, vpath, &root))
		return -ENOENT;
	if (sqlite3_prepare_v2(meta_db(t->v->meta),
			       "SELECT u.ino, i.size, u.last_error FROM upload u JOIN inode i ON i.ino=u.ino",
			       -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(s, 0);
		int under = root == META_ROOT_INO;

		if (!under) {
			struct tbuf p = TBUF_INIT;
			size_t l = strlen(vpath);

			if (!placement_path(t->v->meta, ino, &p))
				under = !strncmp((char *)p.data, vpath, l) &&
					(((char *)p.data)[l] == '/' || ((char *)p.data)[l] == '\0');
			tbuf_release(&p);
		}
		if (!under)
			continue;
		(*files)++;
		*bytes += (uint64_t)sqlite3_column_int64(s, 1);
		if (sqlite3_column_type(s, 2) != SQLITE_NULL)
			snprintf(lasterr, elen, "%s", (const char *)sqlite3_column_text(s, 2));
	}
	sqlite3_finalize(s);
	return 0;
}

/* Follow the upload queue below vpath until it is empty; queued: the files
 * the sync job queued, the totals of the progress. */
static int wait_synced(struct target *t, const char *vpath, int timeout_s, uint64_t queued)
{
	int tty = isatty(2);
	time_t start = time(NULL), last_line = start;
	uint64_t files0 = queued, bytes0 = 0;

	for (;;) {
		uint64_t files, bytes;
		char err[300];

		/* see the mount's latest commits */
		sqlite3_exec(meta_db(t->v->meta), "SELECT 1", NULL, NULL, NULL);

		if (queue_left(t, vpath, &files, &bytes, err, sizeof(err))) {
			tfs_error("sync: cannot read the upload queue");
			return 1;
		}
		if (files > files0)
			files0 = files; /* queued before, or written meanwhile */
		if (bytes > bytes0)
			bytes0 = bytes;
		if (files && (tty || time(NULL) - last_line >= 10)) {
			/* on a terminal a line that updates, with the rate and the
			 * time left; otherwise a plain line every 10 s */
			double secs = difftime(time(NULL), start), rate = secs > 0 ? (double)(bytes0 - bytes) / secs : 0;
			char left[32] = "?";

			if (rate > 0)
				snprintf(left, sizeof(left), "%.0f s", (double)bytes / rate);
			fprintf(stderr, "%ssync: %llu/%llu files uploaded, %.1f MiB left, %.1f MiB/s, %s left%s%s%s",
				tty ? "\r" : "", (unsigned long long)(files0 - files), (unsigned long long)files0,
				(double)bytes / 1048576.0, rate / 1048576.0, left, err[0] ? "; last error: " : "", err,
				tty ? "\033[K" : "\n");
			last_line = time(NULL);
		}
		if (!files) {
			if (tty && files0)
				fputc('\n', stderr);
			printf("sync: %llu files uploaded%s\n", (unsigned long long)files0,
			       files0 ? "" : ": everything was in the store");
			return 0;
		}
		if (volume_mount_pid(t->vol) <= 0) {
			progress_end(tty);
			tfs_error("sync: the mount of '%s' went away with %llu files still queued", t->vol,
				  (unsigned long long)files);
			return 1;
		}
		{
			/* the engine says uploads have been failing a while:
			 * say so rather than wait in silence (the queue keeps the
			 * files and uploads them when the store returns) */
			struct health_rec hr[HEALTH__COUNT];
			int down = 0;

			if (!health_load(t->v->meta, hr) && hr[HEALTH_UPLOAD].failures)
				down = (int64_t)now_real_ns() - hr[HEALTH_UPLOAD].failing_since > 10ll * 1000000000 &&
				       time(NULL) - start >= 5;
			if (down) {
				progress_end(tty);
				tfs_error("sync: uploads to the store are failing; %llu files stay queued and upload"
					  " when it works again%s%s", (unsigned long long)files, err[0] ? "; last error: " : "", err);
				return 1;
			}
		}
		if (timeout_s > 0 && time(NULL) - start > timeout_s) {
			progress_end(tty);
			tfs_error("sync: %llu files still queued after %d s%s%s", (unsigned long long)files,
				  timeout_s, err[0] ? "; last error: " : "", err);
			return 1;
		}
		usleep(200000);
	}
}

/* ---- running a job here (nothing mounted) ---- */

static int run_here(struct target *t, const char *kind, const char *arg, struct sync_args *a)
{
	struct sync *s;
	char err[1024];
	int rc;

	rc = sync_open(t->v, NULL, NULL, &s, err, sizeof(err));
	if (rc) {
		tfs_error("%s", err);
		return 1;
	}
	if (!strcmp(kind, "publish")) {
		struct publish_stats st;

		rc = sync_publish(s, 0, &st);
		if (!rc)
			print_published(st.seq, st.objects);
	} else if (!strcmp(kind, "gc")) {
		uint64_t objs, bytes;

		rc = sync_gc(s, a->dry_run, a->force, &objs, &bytes);
		if (rc)
			tfs_error("gc: %s", strerror(-rc));
		else
			printf("gc: %s %llu objects (%llu bytes)\n", a->dry_run ? "would delete" : "deleted",
			       (unsigned long long)objs, (unsigned long long)bytes);
	} else {
		rc = sync_run_job(s, 0, kind, arg);
		if (!rc && !strcmp(kind, "sync")) {
			/* upload what is queued now, until the queue is empty or fails */
			for (int pass = 0; pass < 5; pass++) {
				uint64_t files, bytes;
				char e[300];

				rc = sync_run_once(s, 1);
				if (queue_left(t, arg ? arg : "/", &files, &bytes, e, sizeof(e)) || !files)
					break;
				if (rc) {
					tfs_error("sync: %llu files not uploaded: %s", (unsigned long long)files,
						  e[0] ? e : strerror(-rc));
					break;
				}
			}
			if (!rc) {
				struct publish_stats st;

				rc = sync_publish(s, 0, &st);
			}
		} else if (rc) {
			tfs_error("%s failed: %s", kind, rc == -EPERM ? "not a tiered file (or pinned)" :
				  rc == -EAGAIN ? "not synced to the store yet" : strerror(-rc));
		}
	}
	sync_close(s);
	return rc ? 1 : 0;
}

static int do_cmd(int argc, char **argv, const char *kind, const char *usage)
{
	struct sync_args a;
	struct target t;
	int rc, ret = 0, is_sync = !strcmp(kind, "sync"), is_gc = !strcmp(kind, "gc");
	int is_pub = !strcmp(kind, "publish");

	rc = parse_args(argc, argv, &a, usage, is_sync, is_gc);
	if (rc) {
		free(a.paths);
		return rc < 0 ? 0 : rc;
	}
	if (!is_sync && !is_gc && !is_pub && !a.npaths) {
		tfs_error("%s: expected at least one PATH; see 'tierfs %s --help'", kind, kind);
		free(a.paths);
		return 2;
	}
	if ((is_gc || is_pub) && a.npaths) {
		tfs_error("%s: unexpected argument '%s'", kind, a.paths[0]);
		free(a.paths);
		return 2;
	}
	if (is_sync && a.npaths == 1 && !a.volume &&
	    (ret = cloud_sync_main(a.paths[0], a.wait, a.imported, a.timeout_s)) >= 0) {
		/* a cloud mount: send what jobs wrote home */
		free(a.paths);
		return ret;
	}
	ret = 0;
	if (a.imported) {
		tfs_error("sync: --imported is for a cloud mount's write-back");
		free(a.paths);
		return 2;
	}
	if (target_open(&t, a.volume, a.npaths ? a.paths[0] : NULL, 0)) {
		free(a.paths);
		return 1;
	}
	for (int k = 0; k < (a.npaths ? a.npaths : 1) && !ret; k++) {
		char vp[PATH_MAX];
		const char *arg = NULL;
		uint64_t queued = 0;

		if (a.npaths) {
			uint64_t ino;

			if (vpath_of(&t, a.paths[k], a.volume != NULL, vp, sizeof(vp))) {
				ret = 1;
				break;
			}
			if (placement_resolve(t.v->meta, vp, &ino)) {
				tfs_error("%s: no file '%s' in volume '%s'", kind, vp, t.vol);
				ret = 1;
				break;
			}
			arg = vp;
		}
		if (volume_mount_pid(t.vol) > 0) {
			int64_t id;

			if (is_gc && a.dry_run) {
				/* counting only reads: no need to ask the mount */
				ret = run_here(&t, kind, NULL, &a);
				break;
			}
			id = cli_job_submit(&t, kind, is_gc && a.force ? "force" : arg);
			if (id < 0) {
				tfs_error("%s: cannot queue the request in '%s'", kind, t.vol);
				ret = 1;
				break;
			}
			ret = cli_job_follow(&t, id, kind, a.timeout_s, &queued);
			if (!ret && is_sync && a.wait)
				ret = wait_synced(&t, arg ? arg : "/", a.timeout_s, queued);
		} else {
			ret = run_here(&t, kind, arg, &a);
		}
	}
	target_close(&t);
	free(a.paths);
	return ret;
}

static const char sync_usage[] =
	"usage: tierfs sync [--wait] [--timeout=SECONDS] [--volume DIR] [PATH...]\n"
	"       tierfs sync [--wait | --imported] [--timeout=SECONDS] CLOUD-MOUNTPOINT\n"
	"\n"
	"Upload now every mirrored and tiered file at or below PATH (default: the\n"
	"whole volume) that is not in the store yet, without waiting for --settle;\n"
	"on-demand files named by PATH are uploaded too. --wait follows the upload\n"
	"queue until those files are in the store (progress on a terminal).\n"
	"\n"
	"On a cloud mount with a node key: send what jobs wrote (closed files) home\n"
	"now. --wait returns when every closed file is in the store; --imported\n"
	"when home has also acknowledged every change. Files still open for writing\n"
	"are not waited for. Exit 1 with the reason on a timeout.\n";

static const char hydrate_usage[] =
	"usage: tierfs hydrate [--volume DIR] PATH...\n"
	"\n"
	"Recall the evicted data of the files at or below PATH so that they are\n"
	"entirely local again (progress on a terminal).\n";

static const char evict_usage[] =
	"usage: tierfs evict [--volume DIR] PATH...\n"
	"\n"
	"Drop the local copies of tiered files that are safely in the store (every\n"
	"chunk is checked first). Files that are not tiered, pinned, open, or not\n"
	"uploaded yet are refused.\n";

static const char gc_usage[] =
	"usage: tierfs gc [--dry-run] [--force] [--volume DIR]\n"
	"\n"
	"Delete objects that no file references any more. Objects are kept for a\n"
	"grace period after their last reference goes (mount option gc_grace);\n"
	"--force deletes them at once. --dry-run counts what would be deleted.\n";

static const char publish_usage[] =
	"usage: tierfs publish [--volume DIR]\n"
	"\n"
	"Publish a snapshot of the exported part of the volume for cloud mounts now\n"
	"(the mount publishes changes by itself every few seconds).\n";

int cmd_publish(int argc, char **argv)
{
	return do_cmd(argc, argv, "publish", publish_usage);
}

int cmd_sync(int argc, char **argv)
{
	return do_cmd(argc, argv, "sync", sync_usage);
}

int cmd_hydrate(int argc, char **argv)
{
	return do_cmd(argc, argv, "hydrate", hydrate_usage);
}

int cmd_evict(int argc, char **argv)
{
	return do_cmd(argc, argv, "evict", evict_usage);
}

int cmd_gc(int argc, char **argv)
{
	return do_cmd(argc, argv, "gc", gc_usage);
}
