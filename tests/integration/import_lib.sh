# import_lib.sh - the importer scenario shared by import.sh (file://) and
# import_s3.sh (s3rver), sourced after lib.sh, tfs_setup and sync_lib.sh.
# A real home mount imports change sets that outbox_writer (a cloud node
# played from C, with key files from 'tierfs node add') leaves in the
# nodes' outboxes: files appear with their bytes and mode, by temporary
# file and rename; home's rules are re-checked (a path outside the
# --cloud-write rule, a forged '..' path); tampered objects are never
# applied (a flipped byte, a truncated commit, another node's chunk or
# commit) and replays are dropped; a revoked node's outbox is kept aside;
# conflicts keep both versions (home changed the file, two nodes write one
# path, a delete at home while a node edits, a delete by a node of a file
# home changed); the quota is enforced; kill -9 of the home mount at each
# import step (TIERFS_IMPORT_CRASH) and a remount import exactly once.
#
# The caller sets IMP_URL (the store URL) and calls imp_run.

OW="$TIERFS_BIN_DIR/tests/outbox_writer"
[ -x "$OW" ] || fail "outbox_writer is not built ($OW)"
IMP_VOL=$T/vol
IMP_HOME=$T/home
IMP_OPTS=sync_interval=1,publish_interval=1,gc_grace=5,outbox_grace=5

jq_() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
node_field() { "$TIERFS" node list --json --volume "$IMP_VOL" | jq_ "[n['$2'] for n in j if n['name'] == '$1'][0]"; }
log_has() { grep -q -- "$1" "$IMP_VOL/tierfs.log"; }

# ow NODE CMD ARGS...: outbox_writer as NODE.
ow() { local n=$1; shift; "$OW" "$T/$n.key" "$IMP_URL" "$@"; }

# imp_wait_ack NODE SEQ: wait (30 s) until home acknowledged SEQ; its lines in $T/ack.
imp_wait_ack()
{
	local i
	for i in $(seq 1 60); do
		if ow "$1" ack "$2" >"$T/ack" 2>/dev/null; then
			return 0
		fi
		sleep 0.5
	done
	tfs_problem "node $1: no ack of change set $2 after 30 s"
	tail -n 20 "$IMP_VOL/tierfs.log" >&2
	return 1
}

# imp_wait_field NODE FIELD VALUE: wait (20 s) until node list shows it.
imp_wait_field()
{
	local i got
	for i in $(seq 1 40); do
		got=$(node_field "$1" "$2")
		[ "$got" = "$3" ] && return 0
		sleep 0.5
	done
	tfs_problem "node $1: $2 is '$got' after 20 s, expected '$3'"
	return 1
}

# ack_line N: line N (1-based) of the last ack.
ack_line() { sed -n "${1}p" "$T/ack"; }
expect_ack()
{
	local n=$1 want=$2 got
	got=$(ack_line "$n")
	case "$got" in
	$want) ;;
	*) tfs_problem "ack line $n is '$got', expected '$want'" ;;
	esac
}

imp_setup()
{
	"$TIERFS" format --store "$IMP_URL" "$IMP_VOL" >/dev/null || fail "tierfs format --store $IMP_URL"
	"$TIERFS" policy add --volume "$IMP_VOL" results --path '/jobs/*/out/**' --placement mirror \
		--settle 1s --cloud-write >/dev/null || fail "policy add results"
	"$TIERFS" policy add --volume "$IMP_VOL" data --path '/data/**' --placement mirror >/dev/null ||
		fail "policy add data"
	for n in gpu1 gpu2 gpu3; do
		"$TIERFS" node add "$n" --volume "$IMP_VOL" --out "$T/$n.key" >/dev/null || fail "node add $n"
	done
	"$TIERFS" node add gpu4 --volume "$IMP_VOL" --out "$T/gpu4.key" >/dev/null || fail "node add gpu4"
	"$TIERFS" node add gpuq --quota 1000000 --volume "$IMP_VOL" --out "$T/gpuq.key" >/dev/null ||
		fail "node add gpuq --quota"
	"$TIERFS" node revoke gpu3 --volume "$IMP_VOL" >/dev/null || fail "node revoke gpu3"
	tfs_mount "$IMP_VOL" "$IMP_HOME" -o "$IMP_OPTS"
	mkdir -p "$IMP_HOME/data" "$IMP_HOME/jobs/q3/in" || fail "mkdir at home"
	echo "private input" >"$IMP_HOME/data/in.txt"
}

imp_wrules()
{
	local i got=
	for i in $(seq 1 40); do
		got=$(ow gpu1 wrules 2>/dev/null) && [ "$got" = "$1" ] && return 0
		sleep 0.5
	done
	tfs_problem "the newest snapshot's cloud-write rules are '$got', expected '$1'"
}

imp_basic()
{
	note "basic import: directories, files, a symlink, temp-then-rename"
	imp_wrules '/jobs/*/out/**'
	head -c 3000000 /dev/urandom >"$T/big"      # one chunk, not compressible
	head -c 9000000 /dev/urandom >"$T/big3"     # three chunks
	echo "result one" >"$T/r1"
	: >"$T/empty"
	cat >"$T/d1" <<-EOF
		dir /jobs/q3/out 0755
		dir /jobs/q3/out/sub 0750
		file /jobs/q3/out/r1.txt 0640 $T/r1 mtime=1600000000
		file /jobs/q3/out/sub/big.bin 4755 $T/big
		file /jobs/q3/out/sub/big3.bin 0644 $T/big3
		file /jobs/q3/out/empty 0600 $T/empty
		symlink /jobs/q3/out/link r1.txt
	EOF
	ow gpu1 write 1 "$T/d1" >/dev/null || fail "outbox_writer write 1"
	imp_wait_ack gpu1 1 || return
	for n in 1 2 3 4 5 6 7; do expect_ack $n "imported*"; done
	cmp -s "$T/r1" "$IMP_HOME/jobs/q3/out/r1.txt" || tfs_problem "r1.txt differs at home"
	cmp -s "$T/big" "$IMP_HOME/jobs/q3/out/sub/big.bin" || tfs_problem "big.bin differs at home"
	cmp -s "$T/big3" "$IMP_HOME/jobs/q3/out/sub/big3.bin" || tfs_problem "big3.bin differs at home"
	[ -f "$IMP_HOME/jobs/q3/out/empty" ] && [ ! -s "$IMP_HOME/jobs/q3/out/empty" ] ||
		tfs_problem "the empty file is not there, empty"
	[ "$(stat -c %a "$IMP_HOME/jobs/q3/out/r1.txt")" = 640 ] || tfs_problem "r1.txt mode $(stat -c %a "$IMP_HOME/jobs/q3/out/r1.txt")"
	[ "$(stat -c %a "$IMP_HOME/jobs/q3/out/sub/big.bin")" = 755 ] ||
		tfs_problem "big.bin mode $(stat -c %a "$IMP_HOME/jobs/q3/out/sub/big.bin"): setuid from a node must be dropped"
	[ "$(stat -c %a "$IMP_HOME/jobs/q3/out/sub")" = 750 ] || tfs_problem "sub mode $(stat -c %a "$IMP_HOME/jobs/q3/out/sub")"
	[ "$(stat -c %Y "$IMP_HOME/jobs/q3/out/r1.txt")" = 1600000000 ] || tfs_problem "r1.txt mtime $(stat -c %Y "$IMP_HOME/jobs/q3/out/r1.txt")"
	[ "$(readlink "$IMP_HOME/jobs/q3/out/link")" = r1.txt ] || tfs_problem "symlink target"
	[ "$(getfattr --only-values -n user.tierfs.origin "$IMP_HOME/jobs/q3/out/r1.txt" 2>/dev/null)" = "gpu1:1:1:2" ] ||
		tfs_problem "origin xattr of r1.txt: $(getfattr -d "$IMP_HOME/jobs/q3/out/r1.txt" 2>&1)"
	ls -a "$IMP_HOME/jobs/q3/out" "$IMP_HOME/jobs/q3/out/sub" | grep -q tierfs-import && tfs_problem "a temporary was left"
	log_has "imported change set 1 of node 'gpu1'" || tfs_problem "no log line for the import"
	# The commit and its chunks are gone from the outbox, the ack stays for the node.
	[ -z "$(ow gpu1 ls "$(ow gpu1 key chunks 1)")" ] || tfs_problem "chunks of set 1 left in the outbox"
	[ -z "$(ow gpu1 ls "$(ow gpu1 key cs 1)")" ] || tfs_problem "commit of set 1 left in the outbox"
	imp_wait_field gpu1 last_seq 1
	[ "$(node_field gpu1 files)" = 4 ] || tfs_problem "node list files: $(node_field gpu1 files)"
	[ "$(node_field gpu1 bytes)" = $((3000000 + 9000000 + 11)) ] || tfs_problem "node list bytes: $(node_field gpu1 bytes)"
	# Temp-then-rename: a reader at home sees the old file or the new one.
	head -c 5000000 /dev/urandom >"$T/v2"
	cat >"$T/d2" <<-EOF
		file /jobs/q3/out/sub/big.bin 0644 $T/v2 base=home:$IMP_HOME/jobs/q3/out/sub/big.bin
	EOF
	sha256sum <"$T/big" | cut -d' ' -f1 >"$T/sums"
	sha256sum <"$T/v2" | cut -d' ' -f1 >>"$T/sums"
	( for i in $(seq 1 400); do sha256sum <"$IMP_HOME/jobs/q3/out/sub/big.bin" | cut -d' ' -f1; done >"$T/seen" ) &
	local reader=$!
	ow gpu1 write 2 "$T/d2" >/dev/null || fail "outbox_writer write 2"
	imp_wait_ack gpu1 2
	wait $reader
	expect_ack 1 "imported*"
	grep -v -x -F -f "$T/sums" "$T/seen" | head -n1 | grep -q . &&
		tfs_problem "a reader at home saw a version that is neither the old nor the new file"
	cmp -s "$T/v2" "$IMP_HOME/jobs/q3/out/sub/big.bin" || tfs_problem "big.bin is not the new version"
}

# A real cloud mount with gpu4's key writes; home imports; the node sees the ack.
imp_endtoend()
{
	local c=$T/cloud i
	note "end to end: a cloud mount with a node key writes, home imports"
	# the node needs a snapshot that shows the writable area
	for i in $(seq 1 40); do
		[ -n "$(ow gpu4 wrules 2>/dev/null)" ] && break
		sleep 0.5
	done
	mkdir -p "$c"
	TFS_MOUNTS+=("$c")
	TFS_VOLUMES+=("$T/ccache")
	timeout 30 "$TIERFS" mount --cloud --key-file "$T/gpu4.key" --cache "$T/ccache" -o poll=1 \
		"$IMP_URL" "$c" || fail "tierfs mount --cloud with a node key"
	tfs_wait_state "$c" 1 10 || fail "'$c' not mounted"
	for i in $(seq 1 40); do
		[ -d "$c/jobs/q3/out" ] && break
		sleep 0.5
	done
	head -c 2000000 /dev/urandom >"$T/e2e"
	mkdir -p "$c/jobs/q7/out/deep" || tfs_problem "mkdir on the cloud mount"
	cp "$T/e2e" "$c/jobs/q7/out/deep/.e2e.tmp" && mv "$c/jobs/q7/out/deep/.e2e.tmp" "$c/jobs/q7/out/deep/e2e.bin" ||
		tfs_problem "write then rename on the cloud mount"
	chmod 600 "$c/jobs/q7/out/deep/e2e.bin"
	echo "edit of a home file" >"$T/e2e-edit"
	cp "$T/e2e-edit" "$c/jobs/q3/out/r1.txt" || tfs_problem "overwrite a home file on the cloud mount"
	timeout 60 "$TIERFS" sync --imported --timeout=50 "$c" || tfs_problem "tierfs sync --imported on the cloud mount"
	cmp -s "$T/e2e" "$IMP_HOME/jobs/q7/out/deep/e2e.bin" || tfs_problem "the cloud job's file is not at home"
	[ "$(stat -c %a "$IMP_HOME/jobs/q7/out/deep/e2e.bin" 2>/dev/null)" = 600 ] || tfs_problem "the cloud job's file mode at home"
	[ -e "$IMP_HOME/jobs/q7/out/deep/.e2e.tmp" ] && tfs_problem "the node's temporary name reached home"
	cmp -s "$T/e2e-edit" "$IMP_HOME/jobs/q3/out/r1.txt" || tfs_problem "the node's edit of a home file (base: the snapshot's version) did not replace it"
	ls "$IMP_HOME/jobs/q3/out" | grep -q "r1.conflict" && tfs_problem "an edit of the current version made a conflict copy"
	[ "$(node_field gpu4 conflicts)" = 0 ] || tfs_problem "gpu4 conflicts: $(node_field gpu4 conflicts)"
	timeout 60 "$TIERFS" umount "$c" || tfs_problem "umount of the cloud mount"
	tfs_wait_state "$c" 0 10
}

imp_rules()
{
	note "home's rules: outside the writable area, forged '..', quota"
	echo "outside" >"$T/o"
	cat >"$T/d3" <<-EOF
		file /data/evil.txt 0644 $T/o
		file /jobs/q3/in/evil.txt 0644 $T/o
		file /jobs/q3/out/ok.txt 0644 $T/o
		dir /etc2 0755
		file /jobs/q4/out/new/deep.txt 0644 $T/o
		file /jobs/q3/out/.tierfs-import.9.9 0644 $T/o
	EOF
	ow gpu1 write 3 "$T/d3" >/dev/null || fail "outbox_writer write 3"
	imp_wait_ack gpu1 3 || return
	expect_ack 1 "rejected*outside every --cloud-write rule*"
	expect_ack 2 "rejected*outside every --cloud-write rule*"
	expect_ack 3 "imported*"
	expect_ack 4 "rejected*"
	expect_ack 5 "imported*"
	expect_ack 6 "rejected*reserved*"
	[ -e "$IMP_HOME/data/evil.txt" ] && tfs_problem "a node wrote outside the cloud-write rule (/data)"
	[ -e "$IMP_HOME/jobs/q3/in/evil.txt" ] && tfs_problem "a node wrote outside the cloud-write rule (/jobs/q3/in)"
	[ -e "$IMP_HOME/etc2" ] && tfs_problem "a node made a directory outside the writable area"
	cmp -s "$T/o" "$IMP_HOME/jobs/q4/out/new/deep.txt" || tfs_problem "directories on the way to a writable area were not made"
	log_has "'/data/evil.txt' rejected: outside every --cloud-write rule" || tfs_problem "no log line for a rejected change"
	imp_wait_field gpu1 rejected 4
	# A symlink a node made never leads a later write out of the area.
	printf 'symlink /jobs/q3/out/esc ../in\n' >"$T/d3b"
	printf 'file /jobs/q3/out/esc/evil.txt 0644 %s\n' "$T/o" >>"$T/d3b"
	local s4=$(( $(node_field gpu4 last_seq) + 1 )) # after what the real node sent
	ow gpu4 write $s4 "$T/d3b" >/dev/null || fail "outbox_writer write gpu4 $s4"
	imp_wait_ack gpu4 $s4 || return
	expect_ack 1 "imported*"
	expect_ack 2 "rejected*not a directory at home*"
	[ -e "$IMP_HOME/jobs/q3/in/evil.txt" ] && tfs_problem "a write went through a node's symlink out of the area"
	# A forged commit naming '..': sealed with gpu1's own key, refused as a whole.
	cat >"$T/d4" <<-EOF
		file /jobs/q3/out/AA/evil.txt 0644 $T/o
	EOF
	ow gpu1 forge 4 "$T/d4" /AA/ /../ >/dev/null || fail "outbox_writer forge 4"
	imp_wait_field gpu1 rejected 5
	[ -e "$IMP_HOME/jobs/q3/evil.txt" ] && tfs_problem "a forged '..' path was applied"
	[ -n "$(ow gpu1 ls "$(ow gpu1 key cs 4)")" ] || tfs_problem "the forged commit was deleted (it must stay for the operator)"
	node_field gpu1 last_error | grep -q "does not open" || tfs_problem "last_error: $(node_field gpu1 last_error)"
	ow gpu1 del "$(ow gpu1 key cs 4)"
	# Quota: gpuq may import 1 MB per change set; what is past it is refused.
	head -c 600000 /dev/urandom >"$T/q1"
	head -c 600000 /dev/urandom >"$T/q2"
	printf 'file /jobs/q5/out/q1 0644 %s\nfile /jobs/q5/out/q2 0644 %s\n' "$T/q1" "$T/q2" >"$T/dq"
	ow gpuq write 1 "$T/dq" >/dev/null || fail "outbox_writer write (quota)"
	imp_wait_ack gpuq 1 || return
	expect_ack 1 "imported*"
	expect_ack 2 "rejected*quota of 1000000 bytes*"
	cmp -s "$T/q1" "$IMP_HOME/jobs/q5/out/q1" || tfs_problem "the file within the quota is missing"
	[ -e "$IMP_HOME/jobs/q5/out/q2" ] && tfs_problem "a file past the quota was imported"
}


# imp_stage NODE SEQ DESC: write the set into a scratch store, copy its
# chunks to the real outbox; the commit waits in the scratch store.
SCRATCH="file://$T/scratch"
imp_stage()
{
	local k
	mkdir -p "$T/scratch"
	"$OW" "$T/$1.key" "$SCRATCH" write "$2" "$3" >/dev/null || fail "outbox_writer write $1 $2 (scratch)"
	for k in $("$OW" "$T/$1.key" "$SCRATCH" ls "$("$OW" "$T/$1.key" "$SCRATCH" key chunks "$2")"); do
		"$OW" "$T/$1.key" "$SCRATCH" get "$k" "$T/obj" && ow "$1" put "$k" "$T/obj" ||
			fail "copying $k"
	done
}
# imp_release NODE SEQ [DSTSEQ]: put the staged commit into the outbox (under DSTSEQ's key).
imp_release()
{
	local k
	k=$("$OW" "$T/$1.key" "$SCRATCH" key cs "$2")
	"$OW" "$T/$1.key" "$SCRATCH" get "$k" "$T/obj" || fail "get staged $k"
	ow "$1" put "$(ow "$1" key cs "${3:-$2}")" "$T/obj" || fail "put $k"
}

imp_tamper()
{
	note "tampered objects, replay, revoked node"
	local rej a b q
	echo "tampered" >"$T/t"
	printf 'file /jobs/q3/out/t5.txt 0644 %s\n' "$T/t" >"$T/d5"
	rej=$(node_field gpu1 rejected)
	imp_stage gpu1 5 "$T/d5"
	"$OW" "$T/gpu1.key" "$SCRATCH" flip "$(ow gpu1 key cs 5)" || fail "flip"
	imp_release gpu1 5
	imp_wait_field gpu1 rejected $((rej + 1))
	printf 'file /jobs/q3/out/t6.txt 0644 %s\n' "$T/t" >"$T/d6"
	imp_stage gpu1 6 "$T/d6"
	"$OW" "$T/gpu1.key" "$SCRATCH" truncate "$(ow gpu1 key cs 6)" || fail "truncate"
	imp_release gpu1 6
	imp_wait_field gpu1 rejected $((rej + 2))
	[ -e "$IMP_HOME/jobs/q3/out/t5.txt" ] && tfs_problem "a commit with a flipped byte was applied"
	[ -e "$IMP_HOME/jobs/q3/out/t6.txt" ] && tfs_problem "a truncated commit was applied"
	[ "$(node_field gpu1 last_seq)" = 3 ] || tfs_problem "last_seq moved to $(node_field gpu1 last_seq) on tampered commits"
	[ -n "$(ow gpu1 ls "$(ow gpu1 key cs 5)")" ] || tfs_problem "the tampered commit was deleted"
	log_has "does not open with the node's key" || tfs_problem "no log line for a tampered commit"
	# gpu1's chunk in gpu2's outbox, under the name gpu2's commit gives.
	printf 'file /jobs/q3/out/swap.txt 0644 %s\n' "$T/t" >"$T/d7"
	imp_stage gpu1 7 "$T/d7"
	imp_stage gpu2 1 "$T/d7"
	a=$(ow gpu1 ls "$(ow gpu1 key chunks 7)")
	b=$(ow gpu2 ls "$(ow gpu2 key chunks 1)")
	ow gpu1 get "$a" "$T/chunk" && ow gpu2 put "$b" "$T/chunk" || fail "swapping chunks"
	imp_release gpu2 1
	imp_wait_ack gpu2 1 && expect_ack 1 "rejected*chunk does not open*"
	[ -e "$IMP_HOME/jobs/q3/out/swap.txt" ] && tfs_problem "another node's chunk was applied"
	# A good commit copied under another seq does not open; the original applies.
	printf 'file /jobs/q3/out/t8.txt 0644 %s\n' "$T/t" >"$T/d8"
	imp_stage gpu1 8 "$T/d8"
	rej=$(node_field gpu1 rejected)
	imp_release gpu1 8 9
	imp_wait_field gpu1 rejected $((rej + 1))
	[ -e "$IMP_HOME/jobs/q3/out/t8.txt" ] && tfs_problem "a commit copied under another seq was applied"
	imp_release gpu1 8
	imp_wait_ack gpu1 8 && expect_ack 1 "imported*"
	cmp -s "$T/t" "$IMP_HOME/jobs/q3/out/t8.txt" || tfs_problem "t8.txt not imported"
	for q in 5 6 9; do ow gpu1 del "$(ow gpu1 key cs $q)"; done
	# Replay of set 8 after it was applied and home changed the file: never
	# applied again; it gets its first answer again (a node that died before it
	# noted its put sends the same set again and must not wait forever)
	echo "home's edit" >"$IMP_HOME/jobs/q3/out/t8.txt"
	rej=$(node_field gpu1 rejected)
	ow gpu1 del "$(ow gpu1 key ack 8)" 2>/dev/null
	imp_release gpu1 8
	for ((i = 0; i < 100; i++)); do
		log_has "change set 8 of node 'gpu1' came again: acknowledged again" && break
		sleep 0.2
	done
	log_has "change set 8 of node 'gpu1' came again: acknowledged again" ||
		tfs_problem "no log line for a set that came again"
	[ "$(cat "$IMP_HOME/jobs/q3/out/t8.txt")" = "home's edit" ] || tfs_problem "a replay changed t8.txt"
	ls "$IMP_HOME/jobs/q3/out" | grep -q "t8.conflict" && tfs_problem "a replay made a conflict copy"
	[ -n "$(ow gpu1 ls "$(ow gpu1 key ack 8)")" ] || tfs_problem "the set that came again was not acknowledged again"
	[ "$(node_field gpu1 rejected)" = "$rej" ] || tfs_problem "a set that came again was counted as rejected"
	[ -z "$(ow gpu1 ls "$(ow gpu1 key cs 8)")" ] || tfs_problem "the replayed commit was not deleted"
	# A revoked node: kept aside, counted, not applied.
	printf 'file /jobs/q3/out/revoked.txt 0644 %s\n' "$T/t" >"$T/d9"
	ow gpu3 write 1 "$T/d9" >/dev/null || fail "outbox_writer write (revoked)"
	imp_wait_field gpu3 waiting 1
	[ -e "$IMP_HOME/jobs/q3/out/revoked.txt" ] && tfs_problem "a revoked node's change set was applied"
	[ -n "$(ow gpu3 ls "$(ow gpu3 key cs 1)")" ] || tfs_problem "a revoked node's change set was deleted"
	log_has "node 'gpu3' is revoked: 1 change sets kept aside" || tfs_problem "no log line for the revoked node"
}

imp_conflicts()
{
	note "conflicts: home and a node, two nodes, delete at home, delete by a node"
	local d=$IMP_HOME/jobs/q3/out copy n
	echo "node v1" >"$T/c1"
	echo "node v2" >"$T/c2"
	printf 'file /jobs/q3/out/c.csv 0644 %s\nfile /jobs/q3/out/e.txt 0644 %s\n' "$T/c1" "$T/c1" >"$T/d10"
	ow gpu1 write 10 "$T/d10" >/dev/null || fail "write 10"
	imp_wait_ack gpu1 10 || return
	# home changes c.csv and deletes e.txt; the node edits its own versions
	echo "home v2" >"$d/c.csv"
	rm "$d/e.txt"
	printf 'file /jobs/q3/out/c.csv 0644 %s base=own:10:0\nfile /jobs/q3/out/e.txt 0644 %s base=own:10:1\n' \
		"$T/c2" "$T/c2" >"$T/d11"
	ow gpu1 write 11 "$T/d11" >/dev/null || fail "write 11"
	imp_wait_ack gpu1 11 || return
	expect_ack 1 "conflict*/jobs/q3/out/c.conflict-gpu1-*.csv"
	expect_ack 2 "imported*"
	[ "$(cat "$d/c.csv")" = "home v2" ] || tfs_problem "home's version of c.csv was not kept"
	copy=$(ls "$d" | grep '^c\.conflict-gpu1-[0-9]\{8\}-[0-9]\{6\}\.csv$')
	[ -n "$copy" ] && cmp -s "$T/c2" "$d/$copy" || tfs_problem "no conflict copy of c.csv with the node's bytes: $(ls "$d")"
	[ "$(cat "$d/e.txt")" = "node v2" ] || tfs_problem "a change must beat a delete at home"
	# two nodes write one path: the first imported keeps the name
	printf 'file /jobs/q3/out/two.txt 0644 %s\n' "$T/c1" >"$T/d12"
	ow gpu2 write 2 "$T/d12" >/dev/null || fail "write gpu2 2"
	imp_wait_ack gpu2 2 && expect_ack 1 "imported*"
	printf 'file /jobs/q3/out/two.txt 0644 %s\n' "$T/c2" >"$T/d12b"
	ow gpu1 write 12 "$T/d12b" >/dev/null || fail "write 12"
	imp_wait_ack gpu1 12 && expect_ack 1 "conflict*two.conflict-gpu1-*.txt"
	[ "$(cat "$d/two.txt")" = "node v1" ] || tfs_problem "two.txt is not the first node's"
	# based on home's version, which changed meanwhile
	printf 'file /jobs/q3/out/two.txt 0644 %s base=home:%s\n' "$T/c2" "$d/two.txt" >"$T/d13"
	imp_stage gpu2 3 "$T/d13"
	echo "home v3" >"$d/two.txt"
	imp_release gpu2 3
	imp_wait_ack gpu2 3 && expect_ack 1 "conflict*two.conflict-gpu2-*.txt"
	# a node deletes a file home changed: skipped
	printf 'delete /jobs/q3/out/c.csv base=own:11:0\n' >"$T/d14"
	ow gpu1 write 14 "$T/d14" >/dev/null || fail "write 14"
	imp_wait_ack gpu1 14 && expect_ack 1 "conflict*changed at home; delete skipped*"
	[ "$(cat "$d/c.csv")" = "home v2" ] || tfs_problem "a node's delete removed a file home changed"
	# attributes of its own file, a new directory; a node's clock hours off does not matter
	printf 'attr /jobs/q3/out/e.txt 0600 mtime=1500000000 base=own:11:1\ndir /jobs/q3/out/emptyd 0700\n' >"$T/d16"
	ow gpu1 write 16 "$T/d16" >/dev/null || fail "write 16"
	imp_wait_ack gpu1 16 && expect_ack 1 "imported*" && expect_ack 2 "imported*"
	[ "$(stat -c '%a %Y' "$d/e.txt")" = "600 1500000000" ] || tfs_problem "attr: e.txt is $(stat -c '%a %Y' "$d/e.txt")"
	[ -d "$d/emptyd" ] || tfs_problem "dir: emptyd not made"
	# a directory's mode: changed inside the writable area, never on the way to it
	printf 'dir /jobs/q3/out/emptyd 0750\ndir /jobs 0700\n' >"$T/d17a"
	ow gpu2 write 4 "$T/d17a" >/dev/null || fail "write gpu2 4"
	imp_wait_ack gpu2 4 && expect_ack 1 "imported*" && expect_ack 2 "imported*"
	[ "$(stat -c %a "$d/emptyd")" = 750 ] || tfs_problem "dir mode inside the area: $(stat -c %a "$d/emptyd")"
	[ "$(stat -c %a "$IMP_HOME/jobs")" = 755 ] || tfs_problem "a node changed the mode of /jobs: $(stat -c %a "$IMP_HOME/jobs")"
	# a node deletes its own unchanged file, an empty directory, a directory home filled
	printf 'delete /jobs/q3/out/e.txt base=own:16:0\ndelete /jobs/q3/out/emptyd\ndelete /jobs/q3/out/sub\n' >"$T/d17"
	ow gpu1 write 17 "$T/d17" >/dev/null || fail "write 17"
	imp_wait_ack gpu1 17 && expect_ack 1 "imported*" && expect_ack 2 "imported*" &&
		expect_ack 3 "conflict*not empty*"
	[ -e "$d/e.txt" ] && tfs_problem "a node's delete of its own file was not applied"
	[ -e "$d/emptyd" ] && tfs_problem "a node's delete of an empty directory was not applied"
	[ -d "$d/sub" ] || tfs_problem "a node's delete removed a directory that is not empty"
	# status --conflicts
	"$TIERFS" status --conflicts --volume "$IMP_VOL" >"$T/conf" || tfs_problem "status --conflicts"
	grep -q "/jobs/q3/out/c.csv" "$T/conf" && grep -q "$copy" "$T/conf" ||
		tfs_problem "status --conflicts: $(cat "$T/conf")"
	n=$("$TIERFS" status --conflicts --json --volume "$IMP_VOL" | jq_ 'len([c for c in j["conflicts"] if c["copy"]])')
	[ "$n" = 3 ] || tfs_problem "status --conflicts --json lists $n copies, expected 3"
	imp_wait_field gpu1 conflicts 4
	# past 16 conflict copies of one path a change is kept aside; the rest of the set goes on
	echo "home's cap" >"$d/cap.txt"
	: >"$T/d18"
	for i in $(seq 1 17); do printf 'file /jobs/q3/out/cap.txt 0644 %s\n' "$T/c1" >>"$T/d18"; done
	printf 'file /jobs/q3/out/after-cap.txt 0644 %s\n' "$T/c2" >>"$T/d18"
	ow gpu2 write 5 "$T/d18" >/dev/null || fail "write gpu2 5"
	imp_wait_ack gpu2 5 || return
	[ "$(grep -c '^conflict' "$T/ack")" = 16 ] || tfs_problem "cap: $(grep -c '^conflict' "$T/ack") conflict copies, expected 16"
	expect_ack 17 "kept*16 conflict copies already kept*"
	expect_ack 18 "imported*"
	[ "$(ls "$d" | grep -c '^cap\.conflict-gpu2-')" = 16 ] || tfs_problem "cap: $(ls "$d" | grep -c '^cap\.conflict-gpu2-') copies at home"
	[ "$(cat "$d/cap.txt")" = "home's cap" ] || tfs_problem "cap: home's version was not kept"
	cmp -s "$T/c2" "$d/after-cap.txt" || tfs_problem "cap: the rest of the set was not applied"
	# once the operator deletes the copies, the cap is free again
	rm -f "$d"/cap.conflict-gpu2-*
	n=$("$TIERFS" status --conflicts --json --volume "$IMP_VOL" |
		jq_ 'len([c for c in j["conflicts"] if c["path"] == "/jobs/q3/out/cap.txt" and not c["copy_exists"]])')
	[ "$n" = 16 ] || tfs_problem "status --conflicts: $n deleted copies of cap.txt, expected 16"
	printf 'file /jobs/q3/out/cap.txt 0644 %s\n' "$T/c1" >"$T/d19"
	ow gpu2 write 6 "$T/d19" >/dev/null || fail "write gpu2 6"
	imp_wait_ack gpu2 6 && expect_ack 1 "conflict*cap.conflict-gpu2-*"
}

# imp_crash STEP SEQ: the mount dies right after STEP of set SEQ; a remount imports it once.
imp_crash()
{
	local step=$1 seq=$2 files rej i
	note "kill -9 of the home mount after '$step'"
	tfs_umount "$IMP_HOME"
	files=$(node_field gpu1 files)
	rej=$(node_field gpu1 rejected)
	TIERFS_IMPORT_CRASH=$step tfs_mount "$IMP_VOL" "$IMP_HOME" -o "$IMP_OPTS"
	head -c 5000000 /dev/urandom >"$T/crash-$step"
	printf 'file /jobs/q3/out/crash-%s.bin 0644 %s\n' "$step" "$T/crash-$step" >"$T/dc"
	ow gpu1 write "$seq" "$T/dc" >/dev/null || fail "write $seq"
	for i in $(seq 1 60); do
		[ -z "$(tfs_daemon_pid "$IMP_VOL")" ] && break
		sleep 0.5
	done
	[ -z "$(tfs_daemon_pid "$IMP_VOL")" ] || { tfs_problem "TIERFS_IMPORT_CRASH=$step: the mount did not die"; return; }
	tfs_force_umount "$IMP_HOME"
	tfs_mount "$IMP_VOL" "$IMP_HOME" -o "$IMP_OPTS"
	imp_wait_ack gpu1 "$seq" || return
	expect_ack 1 "imported*"
	if [ "$step" = placed ]; then
		log_has "change set $seq of node 'gpu1' was begun before" || tfs_problem "placed: the redo did not look for placed files"
	fi
	cmp -s "$T/crash-$step" "$IMP_HOME/jobs/q3/out/crash-$step.bin" || tfs_problem "$step: the file is not there after the remount"
	ls "$IMP_HOME/jobs/q3/out" | grep -q "crash-$step.conflict" && tfs_problem "$step: a conflict copy of itself"
	ls -a "$IMP_HOME/jobs/q3/out" | grep -q "tierfs-import" && tfs_problem "$step: a temporary was left"
	imp_wait_field gpu1 last_seq "$seq"
	[ "$(node_field gpu1 files)" = $((files + 1)) ] || tfs_problem "$step: files counted $(node_field gpu1 files), expected $((files + 1))"
	[ "$(node_field gpu1 rejected)" = "$rej" ] || tfs_problem "$step: rejected went from $rej to $(node_field gpu1 rejected)"
	[ "$(grep -c "change set $seq .*a replay" "$IMP_VOL/tierfs.log")" = 0 ] || tfs_problem "$step: the set was taken for a replay after the restart"
	[ -z "$(ow gpu1 ls "$(ow gpu1 key cs "$seq")")" ] || tfs_problem "$step: the commit is still in the outbox"
	[ -z "$(ow gpu1 ls "$(ow gpu1 key chunks "$seq")")" ] || tfs_problem "$step: chunks are still in the outbox"
}

# Chunks of a set that never committed go after the gc grace (5 s here).
imp_orphans()
{
	local i
	note "chunks of a change set that never committed"
	printf 'file /jobs/q3/out/never.bin 0644 %s\n' "$T/big" >"$T/dn"
	imp_stage gpu1 40 "$T/dn"
	for i in $(seq 1 40); do
		[ -z "$(ow gpu1 ls "$(ow gpu1 key chunks 40)")" ] && break
		sleep 0.5
	done
	[ -z "$(ow gpu1 ls "$(ow gpu1 key chunks 40)")" ] ||
		tfs_problem "chunks of an uncommitted change set are still in the outbox after 20 s"
	log_has "no commit came for them" || tfs_problem "no log line for the chunks of an uncommitted set"
}

imp_run()
{
	imp_setup
	imp_basic
	imp_endtoend
	imp_rules
	imp_tamper
	imp_conflicts
	imp_crash fetched 20
	imp_crash placed 21
	imp_crash committed 22
	imp_crash acked 23
	imp_orphans
	got=$("$TIERFS" status --json --volume "$IMP_VOL" |
		jq_ '"%d %d %d %d" % tuple(j["writeback"][k] for k in ("nodes", "revoked", "waiting", "conflicts"))')
	[ "$got" = "5 1 1 $(( $(node_field gpu1 conflicts) + $(node_field gpu2 conflicts) ))" ] ||
		tfs_problem "status --json writeback (nodes revoked waiting conflicts): $got"
	"$TIERFS" status --volume "$IMP_VOL" | grep -q "^write-back: *5 nodes (1 revoked)" ||
		tfs_problem "status does not show write-back: $("$TIERFS" status --volume "$IMP_VOL")"
	note "the cloud-write rules object follows the rules"
	"$TIERFS" policy add --volume "$IMP_VOL" more --path '/scratch/**' --placement on-demand --cloud-write >/dev/null ||
		fail "policy add more"
	imp_wrules "/jobs/*/out/**
/scratch/**"
	"$TIERFS" policy rm --volume "$IMP_VOL" results >/dev/null && "$TIERFS" policy rm --volume "$IMP_VOL" more >/dev/null ||
		fail "policy rm"
	imp_wrules ""
	tfs_umount "$IMP_HOME"
	"$TIERFS" fsck "$IMP_VOL" >/dev/null || tfs_problem "fsck after the imports"
}
