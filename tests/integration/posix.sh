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

# Three times: with the defaults (FUSE passthrough where the kernel offers
# it: the kernel reads and writes the data files), with -o no_passthrough
# (the daemon serves every read and write, with write-back caching), and over
# io_uring (the fuse module's enable_uring turned on for the run, where the
# kernel has it: every request but FORGET and INTERRUPT comes through the
# per-CPU rings, which must have answered at least 10,000).
for opts in "" no_passthrough uring; do
	rm -rf "$T/vol"
	timeout 60 "$TIERFS" format "$T/vol" || fail "tierfs format exited $?"
	mode=${opts:-defaults}
	if [ "$opts" = uring ]; then
		tfs_uring_on || { note "posix (uring): skipped, this kernel has no FUSE over io_uring to turn on"; continue; }
	fi
	tfs_mount "$T/vol" "$T/mnt" ${opts:+-o "$opts"}
	if [ -z "$opts" ] && grep -q "passthrough:" "$T/vol/tierfs.log"; then mode="defaults, passthrough"; fi
	if [ "$opts" = uring ]; then
		# the rings start once the kernel has the INIT reply, after the mount
		for _ in $(seq 100); do grep -q "FUSE over io_uring: [0-9]* queues" "$T/vol/tierfs.log" && break; sleep 0.1; done
		grep -q "FUSE over io_uring: [0-9]* queues" "$T/vol/tierfs.log" ||
			fail "uring: the mount did not start its rings: $(tail -n 3 "$T/vol/tierfs.log")"
	fi
	rc=0
	POSIX_TEST_XATTR_MIN=${POSIX_TEST_XATTR_MIN:-65536} "$POSIX_TEST" "$T/mnt" "$@" || rc=$?
	tfs_umount "$T/mnt"
	if [ "$opts" = uring ]; then
		tfs_uring_off
		served=$(sed -n 's/.*FUSE over io_uring: \([0-9]*\) requests served.*/\1/p' "$T/vol/tierfs.log" | tail -n 1)
		[ "${served:-0}" -ge 10000 ] || fail "uring: the rings answered ${served:-no} requests"
		mode="uring, $served requests through the rings"
	fi
	frc=0
	timeout 300 "$TIERFS" fsck "$T/vol" || frc=$?
	[ "$frc" -eq 0 ] || fail "tierfs fsck after posix_test ($mode) exited $frc (0 = clean)"
	[ "$rc" -eq 0 ] || fail "posix_test failed ($mode, exit $rc)"
	note "posix ($mode): all cases passed, volume clean"
done
