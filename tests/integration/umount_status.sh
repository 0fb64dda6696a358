#!/bin/bash
# umount_status.sh - 'tierfs umount' tells whether the daemon wrote its
# metadata. A volume on a 32 MiB tmpfs is filled to the last byte (the
# metadata reserve given up and that room filled too), then metadata
# changes fail: 'tierfs umount' exits non-zero with the daemon's error
# instead of 0. With room again, fsck repairs the volume, the next mount
# and umount succeed (exit 0) and the files written before are intact.
# Needs root (mount -t tmpfs).
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
[ "$(id -u)" -eq 0 ] || { note "SKIP: mounting a tmpfs needs root"; exit 0; }

SMALL=$T/small
mkdir -p "$SMALL"
mount -t tmpfs -o size=32m tmpfs "$SMALL" || fail "mount -t tmpfs"
sync_on_exit "umount '$SMALL' 2>/dev/null || umount -l '$SMALL' 2>/dev/null"
VOL=$SMALL/vol
MNT=$T/mnt
"$TIERFS" format "$VOL" >/dev/null || fail "format on a tmpfs"
tfs_mount "$VOL" "$MNT"
mkdir -p "$MNT/d"
sync_random "$MNT/d/keep" 2
SUM=$(sha "$MNT/d/keep")

# Fill the disk, twice: the second time takes the room the reserve left.
for i in 1 2 3; do
	timeout 60 dd if=/dev/zero of="$MNT/d/fill$i" bs=64k count=1000 conv=fsync status=none 2>/dev/null || true
	sleep 0.5
done
# Then metadata changes until they fail.
fails=0
for i in $(seq 1 400); do
	mkdir "$MNT/d/m$i" 2>/dev/null || fails=$((fails + 1))
	touch "$MNT/d/keep" 2>/dev/null || true
done
note "tmpfs: $(df -k --output=used,avail "$SMALL" | tail -n1); $fails of 400 mkdirs failed"
rc=0
timeout 60 "$TIERFS" umount "$MNT" >"$T/umount.out" 2>"$T/umount.err" || rc=$?
note "umount of a full volume: exit $rc: $(cat "$T/umount.err")"
tail -n 5 "$VOL/tierfs.log" 2>/dev/null | sed 's/^/    log: /'
# (the log on the full disk may be cut short: the exit status must say it)
[ "$rc" -ne 0 ] || tfs_problem "tierfs umount exited 0 on a full disk where $fails metadata changes failed"
[ "$rc" -ne 124 ] || tfs_problem "tierfs umount hung"
grep -q '^tierfs: .*could not write all metadata' "$T/umount.err" || tfs_problem "tierfs umount does not give the daemon's error: $(cat "$T/umount.err")"
tfs_wait_state "$MNT" 0 10 || tfs_force_umount "$MNT"

# Room again: fsck repairs, a mount and umount succeed.
mount -o remount,size=64m "$SMALL" || fail "remount the tmpfs larger"
rc=0
timeout 60 "$TIERFS" fsck "$VOL" >"$T/fsck.out" 2>&1 || rc=$?
[ "$rc" -le 1 ] || tfs_problem "fsck after the full disk exited $rc: $(cat "$T/fsck.out")"
tfs_mount "$VOL" "$MNT"
[ "$(sha "$MNT/d/keep")" = "$SUM" ] || tfs_problem "d/keep changed"
rm -f "$MNT"/d/fill*
rc=0
timeout 60 "$TIERFS" umount "$MNT" 2>"$T/umount.err" || rc=$?
[ "$rc" -eq 0 ] || tfs_problem "umount with room again exited $rc: $(cat "$T/umount.err")"
tfs_wait_state "$MNT" 0 10 || tfs_force_umount "$MNT"
tfs_finish
note "umount_status: all passed"
