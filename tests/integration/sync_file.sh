#!/bin/bash
# sync_file.sh - the sync engine of a home mount against a file:// store,
# through a real mount: mirrored files are uploaded once writes settle, as
# encrypted 4 MiB chunk objects named chunks/XX/<64 hex> that hold no
# plaintext; a 1 MiB rewrite of a 32 MiB file uploads about one new chunk;
# tiered files are evicted when idle (--evict-after) or above a watermark,
# free local disk, and read back byte-exact; a small read of an evicted
# file recalls only part of it (partial) and 'tierfs hydrate' all of it;
# 'tierfs evict' refuses private and unsynced files; on-demand and private
# files are never uploaded unasked; a file rewritten during 'sync --wait'
# ends up synced with its final content; 'tierfs gc' deletes the objects of
# deleted tiered files (after gc_grace, or at once with --force) and nothing
# live; a remount keeps everything; fsck is clean.
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
sync_require_cli

VOL=$T/vol
MNT=$T/mnt
STORE=$T/store
MARK="TIERFS-PLAINTEXT-$RANDOM$RANDOM-MARK"
PMARK="TIERFS-PRIVATE-$RANDOM$RANDOM-MARK"

"$TIERFS" format --store "file://$STORE" "$VOL" >/dev/null || fail "format --store file://$STORE"
pol() { "$TIERFS" policy add --volume "$VOL" "$@" >/dev/null || fail "policy add $*"; }
pol m --path '/m/**' --placement mirror --settle 1s
pol t --path '/t/**' --placement tier --evict-after 2s --settle 1s
pol e --path '/e/**' --placement tier --evict-after 1h --settle 1h
pol w --path '/w/**' --placement tier --watermark 1% --settle 1s
pol od --path '/od/**' --placement on-demand
# gc_grace=600: plain gc deletes nothing during the test, gc --force does.
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS,gc_grace=600"
mkdir "$MNT/m" "$MNT/t" "$MNT/e" "$MNT/w" "$MNT/od" "$MNT/p"

# 1. Mirror: small, 10 MiB and sparse 100 MiB (a 1 MiB extent at 50 MiB),
#    uploaded by the scheduler alone, encrypted.
echo "small $MARK" >"$MNT/m/small"
sync_marker_file "$MNT/m/ten" 10 "$MARK"
truncate -s 100M "$MNT/m/sparse"
sync_marker_file "$T/extent" 1 "$MARK"
dd if="$T/extent" of="$MNT/m/sparse" bs=1M seek=50 conv=notrunc,fsync status=none
declare -A SUM
for f in m/small m/ten m/sparse; do SUM[$f]=$(sha "$MNT/$f"); done
for f in m/small m/ten m/sparse; do
	sync_expect "$MNT/$f" synced 30 "mirror upload" || true
done
n0=$(sync_chunks "$STORE")
[ "$n0" -ge 5 ] || tfs_problem "only $n0 chunk objects in $STORE/chunks after mirroring 21+ MiB of data"
note "mirror: 3 files synced, $n0 chunk objects"
sync_check_chunk_names "$STORE"
if grep -rlF -e "$MARK" -e "the quick brown fox" "$STORE" >"$T/leak"; then
	tfs_problem "plaintext found in the store: $(head -n3 "$T/leak")"
fi
if find "$STORE" -printf '%P\n' | grep -E 'small|ten|sparse|/m/' >"$T/leak"; then
	tfs_problem "file names in object keys: $(head -n3 "$T/leak")"
fi
for f in m/small m/ten m/sparse; do
	[ "$(sha "$MNT/$f")" = "${SUM[$f]}" ] || tfs_problem "mirrored $f changed"
done
note "mirror: no plaintext and no names in the store"

# 2. Rewriting 1 MiB inside one 4 MiB chunk of a 32 MiB file uploads about
#    one new chunk, not the whole file.
sync_random "$MNT/m/big32" 32
sync_expect "$MNT/m/big32" synced 30 "32 MiB mirror upload" || true
n1=$(sync_chunks "$STORE")
[ $((n1 - n0)) -ge 8 ] || tfs_problem "a 32 MiB random file added $((n1 - n0)) chunk objects, expected 8"
dd if=/dev/urandom of="$MNT/m/big32" bs=1M seek=13 count=1 conv=notrunc,fsync status=none
SUM[m/big32]=$(sha "$MNT/m/big32")
s=$(sync_state "$MNT/m/big32")
[ "$s" != synced ] || tfs_problem "rewritten big32 still says synced right after the write"
sync_expect "$MNT/m/big32" synced 30 "re-sync after a 1 MiB rewrite" || true
n2=$(sync_chunks "$STORE")
d=$((n2 - n1))
{ [ "$d" -ge 1 ] && [ "$d" -le 2 ]; } || tfs_problem "a 1 MiB rewrite added $d chunk objects, expected 1 or 2"
note "rewrite of 1 MiB in a 32 MiB file: +$d chunk objects (state was '$s' right after)"

# 3. Tier, --evict-after 2s: evicted once idle, local disk freed, recalled
#    byte-exact on read.
sync_random "$MNT/t/a" 12
sync_marker_file "$MNT/t/b" 6 "$MARK"
echo "tiny tier file" >"$MNT/t/c"
for f in t/a t/b t/c; do SUM[$f]=$(sha "$MNT/$f"); done
du0=$(sync_du "$VOL/data")
for f in t/a t/b t/c; do
	sync_expect "$MNT/$f" evicted 40 "tier --evict-after 2s" || true
done
du1=$(sync_du "$VOL/data")
[ $((du0 - du1)) -ge $((16 * 1024)) ] || tfs_problem "eviction freed $((du0 - du1)) KiB of $VOL/data, expected >= 16 MiB"
sync_drop_caches
note "tier: evicted, $VOL/data went from $du0 to $du1 KiB"
[ "$(stat -c %s "$MNT/t/a")" -eq $((12 << 20)) ] || tfs_problem "evicted t/a has size $(stat -c %s "$MNT/t/a")"
for f in t/a t/b t/c; do
	got=$(timeout 30 sha256sum <"$MNT/$f" | cut -d' ' -f1) || tfs_problem "reading evicted $f failed"
	[ "$got" = "${SUM[$f]}" ] || tfs_problem "evicted $f read back differently"
done
note "tier: evicted files recalled byte-exact"

# 4. Watermark 1%: above it on any real disk, so evicted once synced.
sync_random "$MNT/w/a" 5
SUM[w/a]=$(sha "$MNT/w/a")
sync_expect "$MNT/w/a" evicted 40 "tier --watermark 1%" && note "watermark: evicted"
sync_drop_caches
[ "$(timeout 30 sha256sum <"$MNT/w/a" | cut -d' ' -f1)" = "${SUM[w/a]}" ] || tfs_problem "w/a read back differently"

# 5. Explicit sync, evict, partial recall, hydrate (tier with 1h settle and
#    idle time, so nothing happens by itself).
sync_random "$MNT/e/big" 64
sync_marker_file "$MNT/e/txt" 3 "$MARK"
for f in e/big e/txt; do SUM[$f]=$(sha "$MNT/$f"); done
cp "$MNT/e/big" "$T/orig_big"
sleep 2
s=$(sync_state "$MNT/e/big")
[ "$s" != synced ] || tfs_problem "e/big synced although its rule says --settle 1h"
tfs_expect_refused "evict of an unsynced tier file" "$TIERFS" evict "$MNT/e/big" || true
sync_cli "sync --wait of two tier files" "$TIERFS" sync --wait "$MNT/e/big" "$MNT/e/txt"
for f in e/big e/txt; do
	s=$(sync_state "$MNT/$f")
	[ "$s" = synced ] || tfs_problem "$f is '$s' after 'tierfs sync --wait' returned"
done
du0=$(sync_du "$VOL/data")
sync_cli "evict" "$TIERFS" evict "$MNT/e/big" "$MNT/e/txt"
for f in e/big e/txt; do
	s=$(sync_state "$MNT/$f")
	[ "$s" = evicted ] || tfs_problem "$f is '$s' after 'tierfs evict' returned"
done
du1=$(sync_du "$VOL/data")
[ $((du0 - du1)) -ge $((60 * 1024)) ] || tfs_problem "evict freed $((du0 - du1)) KiB, expected >= 60 MiB"
# A 4 KiB read in the middle of the 64 MiB file.
sync_drop_caches
dd if="$MNT/e/big" of="$T/piece" bs=4K skip=$((37 * 256 + 3)) count=1 status=none || tfs_problem "4 KiB read of evicted e/big"
cmp -s "$T/piece" <(dd if="$T/orig_big" bs=4K skip=$((37 * 256 + 3)) count=1 status=none) ||
	tfs_problem "4 KiB read of evicted e/big gave other bytes"
s=$(sync_state "$MNT/e/big")
[ "$s" = partial ] || tfs_problem "e/big is '$s' after a 4 KiB read of the evicted file, expected partial"
du2=$(sync_du "$VOL/data")
[ $((du2 - du1)) -le $((16 * 1024)) ] || tfs_problem "a 4 KiB read recalled $((du2 - du1)) KiB locally, expected about one 4 MiB chunk"
note "partial recall: '$s', +$((du2 - du1)) KiB local"
sync_cli "hydrate" "$TIERFS" hydrate "$MNT/e/big" "$MNT/e/txt"
[ ! -s "$T/cli.out" ] && [ ! -s "$T/cli.err" ] ||
	tfs_problem "hydrate printed without a terminal: $(head -c 200 "$T/cli.out" "$T/cli.err")"
for f in e/big e/txt; do
	s=$(sync_state "$MNT/$f")
	[ "$s" = synced ] || tfs_problem "$f is '$s' after 'tierfs hydrate', expected synced (fully local)"
done
du3=$(sync_du "$VOL/data")
[ $((du3 - du1)) -ge $((60 * 1024)) ] || tfs_problem "hydrate brought back $((du3 - du1)) KiB, expected >= 60 MiB"
for f in e/big e/txt; do
	[ "$(sha "$MNT/$f")" = "${SUM[$f]}" ] || tfs_problem "hydrated $f differs"
done
note "hydrate: fully local and byte-exact"

# 5b. Changes to evicted files are kept: a write inside, an append, a
#     truncate down and up again, a truncate to 0 and up, an O_TRUNC
#     rewrite. Each reads back right away, is not evictable until synced
#     again, and reads back after sync, evict and recall.
mods="mid app shrink zero otrunc"
for f in $mods; do
	sync_random "$MNT/e/$f" 10
	cp "$MNT/e/$f" "$T/$f.want"
done
sync_cli "sync --wait before the changes" "$TIERFS" sync --wait "$MNT"/e/{mid,app,shrink,zero,otrunc}
sync_cli "evict before the changes" "$TIERFS" evict "$MNT"/e/{mid,app,shrink,zero,otrunc}
sync_drop_caches
dd if=/dev/urandom of="$T/patch" bs=1K count=3 status=none
dd if="$T/patch" of="$MNT/e/mid" bs=1 seek=5000000 conv=notrunc status=none
dd if="$T/patch" of="$T/mid.want" bs=1 seek=5000000 conv=notrunc status=none
echo "appended" >>"$MNT/e/app" && echo "appended" >>"$T/app.want"
truncate -s 6000001 "$MNT/e/shrink" "$T/shrink.want" && truncate -s 10M "$MNT/e/shrink" "$T/shrink.want"
truncate -s 0 "$MNT/e/zero" "$T/zero.want" && truncate -s 5M "$MNT/e/zero" "$T/zero.want"
echo "rewritten" >"$MNT/e/otrunc" && echo "rewritten" >"$T/otrunc.want"
sync_drop_caches
for f in $mods; do
	cmp -s "$MNT/e/$f" "$T/$f.want" || tfs_problem "evicted file changed by '$f': reads back wrong at once ($(cmp "$MNT/e/$f" "$T/$f.want" 2>&1 | head -n1))"
	s=$(sync_state "$MNT/e/$f")
	case $s in queued | uploading | local) ;; *) tfs_problem "evicted file changed by '$f' is '$s', expected queued" ;; esac
	if timeout 30 "$TIERFS" evict "$MNT/e/$f" >/dev/null 2>&1; then
		tfs_problem "'tierfs evict' accepted the evicted file changed by '$f' before it was synced again"
	fi
done
sync_cli "sync --wait after the changes" "$TIERFS" sync --wait "$MNT"/e/{mid,app,shrink,zero,otrunc}
sync_cli "evict after the changes" "$TIERFS" evict "$MNT"/e/{mid,app,shrink,zero,otrunc}
sync_drop_caches
for f in $mods; do
	cmp -s "$MNT/e/$f" "$T/$f.want" || tfs_problem "evicted file changed by '$f': wrong after sync, evict and recall ($(cmp "$MNT/e/$f" "$T/$f.want" 2>&1 | head -n1))"
done
note "changes to evicted files: checked (write inside, append, truncate, O_TRUNC)"

# evict refuses private files (and mirrored ones are not evictable either).
echo "private $PMARK" >"$MNT/p/one"
tfs_expect_refused "evict of a private file" "$TIERFS" evict "$MNT/p/one" || true
rc=0
"$TIERFS" evict "$MNT/m/small" >"$T/out" 2>&1 || rc=$?
[ "$(sync_state "$MNT/m/small")" != evicted ] || tfs_problem "'tierfs evict' evicted a mirrored file (mirror keeps a local copy)"
note "evict of a mirrored file: exit $rc: $(head -n1 "$T/out")"

# 6. On-demand and private files are not uploaded unasked.
sync_cli "sync --wait (whole volume) before" "$TIERFS" sync --wait --volume "$MNT"
before=$(sync_chunk_names "$STORE")
sync_marker_file "$MNT/od/a" 4 "$MARK"
sync_random "$MNT/od/b" 4
sync_marker_file "$MNT/p/big" 4 "$PMARK"
sync_random "$MNT/p/rnd" 4
mkdir -p "$MNT/p/sub" && echo "x" >"$MNT/p/sub/leaf"
sync_cli "sync --wait (whole volume)" "$TIERFS" sync --wait --volume "$MNT"
sleep 3
after=$(sync_chunk_names "$STORE")
[ "$before" = "$after" ] || tfs_problem "on-demand/private files uploaded without a request: $(comm -13 <(echo "$before") <(echo "$after") | wc -l) new objects"
for f in od/a od/b; do
	s=$(sync_state "$MNT/$f")
	case $s in synced | uploading | queued) tfs_problem "on-demand $f is '$s' without a cloud request" ;; esac
done
for f in p/big p/rnd p/sub/leaf; do
	s=$(sync_state "$MNT/$f")
	[ "$s" = local ] || tfs_problem "private $f is '$s', expected local"
done
rc=0
timeout 60 "$TIERFS" sync --wait "$MNT/p/big" >"$T/out" 2>&1 || rc=$?
[ "$(sync_chunk_names "$STORE")" = "$before" ] || tfs_problem "'tierfs sync PATH' on a private file uploaded objects"
note "sync --wait on a private file: exit $rc: $(head -n1 "$T/out")"
grep -rlF "$PMARK" "$STORE" >/dev/null && tfs_problem "private plaintext found in the store"
rc=0
timeout 60 "$TIERFS" sync --wait "$MNT/od/a" >"$T/out" 2>&1 || rc=$?
note "sync --wait on an on-demand file: exit $rc, state '$(sync_state "$MNT/od/a")'"
note "on-demand and private files stayed home"

# 6b. 'sync --wait' right after a write (before the mount's once-a-second
#     flush of sizes and times) uploads that write: the file is synced
#     when it returns and stays synced (e/ settles after 1 h, so nothing
#     but the forced upload could make it so).
sync_random "$MNT/e/fresh" 1
sync_cli "sync --wait of e/fresh" "$TIERFS" sync --wait "$MNT/e/fresh"
dd if=/dev/urandom of="$MNT/e/fresh" bs=64K count=1 conv=notrunc status=none
sync_cli "sync --wait right after a write" "$TIERFS" sync --wait "$MNT/e/fresh"
sleep 1.5
s=$(sync_state "$MNT/e/fresh")
[ "$s" = synced ] || tfs_problem "e/fresh is '$s' 1.5 s after 'sync --wait' returned (the last write was not uploaded)"
note "sync --wait right after a write: state '$s' after the flush"

# 7. A file rewritten while 'sync --wait' runs ends up synced with its
#    final content.
sync_random "$MNT/e/busy" 8
(
	for i in $(seq 15); do
		dd if=/dev/urandom of="$MNT/e/busy" bs=1M count=8 conv=notrunc status=none
		dd if=/dev/urandom of="$MNT/e/busy" bs=1M seek=$((i % 8)) count=1 conv=notrunc status=none
		sleep 0.1
	done
) &
writer=$!
SYNC_BG_PIDS+=("$writer")
rc=0
timeout 40 "$TIERFS" sync --wait "$MNT/e/busy" >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 124 ] || tfs_problem "sync --wait during 3 s of writes still running after 40 s"
note "sync --wait during writes: exit $rc $(head -n1 "$T/out")"
wait "$writer"
SUM[e/busy]=$(sha "$MNT/e/busy")
sync_cli "sync --wait after the writes" "$TIERFS" sync --wait "$MNT/e/busy"
s=$(sync_state "$MNT/e/busy")
[ "$s" = synced ] || tfs_problem "e/busy is '$s' after sync --wait"
sync_cli "evict e/busy" "$TIERFS" evict "$MNT/e/busy"
[ "$(sync_state "$MNT/e/busy")" = evicted ] || tfs_problem "e/busy not evicted"
sync_drop_caches
[ "$(timeout 30 sha256sum <"$MNT/e/busy" | cut -d' ' -f1)" = "${SUM[e/busy]}" ] ||
	tfs_problem "a file rewritten during sync reads back with other content than its last write"
note "file rewritten during sync: final content synced"

# 8. gc: objects only deleted files used go (at once with --force, after
#    a grace period without), live ones stay. Tiered files (not exported)
#    are deleted: a mirrored file's objects stay while the retained
#    snapshots published for cloud mounts still list it.
sync_cli "evict for gc" "$TIERFS" evict "$MNT/e/big" "$MNT/e/txt"
c0=$(sync_chunks "$STORE")
rm -f "$MNT/t/a" "$MNT/t/b" "$MNT/e/busy"
sync
sync_cli "gc --dry-run --force" "$TIERFS" gc --dry-run --force --volume "$MNT"
note "gc --dry-run --force: $(tr '\n' ' ' <"$T/cli.out")"
[ "$(sync_chunks "$STORE")" -eq "$c0" ] || tfs_problem "gc --dry-run deleted objects"
# Within the grace period plain gc keeps them.
sync_cli "gc" "$TIERFS" gc --volume "$MNT"
note "gc (in the grace period): $(tr '\n' ' ' <"$T/cli.out")"
[ "$(sync_chunks "$STORE")" -eq "$c0" ] || tfs_problem "gc deleted objects unreferenced for less than the grace period (gc_grace=600): $c0 -> $(sync_chunks "$STORE")"
c1=$c0
for i in $(seq 10); do
	sync_cli "gc --force" "$TIERFS" gc --force --volume "$MNT" || break
	note "gc --force: $(tr '\n' ' ' <"$T/cli.out")"
	c1=$(sync_chunks "$STORE")
	[ "$c1" -le $((c0 - 7)) ] && break
	sleep 1
done
[ "$c1" -le $((c0 - 7)) ] || tfs_problem "gc --force after deleting 26 MiB of tiered files: $c0 -> $c1 chunk objects, expected at least 7 fewer"
note "gc: $c0 -> $c1 chunk objects"
sync_drop_caches
for f in e/big e/txt t/c m/small m/sparse m/ten m/big32 w/a; do
	got=$(timeout 30 sha256sum <"$MNT/$f" | cut -d' ' -f1) || true
	[ "$got" = "${SUM[$f]}" ] || tfs_problem "$f differs after gc (a live object deleted?)"
done
note "live files read back byte-exact after gc"

# 9. Remount: evicted files stay evicted and readable; states survive.
sync_cli "evict before remount" "$TIERFS" evict "$MNT/e/big" "$MNT/e/txt"
tfs_umount "$MNT"
"$TIERFS" fsck "$VOL" >"$T/fsck" 2>&1 || { cat "$T/fsck" >&2; tfs_problem "fsck after umount not clean"; }
# gc_grace=600: plain gc deletes nothing during the test, gc --force does.
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS,gc_grace=600"
s=$(sync_state "$MNT/e/big")
[ "$s" = evicted ] || tfs_problem "e/big is '$s' after remount, expected evicted"
s=$(sync_state "$MNT/m/small")
[ "$s" = synced ] || tfs_problem "m/small is '$s' after remount, expected synced"
for f in e/big e/txt t/c m/small m/sparse p/big; do
	[ -e "$MNT/$f" ] || { tfs_problem "$f missing after remount"; continue; }
done
for f in e/big e/txt t/c m/small m/sparse; do
	got=$(timeout 30 sha256sum <"$MNT/$f" | cut -d' ' -f1) || true
	[ "$got" = "${SUM[$f]}" ] || tfs_problem "$f differs after remount"
done
tfs_umount "$MNT"
"$TIERFS" fsck "$VOL" >"$T/fsck" 2>&1 || { cat "$T/fsck" >&2; tfs_problem "fsck at the end not clean"; }
tfs_finish
note "sync_file: all passed"
