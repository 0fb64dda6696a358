/*
 * cmd_cloud.c - the cloud mount's commands: "tierfs mount --cloud" (parse
 * options, daemonise like the home mount: the daemon reports "ready" or
 * its one-line error through a pipe, so the command itself prints every
 * error a user can cause and exits non-zero) and the cloud part of
 * "tierfs status MOUNTPOINT", which asks the live mount for its status
 * through the root's CLOUD_STATUS_XATTR (so no registry of mounts is
 * needed: /proc/self/mounts says which mounts are cloud mounts, by type
 * fuse.tierfs and a URL as the source).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <mntent.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"
#include "cli_int.h"
#include "cloud.h"
#include "log.h"
#include "util.h"

static const char cloud_usage[] =
	"usage: tierfs mount --cloud --key-file FILE [--cache DIR] [--cache-size SIZE]\n"
	"                    [--passphrase-file FILE] [-f] [-d] [-o OPTIONS] URL MOUNTPOINT\n"
	"\n"
	"Mount the snapshots a home mount publishes to the object store URL\n"
	"(file:///DIR, s3://BUCKET[/PREFIX], azure://CONTAINER[/PREFIX]) read-only\n"
	"at MOUNTPOINT. File contents are fetched on demand and cached locally.\n"
	"Credentials come from the environment (AWS_*, AZURE_STORAGE_*).\n"
	"\n"
	"  --key-file FILE         the volume key ('tierfs key export')\n"
	"  --passphrase-file FILE  passphrase of a wrapped key (or TIERFS_PASSPHRASE)\n"
	"  --cache DIR             local cache (default /var/cache/tierfs/HASH-OF-URL)\n"
	"  --cache-size SIZE       cache limit, e.g. 500M, 10G (default 10G)\n"
	"  -f                      stay in the foreground (log to stderr)\n"
	"  -d                      FUSE debug output (implies -f)\n"
	"  -o OPTIONS              comma-separated:\n"
	"     poll=SECONDS            how often to look for a new snapshot (default 30)\n"
	"     request_timeout=SECONDS bound on waiting for the store or for home to\n"
	"                             upload an on-demand file; then EIO (default 60)\n"
	"     readahead=N             chunks fetched ahead of sequential reads (default 16, 0: off)\n"
	"     readahead_kb=N          kernel read-ahead of the mount (default 8192)\n"
	"     mem_cache=SIZE          chunks kept in memory (default 128M)\n"
	"     threads=N               most request threads (default 16)\n"
	"     uring / no_uring        requests over per-CPU io_uring queues (default on\n"
	"                             where the kernel offers it: enable_uring=Y)\n"
	"     log=FILE                daemon log (default CACHE/tierfs.log)\n"
	"  ro, allow_other, default_permissions (always in effect) and the fstab and\n"
	"  mount(8) options of 'tierfs mount --help' are accepted and ignored.\n";

struct cloud_args {
	struct cloud_opts o;
	const char *log;
	char *pass;
};

static int parse_opts(char *opts, struct cloud_args *a)
{
	char *save = NULL;

	for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(o, '=');
		const char *v = eq ? eq + 1 : NULL;
		unsigned long n = 0;
		uint64_t sz;
		char *end = NULL;

		if (cli_mount_opt_ignored(o) || !strcmp(o, "ro")) /* a cloud mount is read-only */
			continue;
		if (eq)
			*eq = '\0';
		if (v && *v)
			n = strtoul(v, &end, 10);
		if (!strcmp(o, "poll") && end && !*end && n > 0 && n <= 86400) {
			a->o.poll_s = (int)n;
			continue;
		}
		if (!strcmp(o, "request_timeout") && end && !*end && n > 0 && n <= 86400) {
			a->o.request_timeout_s = (int)n;
			continue;
		}
		if (!strcmp(o, "readahead") && end && !*end && n <= 64) {
			a->o.readahead = n ? (int)n : -1;
			continue;
		}
		if (!strcmp(o, "readahead_kb") && end && !*end && n > 0 && n <= 65536) {
			a->o.readahead_kb = (unsigned)n;
			continue;
		}
		if (!strcmp(o, "threads") && end && !*end && n > 0 && n <= 256) {
			a->o.max_threads = (unsigned)n;
			continue;
		}
		if (!strcmp(o, "mem_cache") && v && !parse_size(v, &sz) && sz >= (1u << 20)) {
			a->o.mem_cache = sz;
			continue;
		}
		if ((!strcmp(o, "uring") || !strcmp(o, "no_uring")) && !v) {
			a->o.no_uring = o[0] == 'n';
			continue;
		}
		if (!strcmp(o, "log") && v && *v) {
			a->log = v;
			continue;
		}
		if (eq)
			*eq = '=';
		tfs_error("mount: unknown or malformed mount option '%s'; see 'tierfs mount --help'", o);
		return -EINVAL;
	}
	return 0;
}

/* An absolute version of path (which need not exist); caller frees. */
static char *absolute(const char *path)
{
	char cwd[PATH_MAX], *out;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	return asprintf(&out, "%s/%s", cwd, path) < 0 ? NULL : out;
}

static char *default_cache_dir(const char *url)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1], *out;

	if (!EVP_Digest(url, strlen(url), md, &n, EVP_sha256(), NULL))
		return NULL;
	hex_encode(md, 8, hex);
	return asprintf(&out, "/var/cache/tierfs/%s", hex) < 0 ? NULL : out;
}

struct cloud_serve {
	struct cloud_args *a;
	const char *mp;
};

static void json_get(const char *js, const char *key, char *out, size_t len);

/* systemd's STATUS= line: from the status file the mount rewrites every second. */
static int notify_status(void *arg, char *buf, size_t len)
{
	char path[PATH_MAX + 16], js[8192], seq[32], cached[32], pending[32];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/status", (const char *)arg);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	n = fread(js, 1, sizeof(js) - 1, f);
	fclose(f);
	js[n] = '\0';
	json_get(js, "seq", seq, sizeof(seq));
	json_get(js, "cache_bytes", cached, sizeof(cached));
	json_get(js, "requests_pending", pending, sizeof(pending));
	snprintf(buf, len, "snapshot %s, %s bytes cached, %s requests pending", seq, cached, pending);
	return 0;
}

static int serve(void *arg, int pipefd)
{
	struct cloud_serve *cs = arg;
	struct cli_daemon d = { pipefd, cs->a->log, notify_status, (void *)cs->a->o.cache_dir, 0, 0 };
	char err[1024];
	int rc = cloud_run(&cs->a->o, cs->mp, cli_daemon_ready, &d, err, sizeof(err));

	return cli_daemon_done(&d, rc, err);
}

int cloud_mount_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "cloud", no_argument, NULL, 'C' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "cache", required_argument, NULL, 'c' },
		{ "cache-size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cloud_args a;
	char abs[PATH_MAX];
	char *key = NULL, *cache = NULL, *log = NULL, *logdef = NULL;
	int c, ret = 1;

	memset(&a, 0, sizeof(a));
	a.o.cache_size = 10ull << 30;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+fdo:h", lo, NULL)) != -1) {
		switch (c) {
		case 'C':
			break;
		case 'k':
			a.o.key_file = optarg;
			break;
		case 'p':
			free(a.pass);
			a.pass = NULL;
			if ((ret = cli_read_line_file(optarg, &a.pass))) {
				tfs_error("cannot read passphrase file '%s': %s", optarg, strerror(-ret));
				return 1;
			}
			break;
		case 'c':
			a.o.cache_dir = optarg;
			break;
		case 's':
			if (parse_size(optarg, &a.o.cache_size) || a.o.cache_size < (1u << 20)) {
				tfs_error("mount: invalid cache size '%s' (e.g. 500M, 10G; at least 1M)", optarg);
				return 2;
			}
			break;
		case 'f':
			a.o.foreground = 1;
			break;
		case 'd':
			a.o.foreground = a.o.debug = 1;
			break;
		case 'o':
			if (parse_opts(optarg, &a))
				return 2;
			break;
		case 'h':
			fputs(cloud_usage, stdout);
			return 0;
		default:
			tfs_error("mount: unknown option '%s'; see 'tierfs mount --cloud --help'",
				  cli_bad_option(argv));
			return 2;
		}
	}
	if (argc - optind != 2) {
		tfs_error("mount: expected URL and MOUNTPOINT; see 'tierfs mount --cloud --help'");
		return 2;
	}
	a.o.url = argv[optind];
	if (strncmp(a.o.url, "file://", 7) && strncmp(a.o.url, "s3://", 5) && strncmp(a.o.url, "azure://", 8)) {
		tfs_error("mount: unsupported store URL '%s' (file://, s3:// or azure://)", a.o.url);
		return 2;
	}
	if (!a.o.key_file) {
		tfs_error("mount: a cloud mount needs --key-file; see 'tierfs mount --cloud --help'");
		return 2;
	}
	if (!a.pass && getenv("TIERFS_PASSPHRASE"))
		a.pass = strdup(getenv("TIERFS_PASSPHRASE"));
	a.o.passphrase = a.pass;
	ret = 1;
	key = realpath(a.o.key_file, NULL);
	if (!key) {
		tfs_error("cannot load key file '%s': %s", a.o.key_file, strerror(errno));
		goto out;
	}
	a.o.key_file = key;
	cache = a.o.cache_dir ? absolute(a.o.cache_dir) : default_cache_dir(a.o.url);
	if (!cache) {
		tfs_error("out of memory");
		goto out;
	}
	a.o.cache_dir = cache;
	if (a.log) {
		log = absolute(a.log);
		a.log = log;
	} else if (asprintf(&logdef, "%s/tierfs.log", cache) >= 0) {
		a.log = logdef;
	}
	if (!a.log) {
		tfs_error("out of memory");
		goto out;
	}
	if (cli_check_mountpoint(argv[optind + 1], abs))
		goto out;
	{
		struct cloud_serve cs = { &a, abs };

		ret = cli_run_daemon(a.o.url, a.o.foreground, serve, &cs);
	}
out:
	free(key);
	free(cache);
	free(log);
	free(logdef);
	free(a.pass);
	return ret;
}

/* ---- status ---- */

/* Is abs a cloud mount (fuse.tierfs with a URL as its source)? */
static int is_cloud_mount(const char *abs)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *e;
	int found = 0;

	if (!f)
		return 0;
	while ((e = getmntent(f)))
		if (!strcmp(e->mnt_dir, abs) && !strcmp(e->mnt_type, "fuse.tierfs"))
			found = strstr(e->mnt_fsname, "://") != NULL;
	endmntent(f);
	return found;
}

/* The value of "key": in a flat JSON object, as text (strings unquoted, unescaped enough). */
static void json_get(const char *js, const char *key, char *out, size_t len)
{
	char pat[64];
	const char *p;
	size_t n = 0;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(js, pat);
	if (!p)
		return;
	p += strlen(pat);
	if (*p == '"') {
		for (p++; *p && *p != '"' && n + 1 < len; p++) {
			if (*p == '\\' && p[1])
				p++;
			out[n++] = *p;
		}
	} else {
		while (*p && *p != ',' && *p != '}' && n + 1 < len)
			out[n++] = *p++;
	}
	out[n] = '\0';
}

static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double d = (double)v;
	int k = 0;

	while (d >= 1024 && k < 4) {
		d /= 1024;
		k++;
	}
	snprintf(buf, len, k ? "%.1f %s" : "%.0f %s", d, u[k]);
	return buf;
}

/* The cloud mount holding path (realpath'd): its mount point, or 0. */
static int cloud_mount_of(const char *path, char *mnt, size_t len)
{
	char abs[PATH_MAX];
	FILE *f;
	struct mntent *e;
	size_t best = 0;

	if (!realpath(path, abs))
		return 0;
	f = setmntent("/proc/self/mounts", "r");
	while (f && (e = getmntent(f))) {
		size_t n = strlen(e->mnt_dir);

		if (strcmp(e->mnt_type, "fuse.tierfs") || !strstr(e->mnt_fsname, "://"))
			continue;
		if (!strncmp(abs, e->mnt_dir, n) && (abs[n] == '/' || !abs[n] || n == 1) && n > best) {
			best = n;
			snprintf(mnt, len, "%s", e->mnt_dir);
		}
	}
	if (f)
		endmntent(f);
	return best > 0;
}

/* The status JSON of a cloud mount; 0, or -errno. */
static int read_status(const char *mnt, char *buf, size_t len)
{
	ssize_t n = getxattr(mnt, CLOUD_STATUS_XATTR, buf, len - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static uint64_t json_u64(const char *js, const char *key)
{
	char v[64];

	json_get(js, key, v, sizeof(v));
	return strtoull(v, NULL, 10);
}

int cloud_sync_main(const char *path, int wait, int imported, int timeout_s)
{
	char mnt[PATH_MAX], buf[8192], err[512], h[32];
	uint64_t start = now_mono_ns(), grace_end = start + 2000000000ull;
	int tty = isatty(STDERR_FILENO), shown = 0;

	if (!cloud_mount_of(path, mnt, sizeof(mnt)))
		return -1;
	if (read_status(mnt, buf, sizeof(buf))) {
		tfs_error("cannot read the status of cloud mount '%s': %s", mnt, strerror(errno));
		return 1;
	}
	if (!strstr(buf, "\"writeback\":")) {
		tfs_error("cloud mount '%s' is read-only (mounted with a volume key, not a node key):"
			  " nothing to send home", mnt);
		return 1;
	}
	uint64_t refused0 = json_u64(buf, "rejected") + json_u64(buf, "kept"), conflicts0 = json_u64(buf, "conflicts");

	if (setxattr(mnt, CLOUD_SYNC_XATTR, "1", 1, 0)) {
		tfs_error("cannot ask cloud mount '%s' to sync: %s", mnt, strerror(errno));
		return 1;
	}
	if (!wait)
		return 0;
	for (;;) {
		uint64_t pending, busy, unsent, unacked;

		if (read_status(mnt, buf, sizeof(buf))) {
			if (shown)
				fputc('\n', stderr);
			tfs_error("cannot read the status of cloud mount '%s': %s", mnt, strerror(errno));
			return 1;
		}
		pending = json_u64(buf, "pending");
		busy = json_u64(buf, "open_for_writing");
		unsent = json_u64(buf, "unsent_sets");
		unacked = json_u64(buf, "unacked_sets");
		json_get(buf, "last_error", err, sizeof(err));
		/* a file closed just now may still count as open until its release arrives */
		if (pending == busy && !unsent && (!imported || !unacked) && (!busy || now_mono_ns() > grace_end))
			break;
		if (timeout_s > 0 && now_mono_ns() - start > (uint64_t)timeout_s * 1000000000ull) {
			if (shown)
				fputc('\n', stderr);
			tfs_error("sync: timed out after %d s: %llu changed files or directories not yet in the store,"
				  " %llu change sets not yet acknowledged by home%s%s", timeout_s,
				  (unsigned long long)(pending - busy + unsent), (unsigned long long)unacked,
				  err[0] ? "; last error: " : "", err);
			return 1;
		}
		if (tty) {
			fprintf(stderr, "\rsync: %llu to upload (%s), %llu change sets waiting for home%s%.60s   ",
				(unsigned long long)(pending - busy),
				human(json_u64(buf, "pending_bytes"), h, sizeof(h)), (unsigned long long)unacked,
				err[0] ? "; " : "", err);
			shown = 1;
		}
		usleep(200000);
	}
	if (shown)
		fputc('\n', stderr);
	{
		uint64_t busy = json_u64(buf, "open_for_writing");
		uint64_t refused = json_u64(buf, "rejected") + json_u64(buf, "kept") - refused0;
		uint64_t conflicts = json_u64(buf, "conflicts") - conflicts0;

		if (busy)
			fprintf(stderr, "tierfs: %llu files still open for writing were not waited for\n",
				(unsigned long long)busy);
		if (imported && (refused || conflicts)) {
			/* home has it, but not all of it as written: a pipeline must know */
			tfs_error("sync: home refused or kept aside %llu changes and kept %llu conflict copies;"
				  " 'tierfs status PATH' here says which and why", (unsigned long long)refused,
				  (unsigned long long)conflicts);
			return 1;
		}
	}
	return 0;
}

int cloud_umount_prepare(const char *mountpoint, int lazy)
{
	char mnt[PATH_MAX], buf[8192], cdir[1024];
	uint64_t left;

	if (!cloud_mount_of(mountpoint, mnt, sizeof(mnt)) || strcmp(mnt, mountpoint) ||
	    read_status(mnt, buf, sizeof(buf)) || !strstr(buf, "\"writeback\":"))
		return 0;
	if (!lazy) {
		if (cloud_sync_main(mnt, 1, 0, 60) == 0)
			return 0;
		tfs_error("not unmounting '%s': changes are not in the store yet; 'tierfs umount -l'"
			  " unmounts and keeps them staged for the next mount", mnt);
		return 1;
	}
	left = json_u64(buf, "pending") + json_u64(buf, "unsent_sets");
	json_get(buf, "cache_dir", cdir, sizeof(cdir));
	if (left)
		fprintf(stderr, "tierfs: %llu changes of '%s' are not in the store yet: the mount sends them as it"
			" stops if it can; what is left stays staged in '%s/wb' for the next mount\n",
			(unsigned long long)left, mnt, cdir);
	return 0;
}

int cloud_status_main(const char *mountpoint, int json)
{
	char abs[PATH_MAX], buf[8192], v[10][512], h1[32], h2[32];
	static const char *const keys[] = { "url", "seq", "snapshot_age_s", "poll_s", "last_check_age_s",
					    "cache_bytes", "cache_limit", "hits", "misses",
					    "requests_pending" };
	ssize_t n;

	if (!realpath(mountpoint, abs))
		return -1;
	if (!is_cloud_mount(abs)) {
		/* a file of a cloud mount: where its latest version is on its way home */
		char mnt[PATH_MAX], st[1024];

		if (!cloud_mount_of(abs, mnt, sizeof(mnt)))
			return -1;
		n = getxattr(abs, CLOUD_STATE_XATTR, st, sizeof(st) - 1);
		if (n < 0 && (errno == ENODATA || errno == ENOTSUP)) {
			snprintf(st, sizeof(st), "home");
			n = 4;
		} else if (n < 0) {
			tfs_error("cannot read the state of '%s': %s", mountpoint, strerror(errno));
			return 1;
		}
		st[n] = '\0';
		if (json) {
			printf("{\"path\":");
			json_str(stdout, abs);
			printf(",\"state\":");
			json_str(stdout, st);
			printf("}\n");
		} else {
			printf("%s: %s\n", abs, st);
		}
		return 0;
	}
	n = getxattr(abs, CLOUD_STATUS_XATTR, buf, sizeof(buf) - 1);
	if (n < 0) {
		tfs_error("cannot read the status of cloud mount '%s': %s", mountpoint, strerror(errno));
		return 1;
	}
	buf[n] = '\0';
	if (json) {
		fputs(buf, stdout);
		return 0;
	}
	for (int k = 0; k < 10; k++)
		json_get(buf, keys[k], v[k], sizeof(v[k]));
	{
		uint64_t hits = strtoull(v[7], NULL, 10), misses = strtoull(v[8], NULL, 10);
		char cdir[1024], err[512], cfiles[32], pre[32];

		json_get(buf, "cache_dir", cdir, sizeof(cdir));
		json_get(buf, "poll_error", err, sizeof(err));
		json_get(buf, "cache_files", cfiles, sizeof(cfiles));
		json_get(buf, "prefetched", pre, sizeof(pre));
		printf("cloud mount '%s' of '%s'\n", abs, v[0]);
		printf("  snapshot   %s, published %s s ago\n", v[1], v[2]);
		printf("  poll       every %s s, last successful check %s s ago\n", v[3], v[4]);
		printf("  cache      %s of %s in '%s' (%s files)\n",
		       human(strtoull(v[5], NULL, 10), h1, sizeof(h1)),
		       human(strtoull(v[6], NULL, 10), h2, sizeof(h2)), cdir, cfiles);
		printf("  hit rate   %.1f%% (%llu hits, %llu misses since mount; %s chunks read ahead)\n",
		       hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0.0,
		       (unsigned long long)hits, (unsigned long long)misses, pre);
		printf("  requests   %s pending\n", v[9]);
		if (err[0])
			printf("  store      %s\n", err);
		if (strstr(buf, "\"writeback\":")) {
			char node[128], werr[512], age[32], up[32], ack[32], werr_age[32];

			json_get(buf, "node", node, sizeof(node));
			json_get(buf, "last_error", werr, sizeof(werr));
			json_get(buf, "oldest_pending_age_s", age, sizeof(age));
			json_get(buf, "last_upload_age_s", up, sizeof(up));
			json_get(buf, "last_ack_age_s", ack, sizeof(ack));
			json_get(buf, "last_error_age_s", werr_age, sizeof(werr_age));
			printf("  node       '%s': writes back where the policy allows\n", node);
			printf("  outbox     %llu changes waiting (%s)%s%s%s, %llu open for writing;"
			       " %llu change sets not sent, %llu waiting for home\n",
			       (unsigned long long)json_u64(buf, "pending"),
			       human(json_u64(buf, "pending_bytes"), h1, sizeof(h1)),
			       strcmp(age, "-1.0") ? ", oldest " : "", strcmp(age, "-1.0") ? age : "",
			       strcmp(age, "-1.0") ? " s ago" : "", (unsigned long long)json_u64(buf, "open_for_writing"),
			       (unsigned long long)json_u64(buf, "unsent_sets"),
			       (unsigned long long)json_u64(buf, "unacked_sets"));
			printf("  sent       %llu change sets (%llu changes, %s) since mount; last upload %s%s,"
			       " last acknowledgement %s%s\n",
			       (unsigned long long)json_u64(buf, "uploaded_sets"),
			       (unsigned long long)json_u64(buf, "uploaded_changes"),
			       human(json_u64(buf, "uploaded_bytes"), h2, sizeof(h2)),
			       strcmp(up, "-1.0") ? up : "never", strcmp(up, "-1.0") ? " s ago" : "",
			       strcmp(ack, "-1.0") ? ack : "never", strcmp(ack, "-1.0") ? " s ago" : "");
			printf("  home       %llu imported, %llu conflicts, %llu rejected, %llu kept aside since mount\n",
			       (unsigned long long)json_u64(buf, "imported"),
			       (unsigned long long)json_u64(buf, "conflicts"),
			       (unsigned long long)json_u64(buf, "rejected"), (unsigned long long)json_u64(buf, "kept"));
			if (werr[0])
				printf("  last error %s (%s s ago)\n", werr, werr_age);
		}
	}
	return 0;
}
