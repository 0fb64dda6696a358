/* datapool: empty data files made ahead of time, so that creating a file
 * in the home mount does not wait for the local file system to allocate an
 * inode (as Lustre's MDS precreates OST objects).
 *
 * A filler thread keeps up to `target` empty files open under
 * VOLUME/data/pool/ and refills when fewer than half are left. A CREATE
 * takes one and renames it to the new inode's data file name: a directory
 * entry change, no inode allocation. When the pool is empty, the caller
 * creates the data file itself, as without a pool.
 *
 * Pool files never hold data (a file is written only after it is renamed
 * out), so the pool needs no crash recovery: datapool_start() removes
 * leftovers of a mount that died, datapool_stop() removes the rest at
 * unmount. fsck ignores data/pool/.
 */
#ifndef TIERFS_DATAPOOL_H
#define TIERFS_DATAPOOL_H

struct datapool;

/* Make data/pool below datafd, empty it, and start the filler. 0 or -errno;
 * *out is NULL with target 0 (no pool). */
int datapool_start(int datafd, unsigned target, struct datapool **out);

/* Move a pooled file to dname (relative to datafd) and return its open
 * read-write descriptor, owned by the caller; -EAGAIN when the pool is
 * empty (or p is NULL), another -errno if the rename failed. */
int datapool_take(struct datapool *p, const char *dname);

/* Stop the filler, close and remove the pooled files, free p (NULL: no-op). */
void datapool_stop(struct datapool *p);

#endif
