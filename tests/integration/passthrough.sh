#!/bin/bash
# passthrough.sh - FUSE passthrough on the home mount (docs/architecture.md):
# reads and writes of local files go to their data files in the kernel, and
# the daemon still learns what changed:
#  1. the mount negotiated passthrough (skipped, with a note, on a kernel
#     without it), and -o no_passthrough leaves it off;
#  2. a file written through a handle that stays open has its new size in
#     stat, through a new name (link), and in the metadata store (flush);
#  3. a mirrored file (not in passthrough: files with a store copy stay on
#     the daemon's data path) rewritten in place with the same size goes back
#     to the upload queue, and 'sync --wait' brings it back to synced;
#  4. the daemon stopped (SIGTERM) while a file is open in passthrough and
#     written afterwards: the volume is not marked clean, and the next mount
#     takes the file's size from its data file, nothing lost.
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"

VOL=$T/vol
MNT=$T/mnt
"$TIERFS" format "$VOL" >/dev/null || fail "format"
"$TIERFS" policy add --volume "$VOL" m --path '/m/**' --placement mirror --settle 1h >/dev/null ||
	fail "policy add"

# 1. negotiated, and off with no_passthrough
tfs_mount "$VOL" "$MNT" -o no_passthrough
grep -q "passthrough: reads and writes" "$VOL/tierfs.log" && fail "-o no_passthrough still negotiated passthrough"
tfs_umount "$MNT"
: >"$VOL/tierfs.log"
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
if ! grep -q "passthrough: reads and writes" "$VOL/tierfs.log"; then
	note "SKIP: this kernel ($(uname -r)) does not offer FUSE passthrough"
	exit 0
fi

# 2. sizes of a file held open
mkdir "$MNT/d" "$MNT/m"
exec 3>"$MNT/d/open"
head -c 100000 /dev/urandom >&3
# the store first: nothing else asked the daemon about the file since
sz=$("$TIERFS" status --json "$MNT/d/open" | sync_json 'j["files"][0]["size"]')
[ "$sz" = 100000 ] || fail "the metadata store has $sz bytes for a file open in passthrough, not 100000"
[ "$(stat -c %s "$MNT/d/open")" = 100000 ] || fail "stat of a file open in passthrough: $(stat -c %s "$MNT/d/open"), not 100000"
head -c 50000 /dev/urandom >&3
ln "$MNT/d/open" "$MNT/d/link"
[ "$(stat -c %s "$MNT/d/link")" = 150000 ] || fail "a new name of a file open in passthrough shows $(stat -c %s "$MNT/d/link") bytes, not 150000"
exec 3>&-
[ "$(cmp "$MNT/d/open" "$MNT/d/link" && stat -c %s "$MNT/d/open")" = 150000 ] || fail "d/open after close"
note "a file held open in passthrough: stat, a new name and the store see its size"

# 3. a same-size rewrite through an open handle re-queues a mirrored file
printf 'version-1\n' >"$MNT/m/f"
sync_cli "sync --wait" "$TIERFS" sync --wait "$MNT/m/f"
s=$(sync_state "$MNT/m/f")
[ "$s" = synced ] || fail "m/f is '$s' after sync --wait"
exec 4<>"$MNT/m/f"
printf 'version-2\n' >&4 # same size, at offset 0, at once
exec 4>&-
s=$(sync_state "$MNT/m/f")
[ "$s" != synced ] || fail "m/f still 'synced' after a same-size rewrite"
sync_cli "sync --wait after the rewrite" "$TIERFS" sync --wait "$MNT/m/f"
s=$(sync_state "$MNT/m/f")
[ "$s" = synced ] || fail "m/f is '$s' after the second sync --wait"
[ "$(cat "$MNT/m/f")" = version-2 ] || fail "m/f reads '$(cat "$MNT/m/f")'"
note "a same-size rewrite of a mirrored file went back to the upload queue and synced again"

# 4. the daemon stopped with a file open in passthrough
exec 5>"$MNT/d/late"
head -c 4096 /dev/urandom >&5
ino=$(stat -c %i "$MNT/d/late")
datafile=$VOL/data/$(printf '%02x/%016x' $(( (ino >> 12) & 255 )) "$ino")
[ -f "$datafile" ] || fail "no data file $datafile for d/late (inode $ino)"
pid=$(tfs_daemon_pid "$VOL")
[ -n "$pid" ] || fail "no daemon pid"
kill -TERM "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the daemon did not stop on SIGTERM"
# still open in the kernel: a write after the daemon is gone, if the kernel takes it
head -c 4096 /dev/urandom >&5 2>/dev/null || true
exec 5>&-
tfs_force_umount "$MNT"
grep -q "files still open in passthrough" "$VOL/tierfs.log" ||
	fail "the daemon did not say files were open in passthrough when it stopped"
want=$(stat -c %s "$datafile")
tfs_mount "$VOL" "$MNT" 2>"$T/mount.err"
grep -q "was not unmounted cleanly" "$T/mount.err" "$VOL/tierfs.log" ||
	fail "the volume was marked clean although a file was open in passthrough"
sz=$(stat -c %s "$MNT/d/late")
[ "$sz" = "$want" ] && [ "$sz" -ge 4096 ] ||
	fail "d/late has $sz bytes after the remount; its data file has $want (4096 written before the stop)"
tfs_umount "$MNT"
frc=0
timeout 120 "$TIERFS" fsck "$VOL" >"$T/fsck.out" 2>&1 || frc=$?
[ "$frc" -eq 0 ] || { cat "$T/fsck.out" >&2; fail "fsck exited $frc"; }
note "stopped with a file open in passthrough: not marked clean, $sz bytes recovered, fsck clean"
