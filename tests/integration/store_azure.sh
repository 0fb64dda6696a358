#!/bin/bash
# store_azure.sh - the Azure Blob backend against azurite, Microsoft's own
# emulator, which checks SharedKey and SAS signatures: so this proves the
# signing as well as the REST calls. Runs the store contract (with wrong
# credentials, and an outage mid-transfer: a relay in front of azurite
# killed with -9 and restarted), then
# azure_smoke with account+key and an endpoint override and with an account
# SAS made here with openssl (block uploads and list paging forced by small
# thresholds), a wrong key and a wrong SAS (-EACCES at once, no retries),
# uploads across a kill and restart that loses the container and the
# uncommitted blocks, `tierfs store check`, and the bounded failure with no
# server. Azurite listens on 127.0.0.1 on a port picked here and is killed
# on every exit path.
set -euo pipefail

: "${TIERFS_SRC:?}" "${TIERFS_BIN_DIR:?}"
. "$TIERFS_SRC/tests/integration/npm_peers.sh"
npm_peers_install
AZURITE="$TIERFS_NODE_MODULES/.bin/azurite-blob"
SMOKE="$TIERFS_BIN_DIR/tests/azure_smoke"
CONTRACT="$TIERFS_BIN_DIR/tests/store_contract"

TMP=$(mktemp -d /tmp/tierfs-azure.XXXXXX)
AZ_PID=
BG_PID=
cleanup() {
	[ -n "$BG_PID" ] && kill "$BG_PID" 2>/dev/null || true
	[ -n "${RELAY_PID:-}" ] && kill -9 "$RELAY_PID" 2>/dev/null || true
	[ -n "$AZ_PID" ] && kill -9 "$AZ_PID" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "store_azure: FAIL: $*" >&2
	exit 1
}

for prog in "$SMOKE" "$CONTRACT" "$AZURITE"; do
	[ -x "$prog" ] || fail "'$prog' is not built (build all targets first)"
done

# Start azurite on $PORT with its data in $TMP/azurite; 0 once it listens.
start_azurite() {
	mkdir -p "$TMP/azurite"
	"$AZURITE" --blobHost 127.0.0.1 --blobPort "$PORT" --location "$TMP/azurite" \
		--silent >>"$TMP/azurite.log" 2>&1 &
	AZ_PID=$!
	for _ in $(seq 150); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
			return 0
		fi
		kill -0 "$AZ_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Kill azurite. (SIGTERM is no better: azurite then waits for the clients'
# keep-alive connections to close before it saves and exits.)
stop_azurite() {
	kill -9 "$AZ_PID" 2>/dev/null || true
	wait "$AZ_PID" 2>/dev/null || true
	AZ_PID=
}

# A free port: one nothing answers on, retried if azurite cannot bind it.
started=
for _ in 1 2 3 4 5; do
	PORT=$((20000 + RANDOM % 40000))
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && continue
	if start_azurite; then
		started=1
		break
	fi
	stop_azurite
done
[ -n "$started" ] || { cat "$TMP/azurite.log" >&2; fail "azurite did not start"; }
echo "store_azure: azurite on 127.0.0.1:$PORT"

DEV_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
ENDPOINT="http://127.0.0.1:$PORT/devstoreaccount1"
DEV_CS="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$DEV_KEY;BlobEndpoint=$ENDPOINT;"
WRONG_KEY=$(printf 'not-the-devstoreaccount1-key-at-all-0123456789abcdef0123456789ab' | base64 -w0)
WRONG_CS="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$WRONG_KEY;BlobEndpoint=$ENDPOINT;"
unset AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN

# A TCP relay in front of azurite, killed with -9 for the contract's outage:
# azurite saves its metadata only every 5 s, so killing azurite itself loses
# writes it acknowledged, which Azure never does, and the contract rightly
# reads back everything acknowledged. The relay's death cuts the requests
# in flight and refuses new ones exactly as a dead server would. (Killing
# azurite itself is tested further down, with checks that allow its loss.)
start_relay() {
	node -e '
		const net = require("net");
		const [listen, target] = process.argv.slice(1).map(Number);
		net.createServer((c) => {
			const u = net.connect(target, "127.0.0.1");
			c.pipe(u); u.pipe(c);
			c.on("error", () => u.destroy()); u.on("error", () => c.destroy());
		}).listen(listen, "127.0.0.1");' "$RELAY_PORT" "$PORT" &
	RELAY_PID=$!
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$RELAY_PORT") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
RELAY_PID=
for _ in 1 2 3 4 5; do
	RELAY_PORT=$((20000 + RANDOM % 40000))
	(exec 3<>"/dev/tcp/127.0.0.1/$RELAY_PORT") 2>/dev/null && continue
	start_relay && break
	kill -9 "$RELAY_PID" 2>/dev/null || true
	RELAY_PID=
done
[ -n "$RELAY_PID" ] || fail "the relay did not start"
RELAY_CS="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$DEV_KEY;BlobEndpoint=http://127.0.0.1:$RELAY_PORT/devstoreaccount1;"

echo "== store contract (connection string), wrong key, outage mid-transfer"
# Blocks of 5 MiB from 6 MiB on, so the contract's big object is blocked.
mkdir -p "$TMP/outage"
AZURE_STORAGE_CONNECTION_STRING="$RELAY_CS" TIERFS_AZURE_BLOCK_THRESHOLD=6M TIERFS_AZURE_BLOCK_SIZE=5M \
	"$CONTRACT" --bad-env "AZURE_STORAGE_CONNECTION_STRING=$WRONG_CS" \
	--outage-dir "$TMP/outage" azure://tierfs-contract/run &
BG_PID=$!
for _ in $(seq 1200); do
	[ -e "$TMP/outage/ready" ] && break
	kill -0 "$BG_PID" 2>/dev/null || break
	sleep 0.1
done
[ -e "$TMP/outage/ready" ] || { wait "$BG_PID" || true; BG_PID=; fail "contract did not reach the outage check"; }
sleep 0.5 # let transfers get under way
echo "# killing the relay (pid $RELAY_PID) mid-transfer"
kill -9 "$RELAY_PID"
wait "$RELAY_PID" 2>/dev/null || true
sleep 2
start_relay || fail "the relay did not restart"
echo "# relay restarted on 127.0.0.1:$RELAY_PORT"
touch "$TMP/outage/restarted"
rc=0
wait "$BG_PID" || rc=$?
BG_PID=
[ "$rc" -eq 0 ] || fail "store contract failed"
kill -9 "$RELAY_PID"
wait "$RELAY_PID" 2>/dev/null || true
RELAY_PID=

# Small thresholds so that block uploads and list paging happen on small data.
export TIERFS_AZURE_BLOCK_THRESHOLD=1M TIERFS_AZURE_BLOCK_SIZE=256K TIERFS_AZURE_LIST_MAX=2

echo "== connection string (SharedKey), container created on first put"
AZURE_STORAGE_CONNECTION_STRING="$DEV_CS" "$SMOKE" azure://tierfs-test/cs basic

echo "== account and key, endpoint from store_opts"
AZURE_STORAGE_ACCOUNT=devstoreaccount1 AZURE_STORAGE_KEY="$DEV_KEY" AZURE_SMOKE_ENDPOINT="$ENDPOINT" \
	"$SMOKE" azure://tierfs-test/env basic

echo "== account SAS token"
# Account SAS, version 2020-12-06 and later: sign the fields with the key.
SV=2021-08-06
SE=2099-01-01T00:00:00Z
HEXKEY=$(printf '%s' "$DEV_KEY" | base64 -d | od -An -tx1 -v | tr -d ' \n')
SIG=$(printf 'devstoreaccount1\nrwdlacup\nb\nsco\n\n%s\n\nhttps,http\n%s\n\n' "$SE" "$SV" |
	openssl dgst -sha256 -mac HMAC -macopt "hexkey:$HEXKEY" -binary | base64 -w0 |
	sed 's/+/%2B/g; s#/#%2F#g; s/=/%3D/g')
SAS="sv=$SV&ss=b&srt=sco&sp=rwdlacup&se=$SE&spr=https,http&sig=$SIG"
AZURE_STORAGE_ACCOUNT=devstoreaccount1 AZURE_STORAGE_SAS_TOKEN="?$SAS" AZURE_SMOKE_ENDPOINT="$ENDPOINT" \
	"$SMOKE" azure://tierfs-sas/p basic

echo "== wrong account key: -EACCES at once, clear message"
AZURE_STORAGE_CONNECTION_STRING="$WRONG_CS" "$SMOKE" azure://tierfs-test/cs eacces | tee "$TMP/eacces.out"
grep -q "access denied by account 'devstoreaccount1'" "$TMP/eacces.out" || fail "no clear message for a wrong key"

echo "== wrong SAS signature: -EACCES"
AZURE_STORAGE_CONNECTION_STRING="BlobEndpoint=$ENDPOINT;SharedAccessSignature=${SAS%sig=*}sig=AAAA$SIG" \
	"$SMOKE" azure://tierfs-sas/p eacces

echo "== server killed in the middle of uploads, then restarted"
# 24 objects of 2 MiB, each 8 blocks of 256 KiB: a few hundred requests.
# azurite saves its metadata every 5 s, so a kill loses what it acknowledged
# just before; the uploads in flight must still all succeed (the backend
# recreates the container and re-uploads lost blocks), and every object from
# the one in flight at the kill on must read back intact.
AZURE_STORAGE_CONNECTION_STRING="$DEV_CS" "$SMOKE" azure://tierfs-test/restart putmany 24 2M \
	>"$TMP/putmany.out" 2>&1 &
BG_PID=$!
for _ in $(seq 600); do
	grep -q 'put many/0002' "$TMP/putmany.out" && break
	kill -0 "$BG_PID" 2>/dev/null || break
	sleep 0.02
done
kill -0 "$BG_PID" 2>/dev/null || { cat "$TMP/putmany.out" >&2; fail "uploads ended before the server was killed"; }
stop_azurite
before=$(grep -c '^putmany: put' "$TMP/putmany.out" || true)
[ "$before" -lt 24 ] || fail "uploads finished before the server was killed"
echo "killed azurite after $before of 24 uploads"
sleep 1
start_azurite || { cat "$TMP/azurite.log" >&2; fail "azurite did not restart"; }
rc=0
wait "$BG_PID" || rc=$?
BG_PID=
cat "$TMP/putmany.out"
[ "$rc" -eq 0 ] || fail "uploads across a server restart failed (exit $rc)"
grep -q '^putmany: ok' "$TMP/putmany.out" || fail "uploads did not all succeed"
AZURE_STORAGE_CONNECTION_STRING="$DEV_CS" "$SMOKE" azure://tierfs-test/restart verifymany "$before" 24 2M

if [ -x "${TIERFS:-}" ]; then
	echo "== tierfs store check"
	out=$(AZURE_STORAGE_CONNECTION_STRING="$DEV_CS" "$TIERFS" store check azure://tierfs-check/p) ||
		fail "store check failed: $out"
	echo "$out"
	for op in reachable credentials put get list delete; do
		echo "$out" | grep -q "^  $op .*\(yes\|accepted\|allowed\)" || fail "store check: no '$op' line"
	done
	if out=$(AZURE_STORAGE_CONNECTION_STRING="$WRONG_CS" "$TIERFS" store check azure://tierfs-check/p 2>&1); then
		fail "store check passed with a wrong key"
	fi
	echo "$out" | grep -q "credentials  FAILED: .*access denied" || fail "wrong key not reported: $out"
	echo "ok - store check reports a wrong key"
else
	echo "== tierfs store check: '\$TIERFS' not built, skipped"
fi

echo "== no server: bounded wait, then -ECONNREFUSED"
stop_azurite
AZURE_STORAGE_CONNECTION_STRING="$DEV_CS" "$SMOKE" azure://tierfs-test/cs offline

echo "store_azure: all passed"
