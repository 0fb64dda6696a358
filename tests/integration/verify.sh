#!/bin/bash
# verify.sh - 'tierfs store verify' finds what the store lost and mends it.
# A volume with mirrored files and an evicted tier file: verify is clean
# (exit 0). The store's objects are all deleted: verify (through the mount)
# names the mirrored files as missing data and the evicted file as lost,
# exits 4, and 'status --errors' lists them (nothing stays "synced"
# silently); --repair uploads the mirrored files again from their local
# copies, publishes again (head and snapshot back), names the evicted file
# that cannot be mended, and exits 4; with that file removed verify is clean.
# Unmounted: a chunk damaged in place passes a plain verify, fails --deep
# (exit 4), is mended by --deep --repair (exit 1), and --deep is clean after.
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
sync_require_cli

VOL=$T/vol
MNT=$T/mnt
STORE=$T/store
"$TIERFS" format --store "file://$STORE" "$VOL" >/dev/null || fail "format"
pol() { "$TIERFS" policy add --volume "$VOL" "$@" >/dev/null || fail "policy add $*"; }
pol m --path '/m/**' --placement mirror --settle 1s
pol t --path '/t/**' --placement tier --evict-after 1h --settle 1s
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
mkdir -p "$MNT/m" "$MNT/t"
declare -A SUM
sync_random "$MNT/m/a" 2
sync_random "$MNT/m/b" 5
sync_random "$MNT/t/c" 3
for f in m/a m/b t/c; do SUM[$f]=$(sha "$MNT/$f"); done
sync_cli "sync --wait" "$TIERFS" sync --wait "$MNT"
sync_cli "evict" "$TIERFS" evict "$MNT/t/c"
sync_cli "publish" "$TIERFS" publish --volume "$MNT"

# verify RC WHAT ARGS...: run store verify, expect exit RC; output in $T/v.out
verify()
{
	local want=$1 what=$2 rc=0
	shift 2
	timeout 120 "$TIERFS" store verify "$@" >"$T/v.out" 2>"$T/v.err" || rc=$?
	sed 's/^/    verify: /' "$T/v.out"
	[ "$rc" -eq "$want" ] || { tfs_problem "$what: store verify $* exited $rc, expected $want: $(cat "$T/v.err")"; return 1; }
	return 0
}

# 1. A whole store: clean.
verify 0 "intact store (mounted)" --volume "$MNT"
grep -q ' 0 missing, 0 damaged' "$T/v.out" || tfs_problem "no clean summary: $(tail -n1 "$T/v.out")"
verify 0 "intact store, deep (mounted)" --deep --volume "$MNT"

# 2. The store loses everything (directory emptied).
find "$STORE" -mindepth 1 -maxdepth 1 ! -name .tmp -exec rm -rf {} +
note "store emptied"
verify 4 "emptied store (mounted)" --volume "$MNT"
for f in /m/a /m/b; do
	grep -q "^MISSING: $f: " "$T/v.out" || tfs_problem "verify does not name $f as missing data"
done
grep -q "^LOST: /t/c: " "$T/v.out" || tfs_problem "verify does not name the evicted /t/c as lost"
grep -q "^MISSING: published object 'head'" "$T/v.out" || tfs_problem "verify does not report head missing"
"$TIERFS" status --errors --volume "$MNT" >"$T/err.out" 2>&1 || tfs_problem "status --errors failed"
sed 's/^/    errors: /' "$T/err.out"
for f in /m/a /m/b /t/c; do
	grep -q "^persistent .* $f: " "$T/err.out" || tfs_problem "status --errors does not list $f after verify"
done

# 3. --repair: local copies go up again, publish again, the lost file named.
verify 4 "repair (mounted)" --repair --volume "$MNT"
for f in /m/a /m/b; do
	grep -q "^repaired: $f: " "$T/v.out" || tfs_problem "--repair did not mend $f"
done
grep -q "^LOST: /t/c: " "$T/v.out" || tfs_problem "--repair does not name /t/c as lost"
grep -q "^repaired: published snapshot" "$T/v.out" || tfs_problem "--repair did not publish again"
[ -f "$STORE/head" ] || tfs_problem "no head in the store after --repair"
n=$(sync_chunks "$STORE")
[ "$n" -ge 3 ] || tfs_problem "only $n chunk objects in the store after --repair (expected 3 for m/a and m/b)"
"$TIERFS" status --errors --volume "$MNT" >"$T/err.out" 2>&1
grep -q ' /m/a: ' "$T/err.out" && tfs_problem "/m/a still listed by status --errors after repair"
grep -q ' /t/c: ' "$T/err.out" || tfs_problem "/t/c no longer listed by status --errors, but its data is lost"
verify 4 "after repair, the lost file remains (mounted)" --volume "$MNT"
for f in m/a m/b; do
	[ "$(sha "$MNT/$f")" = "${SUM[$f]}" ] || tfs_problem "$f changed by the repair"
done
rm -f "$MNT/t/c"
verify 0 "lost file removed (mounted)" --deep --volume "$MNT"

# 4. Unmounted: a damaged chunk, found by --deep only, and mended.
tfs_umount "$MNT"
chunk=$(find "$STORE/chunks" -type f | head -n1)
python3 - "$chunk" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x5a
open(p, "wb").write(bytes(b))
PY
note "damaged $chunk"
verify 0 "damaged chunk, plain verify (HEAD only)" --volume "$VOL"
verify 4 "damaged chunk, deep" --deep --volume "$VOL"
grep -q "^MISSING: /m/[ab]: " "$T/v.out" || tfs_problem "--deep does not name the file with the damaged chunk"
verify 1 "damaged chunk, deep repair" --deep --repair --volume "$VOL"
verify 0 "after the deep repair" --deep --volume "$VOL"
# usage and a volume that is not there
verify 2 "bad option" --bogus --volume "$VOL"
verify 8 "no volume" --volume "$T/nope"
tfs_mount "$VOL" "$MNT" -o "$SYNC_MOUNT_OPTS"
for f in m/a m/b; do
	[ "$(sha "$MNT/$f")" = "${SUM[$f]}" ] || tfs_problem "$f differs after the repairs"
done
tfs_umount "$MNT"
tfs_finish
note "verify: all passed"
