#!/bin/bash
# policy_privacy.sh - the privacy invariant of the placement policy: whatever
# the order of rule edits (add, rm, move), renames of files and directories,
# hard links, tags and pins, no file that a private rule or a private pin
# matches is ever shown exported or uploaded. A seeded random sequence runs
# through a live home mount (policy_oracle.py privacy); after every step an
# independent oracle computes first-match placement over a small pool of
# simple rules and 'tierfs status --json' must agree: every file the oracle
# calls private is placement private, sync local, visible false. Rule edits
# may take the mount up to 3 s; renames, links, tags and pins must be in
# effect when they return. The seed is printed; rerun one with
# TFS_SEED=N (and TFS_STEPS=N) to reproduce a failure.
. "$(dirname "$0")/lib.sh"
tfs_setup
command -v python3 >/dev/null || fail "python3 is needed"
command -v setfattr >/dev/null || fail "setfattr is needed (Debian package attr)"

ORACLE="$(dirname "$0")/policy_oracle.py"
rc=0
# A fresh seed each run (printed), and a fixed one so every run covers a known sequence.
seeds=${TFS_SEED:-"$(date +%s) 1"}
for seed in $seeds; do
	note "seed $seed"
	"$TIERFS" format "$T/vol$seed" >/dev/null || fail "format"
	tfs_mount "$T/vol$seed" "$T/mnt$seed"
	timeout 170 python3 "$ORACLE" privacy --tierfs "$TIERFS" --mnt "$T/mnt$seed" \
		--seed "$seed" --steps "${TFS_STEPS:-120}" || { rc=$?; note "seed $seed failed ($rc)"; }
	# The volume totals agree: every private file is local.
	"$TIERFS" status --json --volume "$T/mnt$seed" >"$T/st.json" || fail "status --json (volume)"
	python3 "$ORACLE" json '[t for t in j["totals"] if t["placement"] == "private" and t["sync"] != "local"]' \
		<"$T/st.json" >"$T/bad" || fail "volume status --json unreadable: $(head -c 300 "$T/st.json")"
	[ "$(cat "$T/bad")" = "[]" ] || fail "private files not local in the volume totals: $(cat "$T/bad")"
	tfs_umount "$T/mnt$seed"
	[ "$rc" -eq 0 ] || break
done
[ "$rc" -eq 0 ] || fail "privacy invariant (see above; rerun with TFS_SEED=$seed)"
note "privacy invariant held for seeds: $seeds"
