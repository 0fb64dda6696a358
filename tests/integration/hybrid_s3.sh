#!/bin/bash
# hybrid_s3.sh - the end-to-end hybrid scenario of hybrid_file.sh on S3
# (s3rver on loopback): one home mount with --store s3://, three cloud
# mounts, on-demand requests, updates, a file moved private, an outage
# (s3rver killed with -9, restarted on the same port with the same data),
# and the audit of every object body in s3rver's data directory.
# The scenario is in hybrid_lib.sh.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
. "$TIERFS_SRC/tests/integration/cloud_lib.sh"
. "$TIERFS_SRC/tests/integration/hybrid_lib.sh"

sync_s3_start
note "s3rver on 127.0.0.1:$S3_PORT"
HYB_URL=s3://tbucket/hyb
HYB_STORE_DIR=$T/s3data

hyb_outage_start() { sync_s3_stop; }
hyb_outage_end() { sync_s3_start "$S3_PORT"; }

hyb_run
tfs_finish
