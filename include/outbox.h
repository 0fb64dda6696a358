/*
 * outbox.h - write-back from cloud nodes: node keys, change sets and their
 * acknowledgements (formats in docs/formats-objects.md, "Outboxes").
 *
 * A cloud node that holds a node key (tierfs node add) may write where the
 * published snapshot says cloud writes are allowed. It stages what its jobs
 * write on its own disk, uploads file contents as chunk objects sealed with
 * its own key, then one sealed commit object per change set:
 *
 *   outbox/DIR/chunks/SEQ/NAME file data of change set SEQ, codec.c chunk
 *                              objects made with the node's key (so no other
 *                              node can make them); NAME = HMAC(node naming
 *                              key, plaintext). Per change set, so home can
 *                              delete a set's chunks by listing its prefix
 *                              once applied (a node that died mid-upload
 *                              reuses its unfinished SEQ, so its leftovers are
 *                              swept with the next set)
 *   outbox/DIR/cs/SEQ          a change set (SEQ: 16 hex digits, from 1,
 *                              strictly increasing per node key), sealed
 *                              with the node's metadata key, AAD = the key
 *   outbox/DIR/acks/SEQ        home's answer to change set SEQ, sealed the
 *                              same way; the node deletes it once read
 *
 * DIR = outbox_dir(): 32 hex digits of HMAC(volume naming key, "outbox:"
 * NAME ":" SERIAL), so object names reveal no node name. Home only reads
 * the outboxes and writes acks (outbound only); it applies a change set
 * after checking it against its own rules, then writes the ack, then
 * deletes the commit and its chunks.
 *
 * Errors are negative errnos; decoders return -EBADMSG for anything
 * malformed, tampered or sealed with another key, with a message from
 * outbox_errmsg() (thread local).
 */
#ifndef TIERFS_OUTBOX_H
#define TIERFS_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "keys.h"
#include "util.h"

#define NODE_NAME_MAX 64      /* [A-Za-z0-9._-]{1,64}, not starting with '-' */
#define OUTBOX_DIR_SIZE 33    /* 32 hex + NUL */
#define OUTBOX_KEY_MAX 160
#define OUTBOX_PATH_MAX 4096  /* bytes of a path in a change */
#define OUTBOX_MAX_CHANGES 100000 /* per change set */

/*
 * A node key: what a node needs to read the exports (the volume key) and to
 * write as itself (a random secret of its own, known to home). Immutable
 * once made; release with node_key_release(), which wipes it.
 */
struct node_key {
	char name[NODE_NAME_MAX + 1];
	uint32_t serial;             /* home's number for this key of the name */
	struct volkey vol;           /* the volume key (read-only use on the node) */
	uint8_t secret[VOLKEY_LEN];  /* the node's own secret */
	struct volkey node;          /* volkey_from_master(secret): enc, name, meta */
	char dir[OUTBOX_DIR_SIZE];   /* outbox_dir(vol, name, serial) */
};

/* Check a node name: [A-Za-z0-9._-]{1,64}, no leading '-'. 0 or -EINVAL (message in err). */
int node_name_ok(const char *name, char *err, size_t errlen);
/* The outbox directory of a node key (see above). */
int outbox_dir(const struct volkey *vol, const char *name, uint32_t serial, char out[OUTBOX_DIR_SIZE]);
/* Fill *out from its parts (derives node and dir). 0, -EINVAL, -EIO. */
int node_key_make(const struct volkey *vol, const char *name, uint32_t serial,
		  const uint8_t secret[VOLKEY_LEN], struct node_key *out);
void node_key_release(struct node_key *k);

/*
 * Node key file: text, mode 0600, fields in this order:
 *   tierfs-node-key v1
 *   node=NAME
 *   serial=N
 *   id=<volume key id, 16 hex>
 *   key=<64 hex: the volume master key>
 *   secret=<64 hex: the node secret>
 * node_key_file_parse() checks every field and the volume key against its id.
 * node_key_file_write() writes like key_file_write(): temporary file,
 * fsync, no-replace rename; -EEXIST if path exists ("-" writes stdout).
 * outbox_is_node_key_file() tells a node key file from a volume key file
 * by its first line (1 yes, 0 no, or a read error).
 */
int node_key_file_format(const struct node_key *k, struct tbuf *out);
int node_key_file_parse(const void *data, size_t len, struct node_key *out);
int node_key_file_write(const char *path, const struct node_key *k);
int node_key_file_load(const char *path, struct node_key *out);
int outbox_is_node_key_file(const char *path);

/* Store keys under the node's outbox; out holds OUTBOX_KEY_MAX bytes. */
void outbox_key_prefix(const char *dir, char *out);            /* "outbox/DIR/" */
void outbox_key_cs(const char *dir, uint64_t seq, char *out);  /* "outbox/DIR/cs/SEQ" */
void outbox_key_ack(const char *dir, uint64_t seq, char *out); /* "outbox/DIR/acks/SEQ" */
void outbox_key_chunks(const char *dir, uint64_t seq, char *out); /* "outbox/DIR/chunks/SEQ/" */
void outbox_key_chunk(const char *dir, uint64_t seq, const char *name, char *out); /* ".../chunks/SEQ/NAME" */
/* Parse the SEQ out of a cs/ or acks/ key (or its last component). 0 or -EINVAL. */
int outbox_key_seq(const char *key, uint64_t *seq_out);

/* ---- change sets ---- */

enum outbox_op {
	OUTBOX_FILE = 1,    /* the file at path now has this content and mode */
	OUTBOX_DIR = 2,     /* a directory exists at path (mode) */
	OUTBOX_SYMLINK = 3, /* a symlink with this target */
	OUTBOX_DELETE = 4,  /* nothing at path any more (a file, link or empty directory) */
	OUTBOX_ATTR = 5,    /* only mode and/or mtime of the existing entry changed */
};

/* What the node's change was based on, for conflict detection at home. */
enum outbox_base {
	OUTBOX_BASE_NONE = 0, /* the path did not exist as far as the node knew */
	OUTBOX_BASE_HOME = 1, /* the snapshot's version: fid, mtime, size */
	OUTBOX_BASE_OWN = 2,  /* the node's own earlier change: seq, idx */
};

struct outbox_chunk {
	char name[CODEC_NAME_SIZE];
	uint32_t len;
};

struct outbox_change {
	uint8_t op;          /* enum outbox_op */
	char *path;          /* absolute within the volume, "/a/b"; no ".", "..", "//", NUL */
	uint32_t mode;       /* permission bits (07777 masked by the importer) */
	int64_t mtime;       /* ns (the node's clock: shown, never used to order) */
	uint8_t base;        /* enum outbox_base */
	uint64_t base_fid;   /* HOME: fid; OWN: seq */
	int64_t base_mtime;  /* HOME */
	uint64_t base_size;  /* HOME; OWN: idx */
	uint64_t size;       /* FILE: bytes (sum of chunk lengths) */
	struct outbox_chunk *c; /* FILE: chunks in order, each 1..SYNC_CHUNK_SIZE bytes */
	size_t n;
	char *target;        /* SYMLINK */
};

struct outbox_cs {
	char node[NODE_NAME_MAX + 1];
	uint32_t serial;
	uint64_t seq;
	int64_t created;     /* ns, node's clock (informational) */
	struct outbox_change *ch;
	size_t n;
};

/* Seal a change set for outbox_key_cs(k->dir, cs->seq) with the node key. */
int outbox_cs_encode(const struct node_key *k, const struct outbox_cs *cs, struct tbuf *sealed_out);
/*
 * Open and parse a commit object read from key, with the node's key as home
 * holds it: also checks that the node name, serial and seq inside match
 * the key and k, that every path is well formed (absolute, no "." or ".."
 * component, no empty component, no NUL, at most OUTBOX_PATH_MAX) and
 * that chunk lengths add up. Release with outbox_cs_release().
 */
int outbox_cs_decode(const struct node_key *k, const char *key, const void *obj, size_t len,
		     struct outbox_cs *out);
void outbox_cs_release(struct outbox_cs *cs);
/* Is path a well-formed absolute volume path (as above)? 1 or 0. */
int outbox_path_ok(const char *path);

/* ---- acknowledgements ---- */

enum outbox_state {
	OUTBOX_PENDING = 0,  /* node only: not uploaded yet */
	OUTBOX_UPLOADED = 1, /* node only: in the store, no ack yet */
	OUTBOX_IMPORTED = 2, /* applied at home */
	OUTBOX_CONFLICT = 3, /* home's version kept under the name, this one as a conflict copy */
	OUTBOX_REJECTED = 4, /* refused by home's rules (detail says why) */
	OUTBOX_KEPT = 5,     /* kept aside at home, not applied (revoked node, conflict cap) */
};
/* "pending", "uploaded", "imported", "conflict", "rejected", "kept"; "?" otherwise. */
const char *outbox_state_name(int state);
/*
 * The reason home gives when a change's chunks are not in the outbox (gone
 * after a long stall of the node): the node sends that version again
 * instead of keeping it as refused.
 */
#define OUTBOX_REASON_MISSING "a chunk is missing from the outbox"

struct outbox_result {
	uint8_t state;       /* enum outbox_state, IMPORTED..KEPT */
	uint64_t fid;        /* home's resulting version (IMPORTED, CONFLICT: of the copy) */
	int64_t mtime;
	uint64_t size;
	char *detail;        /* conflict copy path, or the reason; may be "" */
};

struct outbox_ack {
	uint64_t seq;        /* the change set answered */
	int64_t when;        /* ns, home's clock */
	uint64_t snap_seq;   /* the first snapshot that can show the import */
	struct outbox_result *r; /* one per change, in the change set's order */
	size_t n;
};

int outbox_ack_encode(const struct node_key *k, const struct outbox_ack *a, struct tbuf *sealed_out);
int outbox_ack_decode(const struct node_key *k, const char *key, const void *obj, size_t len,
		      struct outbox_ack *out);
void outbox_ack_release(struct outbox_ack *a);

const char *outbox_errmsg(void);

#endif
