#!/bin/bash
# posix.sh - the POSIX behaviour of a home mount: formats a volume, mounts it,
# runs every case of tests/posix_test against the mount point (as root, so the
# ownership and permission cases drop to uid 65534 in children), unmounts, and
# requires "tierfs fsck" to find the volume clean (exit 0). Extra arguments
# are passed to posix_test as case names.
. "$(dirname "$0")/lib.sh"
tfs_setup

POSIX_TEST=$TIERFS_BIN_DIR/tests/posix_test
[ -x "$POSIX_TEST" ] || fail "'$POSIX_TEST' not built (target posix_test)"

timeout 60 "$TIERFS" format "$T/vol" || fail "tierfs format exited $?"
tfs_mount "$T/vol" "$T/mnt"

# The pool of empty data files (datapool.h): it fills up, a create takes a
# file from it (no refill above half), and unmount leaves none behind.
pool_count() { find "$T/vol/data/pool" -mindepth 1 2>/dev/null | wc -l; }
for _ in $(seq 100); do [ "$(pool_count)" -ge 256 ] && break; sleep 0.1; done
[ "$(pool_count)" = 256 ] || fail "data/pool holds $(pool_count) files after mount, expected 256"
mkdir "$T/mnt/pooled"
for k in $(seq 10); do echo "pooled $k" >"$T/mnt/pooled/f$k"; done
[ "$(pool_count)" = 246 ] || fail "data/pool holds $(pool_count) files after 10 creates, expected 246"
for k in $(seq 10); do
	[ "$(cat "$T/mnt/pooled/f$k")" = "pooled $k" ] || fail "pooled/f$k reads back wrong"
done
rm -r "$T/mnt/pooled"
note "data pool: filled to 256, 10 creates took 10 files"
rc=0
POSIX_TEST_XATTR_MIN=${POSIX_TEST_XATTR_MIN:-65536} "$POSIX_TEST" "$T/mnt" "$@" || rc=$?
tfs_umount "$T/mnt"
[ "$(pool_count)" = 0 ] || fail "data/pool holds $(pool_count) files after umount"
frc=0
timeout 300 "$TIERFS" fsck "$T/vol" || frc=$?
[ "$frc" -eq 0 ] || fail "tierfs fsck after posix_test exited $frc (0 = clean)"
[ "$rc" -eq 0 ] || fail "posix_test failed (exit $rc)"
note "posix: all cases passed, volume clean"
