#!/bin/bash
# import_s3.sh - home imports what cloud nodes write (issue 14, home side)
# on S3 (s3rver on loopback): the scenario of import.sh, in import_lib.sh.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
. "$TIERFS_SRC/tests/integration/import_lib.sh"

sync_s3_start
note "s3rver on 127.0.0.1:$S3_PORT"
IMP_URL=s3://tbucket/imp
imp_run
tfs_finish
note "import (s3): files, rules, tampering, revocation, conflicts, quota, crashes"
