# hybrid_lib.sh - the end-to-end hybrid scenario shared by hybrid_file.sh and
# hybrid_s3.sh, sourced after lib.sh, tfs_setup, sync_lib.sh and
# cloud_lib.sh: one real home mount (format --store URL, placement rules,
# mirror uploads, automatic publishing, on-demand requests) and three cloud
# mounts of its store at once, on one machine. Every name and every content
# marker of the test holds the random token $HYB_TOK, so the privacy audit
# greps the raw store for it (and for each name) and must find nothing.
#
# The caller sets HYB_URL (the store URL), HYB_STORE_DIR (where the store's
# object bodies are on disk: the file:// directory or s3rver's data
# directory), and the functions hyb_outage_start / hyb_outage_end; then calls
# hyb_run. Mounts are registered with lib.sh's cleanup (cloud_mount,
# tfs_mount), servers with sync_on_exit, so every exit path cleans up.

HYB_TOK="hybZ$RANDOM$RANDOM$RANDOM"
HYB_VOL=$T/vol
HYB_HOME=$T/home
HYB_HOME_OPTS=sync_interval=1,publish_interval=1,recall_timeout=3,gc_grace=-1
HYB_CLOUD_OPTS=poll=1,request_timeout=20
HYB_REQ_TIMEOUT=20

# Names used in the test (all hold the token): exported ones, private ones.
N_EXP=exp_$HYB_TOK
N_SMALL=small_name_$HYB_TOK.txt
N_SMALL2=second_name_$HYB_TOK.cfg
N_BIG=big20_name_$HYB_TOK.dat
N_RAND=rand_name_$HYB_TOK.bin
N_SPARSE=sparse_name_$HYB_TOK.img
N_EMPTY=empty_name_$HYB_TOK
N_LINK=link_name_$HYB_TOK
N_N1=nest1_$HYB_TOK
N_N2=nest2_$HYB_TOK
N_DEEP=deep_name_$HYB_TOK.txt
N_MOD=mod_name_$HYB_TOK.bin
N_DEL=del_name_$HYB_TOK.txt
N_REN1=ren_old_$HYB_TOK.txt
N_REN2=ren_new_$HYB_TOK.txt
N_ADD=added_name_$HYB_TOK.txt
N_MOVE=moving_name_$HYB_TOK.txt
N_UNC=uncached_name_$HYB_TOK.bin
N_OD1=od_one_$HYB_TOK.txt
N_OD2=od_two_$HYB_TOK.bin
N_OD3=od_three_$HYB_TOK.txt
N_PIN=pinned_secret_name_$HYB_TOK.txt
N_PRIVD=priv_secret_dir_$HYB_TOK
N_PRIV1=priv_secret_name_$HYB_TOK.txt
N_PRIV2=priv_other_secret_$HYB_TOK.csv
HYB_NAMES=("$N_SMALL" "$N_SMALL2" "$N_BIG" "$N_RAND" "$N_SPARSE" "$N_EMPTY" "$N_LINK" "$N_N1" "$N_N2"
	"$N_DEEP" "$N_MOD" "$N_DEL" "$N_REN1" "$N_REN2" "$N_ADD" "$N_MOVE" "$N_UNC" "$N_OD1" "$N_OD2" "$N_OD3"
	"$N_PIN" "$N_PRIVD" "$N_PRIV1" "$N_PRIV2")
# Content markers (plaintext that must never reach the store).
C_SMALL="exported small content $HYB_TOK"
C_PRIV="PRIVATE-CONTENT-$HYB_TOK-do-not-upload"
C_PIN="PINNED-PRIVATE-CONTENT-$HYB_TOK"
C_OD="on-demand content $HYB_TOK"
HYB_MARKERS=("$C_SMALL" "$C_PRIV" "$C_PIN" "$C_OD" "exported big $HYB_TOK" "sparse tail $HYB_TOK"
	"deep content $HYB_TOK" "added content $HYB_TOK" "the quick brown fox")

hyb_now() { date +%s.%N; }
hyb_since() { printf '%.1f' "$(echo "$(hyb_now) - $1" | bc)"; }

# hyb_home: format the volume on HYB_URL, add the rules, mount it.
hyb_home()
{
	"$TIERFS" format --store "$HYB_URL" "$HYB_VOL" >/dev/null || fail "tierfs format --store $HYB_URL"
	local pol
	pol() { "$TIERFS" policy add --volume "$HYB_VOL" "$@" >/dev/null || fail "policy add $*"; }
	pol exp --path '/exp/**' --placement mirror --settle 1s
	pol od --path '/od/**' --placement on-demand
	pol priv --path '/priv/**' --placement private
	tfs_mount "$HYB_VOL" "$HYB_HOME" -o "$HYB_HOME_OPTS"
	"$TIERFS" key export --volume "$HYB_VOL" >"$T/key" || fail "tierfs key export"
	[ -s "$T/key" ] || fail "tierfs key export wrote nothing"
}

# hyb_tree: the home tree.
hyb_tree()
{
	local h=$HYB_HOME
	mkdir -p "$h/exp/$N_N1/$N_N2" "$h/od" "$h/priv/$N_PRIVD" || fail "mkdir at home"
	echo "$C_SMALL" >"$h/exp/$N_SMALL"
	printf 'k=v\n%s\n' "second $HYB_TOK" >"$h/exp/$N_SMALL2"
	sync_marker_file "$h/exp/$N_BIG" 20 "exported big $HYB_TOK"
	head -c 3145728 /dev/urandom >"$h/exp/$N_RAND"
	truncate -s 10M "$h/exp/$N_SPARSE"
	echo "sparse tail $HYB_TOK" >>"$h/exp/$N_SPARSE"
	: >"$h/exp/$N_EMPTY"
	ln -s "$N_N1/$N_N2/$N_DEEP" "$h/exp/$N_LINK"
	echo "deep content $HYB_TOK" >"$h/exp/$N_N1/$N_N2/$N_DEEP"
	head -c 6291456 /dev/urandom >"$h/exp/$N_MOD"
	echo "to be deleted $HYB_TOK" >"$h/exp/$N_DEL"
	echo "to be renamed $HYB_TOK" >"$h/exp/$N_REN1"
	echo "to be made private $HYB_TOK" >"$h/exp/$N_MOVE"
	head -c 1048576 /dev/urandom >"$h/exp/$N_UNC"
	echo "$C_PIN" >"$h/exp/$N_PIN"
	"$TIERFS" pin --private "$h/exp/$N_PIN" >/dev/null || fail "tierfs pin --private"
	echo "$C_OD one" >"$h/od/$N_OD1"
	{ echo "$C_OD two"; head -c 5242880 /dev/urandom; } >"$h/od/$N_OD2"
	echo "$C_OD three" >"$h/od/$N_OD3"
	echo "$C_PRIV 1" >"$h/priv/$N_PRIV1"
	echo "$C_PRIV 2" >"$h/priv/$N_PRIVD/$N_PRIV2"
}

# hyb_wait_synced SECONDS: the upload queue of the home mount is empty.
hyb_wait_synced()
{
	local secs=$1 i q
	for ((i = 0; i < secs * 5; i++)); do
		q=$(sync_vol 'j["sync"]["queue"]' "$HYB_HOME")
		[ "$q" = 0 ] && return 0
		sleep 0.2
	done
	tfs_problem "home upload queue is '$q' after $secs s"
	return 1
}

# hyb_chunks_of FILE: the chunk objects of a home file (metadata store, read only).
hyb_chunks_of()
{
	python3 - "$HYB_VOL/meta.db" "$(stat -c %i "$1")" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10)
for (o,) in db.execute("SELECT obj FROM chunk WHERE ino=?", (int(sys.argv[2]),)):
    print(o)
PY
}

# hyb_obj_gone NAME: no chunk object NAME in the store's directory.
hyb_obj_gone()
{
	[ -z "$(find "$HYB_STORE_DIR" -path "*chunks/${1:0:2}/$1*" -print -quit)" ]
}

# hyb_last_seq: the newest snapshot object in the store (hex sequence).
hyb_last_seq()
{
	find "$HYB_STORE_DIR" -path '*snaps/*' ! -name '*.json' ! -name '*.md5' -printf '%f\n' |
		sed 's/\._S3rver_object$//' | LC_ALL=C sort | tail -n1
}

# The exported part of the home tree as cloud mounts must show it.
hyb_want_listing()
{
	cloud_listing "$HYB_HOME" | grep -v -e " ./priv" -e "/$N_PIN " | sed 's/^d \([0-7]*\) [0-9]* /d \1 - /'
}

# hyb_check_mount I WHAT: listing, bytes, privacy of cloud mount I (on-demand
# files and N_UNC excluded from the byte check: N_UNC stays uncached for the
# outage, it is compared after it).
hyb_check_mount()
{
	local i=$1 what=$2 m=$T/m$1
	hyb_want_listing >"$T/want.$i"
	cloud_listing "$m" | sed 's/^d \([0-7]*\) [0-9]* /d \1 - /' >"$T/got.$i"
	if ! diff -u "$T/want.$i" "$T/got.$i" >"$T/diff.$i"; then
		sed 's/^/    /' "$T/diff.$i" | head -n 20 >&2
		tfs_problem "$what: mount $i listing differs from home's exported tree"
	fi
	ls -R "$m" >"$T/lsR.$i" 2>&1 || tfs_problem "$what: ls -R of mount $i failed: $(head -n3 "$T/lsR.$i")"
	grep -q "$N_N2" "$T/lsR.$i" && grep -q "$N_OD1" "$T/lsR.$i" || tfs_problem "$what: ls -R of mount $i lacks the exported trees"
	if grep -e priv -e "$N_PIN" "$T/lsR.$i" >&2; then
		tfs_problem "$what: a private name is visible on mount $i"
	fi
	[ -e "$m/priv" ] && tfs_problem "$what: /priv exists on mount $i"
	[ -e "$m/exp/$N_PIN" ] && tfs_problem "$what: the pinned private file is reachable on mount $i"
	(cd "$HYB_HOME" && find exp -type f ! -name "$N_PIN" ! -name "$N_UNC" -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) >"$T/want.sum.$i"
	if ! (cd "$m" && timeout 120 sha256sum --quiet -c "$T/want.sum.$i") >"$T/sum.$i" 2>&1; then
		sed 's/^/    /' "$T/sum.$i" | head -n 10 >&2
		tfs_problem "$what: contents read through mount $i differ from home"
	fi
}

# hyb_wait_all SECONDS WHAT CMD-with-%M: CMD (with %M replaced by the mount
# directory) succeeds on all three cloud mounts.
hyb_wait_all()
{
	local secs=$1 what=$2 cmd=$3 i ok=0
	for i in 1 2 3; do
		if cloud_wait_for "$secs" sh -c "${cmd//%M/$T/m$i}"; then
			ok=$((ok + 1))
		else
			tfs_problem "$what: not true on mount $i after $secs s: ${cmd//%M/$T/m$i}"
		fi
	done
	[ "$ok" = 3 ]
}

hyb_erofs()
{
	local m=$1 cmd out
	for cmd in "touch $m/exp/new_$HYB_TOK" "sh -c 'echo x >>$m/exp/$N_SMALL'" "mkdir $m/exp/d_$HYB_TOK" \
		"rm -f $m/exp/$N_SMALL" "mv $m/exp/$N_SMALL $m/exp/$N_SMALL.x" "truncate -s 0 $m/od/$N_OD3" \
		"ln -s x $m/exp/l_$HYB_TOK" "chmod 600 $m/exp/$N_SMALL"; do
		if out=$(eval "$cmd" 2>&1); then
			tfs_problem "'$cmd' succeeded on a cloud mount"
		elif ! echo "$out" | grep -q "Read-only file system"; then
			tfs_problem "'$cmd': expected EROFS, got: $out"
		fi
	done
}

# hyb_audit: no name and no content marker in any object of the store.
hyb_audit()
{
	local n objs s hits=0
	objs=$(find "$HYB_STORE_DIR" -type f | wc -l)
	[ "$objs" -gt 10 ] || tfs_problem "audit: only $objs files under '$HYB_STORE_DIR'"
	for s in "$HYB_TOK" "${HYB_NAMES[@]}" "${HYB_MARKERS[@]}" priv_secret; do
		if grep -a -r -l -F -e "$s" "$HYB_STORE_DIR" >"$T/audit.hit" 2>/dev/null; then
			tfs_problem "audit: '$s' appears in the store: $(head -n3 "$T/audit.hit" | tr '\n' ' ')"
			hits=$((hits + 1))
		fi
	done
	note "audit: $objs store files, ${#HYB_NAMES[@]} names and ${#HYB_MARKERS[@]} markers searched, $hits found"
}

hyb_run()
{
	local i t0 s pids=() objs o
	hyb_home
	hyb_tree
	note "home tree written; waiting for the uploads and a publish"
	t0=$(hyb_now)
	sleep 2 # the 1 s settle of the mirror rule
	hyb_wait_synced 60
	"$TIERFS" publish --volume "$HYB_HOME" >"$T/pub.out" 2>&1 || fail "tierfs publish: $(cat "$T/pub.out")"
	note "synced and published after $(hyb_since "$t0") s: $(cat "$T/pub.out")"
	for f in "exp/$N_PIN" "priv/$N_PRIV1" "od/$N_OD1"; do
		s=$(sync_state "$HYB_HOME/$f")
		[ "$s" = local ] || tfs_problem "home: $f is '$s', expected local (never uploaded)"
		[ -z "$(hyb_chunks_of "$HYB_HOME/$f")" ] || tfs_problem "home: $f has chunk objects"
	done
	for f in "exp/$N_PIN" "priv/$N_PRIV1"; do
		s=$(timeout 20 "$TIERFS" status --json "$HYB_HOME/$f" | sync_json 'j["files"][0]["size"]')
		[ "$s" = "$(stat -c %s "$HYB_HOME/$f")" ] || tfs_problem "home: status shows size '$s' for $f, stat $(stat -c %s "$HYB_HOME/$f")"
	done
	[ "$(sync_state "$HYB_HOME/exp/$N_BIG")" = synced ] || tfs_problem "home: the mirrored 20 MiB file is not synced"

	# 1-2. Three cloud mounts.
	for i in 1 2 3; do
		cloud_mount "$HYB_URL" "$T/m$i" "$T/c$i" --cache-size 1G -o "$HYB_CLOUD_OPTS"
	done
	note "on-demand reads (a request to home, then the data)"
	t0=$(hyb_now)
	for i in 1 2 3; do
		f=$N_OD1
		[ "$i" = 2 ] && f=$N_OD2
		(timeout $((HYB_REQ_TIMEOUT + 15)) cat "$T/m$i/od/$f" >"$T/od.out.$i" 2>"$T/od.err.$i"
			echo $? >"$T/od.rc.$i") &
		pids+=($!)
	done
	wait "${pids[@]}" # not a bare wait: servers run in the background too
	for i in 1 2 3; do
		f=$N_OD1
		[ "$i" = 2 ] && f=$N_OD2
		[ "$(cat "$T/od.rc.$i")" = 0 ] && cmp -s "$T/od.out.$i" "$HYB_HOME/od/$f" ||
			tfs_problem "mount $i: on-demand read of od/$f: rc $(cat "$T/od.rc.$i") $(head -c 200 "$T/od.err.$i")"
	done
	note "on-demand reads done after $(hyb_since "$t0") s"
	for f in "$N_OD1" "$N_OD2"; do
		s=$(sync_state "$HYB_HOME/od/$f")
		[ "$s" = synced ] || tfs_problem "home: od/$f is '$s' after a cloud read, expected synced"
	done
	t0=$(hyb_now)
	for i in 1 2 3; do
		timeout $((HYB_REQ_TIMEOUT + 15)) cat "$T/m$i/od/$N_OD3" >"$T/od3.$i" 2>&1 || tfs_problem "mount $i: od/$N_OD3 read failed: $(head -c 200 "$T/od3.$i")"
		cmp -s "$T/od3.$i" "$HYB_HOME/od/$N_OD3" || tfs_problem "mount $i: od/$N_OD3 wrong bytes"
		cmp -s "$T/m$i/od/$N_OD1" "$HYB_HOME/od/$N_OD1" || tfs_problem "mount $i: od/$N_OD1 wrong"
		cmp -s "$T/m$i/od/$N_OD2" "$HYB_HOME/od/$N_OD2" || tfs_problem "mount $i: od/$N_OD2 wrong"
	done
	note "on-demand reads on every mount done after $(hyb_since "$t0") s"
	for i in 1 2 3; do
		hyb_check_mount "$i" "initial"
		[ "$(readlink "$T/m$i/exp/$N_LINK")" = "$N_N1/$N_N2/$N_DEEP" ] || tfs_problem "mount $i: symlink target wrong"
		[ "$(cat "$T/m$i/exp/$N_LINK" 2>&1)" = "deep content $HYB_TOK" ] || tfs_problem "mount $i: symlink does not resolve"
		[ "$(stat -c %s "$T/m$i/exp/$N_EMPTY")" = 0 ] && [ -z "$(cat "$T/m$i/exp/$N_EMPTY")" ] || tfs_problem "mount $i: empty file not empty"
		[ "$(stat -c %s "$T/m$i/exp/$N_SPARSE")" = "$(stat -c %s "$HYB_HOME/exp/$N_SPARSE")" ] || tfs_problem "mount $i: sparse size"
		[ "$(tail -c $((${#HYB_TOK} + 13)) "$T/m$i/exp/$N_SPARSE")" = "sparse tail $HYB_TOK" ] || tfs_problem "mount $i: sparse tail"
		cmp -s <(head -c 10485760 "$T/m$i/exp/$N_SPARSE") <(head -c 10485760 /dev/zero) || tfs_problem "mount $i: sparse hole not zeros"
		hyb_erofs "$T/m$i"
	done
	echo "ok - three cloud mounts show the exported tree byte-exact, nothing private, read-only"

	# 3. Updates at home, a file held open across them.
	note "updates at home"
	local old_mod new_mod old_tail
	old_mod=$(sha "$HYB_HOME/exp/$N_MOD")
	old_tail=$(tail -c +101 "$HYB_HOME/exp/$N_MOD" | sha256sum | cut -d' ' -f1)
	exec 7<"$T/m1/exp/$N_MOD" 8<"$T/m2/exp/$N_MOD"
	head -c 100 <&8 >/dev/null # m2 has read a little before the switch, m1 nothing
	head -c 6291456 /dev/urandom >"$T/newmod"
	cat "$T/newmod" >"$HYB_HOME/exp/$N_MOD"
	new_mod=$(sha "$T/newmod")
	echo "added content $HYB_TOK" >"$HYB_HOME/exp/$N_N1/$N_ADD"
	rm "$HYB_HOME/exp/$N_DEL"
	mv "$HYB_HOME/exp/$N_REN1" "$HYB_HOME/exp/$N_N1/$N_N2/$N_REN2"
	t0=$(hyb_now)
	hyb_wait_all 20 "update" "test -e %M/exp/$N_N1/$N_ADD && test ! -e %M/exp/$N_DEL && test ! -e %M/exp/$N_REN1 &&
		test -e %M/exp/$N_N1/$N_N2/$N_REN2 && [ \"\$(sha256sum <%M/exp/$N_MOD | cut -d' ' -f1)\" = $new_mod ]"
	note "updates visible on all three mounts after $(hyb_since "$t0") s"
	for i in 1 2 3; do
		hyb_check_mount "$i" "after the update"
	done
	s=$(sha256sum <&7 | cut -d' ' -f1)
	[ "$s" = "$old_mod" ] || tfs_problem "m1: a file opened before the update does not read the old content ($s)"
	s=$(sha256sum <&8 | cut -d' ' -f1)
	[ "$s" = "$old_tail" ] || tfs_problem "m2: a file opened and partly read before the update does not read the old content"
	exec 7<&- 8<&-
	echo "ok - updates propagate; open files keep their version"

	# 4. A file moved into the private tree disappears.
	note "a file moved from /exp into /priv"
	cat "$T/m3/exp/$N_MOVE" >/dev/null
	objs=$(hyb_chunks_of "$HYB_HOME/exp/$N_MOVE")
	[ -n "$objs" ] || tfs_problem "home: the mirrored $N_MOVE has no chunk objects"
	mv "$HYB_HOME/exp/$N_MOVE" "$HYB_HOME/priv/$N_MOVE"
	t0=$(hyb_now)
	hyb_wait_all 15 "move into /priv" "test ! -e %M/exp/$N_MOVE && ! ls -R %M | grep -q moving_name"
	note "gone from all three mounts after $(hyb_since "$t0") s"
	s=$(sync_state "$HYB_HOME/priv/$N_MOVE")
	[ "$s" = local ] || tfs_problem "home: the file moved into /priv is '$s', expected local"
	[ -e "$T/m1/priv" ] && tfs_problem "/priv became visible after the move"
	for o in $objs; do
		cloud_wait_for 10 hyb_obj_gone "$o" ||
			tfs_problem "the chunk object $o of the file moved into /priv is still in the store 10 s later"
	done
	echo "ok - a file moved into /priv disappears from the cloud mounts"

	# Private activity must not show in the store: no new snapshot.
	note "private writes at home publish nothing"
	local seq0 seq1
	seq0=$(hyb_last_seq)
	for ((i = 0; i < 20; i++)); do
		sleep 1
		seq1=$(hyb_last_seq)
		[ "$seq1" = "$seq0" ] && break
		seq0=$seq1
	done
	for i in 1 2 3; do
		echo "$C_PRIV quiet $i" >"$HYB_HOME/priv/$N_PRIVD/quiet_${i}_$HYB_TOK"
		sleep 1.2
	done
	sleep 2
	seq1=$(hyb_last_seq)
	[ "$seq1" = "$seq0" ] ||
		tfs_problem "creating 3 private files published snapshots $seq0 -> $seq1 (private activity visible in the store)"

	# 6. Store outage during cloud reads.
	note "store outage"
	for i in 1 2 3; do ls "$T/m$i/exp" >/dev/null; done
	hyb_outage_start
	for i in 1 2 3; do
		cmp -s "$HYB_HOME/exp/$N_BIG" "$T/m$i/exp/$N_BIG" || tfs_problem "outage: mount $i: cached 20 MiB file not served"
		cmp -s "$HYB_HOME/exp/$N_SMALL" "$T/m$i/exp/$N_SMALL" || tfs_problem "outage: mount $i: cached small file not served"
	done
	echo "home during the outage $HYB_TOK" >"$HYB_HOME/priv/outage_$HYB_TOK.txt" || tfs_problem "outage: home write failed"
	cmp -s "$HYB_HOME/exp/$N_BIG" <(cat "$HYB_HOME/exp/$N_BIG") || tfs_problem "outage: home read failed"
	t0=$(hyb_now)
	for i in 1 2 3; do
		(s0=$(date +%s); timeout 60 cat "$T/m$i/exp/$N_UNC" >/dev/null 2>"$T/unc.err.$i"; echo "$? $(($(date +%s) - s0))" >"$T/unc.rc.$i") &
		pids+=($!)
	done
	wait "${pids[@]}"
	for i in 1 2 3; do
		read -r rc took <"$T/unc.rc.$i"
		if [ "$rc" = 0 ]; then
			tfs_problem "outage: mount $i: uncached file read while the store is down"
		elif ! grep -q "Input/output error" "$T/unc.err.$i"; then
			tfs_problem "outage: mount $i: expected EIO, got rc $rc: $(head -c 200 "$T/unc.err.$i")"
		fi
		[ "$took" -le $((HYB_REQ_TIMEOUT + 5)) ] || tfs_problem "outage: mount $i: EIO after $took s (request_timeout $HYB_REQ_TIMEOUT)"
	done
	note "uncached reads failed after $(hyb_since "$t0") s"
	hyb_outage_end
	t0=$(hyb_now)
	for i in 1 2 3; do
		cloud_wait_for 30 cmp -s "$HYB_HOME/exp/$N_UNC" "$T/m$i/exp/$N_UNC" ||
			tfs_problem "mount $i: the uncached file is still unreadable 30 s after the store came back"
	done
	note "reads work again $(hyb_since "$t0") s after the store came back"
	echo "ok - store outage: cached data served, uncached EIO, reads resume"

	# 5. The audit, after everything.
	hyb_wait_synced 30 || true
	"$TIERFS" publish --volume "$HYB_HOME" >/dev/null 2>&1 || tfs_problem "publish after the outage failed"
	hyb_audit
	echo "ok - no name and no plaintext marker in any store object"

	for i in 1 2 3; do
		cloud_umount "$T/m$i" "$T/c$i"
	done
	tfs_umount "$HYB_HOME"
}
