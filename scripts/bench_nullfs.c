/* bench_nullfs - the least a FUSE daemon can do, for scripts/bench-local.
 *
 *   bench_nullfs MOUNTPOINT
 *
 * An empty, read-only root directory over libfuse's low-level API and its
 * multithreaded session loop, as tierfs uses them: every LOOKUP is answered
 * "no such entry" (cached for an hour), GETATTR of the root from a constant.
 * Stat of absent names on it measures one FUSE request round trip with no
 * work behind it: the floor any daemon on this machine and libfuse stands
 * on. Runs in the foreground until unmounted; mounted with
 * default_permissions, as tierfs's home mount is.
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void root_stat(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
}

static void nl_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	(void)parent;
	(void)name;
	memset(&e, 0, sizeof(e));
	e.entry_timeout = 3600; /* ino 0: a negative entry the kernel caches */
	fuse_reply_entry(req, &e);
}

static void nl_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	root_stat(&st);
	fuse_reply_attr(req, &st, 3600);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = nl_lookup,
	.getattr = nl_getattr,
};

int main(int argc, char **argv)
{
	char *args[] = { argv[0], "-o", "default_permissions,allow_other,fsname=bench_nullfs", NULL };
	struct fuse_args fa = FUSE_ARGS_INIT(3, args);
	struct fuse_loop_config *cfg;
	struct fuse_session *se;
	int rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: bench_nullfs MOUNTPOINT\n");
		return 2;
	}
	se = fuse_session_new(&fa, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, argv[1]) == 0) {
			cfg = fuse_loop_cfg_create();
			if (cfg) {
				rc = fuse_session_loop_mt(se, cfg) ? 1 : 0;
				fuse_loop_cfg_destroy(cfg);
			}
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return rc;
}
