#!/bin/bash
# store_azure.sh - the Azure Blob backend against azurite, Microsoft's own
# emulator, which checks SharedKey and SAS signatures: so this proves the
# signing as well as the REST calls. Runs azure_smoke (and store_contract
# when it is built) with a connection string, with account+key and an
# endpoint override, and with an account SAS made here with openssl; checks
# that a wrong key or SAS gives -EACCES at once; stops the server in the
# middle of a run of uploads, restarts it, and expects every object intact;
# and checks the bounded failure with no server at all. Azurite listens on
# 127.0.0.1 on a port picked here and is killed on every exit path.
set -euo pipefail

: "${TIERFS_SRC:?}" "${TIERFS_BIN_DIR:?}"
SMOKE="$TIERFS_BIN_DIR/tests/azure_smoke"
CONTRACT="$TIERFS_BIN_DIR/tests/store_contract"
[ -x "$SMOKE" ] || { echo "store_azure: '$SMOKE' is not built" >&2; exit 1; }

TMP=$(mktemp -d /tmp/tierfs-azure.XXXXXX)
AZ_PID=
BG_PID=
cleanup() {
	[ -n "$BG_PID" ] && kill "$BG_PID" 2>/dev/null || true
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

# azurite from the tests' npm manifest (tests/package.json), else a cache.
find_azurite() {
	local d
	for d in "$TIERFS_SRC/tests/node_modules/.bin" "${TIERFS_NPM_CACHE:-$HOME/.cache/tierfs-npm}/node_modules/.bin"; do
		[ -x "$d/azurite-blob" ] && { echo "$d/azurite-blob"; return 0; }
	done
	command -v azurite-blob 2>/dev/null
}
AZURITE=$(find_azurite || true)
if [ -z "$AZURITE" ]; then
	if [ -f "$TIERFS_SRC/tests/package.json" ] && grep -q '"azurite"' "$TIERFS_SRC/tests/package.json"; then
		npm install --prefix "$TIERFS_SRC/tests" --no-audit --no-fund >"$TMP/npm.log" 2>&1 ||
			{ cat "$TMP/npm.log" >&2; fail "npm install of tests/package.json failed"; }
	else
		npm install --prefix "${TIERFS_NPM_CACHE:-$HOME/.cache/tierfs-npm}" --no-audit --no-fund \
			azurite@3.37.0 >"$TMP/npm.log" 2>&1 ||
			{ cat "$TMP/npm.log" >&2; fail "npm install azurite failed"; }
	fi
	AZURITE=$(find_azurite) || fail "azurite-blob not found after npm install"
fi

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

# Stop azurite: with SIGTERM it saves its state and exits (gracefully, but
# cutting off the requests in flight); SIGKILL would lose acknowledged
# writes, which a real store never does.
stop_azurite() {
	kill "${1:--KILL}" "$AZ_PID" 2>/dev/null || true
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
unset AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN

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
AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$WRONG_KEY;BlobEndpoint=$ENDPOINT;" \
	"$SMOKE" azure://tierfs-test/cs eacces | tee "$TMP/eacces.out"
grep -q "refused by account 'devstoreaccount1'" "$TMP/eacces.out" || fail "no clear message for a wrong key"

echo "== wrong SAS signature: -EACCES"
AZURE_STORAGE_CONNECTION_STRING="BlobEndpoint=$ENDPOINT;SharedAccessSignature=${SAS%sig=*}sig=AAAA$SIG" \
	"$SMOKE" azure://tierfs-sas/p eacces

if [ -x "$CONTRACT" ]; then
	echo "== store contract"
	AZURE_STORAGE_CONNECTION_STRING="$DEV_CS" "$CONTRACT" azure://tierfs-contract/run
else
	echo "== store contract: '$CONTRACT' not built, skipped"
fi

echo "== server stopped in the middle of uploads, then restarted"
# 24 objects of 2 MiB, each 8 blocks of 256 KiB: a few hundred requests.
AZURE_STORAGE_CONNECTION_STRING="$DEV_CS" "$SMOKE" azure://tierfs-test/restart putmany 24 2M \
	>"$TMP/putmany.out" 2>&1 &
BG_PID=$!
for _ in $(seq 600); do
	grep -q 'put many/0002' "$TMP/putmany.out" && break
	kill -0 "$BG_PID" 2>/dev/null || break
	sleep 0.02
done
kill -0 "$BG_PID" 2>/dev/null || { cat "$TMP/putmany.out" >&2; fail "uploads ended before the server was stopped"; }
grep -q 'put many/0023' "$TMP/putmany.out" && fail "uploads finished before the server was stopped"
before=$(grep -c '^putmany: put' "$TMP/putmany.out" || true)
t_stop=$SECONDS
stop_azurite -TERM
echo "stopped azurite after $before of 24 uploads (it took $((SECONDS - t_stop)) s to exit)"
sleep 1
start_azurite || { cat "$TMP/azurite.log" >&2; fail "azurite did not restart"; }
rc=0
wait "$BG_PID" || rc=$?
BG_PID=
cat "$TMP/putmany.out"
[ "$rc" -eq 0 ] || fail "uploads across a server restart failed (exit $rc)"
grep -q '^putmany: ok' "$TMP/putmany.out" || fail "objects not read back intact"

echo "== no server: bounded wait, then -ECONNREFUSED"
stop_azurite
AZURE_STORAGE_CONNECTION_STRING="$DEV_CS" "$SMOKE" azure://tierfs-test/cs offline

echo "store_azure: all passed"
