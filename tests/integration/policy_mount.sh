#!/bin/bash
# policy_mount.sh - placement through a live home mount: every match kind
# (globs with * ? [..] **, size bounds, modification and access age, owner,
# group, tags), first match wins, the private default, pins, explain, rules
# changed while mounted, renames and hard links into private directories
# (private when the call returns), directory renames, 'policy check --json'
# and the 'status --json' volume totals against what the test created.
. "$(dirname "$0")/lib.sh"
tfs_setup
command -v python3 >/dev/null || fail "python3 is needed"
command -v setfattr >/dev/null || fail "setfattr is needed (Debian package attr)"
ORACLE="$(dirname "$0")/policy_oracle.py"
jv() { python3 "$ORACLE" json "$1"; }

"$TIERFS" format "$T/vol" >/dev/null || fail "format"
M="$T/mnt"
tfs_mount "$T/vol" "$M"
# pm SUBCOMMAND ARGS...: 'tierfs policy SUBCOMMAND --volume MOUNTPOINT ARGS...'
pm() { local sub=$1; shift; "$TIERFS" policy "$sub" --volume "$M" "$@"; }
# field PATH FIELD: one field of 'tierfs status --json MOUNT/PATH'.
field() { "$TIERFS" status --json "$M$1" 2>"$T/st.err" | jv "j['files'][0]['$2']" 2>>"$T/st.err"; }
# want PATH FIELD VALUE WHAT [SECONDS]: FIELD becomes VALUE within SECONDS
# (default 5; 0: it must already be so).
want()
{
	local p=$1 f=$2 v=$3 what=$4 secs=${5:-5} got i
	for ((i = 0; ; i++)); do
		got=$(field "$p" "$f")
		[ "$got" = "$v" ] && return 0
		((i >= secs * 5)) && break
		sleep 0.2
	done
	tfs_problem "$what: $p $f is '$got', expected '$v'$( ((secs)) && echo " within ${secs}s") $(head -c 200 "$T/st.err")"
	return 1
}
now() { want "$1" "$2" "$3" "$4" 0; }
mk() { mkdir -p "$(dirname "$M$1")" && head -c "${2:-100}" /dev/urandom >"$M$1" || fail "create $1"; }

"$TIERFS" policy --help >/dev/null 2>&1 || fail "tierfs policy --help fails"

# ---- the default ----
mk /d/f 10
want /d/f placement private "default"
now /d/f rule null "default"
now /d/f visible false "default"
now /d/f sync local "default"
now /d/f pin none "default"

# ---- globs (rules added while mounted) ----
pm add g1 --path '/g/file?.txt' --placement mirror || tfs_problem "add g1"
pm add g2 --path '/g/[ab]*.dat' --placement on-demand || tfs_problem "add g2"
pm add g3 --path '/deep/**/leaf' --placement mirror || tfs_problem "add g3"
pm add g4 --path '/star/*' --placement on-demand || tfs_problem "add g4"
pm add g5 --path '/g/[!a-c]?.bin' --placement mirror || tfs_problem "add g5"
for p in /g/file1.txt /g/file10.txt /g/filex.txtx /g/a1.dat /g/b.dat /g/c1.dat /g/A1.dat \
	/deep/leaf /deep/x/y/leaf /deep/x/leafy /deep2/leaf /star/a /star/.hidden /star/sub/b \
	/g/d1.bin /g/a1.bin /g/dd1.bin; do
	mk "$p" 10
done
want /g/file1.txt placement mirror "glob ?"
want /g/file1.txt rule g1 "glob ?"
want /g/file10.txt placement private "glob ? is one character"
want /g/filex.txtx placement private "glob is anchored"
want /g/a1.dat placement on-demand "glob [ab]*"
want /g/b.dat placement on-demand "glob [ab]* (empty *)"
want /g/c1.dat placement private "glob [ab] excludes c"
want /g/A1.dat placement private "globs are case sensitive"
want /deep/leaf placement mirror "glob /deep/**/leaf, zero components"
want /deep/x/y/leaf placement mirror "glob /deep/**/leaf, two components"
want /deep/x/leafy placement private "glob ** then a whole component"
want /deep2/leaf placement private "glob /deep/** is not /deep2"
want /star/a placement on-demand "glob /star/*"
want /star/.hidden placement on-demand "glob * matches a leading dot"
want /star/sub/b placement private "glob * does not cross /"
want /g/d1.bin placement mirror "glob [!a-c]?"
want /g/a1.bin placement private "glob [!a-c] excludes a"
want /g/dd1.bin placement private "glob [!a-c]? is two characters"
# A rule removed while mounted: its files go back to the default.
pm rm g4 || tfs_problem "rm g4"
want /star/a placement private "after rm g4"
want /star/a rule null "after rm g4"

# ---- size ----
pm add sz --path '/sz/**' --min-size 1K --max-size 4K --placement mirror || tfs_problem "add sz"
mk /sz/1023 1023
mk /sz/1024 1024
mk /sz/4096 4096
mk /sz/4097 4097
mk /sz/grow 100
want /sz/1024 placement mirror "--min-size is inclusive"
want /sz/4096 placement mirror "--max-size is inclusive"
want /sz/1023 placement private "below --min-size"
want /sz/4097 placement private "above --max-size"
want /sz/grow placement private "small file"
head -c 2000 /dev/urandom >>"$M/sz/grow"
want /sz/grow size 2100 "size written back"
want /sz/grow placement mirror "a write that grows a file into the size range"
truncate -s 5000 "$M/sz/grow"
want /sz/grow placement private "truncate above --max-size"

# ---- age: modification ----
pm add young --path '/age/**' --newer-than 3s --placement mirror || tfs_problem "add young"
pm add old --path '/old/**' --older-than 3s --placement on-demand || tfs_problem "add old"
mk /age/n 10
mk /old/n 10
mk /old/t 10
want /age/n placement mirror "--newer-than 3s, fresh file" 2
want /old/n placement private "--older-than 3s, fresh file" 0
touch -m -d '1 hour ago' "$M/old/t"
want /old/t placement on-demand "--older-than after touch -m into the past" 3
want /age/n placement private "--newer-than 3s runs out (ageing)" 8
want /old/n placement on-demand "--older-than 3s reached (ageing)" 8
echo more >>"$M/age/n"
want /age/n placement mirror "a write makes a file young again" 4

# ---- age: access ----
pm add idle --path '/idle/**' --idle 3s --placement mirror || tfs_problem "add idle"
mk /idle/n 10
mk /idle/t 10
want /idle/n placement private "--idle 3s, fresh file" 0
touch -a -d '1 hour ago' "$M/idle/t"
want /idle/t placement mirror "--idle after touch -a into the past" 3
want /idle/n placement mirror "--idle 3s reached (ageing)" 8
# A read is an access (relatime: the first read after a write moves atime).
# cp creates and writes within one kernel clock tick, as most writers do.
cp /etc/hostname "$M/idle/cp" || fail "cp"
want /idle/cp placement mirror "--idle 3s reached by a copied file" 8
cat "$M/idle/cp" >/dev/null
want /idle/cp placement private "a read of an idle copied file resets --idle" 2

# ---- owner and group ----
pm add own --path '/own/**' --owner 65534 --placement mirror || tfs_problem "add own"
pm add grp --path '/grp/**' --group 65534 --placement on-demand || tfs_problem "add grp"
mk /own/f 10
mk /grp/f 10
want /own/f placement private "owner root, rule --owner 65534"
want /grp/f placement private "group root, rule --group 65534"
chown 65534 "$M/own/f" || tfs_problem "chown"
want /own/f placement mirror "after chown 65534"
chgrp 65534 "$M/grp/f" || tfs_problem "chgrp"
want /grp/f placement on-demand "after chgrp 65534"
chown 0:0 "$M/own/f" "$M/grp/f"
want /own/f placement private "after chown back"
want /grp/f placement private "after chgrp back"

# ---- tags ----
pm add tagx --path '/tag/**' --tag user.tierfs.class=export --placement mirror || tfs_problem "add tagx"
pm add tagf --path '/tag/**' --tag user.flag --placement on-demand || tfs_problem "add tagf"
mk /tag/t 10
want /tag/t placement private "untagged"
setfattr -n user.tierfs.class -v export "$M/tag/t" || tfs_problem "setfattr"
want /tag/t placement mirror "tagged class=export"
want /tag/t rule tagx "tagged class=export"
setfattr -n user.tierfs.class -v exportx "$M/tag/t" || tfs_problem "setfattr"
want /tag/t placement private "tag value must be exact"
setfattr -n user.flag -v anything "$M/tag/t" || tfs_problem "setfattr"
want /tag/t placement on-demand "--tag NAME: present with any value"
setfattr -n user.tierfs.class -v export "$M/tag/t" || tfs_problem "setfattr"
want /tag/t placement mirror "both tags: first match wins"
setfattr -x user.tierfs.class "$M/tag/t" || tfs_problem "setfattr -x"
want /tag/t placement on-demand "removexattr class"
setfattr -x user.flag "$M/tag/t" || tfs_problem "setfattr -x"
want /tag/t placement private "removexattr flag"
setfattr -n user.flag "$M/tag/t" || tfs_problem "setfattr empty value"
want /tag/t placement on-demand "--tag NAME with an empty value"

# ---- first match wins, rules moved while mounted, explain ----
pm add fm-all --path '/fm/**' --placement mirror || tfs_problem "add fm-all"
pm add fm-priv --path '/fm/secret/**' --placement private || tfs_problem "add fm-priv"
mk /fm/secret/x 10
mk /fm/pub 10
want /fm/secret/x placement mirror "fm-all comes first"
want /fm/secret/x rule fm-all "fm-all comes first"
(cd "$M/fm" && "$TIERFS" policy move fm-priv --before fm-all) || tfs_problem "policy move from inside the mount"
want /fm/secret/x placement private "after move fm-priv --before fm-all"
want /fm/secret/x rule fm-priv "after move fm-priv --before fm-all"
now /fm/secret/x visible false "private"
want /fm/pub placement mirror "fm-all still matches /fm/pub"
"$TIERFS" policy explain "$M/fm/secret/x" >"$T/explain" || tfs_problem "explain"
last=$(tail -n1 "$T/explain")
case "$last" in
state:*private*fm-priv*) ;;
*) tfs_problem "explain /fm/secret/x: last line '$last'"; sed 's/^/    /' "$T/explain" >&2 ;;
esac
"$TIERFS" policy explain "$M/fm/pub" >"$T/explain" || tfs_problem "explain"
grep -q "fm-priv" "$T/explain" || tfs_problem "explain /fm/pub does not show rule fm-priv failing"
case "$(tail -n1 "$T/explain")" in
state:*mirror*fm-all*) ;;
*) tfs_problem "explain /fm/pub: last line '$(tail -n1 "$T/explain")'" ;;
esac
"$TIERFS" policy explain "$M/d/f" >"$T/explain" || tfs_problem "explain"
grep -q "default private" "$T/explain" || tfs_problem "explain /d/f does not say default private"

# ---- pins ----
now /fm/pub placement mirror "before pin"
"$TIERFS" pin --private "$M/fm/pub" || tfs_problem "pin --private"
now /fm/pub placement private "pin --private beats a mirror rule (at once)"
now /fm/pub pin private "pin --private"
now /fm/pub visible false "pin --private"
"$TIERFS" unpin "$M/fm/pub" || tfs_problem "unpin"
want /fm/pub placement mirror "unpin restores the rule"
now /fm/pub pin none "unpin"
"$TIERFS" pin "$M/fm/pub" || tfs_problem "pin"
now /fm/pub pin local "pin"
now /fm/pub placement mirror "pin keeps the rule's placement"
"$TIERFS" unpin "$M/fm/pub" || tfs_problem "unpin"

# ---- tier visibility ----
pm add tx --path '/tier/x/**' --placement tier --evict-after 1d --export || tfs_problem "add tx"
pm add ty --path '/tier/y/**' --placement tier --watermark 90 || tfs_problem "add ty"
mk /tier/x/f 10
mk /tier/y/f 10
want /tier/x/f placement tier "tier --export"
now /tier/x/f visible true "tier --export is visible"
want /tier/y/f placement tier "tier"
now /tier/y/f visible false "tier without --export is invisible"

# ---- renames and links ----
pm add exp --path '/exp/**' --placement mirror || tfs_problem "add exp"
pm add priv --path '/priv/**' --placement private || tfs_problem "add priv"
mkdir -p "$M/priv"
mk /exp/f1 10
mk /exp/d/f3 30
mk /exp/d/sub/f2 20
mk /exp/h 10
for p in /exp/f1 /exp/d/f3 /exp/d/sub/f2 /exp/h; do
	want $p placement mirror "exported before the renames"
done
mv "$M/exp/f1" "$M/priv/f1" || tfs_problem "mv"
now /priv/f1 placement private "a file renamed into a private dir, when mv returns"
now /priv/f1 visible false "a file renamed into a private dir, when mv returns"
mv "$M/exp/d" "$M/priv/d" || tfs_problem "mv dir"
now /priv/d/f3 placement private "a dir renamed into a private dir: its file, when mv returns"
now /priv/d/sub/f2 placement private "a dir renamed into a private dir: a nested file, when mv returns"
mv "$M/priv/d" "$M/exp/d2" || tfs_problem "mv dir back"
want /exp/d2/sub/f2 placement mirror "a dir renamed back out"
want /exp/d2/f3 placement mirror "a dir renamed back out"
mv "$M/priv/f1" "$M/exp/f1" || tfs_problem "mv back"
want /exp/f1 placement mirror "a file renamed back out"
ln "$M/exp/h" "$M/priv/h" || tfs_problem "ln"
now /exp/h placement private "a hard link into a private dir makes the file private (at once)"
now /exp/h visible false "a hard link into a private dir"
now /priv/h placement private "a hard link into a private dir"
rm "$M/priv/h" || tfs_problem "rm link"
want /exp/h placement mirror "the private link removed"
# Rename over an exported file, into a private name via rename(2) replace.
mk /exp/r1 10
mk /priv/r2 10
want /exp/r1 placement mirror "before rename over"
mv -f "$M/exp/r1" "$M/priv/r2" || tfs_problem "mv over"
now /priv/r2 placement private "renamed over a private file"
# A private rule changed while mounted is picked up: exp made private.
pm add exp-none --path '/exp/**' --placement private || tfs_problem "add exp-none"
pm move exp-none --before exp || tfs_problem "move exp-none"
want /exp/f1 placement private "a private rule moved in front while mounted" 5
want /exp/d2/sub/f2 placement private "a private rule moved in front while mounted" 5
pm rm exp-none || tfs_problem "rm exp-none"
want /exp/f1 placement mirror "the private rule removed while mounted" 5

# ---- symlinks and odd names ----
# A symlink has a placement of its own (its target text is a name): status
# and pin act on the link, as the directory listing of status shows it.
mk /priv/target 10
ln -s ../priv/target "$M/exp/sym" || tfs_problem "ln -s"
want /exp/sym path /exp/sym "status of a symlink reports the link, not its target"
"$TIERFS" pin --private "$M/exp/sym" || tfs_problem "pin --private a symlink"
got=$("$TIERFS" status --json "$M/exp" | jv '[(f["placement"], f["pin"]) for f in j["files"] if f["path"] == "/exp/sym"]')
[ "$got" = '[["private", "private"]]' ] ||
	tfs_problem "pin --private MOUNT/exp/sym: the link /exp/sym is (placement, pin) $got, expected private, private"
"$TIERFS" unpin "$M/exp/sym" >/dev/null 2>&1
rm -f "$M/exp/sym" "$M/priv/target"
# JSON stays valid with any bytes in a name (quotes, control characters, not UTF-8).
mk "/exp/q\"uo\\te"$'\n'"nl" 1
mk /exp/$'\xff\xfe' 1
"$TIERFS" status --json "$M/exp" >"$T/odd.json" || tfs_problem "status --json of a directory"
python3 -c 'import json, sys; json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))' "$T/odd.json" 2>/dev/null ||
	tfs_problem "status --json with odd file names is not valid JSON: $(head -c 300 "$T/odd.json" | cat -v)"
rm -f "$M/exp/q\"uo\\te"$'\n'"nl" "$M/exp/"$'\xff\xfe'

# ---- volume totals against what exists ----
sleep 1.5 # sizes reach the store once a second
"$TIERFS" status --json --volume "$M" >"$T/vst.json" || tfs_problem "status --json (volume)"
find "$M" -type f -printf '%i %s\n' | sort -u >"$T/inodes"
nf=$(wc -l <"$T/inodes")
nb=$(awk '{ s += $2 } END { print s + 0 }' "$T/inodes")
got=$(jv '(j["mounted"], j["files"], j["bytes"], sum(t["files"] for t in j["totals"]), sum(t["bytes"] for t in j["totals"]))' <"$T/vst.json")
[ "$got" = "[true, $nf, $nb, $nf, $nb]" ] || tfs_problem "volume status (mounted, files, bytes, sums of totals) $got, expected [true, $nf, $nb, $nf, $nb]"
got=$(jv 'j["rules"]' <"$T/vst.json")
nr=$(pm list --json | jv 'len(j)')
[ "$got" = "$nr" ] || tfs_problem "volume status rules $got, policy list has $nr"

# ---- policy check and status on a volume with known contents ----
"$TIERFS" format "$T/vol2" >/dev/null || fail "format vol2"
M2="$T/mnt2"
tfs_mount "$T/vol2" "$M2"
mkdir -p "$M2/m" "$M2/o" "$M2/p"
head -c 100 /dev/zero >"$M2/m/1"
head -c 200 /dev/zero >"$M2/m/2"
head -c 300 /dev/zero >"$M2/p/1"
head -c 50 /dev/zero >"$M2/o/1"
head -c 7 /dev/zero >"$M2/p/2"
(cd "$M2" && "$TIERFS" policy add m --path '/m/**' --placement mirror &&
	"$TIERFS" policy add o --path '/o/**' --placement on-demand) || tfs_problem "policy add from the mount's root"
for i in $(seq 25); do
	[ "$("$TIERFS" status --json "$M2/o/1" | jv 'j["files"][0]["placement"]')" = on-demand ] &&
		[ "$("$TIERFS" status --json "$M2/m/2" | jv 'j["files"][0]["placement"]')" = mirror ] && break
	sleep 0.2
done
sleep 1.5
(cd "$M2/p" && "$TIERFS" policy check --json) >"$T/check.json" || tfs_problem "policy check --json from inside the mount"
got=$(jv 'sorted((p["placement"], p["files"], p["bytes"]) for p in j["placements"] if p["files"])' <"$T/check.json")
[ "$got" = '[["mirror", 2, 300], ["on-demand", 1, 50], ["private", 2, 307]]' ] ||
	tfs_problem "policy check --json placements: $got"
got=$(jv 'sum(c["files"] for c in j["changes"])' <"$T/check.json")
[ "$got" = 0 ] || tfs_problem "policy check --json on a settled mount shows changes: $(cat "$T/check.json")"
# check shows what a rule change would do before it is made? Add a rule and
# look at the changes the mount has not applied yet is racy: instead check
# the totals of status.
"$TIERFS" status --json --volume "$M2" >"$T/vst.json" || tfs_problem "status --json (vol2)"
got=$(jv '(j["mounted"], j["rules"], j["files"], j["bytes"])' <"$T/vst.json")
[ "$got" = "[true, 2, 5, 657]" ] || tfs_problem "vol2 status: $got, expected [true, 2, 5, 657]"
# files and bytes per placement; mirrored files are queued or already
# uploaded by the sync engine, the others stay local
got=$(jv 'sorted((p, sum(t["files"] for t in j["totals"] if t["placement"] == p), sum(t["bytes"] for t in j["totals"] if t["placement"] == p)) for p in set(t["placement"] for t in j["totals"] if t["files"]))' <"$T/vst.json")
[ "$got" = '[["mirror", 2, 300], ["on-demand", 1, 50], ["private", 2, 307]]' ] ||
	tfs_problem "vol2 totals: $got"
got=$(jv 'sorted(set(t["sync"] for t in j["totals"] if t["placement"] != "mirror" and t["files"]))' <"$T/vst.json")
[ "$got" = '["local"]' ] || tfs_problem "vol2: non-mirrored files not local: $got"
vol=$(jv 'j["volume"]' <"$T/vst.json")
[ "$vol" = "$T/vol2" ] || tfs_problem "status --json volume is '$vol', expected '$T/vol2'"
(cd "$M2/m" && "$TIERFS" status --json) >"$T/vst2.json" || tfs_problem "status --json from inside the mount"
got=$(jv '(j["files"], j["bytes"])' <"$T/vst2.json")
[ "$got" = "[5, 657]" ] || tfs_problem "status --json from inside the mount: $got"
# Plain status prints something for a file.
"$TIERFS" status "$M2/m/1" >"$T/st.txt" || tfs_problem "status (text)"
grep -q mirror "$T/st.txt" || tfs_problem "status (text) of /m/1 does not say mirror: $(cat "$T/st.txt")"
tfs_umount "$M2"
tfs_umount "$M"
"$TIERFS" fsck "$T/vol" >/dev/null || tfs_problem "fsck after the placement tests"
tfs_finish
note "placement through the mount: globs, sizes, ages, owners, tags, pins, renames, links, totals"
