#!/bin/bash
# health.sh - 'tierfs status' tells the truth about the store, from the sync
# engine's real operations, and the engine recovers by itself.
# A file:// store whose directory is deleted: status says the store is
# FAILING (never "reachable"/ok) with the upload's error and when it began,
# --json per direction (upload failures counted, last success kept),
# 'status --errors' lists the file that does not sync as persistent, and
# 'status --check' exits 1 with one line (failure threshold, queue age) and
# 0 when healthy. The directory made again: the queue drains with no
# remount, the file the store lost is uploaded again by itself (store
# verify is clean) and everything is ok again. The same with the directory made
# immutable (chattr +i) and then writable again.
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
sync_require_cli

VOL=$T/vol
MNT=$T/mnt
STORE=$T/store
"$TIERFS" format --store "file://$STORE" "$VOL" >/dev/null || fail "format"
"$TIERFS" policy add --volume "$VOL" m --path '/m/**' --placement mirror --settle 1s >/dev/null || fail "policy add"
MPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS,metrics=127.0.0.1:$MPORT"
sync_on_exit "chattr -R -i '$STORE' 2>/dev/null"
mkdir -p "$MNT/m"

hv() { sync_vol "$1" "$MNT"; }
# metric NAME{LABELS}: its value in 'tierfs metrics' (empty when absent);
# every sample line must be in the Prometheus text format.
metric()
{
	timeout 20 "$TIERFS" metrics "$MNT" >"$T/metrics.out" 2>&1 || { echo "?metrics failed"; return; }
	grep -vE '^# (HELP|TYPE) ' "$T/metrics.out" | grep -vE '^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$' |
		head -n 2 | sed 's/^/?bad line: /'
	awk -v k="$1" '$1 == k { print $2 }' "$T/metrics.out"
}

# 1. Healthy: an upload happened, the store is ok, --check says so.
sync_random "$MNT/m/a" 1
sync_cli "sync --wait" "$TIERFS" sync --wait "$MNT/m/a"
# the mount writes its health record once a tick: the upload shows within seconds
for ((i = 0; i < 50; i++)); do
	[ "$(hv 'j["sync"]["health"]["upload"]["state"]')" = ok ] && break
	sleep 0.2
done
s=$(hv 'j["sync"]["store"]')
[ "$s" = ok ] || tfs_problem "store is '$s' after a successful upload, expected ok"
s=$(hv 'j["sync"]["health"]["upload"]["state"]')
[ "$s" = ok ] || tfs_problem "upload health is '$s' after a successful upload"
ls1=$(hv 'j["sync"]["health"]["upload"]["last_success"]')
[ "$ls1" != null ] && [ -n "$ls1" ] || tfs_problem "no last upload success recorded: '$ls1'"
rc=0
"$TIERFS" status --check "$MNT" >"$T/check.out" 2>"$T/check.err" || rc=$?
[ "$rc" -eq 0 ] || tfs_problem "status --check exited $rc on a healthy volume: $(cat "$T/check.err")"
up_ok=$(metric 'tierfs_store_requests_total{direction="upload",result="ok"}')
up_err0=$(metric 'tierfs_store_requests_total{direction="upload",result="error"}')
qf=$(metric tierfs_upload_queue_files)
note "metrics: uploads ok $up_ok, errors $up_err0, queue $qf"
{ [ "$up_ok" -ge 1 ] 2>/dev/null; } || tfs_problem "metrics: upload ok requests '$up_ok' after an upload"
[ "$qf" = 0 ] || tfs_problem "metrics: upload queue '$qf' after sync --wait"

# expect_failing WHAT: within 20 s the status reports uploads failing.
expect_failing()
{
	local what=$1 i s f
	for ((i = 0; i < 100; i++)); do
		s=$(hv 'j["sync"]["health"]["upload"]["state"]')
		[ "$s" = failing ] && break
		sleep 0.2
	done
	[ "$s" = failing ] || { tfs_problem "$what: upload health is '$s' 20 s after uploads started failing"; return 1; }
	s=$(hv 'j["sync"]["store"]')
	[ "$s" = failing ] || tfs_problem "$what: store is '$s' with uploads failing"
	f=$(hv 'j["sync"]["health"]["upload"]["failures"]')
	{ [ "$f" -ge 1 ] 2>/dev/null; } || tfs_problem "$what: upload failures is '$f'"
	s=$(hv 'j["sync"]["health"]["upload"]["last_error"]')
	note "$what: upload last_error: $s"
	case $s in null | "") tfs_problem "$what: no upload last_error" ;; esac
	s=$(hv 'j["sync"]["health"]["upload"]["last_success"]')
	[ "$s" = "$ls1" ] || tfs_problem "$what: last upload success changed from '$ls1' to '$s' while failing"
	"$TIERFS" status "$MNT" >"$T/status.out" 2>&1 || tfs_problem "$what: status exited non-zero"
	grep -q '^store: *FAILING since ' "$T/status.out" || tfs_problem "$what: human status does not say FAILING: $(grep '^store' "$T/status.out")"
	grep -qi 'reachable' "$T/status.out" && tfs_problem "$what: human status still says reachable"
	sed 's/^/    status: /' "$T/status.out" | tail -n 9
	return 0
}

# expect_recovered WHAT FILE: the queue drains by itself, the store is ok.
expect_recovered()
{
	local what=$1 file=$2 s
	sync_expect "$MNT/$file" synced 40 "$what: upload after the store came back, no remount" || true
	for ((i = 0; i < 50; i++)); do
		s=$(hv 'j["sync"]["store"]')
		[ "$s" = ok ] && break
		sleep 0.2
	done
	[ "$s" = ok ] || tfs_problem "$what: store is '$s' after the queue drained"
	s=$(hv 'j["sync"]["queue"]')
	[ "$s" = 0 ] || tfs_problem "$what: queue is '$s' after recovery"
	rc=0
	"$TIERFS" status --check "$MNT" >"$T/check.out" 2>"$T/check.err" || rc=$?
	[ "$rc" -eq 0 ] || tfs_problem "$what: status --check exited $rc after recovery: $(cat "$T/check.err")"
	"$TIERFS" status --errors "$MNT" >"$T/err.out" 2>&1 || tfs_problem "$what: status --errors failed"
	grep -q "$file" "$T/err.out" && tfs_problem "$what: '$file' still listed by status --errors: $(cat "$T/err.out")"
	return 0
}

# 2. The store's directory is deleted: every upload fails.
rm -rf "$STORE"
note "store directory deleted"
sync_random "$MNT/m/b" 1
expect_failing "deleted store" || true
up_err=$(metric 'tierfs_store_requests_total{direction="upload",result="error"}')
qf=$(metric tierfs_upload_queue_files)
fl=$(metric 'tierfs_store_failures{direction="upload"}')
note "metrics while failing: upload errors $up_err, queue $qf, failures $fl"
{ [ "$up_err" -gt "$up_err0" ] 2>/dev/null; } || tfs_problem "metrics: upload errors '$up_err' did not grow from '$up_err0' while uploads fail"
[ "$qf" = 1 ] || tfs_problem "metrics: upload queue '$qf' with one file waiting"
{ [ "$fl" -ge 1 ] 2>/dev/null; } || tfs_problem "metrics: upload failures gauge '$fl' while failing"
# --check: past the failure threshold -> 1 and one line naming uploads
rc=0
"$TIERFS" status --check --max-upload-failures 1 "$MNT" >"$T/check.out" 2>"$T/check.err" || rc=$?
note "status --check: exit $rc: $(cat "$T/check.err")"
[ "$rc" -eq 1 ] || tfs_problem "status --check exited $rc with uploads failing, expected 1"
[ "$(wc -l <"$T/check.err")" -eq 1 ] || tfs_problem "status --check printed $(wc -l <"$T/check.err") lines, expected one"
grep -q '^tierfs: .*upload' "$T/check.err" || tfs_problem "status --check does not name the uploads: $(cat "$T/check.err")"
# below the failure threshold, the queue age bound still trips
sleep 2
rc=0
"$TIERFS" status --check --max-upload-failures 100000 --max-queue-age 1 "$MNT" >"$T/check.out" 2>"$T/check.err" || rc=$?
note "status --check (queue age 1 s): exit $rc: $(cat "$T/check.err")"
[ "$rc" -eq 1 ] || tfs_problem "status --check --max-queue-age 1 exited $rc with a file queued for 2+ s"
grep -q 'queued' "$T/check.err" || tfs_problem "status --check (queue age) does not say why: $(cat "$T/check.err")"
rc=0
"$TIERFS" status --check --max-upload-failures 100000 --max-queue-age 1h "$MNT" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 0 ] || tfs_problem "status --check with both bounds far exited $rc"
# --errors lists the file, persistent (a missing store directory needs the operator)
"$TIERFS" status --errors "$MNT" >"$T/err.out" 2>&1 || tfs_problem "status --errors failed"
sed 's/^/    errors: /' "$T/err.out"
grep -q '^persistent .*/m/b: ' "$T/err.out" || tfs_problem "status --errors does not list /m/b as persistent"
k=$("$TIERFS" status --errors --json "$MNT" | sync_json '[e["kind"] for e in j["errors"] if e["path"] == "/m/b"]')
[ "$k" = '["persistent"]' ] || tfs_problem "status --errors --json for /m/b: '$k'"

# 3. The directory is made again: the engine recovers by itself.
mkdir "$STORE"
note "store directory made again"
expect_recovered "recreated store" m/b
# m/a was synced before the store lost everything: the engine saw that
# (head gone) and mended it from the local copy by itself.
for ((i = 0; i < 30; i++)); do
	rc=0
	"$TIERFS" store verify --volume "$VOL" >"$T/verify.out" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] && break
	sleep 1
done
[ "$rc" -eq 0 ] || { sed 's/^/    verify: /' "$T/verify.out"; tfs_problem "store verify exits $rc 30 s after the store came back empty"; }
grep -q 'store lost objects' "$VOL/tierfs.log" || tfs_problem "no log line about the store having lost its objects"

# 4. The store made immutable: uploads fail; writable again: recovery.
chattr -R +i "$STORE" || fail "chattr +i"
note "store immutable"
ls1=$(hv 'j["sync"]["health"]["upload"]["last_success"]')
sync_random "$MNT/m/c" 1
expect_failing "immutable store" || true
chattr -R -i "$STORE"
note "store writable again"
expect_recovered "writable store" m/c

# The mount serves the same over HTTP (libmicrohttpd), and counters move.
scrape() { curl -sS -m 10 -D "$T/hdr" "http://127.0.0.1:$MPORT$1"; }
scrape /metrics >"$T/http1" || tfs_problem "cannot scrape http://127.0.0.1:$MPORT/metrics"
grep -qi '^content-type: text/plain; version=0.0.4' "$T/hdr" || tfs_problem "scrape content type: $(grep -i content-type "$T/hdr")"
a=$(awk '$1 == "tierfs_store_requests_total{direction=\"upload\",result=\"ok\"}" { print $2 }' "$T/http1")
sync_random "$MNT/m/d" 1
sync_cli "sync --wait m/d" "$TIERFS" sync --wait "$MNT/m/d"
sleep 1.5 # the mount writes its record once a tick
scrape /metrics >"$T/http2" || tfs_problem "second scrape"
b=$(awk '$1 == "tierfs_store_requests_total{direction=\"upload\",result=\"ok\"}" { print $2 }' "$T/http2")
note "HTTP scrape: upload ok requests $a, then $b after one more file"
{ [ "$b" -gt "$a" ] 2>/dev/null; } || tfs_problem "upload ok requests did not grow over HTTP: '$a' then '$b'"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 "http://127.0.0.1:$MPORT/nothing")
[ "$code" = 404 ] || tfs_problem "GET /nothing answered $code, expected 404"
# a busy port refuses the mount of another volume with one line
"$TIERFS" format --store "file://$T/store2" "$T/vol2" >/dev/null || fail "format vol2"
mkdir -p "$T/mnt2"
TFS_MOUNTS+=("$T/mnt2")
TFS_VOLUMES+=("$T/vol2")
tfs_expect_refused "metrics port in use" "$TIERFS" mount -o "metrics=127.0.0.1:$MPORT" "$T/vol2" "$T/mnt2"

# The record survives a remount (with -o log_level=error: no info lines).
tfs_umount "$MNT"
tfs_expect_refused "a bad log_level" "$TIERFS" mount -o log_level=loud "$VOL" "$MNT"
infos=$(grep -c ' info: ' "$VOL/tierfs.log")
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS,log_level=error"
t=$(hv 'j["sync"]["health"]["upload"]["error_total"]')
{ [ "$t" -ge 2 ] 2>/dev/null; } || tfs_problem "upload error_total is '$t' after a remount"
for f in a b c; do
	sync_expect "$MNT/m/$f" synced 10 "after remount" || true
done
tfs_umount "$MNT"
[ "$(grep -c ' info: ' "$VOL/tierfs.log")" = "$infos" ] || tfs_problem "info lines were logged with -o log_level=error"
# The daemon's log lines carry an ISO 8601 time with milliseconds and a level.
n=$(grep -cE 'tierfs: (error|warning|info|debug): ' "$VOL/tierfs.log")
bad=$(grep -E 'tierfs: (error|warning|info|debug): ' "$VOL/tierfs.log" |
	grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z tierfs: (error|warning|info|debug): ')
note "log: $n lines, e.g. $(grep -m1 'object store failing' "$VOL/tierfs.log")"
[ "$n" -ge 3 ] || tfs_problem "only $n log lines in $VOL/tierfs.log"
[ "$bad" -eq 0 ] || tfs_problem "$bad log lines without an ISO 8601 time: $(grep -E 'tierfs: (error|warning|info): ' "$VOL/tierfs.log" | head -n2)"
tfs_finish
note "health: all passed"
