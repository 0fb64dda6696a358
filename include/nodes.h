/*
 * nodes.h - the cloud nodes of a volume that may write back (tierfs node):
 * the `node` table of the metadata store (docs/on-disk-format.md). Each
 * node has a random secret of its own, kept sealed with the volume's
 * metadata key (AAD "node/NAME/SERIAL"); `tierfs node add` hands it out in
 * a node key file (outbox.h). Re-adding a revoked name makes a new serial
 * and a new secret, so the old key file stays revoked.
 *
 * All functions run on the caller's connection; the caller serialises use
 * of m (the mount's lock, or a CLI's own connection). Errors are negative
 * errnos with a one-line message in err where there is one.
 */
#ifndef TIERFS_NODES_H
#define TIERFS_NODES_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "meta.h"
#include "outbox.h"

struct node_info {
	char name[NODE_NAME_MAX + 1];
	uint32_t serial;
	int64_t created;          /* ns */
	int64_t revoked;          /* ns, 0: not revoked */
	uint64_t quota;           /* bytes a change set may import, 0: no limit */
	uint64_t last_seq;        /* last change set home applied */
	int64_t last_import;      /* ns, 0: never */
	uint64_t files, bytes;    /* imported so far */
	uint64_t rejected, conflicts;
	uint64_t pending;         /* change sets seen in the outbox, not applied */
	char last_error[256];
};

/*
 * Add a node: a new serial (one more than any earlier key of that name), a
 * random secret, its row; *out gets the key to hand out. -EEXIST when a
 * node of that name is active (not revoked), -EINVAL for a bad name.
 */
int nodes_add(struct meta *m, const struct volkey *vol, const char *name, uint64_t quota,
	      struct node_key *out, char *err, size_t errlen);
/* Revoke the active key of name: home no longer applies its outbox. -ENOENT. */
int nodes_revoke(struct meta *m, const char *name, char *err, size_t errlen);
/* Every node, by name; *out is malloc'd (free it). */
int nodes_list(struct meta *m, struct node_info **out, size_t *n_out);
/* The key of name as home holds it (revoked ones too, to read what they left). -ENOENT. */
int nodes_key(struct meta *m, const struct volkey *vol, const char *name, struct node_key *out);

#endif
