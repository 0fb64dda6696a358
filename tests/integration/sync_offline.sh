#!/bin/bash
# sync_offline.sh - a home mount with its S3 store (s3rver) down: local
# reads and writes go on unaffected (20 MiB written and read back), the
# volume status says the store is unreachable (since when, last error), the
# upload queue survives a remount, reading an evicted file fails with EIO
# within about recall_timeout and logs a clear line, and the mount unmounts
# promptly. With the store back on the same port the queue drains by
# itself and the evicted file reads back byte-exact. Then the same with a
# store that hangs (SIGSTOP) instead of refusing connections.
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
sync_require_cli

sync_s3_start 0
note "s3rver on 127.0.0.1:$S3_PORT"
VOL=$T/vol
MNT=$T/mnt
"$TIERFS" format --store "s3://tbucket/vol" "$VOL" >/dev/null || fail "format --store s3://tbucket/vol"
pol() { "$TIERFS" policy add --volume "$VOL" "$@" >/dev/null || fail "policy add $*"; }
pol m --path '/m/**' --placement mirror --settle 1s
pol e --path '/e/**' --placement tier --evict-after 1h --settle 1h
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
mkdir -p "$MNT/m" "$MNT/e" "$MNT/l"
declare -A SUM

# An evicted file, while the store is up.
sync_random "$MNT/e/cold" 9
SUM[e/cold]=$(sha "$MNT/e/cold")
sync_cli "sync --wait" "$TIERFS" sync --wait "$MNT/e/cold"
sync_cli "evict" "$TIERFS" evict "$MNT/e/cold"
s=$(sync_state "$MNT/e/cold")
[ "$s" = evicted ] || fail "e/cold is '$s' after evict (cannot test recall offline)"
r=$(sync_vol 'j["sync"]["store_reachable"]' "$MNT")
[ "$r" = true ] || tfs_problem "store_reachable is '$r' with s3rver up"

# 1. The store goes away. Local I/O goes on.
sync_s3_stop
note "s3rver stopped"
t0=$(date +%s)
sync_random "$MNT/l/big" 20
SUM[l/big]=$(sha "$MNT/l/big")
sync_random "$MNT/m/q1" 5
sync_marker_file "$MNT/m/q2" 2 "queued while offline"
for f in m/q1 m/q2; do SUM[$f]=$(sha "$MNT/$f"); done
echo "appended" >>"$MNT/m/q2"
SUM[m/q2]=$(sha "$MNT/m/q2")
t1=$(date +%s)
[ $((t1 - t0)) -le 20 ] || tfs_problem "writing 27 MiB locally took $((t1 - t0)) s with the store down"
for f in l/big m/q1 m/q2; do
	[ "$(sha "$MNT/$f")" = "${SUM[$f]}" ] || tfs_problem "$f read back differently while offline"
done
cp "$MNT/l/big" "$MNT/l/copy" && cmp -s "$MNT/l/big" "$MNT/l/copy" || tfs_problem "local copy while offline"
note "offline: 20 MiB written and read back locally in $((t1 - t0)) s"

# The status tells the store is unreachable, since when, and why.
for ((i = 0; i < 75; i++)); do
	r=$(sync_vol 'j["sync"]["store_reachable"]' "$MNT")
	[ "$r" = false ] && break
	sleep 0.2
done
[ "$r" = false ] || tfs_problem "store_reachable is '$r' 15 s after s3rver stopped with uploads due"
since=$(sync_vol 'j["sync"].get("unreachable_since") or ""' "$MNT")
err=$(sync_vol 'j["sync"].get("last_error") or ""' "$MNT")
q=$(sync_vol 'j["sync"]["queue"]' "$MNT")
pend=$(sync_vol 'j["sync"]["pending_bytes"]' "$MNT")
note "status: reachable=$r since='$since' queue=$q pending_bytes=$pend last_error='$err'"
[ -n "$since" ] || tfs_problem "no unreachable_since in the volume status"
[ -n "$err" ] || tfs_problem "no last_error in the volume status"
{ [ "$q" -ge 2 ] 2>/dev/null; } || tfs_problem "queue is '$q' with two mirrored files waiting"
{ [ "$pend" -ge $((5 << 20)) ] 2>/dev/null; } || tfs_problem "pending_bytes is '$pend', expected >= 5 MiB"
for f in m/q1 m/q2; do
	s=$(sync_state "$MNT/$f")
	case $s in queued | uploading) ;; *) tfs_problem "$f is '$s' with the store down, expected queued" ;; esac
done

# 2. Reading an evicted file fails with EIO within about recall_timeout (3 s).
sync_drop_caches
t0=$(date +%s.%N)
rc=0
timeout 60 cat "$MNT/e/cold" >/dev/null 2>"$T/cat.err" || rc=$?
t1=$(date +%s.%N)
dt=$(echo "$t1 - $t0" | bc 2>/dev/null || python3 -c "print(round($t1 - $t0, 1))")
note "reading the evicted file offline: exit $rc after ${dt}s: $(head -n1 "$T/cat.err")"
[ "$rc" -ne 0 ] || tfs_problem "reading an evicted file with the store down succeeded"
[ "$rc" -ne 124 ] || tfs_problem "reading an evicted file with the store down hung for 60 s"
grep -q "Input/output error" "$T/cat.err" || tfs_problem "reading an evicted file offline: not EIO: $(head -n1 "$T/cat.err")"
python3 -c "import sys; sys.exit(0 if $t1 - $t0 <= 10 else 1)" || tfs_problem "the failed recall took ${dt}s, expected about recall_timeout=3 s"
# A clear log line: names the recall and the store problem.
if ! grep -iE 'recall|evicted' "$VOL/tierfs.log" | grep -iE 'unreach|timed? ?out|connect|refused|store' >"$T/logline"; then
	tail -n 15 "$VOL/tierfs.log" | sed 's/^/    log: /' >&2
	tfs_problem "no log line about the failed recall in $VOL/tierfs.log"
else
	note "log: $(tail -n1 "$T/logline")"
fi
# The rest of the mount is fine after the failed recall.
[ "$(sha "$MNT/l/big")" = "${SUM[l/big]}" ] || tfs_problem "l/big after the failed recall"
s=$(sync_state "$MNT/e/cold")
[ "$s" = evicted ] || tfs_problem "e/cold is '$s' after a failed recall, expected evicted"

# 3. The queue survives a remount (and the mount unmounts promptly offline).
t0=$(date +%s)
tfs_umount "$MNT"
t1=$(date +%s)
[ $((t1 - t0)) -le 15 ] || tfs_problem "unmounting with the store down took $((t1 - t0)) s"
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
q=$(sync_vol 'j["sync"]["queue"]' "$MNT")
{ [ "$q" -ge 2 ] 2>/dev/null; } || tfs_problem "queue is '$q' after a remount, expected >= 2"
for f in m/q1 m/q2; do
	s=$(sync_state "$MNT/$f")
	case $s in queued | uploading) ;; *) tfs_problem "$f is '$s' after remount offline, expected queued" ;; esac
done
sleep 2
for f in l/big m/q1 m/q2; do
	[ "$(sha "$MNT/$f")" = "${SUM[$f]}" ] || tfs_problem "$f differs after the offline remount"
done
# sync --wait with the store down fails with a clear error: by itself
# (the engine knows the store is unreachable), and with --timeout.
rc=0
timeout 20 "$TIERFS" sync --wait "$MNT/m/q1" >"$T/out" 2>"$T/err" || rc=$?
note "sync --wait offline: exit $rc: $(head -n1 "$T/err")"
[ "$rc" -ne 124 ] || tfs_problem "sync --wait still waiting after 20 s with the store down, silently"
[ "$rc" -ne 0 ] || tfs_problem "sync --wait exited 0 with the store down"
[ "$rc" -eq 124 ] || [ -s "$T/err" ] || tfs_problem "sync --wait failed without a message"
rc=0
timeout 30 "$TIERFS" sync --wait --timeout=3 "$MNT/m/q1" >"$T/out" 2>"$T/err" || rc=$?
note "sync --wait --timeout=3 offline: exit $rc: $(head -n1 "$T/err")"
[ "$rc" -eq 1 ] || tfs_problem "sync --wait --timeout=3 with the store down exited $rc, expected 1"
[ -s "$T/err" ] || tfs_problem "sync --wait --timeout=3 failed without a message"
note "offline: queue of $q survived a remount"

# 4. The store comes back: the queue drains by itself, the recall works.
sync_s3_start "$S3_PORT"
note "s3rver back on 127.0.0.1:$S3_PORT"
for f in m/q1 m/q2; do
	sync_expect "$MNT/$f" synced 60 "queue drain after the store came back" || true
done
q=$(sync_vol 'j["sync"]["queue"]' "$MNT")
r=$(sync_vol 'j["sync"]["store_reachable"]' "$MNT")
[ "$q" = 0 ] || tfs_problem "queue is '$q' after draining"
if [ "$r" != true ]; then
	# the recall that failed offline is checked again within seconds
	sleep 7
	r=$(sync_vol 'j["sync"]["store_reachable"]' "$MNT")
	[ "$r" = true ] || tfs_problem "store_reachable is '$r' 7 s after the queue drained: $(sync_vol 'j["sync"]["health"]' "$MNT")"
fi
got=$(timeout 30 sha256sum <"$MNT/e/cold" | cut -d' ' -f1) || true
[ "$got" = "${SUM[e/cold]}" ] || tfs_problem "e/cold differs when recalled after the outage"
n=$(sync_chunks "$T/s3data/tbucket/vol")
[ "$n" -ge 5 ] || tfs_problem "only $n chunk objects in the bucket after the drain"
note "online again: queue drained, evicted file recalled byte-exact"

# 5. A store that hangs (s3rver stopped with SIGSTOP: connections are
#    accepted, nothing answers): local I/O goes on, a recall fails with EIO
#    within about recall_timeout, the status says unreachable, and the
#    mount unmounts and its daemon exits promptly.
sync_cli "evict again" "$TIERFS" evict "$MNT/e/cold"
kill -STOP "$S3_PID"
note "s3rver hung (SIGSTOP)"
t0=$(date +%s)
sync_random "$MNT/m/h1" 6
SUM[m/h1]=$(sha "$MNT/m/h1")
sleep 3 # the upload of m/h1 is under way, and hangs
sync_random "$MNT/l/h2" 20
[ "$(sha "$MNT/l/h2")" = "$(sha "$MNT/l/h2")" ] || tfs_problem "l/h2 unstable"
ls -l "$MNT/m" >/dev/null || tfs_problem "ls with a hung store"
t1=$(date +%s)
[ $((t1 - t0)) -le 15 ] || tfs_problem "26 MiB of local I/O took $((t1 - t0)) s with a hung store"
sync_drop_caches
t0=$(date +%s)
rc=0
timeout 120 cat "$MNT/e/cold" >/dev/null 2>"$T/cat.err" || rc=$?
t1=$(date +%s)
note "reading the evicted file with a hung store: exit $rc after $((t1 - t0)) s: $(head -n1 "$T/cat.err")"
[ "$rc" -ne 0 ] || tfs_problem "reading an evicted file with a hung store succeeded"
[ $((t1 - t0)) -le 8 ] || tfs_problem "a recall with a hung store failed after $((t1 - t0)) s, expected about recall_timeout=3 s"
for ((i = 0; i < 50; i++)); do
	r=$(sync_vol 'j["sync"]["store_reachable"]' "$MNT")
	[ "$r" = false ] && break
	sleep 0.4
done
note "status with a hung store: $(timeout 20 "$TIERFS" status --json --volume "$MNT" | sync_json 'j["sync"]')"
[ "$r" = false ] || tfs_problem "store_reachable is '$r' 20+ s into a hung store, with an upload and a recall failing"
t0=$(date +%s)
rc=0
timeout 120 "$TIERFS" umount "$MNT" || rc=$?
for ((i = 0; i < 100; i++)); do
	[ -z "$(tfs_daemon_pid "$VOL")" ] && break
	sleep 0.2
done
t1=$(date +%s)
note "umount with a hung store: exit $rc, daemon gone after $((t1 - t0)) s: '$(tfs_daemon_pid "$VOL")'"
[ "$rc" -eq 0 ] || tfs_problem "tierfs umount with a hung store exited $rc"
if [ -n "$(tfs_daemon_pid "$VOL")" ]; then
	tfs_problem "the tierfs daemon still runs $((t1 - t0)) s after 'tierfs umount' returned $rc (hung store); killing it"
	tfs_kill_volume "$VOL"
	sleep 0.5
elif [ $((t1 - t0)) -gt 20 ]; then
	tfs_problem "unmounting with a hung store took $((t1 - t0)) s"
fi
tfs_force_umount "$MNT"
kill -CONT "$S3_PID"
note "s3rver resumed"
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
sync_expect "$MNT/m/h1" synced 60 "upload after the store stopped hanging" || true
sync_drop_caches
got=$(timeout 30 sha256sum <"$MNT/e/cold" | cut -d' ' -f1) || true
[ "$got" = "${SUM[e/cold]}" ] || tfs_problem "e/cold differs when recalled after the hang"
[ "$(sha "$MNT/m/h1")" = "${SUM[m/h1]}" ] || tfs_problem "m/h1 differs after the hang"
tfs_umount "$MNT"
"$TIERFS" fsck "$VOL" >"$T/fsck" 2>&1 || { cat "$T/fsck" >&2; tfs_problem "fsck at the end not clean"; }
tfs_finish
note "sync_offline: all passed"
