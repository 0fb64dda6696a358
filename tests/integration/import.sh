#!/bin/bash
# import.sh - home imports what cloud nodes write (issue 14, home side) on a
# file:// store: the scenario is in import_lib.sh.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
. "$TIERFS_SRC/tests/integration/import_lib.sh"

IMP_URL="file://$T/store"
mkdir -p "$T/store"
imp_run
tfs_finish
note "import (file://): files, rules, tampering, revocation, conflicts, quota, crashes"
