/*
 * cmd_node.c - "tierfs node": the cloud nodes that may write results back
 * into a volume (nodes.h). `node add` issues a node key file: it reads the
 * exports like a `key export` file and writes, where a --cloud-write rule
 * allows it, as that node; `node revoke` stops home applying its outbox;
 * `node list` shows each node and what home imported from it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "cli_int.h"
#include "keys.h"
#include "log.h"
#include "nodes.h"
#include "outbox.h"
#include "util.h"

static const char node_usage[] =
	"usage: tierfs node add NAME --volume DIR --out FILE [--quota SIZE] [--passphrase-file FILE]\n"
	"       tierfs node list [--json] [--volume DIR]\n"
	"       tierfs node revoke NAME [--volume DIR]\n"
	"\n"
	"Cloud nodes that may write results back into the volume, where a rule\n"
	"marked --cloud-write allows it (tierfs policy add ... --cloud-write).\n"
	"\n"
	"  add      issue NAME's key file at FILE (mode 0600, never overwritten; '-'\n"
	"           writes stdout, refused on a terminal). It holds the volume key (it\n"
	"           reads the exports) and a secret of the node's own, with which it\n"
	"           seals its outbox: no node can write as another. Mount it with\n"
	"           'tierfs mount --cloud --key-file FILE ...'. --quota SIZE: the most\n"
	"           bytes of files one change set of NAME may import (default: no limit)\n"
	"  list     every node: state, key serial, last change set imported, files,\n"
	"           bytes, rejected changes, conflicts, change sets waiting, last error\n"
	"  revoke   home no longer applies NAME's outbox; what it holds is kept aside\n"
	"           and counted. Adding NAME again issues a new key\n"
	"\n"
	"A wrapped volume key is unlocked with --passphrase-file FILE or\n"
	"TIERFS_PASSPHRASE.\n";

struct node_opts {
	const char *volume, *out, *pass_file, *quota;
	int json;
};

/* Parse options after the subcommand; the positional words are left at argv[optind..]. */
static int node_parse(int argc, char **argv, struct node_opts *o)
{
	static const struct option longopts[] = {
		{ "volume", required_argument, NULL, 'v' },
		{ "out", required_argument, NULL, 'o' },
		{ "quota", required_argument, NULL, 'q' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'v': o->volume = optarg; break;
		case 'o': o->out = optarg; break;
		case 'q': o->quota = optarg; break;
		case 'p': o->pass_file = optarg; break;
		case 'j': o->json = 1; break;
		case 'h': fputs(node_usage, stdout); return 0;
		default:
			tfs_error("unknown option '%s' for 'tierfs node %s'; see 'tierfs node --help'",
				  cli_bad_option(argv), argv[0]);
			return 2;
		}
	}
	return -1;
}

static int load_volume_key(const struct target *t, const char *pass_file, struct volkey *k)
{
	char path[4096], *pass = NULL;
	const char *p = getenv("TIERFS_PASSPHRASE");
	int rc;

	if (pass_file) {
		rc = cli_read_line_file(pass_file, &pass);
		if (rc) {
			tfs_error("cannot read passphrase file '%s': %s", pass_file, strerror(-rc));
			return -1;
		}
		p = pass;
	}
	snprintf(path, sizeof(path), "%s/volume.key", t->v->dir);
	rc = key_file_load(path, p, k);
	if (pass) {
		OPENSSL_cleanse(pass, strlen(pass));
		free(pass);
	}
	if (rc) {
		tfs_error("cannot load the volume key '%s': %s", path,
			  rc == -ENOKEY ? "it is wrapped with a passphrase (--passphrase-file or TIERFS_PASSPHRASE)"
			  : rc == -EACCES ? "wrong passphrase" : strerror(-rc));
		return -1;
	}
	return 0;
}

static int node_add(int argc, char **argv, struct node_opts *o)
{
	struct node_key nk;
	struct volkey vk;
	struct target t;
	uint64_t quota = 0;
	char err[512];
	int rc, status = 1;

	if (optind + 1 != argc || !o->volume || !o->out) {
		tfs_error("usage: tierfs node add NAME --volume DIR --out FILE [--quota SIZE]");
		return 2;
	}
	if (o->quota && parse_size(o->quota, &quota)) {
		tfs_error("invalid size '%s' for --quota", o->quota);
		return 2;
	}
	if (node_name_ok(argv[optind], err, sizeof(err))) {
		tfs_error("%s", err);
		return 2;
	}
	if (!strcmp(o->out, "-") && isatty(STDOUT_FILENO)) {
		tfs_error("refusing to write a node key to a terminal; use --out FILE");
		return 2;
	}
	if (strcmp(o->out, "-") && access(o->out, F_OK) == 0) {
		tfs_error("cannot write '%s': file exists; a key is never overwritten", o->out);
		return 1;
	}
	if (target_open(&t, o->volume, NULL, 0))
		return 1;
	if (load_volume_key(&t, o->pass_file, &vk))
		goto out;
	rc = nodes_add(t.v->meta, &vk, argv[optind], quota, &nk, err, sizeof(err));
	volkey_release(&vk);
	if (rc) {
		tfs_error("%s", err);
		goto out;
	}
	rc = node_key_file_write(o->out, &nk);
	if (rc) {
		/* never leave an active node whose key nobody holds */
		nodes_revoke(t.v->meta, nk.name, err, sizeof(err));
		tfs_error("cannot write the node key '%s': %s (node '%s' revoked again)", o->out,
			  outbox_errmsg(), nk.name);
	} else {
		if (strcmp(o->out, "-"))
			printf("node '%s' added (key serial %u); its key is in '%s'\n", nk.name, nk.serial, o->out);
		status = 0;
	}
	node_key_release(&nk);
out:
	target_close(&t);
	return status;
}

static void print_time(FILE *f, int64_t ns)
{
	time_t s = (time_t)(ns / 1000000000);
	struct tm tm;
	char buf[32];

	gmtime_r(&s, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fputs(buf, f);
}

static int node_list(int argc, char **argv, struct node_opts *o)
{
	struct node_info *v;
	struct target t;
	size_t n;
	int rc;

	if (optind != argc) {
		tfs_error("usage: tierfs node list [--json] [--volume DIR]");
		return 2;
	}
	if (target_open(&t, o->volume, NULL, 1))
		return 1;
	rc = nodes_list(t.v->meta, &v, &n);
	target_close(&t);
	if (rc) {
		tfs_error("cannot read the node table: %s", strerror(-rc));
		return 1;
	}
	if (o->json)
		putchar('[');
	else if (n)
		printf("%-16s %-8s %6s %8s %8s %12s %8s %9s %7s  %s\n", "NODE", "STATE", "SERIAL", "LAST-CS",
		       "FILES", "BYTES", "REJECTED", "CONFLICTS", "WAITING", "LAST IMPORT / ERROR");
	for (size_t i = 0; i < n; i++) {
		struct node_info *x = &v[i];

		if (o->json) {
			printf("%s{\"name\":", i ? "," : "");
			json_str(stdout, x->name);
			printf(",\"state\":\"%s\",\"serial\":%u,\"created\":\"", x->revoked ? "revoked" : "active",
			       x->serial);
			print_time(stdout, x->created);
			printf("\",\"quota\":%llu,\"last_seq\":%llu,\"files\":%llu,\"bytes\":%llu,\"rejected\":%llu,"
			       "\"conflicts\":%llu,\"waiting\":%llu,\"last_import\":",
			       (unsigned long long)x->quota, (unsigned long long)x->last_seq,
			       (unsigned long long)x->files, (unsigned long long)x->bytes,
			       (unsigned long long)x->rejected, (unsigned long long)x->conflicts,
			       (unsigned long long)x->pending);
			if (x->last_import) {
				putchar('"');
				print_time(stdout, x->last_import);
				putchar('"');
			} else {
				fputs("null", stdout);
			}
			fputs(",\"last_error\":", stdout);
			json_str(stdout, x->last_error);
			putchar('}');
		} else {
			printf("%-16s %-8s %6u %8llu %8llu %12llu %8llu %9llu %7llu  ", x->name,
			       x->revoked ? "revoked" : "active", x->serial, (unsigned long long)x->last_seq,
			       (unsigned long long)x->files, (unsigned long long)x->bytes,
			       (unsigned long long)x->rejected, (unsigned long long)x->conflicts,
			       (unsigned long long)x->pending);
			if (x->last_import)
				print_time(stdout, x->last_import);
			else
				fputs("never", stdout);
			if (x->last_error[0])
				printf(" / %s", x->last_error);
			putchar('\n');
		}
	}
	if (o->json)
		puts("]");
	else if (!n)
		puts("no nodes (tierfs node add NAME --volume DIR --out FILE)");
	free(v);
	return 0;
}

static int node_revoke(int argc, char **argv, struct node_opts *o)
{
	struct target t;
	char err[512];
	int rc;

	if (optind + 1 != argc) {
		tfs_error("usage: tierfs node revoke NAME [--volume DIR]");
		return 2;
	}
	if (target_open(&t, o->volume, NULL, 0))
		return 1;
	rc = nodes_revoke(t.v->meta, argv[optind], err, sizeof(err));
	target_close(&t);
	if (rc) {
		tfs_error("%s", err);
		return 1;
	}
	printf("node '%s' revoked: home no longer applies its outbox\n", argv[optind]);
	return 0;
}

int cmd_node(int argc, char **argv)
{
	struct node_opts o;
	int rc;

	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(node_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	rc = node_parse(argc - 1, argv + 1, &o);
	if (rc >= 0)
		return rc;
	optind++; /* positions in argv + 1 -> argv */
	if (!strcmp(argv[1], "add"))
		return node_add(argc, argv, &o);
	if (!strcmp(argv[1], "list"))
		return node_list(argc, argv, &o);
	if (!strcmp(argv[1], "revoke"))
		return node_revoke(argc, argv, &o);
	tfs_error("'%s' is not a node subcommand; see 'tierfs node --help'", argv[1]);
	return 2;
}
