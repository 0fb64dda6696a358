#!/bin/bash
# crash.sh - fsync'd data survives kill -9 of the mount. First it proves the
# verifier is not vacuous on a plain directory (a storm, kill -9, verify must
# pass; one flipped byte must make it fail). Then CRASH_ROUNDS times (default
# 5): mount, start tests/crash_storm in a fresh directory of the mount, wait a
# random 1-3 s, kill -9 the tierfs daemon, kill the storm, force the dead
# mount away, remount, verify the journals of this and every earlier round,
# unmount cleanly, and require "tierfs fsck" to exit 0 (clean).
. "$(dirname "$0")/lib.sh"
tfs_setup

STORM=$TIERFS_BIN_DIR/tests/crash_storm
[ -x "$STORM" ] || fail "'$STORM' not built (target crash_storm)"
ROUNDS=${CRASH_ROUNDS:-5}
STORM_PID=

kill_storm()
{
	if [ -n "$STORM_PID" ]; then
		kill -9 "$STORM_PID" 2>/dev/null || true
		wait "$STORM_PID" 2>/dev/null || true
		STORM_PID=
	fi
}
trap 'rc=$?; kill_storm; tfs_cleanup $rc' EXIT

# A random pause of 1.000-3.000 s.
pause() { sleep "$(printf '%d.%03d' $((${1:-0} + 1)) $((RANDOM % 1000)))"; }

# --- the verifier on a plain directory ---
mkdir "$T/plain"
"$STORM" "$T/plain/d" "$T/plain.journal" 2>"$T/plain.log" &
STORM_PID=$!
pause $((RANDOM % 2))
kill_storm
"$STORM" --verify "$T/plain/d" "$T/plain.journal" || fail "verifier rejects a plain directory"
victim=$(awk '$1 == "V" && $4 > 200 { n = $2 } END { print n }' "$T/plain.journal")
[ -n "$victim" ] || fail "no journaled version to corrupt"
printf '\377' | dd of="$T/plain/d/$victim" bs=1 seek=150 conv=notrunc status=none
if "$STORM" --verify "$T/plain/d" "$T/plain.journal" >"$T/neg.out"; then
	fail "verifier accepted a corrupted file ($victim)"
fi
note "verifier sane: $(grep -c . "$T/neg.out") lines, $(head -n1 "$T/neg.out")"

# --- crash rounds against the mount ---
VOL=$T/vol
MNT=$T/mnt
timeout 60 "$TIERFS" format "$VOL" || fail "tierfs format exited $?"
for ((r = 1; r <= ROUNDS; r++)); do
	tfs_mount "$VOL" "$MNT"
	"$STORM" "$MNT/r$r" "$T/journal.$r" 2>"$T/storm.$r.log" &
	STORM_PID=$!
	pause $((RANDOM % 2))
	pids=$(tfs_daemon_pid "$VOL")
	[ -n "$pids" ] || fail "round $r: no tierfs daemon found for '$VOL'"
	kill -0 "$STORM_PID" 2>/dev/null || {
		cat "$T/storm.$r.log" >&2
		fail "round $r: crash_storm died before the crash"
	}
	note "round $r: kill -9 tierfs ($pids) after $(grep -c '^V' "$T/journal.$r") versions"
	# shellcheck disable=SC2086 # one or more pids
	kill -9 $pids
	kill_storm
	tfs_force_umount "$MNT"
	for pid in $pids; do # the dead daemon must be gone before the remount
		for i in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	done
	tfs_mount "$VOL" "$MNT"
	for ((k = 1; k <= r; k++)); do
		"$STORM" --verify "$MNT/r$k" "$T/journal.$k" >"$T/verify.$k.out" || {
			head -n 50 "$T/verify.$k.out" >&2
			fail "round $r: journal of round $k does not verify"
		}
		tail -n 1 "$T/verify.$k.out"
	done
	tfs_umount "$MNT"
	frc=0
	timeout 300 "$TIERFS" fsck "$VOL" || frc=$?
	[ "$frc" -eq 0 ] || fail "round $r: tierfs fsck exited $frc (0 = clean)"
done
note "crash: $ROUNDS rounds, every fsync'd version survived, fsck clean"
