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

# Twice: with the defaults (FUSE passthrough where the kernel offers it: the
# kernel reads and writes the data files), and with -o no_passthrough (the
# daemon serves every read and write, with write-back caching).
for opts in "" no_passthrough; do
	rm -rf "$T/vol"
	timeout 60 "$TIERFS" format "$T/vol" || fail "tierfs format exited $?"
	tfs_mount "$T/vol" "$T/mnt" ${opts:+-o "$opts"}
	mode=${opts:-defaults}
	if [ -z "$opts" ] && grep -q "passthrough:" "$T/vol/tierfs.log"; then mode="defaults, passthrough"; fi
	rc=0
	POSIX_TEST_XATTR_MIN=${POSIX_TEST_XATTR_MIN:-65536} "$POSIX_TEST" "$T/mnt" "$@" || rc=$?
	tfs_umount "$T/mnt"
	frc=0
	timeout 300 "$TIERFS" fsck "$T/vol" || frc=$?
	[ "$frc" -eq 0 ] || fail "tierfs fsck after posix_test ($mode) exited $frc (0 = clean)"
	[ "$rc" -eq 0 ] || fail "posix_test failed ($mode, exit $rc)"
	note "posix ($mode): all cases passed, volume clean"
done
