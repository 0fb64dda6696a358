#!/bin/bash
# cloud_basic.sh - the cloud mount on a file:// store, with snapshots made by
# cloud_fixture from a local tree: clear refusals (nothing published yet, a
# wrong key), three cloud mounts at once with separate caches showing the
# tree byte-exact (multi-chunk, sparse, empty, symlinks, nested), EROFS for
# every change, status, a new snapshot visible on all mounts within seconds
# while a file opened before the switch keeps its old bytes, on-demand files
# (a request object, then the manifest; and EIO after request_timeout when
# home never uploads), a tampered chunk object (EIO and a log line, never
# wrong bytes), the cache surviving a remount, damaged cache files (found,
# logged, fetched again), and a store outage (cached data still served,
# uncached data EIO within request_timeout).
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/cloud_lib.sh"

URL="file://$T/store"
OPTS="poll=1,request_timeout=4"
mkdir -p "$T/src" "$T/store"
cloud_tree "$T/src"

note "refusals before anything is published"
mkdir -p "$T/m1"
tfs_expect_refused "mount of an empty store" \
	"$TIERFS" mount --cloud --key-file /dev/null --cache "$T/c0" "$URL" "$T/m1" || true
"$FIXTURE" --key-file "$T/key" --new-key --chunk-size 1M "$T/src/dir/sub" "file://$T/keyonly" >/dev/null ||
	fail "cannot make a key"
rm -rf "$T/keyonly"
tfs_expect_refused "mount of an empty store" \
	"$TIERFS" mount --cloud --key-file "$T/key" --cache "$T/c0" "$URL" "$T/m1"
echo "$TFS_ERR_LINE" | grep -q "no snapshot published in '$URL' yet" || tfs_problem "unclear error: $TFS_ERR_LINE"
tfs_is_mounted "$T/m1" && fail "a refused mount is mounted"

cloud_publish "$T/src" "$URL" --no-data ondemand.txt >/dev/null
"$FIXTURE" --key-file "$T/otherkey" --new-key "$T/src/dir/sub" "file://$T/otherstore" >/dev/null ||
	fail "cannot make another key"
tfs_expect_refused "mount with a wrong key" \
	"$TIERFS" mount --cloud --key-file "$T/otherkey" --cache "$T/c0" "$URL" "$T/m1"
echo "$TFS_ERR_LINE" | grep -q "wrong key" || tfs_problem "unclear error for a wrong key: $TFS_ERR_LINE"

note "three cloud mounts at once"
# mount 3 takes requests over io_uring where the kernel can (the fuse
# module's enable_uring, turned on for the rest of this test)
URING3=0
for i in 1 2 3; do
	[ "$i" = 3 ] && tfs_uring_on && URING3=1
	cloud_mount "$URL" "$T/m$i" "$T/c$i" -o "$OPTS"
done
if [ "$URING3" = 1 ]; then
	# the rings start once the kernel has the INIT reply, after the mount
	cloud_wait_for 10 grep -q "FUSE over io_uring: [0-9]* queues" "$T/c3/tierfs.log" ||
		tfs_problem "mount 3 did not start its io_uring queues: $(tail -n 2 "$T/c3/tierfs.log")"
else
	note "this kernel has no FUSE over io_uring: mount 3 uses /dev/fuse too"
fi
grep -q "^$URL $T/m1 fuse.tierfs ro," /proc/self/mounts || tfs_problem "m1 is not a read-only fuse.tierfs mount of '$URL'"
for i in 1 2 3; do
	cloud_check_tree "$T/src" "$T/m$i" "mount $i"
done
[ "$(readlink "$T/m2/link")" = small.txt ] || tfs_problem "symlink target wrong"
[ "$(cat "$T/m2/link")" = "hello, cloud" ] || tfs_problem "symlink does not resolve"
[ "$(stat -c %i "$T/m1/big.bin")" = "$(stat -c %i "$T/src/big.bin")" ] || tfs_problem "inode is not the fid"
[ "$(stat -c %i "$T/m1")" = 1 ] || tfs_problem "root inode is not 1"
echo "ok - three mounts show the tree byte-exact"

note "read-only"
for cmd in "touch $T/m1/new" "sh -c 'echo x >>$T/m1/small.txt'" "mkdir $T/m1/d" "rm -f $T/m1/small.txt" \
	"mv $T/m1/small.txt $T/m1/s2" "chmod 600 $T/m1/small.txt" "ln -s x $T/m1/l2" "truncate -s 0 $T/m1/small.txt" \
	"rmdir $T/m1/dir/empty_dir" "setfattr -n user.x -v 1 $T/m1/small.txt"; do
	if out=$(eval "$cmd" 2>&1); then
		tfs_problem "'$cmd' succeeded on a cloud mount"
	elif ! echo "$out" | grep -q "Read-only file system"; then
		tfs_problem "'$cmd': expected EROFS, got: $out"
	fi
done
cmp -s "$T/src/small.txt" "$T/m1/small.txt" || tfs_problem "small.txt changed"
echo "ok - every change gives EROFS"

note "status"
"$TIERFS" status "$T/m1" >"$T/status" || tfs_problem "tierfs status of a cloud mount failed"
cat "$T/status"
grep -q "snapshot   1," "$T/status" || tfs_problem "status does not show snapshot 1"
[ "$(cloud_status_field "$T/m1" poll_s)" = 1 ] || tfs_problem "status --json: poll_s"
[ "$(cloud_status_field "$T/m1" misses)" -gt 0 ] || tfs_problem "status --json: no misses counted"
[ -s "$T/c1/status" ] || tfs_problem "no status file in the cache dir"

note "a new snapshot; a file opened before it keeps its version"
old_sum=$(sha256sum <"$T/src/mod.bin" | cut -d' ' -f1)
exec 7<"$T/m1/mod.bin" 8<"$T/m2/mod.bin"
head -c 2097152 /dev/urandom >"$T/src/mod.bin"
touch -d '+1 hour' "$T/src/mod.bin"
new_sum=$(sha256sum <"$T/src/mod.bin" | cut -d' ' -f1)
echo "new in snapshot 2" >"$T/src/new.txt"
rm "$T/src/dir/sub/deep/f.txt"
start=$(date +%s.%N)
cloud_publish "$T/src" "$URL" --no-data ondemand.txt >/dev/null
for i in 1 2 3; do
	cloud_wait_for 10 test -e "$T/m$i/new.txt" || tfs_problem "snapshot 2 not visible on mount $i after 10 s"
done
printf '# snapshot 2 visible on all mounts after %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"
for i in 1 2 3; do
	[ "$(sha256sum <"$T/m$i/mod.bin" | cut -d' ' -f1)" = "$new_sum" ] || tfs_problem "mount $i: mod.bin is not the new version"
	[ -e "$T/m$i/dir/sub/deep/f.txt" ] && tfs_problem "mount $i: a deleted file is still there"
done
[ "$(sha256sum <&7 | cut -d' ' -f1)" = "$old_sum" ] || tfs_problem "m1: a file opened before the switch changed content"
[ "$(sha256sum <&8 | cut -d' ' -f1)" = "$old_sum" ] || tfs_problem "m2: a file opened before the switch changed content"
exec 7<&- 8<&-
[ "$(sha256sum <"$T/m1/mod.bin" | cut -d' ' -f1)" = "$new_sum" ] || tfs_problem "m1: mod.bin reopened is not the new version"
cloud_check_tree "$T/src" "$T/m3" "mount 3 after the switch"
grep -q "snapshot   2," <("$TIERFS" status "$T/m2") || tfs_problem "status does not show snapshot 2"
echo "ok - snapshot 2 switched in; open files kept their version"

note "on-demand files"
rm -f "$T/ondemand.out"
(cat "$T/m2/ondemand.txt" >"$T/ondemand.out" 2>"$T/ondemand.err"; echo $? >"$T/ondemand.rc") &
cloud_wait_for 5 sh -c "ls '$T/store/requests' | grep -q ." || tfs_problem "no request object in the store"
cloud_publish "$T/src" "$URL" >/dev/null # home uploads it (same version: same manifest name)
cloud_wait_for 10 test -s "$T/ondemand.rc" || tfs_problem "the on-demand read never finished"
wait
[ "$(cat "$T/ondemand.rc")" = 0 ] && cmp -s "$T/ondemand.out" "$T/src/ondemand.txt" ||
	tfs_problem "on-demand file not read after home uploaded it: $(cat "$T/ondemand.err")"
start=$(date +%s)
if out=$(cat "$T/m3/never.txt" 2>&1); then
	tfs_problem "a file home never uploads was read: $out"
else
	echo "$out" | grep -q "Input/output error" || tfs_problem "never.txt: expected EIO, got: $out"
fi
took=$(($(date +%s) - start))
[ "$took" -ge 3 ] && [ "$took" -le 8 ] || tfs_problem "never.txt failed after $took s, expected about 4 (request_timeout)"
grep -q "home did not upload 'never.txt'" "$T/c3/tierfs.log" || tfs_problem "no log line for the request timeout"
echo "ok - on-demand: request then data; EIO after request_timeout"

# new_two_chunk_file NAME: 1.5 MiB of random bytes at home, published; the
# store keys of its two chunk objects in $T/chunks.new
new_two_chunk_file() {
	(cd "$T/store" && find chunks -type f | sort) >"$T/chunks.before"
	head -c 1572864 /dev/urandom >"$T/src/$1"
	cloud_publish "$T/src" "$URL" >/dev/null
	(cd "$T/store" && find chunks -type f | sort) >"$T/chunks.after"
	comm -13 "$T/chunks.before" "$T/chunks.after" >"$T/chunks.new"
	[ "$(wc -l <"$T/chunks.new")" = 2 ] || tfs_problem "expected 2 new chunk objects, got $(wc -l <"$T/chunks.new")"
}

note "a tampered chunk object"
new_two_chunk_file tamper.bin
victim="$T/store/$(head -n1 "$T/chunks.new")"
python3 - "$victim" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0x40
open(p, 'wb').write(b)
EOF
for i in 1 2 3; do
	cloud_wait_for 10 test -e "$T/m$i/tamper.bin" || tfs_problem "tamper.bin not visible on mount $i"
done
# expect_bad_chunk I NAME WHAT: reading NAME on mount I gives EIO after only
# the file's own bytes, and the mount logs the failed verification
expect_bad_chunk() {
	local i=$1 f=$2 what=$3
	if cat "$T/m$i/$f" >"$T/bad.out" 2>"$T/bad.err"; then
		tfs_problem "mount $i: $what was read without error"
	fi
	grep -q "Input/output error" "$T/bad.err" || tfs_problem "mount $i: $what: $(cat "$T/bad.err")"
	cmp -s "$T/bad.out" <(head -c "$(stat -c %s "$T/bad.out")" "$T/src/$f") ||
		tfs_problem "mount $i: bytes read before the EIO are not the file's"
	grep -q "chunk object 'chunks/.*' failed verification" "$T/c$i/tierfs.log" ||
		tfs_problem "mount $i: no log line for $what"
}
for i in 1 3; do
	expect_bad_chunk "$i" tamper.bin "a tampered chunk"
done
echo "ok - a tampered chunk gives EIO and a log line"
rm "$T/src/tamper.bin"

# The cloud mount trusts the GCM tag alone for fetched chunks (the chunk's
# name is the AAD): an intact object of the volume put under another
# chunk's name must fail too.
note "a valid chunk object under another chunk's name"
new_two_chunk_file swap.bin
cp "$T/store/$(sed -n 1p "$T/chunks.new")" "$T/store/$(sed -n 2p "$T/chunks.new")"
cloud_wait_for 10 test -e "$T/m2/swap.bin" || tfs_problem "swap.bin not visible on mount 2"
expect_bad_chunk 2 swap.bin "a chunk object under another chunk's name"
echo "ok - a valid chunk object under another chunk's name gives EIO"
rm "$T/src/swap.bin"
cloud_publish "$T/src" "$URL" >/dev/null
cloud_wait_for 10 test ! -e "$T/m1/tamper.bin" || tfs_problem "tamper.bin still visible on mount 1"

note "the cache survives a remount"
cloud_umount "$T/m1" "$T/c1"
cloud_mount "$URL" "$T/m1" "$T/c1" -o "$OPTS"
cmp -s "$T/src/big.bin" "$T/m1/big.bin" || tfs_problem "big.bin after remount"
[ "$(cloud_status_field "$T/m1" misses)" = 0 ] || tfs_problem "remount: big.bin was fetched again, not read from the cache"
[ "$(cloud_status_field "$T/m1" hits)" -gt 0 ] || tfs_problem "remount: no cache hits"
echo "ok - the cache survives a remount"

note "damaged cache files"
cloud_umount "$T/m1" "$T/c1"
n=0
for f in "$T"/c1/chunks/*/*; do
	python3 - "$f" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 3] ^= 0x01
open(p, 'wb').write(b)
EOF
	n=$((n + 1))
done
note "flipped a byte in $n cache files"
cloud_mount "$URL" "$T/m1" "$T/c1" -o "$OPTS"
cloud_check_tree "$T/src" "$T/m1" "mount 1 over damaged cache files"
[ "$(cloud_status_field "$T/m1" corrupt_cache_files)" -gt 0 ] || tfs_problem "no damaged cache file counted"
grep -q "cache file '.*' is damaged" "$T/c1/tierfs.log" || tfs_problem "no log line for a damaged cache file"
echo "ok - damaged cache files are detected and fetched again"

note "store outage"
cloud_mount "$URL" "$T/m4" "$T/c4" -o "$OPTS" # a cold cache
ls "$T/m4" >/dev/null
mkdir "$T/away"
mv "$T"/store/* "$T/away/" # the file store keeps its directory open: empty it instead
cmp -s "$T/src/big.bin" "$T/m2/big.bin" || tfs_problem "outage: cached big.bin not served"
cmp -s "$T/src/sparse.bin" "$T/m2/sparse.bin" || tfs_problem "outage: cached sparse.bin not served"
start=$(date +%s)
if out=$(cat "$T/m4/later.bin" 2>&1 >/dev/null); then
	tfs_problem "outage: uncached later.bin was read"
else
	echo "$out" | grep -q "Input/output error" || tfs_problem "outage: expected EIO, got: $out"
fi
took=$(($(date +%s) - start))
[ "$took" -le 8 ] || tfs_problem "outage: EIO after $took s, expected within request_timeout (4 s)"
cloud_wait_for 5 sh -c "'$TIERFS' status --json '$T/m2' | grep -q '\"poll_error\":\"[^\"]'" ||
	tfs_problem "outage: status shows no store error"
cp -a "$T/away/." "$T/store/"
cloud_wait_for 10 cmp -s "$T/src/later.bin" "$T/m4/later.bin" || tfs_problem "later.bin unreadable after the outage"
echo "ok - store outage: cached data served, uncached EIO in $took s"

note "unmount"
for i in 1 2 3 4; do
	cloud_umount "$T/m$i" "$T/c$i"
done
if [ "$URING3" = 1 ]; then
	served=$(sed -n 's/.*FUSE over io_uring: \([0-9]*\) requests served.*/\1/p' "$T/c3/tierfs.log" | tail -n 1)
	[ "${served:-0}" -ge 100 ] || tfs_problem "mount 3: its rings answered ${served:-no} requests"
	note "mount 3: ${served:-0} requests through io_uring"
fi
tfs_finish
