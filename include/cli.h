/*
 * cli.h - the tierfs command line: one function per command, dispatched
 * from the table in main.c (like git's builtins).
 *
 * Each command gets argv with argv[0] set to the command name and returns
 * the process exit status (0 success, 1 failure, 2 usage error). Errors are
 * printed with tfs_error() in git style:
 *   tierfs: cannot open volume '/srv/vol': not a tierfs volume
 * Every command understands --help.
 */
#ifndef TIERFS_CLI_H
#define TIERFS_CLI_H

int cmd_format(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_store(int argc, char **argv); /* store check URL */
int cmd_key(int argc, char **argv);   /* key export / key import */
int cmd_policy(int argc, char **argv); /* policy add/list/move/rm/explain/check */
int cmd_status(int argc, char **argv);
int cmd_metrics(int argc, char **argv); /* cmd_health.c */
int cmd_pin(int argc, char **argv);
int cmd_unpin(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_hydrate(int argc, char **argv);
int cmd_evict(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_node(int argc, char **argv);   /* node add / list / revoke */
int cmd_audit(int argc, char **argv); /* audit, audit verify, audit keep */
/* mount(8) helper: mount.fuse.tierfs SOURCE DIR [-o OPTS] */
int mount_helper_main(int argc, char **argv);
/* Cloud mount (cmd_cloud.c): "tierfs mount --cloud ..."; status of a cloud mount, -1 if not one. */
int cloud_mount_main(int argc, char **argv);
int cloud_status_main(const char *mountpoint, int json);
/* tierfs sync on a cloud mount (write-back): -1 if path is not a cloud mount, else the exit status. */
int cloud_sync_main(const char *path, int wait, int imported, int timeout_s);
/* Before unmounting a cloud mount: wait for uploads (or, lazy, say what is left). Exit status. */
int cloud_umount_prepare(const char *mountpoint, int lazy);

/* Shared option helpers. */
/* True when arg is "-h" or "--help". */
int cli_is_help(const char *arg);

/*
 * The option getopt_long() just rejected, for the error message: "-x" for
 * a short option, the word itself for a long one. Valid until the next call.
 */
const char *cli_bad_option(char **argv);

#endif
