/*
 * cmd_key.c - "tierfs key": export a volume's key (to move it to a cloud
 * node or a safe), import one, and show which key a volume or key file
 * holds without ever printing the key. One rule for every subcommand: the
 * passphrase comes from --passphrase-file FILE (its first line) or else the
 * TIERFS_PASSPHRASE environment variable, never from the command line; it
 * unlocks a wrapped input key, and whatever key file is written is wrapped
 * with it, unless --plain asks for a clear key file (or no passphrase was
 * given). Key files are written 0600, atomically, and never over an
 * existing file.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "keys.h"
#include "log.h"

#define VOLUME_KEY_FILE "volume.key"

struct key_opts {
	const char *volume;
	const char *out;
	const char *file;
	const char *pass_file;
	int plain;
	char *pass; /* owned, wiped on release */
	char *path; /* owned: DIR/volume.key */
};

static const char export_usage[] =
	"usage: tierfs key export --volume DIR [--out FILE] [--passphrase-file FILE] [--plain]\n"
	"\n"
	"Write the volume's key file (DIR/" VOLUME_KEY_FILE ") to FILE (mode 0600, never\n"
	"overwritten) or to stdout. With a passphrase (--passphrase-file or\n"
	"TIERFS_PASSPHRASE) the copy is wrapped with it; the same passphrase unlocks\n"
	"a wrapped volume key. --plain writes the key in the clear. A clear key is\n"
	"not written to a terminal without --plain.\n";
static const char import_usage[] =
	"usage: tierfs key import (--volume DIR | --out PATH) [--passphrase-file FILE] [--plain] FILE|-\n"
	"\n"
	"Check the key file FILE (- for stdin) and install it as DIR/" VOLUME_KEY_FILE " or\n"
	"at PATH (a cloud node's key). An existing key is never replaced. A wrapped\n"
	"FILE needs its passphrase (--passphrase-file or TIERFS_PASSPHRASE); the\n"
	"installed copy is wrapped with that passphrase unless --plain.\n";
static const char show_usage[] =
	"usage: tierfs key show (--volume DIR | --file PATH) [--passphrase-file FILE]\n"
	"\n"
	"Print the key id and how the key file is protected; never the key. A clear\n"
	"key is checked against its id; a wrapped one is unlocked as a check when a\n"
	"passphrase is given.\n";
static const char key_usage[] =
	"usage: tierfs key (export | import | show) [OPTIONS]\n"
	"\n"
	"  export   write the volume's key, to move it to a cloud node or a safe\n"
	"  import   install a key file into a volume or at a path\n"
	"  show     print the key id and protection of a key file\n"
	"\n"
	"'tierfs key SUBCOMMAND --help' describes one subcommand.\n";

static void key_opts_release(struct key_opts *o)
{
	if (o->pass) {
		OPENSSL_cleanse(o->pass, strlen(o->pass));
		free(o->pass);
	}
	free(o->path);
	memset(o, 0, sizeof(*o));
}

/* Fill o->pass from --passphrase-file or TIERFS_PASSPHRASE. 0 or 1 (error printed). */
static int key_get_passphrase(struct key_opts *o)
{
	struct tbuf b = TBUF_INIT;
	const char *env = getenv("TIERFS_PASSPHRASE");
	int rc = 1;

	if (o->pass_file) {
		const uint8_t *nl;
		size_t n;

		if (key_read_small_file(o->pass_file, &b)) {
			tfs_error("cannot read passphrase file '%s': %s", o->pass_file,
				  keys_errmsg());
			goto out;
		}
		nl = b.len ? memchr(b.data, '\n', b.len) : NULL; /* first line only */
		n = nl ? (size_t)(nl - b.data) : b.len;
		if (n && b.data[n - 1] == '\r')
			n--;
		if (memchr(b.data, '\0', n)) {
			tfs_error("passphrase file '%s' contains a NUL byte", o->pass_file);
			goto out;
		}
		if (n == 0) {
			tfs_error("passphrase file '%s' is empty", o->pass_file);
			goto out;
		}
		o->pass = strndup((const char *)b.data, n);
	} else if (env) {
		if (!*env) {
			tfs_error("TIERFS_PASSPHRASE is set but empty");
			goto out;
		}
		o->pass = strdup(env);
	} else {
		rc = 0;
		goto out;
	}
	if (!o->pass) {
		tfs_error("out of memory");
		goto out;
	}
	rc = 0;
out:
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	tbuf_release(&b);
	return rc;
}

/*
 * Parse options of one subcommand (argv[0] is its name). Returns -1 when
 * parsed, else the exit status to return (0 after --help, 2 usage error).
 */
static int key_parse(int argc, char **argv, const char *usage, struct key_opts *o,
		     int *first_arg)
{
	static const struct option longopts[] = {
		{ "volume", required_argument, NULL, 'v' },
		{ "out", required_argument, NULL, 'o' },
		{ "file", required_argument, NULL, 'f' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "plain", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0; /* GNU: reinitialise getopt for this argv */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'v': o->volume = optarg; break;
		case 'o': o->out = optarg; break;
		case 'f': o->file = optarg; break;
		case 'p': o->pass_file = optarg; break;
		case 'P': o->plain = 1; break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case ':':
			tfs_error("option '%s' needs a value; see 'tierfs key %s --help'",
				  argv[optind - 1], argv[0]);
			return 2;
		default:
			tfs_error("unknown option '%s'; see 'tierfs key %s --help'",
				  argv[optind - 1], argv[0]);
			return 2;
		}
	}
	*first_arg = optind;
	if (o->volume && asprintf(&o->path, "%s/" VOLUME_KEY_FILE, o->volume) < 0) {
		o->path = NULL;
		tfs_error("out of memory");
		return 1;
	}
	return key_get_passphrase(o) ? 1 : -1;
}

/* Print why a key file could not be loaded, in git style. */
static void key_load_error(const char *path, int rc)
{
	if (rc == -ENOKEY)
		tfs_error("key file '%s' is protected by a passphrase; set TIERFS_PASSPHRASE "
			  "or use --passphrase-file", path);
	else
		tfs_error("cannot read key file '%s': %s", path, keys_errmsg());
}

static void key_write_error(const char *path, int rc)
{
	if (rc == -EEXIST)
		tfs_error("cannot write key file '%s': it already exists and a key is never "
			  "overwritten; remove it first if you mean to replace it", path);
	else
		tfs_error("cannot write key file '%s': %s", path, keys_errmsg());
}

static int key_export(int argc, char **argv)
{
	struct key_opts o = { 0 };
	struct volkey k = { 0 };
	struct tbuf b = TBUF_INIT;
	const char *wrap;
	int first, rc, status;

	status = key_parse(argc, argv, export_usage, &o, &first);
	if (status >= 0)
		goto out;
	status = 2;
	if (!o.volume || o.file || first != argc) {
		tfs_error("usage: tierfs key export --volume DIR [--out FILE]; see "
			  "'tierfs key export --help'");
		goto out;
	}
	status = 1;
	if ((rc = key_file_load(o.path, o.pass, &k))) {
		key_load_error(o.path, rc);
		goto out;
	}
	wrap = o.plain ? NULL : o.pass;
	if (o.out) {
		if ((rc = key_file_write(o.out, &k, wrap))) {
			key_write_error(o.out, rc);
			goto out;
		}
		fprintf(stderr, "tierfs: exported key %s to '%s' (%s)\n", k.id, o.out,
			wrap ? "wrapped with the passphrase" : "in the clear: keep it safe");
	} else {
		/* a clear key on a terminal ends up in scrollback and screen logs */
		if (!wrap && !o.plain && isatty(STDOUT_FILENO)) {
			tfs_error("key export: refusing to write the key in the clear to a terminal; give a"
				  " passphrase (--passphrase-file or TIERFS_PASSPHRASE), --out FILE, or --plain");
			goto out;
		}
		if ((rc = key_file_format(&k, wrap, &b))) {
			tfs_error("cannot export key: %s", keys_errmsg());
			goto out;
		}
		if (fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout)) {
			tfs_error("cannot write key to stdout: %s", strerror(errno));
			goto out;
		}
	}
	status = 0;
out:
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	tbuf_release(&b);
	volkey_release(&k);
	key_opts_release(&o);
	return status;
}

static int key_import(int argc, char **argv)
{
	struct key_opts o = { 0 };
	struct volkey k = { 0 };
	struct tbuf b = TBUF_INIT;
	const char *src, *dest, *srcname;
	int first, rc, status;

	status = key_parse(argc, argv, import_usage, &o, &first);
	if (status >= 0)
		goto out;
	status = 2;
	if (!!o.volume == !!o.out || o.file || first != argc - 1) {
		tfs_error("usage: tierfs key import (--volume DIR | --out PATH) FILE; see "
			  "'tierfs key import --help'");
		goto out;
	}
	status = 1;
	src = argv[first];
	srcname = strcmp(src, "-") ? src : "<stdin>";
	dest = o.volume ? o.path : o.out;
	if (o.volume && access(o.volume, W_OK | X_OK)) {
		tfs_error("cannot open volume '%s': %s", o.volume, strerror(errno));
		goto out;
	}
	if (key_read_small_file(src, &b)) {
		tfs_error("cannot read key file '%s': %s", srcname, keys_errmsg());
		goto out;
	}
	if ((rc = key_file_parse(b.data, b.len, o.pass, &k))) {
		key_load_error(srcname, rc);
		goto out;
	}
	if ((rc = key_file_write(dest, &k, o.plain ? NULL : o.pass))) {
		key_write_error(dest, rc);
		goto out;
	}
	fprintf(stderr, "tierfs: imported key %s into '%s' (%s)\n", k.id, dest,
		o.pass && !o.plain ? "wrapped with the passphrase" : "in the clear");
	status = 0;
out:
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	tbuf_release(&b);
	volkey_release(&k);
	key_opts_release(&o);
	return status;
}

static int key_show(int argc, char **argv)
{
	struct key_opts o = { 0 };
	struct key_file_info info;
	struct volkey k = { 0 };
	const char *path;
	int first, rc, status;

	status = key_parse(argc, argv, show_usage, &o, &first);
	if (status >= 0)
		goto out;
	status = 2;
	if (!!o.volume == !!o.file || o.out || first != argc) {
		tfs_error("usage: tierfs key show (--volume DIR | --file PATH); see "
			  "'tierfs key show --help'");
		goto out;
	}
	status = 1;
	path = o.volume ? o.path : o.file;
	if ((rc = key_file_info(path, &info))) {
		key_load_error(path, rc);
		goto out;
	}
	/* A clear key is always checked; a wrapped one when we can unlock it. */
	if (!info.wrapped || o.pass) {
		if ((rc = key_file_load(path, o.pass, &k))) {
			key_load_error(path, rc);
			goto out;
		}
	}
	printf("key file:   %s\n", path);
	printf("key id:     %s\n", info.id);
	if (info.wrapped)
		printf("protection: passphrase (scrypt N=%llu r=%u p=%u, AES-256-GCM)\n",
		       (unsigned long long)info.scrypt_n, info.scrypt_r, info.scrypt_p);
	else
		printf("protection: none (clear key, protected by file permissions only)\n");
	printf("checked:    %s\n", !info.wrapped ? "yes, the key matches its id"
				  : o.pass ? "yes, the passphrase unlocks it"
				  : "no (give a passphrase to check it unlocks)");
	status = 0;
out:
	volkey_release(&k);
	key_opts_release(&o);
	return status;
}

int cmd_key(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} subs[] = {
		{ "export", key_export },
		{ "import", key_import },
		{ "show", key_show },
	};

	if (argc < 2) {
		fputs(key_usage, stderr);
		return 2;
	}
	if (cli_is_help(argv[1])) {
		fputs(key_usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].fn(argc - 1, argv + 1);
	tfs_error("'%s' is not a key subcommand; see 'tierfs key --help'", argv[1]);
	return 2;
}
