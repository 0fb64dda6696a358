#!/bin/bash
# publish_sidechannel.sh - snapshots reveal nothing of home beyond the
# exported files: file ids are keyed hashes, not inode numbers (cloud mounts
# show them as st_ino, and on-demand requests naming them still reach the
# right file); a directory's time is the newest of its exported entries';
# ctimes are the mtimes; private activity (a top-level mkdir, a private
# directory or file beside exported ones, chmod and rename of a private
# file) publishes no new snapshot, even when 'tierfs publish' is asked, and
# the cloud mount sees nothing change; an empty mirrored file is published
# with data. Every object is decrypted with the volume key (store_dump).
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
. "$TIERFS_SRC/tests/integration/cloud_lib.sh"
DUMP="$TIERFS_BIN_DIR/tests/store_dump"
[ -x "$DUMP" ] || fail "'$DUMP' is not built"

TOK="sideZ$RANDOM$RANDOM"
V=$T/vol
H=$T/home
S=$T/store
URL="file://$S"
mkdir -p "$S"
"$TIERFS" format --store "$URL" "$V" >/dev/null || fail "format"
pol() { "$TIERFS" policy add --volume "$V" "$@" >/dev/null || fail "policy add $*"; }
pol keys --path '/pub/*.key' --placement private
pol pub --path '/pub/**' --placement mirror --settle 0s
pol od --path '/od/**' --placement on-demand
tfs_mount "$V" "$H" -o sync_interval=1,publish_interval=1
"$TIERFS" key export --volume "$V" >"$T/key" || fail "key export"

mkdir -p "$H/pub/d" "$H/od" || fail "mkdir"
echo "a" >"$H/pub/a.txt"
echo "b" >"$H/pub/d/b.txt"
: >"$H/pub/empty"
echo "asked for" >"$H/od/asked.txt"
for f in a.txt d/b.txt; do sync_expect "$H/pub/$f" synced 20 "upload of pub/$f"; done
# an empty file has no chunks: it stays 'local' once uploaded; the queue empties
for ((i = 0; i < 100; i++)); do [ "$(sync_vol 'j["sync"]["queue"]' "$H")" = 0 ] && break; sleep 0.2; done
"$TIERFS" publish --volume "$H" >/dev/null || fail "publish"
"$DUMP" "$T/key" "$URL" >"$T/dump" || fail "store_dump: undecodable objects"

# 1. file ids
for f in pub/a.txt pub/d/b.txt pub/empty od/asked.txt pub pub/d od; do
	ino=$(stat -c %i "$H/$f")
	grep -q " fid=$ino " "$T/dump" && tfs_problem "the home inode number of $f ($ino) is a published fid"
done
grep -o " fid=[0-9]* " "$T/dump" | sort -u | awk -F= '$2 + 0 < 2 { bad = 1 } END { exit bad }' ||
	tfs_problem "a published fid is 0 or 1"
fid_a=$(grep "name=a.txt " "$T/dump" | head -n1 | sed 's/.* fid=\([0-9]*\) .*/\1/')
cloud_mount "$URL" "$T/c" "$T/cc" -o poll=1,request_timeout=20
[ "$(stat -c %i "$T/c/pub/a.txt")" = "$fid_a" ] || tfs_problem "cloud st_ino of pub/a.txt is $(stat -c %i "$T/c/pub/a.txt"), the snapshot says $fid_a"
[ "$(timeout 30 cat "$T/c/od/asked.txt" 2>&1)" = "asked for" ] || tfs_problem "on-demand read through a mapped fid failed"
echo "ok - file ids are keyed, cloud mounts show them, requests naming them reach home's file"

# 2. times from exported entries only; 3. the empty file has data
python3 - "$T/dump" <<'PY' || tfs_problem "directory times are not derived from exported entries (above)"
import sys, re
objs, cur = {}, None
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("== "):
        cur = line[3:].strip(); objs[cur] = []; continue
    objs[cur].append(line)
ok = True
dirs = {k.split("/")[-1]: [dict(re.findall(r"(\w+)=(\S*)", l)) for l in v if l.startswith("entry ")]
        for k, v in objs.items() if k.startswith("dirs/")}
for name, ents in dirs.items():
    for e in ents:
        if e["ctime"] != e["mtime"]:
            print("ctime != mtime for", e["name"]); ok = False
        if e["type"] == "2":
            want = max([int(x["mtime"]) for x in dirs[e["ref"]]] or [0])
            if int(e["mtime"]) != want:
                print("dir", e["name"], "mtime", e["mtime"], "want", want); ok = False
roots = {}
for k, v in objs.items():
    if k.startswith("snaps/"):
        m = re.search(r"seq=(\d+) root=(\w+) .* mtime=(-?\d+)", v[0])
        roots[int(m.group(1))] = m.group(2)
        want = max([int(x["mtime"]) for x in dirs[m.group(2)]] or [0])
        if int(m.group(3)) != want:
            print("snapshot", k, "root mtime", m.group(3), "want", want); ok = False
# in the newest snapshot, the empty mirrored file has data
pub = [e for e in dirs[roots[max(roots)]] if e["name"] == "pub"][0]
empty = [e for e in dirs[pub["ref"]] if e["name"] == "empty"]
if not empty or empty[0]["has_data"] != "1":
    print("the empty mirrored file has no data:", empty); ok = False
sys.exit(0 if ok else 1)
PY
[ -f "$T/c/pub/empty" ] && [ ! -s "$T/c/pub/empty" ] || tfs_problem "the empty file on the cloud mount"
echo "ok - directory and snapshot times come from exported entries; ctime = mtime; empty file has data"

# 4. private activity publishes nothing
last_seq() { find "$S/snaps" -type f -printf '%f\n' | LC_ALL=C sort | tail -n1; }
seq0=$(last_seq)
for ((i = 0; i < 10; i++)); do sleep 1; s=$(last_seq); [ "$s" = "$seq0" ] && break; seq0=$s; done
before=$(stat -c '%Y %Z %s %h' "$T/c/pub" "$T/c/pub/a.txt" "$T/c")
mkdir "$H/privtop_$TOK" || fail "mkdir top"
mkdir "$H/pub/privsub_$TOK" || fail "mkdir in pub"
echo "private $TOK" >"$H/pub/s_$TOK.key"
chmod 600 "$H/pub/s_$TOK.key"
mv "$H/pub/s_$TOK.key" "$H/pub/t_$TOK.key"
sleep 3
out=$("$TIERFS" publish --volume "$H") || fail "publish"
[ "$out" = "nothing exported changed: no new snapshot" ] || tfs_problem "tierfs publish after private changes said: $out"
sleep 2
[ "$(last_seq)" = "$seq0" ] || tfs_problem "private activity made snapshot $(last_seq) (was $seq0)"
after=$(stat -c '%Y %Z %s %h' "$T/c/pub" "$T/c/pub/a.txt" "$T/c")
[ "$before" = "$after" ] || tfs_problem "the cloud mount's times, sizes or link counts changed: '$before' -> '$after'"
"$DUMP" "$T/key" "$URL" >"$T/dump2" || fail "store_dump"
grep -a -F "$TOK" "$T/dump2" && tfs_problem "a private name is in a decrypted object"
grep -a -r -l -F "$TOK" "$S" && tfs_problem "a private name is in the raw store"
# an exported change still publishes
echo "a2" >>"$H/pub/a.txt"
cloud_wait_for 20 sh -c "[ \"\$(cat '$T/c/pub/a.txt')\" = \"\$(printf 'a\na2')\" ]" || tfs_problem "an exported change did not reach the cloud mount"
[ "$(last_seq)" != "$seq0" ] || tfs_problem "an exported change made no snapshot"
echo "ok - private activity publishes nothing; exported changes still do"
cloud_umount "$T/c" "$T/cc"

# a volume last published before keyed ids and derived times (no config
# pub_keyed) has every directory rebuilt once
tfs_umount "$H"
sqlite3 "$V/meta.db" "DELETE FROM config WHERE key='pub_keyed'; DELETE FROM pubdirtime;" || fail "sqlite3"
tfs_mount "$V" "$H" -o sync_interval=1,publish_interval=1
cloud_wait_for 20 sh -c "[ \"\$(sqlite3 '$V/meta.db' \"SELECT value FROM config WHERE key='pub_keyed'\")\" = 1 ]" ||
	tfs_problem "the first publish after an upgrade did not mark the volume keyed"
n=$(sqlite3 "$V/meta.db" "SELECT (SELECT count(*) FROM pubdirtime) = (SELECT count(*) FROM inode WHERE (mode & 61440) = 16384)")
[ "$n" = 1 ] || tfs_problem "the first publish after an upgrade did not rebuild every directory"
echo "ok - a volume published before keyed ids is rebuilt whole once"
tfs_umount "$H"
tfs_finish
