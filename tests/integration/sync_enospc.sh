#!/bin/bash
# sync_enospc.sh - a volume on a full file system: on a 64 MiB tmpfs, a
# home mount is filled through the mount until a write fails with ENOSPC
# (dd says "No space left on device"). The mount stays usable, the files
# already there are intact, metadata operations fail cleanly or work, an
# evicted file (its store is elsewhere) gives an error rather than wrong
# bytes and reads back once there is room, deleting a file works and frees
# space, writes work again, a remount keeps everything and fsck after the
# unmount is clean. Needs root (mount -t tmpfs).
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
[ "$(id -u)" -eq 0 ] || { note "SKIP: mounting a tmpfs needs root"; exit 0; }

SMALL=$T/small
mkdir -p "$SMALL"
mount -t tmpfs -o size=64m tmpfs "$SMALL" || fail "mount -t tmpfs"
sync_on_exit "umount '$SMALL' 2>/dev/null || umount -l '$SMALL' 2>/dev/null"
VOL=$SMALL/vol
MNT=$T/mnt
# The store is off the small file system.
"$TIERFS" format --store "file://$T/store" "$VOL" >/dev/null || fail "format on a tmpfs"
"$TIERFS" policy add --volume "$VOL" m --path '/m/**' --placement mirror --settle 1s >/dev/null || fail "policy add"
"$TIERFS" policy add --volume "$VOL" e --path '/e/**' --placement tier --evict-after 1h --settle 1h >/dev/null || fail "policy add"
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
mkdir -p "$MNT/d" "$MNT/m" "$MNT/e"
declare -A SUM
sync_random "$MNT/d/a" 12
sync_random "$MNT/d/b" 4
echo "small" >"$MNT/d/small"
sync_random "$MNT/m/mir" 2
sync_random "$MNT/e/cold" 8
for f in d/a d/b d/small m/mir e/cold; do SUM[$f]=$(sha "$MNT/$f"); done
sync_cli "sync --wait" "$TIERFS" sync --wait "$MNT/e/cold"
sync_cli "evict" "$TIERFS" evict "$MNT/e/cold"
note "tmpfs: $(df -k --output=used,avail "$SMALL" | tail -n1) KiB used/avail before filling"

# 1. Fill it.
rc=0
timeout 60 dd if=/dev/zero of="$MNT/d/fill" bs=1M count=200 conv=fsync 2>"$T/dd.err" || rc=$?
note "filling: dd exit $rc: $(grep -v records "$T/dd.err" | head -n1)"
[ "$rc" -ne 124 ] || fail "dd into a full volume hung for 60 s"
[ "$rc" -ne 0 ] || tfs_problem "200 MiB written into a 64 MiB tmpfs without an error"
grep -q "No space left on device" "$T/dd.err" || tfs_problem "filling did not fail with ENOSPC: $(cat "$T/dd.err")"
tfs_is_mounted "$MNT" || fail "the mount died when the disk filled up"
[ -n "$(tfs_daemon_pid "$VOL")" ] || fail "the tierfs daemon died when the disk filled up"
note "tmpfs after filling: $(df -k --output=used,avail "$SMALL" | tail -n1)"

# 2. Still usable while full: reads, stat, listing, small writes fail cleanly.
ls -l "$MNT/d" >/dev/null || tfs_problem "ls of a full volume"
for f in d/a d/b d/small m/mir; do
	[ "$(sha "$MNT/$f")" = "${SUM[$f]}" ] || tfs_problem "$f changed when the disk filled up"
done
for i in 1 2 3 4 5; do
	rc=0
	timeout 30 dd if=/dev/urandom of="$MNT/d/more$i" bs=64K count=16 conv=fsync status=none 2>>"$T/more.err" || rc=$?
	[ "$rc" -ne 124 ] || tfs_problem "a write into the full volume hung"
done
timeout 30 mkdir "$MNT/d/newdir" 2>/dev/null || true
timeout 30 touch "$MNT/d/newfile" 2>/dev/null || true
timeout 30 mv "$MNT/d/small" "$MNT/d/small2" 2>/dev/null || true
timeout 30 mv "$MNT/d/small2" "$MNT/d/small" 2>/dev/null || true
timeout 30 "$TIERFS" status --json --volume "$MNT" >/dev/null 2>&1 || note "status of a full volume failed (exit $?)"
tfs_is_mounted "$MNT" || fail "the mount died on writes into a full volume"
[ -e "$MNT/d/small" ] || tfs_problem "d/small lost by a rename on a full volume"
[ "$(sha "$MNT/d/small")" = "${SUM[d/small]}" ] || tfs_problem "d/small changed by renames on a full volume"
# An evicted file cannot be recalled onto a full disk: an error, never
# wrong bytes, no hang.
sync_drop_caches
rc=0
got=$(timeout 60 sha256sum <"$MNT/e/cold" 2>"$T/rc.err" | cut -d' ' -f1) || rc=$?
note "reading an evicted file on the full volume: exit $rc $(head -n1 "$T/rc.err")"
[ "$rc" -ne 124 ] || tfs_problem "reading an evicted file on a full volume hung"
[ "$rc" -ne 0 ] || [ "$got" = "${SUM[e/cold]}" ] || tfs_problem "an evicted file read on a full volume gave wrong bytes"
tfs_is_mounted "$MNT" || fail "the mount died on a recall into a full volume"
note "full volume: still mounted, files intact"

# 3. Delete the filler: writes work again.
if ! rm -f "$MNT/d/fill" "$MNT"/d/more* 2>"$T/rm.err"; then
	tfs_problem "rm on a full volume: $(head -n1 "$T/rm.err")"
	# Go on with the rest: truncating first frees the data.
	truncate -s 0 "$MNT/d/fill" || true
	rm -f "$MNT/d/fill" "$MNT"/d/more* || fail "rm after truncating on a full volume"
fi
sync
freed=0
for ((i = 0; i < 50; i++)); do
	avail=$(df -k --output=avail "$SMALL" | tail -n1)
	[ "$avail" -ge $((20 * 1024)) ] && { freed=1; break; }
	sleep 0.2
done
[ "$freed" = 1 ] || tfs_problem "deleting the filler freed no space on the tmpfs ($avail KiB avail)"
rc=0
sync_random "$MNT/d/c" 8 2>"$T/c.err" || rc=$?
[ "$rc" -eq 0 ] || tfs_problem "writing 8 MiB after deleting the filler: $(cat "$T/c.err")"
SUM[d/c]=$(sha "$MNT/d/c")
echo "after" >"$MNT/d/after" || tfs_problem "creating a file after freeing space"
SUM[d/after]=$(sha "$MNT/d/after")
sync_drop_caches
for f in d/a d/b d/small d/c d/after m/mir e/cold; do
	[ "$(sha "$MNT/$f")" = "${SUM[$f]}" ] || tfs_problem "$f differs after freeing space"
done
note "space freed: writes work again"

# 4. Fill it again and unmount while full, then fsck and remount.
timeout 60 dd if=/dev/zero of="$MNT/d/fill2" bs=1M count=200 conv=fsync status=none 2>/dev/null || true
# umount tells the truth: 0 when the daemon wrote everything, else 1 with
# its error (the clean flag, say, could not be written: fsck repairs it)
rc=0
timeout 60 "$TIERFS" umount "$MNT" 2>"$T/umount.err" || rc=$?
note "umount of the full volume: exit $rc $(cat "$T/umount.err")"
case $rc in
0) ;;
1) grep -q '^tierfs: .*could not write all metadata' "$T/umount.err" ||
	tfs_problem "umount of the full volume exited 1 without the daemon's error: $(cat "$T/umount.err")" ;;
*) tfs_problem "umount of the full volume exited $rc" ;;
esac
tfs_wait_state "$MNT" 0 10 || fail "'$MNT' still mounted after tierfs umount"
rc=0
"$TIERFS" fsck "$VOL" >"$T/fsck" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { sed 's/^/    /' "$T/fsck" >&2; tfs_problem "fsck after unmounting a full volume exited $rc"; }
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
for f in d/a d/b d/small d/c d/after m/mir e/cold; do
	[ "$(sha "$MNT/$f")" = "${SUM[$f]}" ] || tfs_problem "$f differs after remount"
done
rm -f "$MNT/d/fill2"
tfs_umount "$MNT"
rc=0
"$TIERFS" fsck "$VOL" >"$T/fsck" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { sed 's/^/    /' "$T/fsck" >&2; tfs_problem "fsck at the end exited $rc"; }
tfs_finish
note "sync_enospc: all passed"
