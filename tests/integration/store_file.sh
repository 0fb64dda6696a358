#!/bin/bash
# store_file.sh - the file:// backend: the store contract in a temporary
# directory, the fault injector (TIERFS_FAULT) failing and corrupting calls
# of a real program, and `tierfs store check` on a usable and an unusable
# directory.
set -euo pipefail

: "${TIERFS_SRC:?}" "${TIERFS_BIN_DIR:?}" "${TIERFS:?}"
contract="$TIERFS_BIN_DIR/tests/store_contract"
bench="$TIERFS_BIN_DIR/tests/store_bench"
tmp=$(mktemp -d /tmp/tierfs-store-file.XXXXXX)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

for prog in "$contract" "$bench"; do
	[ -x "$prog" ] || fail "'$prog' is not built (build all targets first)"
done

"$contract" "file://$tmp/store" || fail "store contract failed on file://"
[ -z "$(find "$tmp/store" -mindepth 1 -not -path "$tmp/store/.tmp")" ] ||
	fail "objects or directories left behind: $(find "$tmp/store" | head)"
[ -z "$(ls -A "$tmp/store/.tmp")" ] || fail "temporary files left behind"
echo "ok - no objects, directories or temporary files left behind"

# Fault injection through the environment, in an unmodified program (the
# wrapper itself, corruption included, is unit-tested in test_store_fault).
if out=$(TIERFS_FAULT="fail=put:3" "$bench" --total 8K --object 1K --threads 1 "file://$tmp/f1" 2>&1); then
	fail "store_bench passed with the third put failing"
fi
echo "$out" | grep -q "fault: injected put failure" || fail "fault not reported: $out"
[ "$(find "$tmp/f1/bench" -type f | wc -l)" -eq 2 ] || fail "puts after the fault went on"
if out=$(TIERFS_FAULT="nonsense" "$bench" --total 1K --object 1K "file://$tmp/f4" 2>&1); then
	fail "bad fault spec accepted"
fi
echo "$out" | grep -q "invalid TIERFS_FAULT spec 'nonsense'" || fail "bad spec not reported: $out"
echo "ok - TIERFS_FAULT fails the selected call and rejects bad specs"

out=$("$TIERFS" store check "file://$tmp/checked") || fail "store check failed: $out"
echo "$out"
echo "$out" | grep -q "^  delete .*allowed, object gone" || fail "store check output: $out"
[ -z "$(find "$tmp/checked" -type f)" ] || fail "store check left its object behind"
echo "ok - store check passes on a directory and cleans up"

if [ "$(id -u)" -eq 0 ]; then
	# root ignores permissions: a read-only bind is not available here, so
	# use a file where the directory should be.
	touch "$tmp/notadir"
	target="file://$tmp/notadir/store"
else
	mkdir "$tmp/ro" && chmod 555 "$tmp/ro"
	target="file://$tmp/ro/store"
fi
if out=$("$TIERFS" store check "$target" 2>&1); then
	fail "store check passed on an unusable directory"
fi
echo "$out" | grep -q "tierfs: store .* is not usable\|tierfs: cannot open store" || fail "output: $out"
echo "ok - store check fails on an unusable directory"
echo "# store_file: all passed"
