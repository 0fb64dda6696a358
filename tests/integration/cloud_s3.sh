#!/bin/bash
# cloud_s3.sh - the cloud mount's core read path on an S3 store (s3rver on
# loopback): a clear refusal when the store is unreachable at mount time,
# two mounts showing a published tree byte-exact, a switch to a new
# snapshot, and an outage (s3rver killed): cached data is still served,
# uncached data fails with EIO within the bounded wait, and reads work
# again once the server is back.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
. "$TIERFS_SRC/tests/integration/cloud_lib.sh"

sync_s3_start
note "s3rver on 127.0.0.1:$S3_PORT"
URL=s3://tbucket/vol
OPTS="poll=1,request_timeout=4"
mkdir -p "$T/src" "$T/m1"
cloud_tree "$T/src"
cloud_publish "$T/src" "$URL" --no-data ondemand.txt >/dev/null

start=$(date +%s)
AWS_ENDPOINT_URL=http://127.0.0.1:1 tfs_expect_refused "mount with the store unreachable" \
	"$TIERFS" mount --cloud --key-file "$T/key" --cache "$T/c0" "$URL" "$T/m1"
echo "$TFS_ERR_LINE" | grep -q "cannot read '$URL'" || tfs_problem "unclear error: $TFS_ERR_LINE"
note "refused after $(($(date +%s) - start)) s"

for i in 1 2; do
	cloud_mount "$URL" "$T/m$i" "$T/c$i" -o "$OPTS"
	cloud_check_tree "$T/src" "$T/m$i" "s3 mount $i"
done
echo "ok - two mounts on s3rver show the tree byte-exact"

head -c 2097152 /dev/urandom >"$T/src/mod.bin"
touch -d '+1 hour' "$T/src/mod.bin"
echo "new" >"$T/src/new.txt"
cloud_publish "$T/src" "$URL" --no-data ondemand.txt >/dev/null
for i in 1 2; do
	cloud_wait_for 10 test -e "$T/m$i/new.txt" || tfs_problem "snapshot 2 not visible on mount $i"
	cmp -s "$T/src/mod.bin" "$T/m$i/mod.bin" || tfs_problem "mount $i: mod.bin is not the new version"
done
echo "ok - snapshot switch on s3rver"

cloud_mount "$URL" "$T/m3" "$T/c3" -o "$OPTS" # cold
ls "$T/m3" >/dev/null
sync_s3_stop
cmp -s "$T/src/big.bin" "$T/m1/big.bin" || tfs_problem "outage: cached big.bin not served"
start=$(date +%s)
if out=$(cat "$T/m3/later.bin" 2>&1 >/dev/null); then
	tfs_problem "outage: uncached later.bin was read"
else
	echo "$out" | grep -q "Input/output error" || tfs_problem "outage: expected EIO, got: $out"
fi
took=$(($(date +%s) - start))
[ "$took" -le 10 ] || tfs_problem "outage: EIO after $took s"
grep -q "later.bin" "$T/c3/tierfs.log" || tfs_problem "outage: no log line"
sync_s3_start "$S3_PORT"
cloud_wait_for 15 cmp -s "$T/src/later.bin" "$T/m3/later.bin" || tfs_problem "later.bin unreadable after the outage"
echo "ok - s3 outage: cached data served, uncached EIO in $took s, back after restart"

for i in 1 2 3; do
	cloud_umount "$T/m$i" "$T/c$i"
done
tfs_finish
