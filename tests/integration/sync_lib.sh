# sync_lib.sh - helpers for the sync engine tests (sync_file.sh, sync_s3.sh,
# sync_offline.sh, sync_enospc.sh), sourced after lib.sh and tfs_setup.
# They read 'tierfs status --json' with python3, wait for sync states, count
# the chunk objects of a store, write files with known content, and run
# s3rver (npm) on a loopback port with its data under $T, stopped with
# kill -9 and restarted on the same port. sync_on_exit CMD registers a
# command the EXIT trap runs after the FUSE mounts are gone and before
# lib.sh's cleanup (servers, tmpfs mounts).

command -v python3 >/dev/null || fail "python3 is needed"

# Mount options for the sync tests: a 1 s scheduler tick, 3 s recall wait.
SYNC_MOUNT_OPTS=${SYNC_MOUNT_OPTS:-sync_interval=1,recall_timeout=3}

SYNC_EXIT_CMDS=()
SYNC_BG_PIDS=()
sync_on_exit() { SYNC_EXIT_CMDS+=("$*"); }

sync_cleanup()
{
	local rc=$? m v p c
	[ $# -gt 0 ] && rc=$1
	set +e
	for p in "${SYNC_BG_PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for m in "${TFS_MOUNTS[@]}"; do
		tfs_force_umount "$m"
	done
	for v in "${TFS_VOLUMES[@]}"; do
		tfs_kill_volume "$v"
	done
	for c in "${SYNC_EXIT_CMDS[@]}"; do
		eval "$c"
	done
	tfs_cleanup "$rc"
}
trap sync_cleanup EXIT

# sync_json EXPR: evaluate the python expression EXPR on the JSON object j
# read from stdin; strings print bare, anything else as JSON.
sync_json()
{
	python3 -c '
import json, sys
try:
    j = json.load(sys.stdin)
except Exception as e:
    print("?unreadable json: %r" % e); sys.exit(1)
try:
    v = eval(sys.argv[1])
except Exception as e:
    print("?%r" % e); sys.exit(1)
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# sync_state PATH: the sync state of one file ("?..." when unreadable).
sync_state()
{
	local out
	out=$(timeout 20 "$TIERFS" status --json "$1" 2>&1) || { echo "?status failed: $out" | head -n1; return 0; }
	echo "$out" | sync_json 'j["files"][0]["sync"]' || true
}

# sync_vol EXPR MNT: evaluate EXPR on the volume's 'status --json'.
sync_vol()
{
	local out
	out=$(timeout 20 "$TIERFS" status --json --volume "$2" 2>&1) || { echo "?status failed: $out" | head -n1; return 0; }
	echo "$out" | sync_json "$1" || true
}

# sync_wait PATH STATE[|STATE...] [SECONDS]: wait until the file's sync state
# is one of STATEs; prints nothing, returns 1 on timeout (state in SYNC_LAST).
sync_wait()
{
	local path=$1 want=$2 secs=${3:-30} i
	for ((i = 0; i < secs * 5; i++)); do
		SYNC_LAST=$(sync_state "$path")
		case "|$want|" in *"|$SYNC_LAST|"*) return 0 ;; esac
		sleep 0.2
	done
	return 1
}

# sync_expect PATH STATES SECONDS WHAT: sync_wait, a problem when it times out.
sync_expect()
{
	if sync_wait "$1" "$2" "$3"; then
		return 0
	fi
	tfs_problem "$4: '$1' is '$SYNC_LAST' after $3 s, expected $2"
	return 1
}

# sync_chunks DIR: number of chunk objects below DIR (a file:// store, or
# s3rver's directory for the volume's prefix, whose objects end in
# ._S3rver_object).
sync_chunks()
{
	local d=$1/chunks
	[ -d "$d" ] || { echo 0; return; }
	find "$d" -type f ! -name '*._S3rver_metadata.json' ! -name '*._S3rver_object.md5' | wc -l
}

# sync_chunk_names DIR: the chunk keys below DIR, sorted.
sync_chunk_names()
{
	[ -d "$1/chunks" ] || return 0
	(cd "$1" && find chunks -type f ! -name '*._S3rver_metadata.json' ! -name '*._S3rver_object.md5') |
		sed 's/\._S3rver_object$//' | LC_ALL=C sort
}

# sync_check_chunk_names DIR: every chunk key is chunks/XX/<64 hex>.
sync_check_chunk_names()
{
	local bad
	bad=$(sync_chunk_names "$1" | grep -Ev '^chunks/[0-9a-f]{2}/[0-9a-f]{64}$' | head -n 3)
	[ -z "$bad" ] || tfs_problem "chunk keys not of the form chunks/XX/<64 hex>: $bad"
}

# sync_marker_file FILE MIB MARKER: MIB MiB of lines holding MARKER (very
# compressible plaintext that must never appear in the store).
sync_marker_file()
{
	local file=$1 mib=$2 marker=$3
	python3 -c '
import sys
line = (sys.argv[2] + " the quick brown fox %08d\n")
n = int(sys.argv[1]) << 20
out = bytearray()
i = 0
while len(out) < n:
    out += (line % i).encode(); i += 1
sys.stdout.buffer.write(out[:n])' "$mib" "$marker" >"$file"
}

# sync_random FILE MIB: MIB MiB of random bytes, written and fsync'd.
sync_random()
{
	dd if=/dev/urandom of="$1" bs=1M count="$2" conv=fsync status=none
}

sha() { sha256sum <"$1" | cut -d' ' -f1; }

# sync_cli WHAT CMD...: run a tierfs command (bounded by 60 s); a problem
# when it fails. Its output is in $T/cli.out and $T/cli.err.
sync_cli()
{
	local what=$1 rc=0
	shift
	timeout 60 "$@" >"$T/cli.out" 2>"$T/cli.err" || rc=$?
	if [ "$rc" -ne 0 ]; then
		sed 's/^/    /' "$T/cli.err" | head -n 5 >&2
		tfs_problem "$what: '$*' exited $rc"
		return 1
	fi
}

# sync_drop_caches [DIR]: drop the kernel's cached pages of every file
# below DIR (default $MNT) with posix_fadvise(DONTNEED), so that reads of
# evicted files reach the mount instead of being served from pages cached
# when the file was written. Only these files: the machine's page cache is
# left alone (other tests and benchmarks may be running).
sync_drop_caches()
{
	local dir=${1:-$MNT}
	sync
	find "$dir" -type f -print0 2>/dev/null | python3 -c '
import os, sys
for p in sys.stdin.buffer.read().split(b"\0"):
    if not p:
        continue
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        continue
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    os.close(fd)'
}

# sync_du DIR: KiB used below DIR.
sync_du() { du -sk "$1" | cut -f1; }

# s3rver on loopback, data in $T/s3data. sync_s3_start [PORT] (0 or empty:
# a free port, then S3_PORT tells it), sync_s3_stop (kill -9). The bucket
# tbucket exists. The AWS_* environment points tierfs at it.
S3_PID=
S3_PORT=
S3_LOG=
sync_s3_start()
{
	local port=${1:-0} i
	if [ -z "${TIERFS_NODE_MODULES:-}" ]; then
		: "${TIERFS_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
		. "$TIERFS_SRC/tests/integration/npm_peers.sh"
		npm_peers_install || fail "npm peers"
	fi
	mkdir -p "$T/s3data"
	S3_LOG="$T/s3rver.$RANDOM.log"
	node --openssl-legacy-provider "$TIERFS_NODE_MODULES/s3rver/bin/s3rver.js" \
		-d "$T/s3data" -a 127.0.0.1 -p "$port" --configure-bucket tbucket >"$S3_LOG" 2>&1 &
	S3_PID=$!
	for ((i = 0; i < 150; i++)); do
		if grep -q "listening on" "$S3_LOG" 2>/dev/null; then
			S3_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$S3_LOG" | head -1)
			export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
			export AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT"
			unset AWS_PROFILE AWS_SESSION_TOKEN AWS_S3_ADDRESSING_STYLE
			return 0
		fi
		kill -0 "$S3_PID" 2>/dev/null || { cat "$S3_LOG" >&2; fail "s3rver exited"; }
		sleep 0.1
	done
	cat "$S3_LOG" >&2
	fail "s3rver did not start"
}
# sync_s3_gets: chunk reads with a body in the s3rver request logs so far
# (the log cuts the method off; PUT and HEAD answers have no body: "0b").
sync_s3_gets()
{
	cat "$T"/s3rver.*.log | sed 's/\x1b\[[0-9;]*m//g' |
		grep -aE 'chunks/[0-9a-f]{2}/[0-9a-f]{64} 20[06] ' | awk '$NF != "0b"' | wc -l
}
sync_s3_stop()
{
	[ -n "$S3_PID" ] || return 0
	kill -9 "$S3_PID" 2>/dev/null || true
	wait "$S3_PID" 2>/dev/null || true
	S3_PID=
}
sync_on_exit sync_s3_stop

# sync_require_cli: fail at once when this tierfs has no sync engine.
sync_require_cli()
{
	local c
	for c in sync evict hydrate gc; do
		"$TIERFS" "$c" --help >/dev/null 2>&1 || fail "this tierfs has no '$c' command"
	done
}
