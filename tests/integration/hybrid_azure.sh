#!/bin/bash
# hybrid_azure.sh - the hybrid read path on Azure Blob Storage (azurite on
# loopback, SharedKey signatures checked): a home mount formatted with
# --store azure://, a mirrored tree (small, 9 MiB multi-chunk, sparse, empty,
# symlink, nested) and an on-demand file; one cloud mount reads everything
# byte-exact, the on-demand file through a request to home; write-back's
# basic path: a node with its own key writes a result (temp-then-rename)
# that home imports and acknowledges; no plaintext name or content in
# azurite's data.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
. "$TIERFS_SRC/tests/integration/cloud_lib.sh"
. "$TIERFS_SRC/tests/integration/npm_peers.sh"
npm_peers_install || fail "npm peers"

AZ_PID=
az_stop() { [ -n "$AZ_PID" ] && kill -9 "$AZ_PID" 2>/dev/null; wait "$AZ_PID" 2>/dev/null; AZ_PID=; }
sync_on_exit az_stop
for _ in 1 2 3 4 5; do
	PORT=$((20000 + RANDOM % 40000))
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && continue
	"$TIERFS_NODE_MODULES/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$PORT" \
		--location "$T/azurite" --silent >>"$T/azurite.log" 2>&1 &
	AZ_PID=$!
	cloud_wait_for 15 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" && break
	az_stop
done
[ -n "$AZ_PID" ] || fail "azurite did not start"
note "azurite on 127.0.0.1:$PORT"
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$PORT/devstoreaccount1;"
unset AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN

TOK="hybaz$RANDOM$RANDOM"
URL=azure://thybrid/vol
VOL=$T/vol
H=$T/home
"$TIERFS" format --store "$URL" "$VOL" >/dev/null || fail "tierfs format --store $URL"
"$TIERFS" policy add exp --volume "$VOL" --path '/exp/**' --placement mirror --settle 1s >/dev/null || fail "policy add"
"$TIERFS" policy add od --volume "$VOL" --path '/od/**' --placement on-demand >/dev/null || fail "policy add"
"$TIERFS" policy add res --volume "$VOL" --path '/res/**' --placement mirror --settle 1s --cloud-write \
	>/dev/null || fail "policy add --cloud-write"
tfs_mount "$VOL" "$H" -o sync_interval=1,publish_interval=1,recall_timeout=3,gc_grace=-1
"$TIERFS" key export --volume "$VOL" >"$T/key" || fail "tierfs key export"

mkdir -p "$H/exp/nest_$TOK/deeper_$TOK" "$H/od" "$H/priv_$TOK"
echo "small content $TOK" >"$H/exp/small_$TOK.txt"
head -c 9437184 /dev/urandom >"$H/exp/big_$TOK.bin"
truncate -s 5M "$H/exp/sparse_$TOK.img"
echo "sparse tail $TOK" >>"$H/exp/sparse_$TOK.img"
: >"$H/exp/empty_$TOK"
ln -s "nest_$TOK/deeper_$TOK/deep_$TOK.txt" "$H/exp/link_$TOK"
echo "deep content $TOK" >"$H/exp/nest_$TOK/deeper_$TOK/deep_$TOK.txt"
echo "on-demand content $TOK" >"$H/od/od_$TOK.txt"
echo "private content $TOK" >"$H/priv_$TOK/secret_$TOK.txt"
sleep 2
for ((i = 0; i < 150; i++)); do
	[ "$(sync_vol 'j["sync"]["queue"]' "$H")" = 0 ] && break
	sleep 0.2
done
[ "$(sync_vol 'j["sync"]["queue"]' "$H")" = 0 ] || tfs_problem "upload queue not empty after 30 s"
"$TIERFS" publish --volume "$H" >/dev/null || fail "tierfs publish"

cloud_mount "$URL" "$T/m1" "$T/c1" --cache-size 1G -o poll=1,request_timeout=20
start=$(date +%s)
out=$(timeout 40 cat "$T/m1/od/od_$TOK.txt" 2>&1)
[ "$out" = "on-demand content $TOK" ] || tfs_problem "on-demand read: '$out'"
note "on-demand read after $(($(date +%s) - start)) s"
(cd "$H" && find exp -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) >"$T/want.sum"
(cd "$T/m1" && timeout 60 sha256sum --quiet -c "$T/want.sum") >"$T/sum.out" 2>&1 ||
	{ sed 's/^/    /' "$T/sum.out" | head >&2; tfs_problem "contents read from azurite differ from home"; }
[ "$(readlink "$T/m1/exp/link_$TOK")" = "nest_$TOK/deeper_$TOK/deep_$TOK.txt" ] || tfs_problem "symlink target"
[ "$(stat -c %s "$T/m1/exp/empty_$TOK")" = 0 ] || tfs_problem "empty file"
[ "$(stat -c %s "$T/m1/exp/sparse_$TOK.img")" = "$(stat -c %s "$H/exp/sparse_$TOK.img")" ] || tfs_problem "sparse size"
[ -e "$T/m1/priv_$TOK" ] && tfs_problem "the private directory is visible"
echo "ok - home on azurite; a cloud mount reads the tree byte-exact"

note "write-back on azurite: a node writes a result, home imports it"
"$TIERFS" node add az-node --volume "$VOL" --out "$T/node.key" >/dev/null || fail "tierfs node add"
mkdir -p "$T/n1"
TFS_MOUNTS+=("$T/n1")
TFS_VOLUMES+=("$T/cn1")
timeout 30 "$TIERFS" mount --cloud --key-file "$T/node.key" --cache "$T/cn1" -o poll=1,request_timeout=20 \
	"$URL" "$T/n1" || fail "cloud mount with a node key"
mkdir -p "$T/n1/res/run_$TOK" || tfs_problem "mkdir in the writable area on azurite"
head -c 5242880 /dev/urandom >"$T/result.bin"
cp "$T/result.bin" "$T/n1/res/run_$TOK/.part" && mv "$T/n1/res/run_$TOK/.part" "$T/n1/res/run_$TOK/result_$TOK.bin" ||
	tfs_problem "temp-then-rename on the node"
echo "x" >"$T/n1/exp/refused_$TOK" 2>/dev/null && tfs_problem "a write outside the cloud-write rule was accepted"
"$TIERFS" sync --imported --timeout=120 "$T/n1" || tfs_problem "sync --imported on azurite"
cmp -s "$T/result.bin" "$H/res/run_$TOK/result_$TOK.bin" || tfs_problem "home: the node's result differs or is missing"
[ -e "$H/res/run_$TOK/.part" ] && tfs_problem "home: the temporary name is there"
"$TIERFS" status "$T/n1/res/run_$TOK/result_$TOK.bin" | grep -q imported || tfs_problem "node: state is not imported"
cloud_umount "$T/n1" "$T/cn1"
echo "ok - write-back on azurite: imported byte-exact, acknowledged"

n=$(find "$T/azurite" -type f | wc -l)
[ "$n" -gt 0 ] || tfs_problem "azurite stored nothing under $T/azurite"
if grep -a -r -l -F "$TOK" "$T/azurite" >"$T/leak"; then
	tfs_problem "a plaintext name or content is in azurite's data: $(head -n3 "$T/leak" | tr '\n' ' ')"
fi
echo "ok - nothing in plaintext in azurite's $n files"
cloud_umount "$T/m1" "$T/c1"
tfs_umount "$H"
tfs_finish
