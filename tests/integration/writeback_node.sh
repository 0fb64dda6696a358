#!/bin/bash
# writeback_node.sh - the cloud node's side of write-back, on a file:// store
# with snapshots made by cloud_fixture (no home mount: what reaches the
# outbox is checked in the store). A node key from 'tierfs node add' makes
# the cloud mount writable where the snapshot's cloud-write rules say, and
# only there (EROFS elsewhere, and everywhere with a plain volume key).
# Inside: create, sequential and random writes, truncate, mkdir (also on the
# way to the writable area), write-to-temp-then-rename, unlink, rmdir, chmod,
# utimens, symlinks; hard links and fifos refused with EPERM. Read-your-writes
# after close; per-file state in status and the user.tierfs.state xattr;
# 'tierfs sync --wait' returns once change sets are in the outbox, and
# nothing of the content or the names reaches the store in the clear. A
# kill -9 right after writes loses nothing closed: the remount shows it and
# uploads it. A store outage queues (sync --wait --timeout fails and says
# so, umount refuses, umount -l says what stays staged) and the staged
# changes go out once the store is back.
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/cloud_lib.sh"

URL="file://$T/store"
TOK="wbnZ$RANDOM$RANDOM"
OPTS="poll=1,request_timeout=4"
mkdir -p "$T/src/jobs/q3/out" "$T/src/data" "$T/store"
echo "input data $TOK" >"$T/src/data/in.txt"
echo "old result $TOK" >"$T/src/jobs/q3/out/res.txt"
echo "to move $TOK" >"$T/src/jobs/q3/out/move.txt"
ln -s res.txt "$T/src/jobs/q3/out/res.link"
mkdir -p "$T/src/jobs/q3/out/hd/sub" "$T/src/jobs/q3/out/full" "$T/src/jobs/q3/out/B"
echo f >"$T/src/jobs/q3/out/hd/sub/f"
echo f >"$T/src/jobs/q3/out/full/f"
echo "home B $TOK" >"$T/src/jobs/q3/out/B/f"

"$TIERFS" format --store "$URL" "$T/vol" >/dev/null || fail "tierfs format"
"$TIERFS" node add gpu-01 --volume "$T/vol" --out "$T/gpu.key" >/dev/null || fail "tierfs node add"
[ "$(stat -c %a "$T/gpu.key")" = 600 ] || tfs_problem "the node key file is not mode 600"
"$TIERFS" key export --volume "$T/vol" --out "$T/key" >/dev/null || fail "tierfs key export"
"$FIXTURE" --key-file "$T/key" --chunk-size 1M --writable '/jobs/*/out/**' "$T/src" "$URL" >/dev/null ||
	fail "cloud_fixture"

nmount() # MNT CACHE: a cloud mount with the node key
{
	mkdir -p "$1"
	TFS_MOUNTS+=("$1")
	TFS_VOLUMES+=("$2")
	timeout 30 "$TIERFS" mount --cloud --key-file "$T/gpu.key" --cache "$2" -o "$OPTS" "$URL" "$1" ||
		fail "tierfs mount --cloud with a node key exited $?"
	tfs_wait_state "$1" 1 10 || fail "'$1' not mounted"
}
outbox_sets() { find "$T/store/outbox" -path '*/cs/*' -type f 2>/dev/null | wc -l; }
state_of() { getfattr --only-values -n user.tierfs.state "$1" 2>/dev/null; }
expect_errno() # WHAT ERRNO-TEXT CMD...: the command fails and says ERRNO-TEXT
{
	local what=$1 want=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		tfs_problem "$what: succeeded, expected '$want'"
	elif ! grep -q "$want" <<<"$out"; then
		tfs_problem "$what: said '$out', expected '$want'"
	fi
}

note "a plain volume key: read-only everywhere"
cloud_mount "$URL" "$T/ro" "$T/cro" -o "$OPTS"
expect_errno "create with a volume key" "Read-only file system" sh -c "echo x >'$T/ro/jobs/q3/out/new'"
grep -q "^$URL $T/ro fuse.tierfs ro," /proc/self/mounts || tfs_problem "a volume-key mount is not read-only"
cloud_umount "$T/ro" "$T/cro"

note "a node key: writable where the rules say, and only there"
nmount "$T/m" "$T/c"
M=$T/m
grep -q "^$URL $M fuse.tierfs rw," /proc/self/mounts || tfs_problem "a node-key mount is not read-write"
expect_errno "create outside the writable area" "Read-only file system" sh -c "echo x >'$M/data/new'"
expect_errno "mkdir outside" "Read-only file system" mkdir "$M/data/d"
expect_errno "rm of a home file outside" "Read-only file system" rm -f "$M/data/in.txt"
expect_errno "chmod outside" "Read-only file system" chmod 600 "$M/data/in.txt"
expect_errno "write to a file outside" "Read-only file system" sh -c "echo x >>'$M/data/in.txt'"
expect_errno "mkdir beside the writable area" "Read-only file system" mkdir "$M/jobs/q3/other"
echo "new result $TOK" >"$M/jobs/q3/out/new.txt" || tfs_problem "create inside the writable area"
[ "$(cat "$M/jobs/q3/out/new.txt")" = "new result $TOK" ] || tfs_problem "read-your-writes: new.txt"
mkdir "$M/jobs/q4" "$M/jobs/q4/out" || tfs_problem "mkdir on the way to a writable area"
expect_errno "a file on the way (not inside)" "Read-only file system" sh -c "echo x >'$M/jobs/q4/notes'"

note "the operations a job does"
O=$M/jobs/q4/out
head -c 3000000 /dev/urandom >"$T/seq.bin"
cp "$T/seq.bin" "$O/seq.bin" && cmp -s "$T/seq.bin" "$O/seq.bin" || tfs_problem "sequential write"
python3 - "$O/rand.bin" "$T/rand.bin" <<'EOF' || tfs_problem "random writes"
import os, random, sys
random.seed(7)
size = 5 << 20
want = bytearray(size)
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)
os.ftruncate(fd, size)
for _ in range(400):
    off = random.randrange(0, size - 4096)
    data = os.urandom(random.randrange(1, 4096))
    os.pwrite(fd, data, off)
    want[off:off + len(data)] = data
os.fsync(fd)
os.close(fd)
open(sys.argv[2], 'wb').write(want)
got = open(sys.argv[1], 'rb').read()
sys.exit(0 if got == bytes(want) else 1)
EOF
cmp -s "$T/rand.bin" "$O/rand.bin" || tfs_problem "random writes read back differently"
truncate -s 1000 "$O/seq.bin" && [ "$(stat -c %s "$O/seq.bin")" = 1000 ] || tfs_problem "truncate"
cmp -s <(head -c 1000 "$T/seq.bin") "$O/seq.bin" || tfs_problem "truncate kept the wrong bytes"
echo "partial $TOK" >"$O/.result.tmp" && mv "$O/.result.tmp" "$O/result.txt" || tfs_problem "temp-then-rename"
[ -e "$O/.result.tmp" ] && tfs_problem "the temporary name is still there after the rename"
[ "$(cat "$O/result.txt")" = "partial $TOK" ] || tfs_problem "renamed result reads wrong"
echo "second $TOK" >"$O/.r2" && mv -f "$O/.r2" "$O/result.txt" || tfs_problem "rename over an existing result"
[ "$(cat "$O/result.txt")" = "second $TOK" ] || tfs_problem "rename over: old bytes"
echo gone >"$O/gone.txt" && rm "$O/gone.txt" && [ ! -e "$O/gone.txt" ] || tfs_problem "unlink"
mkdir "$O/sub" && rmdir "$O/sub" && [ ! -e "$O/sub" ] || tfs_problem "rmdir"
mkdir "$O/full" && echo x >"$O/full/f"
expect_errno "rmdir of a non-empty directory" "not empty" rmdir "$O/full"
chmod 640 "$O/result.txt" && [ "$(stat -c %a "$O/result.txt")" = 640 ] || tfs_problem "chmod"
touch -d '2001-02-03 04:05:06 UTC' "$O/result.txt" &&
	[ "$(stat -c %Y "$O/result.txt")" = 981173106 ] || tfs_problem "utimens"
ln -s result.txt "$O/latest" && [ "$(readlink "$O/latest")" = result.txt ] &&
	[ "$(cat "$O/latest")" = "second $TOK" ] || tfs_problem "symlink"
expect_errno "hard link" "Operation not permitted" ln "$O/result.txt" "$O/hard"
expect_errno "fifo" "Operation not permitted" mkfifo "$O/fifo"
expect_errno "chown" "Operation not permitted" chown 12345 "$O/result.txt"
# a file home has, changed here: copied first, then changed
echo "appended $TOK" >>"$M/jobs/q3/out/res.txt" || tfs_problem "append to a home file in the writable area"
[ "$(cat "$M/jobs/q3/out/res.txt")" = "old result $TOK
appended $TOK" ] || tfs_problem "append to a home file: $(cat "$M/jobs/q3/out/res.txt")"
mv "$M/jobs/q3/out/res.link" "$M/jobs/q3/out/res.link2" || tfs_problem "rename of a home symlink"
H3=$M/jobs/q3/out
mv "$H3/move.txt" "$H3/moved.txt" || tfs_problem "rename of a home file"
[ "$(cat "$H3/moved.txt")" = "to move $TOK" ] && [ ! -e "$H3/move.txt" ] || tfs_problem "a renamed home file reads wrong"
[ -d "$M/jobs" ] && [ -d "$H3" ] || tfs_problem "renaming a home file changed the directories above it"
rm "$H3/hd/sub/f" && rmdir "$H3/hd/sub" && rmdir "$H3/hd" || tfs_problem "rmdir of emptied home directories"
[ -e "$H3/hd" ] && tfs_problem "a removed home directory is still there"
expect_errno "rmdir of a non-empty home directory" "not empty" rmdir "$H3/full"
echo made >"$H3/full/g" && expect_errno "rmdir of a home directory with a new file" "not empty" rmdir "$H3/full"
rm -rf "$H3/B" && mkdir "$H3/A" && echo "node B $TOK" >"$H3/A/f" && mv "$H3/A" "$H3/B" ||
	tfs_problem "a directory made here renamed over a removed home directory"
[ "$(cat "$H3/B/f")" = "node B $TOK" ] || tfs_problem "B/f after the rename over a removed directory"
mkdir "$O/tree" && echo t >"$O/tree/t" && mv "$O/tree" "$O/tree2" && [ "$(cat "$O/tree2/t")" = t ] ||
	tfs_problem "rename of a directory made here"
ls "$O" | LC_ALL=C sort | tr '\n' ' ' >"$T/ls.txt"
[ "$(cat "$T/ls.txt")" = "full latest rand.bin result.txt seq.bin tree2 " ] ||
	tfs_problem "listing of the results directory: $(cat "$T/ls.txt")"
ls "$M/jobs/q3/out" | LC_ALL=C sort | tr '\n' ' ' >"$T/ls3.txt"
[ "$(cat "$T/ls3.txt")" = "B full moved.txt new.txt res.link2 res.txt " ] ||
	tfs_problem "merged listing: $(cat "$T/ls3.txt")"
echo "ok - operations in the writable area"

note "sync --wait: every closed file in the outbox"
"$TIERFS" sync --wait --timeout=30 "$M" || tfs_problem "tierfs sync --wait on the node"
n=$(outbox_sets)
[ "$n" -ge 1 ] || tfs_problem "no change set in the outbox after sync --wait"
case $(state_of "$O/result.txt") in uploaded*) ;; *) tfs_problem "state of result.txt: '$(state_of "$O/result.txt")'" ;; esac
[ "$(state_of "$M/data/in.txt")" = home ] || tfs_problem "state of a home file: '$(state_of "$M/data/in.txt")'"
"$TIERFS" status "$O/result.txt" | grep -q "uploaded (change set" || tfs_problem "tierfs status of a node file"
"$TIERFS" status "$M" | grep -q "outbox     0 changes waiting" || tfs_problem "status: outbox not empty after sync"
# nothing in the clear: neither content nor names
if grep -rqa -e "$TOK" -e result.txt -e rand.bin -e gpu-01 "$T/store/outbox"; then
	tfs_problem "plaintext of the node's changes in the store"
fi
echo "ok - $n change sets in the outbox, sealed"

note "kill -9 right after writes: closed files survive and go out"
head -c 2000000 /dev/urandom >"$T/late.bin"
cp "$T/late.bin" "$O/late.bin"
echo "after crash $TOK" >"$O/late.txt"
pid=$(tfs_daemon_pid "$T/c")
[ -n "$pid" ] || fail "no daemon pid for the cloud mount"
kill -9 "$pid"
tfs_force_umount "$M"
nmount "$M" "$T/c"
cmp -s "$T/late.bin" "$O/late.bin" || tfs_problem "late.bin lost or damaged by kill -9"
[ "$(cat "$O/late.txt")" = "after crash $TOK" ] || tfs_problem "late.txt after kill -9"
"$TIERFS" sync --wait --timeout=30 "$M" || tfs_problem "sync after the remount"
[ "$(outbox_sets)" -gt "$n" ] || tfs_problem "no new change set after the remount"
echo "ok - kill -9: closed files kept and uploaded"

note "store outage: changes queue, then go out"
mv "$T/store/outbox" "$T/outbox.away"
chattr +i "$T/store" 2>/dev/null || { mv "$T/store" "$T/store.away"; MOVED=1; }
echo "during outage $TOK" >"$O/outage.txt"
if "$TIERFS" sync --wait --timeout=3 "$M" 2>"$T/sync.err"; then
	tfs_problem "sync --wait succeeded while the store was unwritable"
fi
grep -q "timed out" "$T/sync.err" || tfs_problem "sync during the outage said: $(cat "$T/sync.err")"
case $(state_of "$O/outage.txt") in pending*) ;; *) tfs_problem "state during the outage: '$(state_of "$O/outage.txt")'" ;; esac
if "$TIERFS" umount "$M" 2>"$T/umount.err"; then
	tfs_problem "umount went ahead with changes not in the store"
	nmount "$M" "$T/c"
fi
grep -q "umount -l" "$T/umount.err" || tfs_problem "umount refusal did not say what to do: $(cat "$T/umount.err")"
[ "${MOVED:-0}" = 1 ] && mv "$T/store.away" "$T/store" || chattr -i "$T/store"
mv "$T/outbox.away" "$T/store/outbox"
"$TIERFS" sync --wait --timeout=90 "$M" || tfs_problem "sync after the store came back"
case $(state_of "$O/outage.txt") in uploaded*) ;; *) tfs_problem "state after the outage: '$(state_of "$O/outage.txt")'" ;; esac
echo "ok - store outage: queued, then uploaded"

note "umount -l says what stays staged"
MOVED=0
IMM=("$T/store/outbox"/*/cs "$T/store/outbox"/*/chunks)
chattr +i "${IMM[@]}" 2>/dev/null || { mv "$T/store" "$T/store.away"; MOVED=1; }
echo "left behind $TOK" >"$O/left.txt"
"$TIERFS" umount -l "$M" 2>"$T/ul.err" || tfs_problem "umount -l failed"
grep -q "stays staged" "$T/ul.err" || tfs_problem "umount -l did not say what is left: $(cat "$T/ul.err")"
for ((i = 0; i < 100; i++)); do flock -n "$T/c/lock" true && break; sleep 0.2; done
[ "$MOVED" = 1 ] && mv "$T/store.away" "$T/store"
[ "$MOVED" = 0 ] && chattr -i "${IMM[@]}"
nmount "$M" "$T/c"
[ "$(cat "$O/left.txt")" = "left behind $TOK" ] || tfs_problem "left.txt after umount -l and remount"
"$TIERFS" sync --wait --timeout=30 "$M" || tfs_problem "sync of what was left"
cloud_umount "$M" "$T/c"
echo "ok - umount -l"
tfs_finish
