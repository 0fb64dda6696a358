#!/bin/bash
# audit.sh - the egress audit log through the real mount and CLI: every
# upload and every publish leaves one record (time, path, rule, placement,
# bytes, object keys) that matches what is really in the store; private
# files leave none; 'tierfs audit' filters by --path and --since and speaks
# JSON; 'tierfs audit verify' accounts for every object in the store, flags
# an object written behind the log's back and a logged live object that
# went missing, and leaves cloud nodes' outbox objects alone; 'tierfs audit
# keep' sets the keep period, and pruning keeps records whose objects are
# still in the store.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"

V=$T/vol
H=$T/home
S=$T/store
URL="file://$S"
mkdir -p "$S"
"$TIERFS" format --store "$URL" "$V" >/dev/null || fail "format"
"$TIERFS" policy add --volume "$V" pub --path '/pub/**' --placement mirror --settle 0s >/dev/null || fail "policy add"
tfs_mount "$V" "$H" -o sync_interval=1,publish_interval=1
mkdir -p "$H/pub" "$H/priv" || fail "mkdir"
echo "small" >"$H/pub/a.txt"
head -c $((9 * 1048576)) /dev/urandom >"$H/pub/big.bin"
echo "private" >"$H/priv/secret.txt"
sync_expect "$H/pub/a.txt" synced 30 "upload of a.txt"
sync_expect "$H/pub/big.bin" synced 60 "upload of big.bin"
"$TIERFS" publish --volume "$H" >/dev/null || fail "publish"

"$TIERFS" audit --json --volume "$V" >"$T/a.json" || fail "tierfs audit --json"
python3 - "$T/a.json" "$S" <<'PY' || tfs_problem "audit records do not match the store (above)"
import json, os, sys
j = json.load(open(sys.argv[1])); store = sys.argv[2]; ok = True
def size(k): return os.path.getsize(os.path.join(store, k))
up = {}
for r in j["records"]:
    if r["kind"] == "upload":
        up.setdefault(r["path"], []).append(r)
    if "priv" in r["path"]:
        print("a record for a private path:", r); ok = False
for path, n in (("/pub/a.txt", 1), ("/pub/big.bin", 3)):
    rs = up.get(path, [])
    if len(rs) != 1:
        print("expected one upload record for", path, "got", rs); ok = False; continue
    r = rs[0]
    if r["rule"] != "pub" or r["placement"] != "mirror" or len(r["objects"]) != n:
        print("wrong record", r); ok = False
    if any(not k.startswith("chunks/") or not os.path.exists(os.path.join(store, k)) for k in r["objects"]):
        print("objects not in the store:", r["objects"]); ok = False
    elif r["bytes"] != sum(size(k) for k in r["objects"]):
        print("bytes", r["bytes"], "but the objects hold", sum(size(k) for k in r["objects"])); ok = False
pubs = [r for r in j["records"] if r["kind"] == "publish"]
if not pubs or not all("head" in r["objects"] and any(k.startswith("snaps/") for k in r["objects"]) for r in pubs):
    print("publish records without snapshot and head:", pubs); ok = False
if j["count"] != len(j["records"]):
    print("count", j["count"]); ok = False
sys.exit(0 if ok else 1)
PY
echo "ok - one record per upload and per publish, matching the store's objects and sizes; nothing private"

"$TIERFS" audit --path '/pub/big*' --volume "$V" >"$T/a.txt" || fail "tierfs audit --path"
grep -q "upload  '/pub/big.bin'  rule pub  mirror  [0-9]* bytes  3 objects" "$T/a.txt" || tfs_problem "audit --path: $(cat "$T/a.txt")"
[ "$(grep -c upload "$T/a.txt")" = 1 ] || tfs_problem "audit --path lists other files: $(cat "$T/a.txt")"
"$TIERFS" audit --path '/pub/**' --objects --volume "$V" | grep -q "^    chunks/" || tfs_problem "audit --objects lists no keys"
sleep 2
"$TIERFS" audit --since 1s --path '/pub/**' --json --volume "$V" | grep -q '"count":0' || tfs_problem "audit --since 1s lists older records"
"$TIERFS" audit --since 1h --path '/pub/**' --json --volume "$V" | grep -q '"count":2' || tfs_problem "audit --since 1h misses records"
tfs_expect_refused "audit --since bad" "$TIERFS" audit --since 7x --volume "$V"
tfs_expect_refused "audit --path bad" "$TIERFS" audit --path 'rel/*' --volume "$V"
echo "ok - --path, --since, --objects filter; bad values are refused"

"$TIERFS" audit verify --volume "$V" >"$T/v.out" || tfs_problem "audit verify on a clean store: $(cat "$T/v.out")"
grep -q " 0 not accounted for; 0 logged live objects missing" "$T/v.out" || tfs_problem "audit verify: $(cat "$T/v.out")"
mkdir -p "$S/chunks/ab" "$S/outbox/node1"
echo "planted" >"$S/chunks/ab/planted-object"
echo "node data" >"$S/outbox/node1/0001"
victim=$("$TIERFS" audit --path /pub/a.txt --json --volume "$V" | sync_json 'j["records"][0]["objects"][0]')
mv "$S/$victim" "$T/victim"
rc=0
"$TIERFS" audit verify --volume "$V" >"$T/v.out" || rc=$?
[ "$rc" = 1 ] || tfs_problem "audit verify exit $rc with a planted and a missing object"
grep -qx "not in the audit log: chunks/ab/planted-object" "$T/v.out" || tfs_problem "audit verify does not flag the planted object: $(cat "$T/v.out")"
grep -qx "missing from the store: $victim" "$T/v.out" || tfs_problem "audit verify does not flag the missing object: $(cat "$T/v.out")"
grep -q outbox "$T/v.out" && tfs_problem "audit verify flags a cloud node's outbox object"
"$TIERFS" audit verify --json --volume "$V" | sync_json '[j["unaccounted"], j["missing"], j["others"]]' >"$T/v.json"
[ "$(cat "$T/v.json")" = "[1, 1, 1]" ] || tfs_problem "audit verify --json counts: $(cat "$T/v.json")"
mv "$T/victim" "$S/$victim"
rm "$S/chunks/ab/planted-object"
"$TIERFS" audit verify --volume "$V" >/dev/null || tfs_problem "audit verify after the repair"
echo "ok - audit verify flags foreign and missing objects, not outbox objects"

# keep period: records of live objects stay; a record of objects gone goes
"$TIERFS" audit keep --volume "$V" | grep -q "kept 7776000 seconds" || tfs_problem "default keep period"
tfs_umount "$H"
sqlite3 "$V/meta.db" "INSERT INTO egress(id, time, kind, path, bytes, objects) VALUES(999999, 1, 'upload', '/pub/gone', 10, 1);
	INSERT INTO egress_obj(rec, key) VALUES(999999, 'chunks/00/00gone');" || fail "sqlite3"
n0=$("$TIERFS" audit --json --volume "$V" | sync_json 'j["count"]')
"$TIERFS" audit keep 1s --volume "$V" >/dev/null || tfs_problem "audit keep 1s"
sleep 1
"$TIERFS" audit --json --volume "$V" >"$T/k.json"
[ "$(sync_json 'j["keep_seconds"]' <"$T/k.json")" = 1 ] || tfs_problem "keep period not set"
grep -q '/pub/gone' "$T/k.json" && tfs_problem "a record of objects gone from the store was not pruned"
grep -q '"/pub/big.bin"' "$T/k.json" || tfs_problem "the record of a live object was pruned"
[ "$(sync_json 'j["count"]' <"$T/k.json")" -lt "$n0" ] || tfs_problem "nothing pruned"
"$TIERFS" audit verify --volume "$V" >/dev/null || tfs_problem "audit verify after pruning"
tfs_expect_refused "audit keep bad" "$TIERFS" audit keep soon --volume "$V"
echo "ok - audit keep: old records go unless an object they list is still in the store"
tfs_finish
