#!/bin/bash
# writeback_s3.sh - cloud jobs writing results home end to end on S3
# (s3rver on loopback): the scenario of writeback_lib.sh, with 2,000 small
# files and a 128 MiB file from one node (s3rver is one single-threaded node
# process shared by four mounts; the file:// run carries the full sizes).
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
. "$TIERFS_SRC/tests/integration/cloud_lib.sh"
. "$TIERFS_SRC/tests/integration/writeback_lib.sh"

sync_s3_start
note "s3rver on 127.0.0.1:$S3_PORT"
WBE_URL=s3://tbucket/wb
WBE_STORE_DIR=$T/s3data
WBE_SMALL=${WBE_SMALL:-2000}
WBE_BIG_MB=${WBE_BIG_MB:-128}
wbe_run
tfs_finish
