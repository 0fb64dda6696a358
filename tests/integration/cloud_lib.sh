# cloud_lib.sh - helpers for the cloud mount tests (cloud_basic.sh,
# cloud_s3.sh, cloud_azure.sh), sourced after lib.sh and tfs_setup. A cloud
# mount is registered with lib.sh's cleanup like a volume whose directory is
# its cache (the daemon's pid is in CACHE/lock), so the EXIT trap unmounts
# it and kills its daemon on every path. Helpers: cloud_tree (the test tree),
# cloud_publish, cloud_mount/cloud_umount, cloud_check_tree (byte-exact
# reads and the listing against the source), cloud_status_field,
# cloud_wait_for (poll a condition with a deadline), cloud_chunk_keys.

FIXTURE="$TIERFS_BIN_DIR/tests/cloud_fixture"
[ -x "$FIXTURE" ] || fail "'$FIXTURE' is not built (build all targets first)"
command -v python3 >/dev/null || fail "python3 is needed"

# cloud_tree DIR: small, multi-chunk (10 MiB), sparse, empty, symlinks,
# nested directories, and files the tests change later.
cloud_tree()
{
	local d=$1
	mkdir -p "$d/dir/sub/deep" "$d/dir/empty_dir"
	echo "hello, cloud" >"$d/small.txt"
	head -c 10485760 /dev/urandom >"$d/big.bin"
	truncate -s 6M "$d/sparse.bin"
	printf 'in the middle' | dd of="$d/sparse.bin" bs=1 seek=3000000 conv=notrunc status=none
	: >"$d/empty"
	ln -s small.txt "$d/link"
	ln -s /nowhere/at/all "$d/dir/dangling"
	echo "deep file" >"$d/dir/sub/deep/f.txt"
	head -c 2097152 /dev/urandom >"$d/mod.bin"
	head -c 1572864 /dev/urandom >"$d/later.bin"
	echo "fetched when asked" >"$d/ondemand.txt"
	echo "never uploaded" >"$d/never.txt"
}

# cloud_publish SRC URL [FIXTURE OPTIONS...]: publish SRC as the next snapshot.
cloud_publish()
{
	local src=$1 url=$2
	shift 2
	"$FIXTURE" --key-file "$T/key" --new-key --chunk-size 1M --no-data never.txt "$@" "$src" "$url" ||
		fail "cloud_fixture could not publish '$src' to '$url'"
}

# cloud_mount URL MNT CACHE [MOUNT OPTIONS...]: mount and register for cleanup.
cloud_mount()
{
	local url=$1 mnt=$2 cache=$3
	shift 3
	mkdir -p "$mnt"
	TFS_MOUNTS+=("$mnt")
	TFS_VOLUMES+=("$cache")
	timeout 30 "$TIERFS" mount --cloud --key-file "$T/key" --cache "$cache" "$@" "$url" "$mnt" ||
		fail "tierfs mount --cloud '$url' '$mnt' exited $?"
	tfs_wait_state "$mnt" 1 10 || fail "'$mnt' not mounted 10 s after tierfs mount returned"
}

# cloud_umount MNT CACHE: tierfs umount, then wait for the daemon to let go of CACHE.
cloud_umount()
{
	local mnt=$1 cache=$2 i
	tfs_umount "$mnt"
	for ((i = 0; i < 100; i++)); do
		flock -n "$cache/lock" true && return 0
		sleep 0.1
	done
	fail "the daemon of '$mnt' still holds '$cache' 10 s after unmount"
}

# cloud_listing DIR: type, mode, size, name and link target of everything.
cloud_listing()
{
	(cd "$1" && find . -printf '%y %m %s %p %l\n' | LC_ALL=C sort)
}

# cloud_check_tree SRC MNT WHAT: the mount shows SRC exactly (listing and bytes).
cloud_check_tree()
{
	local src=$1 mnt=$2 what=$3 f
	cloud_listing "$src" | grep -v -e ' ./never.txt ' -e ' ./ondemand.txt ' >"$T/want.list"
	cloud_listing "$mnt" | grep -v -e ' ./never.txt ' -e ' ./ondemand.txt ' >"$T/got.list"
	# directory sizes are the mount's own
	sed -i 's/^d \([0-7]*\) [0-9]* /d \1 - /' "$T/want.list" "$T/got.list"
	if ! diff -u "$T/want.list" "$T/got.list" >"$T/list.diff"; then
		sed 's/^/    /' "$T/list.diff" | head -n 20 >&2
		tfs_problem "$what: listing of '$mnt' differs from the source"
	fi
	(cd "$src" && find . -type f ! -name never.txt ! -name ondemand.txt -print0 | LC_ALL=C sort -z |
		xargs -0 sha256sum) >"$T/want.sum"
	if ! (cd "$mnt" && sha256sum --quiet -c "$T/want.sum") >"$T/sum.out" 2>&1; then
		sed 's/^/    /' "$T/sum.out" | head -n 20 >&2
		tfs_problem "$what: contents read through '$mnt' differ from the source"
	fi
}

# cloud_status_field MNT FIELD: one field of 'tierfs status --json MNT'.
cloud_status_field()
{
	"$TIERFS" status --json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"
}

# cloud_wait_for SECONDS CMD...: run CMD every 0.2 s until it succeeds; 1 on timeout.
cloud_wait_for()
{
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}
