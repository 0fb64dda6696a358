#!/bin/bash
# store_s3.sh - the S3 backend against a real S3 server: s3rver (npm) on
# loopback with its data in a temporary directory. Runs the store contract
# (including a server killed with -9 mid-transfer and restarted, and wrong
# credentials), checks with curl's own SigV4 client that a large object was
# really uploaded in parts, and runs `tierfs store check` for a working
# store, wrong credentials, a missing bucket and an unreachable endpoint.
# s3rver checks the access key id but not V4 signatures; the signing code is
# checked against AWS's published examples in tests/unit/test_sigv4.c.
set -euo pipefail

: "${TIERFS_SRC:?}" "${TIERFS_BIN_DIR:?}" "${TIERFS:?}"
. "$TIERFS_SRC/tests/integration/npm_peers.sh"
npm_peers_install

contract="$TIERFS_BIN_DIR/tests/store_contract"
bench="$TIERFS_BIN_DIR/tests/store_bench"
tmp=$(mktemp -d /tmp/tierfs-store-s3.XXXXXX)
server_pid=
contract_pid=

cleanup() {
	[ -n "$contract_pid" ] && kill "$contract_pid" 2>/dev/null || true
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

for prog in "$contract" "$bench"; do
	[ -x "$prog" ] || fail "'$prog' is not built (build all targets first)"
done

# Start s3rver; port 0 lets the kernel pick a free port, which the log tells.
# s3rver's continuation tokens use DES, which needs OpenSSL's legacy provider.
start_s3rver() {
	local port=$1 log="$tmp/s3rver.$RANDOM.log"

	server_log=$log
	node --openssl-legacy-provider "$TIERFS_NODE_MODULES/s3rver/bin/s3rver.js" \
		-d "$tmp/data" -a 127.0.0.1 -p "$port" --configure-bucket tbucket >"$log" 2>&1 &
	server_pid=$!
	for _ in $(seq 100); do
		if grep -q 'listening on' "$log"; then
			PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
			return 0
		fi
		kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; fail "s3rver exited"; }
		sleep 0.1
	done
	cat "$log" >&2
	fail "s3rver did not start"
}

stop_s3rver() {
	kill -9 "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

mkdir -p "$tmp/data" "$tmp/outage"
start_s3rver 0
echo "# s3rver on 127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_S3_ADDRESSING_STYLE
export TIERFS_S3_MULTIPART_THRESHOLD=6M TIERFS_S3_PART_SIZE=5M

# 1. The contract, with the harness side of the outage check: once the
#    program says it is transferring, kill the server, wait, restart it on
#    the same port with the same data, and say so.
"$contract" --lenient-order --bad-env AWS_ACCESS_KEY_ID=NOSUCHKEY \
	--outage-dir "$tmp/outage" s3://tbucket/contract &
contract_pid=$!
for _ in $(seq 1200); do
	[ -e "$tmp/outage/ready" ] && break
	kill -0 "$contract_pid" 2>/dev/null || break
	sleep 0.1
done
[ -e "$tmp/outage/ready" ] || { wait "$contract_pid" || true; contract_pid=; fail "contract did not reach the outage check"; }
sleep 0.5 # let transfers get under way
echo "# killing s3rver (pid $server_pid) mid-transfer"
stop_s3rver
sleep 2
start_s3rver "$PORT"
echo "# s3rver restarted on 127.0.0.1:$PORT"
touch "$tmp/outage/restarted"
wait "$contract_pid" || { contract_pid=; fail "store contract failed"; }
contract_pid=

# 2. A multipart upload as the server saw it: its request log shows the
#    upload started, three parts and the completion; curl's own SigV4 client
#    then reads the object back whole.
"$bench" --total 13M --object 13M --threads 1 --prefix mp/ --keep s3://tbucket >/dev/null
# (s3rver's request log cuts the start of each line: match from the key on.)
log=$server_log
[ "$(grep -c 'mp/obj000000?uploads 200' "$log")" -eq 1 ] || fail "no CreateMultipartUpload in $log"
[ "$(grep -c 'mp/obj000000?partNumber=[1-3]&uploadId=[0-9a-f]* 200' "$log")" -eq 3 ] ||
	fail "not three parts: $(grep mp/obj "$log")"
grep -q 'mp/obj000000?uploadId=[0-9a-f]* 200' "$log" || fail "no CompleteMultipartUpload"
grep -q 'Stored object "mp/obj000000"' "$log" || fail "s3rver did not store the object"
size=$(curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
	-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$AWS_ENDPOINT_URL/tbucket/mp/obj000000" | wc -c)
[ "$size" -eq 13631488 ] || fail "curl read $size bytes of the multipart object"
echo "ok - a 13 MiB object went up as 3 parts and reads back whole with curl"

# 3. tierfs store check.
out=$("$TIERFS" store check s3://tbucket/check) || fail "store check failed: $out"
echo "$out"
for op in reachable credentials put get list delete; do
	echo "$out" | grep -q "^  $op .*\(yes\|accepted\|allowed\)" || fail "store check: no '$op' line"
done
echo "ok - store check passes against s3rver"

if out=$(AWS_ACCESS_KEY_ID=NOSUCHKEY "$TIERFS" store check s3://tbucket/check 2>&1); then
	fail "store check passed with a wrong access key"
fi
echo "$out" | grep -q "credentials  FAILED: .*InvalidAccessKeyId" || fail "wrong key not reported: $out"
echo "ok - store check reports wrong credentials"

if out=$("$TIERFS" store check s3://nosuchbucket 2>&1); then
	fail "store check passed on a missing bucket"
fi
echo "$out" | grep -q "bucket .*FAILED: .*does not exist" || fail "missing bucket not reported: $out"
echo "ok - store check reports a missing bucket"

stop_s3rver
if out=$("$TIERFS" store check s3://tbucket/check --endpoint "http://127.0.0.1:$PORT" 2>&1); then
	fail "store check passed with the server down"
fi
echo "$out" | grep -q "reachable .*FAILED: .*unreachable" || fail "unreachable not reported: $out"
echo "ok - store check reports an unreachable store"
echo "# store_s3: all passed"
