/*
 * audit.h - the egress audit log: what left the premises, when, which file,
 * under which rule, how many bytes, which objects.
 *
 * Kept in the metadata store (tables egress and egress_obj,
 * docs/on-disk-format.md): one record per upload of a file version (the
 * sync engine, in the transaction that registers the objects it put) and
 * one per publish (the publisher, in the transaction that records the
 * snapshot). A record lists every object key it wrote. Records older than
 * the keep period (config audit_keep, seconds, default 90 days) are pruned,
 * except while an object they list is still in the store's books, so every
 * object home keeps in the store stays accounted for (`tierfs audit
 * verify`).
 */
#ifndef TIERFS_AUDIT_H
#define TIERFS_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "meta.h"

#define AUDIT_KEEP_DEFAULT (90 * 86400) /* seconds */

/*
 * Note objects that left, inside the caller's transaction. *rec_io 0 makes
 * a new record (and sets *rec_io); otherwise the objects and bytes are
 * added to record *rec_io, so a file uploaded in several batches is one
 * record. kind: "upload" or "publish". ino (uploads): the file, whose
 * path, rule and placement are recorded; 0 with path for other kinds.
 * 0 or a negative errno.
 */
int audit_note(struct meta *m, int64_t *rec_io, const char *kind, uint64_t ino, const char *path,
	       uint64_t bytes, const char *const *keys, size_t nkeys);

/* The keep period in seconds (config audit_keep, else the default). */
int64_t audit_keep(struct meta *m);

/*
 * Drop records older than the keep period (now: ns since the epoch) none
 * of whose objects is still live (audit_live_sql). Inside a transaction.
 * Returns the number of records dropped or a negative errno.
 */
int audit_prune(struct meta *m, int64_t now);

/*
 * An SQL expression true when the object key in column `k` is one the
 * metadata says home keeps in the store: a chunk of the object table not
 * being deleted by gc, a stored directory object or manifest, a retained
 * snapshot, head once a snapshot exists.
 */
#define AUDIT_LIVE_SQL(k)                                                                          \
	"((" k " LIKE 'chunks/%' AND EXISTS(SELECT 1 FROM object WHERE name=substr(" k ", 11) AND doomed=0))" \
	" OR EXISTS(SELECT 1 FROM pubobj WHERE key=" k " AND stored=1)"                             \
	" OR (" k " LIKE 'snaps/%' AND EXISTS(SELECT 1 FROM snapshot WHERE printf('snaps/%016x', seq)=" k "))" \
	" OR (" k "='head' AND EXISTS(SELECT 1 FROM snapshot)))"

#endif
