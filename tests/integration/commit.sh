#!/bin/bash
# commit.sh - group commit of the home mount (-o commit_ms, docs/architecture.md):
#  1. the tierfs CLI reads every change made through the mount before it
#     started, even inside a wide (1 s) commit window: it commits the
#     mount's batch first (fsync of the mount's root);
#  2. without any fsync, a plain SQLite reader sees the changes once the
#     window (default 10 ms) has passed;
#  3. an fsync commits the batch: creates, renames and unlinks made before it
#     survive kill -9 of the daemon right after it returned, and fsck is clean;
#  4. commit_ms=0 commits every change at once; bad values are refused;
#  5. spare data files (made ahead for creates): there while mounted, gone
#     after a clean unmount, and removed by recovery after kill -9, with fsck
#     clean both times.
. "$(dirname "$0")/lib.sh"
tfs_setup
command -v sqlite3 >/dev/null || fail "sqlite3 CLI missing (Debian package sqlite3)"

VOL=$T/vol
MNT=$T/mnt
"$TIERFS" format "$VOL" >/dev/null || fail "format"
# entries in directory /NAME, as the metadata store holds them now
db_count() {
	sqlite3 "$VOL/meta.db" "SELECT count(*) FROM dentry WHERE parent=(SELECT ino FROM dentry WHERE parent=1 AND name=CAST('$1' AS BLOB))"
}

# 1. the CLI and a 1 s window
tfs_mount "$VOL" "$MNT" -o commit_ms=1000
mkdir "$MNT/cli"
for i in $(seq 40); do
	echo "$i" >"$MNT/cli/f$i"
	"$TIERFS" status --json "$MNT/cli/f$i" >"$T/st.json" 2>"$T/st.err" ||
		{ cat "$T/st.err" >&2; fail "tierfs status does not find cli/f$i, created just before"; }
	grep -q '"files"' "$T/st.json" || fail "tierfs status printed no files for cli/f$i"
done
mv "$MNT/cli/f1" "$MNT/cli/g1"
"$TIERFS" status --json "$MNT/cli/g1" >/dev/null 2>&1 || fail "tierfs status does not find a file renamed just before"
tfs_umount "$MNT"
[ "$(db_count cli)" = 40 ] || fail "after unmount the store holds $(db_count cli) of 40 entries"

# 2. the window closes by itself (default 10 ms)
tfs_mount "$VOL" "$MNT"
mkdir "$MNT/age"
for i in $(seq 100); do : >"$MNT/age/f$i"; done
sleep 0.3
n=$(db_count age)
[ "$n" = 100 ] || fail "0.3 s after 100 creates without fsync the store holds $n entries (commit_ms=10)"
note "a reader of the store sees 100 creates 0.3 s later, with no fsync"

# 3. fsync commits the batch; kill -9 right after
mkdir "$MNT/dur"
for i in $(seq 300); do echo "$i" >"$MNT/dur/f$i"; done
for i in $(seq 1 3 300); do mv "$MNT/dur/f$i" "$MNT/dur/r$i"; done
for i in $(seq 2 3 300); do rm "$MNT/dur/f$i"; done
sync "$MNT/dur" || fail "fsync of the directory"
tfs_kill_volume "$VOL"
tfs_force_umount "$MNT"
for i in $(seq 50); do [ -z "$(tfs_daemon_pid "$VOL")" ] && break; sleep 0.1; done
tfs_mount "$VOL" "$MNT"
for i in $(seq 300); do
	case $((i % 3)) in
	1) [ "$(cat "$MNT/dur/r$i" 2>/dev/null)" = "$i" ] || fail "renamed r$i lost or wrong after kill -9" ;;
	2) [ ! -e "$MNT/dur/f$i" ] || fail "unlinked f$i came back after kill -9" ;;
	0) [ "$(cat "$MNT/dur/f$i" 2>/dev/null)" = "$i" ] || fail "f$i lost or wrong after kill -9" ;;
	esac
done
[ "$(find "$MNT/dur" -type f | wc -l)" = 200 ] || fail "dur holds $(find "$MNT/dur" -type f | wc -l) files, not 200"
tfs_umount "$MNT"
frc=0
timeout 120 "$TIERFS" fsck "$VOL" >"$T/fsck.out" 2>&1 || frc=$?
[ "$frc" -eq 0 ] || { cat "$T/fsck.out" >&2; fail "fsck after kill -9 exited $frc"; }
note "300 creates, 100 renames, 100 unlinks, one fsync, kill -9: all there, fsck clean"

# 4. commit_ms=0, and bad values
tfs_mount "$VOL" "$MNT" -o commit_ms=0
mkdir "$MNT/now"
: >"$MNT/now/a"
[ "$(db_count now)" = 1 ] || fail "with commit_ms=0 a create is not in the store when it returns"
tfs_umount "$MNT"
for bad in commit_ms=x commit_ms=5000 commit_ms=-1 commit_ms=; do
	out=$("$TIERFS" mount -o "$bad" "$VOL" "$MNT" 2>&1) && { tfs_umount "$MNT"; fail "mount -o $bad accepted"; }
	[ "$(printf '%s\n' "$out" | grep -c .)" = 1 ] || fail "mount -o $bad: not a one-line error: $out"
	tfs_is_mounted "$MNT" && fail "mount -o $bad left a mount"
done

# 5. spare data files
data_files() { find "$VOL/data" -type f | wc -l; }
reg_inodes() { sqlite3 "$VOL/meta.db" "SELECT count(*) FROM inode WHERE (mode & 61440) = 32768"; }
fsck_clean() {
	local frc=0
	timeout 120 "$TIERFS" fsck "$VOL" >"$T/fsck.out" 2>&1 || frc=$?
	[ "$frc" -eq 0 ] || { cat "$T/fsck.out" >&2; fail "fsck $1 exited $frc"; }
}
tfs_mount "$VOL" "$MNT"
: >"$MNT/now/spare-trigger"
for i in $(seq 50); do [ "$(data_files)" -gt "$(reg_inodes)" ] && break; sleep 0.1; done
[ "$(data_files)" -gt "$(reg_inodes)" ] || fail "no spare data files while mounted ($(data_files) data files, $(reg_inodes) files)"
tfs_umount "$MNT"
[ "$(data_files)" = "$(reg_inodes)" ] || fail "after a clean unmount: $(data_files) data files for $(reg_inodes) files"
fsck_clean "after a clean unmount"
tfs_mount "$VOL" "$MNT"
: >"$MNT/now/spare-trigger2"
for i in $(seq 50); do [ "$(data_files)" -gt "$(reg_inodes)" ] && break; sleep 0.1; done
sync "$MNT/now"
tfs_kill_volume "$VOL"
tfs_force_umount "$MNT"
for i in $(seq 50); do [ -z "$(tfs_daemon_pid "$VOL")" ] && break; sleep 0.1; done
tfs_mount "$VOL" "$MNT"
[ -e "$MNT/now/spare-trigger2" ] || fail "a file fsync'd before kill -9 is gone"
tfs_umount "$MNT"
[ "$(data_files)" = "$(reg_inodes)" ] || fail "after kill -9 and recovery: $(data_files) data files for $(reg_inodes) files"
fsck_clean "after kill -9 with spare data files"
note "spare data files: gone after a clean unmount and after kill -9 + recovery; fsck clean"
note "commit: CLI barrier, 10 ms window, fsync + kill -9, commit_ms=0 and bad values all hold"
