#!/bin/bash
# health_s3.sh - the same truth and recovery on S3 (s3rver): the bucket is
# deleted under a live mount: status says uploads fail (persistent: the
# bucket is gone) and lists the file; the bucket is made again, empty: the
# queue drains with no remount, and the engine sees the store lost its
# objects (head gone) and uploads the files it had from local copies again
# (store verify clean, through the mount).
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
sync_require_cli

sync_s3_start 0
note "s3rver on 127.0.0.1:$S3_PORT"
VOL=$T/vol
MNT=$T/mnt
"$TIERFS" format --store "s3://tbucket/vol" "$VOL" >/dev/null || fail "format"
"$TIERFS" policy add --volume "$VOL" m --path '/m/**' --placement mirror --settle 1s >/dev/null || fail "policy add"
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
mkdir -p "$MNT/m"
sync_random "$MNT/m/a" 1
sync_cli "sync --wait" "$TIERFS" sync --wait "$MNT/m/a"
sync_cli "publish" "$TIERFS" publish --volume "$MNT"

rm -rf "$T/s3data/tbucket"
note "bucket deleted"
sync_random "$MNT/m/b" 1
for ((i = 0; i < 100; i++)); do
	s=$(sync_vol 'j["sync"]["health"]["upload"]["state"]' "$MNT")
	[ "$s" = failing ] && break
	sleep 0.2
done
[ "$s" = failing ] || tfs_problem "upload health is '$s' 20 s after the bucket was deleted"
note "upload error: $(sync_vol 'j["sync"]["health"]["upload"]["last_error"]' "$MNT")"
"$TIERFS" status --errors --volume "$MNT" >"$T/err.out" 2>&1
sed 's/^/    errors: /' "$T/err.out"
grep -q ' /m/b: ' "$T/err.out" || tfs_problem "status --errors does not list /m/b"

mkdir -p "$T/s3data/tbucket"
note "bucket made again (empty)"
sync_expect "$MNT/m/b" synced 40 "upload after the bucket came back" || true
for ((i = 0; i < 30; i++)); do
	rc=0
	timeout 60 "$TIERFS" store verify --volume "$MNT" >"$T/verify.out" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] && break
	sleep 1
done
sed 's/^/    verify: /' "$T/verify.out"
[ "$rc" -eq 0 ] || tfs_problem "store verify exits $rc 30 s after the bucket came back empty"
s=$(sync_vol 'j["sync"]["health"]["upload"]["state"]' "$MNT")
[ "$s" = ok ] || tfs_problem "upload health is '$s' after recovery"
tfs_umount "$MNT"
tfs_finish
note "health_s3: all passed"
