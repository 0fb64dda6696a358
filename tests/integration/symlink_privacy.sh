#!/bin/bash
# symlink_privacy.sh - a symlink is exported only when its target, resolved
# inside the volume, is itself exported, or lies outside the volume. A real
# home mount on a file:// store, a mirror rule for /pub and a private rule
# for /finance; symlinks in /pub to a private file (relative, absolute
# through the mount point, through a chain of links, to a private
# directory, dangling) never reach the store: the raw store is grepped and
# every object is decrypted with the volume key (store_dump). Links to an
# exported file and to a path outside the volume are published, and a
# cloud mount resolves them. The decision follows its target: when the
# target becomes exported the link appears, when it turns private again it
# goes. 'policy explain' says why a link stays private.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
. "$TIERFS_SRC/tests/integration/cloud_lib.sh"
DUMP="$TIERFS_BIN_DIR/tests/store_dump"
[ -x "$DUMP" ] || fail "'$DUMP' is not built"

TOK="symZ$RANDOM$RANDOM"
V=$T/vol
H=$T/home
S=$T/store
URL="file://$S"
mkdir -p "$S"
"$TIERFS" format --store "$URL" "$V" >/dev/null || fail "format"
"$TIERFS" policy add --volume "$V" keys --path '/pub/*.key' --placement private >/dev/null || fail "policy add keys"
"$TIERFS" policy add --volume "$V" pub --path '/pub/**' --placement mirror --settle 0s >/dev/null || fail "policy add pub"
"$TIERFS" policy add --volume "$V" fin --path '/finance/**' --placement private >/dev/null || fail "policy add fin"
tfs_mount "$V" "$H" -o sync_interval=1,publish_interval=1
"$TIERFS" key export --volume "$V" >"$T/key" || fail "key export"

mkdir -p "$H/pub/sub" "$H/finance/q4_$TOK" || fail "mkdir"
echo "merger secret $TOK" >"$H/finance/merger-plan_$TOK.xlsx"
echo "report $TOK" >"$H/finance/report_$TOK.txt"
echo "public text" >"$H/pub/ok.txt"
echo "key material $TOK" >"$H/pub/secret_$TOK.key"          # private, beside exported files
ln -s "secret_$TOK.key" "$H/pub/keylink"
ln -s "../finance/merger-plan_$TOK.xlsx" "$H/pub/link" # the issue's case
ln -s "$H/finance/merger-plan_$TOK.xlsx" "$H/pub/abslink" # absolute, through the mount point
ln -s link "$H/pub/chain"                                 # a link to the private link
ln -s "../finance/q4_$TOK" "$H/pub/dirlink"               # a private directory
ln -s "nothing_here_$TOK" "$H/pub/dangling"               # names nothing that exists
ln -s "../../finance/report_$TOK.txt" "$H/pub/sub/later"  # private now, exported later
ln -s ok.txt "$H/pub/oklink"                              # an exported file
ln -s ../../pub/ok.txt "$H/pub/sub/uplink"                # the same, through '..'
ln -s /etc/hostname "$H/pub/outlink"                      # outside the volume

# wait for the uploads and a snapshot that shows ok.txt
publish_wait()
{
	sync_expect "$H/pub/ok.txt" synced 20 "pub/ok.txt upload"
	"$TIERFS" publish --volume "$H" >/dev/null || fail "publish"
	"$DUMP" "$T/key" "$URL" >"$T/dump" || fail "store_dump: undecodable objects: $(grep undecodable "$T/dump" | head -3)"
}
# entry NAME: the newest directory entry called NAME in the decrypted store
has_entry() { grep -q "^entry type=[0-9]* name=$1 " "$T/dump"; }
newest_tree()
{
	# the directory objects of the newest snapshot only
	python3 - "$T/dump" <<'PY'
import sys, re
objs, cur, snaps = {}, None, {}
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("== "):
        cur = line[3:].strip(); objs[cur] = []; continue
    if cur is not None:
        objs[cur].append(line.rstrip("\n"))
for k, v in objs.items():
    if k.startswith("snaps/"):
        m = re.search(r"seq=(\d+) root=(\w+)", v[0]); snaps[int(m.group(1))] = m.group(2)
root = snaps[max(snaps)]
def walk(name, path):
    for l in objs.get("dirs/%s/%s" % (name[:2], name), []):
        m = re.match(r"entry type=(\d) name=(\S+) .* ref=(.*)$", l)
        if not m: continue
        print(path + "/" + m.group(2), m.group(3) if m.group(1) != "1" else "")
        if m.group(1) == "2": walk(m.group(3), path + "/" + m.group(2))
walk(root, "")
PY
}

publish_wait
newest_tree >"$T/tree"
note "published tree: $(tr '\n' ' ' <"$T/tree")"
for l in link abslink chain dirlink dangling keylink sub/later; do
	grep -q "^/pub/$l " "$T/tree" && tfs_problem "/pub/$l (target private) is in the snapshot"
done
grep -qx "/pub/oklink ok.txt" "$T/tree" || tfs_problem "/pub/oklink (to an exported file) is not published"
grep -qx "/pub/sub/uplink ../../pub/ok.txt" "$T/tree" || tfs_problem "/pub/sub/uplink is not published"
grep -qx "/pub/outlink /etc/hostname" "$T/tree" || tfs_problem "/pub/outlink (outside the volume) is not published"
# nothing of the private names, in the raw store or in any decrypted object
grep -a -r -l -F "$TOK" "$S" >"$T/hits" && tfs_problem "the raw store holds '$TOK': $(head -3 "$T/hits")"
grep -a -F "$TOK" "$T/dump" >"$T/hits" && tfs_problem "decrypted objects hold '$TOK': $(head -3 "$T/hits")"
grep -a -e merger-plan -e finance "$T/dump" >"$T/hits" && tfs_problem "decrypted objects name the private tree: $(head -3 "$T/hits")"
echo "ok - links to private targets stay private; links to exported and outside targets are published"

# policy explain says why
"$TIERFS" policy explain "$H/pub/link" >"$T/explain" || fail "policy explain"
grep -q "symlink: kept private: its target leads through '/finance', which has nothing exported" "$T/explain" ||
	tfs_problem "policy explain pub/link does not say why: $(cat "$T/explain")"
"$TIERFS" policy explain "$H/pub/keylink" | grep -q "kept private: its target leads to '/pub/secret_$TOK.key', which is not exported" ||
	tfs_problem "policy explain pub/keylink does not say why"
"$TIERFS" policy explain "$H/pub/dangling" | grep -q "kept private: its target names something that does not exist" ||
	tfs_problem "policy explain pub/dangling does not say why"
"$TIERFS" policy explain "$H/pub/oklink" | grep -q "symlink: exported" || tfs_problem "policy explain pub/oklink"
echo "ok - policy explain says why a link is kept private"

# the decision follows the target: exported, the link appears
"$TIERFS" policy add --volume "$V" rep --path "/finance/report_$TOK.txt" --placement mirror --settle 0s >/dev/null ||
	fail "policy add rep"
"$TIERFS" policy move --volume "$V" rep --before fin >/dev/null || fail "policy move rep"
sync_expect "$H/finance/report_$TOK.txt" synced 20 "the report, exported now"
publish_wait
newest_tree >"$T/tree"
grep -qx "/pub/sub/later ../../finance/report_$TOK.txt" "$T/tree" || tfs_problem "/pub/sub/later not published once its target is exported"
cloud_mount "$URL" "$T/c" "$T/cc" -o poll=1
[ "$(cat "$T/c/pub/sub/later" 2>&1)" = "report $TOK" ] || tfs_problem "cloud mount: pub/sub/later does not resolve"
[ "$(cat "$T/c/pub/oklink")" = "public text" ] || tfs_problem "cloud mount: pub/oklink does not resolve"
[ -e "$T/c/pub/link" ] && tfs_problem "cloud mount shows pub/link"
# and private again, it goes
"$TIERFS" policy rm --volume "$V" rep >/dev/null || fail "policy rm rep"
cloud_wait_for 20 sh -c "! test -L '$T/c/pub/sub/later'" || tfs_problem "pub/sub/later still on the cloud mount after its target turned private"
cloud_umount "$T/c" "$T/cc"
echo "ok - a link follows its target: published when it is exported, withdrawn when it turns private"
tfs_umount "$H"
tfs_finish
