# bench_s3_lib.sh - shared by scripts/bench-cloud and scripts/bench-writeback:
# s3rver on a free loopback port with bucket 'bench' (s3_start; its data in
# $DATA, the endpoint in $ENDPOINT, credentials and rclone's remote s3r: in
# the environment), and helpers to run, time, mount and unmount. The caller
# sets BENCH (its name), W (work directory), DATA, TIERFS, CAN_DROP and
# TIERFS_NODE_MODULES (npm_peers.sh), and traps its own cleanup.

mounted() { mountpoint -q "$1" 2>/dev/null; }

run_bg() {
	"$@" >"$W/out" 2>"$W/err" &
	CHILD=$!
	local rc=0
	wait "$CHILD" || rc=$?
	CHILD=
	[ "$rc" = 0 ] || { echo "$BENCH: '$*' exited $rc:" >&2; tail -n 5 "$W/err" "$W/out" >&2; }
	return "$rc"
}

unmount_fuse() { # MNT: fusermount3 -u, retried; lazy as a last resort
	local m=$1 i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		mounted "$m" || return 0
		fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || true
		mounted "$m" || return 0
		sleep 0.5
	done
	echo "$BENCH: $m busy, detaching lazily" >&2
	fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
}

stop_pid() { # PID: TERM, wait up to 5 s, then KILL
	local p=$1
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null || return 0
	for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
	kill -9 "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	return 0
}

# a tierfs daemon (home or cloud) that outlived its mount: DIR/lock has its pid
stop_daemon() {
	local pid
	[ -f "$1/lock" ] || return 0
	pid=$(cat "$1/lock" 2>/dev/null)
	if [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -qa tierfs "/proc/$pid/cmdline" 2>/dev/null; then
		for _ in $(seq 40); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
		[ -d "/proc/$pid" ] && kill "$pid" 2>/dev/null
	fi
	return 0
}

tierfs_umount() { # MNT
	mounted "$1" || return 0
	timeout 120 "$TIERFS" umount "$1" >/dev/null 2>&1 ||
		{ echo "$BENCH: tierfs umount $1 failed" >&2; unmount_fuse "$1"; }
}

drop_caches() {
	sync
	[ "$CAN_DROP" = 1 ] && echo 3 >/proc/sys/vm/drop_caches
	return 0
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", n / s / 1e6; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "-") printf "%.2f", a / b; else print "-" }'; }

s3_start() {
	PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	node --openssl-legacy-provider "$TIERFS_NODE_MODULES/s3rver/bin/s3rver.js" \
		-d "$DATA" -a 127.0.0.1 -p "$PORT" -s --configure-bucket bench >"$W/s3rver.log" 2>&1 &
	S3_PID=$!
	ENDPOINT=http://127.0.0.1:$PORT
	for _ in $(seq 150); do
		curl -s -o /dev/null "$ENDPOINT/bench" && break
		kill -0 "$S3_PID" 2>/dev/null || { cat "$W/s3rver.log" >&2; die "s3rver exited"; }
		sleep 0.1
	done
	curl -s -o /dev/null "$ENDPOINT/bench" || die "s3rver did not answer on $ENDPOINT"
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
	export AWS_ENDPOINT_URL=$ENDPOINT # tierfs; awscli 2.9 ignores it: --endpoint-url below
	# AWS_CA_BUNDLE (set on some hosts) makes rclone refuse its own transport; loopback is plain http
	unset AWS_PROFILE AWS_SESSION_TOKEN AWS_CA_BUNDLE
	export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
	export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_S3R_TYPE=s3 RCLONE_CONFIG_S3R_PROVIDER=Other \
		RCLONE_CONFIG_S3R_ENDPOINT=$ENDPOINT RCLONE_CONFIG_S3R_ACCESS_KEY_ID=S3RVER \
		RCLONE_CONFIG_S3R_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_S3R_REGION=us-east-1 \
		RCLONE_CONFIG_S3R_FORCE_PATH_STYLE=true
}
