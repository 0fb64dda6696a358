#!/bin/bash
# uring_fallback.sh - FUSE over io_uring that cannot come up must not hang
# the mount (docs/architecture.md, "FUSE over io_uring"):
#  1. with the fuse module offering io_uring but io_uring itself forbidden
#     (kernel.io_uring_disabled=2, as seccomp or a hardened host would), a
#     home mount logs that it cannot make its rings and serves every request
#     over /dev/fuse: creates, writes, reads, renames, a listing, unmount;
#  2. with io_uring allowed again, the next mount's rings answer requests,
#     and keep answering after the fuse module's enable_uring is turned off
#     under the live mount (the connection is tied to its rings).
# Both settings are global: ctest runs this test apart from the others that
# turn on enable_uring (RESOURCE_LOCK fuse_uring), and the EXIT trap puts
# them back.
. "$(dirname "$0")/lib.sh"
tfs_setup

DISABLED=/proc/sys/kernel/io_uring_disabled
if ! tfs_uring_on || [ ! -w "$DISABLED" ]; then
	note "SKIP: this kernel has no FUSE over io_uring (or io_uring_disabled) to turn on"
	exit 0
fi
WAS_DISABLED=$(cat "$DISABLED")
restore() { echo "$WAS_DISABLED" >"$DISABLED"; }
trap 'rc=$?; restore; tfs_cleanup $rc' EXIT

VOL=$T/vol
MNT=$T/mnt
"$TIERFS" format "$VOL" >/dev/null || fail "format"

# 1. io_uring forbidden: /dev/fuse serves everything
echo 2 >"$DISABLED" || fail "cannot set $DISABLED"
tfs_mount "$VOL" "$MNT"
timeout 10 mkdir "$MNT/d" || fail "mkdir hung or failed with io_uring forbidden"
for i in $(seq 50); do
	timeout 10 sh -c "echo file-$i >'$MNT/d/f$i'" || fail "create f$i hung or failed with io_uring forbidden"
done
timeout 10 mv "$MNT/d/f1" "$MNT/d/g1" || fail "rename"
[ "$(timeout 10 cat "$MNT/d/f7")" = file-7 ] || fail "read back f7"
[ "$(timeout 10 ls "$MNT/d" | wc -l)" = 50 ] || fail "listing"
tfs_umount "$MNT"
restore
grep -q "io_uring: cannot create a ring" "$VOL/tierfs.log" ||
	fail "no log line for the rings that could not be made: $(grep -i uring "$VOL/tierfs.log" | tail -n 3)"
grep -q "requests served" "$VOL/tierfs.log" && fail "rings claimed to serve requests with io_uring forbidden"
note "io_uring forbidden: the mount logged it and served 50 creates, a rename, reads and a listing over /dev/fuse"

# 2. allowed again: the rings answer
tfs_mount "$VOL" "$MNT"
for _ in $(seq 100); do grep -q "FUSE over io_uring: [0-9]* queues" "$VOL/tierfs.log" && break; sleep 0.1; done
grep -q "FUSE over io_uring: [0-9]* queues" "$VOL/tierfs.log" || fail "rings not started with io_uring allowed"
for i in $(seq 50); do echo "again-$i" >"$MNT/d/h$i" || fail "create h$i"; done
[ "$(cat "$MNT/d/h9")" = again-9 ] || fail "read back h9"
echo N >"$TFS_URING_PARAM" || fail "cannot turn enable_uring off"
for i in $(seq 50); do
	timeout 10 sh -c "echo after-$i >'$MNT/d/k$i'" || { echo Y >"$TFS_URING_PARAM"; fail "create k$i hung or failed after enable_uring was turned off"; }
done
[ "$(timeout 10 cat "$MNT/d/k9")" = after-9 ] || { echo Y >"$TFS_URING_PARAM"; fail "read back k9 after enable_uring was turned off"; }
echo Y >"$TFS_URING_PARAM"
tfs_umount "$MNT"
served=$(sed -n 's/.*FUSE over io_uring: \([0-9]*\) requests served.*/\1/p' "$VOL/tierfs.log" | tail -n 1)
[ "${served:-0}" -ge 100 ] || fail "the rings answered ${served:-no} requests"
grep -q "io_uring: queue" "$VOL/tierfs.log" && fail "a ring failed: $(grep "io_uring: queue" "$VOL/tierfs.log" | head -n 1)"
timeout 120 "$TIERFS" fsck "$VOL" >/dev/null || fail "fsck"
note "io_uring allowed again: $served requests through the rings, before and after enable_uring was turned off under the mount; fsck clean"
