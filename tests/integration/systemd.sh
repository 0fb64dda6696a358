#!/bin/bash
# systemd.sh - the mount daemons speak systemd's notify protocol, and the
# units pass 'systemd-analyze verify'. Each daemon runs in the foreground
# (as the units run it) with NOTIFY_SOCKET pointing at a datagram listener
# of the test's own (python3), which records every message: READY=1 must
# come once the mount is live, then STATUS= lines (the home mount's upload
# queue as it really is, the cloud mount's snapshot), and STOPPING=1 after
# 'tierfs umount' (or SIGTERM), the last message, before the daemon exits 0
# and leaves the volume clean. The units
# are installed with 'cmake --install --prefix' into the test's directory
# and verified as instances (tierfs@srv-vol, tierfs-cloud@vol1).
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/cloud_lib.sh"

LISTENERS=()
trap 'rc=$?; for p in "${LISTENERS[@]}"; do kill "$p" 2>/dev/null; done; tfs_cleanup $rc' EXIT

# listen SOCKET LOG: record each datagram as one line ('|' for newlines).
listen()
{
	python3 - "$1" "$2" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(1)
end = time.time() + 600
with open(sys.argv[2], "a") as log:
    while time.time() < end:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            continue
        log.write(msg.replace("\n", "|") + "\n")
        log.flush()
PY
	LISTENERS+=($!)
	for _ in $(seq 50); do [ -S "$1" ] && return 0; sleep 0.1; done
	fail "the notify listener did not start"
}

# wait_msg LOG REGEX SECONDS: until a recorded message matches.
wait_msg()
{
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -Eq "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# check_order LOG WHAT: READY=1 first, a STATUS= line, STOPPING=1 last, each once.
check_order()
{
	local log=$1 what=$2 ready status stopping last n
	sed 's/^/    /' "$log"
	ready=$(grep -n '^READY=1' "$log" | head -n1 | cut -d: -f1)
	status=$(grep -n '^STATUS=' "$log" | head -n1 | cut -d: -f1)
	stopping=$(grep -n 'STOPPING=1' "$log" | head -n1 | cut -d: -f1)
	last=$(wc -l <"$log")
	[ "$ready" = 1 ] || tfs_problem "$what: READY=1 is not the first message"
	[ -n "$status" ] && [ "$status" -gt "${ready:-0}" ] || tfs_problem "$what: no STATUS= after READY=1"
	[ "$stopping" = "$last" ] || tfs_problem "$what: STOPPING=1 is not the last message"
	n=$(grep -c 'READY=1' "$log")
	[ "$n" = 1 ] || tfs_problem "$what: READY=1 sent $n times"
	n=$(grep -c 'STOPPING=1' "$log")
	[ "$n" = 1 ] || tfs_problem "$what: STOPPING=1 sent $n times"
}

# stop_and_check MNT PID BASE WHAT: tierfs umount; the daemon PID exits 0
# (else BASE.err is shown); the messages in BASE.log came in order.
stop_and_check()
{
	local rc=0
	timeout 60 "$TIERFS" umount "$1" || fail "$4: tierfs umount"
	wait "$2" || rc=$?
	[ "$rc" = 0 ] || { cat "$3.err" >&2; fail "$4: the daemon exited $rc"; }
	wait_msg "$3.log" 'STOPPING=1' 5 || fail "no STOPPING=1 from the $4"
	check_order "$3.log" "$4"
}

# --- the home mount
"$TIERFS" format --store "file://$T/store" "$T/vol" >/dev/null || fail "format"
"$TIERFS" policy add exp --volume "$T/vol" --path '/exp/**' --placement mirror --settle 1h >/dev/null ||
	fail "policy add"
listen "$T/home.sock" "$T/home.log"
mkdir -p "$T/mnt"
TFS_MOUNTS+=("$T/mnt")
TFS_VOLUMES+=("$T/vol")
NOTIFY_SOCKET=$T/home.sock "$TIERFS" mount -f -o sync_interval=1 "$T/vol" "$T/mnt" 2>"$T/home.err" &
dpid=$!
wait_msg "$T/home.log" '^READY=1' 30 || fail "no READY=1 from the home mount in 30 s"
tfs_is_mounted "$T/mnt" || fail "READY=1 came before the mount was live"
wait_msg "$T/home.log" '^STATUS=upload queue: 0 files, 0 bytes; store reachable' 10 ||
	fail "no STATUS= with the empty upload queue"
mkdir -p "$T/mnt/exp" && head -c 100000 /dev/urandom >"$T/mnt/exp/data" || fail "write"
# the queue as the sync engine has it: the file waits an hour to settle
wait_msg "$T/home.log" '^STATUS=upload queue: 1 files, 100000 bytes' 20 ||
	fail "STATUS= does not show the queued file within 20 s"
stop_and_check "$T/mnt" "$dpid" "$T/home" "home mount"

# --- SIGTERM, what systemd sends when ExecStop= did not stop it: a clean unmount too
listen "$T/term.sock" "$T/term.log"
NOTIFY_SOCKET=$T/term.sock "$TIERFS" mount -f "$T/vol" "$T/mnt" 2>"$T/term.err" &
dpid=$!
wait_msg "$T/term.log" '^STATUS=upload queue: 1 files' 30 || fail "no READY=1 and STATUS= after remounting"
echo more >"$T/mnt/exp/more" || fail "write after remount"
kill -TERM "$dpid"
rc=0
wait "$dpid" || rc=$?
[ "$rc" = 0 ] || { cat "$T/term.err" >&2; fail "home daemon exited $rc on SIGTERM"; }
tfs_wait_state "$T/mnt" 0 10 || fail "still mounted after SIGTERM"
check_order "$T/term.log" "home mount, SIGTERM"
"$TIERFS" fsck "$T/vol" >/dev/null || fail "fsck after SIGTERM not clean"

# --- a cloud mount
mkdir -p "$T/src" && echo "seen from the cloud" >"$T/src/a.txt"
cloud_publish "$T/src" "file://$T/cstore"
listen "$T/cloud.sock" "$T/cloud.log"
mkdir -p "$T/cmnt"
TFS_MOUNTS+=("$T/cmnt")
TFS_VOLUMES+=("$T/cache")
NOTIFY_SOCKET=$T/cloud.sock "$TIERFS" mount --cloud -f --key-file "$T/key" --cache "$T/cache" \
	"file://$T/cstore" "$T/cmnt" 2>"$T/cloud.err" &
dpid=$!
wait_msg "$T/cloud.log" '^READY=1' 30 || fail "no READY=1 from the cloud mount in 30 s"
tfs_is_mounted "$T/cmnt" || fail "READY=1 came before the cloud mount was live"
[ "$(cat "$T/cmnt/a.txt")" = "seen from the cloud" ] || fail "read through the cloud mount"
wait_msg "$T/cloud.log" '^STATUS=snapshot 1, [0-9]+ bytes cached, 0 requests pending' 10 ||
	fail "no STATUS= with the snapshot from the cloud mount"
stop_and_check "$T/cmnt" "$dpid" "$T/cloud" "cloud mount"

# --- the units
timeout 120 cmake --install "$TIERFS_BIN_DIR" --prefix "$T/prefix" >"$T/install.out" ||
	fail "cmake --install --prefix '$T/prefix'"
units=$T/prefix/lib/systemd/system
for u in tierfs@.service tierfs-cloud@.service; do
	[ -f "$units/$u" ] || fail "'$u' not installed in '$units'"
	grep -qx 'Type=notify' "$units/$u" || tfs_problem "$u: not Type=notify"
	grep -q "^ExecStart=$T/prefix/bin/tierfs mount .*-f" "$units/$u" || tfs_problem "$u: ExecStart"
	grep -q "^ExecStop=$T/prefix/bin/tierfs umount " "$units/$u" || tfs_problem "$u: ExecStop"
	grep -q '^TimeoutStopSec=' "$units/$u" || tfs_problem "$u: no TimeoutStopSec"
done
if ! command -v systemd-analyze >/dev/null; then
	note "SKIP systemd-analyze verify: systemd-analyze is not installed (scripts/install-deps installs systemd)"
elif ! systemd-analyze --version >/dev/null 2>&1; then
	note "SKIP systemd-analyze verify: systemd-analyze cannot run here"
else
	for u in tierfs@srv-vol.service tierfs-cloud@vol1.service; do
		# an instance of the template; Documentation= must name installed pages
		rc=0
		(cd "$units" && MANPATH="$T/prefix/share/man" systemd-analyze verify "$units/$u") >"$T/verify.out" 2>&1 || rc=$?
		if [ "$rc" != 0 ] || [ -s "$T/verify.out" ]; then
			sed 's/^/    /' "$T/verify.out" >&2
			tfs_problem "systemd-analyze verify $u: exit $rc, output above"
		fi
	done
fi
tfs_finish
note "READY=1, STATUS= and STOPPING=1 in order from both mounts; units verified"
