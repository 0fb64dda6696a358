# writeback_lib.sh - cloud jobs writing results home, end to end (issue 14),
# shared by writeback_file.sh and writeback_s3.sh; sourced after lib.sh,
# tfs_setup, sync_lib.sh and cloud_lib.sh. One real home mount with a
# results rule (mirror, --cloud-write) and three cloud mounts on one machine,
# each with its own node key:
#   - the three nodes write into one results directory at once (small files,
#     a multi-chunk file, temp-then-rename): every file at home has the bytes
#     its node wrote (sha256), and each node sees the others' results once
#     home has imported and published them;
#   - WBE_SMALL small files and one file of WBE_BIG_MB MiB from one node;
#   - the same file changed at home and on a node, and by two nodes: both
#     versions kept (conflict copy, status --conflicts), decided by the order
#     of import, never by the nodes' clocks (mtimes hours apart);
#   - a delete at home while a node edits the file: the edit comes back;
#   - kill -9 of a cloud mount in the middle of a write: what was closed
#     before is imported, the remount goes on, nothing at home is torn;
#   - nothing of the results (names, contents) in the store in the clear.
# The caller sets WBE_URL, WBE_STORE_DIR (where object bodies are on disk),
# WBE_SMALL and WBE_BIG_MB, then calls wbe_run.

WBE_TOK="wbeZ$RANDOM$RANDOM"
WBE_VOL=$T/vol
WBE_HOME=$T/home
WBE_OUT=/jobs/q3/out
WBE_NODE_OPTS=poll=1,request_timeout=20

wbe_node_mount() # I: cloud mount I with node I's key
{
	local m=$T/n$1 c=$T/c$1
	mkdir -p "$m"
	TFS_MOUNTS+=("$m")
	TFS_VOLUMES+=("$c")
	timeout 30 "$TIERFS" mount --cloud --key-file "$T/node$1.key" --cache "$c" -o "$WBE_NODE_OPTS" \
		"$WBE_URL" "$m" || fail "cloud mount $1 with a node key exited $?"
	tfs_wait_state "$m" 1 10 || fail "cloud mount $1 not mounted"
}

wbe_imported() # I: sync --imported on node I
{
	"$TIERFS" sync --imported --timeout=600 "$T/n$1" || tfs_problem "node $1: sync --imported failed"
}

wbe_imported_conflict() # I: sync --imported on node I exits 1 and says home kept conflict copies
{
	if "$TIERFS" sync --imported --timeout=600 "$T/n$1" 2>"$T/sync.err"; then
		tfs_problem "node $1: sync --imported exited 0 although home kept a conflict copy"
	fi
	grep -q "conflict copies" "$T/sync.err" || tfs_problem "node $1: sync --imported said: $(cat "$T/sync.err")"
}

# wbe_home_has PATH SHA [SECONDS]: the file at home has these bytes (waits for the import)
wbe_home_has()
{
	local p=$WBE_HOME$1 want=$2 secs=${3:-60} i
	for ((i = 0; i < secs * 5; i++)); do
		[ -f "$p" ] && [ "$(sha "$p")" = "$want" ] && return 0
		sleep 0.2
	done
	tfs_problem "home: '$1' missing or with other bytes than the node wrote"
	return 1
}

wbe_setup()
{
	"$TIERFS" format --store "$WBE_URL" "$WBE_VOL" >/dev/null || fail "tierfs format --store $WBE_URL"
	"$TIERFS" policy add results --volume "$WBE_VOL" --path '/jobs/*/out/**' --placement mirror \
		--settle 1s --cloud-write >/dev/null || fail "policy add results --cloud-write"
	"$TIERFS" policy add data --volume "$WBE_VOL" --path '/datasets/**' --placement mirror --settle 1s \
		>/dev/null || fail "policy add data"
	tfs_mount "$WBE_VOL" "$WBE_HOME" -o sync_interval=1,publish_interval=1,gc_grace=-1
	mkdir -p "$WBE_HOME/datasets" "$WBE_HOME$WBE_OUT"
	echo "input $WBE_TOK" >"$WBE_HOME/datasets/in.txt"
	echo "home result $WBE_TOK" >"$WBE_HOME$WBE_OUT/shared.txt"
	echo "home edits $WBE_TOK" >"$WBE_HOME$WBE_OUT/edited.txt"
	echo "home deletes $WBE_TOK" >"$WBE_HOME$WBE_OUT/deleted.txt"
	"$TIERFS" sync --wait --volume "$WBE_HOME" >/dev/null || fail "home sync --wait"
	"$TIERFS" publish --volume "$WBE_HOME" >/dev/null || fail "home publish"
	for i in 1 2 3; do
		"$TIERFS" node add "node-$i" --volume "$WBE_VOL" --out "$T/node$i.key" >/dev/null ||
			fail "tierfs node add node-$i"
		wbe_node_mount "$i"
	done
	for i in 1 2 3; do
		cloud_wait_for 20 test -f "$T/n$i$WBE_OUT/shared.txt" ||
			fail "node $i does not see home's results directory"
	done
}

wbe_together()
{
	note "three nodes write into one results directory at once"
	local i k pids=()
	for i in 1 2 3; do
		(
			o=$T/n$i$WBE_OUT
			for ((k = 0; k < 60; k++)); do
				echo "node $i file $k $WBE_TOK" >"$o/n${i}_$k.txt" || exit 1
			done
			head -c 9437184 /dev/urandom >"$T/big$i.bin"
			cp "$T/big$i.bin" "$o/n${i}_big.bin" || exit 1
			echo "final of node $i $WBE_TOK" >"$o/.n$i.tmp" && mv "$o/.n$i.tmp" "$o/n${i}_final.txt" || exit 1
		) &
		pids+=($!)
	done
	for i in 0 1 2; do wait "${pids[$i]}" || tfs_problem "node $((i + 1)): writing failed"; done
	for i in 1 2 3; do wbe_imported "$i"; done
	for i in 1 2 3; do
		for ((k = 0; k < 60; k++)); do
			[ "$(cat "$WBE_HOME$WBE_OUT/n${i}_$k.txt" 2>/dev/null)" = "node $i file $k $WBE_TOK" ] ||
				{ tfs_problem "home: n${i}_$k.txt wrong or missing"; break; }
		done
		wbe_home_has "$WBE_OUT/n${i}_big.bin" "$(sha "$T/big$i.bin")"
		[ "$(cat "$WBE_HOME$WBE_OUT/n${i}_final.txt" 2>/dev/null)" = "final of node $i $WBE_TOK" ] ||
			tfs_problem "home: n${i}_final.txt (temp-then-rename) wrong"
		[ -e "$WBE_HOME$WBE_OUT/.n$i.tmp" ] && tfs_problem "home: the temporary name .n$i.tmp is there"
	done
	# each node sees the others' results once home has published them
	cloud_wait_for 30 cmp -s "$T/big1.bin" "$T/n2$WBE_OUT/n1_big.bin" ||
		tfs_problem "node 2 does not see node 1's result"
	cloud_wait_for 30 test -f "$T/n1$WBE_OUT/n3_final.txt" || tfs_problem "node 1 does not see node 3's result"
	[ "$(cat "$T/n3$WBE_OUT/n2_5.txt" 2>/dev/null)" = "node 2 file 5 $WBE_TOK" ] ||
		tfs_problem "node 3 reads node 2's result wrong"
	"$TIERFS" status "$T/n1$WBE_OUT/n1_final.txt" | grep -q "imported" ||
		tfs_problem "node 1: state of its imported result: $("$TIERFS" status "$T/n1$WBE_OUT/n1_final.txt")"
	echo "ok - three nodes at once: 186 files, checksums match at home, visible to the others"
}

wbe_volume()
{
	note "$WBE_SMALL small files and one ${WBE_BIG_MB} MiB file from one node"
	local o=$T/n1$WBE_OUT/many n
	mkdir -p "$o" || { tfs_problem "mkdir in the results directory"; return; }
	for ((n = 0; n < WBE_SMALL; n++)); do printf 'small %d %s\n' "$n" "$WBE_TOK"; done |
		split -l 1 -a 5 -d - "$o/s" || tfs_problem "writing $WBE_SMALL small files"
	head -c $((WBE_BIG_MB << 20)) /dev/urandom >"$T/huge.bin"
	cp "$T/huge.bin" "$T/n1$WBE_OUT/huge.bin" || tfs_problem "writing the large file"
	wbe_imported 1
	n=$(ls "$WBE_HOME$WBE_OUT/many" | wc -l)
	[ "$n" = "$WBE_SMALL" ] || tfs_problem "home has $n of $WBE_SMALL small files"
	[ "$(cat "$WBE_HOME$WBE_OUT/many/s00007")" = "small 7 $WBE_TOK" ] || tfs_problem "small file 7 at home"
	[ "$(cat "$WBE_HOME$WBE_OUT/many/s$(printf %05d $((WBE_SMALL - 1)))")" = "small $((WBE_SMALL - 1)) $WBE_TOK" ] ||
		tfs_problem "the last small file at home"
	wbe_home_has "$WBE_OUT/huge.bin" "$(sha "$T/huge.bin")"
	rm -f "$T/huge.bin"
	echo "ok - $WBE_SMALL small files and a ${WBE_BIG_MB} MiB file imported"
}

wbe_conflicts()
{
	note "conflicts: home and a node, two nodes with clocks hours apart, a delete at home"
	local o1=$T/n1$WBE_OUT o2=$T/n2$WBE_OUT h=$WBE_HOME$WBE_OUT copies
	# the node edits its copy of home's file while home changes it too
	echo "node 1 edit $WBE_TOK" >>"$o1/edited.txt" || tfs_problem "node 1 edit"
	echo "home edit $WBE_TOK" >>"$h/edited.txt"
	wbe_imported_conflict 1
	[ "$(tail -n 1 "$h/edited.txt")" = "home edit $WBE_TOK" ] || tfs_problem "home lost its own edit"
	copies=$(ls "$h" | grep -c '^edited\.conflict-node-1-[0-9]\{8\}-[0-9]\{6\}\.txt$')
	[ "$copies" = 1 ] || tfs_problem "expected one conflict copy of edited.txt from node-1, found $copies"
	grep -q "node 1 edit $WBE_TOK" "$h"/edited.conflict-node-1-*.txt 2>/dev/null ||
		tfs_problem "the conflict copy does not hold node 1's version"
	"$TIERFS" status --conflicts --volume "$WBE_HOME" | grep -q "edited.txt" ||
		tfs_problem "status --conflicts does not list edited.txt"
	"$TIERFS" status "$o1/edited.txt" | grep -q conflict ||
		tfs_problem "node 1 was not told of the conflict: $("$TIERFS" status "$o1/edited.txt")"
	# two nodes make one new path, neither knowing of the other's: node 1 keeps
	# its file open (so it is not sent) while node 2 writes, is imported and
	# acknowledged; then node 1 closes. Node 1's clock runs 5 hours ahead, node
	# 2's 5 hours behind: the order of import decides, never the mtimes
	exec 7>"$o1/race.txt"
	echo "from node 1 $WBE_TOK" >&7
	touch -d '+5 hours' "$o1/race.txt"
	echo "from node 2 $WBE_TOK" >"$o2/race.txt" && touch -d '-5 hours' "$o2/race.txt"
	wbe_imported 2
	exec 7>&-
	wbe_imported_conflict 1
	[ "$(cat "$h/race.txt")" = "from node 2 $WBE_TOK" ] || tfs_problem "race.txt: the first import did not win"
	grep -q "from node 1 $WBE_TOK" "$h"/race.conflict-node-1-*.txt 2>/dev/null ||
		tfs_problem "race.txt: node 1's later version was not kept as a conflict copy"
	# home deletes a file while a node edits it: the change beats the delete
	echo "node 2 keeps it $WBE_TOK" >>"$o2/deleted.txt" || tfs_problem "node 2 edit of deleted.txt"
	rm "$h/deleted.txt"
	wbe_imported 2
	grep -q "node 2 keeps it $WBE_TOK" "$h/deleted.txt" 2>/dev/null || tfs_problem "a delete at home beat a node's edit"
	echo "ok - conflicts kept both versions, import order decided, a change beat a delete"
}

wbe_crash()
{
	note "kill -9 of a cloud mount in the middle of a write"
	local o=$T/n3$WBE_OUT pid
	for k in 1 2 3; do echo "closed before $k $WBE_TOK" >"$o/before$k.txt"; done
	head -c 33554432 /dev/urandom >"$T/mid.bin"
	(dd if="$T/mid.bin" of="$o/midwrite.bin" bs=64k 2>/dev/null) &
	local writer=$!
	sleep 0.3
	pid=$(tfs_daemon_pid "$T/c3")
	[ -n "$pid" ] && kill -9 "$pid"
	wait "$writer" 2>/dev/null # not a bare wait: servers run in the background too
	tfs_force_umount "$T/n3"
	wbe_node_mount 3
	for k in 1 2 3; do
		[ "$(cat "$o/before$k.txt" 2>/dev/null)" = "closed before $k $WBE_TOK" ] ||
			tfs_problem "before$k.txt lost by the kill -9"
	done
	wbe_imported 3
	for k in 1 2 3; do
		[ "$(cat "$WBE_HOME$WBE_OUT/before$k.txt" 2>/dev/null)" = "closed before $k $WBE_TOK" ] ||
			tfs_problem "home: before$k.txt missing after the node's crash"
	done
	# what was being written arrives as far as it got: a prefix of the bytes, never others
	if [ -f "$WBE_HOME$WBE_OUT/midwrite.bin" ]; then
		local n
		n=$(stat -c %s "$WBE_HOME$WBE_OUT/midwrite.bin")
		cmp -s -n "$n" "$T/mid.bin" "$WBE_HOME$WBE_OUT/midwrite.bin" ||
			tfs_problem "home: the file cut by the crash holds bytes the job never wrote"
	fi
	echo "ok - kill -9 mid-write: closed files imported, the cut file is a prefix"
}

wbe_audit()
{
	note "nothing of the results in the store in the clear"
	if grep -rqa -e "$WBE_TOK" -e n1_final -e race.txt -e node-1 -e node-2 "$WBE_STORE_DIR"; then
		tfs_problem "plaintext of the nodes' results or names in the store"
	fi
}

wbe_run()
{
	wbe_setup
	wbe_together
	wbe_volume
	wbe_conflicts
	wbe_crash
	wbe_audit
	"$TIERFS" node list --volume "$WBE_HOME"
	for i in 1 2 3; do cloud_umount "$T/n$i" "$T/c$i"; done
}
