#!/bin/bash
# writeback_file.sh - cloud jobs writing results home end to end on a
# file:// store: a home mount and three cloud mounts with their own node keys
# (the scenario is in writeback_lib.sh), with 10,000 small files and a 1 GiB
# file from one node.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
. "$TIERFS_SRC/tests/integration/cloud_lib.sh"
. "$TIERFS_SRC/tests/integration/writeback_lib.sh"

WBE_URL="file://$T/store"
WBE_STORE_DIR=$T/store
WBE_SMALL=${WBE_SMALL:-10000}
WBE_BIG_MB=${WBE_BIG_MB:-1024}
mkdir -p "$T/store"
wbe_run
tfs_finish
