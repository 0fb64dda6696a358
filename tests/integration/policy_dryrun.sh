#!/bin/bash
# policy_dryrun.sh - looking before leaping: 'policy add/move/rm --dry-run'
# lists exactly the files whose placement would change, with counts and
# bytes and what would start or stop leaving the premises, and changes
# nothing (the metadata store and the object store stay byte-identical,
# and a live mount keeps every placement); 'policy add' warns about a
# private rule that an earlier exporting rule shadows, and 'policy
# check' makes that an error (exit 1) and other shadowing a warning;
# 'key export' refuses to print a clear key on a terminal.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"

V=$T/vol
H=$T/home
S=$T/store
mkdir -p "$S"
"$TIERFS" format --store "file://$S" "$V" >/dev/null || fail "format"
"$TIERFS" policy add --volume "$V" pub --path '/pub/**' --placement mirror --settle 0s >/dev/null || fail "policy add pub"
tfs_mount "$V" "$H" -o sync_interval=1,publish_interval=1
mkdir -p "$H/data" "$H/pub" "$H/finance"
head -c 100 /dev/zero >"$H/data/a.csv"
head -c 200 /dev/zero >"$H/data/b.csv"
head -c 10 /dev/zero >"$H/pub/x"
head -c 5 /dev/zero >"$H/finance/p"
sync_expect "$H/pub/x" synced 20 "upload of pub/x"
"$TIERFS" publish --volume "$H" >/dev/null || fail "publish"

# mounted: nothing changes
"$TIERFS" status --json --volume "$H" | sync_json 'j["totals"]' >"$T/st0"
"$TIERFS" policy add --volume "$H" exp --path '/data/**' --placement mirror --dry-run >"$T/dry" || tfs_problem "add --dry-run failed"
grep -qx "  '/data/a.csv': private -> mirror, 100 bytes (starts leaving)" "$T/dry" || tfs_problem "add --dry-run: $(cat "$T/dry")"
grep -qx "  '/data/b.csv': private -> mirror, 200 bytes (starts leaving)" "$T/dry" || tfs_problem "add --dry-run lacks b.csv"
[ "$(grep -c "^  '" "$T/dry")" = 2 ] || tfs_problem "add --dry-run lists other files: $(cat "$T/dry")"
grep -q "dry run, nothing changed: 2 files (300 bytes) would change placement; 2 files (300 bytes) would start leaving" "$T/dry" ||
	tfs_problem "add --dry-run summary: $(tail -n1 "$T/dry")"
sleep 2
"$TIERFS" status --json --volume "$H" | sync_json 'j["totals"]' >"$T/st1"
cmp -s "$T/st0" "$T/st1" || tfs_problem "a dry run changed placements on the live mount"
"$TIERFS" policy list --volume "$H" | grep -q exp && tfs_problem "add --dry-run added the rule"
echo "ok - policy add --dry-run lists what would start leaving, and the live mount changes nothing"

# unmounted: byte-identical metadata and store
tfs_umount "$H"
# (a read-only command, run first, leaves SQLite's empty -wal and its -shm
# index, which every reader rewrites)
"$TIERFS" policy list --volume "$V" >/dev/null || fail "policy list"
state() { (cd "$V" && find . -type f ! -name '*.log' ! -name '*-shm' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; cd "$S" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); }
state >"$T/bytes0"
"$TIERFS" policy add --volume "$V" exp --path '/data/**' --placement mirror --dry-run --json >"$T/dry.json" || tfs_problem "add --dry-run --json"
[ "$(sync_json '[j["files"], j["bytes"], j["start_leaving"]["files"], j["stop_leaving"]["files"]]' <"$T/dry.json")" = "[2, 300, 2, 0]" ] ||
	tfs_problem "add --dry-run --json: $(cat "$T/dry.json")"
"$TIERFS" policy rm --volume "$V" pub --dry-run >"$T/dry" || tfs_problem "rm --dry-run failed"
grep -qx "  '/pub/x': mirror -> private, 10 bytes (stops leaving)" "$T/dry" || tfs_problem "rm --dry-run: $(cat "$T/dry")"
grep -q "0 files (0 bytes) would start leaving the premises, 1 files (10 bytes) would stop" "$T/dry" || tfs_problem "rm --dry-run summary: $(cat "$T/dry")"
tfs_expect_refused "rm --dry-run of a missing rule" "$TIERFS" policy rm --volume "$V" nosuch --dry-run
state >"$T/bytes1"
diff "$T/bytes0" "$T/bytes1" >&2 && echo "ok - dry runs leave the metadata and the object store byte-identical" ||
	tfs_problem "a dry run changed the volume or the store (diff above)"

# shadowed rules
"$TIERFS" policy add --volume "$V" fin --path '/finance/**' --placement mirror >/dev/null || fail "policy add fin"
"$TIERFS" policy add --volume "$V" finpriv --path /finance/p --placement private >/dev/null 2>"$T/err" ||
	tfs_problem "policy add finpriv"
grep -q "^warning: private rule 'finpriv' will never match: rule 'fin' comes first and makes every file it matches mirror, so they leave the premises; put it first with 'tierfs policy move finpriv --before fin'" "$T/err" ||
	tfs_problem "policy add of a shadowed private rule: no warning: $(cat "$T/err")"
rc=0
"$TIERFS" policy check --volume "$V" >"$T/chk" 2>"$T/chk.err" || rc=$?
[ "$rc" = 1 ] || tfs_problem "policy check exit $rc with a shadowed private rule"
grep -q "^error: private rule 'finpriv' can never match: rule 'fin' comes first" "$T/chk.err" || tfs_problem "policy check: $(cat "$T/chk.err")"
"$TIERFS" policy check --json --volume "$V" 2>/dev/null | sync_json 'j["shadowed"]' >"$T/sh"
[ "$(cat "$T/sh")" = '[{"rule": "finpriv", "shadowed_by": "fin", "severity": "error"}]' ] || tfs_problem "check --json: $(cat "$T/sh")"
"$TIERFS" policy move --volume "$V" finpriv --before fin --dry-run >"$T/dry" || tfs_problem "move --dry-run"
grep -qx "  '/finance/p': mirror -> private, 5 bytes (stops leaving)" "$T/dry" || tfs_problem "move --dry-run: $(cat "$T/dry")"
"$TIERFS" policy move --volume "$V" finpriv --before fin >/dev/null || fail "policy move"
"$TIERFS" policy check --volume "$V" >/dev/null 2>"$T/chk.err" || tfs_problem "policy check after the move: $(cat "$T/chk.err")"
"$TIERFS" policy add --volume "$V" od --path '/pub/**' --placement on-demand >/dev/null 2>"$T/err" || tfs_problem "add od"
grep -q "^warning: rule 'od' will never match: rule 'pub' comes first" "$T/err" || tfs_problem "add od: no warning: $(cat "$T/err")"
"$TIERFS" policy check --volume "$V" >/dev/null 2>"$T/chk.err" || tfs_problem "a shadowed exporting rule is an error"
grep -q "^warning: rule 'od' can never match: rule 'pub' comes first" "$T/chk.err" || tfs_problem "check: no warning: $(cat "$T/chk.err")"
echo "ok - a shadowed private rule: a warning of policy add, an error of policy check; other shadowing warns"

# key export and terminals
script -qec "'$TIERFS' key export --volume '$V'" /dev/null >"$T/tty" 2>&1 && tfs_problem "key export to a terminal succeeded"
grep -q "refusing to write the key in the clear to a terminal" "$T/tty" || tfs_problem "key export to a terminal: $(cat "$T/tty")"
grep -q "^key=" "$T/tty" && tfs_problem "key export printed the key on a terminal"
script -qec "'$TIERFS' key export --plain --volume '$V'" /dev/null | grep -q "^key=" || tfs_problem "key export --plain to a terminal"
"$TIERFS" key export --volume "$V" | grep -q "^key=" || tfs_problem "key export to a pipe"
echo "ok - key export refuses a terminal without --plain"
tfs_finish
