/*
 * snapshot.h - the published namespace: object formats shared by the home
 * mount (publisher, publish.c) and the cloud mount (cloud.c).
 *
 * What a cloud node sees of a volume is a chain of immutable snapshots of
 * its exported part, stored as sealed objects (codec_seal/codec_open with
 * the volume key's metadata key; the associated data is the object's key,
 * so an object moved to another key fails to open):
 *
 *   head                      the newest snapshot's sequence number (the
 *                             only object ever overwritten; written last)
 *   snaps/SEQ                 a snapshot: its sequence, time, the volume id
 *                             and the name of the root directory object;
 *                             SEQ is 16 hex digits
 *   dirs/XX/NAME              a directory listing (exported entries only,
 *                             sorted by name); NAME = HMAC(naming key,
 *                             plaintext): unchanged directories are shared
 *                             between snapshots, so a publish costs what
 *                             changed
 *   files/XX/NAME             a file manifest: its chunks (object names and
 *                             lengths); NAME = manifest_name(fid, mtime,
 *                             size), so a cloud node can find it for a file
 *                             version without listing
 *   requests/RANDOM           a cloud node asking home to upload one file
 *                             version (on-demand placement)
 *   chunks/XX/NAME            file data (codec.c chunk objects)
 *
 * All integers are little endian. Names inside objects are raw bytes.
 */
#ifndef TIERFS_SNAPSHOT_H
#define TIERFS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "keys.h"
#include "util.h"

enum snap_type { SNAP_FILE = 1, SNAP_DIR = 2, SNAP_SYMLINK = 3 };

/* One entry of a directory object. */
struct snap_entry {
	uint8_t type;      /* enum snap_type */
	uint8_t has_data;  /* files: the manifest exists (else ask home) */
	uint64_t fid;      /* snap_fid() of the home inode: stable across snapshots */
	uint32_t mode;     /* permission bits and type, as st_mode */
	uint32_t uid, gid;
	uint64_t size;     /* files: bytes; symlinks: target length */
	int64_t mtime;     /* ns since the epoch */
	int64_t ctime;
	char *name;        /* NUL terminated (names never contain NUL) */
	char *ref;         /* dir: its object name (64 hex); symlink: target; file: "" */
};

struct snap_dir {
	struct snap_entry *e; /* sorted by name (strcmp) */
	size_t n;
};

struct snap_chunk {
	char name[CODEC_NAME_SIZE];
	uint32_t len;
};

struct snap_manifest {
	uint64_t fid, size;
	int64_t mtime;
	uint32_t chunk_size;
	struct snap_chunk *c;
	size_t n;
};

struct snap_root {
	uint64_t seq;
	int64_t created;      /* ns */
	char volume_id[33];
	char root[CODEC_NAME_SIZE]; /* root directory object name */
	uint32_t root_mode, root_uid, root_gid;
	int64_t root_mtime;
	/* Name of the cloud-write rules object ("" when cloud nodes may write
	 * nowhere): rules/XX/NAME, see struct snap_wrules. Version 2 roots only. */
	char wrules[CODEC_NAME_SIZE];
};

/*
 * Where cloud nodes with a node key may write: the path globs of the
 * exporting rules marked --cloud-write, in rule order (policy.h globs).
 * The node refuses writes elsewhere with EROFS; home re-checks every
 * change against all its rules when it imports, so this is a hint to the
 * node, never trusted. Object rules/XX/NAME, NAME = HMAC of the plaintext
 * (like directories), plaintext TFR1: u32 n, n x (u16 + bytes glob).
 */
struct snap_wrules {
	char **glob;
	size_t n;
};

struct snap_request {
	uint64_t fid, size;
	int64_t mtime;
};

/* Object keys. out must hold SNAP_KEY_MAX bytes. */
#define SNAP_KEY_MAX 96
void snap_key_head(char *out);
void snap_key_snapshot(uint64_t seq, char *out);
void snap_key_dir(const char *name, char *out);
void snap_key_manifest(const char *name, char *out);
void snap_key_chunk(const char *name, char *out);
void snap_key_wrules(const char *name, char *out);

/*
 * The file id a snapshot shows for a home inode: cloud mounts use it as
 * st_ino, so it must reveal nothing of home's inode numbers (how many
 * files, private ones included, were made between two exported ones).
 * fid = the first 16 hex digits of HMAC-SHA256(naming key, "fid:INO")
 * (attempt 0) or "fid:INO:ATTEMPT" (attempt > 0), read as a big-endian
 * number and shifted right by two (62 bits: a cloud node numbers the files
 * it makes itself from 2^62); INO and ATTEMPT in decimal.
 * Values 0 and 1 are never used (1 is the FUSE root): like a value
 * already taken by another inode of the volume, the publisher then tries
 * the next attempt, and keeps the inode's choice in its pubfid table
 * (publish_fid(), publish_fid_ino()), which is the authority on home.
 */
int snap_fid(const struct volkey *k, uint64_t ino, uint32_t attempt, uint64_t *fid_out);

/* Name of the manifest of one file version (hex, CODEC_NAME_SIZE). */
int snap_manifest_name(const struct volkey *k, uint64_t fid, int64_t mtime, uint64_t size,
		       char out[CODEC_NAME_SIZE]);

/*
 * Encoding: the plaintext of each object kind, then seal it for its key.
 * snap_dir_encode also names the directory (HMAC of the plaintext).
 * The decoders verify and parse; -EBADMSG for damage, tampering or a wrong
 * key (with a message from codec_errmsg() or a parse error), -ENOMEM.
 * Decoded structures own their strings: release with the _release calls.
 */
int snap_dir_encode(const struct volkey *k, const struct snap_dir *d, char name_out[CODEC_NAME_SIZE],
		    struct tbuf *sealed_out);
int snap_dir_decode(const struct volkey *k, const char *name, const void *obj, size_t len,
		    struct snap_dir *out);
void snap_dir_release(struct snap_dir *d);
/* Binary search by name; NULL if absent. */
const struct snap_entry *snap_dir_find(const struct snap_dir *d, const char *name);
/* Sort entries by name (the encoder requires sorted input). */
void snap_dir_sort(struct snap_dir *d);

int snap_manifest_encode(const struct volkey *k, const struct snap_manifest *m, struct tbuf *sealed_out);
int snap_manifest_decode(const struct volkey *k, const char *name, const void *obj, size_t len,
			 struct snap_manifest *out);
void snap_manifest_release(struct snap_manifest *m);

int snap_root_encode(const struct volkey *k, const struct snap_root *r, struct tbuf *sealed_out);
int snap_root_decode(const struct volkey *k, uint64_t seq, const void *obj, size_t len,
		     struct snap_root *out);

/* Encode (and name) / decode a cloud-write rules object. */
int snap_wrules_encode(const struct volkey *k, const struct snap_wrules *w, char name_out[CODEC_NAME_SIZE],
		       struct tbuf *sealed_out);
int snap_wrules_decode(const struct volkey *k, const char *name, const void *obj, size_t len,
		       struct snap_wrules *out);
void snap_wrules_release(struct snap_wrules *w);

int snap_head_encode(const struct volkey *k, uint64_t seq, struct tbuf *sealed_out);
int snap_head_decode(const struct volkey *k, const void *obj, size_t len, uint64_t *seq_out);

int snap_request_encode(const struct volkey *k, const char *key, const struct snap_request *r,
			struct tbuf *sealed_out);
int snap_request_decode(const struct volkey *k, const char *key, const void *obj, size_t len,
			struct snap_request *out);

#endif
