#!/bin/bash
# privacy_audit.sh - the privacy audit over a mixed workload, with the
# volume key: private and exported files side by side in one directory,
# symlinks both ways, renames from exported to private and back, a hard
# link that makes an exported file private, on-demand and tier files, and
# private activity of every kind. Then every object in the store is read
# and decrypted (store_dump) and nothing of a private file may be found:
# not its name, symlink target text, content, size, inode number or times.
# Private things carry $TOKP (private from the start) or $TOKR (exported
# first, then made private: purged from the store once private).
. "$TIERFS_SRC/tests/integration/lib.sh"
tfs_setup
. "$TIERFS_SRC/tests/integration/sync_lib.sh"
DUMP="$TIERFS_BIN_DIR/tests/store_dump"
[ -x "$DUMP" ] || fail "'$DUMP' is not built"

TOKP="privP$RANDOM$RANDOM"
TOKR="privR$RANDOM$RANDOM"
V=$T/vol
H=$T/home
S=$T/store
mkdir -p "$S"
"$TIERFS" format --store "file://$S" "$V" >/dev/null || fail "format"
pol() { "$TIERFS" policy add --volume "$V" "$@" >/dev/null || fail "policy add $*"; }
pol sec --path '/mix/*.secret' --placement private
pol mix --path '/mix/**' --placement mirror --settle 0s
pol od --path '/od/**' --placement on-demand
pol tier --path '/tier/**' --placement tier --export --evict-after 30d --settle 0s
tfs_mount "$V" "$H" -o sync_interval=1,publish_interval=1,gc_grace=-1
"$TIERFS" key export --volume "$V" >"$T/key" || fail "key export"

mkdir -p "$H/mix/sub" "$H/od" "$H/tier" "$H/pd_$TOKP" || fail "mkdir"
echo "exported a" >"$H/mix/a.txt"
echo "exported in sub" >"$H/mix/sub/b.txt"
head -c 777777 /dev/zero | tr '\0' 'x' >"$H/mix/s1_$TOKP.secret" # a size to look for
echo "$TOKP content" >>"$H/mix/s1_$TOKP.secret"
echo "$TOKP other" >"$H/pd_$TOKP/inner_$TOKP.txt"
ln -s "s1_$TOKP.secret" "$H/mix/to_secret"          # exported dir -> private file
ln -s "../pd_$TOKP/inner_$TOKP.txt" "$H/mix/to_pd"  # exported dir -> private dir
ln -s "../mix/a.txt" "$H/pd_$TOKP/to_pub_$TOKP"     # private dir -> exported file
ln -s a.txt "$H/mix/to_a"                           # exported -> exported
echo "$TOKR will be private" >"$H/mix/r_$TOKR.txt"  # exported now, private later
echo "hardlinked $TOKP" >"$H/mix/hl.txt"             # exported name, then a private one
echo "on demand" >"$H/od/o.txt"
echo "tiered" >"$H/tier/t.bin"
echo "from private" >"$H/pd_$TOKP/comes_out.txt"
sync_expect "$H/mix/r_$TOKR.txt" synced 20 "upload of r_TOKR"
sync_expect "$H/mix/hl.txt" synced 20 "upload of hl.txt"
sync_expect "$H/tier/t.bin" synced 20 "upload of tier/t.bin"
"$TIERFS" publish --volume "$H" >/dev/null || fail "publish"
"$DUMP" "$T/key" "file://$S" >"$T/dump0"
grep -q "name=r_$TOKR.txt" "$T/dump0" || tfs_problem "r_TOKR.txt was not exported first: $(grep "^entry" "$T/dump0" | head -30)"

# now: exported -> private by rename, by hard link; private -> exported by rename
mv "$H/mix/r_$TOKR.txt" "$H/mix/r_$TOKR.secret"
ln "$H/mix/hl.txt" "$H/pd_$TOKP/hl_$TOKP"
mv "$H/pd_$TOKP/comes_out.txt" "$H/mix/came_out.txt"
# private activity of every kind
mkdir "$H/top_$TOKP" "$H/mix/emptydir_$TOKP"
chmod 600 "$H/mix/s1_$TOKP.secret"
touch -d @1234567891.123456789 "$H/mix/s1_$TOKP.secret" "$H/pd_$TOKP/inner_$TOKP.txt"
echo "more $TOKP" >>"$H/pd_$TOKP/inner_$TOKP.txt"
touch -d @1234567891.123456789 "$H/pd_$TOKP/inner_$TOKP.txt"
sync_expect "$H/mix/came_out.txt" synced 20 "upload of came_out.txt"
sleep 3
"$TIERFS" publish --volume "$H" >/dev/null || fail "publish"
# the purge of what turned private (older snapshots retired, objects deleted)
for ((i = 0; i < 50; i++)); do
	"$DUMP" "$T/key" "file://$S" >"$T/dump" || fail "store_dump: undecodable objects"
	grep -a -q -F -e "$TOKR" -e "hardlinked" "$T/dump" || break
	sleep 0.5
done
note "$(grep -c '^== ' "$T/dump") objects decrypted"

# nothing of a private file: names, target text, content
for s in "$TOKP" "$TOKR" hardlinked "../pd_" s1_ to_secret to_pd top_ emptydir_; do
	grep -a -F -e "$s" "$T/dump" >"$T/hits" && tfs_problem "'$s' is in a decrypted object: $(head -c 300 "$T/hits")"
	grep -a -r -l -F -e "$s" "$S" >"$T/hits" && tfs_problem "'$s' is in the raw store: $(head -3 "$T/hits")"
done
# sizes, inode numbers, times
grep -q " size=777778 " "$T/dump" && tfs_problem "the size of a private file is in a decrypted object"
grep -q "1234567891123456789" "$T/dump" && tfs_problem "the mtime of a private file is in a decrypted object"
for f in "mix/s1_$TOKP.secret" "pd_$TOKP/inner_$TOKP.txt" "pd_$TOKP" "top_$TOKP" "mix/hl.txt" "mix/r_$TOKR.secret"; do
	ino=$(stat -c %i "$H/$f")
	grep -q -e " fid=$ino " -e "manifest fid=$ino " "$T/dump" && tfs_problem "the inode number of $f is in a decrypted object"
done
for f in "mix/s1_$TOKP.secret" "pd_$TOKP/inner_$TOKP.txt" "top_$TOKP" "mix/emptydir_$TOKP"; do
	t=$(stat -c %Y "$H/$f")$(stat -c %y "$H/$f" | sed 's/.*\.\([0-9]*\).*/\1/')
	c=$(stat -c %Z "$H/$f")
	grep -q -e "time=$t " "$T/dump" && tfs_problem "the mtime of $f ($t) is in a decrypted object"
	grep -q -e "time=$c[0-9]\{9\} " "$T/dump" && [ "$c" != "$(stat -c %Z "$H/mix/came_out.txt")" ] &&
		tfs_problem "the ctime second of $f ($c) is in a decrypted object"
done
# the exported side is there
for n in a.txt b.txt to_a came_out.txt o.txt t.bin; do
	grep -q "name=$n " "$T/dump" || tfs_problem "exported '$n' is not in the store"
done
grep -a -q "exported in sub" "$T/dump" || tfs_problem "exported content is not in the store"
"$TIERFS" audit verify --volume "$V" >"$T/verify" || tfs_problem "audit verify: $(cat "$T/verify")"
echo "ok - every object decrypted: nothing of a private file (name, target, content, size, inode, times)"
tfs_umount "$H"
tfs_finish
