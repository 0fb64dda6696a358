#!/bin/bash
# store_set.sh - 'tierfs store set URL' moves an unmounted volume to another
# store: refused while mounted; an attempt while the old store is away fails
# (exit 1) and leaves the volume on its store; the move then goes on where it
# stopped (objects already in the new store are skipped); a chunk the old
# store lost is uploaded again from the local copy; afterwards the volume
# uses the new store (status), store verify is clean there, an evicted file
# reads back from it byte-exact, and new uploads go there.
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
sync_require_cli

VOL=$T/vol
MNT=$T/mnt
A=$T/storeA
B=$T/storeB
"$TIERFS" format --store "file://$A" "$VOL" >/dev/null || fail "format"
pol() { "$TIERFS" policy add --volume "$VOL" "$@" >/dev/null || fail "policy add $*"; }
pol m --path '/m/**' --placement mirror --settle 1s
pol t --path '/t/**' --placement tier --evict-after 1h --settle 1s
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
mkdir -p "$MNT/m" "$MNT/t"
sync_random "$MNT/m/a" 5
sync_random "$MNT/t/c" 3
SA=$(sha "$MNT/m/a")
SC=$(sha "$MNT/t/c")
sync_cli "sync --wait" "$TIERFS" sync --wait "$MNT"
sync_cli "evict" "$TIERFS" evict "$MNT/t/c"
sync_cli "publish" "$TIERFS" publish --volume "$MNT"
tfs_expect_refused "store set while mounted" "$TIERFS" store set "file://$B" --volume "$VOL"
tfs_umount "$MNT"

# 1. The old store is away: the move fails, the volume keeps its store.
mv "$A" "$A.away"
rc=0
timeout 60 "$TIERFS" store set "file://$B" --volume "$VOL" >"$T/set.out" 2>"$T/set.err" || rc=$?
note "store set with the old store away: exit $rc: $(tail -n1 "$T/set.err")"
[ "$rc" -eq 1 ] || tfs_problem "store set with the old store away exited $rc, expected 1"
u=$("$TIERFS" status --json --volume "$VOL" | sync_json 'j["store"]')
[ "$u" = "file://$A" ] || tfs_problem "the volume's store is '$u' after a failed move"
rm -rf "$A"
mv "$A.away" "$A"

# 2. Part of it was copied before the interruption; the old store lost one
#    chunk of the mirrored file (its local copy is whole).
mkdir -p "$B"
cp -r "$A/chunks" "$B/"
lost=$(find "$B/chunks" -type f | head -n1)
rel=${lost#"$B/"}
rm -f "$A/$rel" "$lost"
pre=$(find "$B/chunks" -type f | wc -l)
rc=0
timeout 120 "$TIERFS" store set "file://$B" --volume "$VOL" >"$T/set.out" 2>"$T/set.err" || rc=$?
sed 's/^/    set: /' "$T/set.out" "$T/set.err"
note "store set resumed: exit $rc ($pre chunks were there already)"
[ "$rc" -eq 0 ] || [ "$rc" -eq 4 ] || tfs_problem "store set exited $rc"
grep -q "already there" "$T/set.out" || tfs_problem "store set does not say what was already there"
n=$(sed -n 's/.* \([0-9]*\) already there.*/\1/p' "$T/set.out")
[ "${n:-0}" -ge "$pre" ] || tfs_problem "store set found $n objects already there, $pre were"
u=$("$TIERFS" status --json --volume "$VOL" | sync_json 'j["store"]')
[ "$u" = "file://$B" ] || tfs_problem "the volume's store is '$u' after the move"
# The lost chunk was /m/a's (mirror: mended) or /t/c's (evicted: lost, named).
if grep -q "^LOST: /t/c" "$T/set.out"; then
	[ "$rc" -eq 4 ] || tfs_problem "store set exited $rc with /t/c's data lost, expected 4"
	SC=
else
	[ "$rc" -eq 0 ] || tfs_problem "store set exited $rc though everything could be mended"
fi

# 3. The volume works on the new store.
rc=0
timeout 60 "$TIERFS" store verify --volume "$VOL" >"$T/v.out" 2>&1 || rc=$?
sed 's/^/    verify: /' "$T/v.out" | tail -n 3
if [ -n "$SC" ]; then
	[ "$rc" -eq 0 ] || tfs_problem "store verify on the new store exited $rc"
fi
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
[ "$(sha "$MNT/m/a")" = "$SA" ] || tfs_problem "m/a differs after the move"
if [ -n "$SC" ]; then
	sync_drop_caches
	got=$(timeout 30 sha256sum <"$MNT/t/c" | cut -d' ' -f1) || true
	[ "$got" = "$SC" ] || tfs_problem "the evicted t/c does not read back from the new store"
fi
sync_random "$MNT/m/new" 1
sync_cli "sync --wait new" "$TIERFS" sync --wait "$MNT/m/new"
n=$(sync_chunks "$A")
m=$(sync_chunks "$B")
note "chunks: old store $n, new store $m"
[ "$m" -gt "$pre" ] || tfs_problem "the new file did not go to the new store"
tfs_umount "$MNT"
tfs_finish
note "store_set: all passed"
