#!/bin/bash
# blocks.sh - st_blocks of regular files as the metadata store records it
# (inode.blocks, docs/on-disk-format.md), which a lookup of an inode the
# mount does not hold uses instead of stat()ing the data file:
#  1. recorded at the last close: after a remount (every lookup cold) a
#     small file, a sparse file, a file with a punched hole and one
#     truncated by path (no open handle) show their data files' counts,
#     and the store holds the same;
#  2. kill -9 while a file is open and growing: recovery records the
#     count, and fsck is clean;
#  3. eviction by the sync engine (file:// store) marks the count unknown,
#     so the evicted file shows the punched data file's count, not the
#     one recorded before;
#  4. a version 1 store (no blocks column): fsck -n refuses it in one line
#     and changes nothing; a mount upgrades it to version 3.
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
sync_require_cli
command -v sqlite3 >/dev/null || fail "sqlite3 CLI missing (Debian package sqlite3)"

VOL=$T/vol
MNT=$T/mnt
STORE=$T/store

# datafile NAME: the data file behind $MNT/NAME (on-disk-format.md)
datafile()
{
	local ino
	ino=$(stat -c %i "$MNT/$1") || fail "stat $1"
	printf '%s/data/%02x/%016x' "$VOL" $(((ino >> 12) & 0xff)) "$ino"
}
# check NAME...: st_blocks through the mount and in the store equal the data file's
check()
{
	local f ino want got db
	for f in "$@"; do
		ino=$(stat -c %i "$MNT/$f")
		got=$(stat -c %b "$MNT/$f")
		want=$(stat -c %b "$(datafile "$f")")
		[ "$got" = "$want" ] || tfs_problem "$CASE: $f shows $got blocks, its data file has $want"
		db=$(sqlite3 "$VOL/meta.db" "SELECT blocks FROM inode WHERE ino=$ino")
		[ "$db" = "$want" ] || tfs_problem "$CASE: the store records $db blocks for $f, its data file has $want"
	done
}
remount()
{
	tfs_umount "$MNT"
	tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
}

"$TIERFS" format --store "file://$STORE" "$VOL" >/dev/null || fail "format"
"$TIERFS" policy add --volume "$VOL" e --path '/e/**' --placement tier --evict-after 1h --settle 1h \
	>/dev/null || fail "policy add"
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
mkdir "$MNT/d" "$MNT/e"

# 1. recorded at the last close
echo "small" >"$MNT/d/small"
truncate -s 1G "$MNT/d/sparse"
dd if=/dev/urandom of="$MNT/d/sparse" bs=1M count=3 seek=100 conv=notrunc status=none
dd if=/dev/urandom of="$MNT/d/punched" bs=1M count=8 status=none
fallocate -p -o 1M -l 4M "$MNT/d/punched" || fail "punch hole"
dd if=/dev/urandom of="$MNT/d/cut" bs=1M count=6 status=none
python3 -c 'import os, sys; os.truncate(sys.argv[1], 1 << 20)' "$MNT/d/cut" || fail "truncate(2)"
remount
CASE="after a remount"
check d/small d/sparse d/punched d/cut
[ "$(stat -c %b "$MNT/d/sparse")" -lt $((8 * 2048)) ] ||
	tfs_problem "the 1 GiB sparse file with 3 MiB written shows $(stat -c %b "$MNT/d/sparse") blocks"
[ "$(stat -c %b "$MNT/d/punched")" -lt $((5 * 2048)) ] ||
	tfs_problem "8 MiB with 4 MiB punched out shows $(stat -c %b "$MNT/d/punched") blocks"
note "recorded at close: small $(stat -c %b "$MNT/d/small"), sparse $(stat -c %b "$MNT/d/sparse"), punched $(stat -c %b "$MNT/d/punched"), cut $(stat -c %b "$MNT/d/cut") blocks"

# 2. kill -9 with a file open and growing
exec 3>>"$MNT/d/small"
dd if=/dev/urandom bs=1M count=4 status=none >&3
sync "$MNT/d/small"
tfs_kill_volume "$VOL"
exec 3>&-
tfs_force_umount "$MNT"
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
CASE="after kill -9 and recovery"
[ "$(stat -c %s "$MNT/d/small")" -eq $((4 * 1048576 + 6)) ] ||
	tfs_problem "d/small has size $(stat -c %s "$MNT/d/small") after recovery"
check d/small d/sparse d/punched d/cut
remount
"$TIERFS" umount "$MNT" >/dev/null || fail "umount"
tfs_wait_state "$MNT" 0 10 || fail "still mounted"
"$TIERFS" fsck "$VOL" >"$T/fsck" 2>&1 || { cat "$T/fsck" >&2; tfs_problem "fsck after the crash exited $?"; }
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"

# 3. eviction marks the count unknown
dd if=/dev/urandom of="$MNT/e/big" bs=1M count=8 status=none
sync_cli "sync --wait" "$TIERFS" sync --wait "$MNT/e/big"
before=$(stat -c %b "$(datafile e/big)")
sync_cli "evict" "$TIERFS" evict "$MNT/e/big"
remount
CASE="after eviction"
got=$(stat -c %b "$MNT/e/big")
want=$(stat -c %b "$(datafile e/big)")
[ "$got" = "$want" ] || tfs_problem "evicted e/big shows $got blocks (before eviction: $before), its data file has $want"
[ "$want" -lt "$before" ] || tfs_problem "eviction left the data file of e/big with $want of $before blocks"
note "eviction: $before blocks before, $got after"

# 4. a version 1 store is upgraded by a mount, refused read-only
tfs_umount "$MNT"
sqlite3 "$VOL/meta.db" "ALTER TABLE inode DROP COLUMN blocks; DROP TABLE node; PRAGMA user_version=1" || fail "make a v1 store"
sum=$(sha256sum <"$VOL/meta.db")
tfs_expect_refused "fsck -n of a version 1 store" "$TIERFS" fsck -n "$VOL" &&
	case $TFS_ERR_LINE in *"schema version 1"*) ;; *) tfs_problem "fsck -n of a v1 store said: $TFS_ERR_LINE" ;; esac
[ "$(sha256sum <"$VOL/meta.db")" = "$sum" ] || tfs_problem "fsck -n changed the version 1 store"
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS" 2>"$T/mount.err"
[ "$(sqlite3 "$VOL/meta.db" "PRAGMA user_version")" = 3 ] || tfs_problem "the mount did not upgrade the store to version 3"
grep -q "upgraded from schema version 1 to 3" "$T/mount.err" || tfs_problem "tierfs mount did not say it upgraded the store"
for f in d/small d/sparse d/punched d/cut; do
	got=$(stat -c %b "$MNT/$f")
	want=$(stat -c %b "$(datafile "$f")")
	[ "$got" = "$want" ] || tfs_problem "after the upgrade $f shows $got blocks, its data file has $want"
done
remount
CASE="after the upgrade and a remount"
check d/small d/sparse d/punched d/cut
tfs_umount "$MNT"
"$TIERFS" fsck "$VOL" >"$T/fsck" 2>&1 || { cat "$T/fsck" >&2; tfs_problem "fsck exited $?"; }
tfs_finish
