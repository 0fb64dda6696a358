#!/bin/bash
# safety.sh - the tierfs command refuses what would hurt a volume, says why in
# exactly one "tierfs: " line on stderr, exits non-zero, and leaves every
# volume byte-identical: a second mount of a mounted volume (the first mount
# keeps working), a missing volume, a directory that is not a volume, a busy
# or missing mount point, a corrupt or foreign meta.db, an unknown option, and
# format of a non-empty directory or of an existing volume. --help and
# --version of the command and of mount exit 0. Every check runs and every
# problem is listed before the test fails.
. "$(dirname "$0")/lib.sh"
tfs_setup

command -v sqlite3 >/dev/null || fail "sqlite3 CLI missing (Debian package sqlite3)"

# --- help and version ---
for args in "--help" "--version" "mount --help" "format --help" "fsck --help" "umount --help"; do
	rc=0
	# shellcheck disable=SC2086
	timeout 10 "$TIERFS" $args >"$T/out" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || tfs_problem "tierfs $args exited $rc"
	[ -s "$T/out" ] || tfs_problem "tierfs $args printed nothing"
done
grep -q '^tierfs [0-9]' <("$TIERFS" --version) || tfs_problem "tierfs --version: '$("$TIERFS" --version)'"

# --- volumes ---
timeout 60 "$TIERFS" format "$T/vol" >/dev/null || fail "tierfs format exited $?"
for f in meta.db volume.key; do
	[ -f "$T/vol/$f" ] || tfs_problem "formatted volume has no $f"
done
[ -d "$T/vol/data" ] || tfs_problem "formatted volume has no data/"
timeout 60 "$TIERFS" format "$T/vol2" >/dev/null || fail "tierfs format (second volume) exited $?"
mkdir -p "$T/mnt" "$T/mnt2"
# A mount that should have been refused but happened is still cleaned up.
TFS_MOUNTS+=("$T/mnt" "$T/mnt2")
TFS_VOLUMES+=("$T/vol" "$T/vol2" "$T/notvol" "$T/corrupt" "$T/foreign")

# format refuses a non-empty directory and an existing volume.
mkdir "$T/full"
echo keep >"$T/full/file"
tfs_snapshot "$T/full" "$T/snap.full"
tfs_expect_refused "format of a non-empty directory" "$TIERFS" format "$T/full"
tfs_unchanged "$T/full" "$T/snap.full" "format of a non-empty directory"
tfs_snapshot "$T/vol" "$T/snap.vol"
tfs_expect_refused "format of an existing volume" "$TIERFS" format "$T/vol"
tfs_unchanged "$T/vol" "$T/snap.vol" "format of an existing volume"

# Refusals on an unmounted volume: the volume stays byte-identical.
if tfs_expect_refused "mount with an unknown option" "$TIERFS" mount --no-such-option "$T/vol" "$T/mnt"; then
	case $TFS_ERR_LINE in
	*no-such-option*) ;;
	*) tfs_problem "mount with an unknown option: the message does not name '--no-such-option'" ;;
	esac
fi
tfs_unchanged "$T/vol" "$T/snap.vol" "mount with an unknown option"
tfs_expect_refused "mount onto a missing mount point" "$TIERFS" mount "$T/vol" "$T/nonexistent"
[ ! -e "$T/nonexistent" ] || tfs_problem "mount created the missing mount point"
tfs_unchanged "$T/vol" "$T/snap.vol" "mount onto a missing mount point"
tfs_expect_refused "mount of a missing volume" "$TIERFS" mount "$T/novol" "$T/mnt"
[ ! -e "$T/novol" ] || tfs_problem "mount created the missing volume directory"
tfs_is_mounted "$T/mnt" && tfs_problem "a refused mount left '$T/mnt' mounted"

mkdir "$T/notvol"
echo data >"$T/notvol/file"
tfs_snapshot "$T/notvol" "$T/snap.notvol"
tfs_expect_refused "mount of a directory that is not a volume" "$TIERFS" mount "$T/notvol" "$T/mnt"
tfs_unchanged "$T/notvol" "$T/snap.notvol" "mount of a directory that is not a volume"

# Corrupt and foreign metadata stores (copies of a real volume).
cp -a "$T/vol" "$T/corrupt"
head -c 65536 /dev/urandom >"$T/corrupt/meta.db"
rm -f "$T/corrupt/meta.db-wal" "$T/corrupt/meta.db-shm"
tfs_snapshot "$T/corrupt" "$T/snap.corrupt"
tfs_expect_refused "mount of a volume with a garbage meta.db" "$TIERFS" mount "$T/corrupt" "$T/mnt"
tfs_unchanged "$T/corrupt" "$T/snap.corrupt" "mount of a volume with a garbage meta.db"
tfs_is_mounted "$T/mnt" && tfs_problem "corrupt volume got mounted"

cp -a "$T/vol" "$T/foreign"
rm -f "$T/foreign/meta.db" "$T/foreign/meta.db-wal" "$T/foreign/meta.db-shm"
sqlite3 "$T/foreign/meta.db" "CREATE TABLE invoices(id INTEGER PRIMARY KEY, total REAL);
	INSERT INTO invoices VALUES (1, 9.5);" || fail "sqlite3"
tfs_snapshot "$T/foreign" "$T/snap.foreign"
tfs_expect_refused "mount of a volume whose meta.db belongs to another application" \
	"$TIERFS" mount "$T/foreign" "$T/mnt"
tfs_unchanged "$T/foreign" "$T/snap.foreign" "mount of a foreign meta.db"
[ "$(sqlite3 "$T/foreign/meta.db" 'SELECT total FROM invoices')" = "9.5" ] ||
	tfs_problem "foreign database content changed"
tfs_is_mounted "$T/mnt" && tfs_problem "foreign volume got mounted"

# --- with a live mount ---
tfs_force_umount "$T/mnt" # in case a refusal above was not one
tfs_mount "$T/vol" "$T/mnt"
echo before >"$T/mnt/probe" || fail "write through the first mount"
tfs_expect_refused "second mount of a mounted volume" "$TIERFS" mount "$T/vol" "$T/mnt2"
tfs_is_mounted "$T/mnt2" && tfs_problem "second mount of the same volume succeeded"
tfs_force_umount "$T/mnt2"
tfs_expect_refused "second mount of a mounted volume on the same mount point" \
	"$TIERFS" mount "$T/vol" "$T/mnt"
[ "$(cat "$T/mnt/probe")" = before ] || tfs_problem "first mount disturbed by the refused second mount"
echo after >>"$T/mnt/probe" || tfs_problem "first mount no longer writable"
[ "$(cat "$T/mnt/probe")" = "$(printf 'before\nafter')" ] || tfs_problem "first mount returns wrong data"

# Another volume onto the busy mount point.
tfs_snapshot "$T/vol2" "$T/snap.vol2"
tfs_expect_refused "mount onto a busy mount point" "$TIERFS" mount "$T/vol2" "$T/mnt"
tfs_unchanged "$T/vol2" "$T/snap.vol2" "mount onto a busy mount point"
[ "$(head -n1 "$T/mnt/probe")" = before ] || tfs_problem "busy mount point now shows another volume"
[ -z "$(tfs_daemon_pid "$T/vol2")" ] || tfs_problem "a tierfs daemon for the refused volume is running"

# Format of a mounted volume is refused too.
tfs_expect_refused "format of a mounted volume" "$TIERFS" format "$T/vol"
[ "$(cat "$T/mnt/probe")" = "$(printf 'before\nafter')" ] || tfs_problem "format disturbed the mount"

tfs_umount "$T/mnt"
frc=0
timeout 300 "$TIERFS" fsck "$T/vol" || frc=$?
[ "$frc" -eq 0 ] || tfs_problem "tierfs fsck exited $frc (0 = clean)"
tfs_finish
note "safety: every refusal was clean"
