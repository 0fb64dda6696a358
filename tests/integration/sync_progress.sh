#!/bin/bash
# sync_progress.sh - 'tierfs sync --wait' counts what really ran: with five
# files in the store and one new, on a terminal (script(1) gives it one) it
# says one file of six was queued and that one file was uploaded, never
# "6/6" nor "0/0 files"; with nothing to upload it says so, without "0/0".
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
command -v script >/dev/null || { note "SKIP: script(1) is needed for a terminal"; exit 0; }

VOL=$T/vol
MNT=$T/mnt
"$TIERFS" format --store "file://$T/store" "$VOL" >/dev/null || fail "format"
"$TIERFS" policy add --volume "$VOL" m --path '/m/**' --placement mirror --settle 1h >/dev/null || fail "policy add"
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
mkdir -p "$MNT/m"

# tty_sync: sync --wait on a pseudo-terminal; output (both streams) in $T/tty.out
tty_sync()
{
	local rc=0
	timeout 60 script -qec "'$TIERFS' sync --wait '$MNT'" /dev/null >"$T/tty.out" 2>&1 || rc=$?
	tr '\r' '\n' <"$T/tty.out" | grep -v '^$' | sed 's/^/    tty: /'
	return $rc
}

tty_sync || tfs_problem "sync --wait on an empty volume failed"
grep -q '0/0' "$T/tty.out" && tfs_problem "sync --wait says 0/0 with nothing to upload"
grep -q 'everything was in the store' "$T/tty.out" || tfs_problem "sync --wait does not say there was nothing to upload"

for i in 1 2 3 4 5; do sync_random "$MNT/m/f$i" 1; done
tty_sync || tfs_problem "sync --wait of five files failed"
grep -q '5 files uploaded' "$T/tty.out" || tfs_problem "sync --wait of five new files does not say 5 files were uploaded"

sync_random "$MNT/m/new" 2
tty_sync || tfs_problem "sync --wait of one new file failed"
grep -q '6/6' "$T/tty.out" && tfs_problem "sync --wait says 6/6 when one file was new"
grep -q '1 of 6 files queued' "$T/tty.out" || tfs_problem "sync --wait does not say 1 of 6 files was queued"
grep -q '1 files uploaded' "$T/tty.out" || tfs_problem "sync --wait does not say 1 file was uploaded"
s=$(sync_state "$MNT/m/new")
[ "$s" = synced ] || tfs_problem "m/new is '$s' after sync --wait"
tfs_umount "$MNT"
tfs_finish
note "sync_progress: all passed"
