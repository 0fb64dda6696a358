#!/bin/bash
# policy_cli.sh - the policy CLI on an unmounted volume (--volume): rules
# round-trip through add, list (--json order, canonical option strings,
# pasteable back into 'policy add'), move and rm; every bad input is refused
# with exactly one 'tierfs: ' line and leaves the rules unchanged; a path
# outside any volume without --volume is refused; and with nothing mounted a
# rule change re-evaluates the files at once (status --json, explain, check,
# pin and unpin work unmounted too).
. "$(dirname "$0")/lib.sh"
tfs_setup
command -v python3 >/dev/null || fail "python3 is needed"
ORACLE="$(dirname "$0")/policy_oracle.py"
# jv EXPR < JSON: the value of a Python expression over the parsed JSON j.
jv() { python3 "$ORACLE" json "$1"; }

V="$T/vol"
"$TIERFS" format "$V" >/dev/null || fail "format"
# pol SUBCOMMAND ARGS...: 'tierfs policy SUBCOMMAND --volume V ARGS...'
pol() { local sub=$1; shift; "$TIERFS" policy "$sub" --volume "$V" "$@"; }
rules() { pol list --json | jv '[(r["position"], r["name"], r["placement"], r["args"]) for r in j]'; }
names() { pol list --json | jv '" ".join(r["name"] for r in j)'; }

"$TIERFS" policy --help >/dev/null 2>&1 || fail "tierfs policy --help fails"
[ "$(pol list --json | jv 'j')" = "[]" ] || fail "a new volume has rules: $(pol list --json)"

# ---- add, list, canonical form ----
# add_expect NAME CANONICAL OPTIONS...: add, then list shows CANONICAL.
add_expect()
{
	local name=$1 want=$2 got
	shift 2
	pol add "$name" "$@" || { tfs_problem "policy add $name $*: exit $?"; return; }
	got=$(pol list --json | jv "[r['args'] for r in j if r['name'] == '$name'][0]") ||
		{ tfs_problem "rule $name not listed after add"; return; }
	[ "$got" = "$want" ] || tfs_problem "policy add $name $*: listed as <$got>, expected <$want>"
}
add_expect r1 "--path '/a/**' --placement mirror" --path '/a/**' --placement mirror
add_expect r2 "--path '/b/*.csv' --min-size 1K --max-size 1536K --placement on-demand" \
	--placement=on-demand --max-size 1.5M "--path=/b/*.csv" --min-size 1024
add_expect r3 "--older-than 1h --newer-than 1w --placement mirror --settle 5m" \
	--newer-than 7d --older-than 3600 --placement mirror --settle 300s
add_expect r4 "--idle 1d --owner 65534 --group 0 --placement tier --evict-after 30d --export" \
	--owner nobody --group 0 --idle 86400s --export --placement tier --evict-after 30d
add_expect r5 "--tag user.tierfs.class=export --placement mirror" --tag user.tierfs.class=export --placement mirror --settle 30s
add_expect r6 "--placement private" --placement private
[ "$(names)" = "r1 r2 r3 r4 r5 r6" ] || tfs_problem "list order: $(names)"
pos=$(pol list --json | jv '[r["position"] for r in j]')
[ "$pos" = "[1, 2, 3, 4, 5, 6]" ] || tfs_problem "positions: $pos"
pl=$(pol list --json | jv '[r["placement"] for r in j]')
[ "$pl" = '["mirror", "on-demand", "mirror", "tier", "mirror", "private"]' ] || tfs_problem "placements: $pl"
# Plain 'policy list' shows every rule.
pol list >"$T/list.txt" || tfs_problem "policy list (text)"
for n in r1 r2 r3 r4 r5 r6; do
	grep -q "$n" "$T/list.txt" || tfs_problem "policy list (text) does not show $n"
done

# The canonical string pastes back after 'policy add NAME' to the same rule,
# also with quotes, blanks, '$' and escapes in globs and tags.
pol add q1 --path "/it's here/\\*x/**" --placement mirror || tfs_problem "add q1"
pol add q2 --path '/a b/$HOME/"q"/[]x]/`id`' --placement on-demand || tfs_problem "add q2"
pol add q3 --tag "user.a b=c'd\\" --placement tier --watermark 85% --settle 0 || tfs_problem "add q3"
pol list --json | jv '"\n".join(r["name"] + "\t" + r["args"] for r in j)' >"$T/args"
while IFS=$'\t' read -r n a; do
	eval "set -- $a"
	pol add "copy-$n" "$@" || { tfs_problem "pasting the args of $n back: exit $?"; continue; }
	b=$(pol list --json | jv "[r['args'] for r in j if r['name'] == 'copy-$n'][0]")
	[ "$a" = "$b" ] || tfs_problem "round trip of $n: <$a> became <$b>"
	pol rm "copy-$n" || tfs_problem "rm copy-$n"
done <"$T/args"
pol rm q1 && pol rm q2 && pol rm q3 || tfs_problem "rm q1 q2 q3"
[ "$(names)" = "r1 r2 r3 r4 r5 r6" ] || tfs_problem "after the round trips: $(names)"

# ---- move and rm ----
move_expect()
{
	local want=$1
	shift
	pol move "$@" || { tfs_problem "policy move $*: exit $?"; return; }
	[ "$(names)" = "$want" ] || tfs_problem "policy move $*: order $(names), expected $want"
}
move_expect "r3 r1 r2 r4 r5 r6" r3 --before r1
move_expect "r1 r2 r4 r5 r6 r3" r3 --after r6
move_expect "r1 r2 r4 r3 r5 r6" r3 --before r5
move_expect "r1 r2 r4 r3 r5 r6" r3 --after r4
move_expect "r2 r4 r3 r1 r5 r6" r1 --after r3
move_expect "r1 r2 r4 r3 r5 r6" r1 --before r2
pol rm r4 >"$T/rm.out" || tfs_problem "rm r4"
# it says what it removed, and from where
[ "$(cat "$T/rm.out")" = "removed rule 'r4' (was #3)" ] || tfs_problem "rm r4 printed '$(cat "$T/rm.out")'"
[ "$(names)" = "r1 r2 r3 r5 r6" ] || tfs_problem "after rm r4: $(names)"
pos=$(pol list --json | jv '[r["position"] for r in j]')
[ "$pos" = "[1, 2, 3, 4, 5]" ] || tfs_problem "positions after rm: $pos"
pol rm r6 && pol rm r1 || tfs_problem "rm r6, r1"
[ "$(names)" = "r2 r3 r5" ] || tfs_problem "after rm r6 r1: $(names)"
pol add r1 --path '/a/**' --placement mirror || tfs_problem "re-adding a removed name"
[ "$(names)" = "r2 r3 r5 r1" ] || tfs_problem "a new rule goes last: $(names)"

# ---- refusals leave the rules unchanged ----
pol list --json >"$T/before.json"
refused()
{
	local what=$1
	shift
	tfs_expect_refused "$what" "$@" || return
	pol list --json >"$T/after.json"
	cmp -s "$T/before.json" "$T/after.json" ||
		tfs_problem "$what: the rules changed: $(cat "$T/after.json")"
}
refused "glob without leading slash" "$TIERFS" policy add --volume "$V" bad --path 'finance/**' --placement private
refused "unbalanced [" "$TIERFS" policy add --volume "$V" bad --path '/a/[b' --placement private
refused "*** component" "$TIERFS" policy add --volume "$V" bad --path '/a/***' --placement private
refused "empty component" "$TIERFS" policy add --volume "$V" bad --path '/a//b' --placement private
refused "reversed range" "$TIERFS" policy add --volume "$V" bad --path '/[z-a]' --placement private
refused "empty glob" "$TIERFS" policy add --volume "$V" bad --path '' --placement private
refused "trailing backslash" "$TIERFS" policy add --volume "$V" bad --path '/a\' --placement private
refused "unknown placement" "$TIERFS" policy add --volume "$V" bad --path '/a/**' --placement public
refused "missing placement" "$TIERFS" policy add --volume "$V" bad --path '/a/**'
refused "unknown option" "$TIERFS" policy add --volume "$V" bad --pth '/a/**' --placement private
refused "option twice" "$TIERFS" policy add --volume "$V" bad --path '/a/**' --path '/b/**' --placement private
refused "option without value" "$TIERFS" policy add --volume "$V" bad --placement private --path
refused "private with --evict-after" "$TIERFS" policy add --volume "$V" bad --path '/a/**' --placement private --evict-after 1d
refused "private with --settle" "$TIERFS" policy add --volume "$V" bad --placement private --settle 5m
refused "mirror with --export" "$TIERFS" policy add --volume "$V" bad --placement mirror --export
refused "on-demand with --watermark" "$TIERFS" policy add --volume "$V" bad --placement on-demand --watermark 80
refused "tier without eviction" "$TIERFS" policy add --volume "$V" bad --placement tier
refused "bad size" "$TIERFS" policy add --volume "$V" bad --min-size 12Q --placement mirror
refused "negative size" "$TIERFS" policy add --volume "$V" bad --max-size -1 --placement mirror
refused "bad duration" "$TIERFS" policy add --volume "$V" bad --idle 5x --placement mirror
refused "fractional duration" "$TIERFS" policy add --volume "$V" bad --older-than 1.5d --placement mirror
refused "empty duration" "$TIERFS" policy add --volume "$V" bad --newer-than '' --placement mirror
refused "bad watermark" "$TIERFS" policy add --volume "$V" bad --placement tier --watermark 101
refused "empty size range" "$TIERFS" policy add --volume "$V" bad --min-size 2M --max-size 1M --placement mirror
refused "empty age range" "$TIERFS" policy add --volume "$V" bad --older-than 30d --newer-than 7d --placement mirror
refused "unknown user" "$TIERFS" policy add --volume "$V" bad --owner no-such-user-tierfs --placement mirror
refused "unknown group" "$TIERFS" policy add --volume "$V" bad --group no-such-group-tierfs --placement mirror
refused "empty tag name" "$TIERFS" policy add --volume "$V" bad --tag =x --placement mirror
refused "duplicate rule name" "$TIERFS" policy add --volume "$V" r2 --path '/z/**' --placement mirror
refused "invalid rule name" "$TIERFS" policy add --volume "$V" -x --placement mirror
refused "rule name with a slash" "$TIERFS" policy add --volume "$V" a/b --placement mirror
refused "rule name too long" "$TIERFS" policy add --volume "$V" "$(printf 'n%.0s' {1..65})" --placement mirror
refused "add without a name" "$TIERFS" policy add --volume "$V"
refused "move of an unknown rule" "$TIERFS" policy move --volume "$V" nosuch --before r2
refused "move before an unknown rule" "$TIERFS" policy move --volume "$V" r2 --before nosuch
refused "move without --before/--after" "$TIERFS" policy move --volume "$V" r2
refused "move with both" "$TIERFS" policy move --volume "$V" r2 --before r3 --after r5
refused "rm of an unknown rule" "$TIERFS" policy rm --volume "$V" nosuch
refused "rm without a name" "$TIERFS" policy rm --volume "$V"
refused "unknown policy subcommand" "$TIERFS" policy frobnicate --volume "$V"
refused "--volume that is no volume" "$TIERFS" policy list --volume "$T"
refused "--volume that does not exist" "$TIERFS" policy add x --volume "$T/nosuch" --placement mirror
mkdir -p "$T/plain" && echo x >"$T/plain/f"
refused "explain outside any volume" "$TIERFS" policy explain "$T/plain/f"
refused "status outside any volume" "$TIERFS" status "$T/plain/f"
refused "pin outside any volume" "$TIERFS" pin "$T/plain/f"
refused "list outside any volume" bash -c "cd '$T/plain' && exec '$TIERFS' policy list"
refused "add outside any volume" bash -c "cd '$T/plain' && exec '$TIERFS' policy add x --placement mirror"
refused "status of a missing path" "$TIERFS" status --volume "$V" /no/such/file
refused "private with --cloud-write" "$TIERFS" policy add --volume "$V" bad --path '/jobs/**' --placement private --cloud-write
case "$TFS_ERR_LINE" in
*"'--cloud-write' needs an exporting placement"*"not private"*) ;;
*) tfs_problem "private with --cloud-write: message '$TFS_ERR_LINE'" ;;
esac
refused "tier without --export with --cloud-write" "$TIERFS" policy add --volume "$V" bad --placement tier --watermark 80 --cloud-write
case "$TFS_ERR_LINE" in
*"not tier without --export"*) ;;
*) tfs_problem "tier without --export with --cloud-write: message '$TFS_ERR_LINE'" ;;
esac
refused "--cloud-write with a value" "$TIERFS" policy add --volume "$V" bad --placement mirror --cloud-write=yes
[ "$(names)" = "r2 r3 r5 r1" ] || tfs_problem "after the refusals: $(names)"

# ---- --cloud-write on the exporting placements ----
cwj() { pol list --json | jv "[r['cloud_write'] for r in j if r['name'] == '$1'][0]"; }
add_expect cw1 "--path '/jobs/*/out/**' --placement mirror --cloud-write" --cloud-write --path '/jobs/*/out/**' --placement mirror
add_expect cw2 "--path '/od/**' --placement on-demand --cloud-write" --path '/od/**' --placement on-demand --cloud-write
add_expect cw3 "--path '/t/**' --placement tier --evict-after 1d --export --cloud-write" --path '/t/**' --placement tier --evict-after 1d --export --cloud-write
[ "$(cwj cw1)" = true ] || tfs_problem "list --json: cw1 cloud_write is $(cwj cw1)"
[ "$(cwj cw3)" = true ] || tfs_problem "list --json: cw3 cloud_write is $(cwj cw3)"
[ "$(cwj r1)" = false ] || tfs_problem "list --json: r1 cloud_write is $(cwj r1)"
pol list | grep -q "cw1 .*--cloud-write" || tfs_problem "policy list (text) does not show --cloud-write"
pol rm cw1 && pol rm cw2 && pol rm cw3 || tfs_problem "rm cw1 cw2 cw3"
[ "$(names)" = "r2 r3 r5 r1" ] || tfs_problem "after the cloud-write rules: $(names)"

# ---- unmounted re-evaluation ----
# Files made through a mount, then rules changed with nothing mounted.
W="$T/vol2"
"$TIERFS" format "$W" >/dev/null || fail "format vol2"
tfs_mount "$W" "$T/mnt"
mkdir -p "$T/mnt/data" "$T/mnt/secret" || fail "mkdir"
head -c 1000 /dev/urandom >"$T/mnt/data/x.csv"
head -c 2000 /dev/urandom >"$T/mnt/data/y.txt"
head -c 3000 /dev/urandom >"$T/mnt/secret/s.csv"
tfs_umount "$T/mnt"
pw() { local sub=$1; shift; "$TIERFS" policy "$sub" --volume "$W" "$@"; }
# st PATH FIELD: one field of 'status --json --volume W PATH'.
st() { "$TIERFS" status --json --volume "$W" "$1" | jv "j['files'][0]['$2']"; }
expect_st()
{
	local p=$1 f=$2 want=$3 got
	got=$(st "$p" "$f") || { tfs_problem "status --json $p unreadable"; return; }
	[ "$got" = "$want" ] || tfs_problem "$4: $p $f is '$got', expected '$want'"
}
for p in /data/x.csv /data/y.txt /secret/s.csv; do
	expect_st "$p" placement private "no rules"
	expect_st "$p" rule null "no rules"
	expect_st "$p" visible false "no rules"
	expect_st "$p" sync local "no rules"
	expect_st "$p" pin none "no rules"
done
expect_st /data/x.csv size 1000 "sizes"
expect_st /secret/s.csv size 3000 "sizes"
expect_st /data/x.csv path /data/x.csv "path"
pw add csv --path '/**/*.csv' --placement mirror || tfs_problem "add csv (unmounted)"
expect_st /data/x.csv placement mirror "after add csv"
expect_st /data/x.csv rule csv "after add csv"
expect_st /data/x.csv visible true "after add csv"
expect_st /secret/s.csv placement mirror "after add csv"
expect_st /data/y.txt placement private "after add csv"
pw add sec --path '/secret/**' --placement private || tfs_problem "add sec"
expect_st /secret/s.csv placement mirror "sec after csv (first match wins)"
pw move sec --before csv || tfs_problem "move sec"
expect_st /secret/s.csv placement private "after move sec --before csv"
expect_st /secret/s.csv rule sec "after move sec --before csv"
expect_st /secret/s.csv visible false "after move sec --before csv"
"$TIERFS" policy explain --volume "$W" /secret/s.csv >"$T/explain" || tfs_problem "explain (unmounted)"
last=$(tail -n1 "$T/explain")
case "$last" in
state:*sec*) ;;
*) tfs_problem "explain /secret/s.csv: last line '$last', expected 'state: ... sec ...'" ;;
esac
grep -q "sec" "$T/explain" || tfs_problem "explain does not name rule sec"
# pin / unpin unmounted.
"$TIERFS" pin --private --volume "$W" /data/x.csv || tfs_problem "pin --private (unmounted)"
expect_st /data/x.csv placement private "after pin --private"
expect_st /data/x.csv pin private "after pin --private"
"$TIERFS" unpin --volume "$W" /data/x.csv || tfs_problem "unpin (unmounted)"
expect_st /data/x.csv placement mirror "after unpin"
expect_st /data/x.csv pin none "after unpin"
"$TIERFS" pin --volume "$W" /data/x.csv || tfs_problem "pin (unmounted)"
expect_st /data/x.csv pin local "after pin"
expect_st /data/x.csv placement mirror "after pin (local keeps the rule's placement)"
"$TIERFS" unpin --volume "$W" /data/x.csv || tfs_problem "unpin (unmounted)"
# check and volume status.
pw check --json >"$T/check.json" || tfs_problem "policy check --json (unmounted)"
got=$(jv 'sorted((p["placement"], p["files"], p["bytes"]) for p in j["placements"] if p["files"])' <"$T/check.json")
[ "$got" = '[["mirror", 1, 1000], ["private", 2, 5000]]' ] || tfs_problem "policy check --json placements: $got"
got=$(jv 'sum(c["files"] for c in j["changes"])' <"$T/check.json")
[ "$got" = 0 ] || tfs_problem "policy check --json after re-evaluation shows changes: $(cat "$T/check.json")"
"$TIERFS" status --json --volume "$W" >"$T/vst.json" || tfs_problem "status --json (volume)"
got=$(jv '(j["volume"], j["mounted"], j["rules"], j["files"], j["bytes"])' <"$T/vst.json")
[ "$got" = "[\"$W\", false, 2, 3, 6000]" ] || tfs_problem "volume status: $got, expected [$W, false, 2, 3, 6000]"
# a mirrored file waits in the upload queue (nothing is mounted to upload it)
got=$(jv 'sorted((t["placement"], t["sync"], t["files"], t["bytes"]) for t in j["totals"] if t["files"])' <"$T/vst.json")
[ "$got" = '[["mirror", "queued", 1, 1000], ["private", "local", 2, 5000]]' ] || tfs_problem "volume totals: $got"
pw rm csv || tfs_problem "rm csv"
expect_st /data/x.csv placement private "after rm csv"
expect_st /data/x.csv rule null "after rm csv"
# status with several paths, in order.
got=$("$TIERFS" status --json --volume "$W" /data/y.txt /secret/s.csv /data/x.csv | jv '[f["path"] for f in j["files"]]')
[ "$got" = '["/data/y.txt", "/secret/s.csv", "/data/x.csv"]' ] || tfs_problem "status of three paths: $got"
# A refused rule leaves the files' placement alone too.
pw add csv2 --path '/**/*.csv' --placement mirror || tfs_problem "add csv2"
tfs_expect_refused "bad rule on vol2" "$TIERFS" policy add --volume "$W" bad --path 'x' --placement private
expect_st /data/x.csv placement mirror "after a refused add"
# explain says where cloud nodes may write.
pw add cwx --path '/data/**' --placement mirror --cloud-write || tfs_problem "add cwx"
"$TIERFS" policy explain --volume "$W" /data/y.txt >"$T/explain-cw" || tfs_problem "explain /data/y.txt"
grep -q "^cloud write: nodes with a node key may write here" "$T/explain-cw" ||
	tfs_problem "explain of a cloud-write path: $(cat "$T/explain-cw")"
"$TIERFS" policy explain --volume "$W" /data/x.csv >"$T/explain-m" || tfs_problem "explain /data/x.csv"
grep -q "cloud write" "$T/explain-m" && tfs_problem "explain of a mirror path without --cloud-write: $(cat "$T/explain-m")"
pw rm cwx || tfs_problem "rm cwx"
# Mount again: the mount agrees with what the CLI decided.
tfs_mount "$W" "$T/mnt"
got=$("$TIERFS" status --json "$T/mnt/data/x.csv" | jv 'j["files"][0]["placement"]')
[ "$got" = mirror ] || tfs_problem "after remount /data/x.csv is $got"
got=$("$TIERFS" status --json "$T/mnt/secret/s.csv" | jv 'j["files"][0]["placement"]')
[ "$got" = private ] || tfs_problem "after remount /secret/s.csv is $got"
tfs_umount "$T/mnt"
"$TIERFS" fsck "$W" >/dev/null || tfs_problem "fsck after the policy commands"
tfs_finish
note "policy CLI: add/list/move/rm, refusals and unmounted re-evaluation work"
