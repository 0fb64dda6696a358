/*
 * cmd_volume.c - the volume commands: format, mount, umount, fsck, and the
 * mount(8) helper (mount.fuse.tierfs) that makes fstab entries work.
 *
 * "tierfs mount" forks a daemon and waits until the mount is live or has
 * failed: the daemon reports through a pipe, so every error a user can cause
 * (a missing or foreign volume, a volume mounted elsewhere, a busy mount
 * point) is printed by the command itself as one line, with a non-zero exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <mntent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sqlite3.h>
#include <unistd.h>

#include "cli.h"
#include "cli_int.h"
#include "fs.h"
#include "fsck.h"
#include "log.h"
#include "notify.h"
#include "volume.h"

/* First line of a small file (a passphrase file), without its newline. */
int cli_read_line_file(const char *path, char **out)
{
	FILE *f = fopen(path, "r");
	char buf[1024];
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

/* ---- format ---- */

static const char format_usage[] =
	"usage: tierfs format [--store URL [--no-check] [--force]] [--passphrase-file FILE] DIR\n"
	"\n"
	"Create a volume in DIR (which must not exist or be empty): the SQLite\n"
	"metadata store, the local data area and a new random volume key.\n"
	"\n"
	"  --store URL             object store for the sync engine: file:///DIR,\n"
	"                          s3://BUCKET[/PREFIX] or azure://CONTAINER[/PREFIX]\n"
	"                          (default: file://DIR.store next to the volume);\n"
	"                          it must work (as 'tierfs store check') and hold no\n"
	"                          other volume's objects\n"
	"  --no-check              do not check the store (offline setup)\n"
	"  --force                 format over a store prefix another volume uses\n"
	"  --passphrase-file FILE  wrap the key file with the passphrase in FILE\n"
	"                          (or set TIERFS_PASSPHRASE)\n";

int cmd_format(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "store", required_argument, NULL, 's' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "no-check", no_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct volume_format_opts o = { NULL, NULL };
	char err[512], *pass = NULL;
	int c, rc, check = 1, force = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			o.store_url = optarg;
			break;
		case 'p':
			rc = cli_read_line_file(optarg, &pass);
			if (rc) {
				tfs_error("cannot read passphrase file '%s': %s", optarg, strerror(-rc));
				return 1;
			}
			break;
		case 'n':
			check = 0;
			break;
		case 'f':
			force = 1;
			break;
		case 'h':
			fputs(format_usage, stdout);
			return 0;
		default:
			tfs_error("format: unknown option '%s'; see 'tierfs format --help'", cli_bad_option(argv));
			return 2;
		}
	}
	if (argc - optind != 1) {
		tfs_error("format: expected one volume directory; see 'tierfs format --help'");
		return 2;
	}
	if (o.store_url && strncmp(o.store_url, "file://", 7) && strncmp(o.store_url, "s3://", 5) &&
	    strncmp(o.store_url, "azure://", 8)) {
		tfs_error("format: unsupported store URL '%s' (file://, s3:// or azure://)", o.store_url);
		return 2;
	}
	if (o.store_url && check) {
		char why[600];

		rc = cli_store_claim_check(o.store_url, why, sizeof(why));
		if (rc == -EEXIST && !force) {
			tfs_error("format: store '%s' is in use: %s; give each volume its own prefix"
				  " (--force to format over it)", o.store_url, why);
			free(pass);
			return 1;
		}
		if (rc && rc != -EEXIST) {
			tfs_error("format: cannot use store '%s': %s (--no-check to format without it)",
				  o.store_url, why);
			free(pass);
			return 1;
		}
	}
	if (!pass && getenv("TIERFS_PASSPHRASE"))
		pass = strdup(getenv("TIERFS_PASSPHRASE"));
	o.passphrase = pass;
	rc = volume_format(argv[optind], &o, err, sizeof(err));
	free(pass);
	if (rc) {
		tfs_error("%s", err);
		return 1;
	}
	printf("formatted tierfs volume '%s'\n", argv[optind]);
	return 0;
}

/* ---- mount ---- */

static const char mount_usage[] =
	"usage: tierfs mount [-f] [-d] [-o OPTIONS] [--fstab FILE] VOLUME [MOUNTPOINT]\n"
	"       tierfs mount --cloud --key-file FILE [--cache DIR] [--cache-size SIZE]\n"
	"                    [--passphrase-file FILE] [-f] [-d] [-o OPTIONS] URL MOUNTPOINT\n"
	"\n"
	"Mount VOLUME (made by 'tierfs format') at MOUNTPOINT as the home mount.\n"
	"Without MOUNTPOINT, the mount point and options come from VOLUME's\n"
	"fuse.tierfs line in /etc/fstab (or FILE). The command returns once the\n"
	"mount is live; the daemon logs to VOLUME/tierfs.log. Unmount with\n"
	"'tierfs umount MOUNTPOINT' (or VOLUME). With --cloud: a cloud mount of\n"
	"the snapshots published to the store URL ('tierfs mount --cloud --help').\n"
	"\n"
	"  -f               stay in the foreground (log to stderr; under systemd,\n"
	"                   reports READY=1, STATUS= and STOPPING=1 to NOTIFY_SOCKET)\n"
	"  -d               FUSE debug output (implies -f)\n"
	"  --fstab FILE     the fstab to find VOLUME in (default /etc/fstab)\n"
	"  --cloud          a cloud mount of the store URL: its options and -o mount\n"
	"                   options are in 'tierfs mount --cloud --help'\n"
	"  -o OPTIONS       comma-separated mount options:\n"
	"     attr_timeout=SECONDS   kernel attribute cache time (default 3600)\n"
	"     entry_timeout=SECONDS  kernel name cache time (default 3600)\n"
	"     passthrough / no_passthrough   the kernel reads and writes local files'\n"
	"                            data files itself (FUSE passthrough, Linux 6.9+;\n"
	"                            default on where the kernel offers it)\n"
	"     uring / no_uring       requests over per-CPU io_uring queues instead of\n"
	"                            /dev/fuse (Linux 6.14+; default on where the kernel\n"
	"                            offers it: fuse module parameter enable_uring=Y)\n"
	"     writeback_cache / no_writeback_cache   kernel write-back caching (default on;\n"
	"                            off while passthrough is in use)\n"
	"     threads=N              most request threads (default 16)\n"
	"     readahead_kb=N         kernel read-ahead of the mount (default: that of\n"
	"                            the disk holding the volume, 128 to 8192)\n"
	"     commit_ms=N            group commit: names and attributes changed\n"
	"                            without fsync reach the metadata store within N ms\n"
	"                            (default 10; 0 commits each change at once)\n"
	"     log=FILE               daemon log file (default VOLUME/tierfs.log)\n"
	"     metrics=IPv4:PORT      serve Prometheus metrics at http://IPv4:PORT/metrics\n"
	"     log_level=LEVEL        error, warning, info (default) or debug\n"
	"     sync_interval=SECONDS  sync engine tick (default 1)\n"
	"     recall_timeout=SECONDS bound on reading evicted data when the store is\n"
	"                            unreachable; then EIO (default 30)\n"
	"     gc_grace=SECONDS       unreferenced objects are kept this long (default 60)\n"
	"     outbox_grace=SECONDS   chunks a cloud node left without a commit are deleted\n"
	"                            after this long without growing (default 3600)\n"
	"     publish_interval=SECONDS  snapshots for cloud mounts at most this often (5)\n"
	"     ro / rw                read-only (the kernel refuses every change) or\n"
	"                            read-write (default)\n"
	"     allow_other, default_permissions   always in effect: every user may use\n"
	"                            the mount, the kernel checks permissions\n"
	"  fstab and mount(8) options defaults, auto, noauto, nofail, _netdev, user,\n"
	"  users, nouser, exec, noexec, suid, nosuid, dev, nodev, async, atime,\n"
	"  noatime, relatime, silent, loud, nonempty, x-* and comment=* are accepted\n"
	"  and ignored.\n";

struct mount_args {
	struct fs_opts fs;
	const char *log;
};

int cli_mount_opt_ignored(const char *o)
{
	static const char *const ignored[] = { "defaults", "auto", "noauto", "nofail", "_netdev", "user",
					       "users", "nouser", "exec", "noexec", "suid", "nosuid",
					       "dev", "nodev", "async", "relatime", "noatime", "atime",
					       "silent", "loud", "nonempty", "allow_other",
					       "default_permissions", NULL };

	for (int k = 0; ignored[k]; k++)
		if (!strcmp(o, ignored[k]))
			return 1;
	return !strncmp(o, "x-", 2) || !strncmp(o, "comment=", 8);
}

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return (errno || end == s || *end || *out < 0) ? -EINVAL : 0;
}

/* A flag option NAME (sets *field) or no_NAME (clears it): 1 if o is one. */
static int flag_opt(const char *o, const char *name, int *field)
{
	int off = !strncmp(o, "no_", 3) ? 3 : 0;

	if (strcmp(o + off, name))
		return 0;
	*field = !off;
	return 1;
}

static int parse_mount_opts(char *opts, struct mount_args *ma)
{
	char *save = NULL;

	for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(o, '=');
		const char *v = eq ? eq + 1 : NULL;
		unsigned long n;

		if (cli_mount_opt_ignored(o))
			continue;
		if (!strcmp(o, "ro") || !strcmp(o, "rw")) {
			ma->fs.fuse_opts = o[1] == 'o' ? "ro" : NULL;
			continue;
		}
		if (eq)
			*eq = '\0';
		if (!strcmp(o, "attr_timeout") && v && !parse_double(v, &ma->fs.attr_timeout))
			continue;
		if (!strcmp(o, "entry_timeout") && v && !parse_double(v, &ma->fs.entry_timeout))
			continue;
		if (!v && (flag_opt(o, "writeback_cache", &ma->fs.writeback_cache) ||
			   flag_opt(o, "passthrough", &ma->fs.passthrough) ||
			   flag_opt(o, "uring", &ma->fs.uring)))
			continue;
		if (!strcmp(o, "threads") && v && (n = strtoul(v, NULL, 10)) > 0 && n <= 256) {
			ma->fs.max_threads = (unsigned)n;
			continue;
		}
		if (!strcmp(o, "readahead_kb") && v && (n = strtoul(v, NULL, 10)) > 0 && n <= 65536) {
			ma->fs.readahead_kb = (unsigned)n;
			continue;
		}
		if (!strcmp(o, "commit_ms") && v && *v) {
			char *end;

			n = strtoul(v, &end, 10);
			if (!*end && n <= 1000) {
				ma->fs.commit_ms = (unsigned)n;
				continue;
			}
		}
		if (!strcmp(o, "sync_interval") && v && (n = strtoul(v, NULL, 10)) > 0 && n <= 3600) {
			ma->fs.sync_interval_s = (int)n;
			continue;
		}
		if (!strcmp(o, "recall_timeout") && v && (n = strtoul(v, NULL, 10)) > 0 && n <= 3600) {
			ma->fs.recall_timeout_s = (int)n;
			continue;
		}
		if (!strcmp(o, "publish_interval") && v && (n = strtoul(v, NULL, 10)) > 0 && n <= 86400) {
			ma->fs.publish_interval_s = (int)n;
			continue;
		}
		if (!strcmp(o, "outbox_grace") && v) {
			ma->fs.outbox_grace_s = (int)strtol(v, NULL, 10);
			continue;
		}
		if (!strcmp(o, "gc_grace") && v) {
			ma->fs.gc_grace_s = (int)strtol(v, NULL, 10);
			continue;
		}
		if (!strcmp(o, "log") && v && *v) {
			ma->log = v;
			continue;
		}
		if (!strcmp(o, "metrics") && v && *v) {
			ma->fs.metrics = v;
			continue;
		}
		if (!strcmp(o, "log_level") && v) {
			enum log_level lvl;

			if (!log_level_parse(v, &lvl)) {
				log_set_level(lvl);
				continue;
			}
		}
		if (eq)
			*eq = '=';
		tfs_error("mount: unknown or malformed mount option '%s'; see 'tierfs mount --help'", o);
		return -EINVAL;
	}
	return 0;
}

/* Refuse a mount point that is missing, not a directory, or already mounted. */
int cli_check_mountpoint(const char *mp, char *abs)
{
	char parent[PATH_MAX + 4];
	struct stat st, pst;

	if (stat(mp, &st)) {
		if (errno == ENOTCONN)
			tfs_error("mount point '%s' is a dead FUSE mount; run 'fusermount3 -u %s'", mp, mp);
		else
			tfs_error("cannot mount on '%s': %s", mp, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		tfs_error("cannot mount on '%s': not a directory", mp);
		return -1;
	}
	if (!realpath(mp, abs)) {
		tfs_error("cannot mount on '%s': %s", mp, strerror(errno));
		return -1;
	}
	snprintf(parent, sizeof(parent), "%s/..", abs);
	if (strcmp(abs, "/") == 0 || (stat(parent, &pst) == 0 && pst.st_dev != st.st_dev)) {
		tfs_error("cannot mount on '%s': mount point is busy (already mounted)", mp);
		return -1;
	}
	return 0;
}

void cli_daemon_ready(void *arg)
{
	struct cli_daemon *d = arg;

	if (d->pipefd >= 0) {
		int fd = open("/dev/null", O_RDWR);
		int lfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (write(d->pipefd, "OK", 2) != 2)
			log_warn("cannot report mount status to the parent");
		close(d->pipefd);
		d->pipefd = -1;
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			close(fd);
		}
		if (lfd >= 0) {
			dup2(lfd, 2);
			close(lfd);
		}
	}
	if (notify_enabled()) {
		d->ready = 1;
		notify_send("READY=1\nMAINPID=%d", (int)getpid());
		if (d->status)
			notify_status_start(d->status, d->status_arg, 5);
	}
}

void cli_daemon_stopping(void *arg)
{
	struct cli_daemon *d = arg;

	if (!d->ready || d->stopping)
		return;
	d->stopping = 1;
	notify_status_stop();
	notify_send("STOPPING=1\nSTATUS=unmounted, writing what is pending");
}

int cli_daemon_done(struct cli_daemon *d, int rc, const char *err)
{
	cli_daemon_stopping(d);
	if (rc) {
		if (d->pipefd >= 0) {
			if (write(d->pipefd, err, strlen(err)) < 0)
				rc = -EIO;
		} else {
			log_error("%s", err);
		}
	}
	if (d->pipefd >= 0)
		close(d->pipefd);
	d->pipefd = -1;
	return rc ? 1 : 0;
}

int cli_run_daemon(const char *what, int foreground, int (*serve)(void *arg, int pipefd), void *arg)
{
	char msg[1024];
	int p[2], status;
	ssize_t n;
	pid_t pid;

	if (foreground)
		return serve(arg, -1);
	if (pipe2(p, O_CLOEXEC)) {
		tfs_error("cannot create pipe: %s", strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		tfs_error("cannot fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		if (chdir("/"))
			_exit(1);
		_exit(serve(arg, p[1]));
	}
	close(p[1]);
	n = read(p[0], msg, sizeof(msg) - 1);
	close(p[0]);
	if (n == 2 && !memcmp(msg, "OK", 2))
		return 0;
	if (n > 0) {
		msg[n] = '\0';
		tfs_error("%s", msg);
	} else {
		tfs_error("mount daemon for '%s' exited before the mount was ready", what);
	}
	waitpid(pid, &status, 0);
	return 1;
}

/*
 * The home mount's STATUS= line for systemd: its upload queue and whether
 * the store was reachable when the sync engine last looked, read through
 * a read-only connection of the reporter thread's own (SQLite WAL: it
 * never waits for the mount's writes nor holds them up).
 */
struct home_status {
	const char *voldir;
	struct meta *m; /* opened by the reporter thread */
};

static int home_status(void *arg, char *buf, size_t len)
{
	static const char q[] = "SELECT count(*), coalesce(sum(i.size),0) FROM upload u JOIN inode i ON i.ino=u.ino";
	struct home_status *hs = arg;
	char path[PATH_MAX + 16], err[256], *reach = NULL;
	unsigned long long files = 0, bytes = 0;
	sqlite3_stmt *s;

	if (!hs->m) {
		snprintf(path, sizeof(path), "%s/meta.db", hs->voldir);
		if (meta_open(path, META_READONLY, &hs->m, err, sizeof(err)))
			return -EIO;
	}
	s = meta_stmt(hs->m, q);
	if (!s)
		return -EIO;
	if (sqlite3_step(s) == SQLITE_ROW) {
		files = (unsigned long long)sqlite3_column_int64(s, 0);
		bytes = (unsigned long long)sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	meta_config_get(hs->m, "sync_reachable", &reach);
	snprintf(buf, len, "upload queue: %llu files, %llu bytes; store %s", files, bytes,
		 reach && !strcmp(reach, "0") ? "unreachable" : "reachable");
	free(reach);
	return 0;
}

/* Open the volume and serve it; errors go to the pipe (or stderr). */
struct home_serve {
	const char *voldir, *mp;
	struct mount_args *ma;
};

static int serve(void *arg, int pipefd)
{
	struct home_serve *h = arg;
	struct home_status hs = { h->voldir, NULL };
	struct cli_daemon d = { pipefd, h->ma->log, home_status, &hs, 0, 0 };
	struct volume *v = NULL;
	char err[1024], logpath[PATH_MAX + 16];
	int rc;

	rc = volume_open(h->voldir, VOL_LOCK, &v, err, sizeof(err));
	if (!rc) {
		if (!d.log) {
			snprintf(logpath, sizeof(logpath), "%s/tierfs.log", v->dir);
			d.log = logpath;
		}
		h->ma->fs.stopping = cli_daemon_stopping;
		rc = fs_run(v, h->mp, &h->ma->fs, cli_daemon_ready, &d, err, sizeof(err));
	}
	if (rc && v && d.pipefd < 0 && volume_note_exit(v, err))
		log_error("cannot record the failed unmount in '%s/lock'", v->dir);
	rc = cli_daemon_done(&d, rc, err);
	if (hs.m)
		meta_close(hs.m);
	volume_close(v);
	return rc;
}

static int do_mount(const char *voldir, const char *mp, struct mount_args *ma)
{
	char abs[PATH_MAX], absvol[PATH_MAX];
	struct home_serve h = { absvol, abs, ma };

	if (!realpath(voldir, absvol)) {
		tfs_error("cannot open volume '%s': %s", voldir, strerror(errno));
		return 1;
	}
	if (cli_check_mountpoint(mp, abs))
		return 1;
	return cli_run_daemon(absvol, ma->fs.foreground, serve, &h);
}

/*
 * The mount point and options of volume voldir from its fstab line (type
 * fuse.tierfs or tierfs, source the volume's directory): 1 found, 0 not
 * found, -1 an unreadable file or bad options (printed).
 */
static int fstab_lookup(const char *fstab, const char *voldir, struct mount_args *ma, char *mp, size_t len)
{
	FILE *f = setmntent(fstab, "r");
	char abs[PATH_MAX], src[PATH_MAX];
	struct mntent *e;
	int found = 0;

	if (!f) {
		tfs_error("mount: cannot read '%s': %s", fstab, strerror(errno));
		return -1;
	}
	if (!realpath(voldir, abs))
		snprintf(abs, sizeof(abs), "%s", voldir);
	while (!found && (e = getmntent(f))) {
		if (strcmp(e->mnt_type, "fuse.tierfs") && strcmp(e->mnt_type, "tierfs"))
			continue;
		if (!realpath(e->mnt_fsname, src) || strcmp(src, abs))
			continue;
		snprintf(mp, len, "%s", e->mnt_dir);
		found = parse_mount_opts(e->mnt_opts, ma) ? -1 : 1;
	}
	endmntent(f);
	return found;
}

int cmd_mount(int argc, char **argv)
{
	static const struct option lo[] = { { "fstab", required_argument, NULL, 'F' }, { NULL, 0, NULL, 0 } };
	const char *fstab = "/etc/fstab";
	char *opts[32], mp[PATH_MAX];
	struct mount_args ma;
	int c, nopts = 0, rc;

	for (int k = 1; k < argc; k++)
		if (!strcmp(argv[k], "--cloud"))
			return cloud_mount_main(argc, argv);
	memset(&ma, 0, sizeof(ma));
	fs_opts_default(&ma.fs);
	opterr = 0;
	for (int k = 1; k < argc; k++)
		if (cli_is_help(argv[k])) {
			fputs(mount_usage, stdout);
			return 0;
		}
	while ((c = getopt_long(argc, argv, "+fdo:", lo, NULL)) != -1) {
		switch (c) {
		case 'f':
			ma.fs.foreground = 1;
			break;
		case 'd':
			ma.fs.foreground = 1;
			ma.fs.debug = 1;
			break;
		case 'o':
			if (nopts == (int)(sizeof(opts) / sizeof(opts[0]))) {
				tfs_error("mount: too many -o options");
				return 2;
			}
			opts[nopts++] = optarg;
			break;
		case 'F':
			fstab = optarg;
			break;
		default:
			tfs_error("mount: unknown option '%s'; see 'tierfs mount --help'", cli_bad_option(argv));
			return 2;
		}
	}
	if (argc - optind != 1 && argc - optind != 2) {
		tfs_error("mount: expected VOLUME and MOUNTPOINT; see 'tierfs mount --help'");
		return 2;
	}
	if (argc - optind == 1) {
		/* the fstab line's options first: -o on the command line wins */
		rc = fstab_lookup(fstab, argv[optind], &ma, mp, sizeof(mp));
		if (rc < 0)
			return 2;
		if (!rc) {
			tfs_error("mount: no mount point given and no fuse.tierfs line for '%s' in '%s'",
				  argv[optind], fstab);
			return 2;
		}
	} else {
		snprintf(mp, sizeof(mp), "%s", argv[optind + 1]);
	}
	for (int k = 0; k < nopts; k++)
		if (parse_mount_opts(opts[k], &ma))
			return 2;
	return do_mount(argv[optind], mp, &ma);
}

/*
 * mount(8) runs "mount.fuse.tierfs SOURCE DIR [-sfnv] [-o OPTIONS]" for an
 * fstab line of type fuse.tierfs (or mount.tierfs for type tierfs).
 */
int mount_helper_main(int argc, char **argv)
{
	struct mount_args ma;
	const char *pos[2] = { NULL, NULL };
	int npos = 0, fake = 0;

	memset(&ma, 0, sizeof(ma));
	fs_opts_default(&ma.fs);
	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "-o") && k + 1 < argc) {
			if (parse_mount_opts(argv[++k], &ma))
				return 2;
		} else if (!strcmp(argv[k], "-f")) {
			fake = 1; /* mount(8)'s "fake": do everything but mount */
		} else if (argv[k][0] == '-') {
			continue; /* -n -s -v: nothing to do for a FUSE mount */
		} else if (npos < 2) {
			pos[npos++] = argv[k];
		} else {
			tfs_error("mount helper: unexpected argument '%s'", argv[k]);
			return 2;
		}
	}
	if (npos != 2) {
		tfs_error("mount helper: expected SOURCE and MOUNTPOINT");
		return 2;
	}
	if (fake)
		return 0;
	return do_mount(pos[0], pos[1], &ma);
}

/* ---- umount ---- */

static const char umount_usage[] =
	"usage: tierfs umount [-l] MOUNTPOINT|VOLUME|URL\n"
	"\n"
	"Unmount a tierfs mount, named by its mount point or its source (the\n"
	"volume directory of a home mount, the store URL of a cloud mount), and\n"
	"wait until its daemon has written everything and exited.\n"
	"\n"
	"  -l, --lazy   detach a busy mount lazily\n"
	"\n"
	"A cloud mount with a node key first waits (up to 60 s) until every closed\n"
	"file jobs wrote is in the store, and refuses to unmount while it is not;\n"
	"with -l it unmounts at once and says what is left: that stays staged in\n"
	"the cache directory and is sent at the next mount.\n";

/* Find a tierfs mount by its mount point or its source (a volume
 * directory, a store URL): its source into vol, its mount point into mnt. */
static int find_mount(const char *abs, char *vol, char *mnt, size_t len)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *e;
	int found = 0;

	if (!f)
		return 0;
	while ((e = getmntent(f))) {
		if ((!strcmp(e->mnt_dir, abs) || !strcmp(e->mnt_fsname, abs)) &&
		    !strncmp(e->mnt_type, "fuse.tierfs", 11)) {
			snprintf(vol, len, "%s", e->mnt_fsname);
			snprintf(mnt, len, "%s", e->mnt_dir);
			found = 1;
		}
	}
	endmntent(f);
	return found;
}

int cmd_umount(int argc, char **argv)
{
	char abs[PATH_MAX], vol[PATH_MAX], mnt[PATH_MAX], lock[PATH_MAX + 8];
	int urc;
	int lazy = 0, c, fd;

	opterr = 0;
	for (int k = 1; k < argc; k++)
		if (cli_is_help(argv[k])) {
			fputs(umount_usage, stdout);
			return 0;
		}
	static const struct option lo[] = { { "lazy", no_argument, NULL, 'l' }, { NULL, 0, NULL, 0 } };

	while ((c = getopt_long(argc, argv, "+l", lo, NULL)) != -1) {
		if (c != 'l') {
			tfs_error("umount: unknown option '%s'; see 'tierfs umount --help'", cli_bad_option(argv));
			return 2;
		}
		lazy = 1;
	}
	if (argc - optind != 1) {
		tfs_error("umount: expected one MOUNTPOINT; see 'tierfs umount --help'");
		return 2;
	}
	if (!realpath(argv[optind], abs)) {
		/* A dead mount cannot be resolved: try the path as given. */
		snprintf(abs, sizeof(abs), "%s", argv[optind]);
	}
	if (!find_mount(abs, vol, mnt, sizeof(vol)) && !find_mount(argv[optind], vol, mnt, sizeof(vol))) {
		tfs_error("'%s' is not a tierfs mount", argv[optind]);
		return 1;
	}
	snprintf(abs, sizeof(abs), "%s", mnt);
	if (strstr(vol, "://") && cloud_umount_prepare(abs, lazy))
		return 1; /* a cloud mount's changes are not in the store yet */
	/* a busy mount may be an instant's open by the daemon's own threads (the
	 * importer applying a change set): try again for a few seconds */
	for (int t = 0;; t++) {
		urc = umount2(abs, lazy ? MNT_DETACH : 0);
		if (!urc || errno != EBUSY || t >= 30)
			break;
		usleep(100000);
	}
	if (urc) {
		if (errno == EPERM) {
			/* not root: fusermount3 knows how */
			pid_t pid = fork();
			int status;

			if (pid == 0) {
				execlp("fusermount3", "fusermount3", lazy ? "-uz" : "-u", abs, (char *)NULL);
				_exit(127);
			}
			if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
			    WEXITSTATUS(status)) {
				tfs_error("cannot unmount '%s'", argv[optind]);
				return 1;
			}
		} else {
			tfs_error("cannot unmount '%s': %s", argv[optind],
				  errno == EBUSY ? "target is busy (files open?); try -l" : strerror(errno));
			return 1;
		}
	}
	/* Wait for the daemon to finish writing and release the volume. */
	snprintf(lock, sizeof(lock), "%s/lock", vol);
	fd = open(lock, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		for (int t = 0; t < 600; t++) {
			if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
				char msg[600];

				close(fd);
				/* the daemon's last word: did it write everything? */
				if (volume_exit_error(vol, msg, sizeof(msg))) {
					tfs_error("umount '%s': %s", argv[optind], msg);
					return 1;
				}
				return 0;
			}
			usleep(100000);
		}
		close(fd);
		tfs_error("umount '%s': the daemon of '%s' has not finished after 60 s", argv[optind], vol);
		return 1;
	}
	return 0;
}

/* ---- fsck ---- */

static const char fsck_usage[] =
	"usage: tierfs fsck [-n] [-v] VOLUME\n"
	"\n"
	"Check VOLUME's metadata store against its local data and repair what is\n"
	"wrong. The volume must not be mounted, except with -n.\n"
	"\n"
	"  -n, --dry-run   report only, change nothing\n"
	"  -v, --verbose   say what is checked\n"
	"\n"
	"Exit status: 0 clean, 1 errors repaired, 4 errors left, 8 operational error.\n";

int cmd_fsck(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct volume *v = NULL;
	char err[1024];
	int repair = 1, verbose = 0, c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+nvh", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			repair = 0;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			fputs(fsck_usage, stdout);
			return 0;
		default:
			tfs_error("fsck: unknown option '%s'; see 'tierfs fsck --help'", cli_bad_option(argv));
			return FSCK_FAILED;
		}
	}
	if (argc - optind != 1) {
		tfs_error("fsck: expected one VOLUME; see 'tierfs fsck --help'");
		return FSCK_FAILED;
	}
	rc = volume_open(argv[optind], repair ? VOL_LOCK : VOL_READONLY, &v, err, sizeof(err));
	if (rc == -EBUSY) {
		tfs_error("%s; unmount it first, or check without repairing with -n", err);
		return FSCK_FAILED;
	}
	if (rc) {
		tfs_error("%s", err);
		return rc == -EUCLEAN ? FSCK_UNCORRECTED : FSCK_FAILED;
	}
	if (repair) {
		char *clean = NULL;

		/* Finish what an interrupted mount left (unlinked-while-open files,
		 * unflushed sizes) the way the next mount would. */
		rc = meta_config_get(v->meta, "clean", &clean);
		if (rc || strcmp(clean, "1")) {
			rc = fs_recover(v);
			if (rc >= 0 && meta_begin(v->meta) == 0) {
				meta_config_set(v->meta, "clean", "1");
				meta_commit(v->meta, 1);
			}
		} else {
			rc = 0;
		}
		free(clean);
		if (rc > 0 && verbose)
			printf("recovered %d items left by an unclean shutdown\n", rc);
	}
	rc = fsck_run(v, (repair ? FSCK_REPAIR : 0) | (verbose ? FSCK_VERBOSE : 0), stdout);
	if (verbose || rc)
		printf("%s: %s\n", v->dir, rc == FSCK_CLEAN ? "clean" : rc == FSCK_CORRECTED ?
		       "errors repaired" : rc == FSCK_UNCORRECTED ? "errors left" : "check failed");
	volume_close(v);
	return rc;
}
