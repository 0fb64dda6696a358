#!/bin/bash
# fsck_live.sh - 'tierfs fsck -n' reports no false problems: on a live
# mount (its spare data files, sizes not written back yet, a file unlinked
# while open) it exits 0, and after kill -9 of the mount too; the spare data
# files are never "belongs to no file". A real problem (a non-empty data
# file of no file) is still found (exit 4), and fsck repairs it (exit 1).
. "$(dirname "$0")/lib.sh"
tfs_setup

VOL=$T/vol
MNT=$T/mnt
"$TIERFS" format "$VOL" >/dev/null || fail "format"
tfs_mount "$VOL" "$MNT"
mkdir -p "$MNT/d"
for i in $(seq 1 20); do echo "file $i" >"$MNT/d/f$i"; done
exec 7>"$MNT/d/open-unlinked"
echo "still open" >&7
rm "$MNT/d/open-unlinked"
dd if=/dev/zero of="$MNT/d/growing" bs=64k count=4 status=none
sleep 1
spares=$(find "$VOL/data" -type f -empty | wc -l)
note "live mount: $spares empty data files in the data area"

# fsck_n WHAT WANT: run fsck -n, expect exit WANT
fsck_n()
{
	local what=$1 want=$2 rc=0
	timeout 60 "$TIERFS" fsck -n -v "$VOL" >"$T/fsck.out" 2>&1 || rc=$?
	sed 's/^/    fsck: /' "$T/fsck.out"
	[ "$rc" -eq "$want" ] || tfs_problem "$what: fsck -n exited $rc, expected $want"
	grep -q 'belongs to no file' "$T/fsck.out" && [ "$want" -eq 0 ] &&
		tfs_problem "$what: fsck -n calls a spare data file 'belongs to no file'"
	return 0
}
fsck_n "live mount" 0
exec 7>&-

# kill -9: the spares and the open-unlinked file are left for recovery
echo more >>"$MNT/d/f1"
tfs_kill_volume "$VOL"
tfs_force_umount "$MNT"
sleep 0.5
fsck_n "after kill -9" 0
# the repair finishes the recovery as the next mount would
rc=0
timeout 60 "$TIERFS" fsck "$VOL" >"$T/fsck.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || tfs_problem "fsck (repair) after kill -9 exited $rc, expected 0: $(cat "$T/fsck.out")"
[ "$(find "$VOL/data" -type f -empty | wc -l)" -le 1 ] || tfs_problem "spare data files left after fsck"

# a real problem: a non-empty data file that belongs to no file
printf 'lost data' >"$VOL/data/ff/00000000000ff123"
fsck_n "with a real stray data file" 4
grep -q 'belongs to no file' "$T/fsck.out" || tfs_problem "the real stray data file is not reported"
rc=0
timeout 60 "$TIERFS" fsck "$VOL" >"$T/fsck.out" 2>&1 || rc=$?
sed 's/^/    fsck: /' "$T/fsck.out"
[ "$rc" -eq 1 ] || tfs_problem "fsck (repair) exited $rc, expected 1"
[ -e "$VOL/data/ff/00000000000ff123" ] && tfs_problem "the stray data file is still there after fsck"
fsck_n "after the repair" 0
tfs_mount "$VOL" "$MNT"
[ "$(cat "$MNT/d/f5")" = "file 5" ] || tfs_problem "d/f5 after the crash and fsck"
tfs_umount "$MNT"
fsck_n "after a clean unmount" 0
tfs_finish
note "fsck_live: all passed"
