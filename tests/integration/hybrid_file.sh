#!/bin/bash
# hybrid_file.sh - end to end on a file:// store: one home mount (mirror,
# on-demand and private rules, a file pinned private) and three cloud mounts
# of its store at once. The cloud mounts show exactly the exported tree,
# byte-exact (20 MiB, sparse, empty, symlink, nested), read-only; on-demand
# reads ask home and complete; home's changes (modify, add, delete, rename,
# move into the private tree) reach every cloud mount within seconds while
# open files keep their version; a store outage leaves cached data readable
# and uncached data EIO, and reads resume after it; finally no name and no
# plaintext of any test file appears in any object of the store.
# The scenario is in hybrid_lib.sh.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
. "$TIERFS_SRC/tests/integration/cloud_lib.sh"
. "$TIERFS_SRC/tests/integration/hybrid_lib.sh"

HYB_STORE_DIR=$T/store
HYB_URL="file://$HYB_STORE_DIR"
mkdir -p "$HYB_STORE_DIR"

# The file store keeps its directory open: an outage empties it instead.
hyb_outage_start()
{
	mkdir -p "$T/away"
	mv "$HYB_STORE_DIR"/* "$T/away/" || fail "cannot empty the store"
}
hyb_outage_end()
{
	cp -a -n "$T/away/." "$HYB_STORE_DIR/" || fail "cannot restore the store"
	rm -rf "$T/away"
}

hyb_run
tfs_finish
