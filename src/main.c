/*
 * main.c - the tierfs command: dispatches "tierfs CMD ARGS" to one function
 * per command. Also answers as mount.tierfs (mount(8) helper, fstab).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct cmd_struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct cmd_struct commands[] = {
	{ "format", cmd_format, "create a volume: metadata store, local data area, key" },
	{ "mount", cmd_mount, "mount a volume (home mount)" },
	{ "umount", cmd_umount, "unmount a tierfs mount" },
	{ "fsck", cmd_fsck, "check metadata against local data, and repair" },
	{ "policy", cmd_policy, "placement rules: add, list, move, rm, explain, check" },
	{ "status", cmd_status, "placement and sync state of files, or of the volume" },
	{ "metrics", cmd_metrics, "the volume's metrics in the Prometheus text format" },
	{ "pin", cmd_pin, "keep files local (and private with --private), overriding rules" },
	{ "unpin", cmd_unpin, "remove pins" },
	{ "sync", cmd_sync, "upload what is due now (--wait: until it is in the store)" },
	{ "hydrate", cmd_hydrate, "recall evicted data of files" },
	{ "evict", cmd_evict, "drop local copies of tiered files that are in the store" },
	{ "gc", cmd_gc, "delete objects nothing references any more" },
	{ "publish", cmd_publish, "publish a snapshot of the exported namespace now" },
	{ "store", cmd_store, "object store tools: store check URL" },
	{ "audit", cmd_audit, "what left the premises: the egress log; audit verify, audit keep" },
	{ "key", cmd_key, "volume key: key export, key import, key show" },
	{ "node", cmd_node, "cloud nodes that write results back: node add, list, revoke" },
};

int cli_is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

const char *cli_bad_option(char **argv)
{
	static char buf[64];

	if (optopt) {
		snprintf(buf, sizeof(buf), "-%c", optopt);
		return buf;
	}
	snprintf(buf, sizeof(buf), "%s", argv[optind - 1]);
	buf[strcspn(buf, "=")] = '\0';
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tierfs [--version] [--help] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n'tierfs COMMAND --help' describes one command.\n");
}


int main(int argc, char **argv)
{
	const char *prog = strrchr(argv[0], '/');

	prog = prog ? prog + 1 : argv[0];
	if (!strncmp(prog, "mount.", 6))
		return mount_helper_main(argc, argv);
	/* mount.fuse3 (fstab type fuse.tierfs) runs "tierfs SOURCE DIR -o OPTS":
	 * a first argument with a '/' is a path, never a command name. */
	if (argc >= 3 && strchr(argv[1], '/'))
		return mount_helper_main(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("tierfs %s\n", TIERFS_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "tierfs: '%s' is not a tierfs command; see 'tierfs --help'\n", argv[1]);
	return 2;
}
