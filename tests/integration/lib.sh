# lib.sh - shared helpers for the tierfs integration tests, sourced by each
# tests/integration/*.sh. It checks the environment ctest passes (TIERFS, the
# binary; TIERFS_BIN_DIR, the build tree; TIERFS_SRC, the source tree), makes
# one private temporary directory per test ($T), and installs an EXIT trap
# that always undoes what the test did: every mount registered by tfs_mount is
# unmounted (fusermount3 -u, retried, then lazily with -uz as a last resort),
# every tierfs daemon still serving a registered volume is killed by pid, and
# $T is removed. Helpers: fail, note, tfs_mount/tfs_umount (which wait until
# the kernel agrees), tfs_is_mounted, tfs_daemon_pid, tfs_snapshot and
# tfs_unchanged (a volume stays byte-identical), tfs_expect_refused (non-zero
# exit and exactly one "tierfs: " line on stderr), and tfs_problem/tfs_finish
# for checks after which a test can go on and report more.
# Set TFS_KEEP=1 to keep $T for a post-mortem.

set -u
set -o pipefail

: "${TIERFS:?TIERFS must point to the tierfs binary}"
: "${TIERFS_BIN_DIR:=$(cd "$(dirname "$TIERFS")/.." && pwd)}"

TFS_MOUNTS=()
TFS_VOLUMES=()

note() { echo "# $*"; }

fail()
{
	echo "FAIL: $*" >&2
	exit 1
}

# tfs_is_mounted DIR: is DIR a mount point in our mount namespace?
tfs_is_mounted()
{
	local dir
	dir=$(realpath -m "$1")
	awk -v m="$dir" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# tfs_daemon_pid VOL: pids of tierfs processes serving VOL (may be empty).
tfs_daemon_pid()
{
	local vol=$1 pid
	if [ -r "$vol/lock" ]; then
		pid=$(cat "$vol/lock" 2>/dev/null)
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			echo "$pid"
			return
		fi
	fi
	pgrep -f "tierfs mount.* $vol( |\$)" || true
}

# tfs_wait_state DIR 1|0 [SECONDS]: wait until DIR is (1) or is not (0) mounted.
tfs_wait_state()
{
	local dir=$1 want=$2 secs=${3:-10} i
	for ((i = 0; i < secs * 10; i++)); do
		if tfs_is_mounted "$dir"; then
			[ "$want" = 1 ] && return 0
		else
			[ "$want" = 0 ] && return 0
		fi
		sleep 0.1
	done
	return 1
}

# tfs_mount VOL MNT [OPTIONS...]: mount and wait; registers both for cleanup.
tfs_mount()
{
	local vol=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	TFS_MOUNTS+=("$mnt")
	TFS_VOLUMES+=("$vol")
	timeout 30 "$TIERFS" mount "$@" "$vol" "$mnt" || fail "tierfs mount '$vol' '$mnt' exited $?"
	tfs_wait_state "$mnt" 1 10 || fail "'$mnt' not mounted 10 s after tierfs mount returned"
}

# tfs_umount MNT: unmount with the tierfs command and wait until it is gone.
tfs_umount()
{
	local mnt=$1
	timeout 60 "$TIERFS" umount "$mnt" || fail "tierfs umount '$mnt' exited $?"
	tfs_wait_state "$mnt" 0 10 || fail "'$mnt' still mounted 10 s after tierfs umount"
}

# tfs_force_umount MNT: unmount whatever state the daemon is in.
tfs_force_umount()
{
	local mnt=$1 i
	for i in 1 2 3 4 5; do
		tfs_is_mounted "$mnt" || return 0
		fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || true
		tfs_is_mounted "$mnt" || return 0
		sleep 0.5
	done
	note "lazy unmount of '$mnt'"
	fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
}

# tfs_kill_volume VOL: kill -9 every tierfs process serving VOL.
tfs_kill_volume()
{
	local pid
	for pid in $(tfs_daemon_pid "$1"); do
		kill -9 "$pid" 2>/dev/null || true
	done
}

# FUSE over io_uring is a fuse module parameter (enable_uring), global to
# the machine: tests that need it turn it on and the last one done puts the
# value back. The state file holds the value found, then the pids of the
# tests that want it on (under a lock, since ctest runs tests in parallel;
# pids no longer alive are dropped, so a killed test does not keep it on).
TFS_URING_PARAM=/sys/module/fuse/parameters/enable_uring
TFS_URING_STATE=${TMPDIR:-/tmp}/tierfs-test-uring.state
TFS_URING_ON=0
# _tfs_uring_update ADD|DEL: under the lock, update the holders and the parameter
_tfs_uring_update()
{
	(
		flock 9
		local orig= pids=() p first=1
		if [ -s "$TFS_URING_STATE" ]; then
			while read -r p; do
				if [ "$first" = 1 ]; then orig=$p; first=0; continue; fi
				[ "$p" != "$$" ] && kill -0 "$p" 2>/dev/null && pids+=("$p")
			done <"$TFS_URING_STATE"
		fi
		# the value from before the first holder (recorded, else current)
		[ -n "$orig" ] || orig=$(cat "$TFS_URING_PARAM")
		if [ "$1" = ADD ]; then
			pids+=("$$")
			echo Y >"$TFS_URING_PARAM" || exit 1
		fi
		if [ ${#pids[@]} -eq 0 ]; then
			echo "$orig" >"$TFS_URING_PARAM"
			rm -f "$TFS_URING_STATE"
		else
			printf '%s\n' "$orig" "${pids[@]}" >"$TFS_URING_STATE"
		fi
	) 9>"$TFS_URING_STATE.lock"
}
# tfs_uring_on: 0 when FUSE over io_uring is on for this test, 1 when this
# kernel cannot (no parameter, or not root).
tfs_uring_on()
{
	[ -w "$TFS_URING_PARAM" ] || return 1
	_tfs_uring_update ADD || return 1
	TFS_URING_ON=1
}
tfs_uring_off()
{
	[ "$TFS_URING_ON" = 1 ] || return 0
	_tfs_uring_update DEL
	TFS_URING_ON=0
}

# tfs_cleanup [STATUS]: the EXIT trap; exits with STATUS (default $?).
tfs_cleanup()
{
	local rc=$? m v
	[ $# -gt 0 ] && rc=$1
	set +e
	for m in "${TFS_MOUNTS[@]}"; do
		tfs_force_umount "$m"
	done
	for v in "${TFS_VOLUMES[@]}"; do
		tfs_kill_volume "$v"
	done
	tfs_uring_off
	if [ -n "${TFS_KEEP:-}" ]; then
		note "kept $T"
	else
		rm -rf "$T"
	fi
	exit "$rc"
}

# tfs_setup: the per-test temporary directory $T and the cleanup trap.
tfs_setup()
{
	T=$(mktemp -d /tmp/tierfs-test.XXXXXX) || fail "mktemp"
	chmod 755 "$T"
	trap tfs_cleanup EXIT
	trap 'exit 130' INT TERM
	[ -x "$TIERFS" ] || fail "tierfs binary '$TIERFS' not found (build target tierfs)"
}

# Problems that do not stop a test: counted, printed, and turned into a
# failure by tfs_finish, so one run lists all of them.
TFS_PROBLEMS=0
tfs_problem()
{
	echo "FAIL: $*" >&2
	TFS_PROBLEMS=$((TFS_PROBLEMS + 1))
}
tfs_finish()
{
	[ "$TFS_PROBLEMS" -eq 0 ] || fail "$TFS_PROBLEMS problem(s), listed above"
}

# tfs_snapshot DIR FILE: names, types, modes, sizes and content digests of
# everything under DIR, into FILE.
tfs_snapshot()
{
	(cd "$1" && find . -printf '%y %m %s %p\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum) >"$2"
}

# tfs_unchanged DIR FILE WHAT: DIR still matches the snapshot FILE.
tfs_unchanged()
{
	tfs_snapshot "$1" "$2.now"
	if ! diff -u "$2" "$2.now" >"$2.diff"; then
		sed 's/^/    /' "$2.diff" | head -n 20 >&2
		tfs_problem "$3: '$1' changed (diff above)"
		return 1
	fi
}

# tfs_expect_refused DESCRIPTION CMD...: CMD must exit non-zero, writing
# exactly one line on stderr that starts with "tierfs: ". Records a problem
# and returns 1 otherwise. The line is left in $TFS_ERR_LINE.
tfs_expect_refused()
{
	local what=$1 rc lines
	shift
	rc=0
	timeout 30 "$@" >"$T/out" 2>"$T/err" || rc=$?
	lines=$(wc -l <"$T/err")
	TFS_ERR_LINE=$(head -n1 "$T/err")
	if [ "$rc" -eq 0 ]; then
		tfs_problem "$what: exit status 0, expected a refusal"
		return 1
	fi
	if [ "$rc" -eq 124 ]; then
		tfs_problem "$what: still running after 30 s"
		return 1
	fi
	if [ "$lines" -ne 1 ] || [ "${TFS_ERR_LINE#tierfs: }" = "$TFS_ERR_LINE" ]; then
		sed 's/^/    stderr: /' "$T/err" >&2
		tfs_problem "$what: expected one 'tierfs: ' line on stderr, got $lines lines"
		return 1
	fi
	note "$what: refused ($rc): $TFS_ERR_LINE"
}
