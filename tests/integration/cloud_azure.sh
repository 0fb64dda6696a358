#!/bin/bash
# cloud_azure.sh - the cloud mount's basic read path on Azure Blob Storage
# (azurite on loopback, SharedKey signatures checked): a published tree
# reads back byte-exact through a cloud mount, and a new snapshot switches in.
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

URL=azure://tcloud/vol
mkdir -p "$T/src"
cloud_tree "$T/src"
cloud_publish "$T/src" "$URL" --no-data ondemand.txt >/dev/null
cloud_mount "$URL" "$T/m1" "$T/c1" -o poll=1,request_timeout=4
cloud_check_tree "$T/src" "$T/m1" "azure mount"
echo "ok - the tree reads back byte-exact from azurite"
echo "new" >"$T/src/new.txt"
cloud_publish "$T/src" "$URL" --no-data ondemand.txt >/dev/null
cloud_wait_for 10 test -e "$T/m1/new.txt" || tfs_problem "snapshot 2 not visible"
echo "ok - snapshot switch on azurite"
cloud_umount "$T/m1" "$T/c1"
tfs_finish
