/*
 * outbox_writer.c - plays a cloud node for the importer's tests
 * (integration/import*.sh): writes change sets into a node's outbox with
 * the node key file `tierfs node add` issued, reads home's acks and the
 * snapshots' cloud-write rules, and tampers with objects.
 *
 * usage: outbox_writer KEYFILE URL CMD ARGS...
 *   write SEQ DESC          upload the chunks, then the commit of change set SEQ
 *   forge SEQ DESC FROM TO  the same, but the sealed commit says TO where the
 *                           description says FROM (same length): a node key
 *                           holder forging what its own encoder refuses ('..')
 *   ack SEQ                 print home's ack: "STATE<TAB>DETAIL" per change
 *   wrules                  print the globs of the newest snapshot's
 *                           cloud-write rules object, one per line
 *   key cs|ack|chunks SEQ   print the store key (chunks: the prefix)
 *   get KEY FILE | put KEY FILE | copy KEY KEY2 | flip KEY | truncate KEY | del KEY
 *   ls PREFIX               print the keys under PREFIX
 *
 * DESC has one change per line ('#' comments):
 *   file PATH MODE CONTENTFILE [base=B] [mtime=SECONDS]
 *   dir PATH MODE
 *   symlink PATH TARGET [base=B]
 *   delete PATH [base=B]
 *   attr PATH MODE [mtime=SECONDS] [base=B]
 * with B = none | home:FILE (that file's id, mtime and size, as a node
 * sees them in a snapshot; FILE is a path on the home mount) | own:SEQ:IDX.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "outbox.h"
#include "snapshot.h"
#include "store.h"
#include "util.h"

#define CHUNK (4u << 20) /* SYNC_CHUNK_SIZE */

static struct node_key k;
static struct store *st;

/* "outbox_writer: WHAT 'ARG': reason" */
static void die(const char *what, const char *arg, int rc)
{
	fprintf(stderr, "outbox_writer: %s '%s': %s\n", what, arg, rc < 0 ? strerror(-rc) : "failed");
	exit(1);
}

static void get(const char *key, struct tbuf *b)
{
	int rc = store_get(st, key, 0, STORE_WHOLE, b);

	if (rc)
		die("cannot get", key, rc);
}

static void put(const char *key, const void *data, size_t len)
{
	int rc = store_put(st, key, data, len);

	if (rc)
		die("cannot put", key, rc);
}

static void read_file(const char *path, struct tbuf *b)
{
	char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		die("cannot open", path, -errno);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (tbuf_append(b, buf, (size_t)n))
			die("cannot read", path, -ENOMEM);
	if (n < 0)
		die("cannot read", path, -errno);
	close(fd);
}

static void parse_base(const char *b, struct outbox_change *c)
{
	struct stat s;

	if (!strcmp(b, "none")) {
		c->base = OUTBOX_BASE_NONE;
	} else if (!strncmp(b, "home:", 5)) {
		if (lstat(b + 5, &s))
			die("cannot stat", b + 5, -errno);
		c->base = OUTBOX_BASE_HOME;
		if (snap_fid(&k.vol, s.st_ino, 0, &c->base_fid)) /* the id snapshots show */
			die("cannot make the file id of", b + 5, -EIO);
		c->base_mtime = (int64_t)s.st_mtim.tv_sec * 1000000000 + s.st_mtim.tv_nsec;
		c->base_size = (uint64_t)s.st_size;
	} else if (!strncmp(b, "own:", 4) &&
		   sscanf(b + 4, "%lu:%lu", (unsigned long *)&c->base_fid,
			  (unsigned long *)&c->base_size) == 2) {
		c->base = OUTBOX_BASE_OWN;
	} else {
		die("bad base", b, -EINVAL);
	}
}

/* Upload path's content as chunks of change set seq; fill c. */
static void upload(uint64_t seq, const char *path, struct outbox_change *c)
{
	struct tbuf data = TBUF_INIT, obj = TBUF_INIT;
	char key[OUTBOX_KEY_MAX];

	read_file(path, &data);
	c->size = data.len;
	c->n = (data.len + CHUNK - 1) / CHUNK;
	c->c = calloc(c->n ? c->n : 1, sizeof(*c->c));
	for (size_t i = 0; i < c->n; i++) {
		size_t off = i * CHUNK, len = data.len - off < CHUNK ? data.len - off : CHUNK;

		c->c[i].len = (uint32_t)len;
		if (codec_chunk_name(&k.node, data.data + off, len, c->c[i].name))
			die("cannot name a chunk of", path, -EIO);
		tbuf_reset(&obj);
		if (codec_encode(&k.node, data.data + off, len, c->c[i].name, CODEC_LEVEL_DEFAULT, &obj))
			die("cannot encode a chunk of", path, -EIO);
		outbox_key_chunk(k.dir, seq, c->c[i].name, key);
		put(key, obj.data, obj.len);
	}
	tbuf_release(&data);
	tbuf_release(&obj);
}

static void parse_desc(uint64_t seq, const char *desc, struct outbox_cs *cs)
{
	char line[8192];
	FILE *f = fopen(desc, "r");

	if (!f)
		die("cannot open", desc, -errno);
	while (fgets(line, sizeof(line), f)) {
		char *w[8], *save = NULL;
		int n = 0;
		struct outbox_change *c;

		for (char *t = strtok_r(line, " \t\n", &save); t && n < 8; t = strtok_r(NULL, " \t\n", &save))
			w[n++] = t;
		if (!n || w[0][0] == '#')
			continue;
		cs->ch = realloc(cs->ch, (cs->n + 1) * sizeof(*cs->ch));
		c = &cs->ch[cs->n++];
		memset(c, 0, sizeof(*c));
		c->mtime = (int64_t)time(NULL) * 1000000000;
		if (n < 2)
			die("bad line", w[0], -EINVAL);
		c->path = strdup(w[1]);
		if (!strcmp(w[0], "file") && n >= 4) {
			c->op = OUTBOX_FILE;
			c->mode = (uint32_t)strtoul(w[2], NULL, 8);
			upload(seq, w[3], c);
		} else if (!strcmp(w[0], "dir") && n >= 3) {
			c->op = OUTBOX_DIR;
			c->mode = (uint32_t)strtoul(w[2], NULL, 8);
		} else if (!strcmp(w[0], "symlink") && n >= 3) {
			c->op = OUTBOX_SYMLINK;
			c->target = strdup(w[2]);
			c->mode = 0777;
		} else if (!strcmp(w[0], "delete")) {
			c->op = OUTBOX_DELETE;
		} else if (!strcmp(w[0], "attr") && n >= 3) {
			c->op = OUTBOX_ATTR;
			c->mode = (uint32_t)strtoul(w[2], NULL, 8);
		} else {
			die("bad line", w[0], -EINVAL);
		}
		for (int i = 2; i < n; i++) {
			if (!strncmp(w[i], "base=", 5))
				parse_base(w[i] + 5, c);
			else if (!strncmp(w[i], "mtime=", 6))
				c->mtime = strtoll(w[i] + 6, NULL, 10) * 1000000000;
		}
	}
	fclose(f);
}

/* Replace every from with to (same length) in b. */
static void replace(struct tbuf *b, const char *from, const char *to)
{
	size_t l = strlen(from);

	if (strlen(to) != l)
		die("FROM and TO differ in length:", from, -EINVAL);
	for (size_t i = 0; i + l <= b->len; i++)
		if (!memcmp(b->data + i, from, l))
			memcpy(b->data + i, to, l);
}

static void write_cs(uint64_t seq, const char *desc, const char *from, const char *to)
{
	struct outbox_cs cs = { 0 };
	struct tbuf sealed = TBUF_INIT, plain = TBUF_INIT;
	char key[OUTBOX_KEY_MAX];

	snprintf(cs.node, sizeof(cs.node), "%s", k.name);
	cs.serial = k.serial;
	cs.seq = seq;
	cs.created = (int64_t)time(NULL) * 1000000000;
	parse_desc(seq, desc, &cs);
	if (outbox_cs_encode(&k, &cs, &sealed))
		die("cannot encode change set of", desc, -EINVAL);
	outbox_key_cs(k.dir, seq, key);
	if (from) {
		if (codec_open(&k.node, sealed.data, sealed.len, key, strlen(key), &plain))
			die("cannot reopen", key, -EIO);
		replace(&plain, from, to);
		tbuf_reset(&sealed);
		if (codec_seal(&k.node, plain.data, plain.len, key, strlen(key), CODEC_LEVEL_DEFAULT, &sealed))
			die("cannot reseal", key, -EIO);
	}
	put(key, sealed.data, sealed.len);
	printf("%s\n", key);
	tbuf_release(&sealed);
	tbuf_release(&plain);
	outbox_cs_release(&cs);
}

static int print_key(void *arg, const char *key, uint64_t size)
{
	(void)arg;
	(void)size;
	printf("%s\n", key);
	return 0;
}

int main(int argc, char **argv)
{
	struct tbuf b = TBUF_INIT;
	char key[OUTBOX_KEY_MAX], err[512];
	const char *cmd;
	struct store_opts so = { 0 };
	uint64_t seq = 0;
	int rc;

	if (argc < 4) {
		fprintf(stderr, "usage: outbox_writer KEYFILE URL CMD ARGS... (see the source)\n");
		return 2;
	}
	rc = node_key_file_load(argv[1], &k);
	if (rc)
		die("cannot load node key", argv[1], rc);
	if (store_open(argv[2], &so, &st, err, sizeof(err))) {
		fprintf(stderr, "outbox_writer: %s\n", err);
		return 1;
	}
	cmd = argv[3];
	if (argc > 4)
		seq = strtoull(argv[4], NULL, 10);
	if (!strcmp(cmd, "write") && argc == 6) {
		write_cs(seq, argv[5], NULL, NULL);
	} else if (!strcmp(cmd, "forge") && argc == 8) {
		write_cs(seq, argv[5], argv[6], argv[7]);
	} else if (!strcmp(cmd, "ack") && argc == 5) {
		struct outbox_ack a;

		outbox_key_ack(k.dir, seq, key);
		get(key, &b);
		if (outbox_ack_decode(&k, key, b.data, b.len, &a))
			die("cannot decode the ack", key, -EBADMSG);
		for (size_t i = 0; i < a.n; i++)
			printf("%s\t%s\n", outbox_state_name(a.r[i].state), a.r[i].detail);
		outbox_ack_release(&a);
	} else if (!strcmp(cmd, "wrules") && argc == 4) {
		struct snap_root r;
		struct snap_wrules w;
		uint64_t head;

		snap_key_head(key);
		get(key, &b);
		if (snap_head_decode(&k.vol, b.data, b.len, &head))
			die("cannot decode", key, -EBADMSG);
		snap_key_snapshot(head, key);
		tbuf_reset(&b);
		get(key, &b);
		if (snap_root_decode(&k.vol, head, b.data, b.len, &r))
			die("cannot decode", key, -EBADMSG);
		if (r.wrules[0]) {
			snap_key_wrules(r.wrules, key);
			tbuf_reset(&b);
			get(key, &b);
			if (snap_wrules_decode(&k.vol, r.wrules, b.data, b.len, &w))
				die("cannot decode", key, -EBADMSG);
			for (size_t i = 0; i < w.n; i++)
				printf("%s\n", w.glob[i]);
			snap_wrules_release(&w);
		}
	} else if (!strcmp(cmd, "key") && argc == 6) {
		seq = strtoull(argv[5], NULL, 10);
		if (!strcmp(argv[4], "cs"))
			outbox_key_cs(k.dir, seq, key);
		else if (!strcmp(argv[4], "ack"))
			outbox_key_ack(k.dir, seq, key);
		else
			outbox_key_chunks(k.dir, seq, key);
		printf("%s\n", key);
	} else if (!strcmp(cmd, "get") && argc == 6) {
		FILE *f = fopen(argv[5], "w");

		get(argv[4], &b);
		if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f))
			die("cannot write", argv[5], -EIO);
	} else if (!strcmp(cmd, "put") && argc == 6) {
		read_file(argv[5], &b);
		put(argv[4], b.data, b.len);
	} else if (!strcmp(cmd, "copy") && argc == 6) {
		get(argv[4], &b);
		put(argv[5], b.data, b.len);
	} else if ((!strcmp(cmd, "flip") || !strcmp(cmd, "truncate")) && argc == 5) {
		get(argv[4], &b);
		if (!strcmp(cmd, "flip"))
			b.data[b.len / 2] ^= 0x40;
		put(argv[4], b.data, !strcmp(cmd, "flip") ? b.len : b.len / 2);
	} else if (!strcmp(cmd, "del") && argc == 5) {
		rc = store_del(st, argv[4]);
		if (rc)
			die("cannot delete", argv[4], rc);
	} else if (!strcmp(cmd, "ls") && argc == 5) {
		rc = store_list(st, argv[4], print_key, NULL);
		if (rc < 0)
			die("cannot list", argv[4], rc);
	} else {
		fprintf(stderr, "outbox_writer: bad command '%s' or arguments\n", cmd);
		return 2;
	}
	tbuf_release(&b);
	store_close(st);
	node_key_release(&k);
	return 0;
}
