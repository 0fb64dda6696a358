#!/bin/bash
# completion.sh - the bash completion (scripts/bash-completion/tierfs) as
# bash calls it: the script is sourced, COMP_WORDS/COMP_CWORD are set as
# for a line typed so far, the function that 'complete -p tierfs' names is
# called, and COMPREPLY is checked: commands (every one of the command
# table in src/main.c), subcommands, options (every one that the command's
# --help shows), placements, mount options, rule names read from the
# volume on the command line and from the mount holding the current
# directory, and the mount points of tierfs mounts.
. "$(dirname "$0")/lib.sh"
tfs_setup
COMP=$TIERFS_SRC/scripts/bash-completion/tierfs

# candidates LINE...: the completions offered for the words (the last is
# the word being completed), one per line, sorted; run in a fresh bash
# with the binary under test as the command word.
candidates()
{
	bash -c '
		. "$1"; shift
		fn=$(complete -p tierfs | sed -n "s/.*-F \([^ ]*\) .*/\1/p")
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		"$fn" tierfs "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
		printf "%s\n" "${COMPREPLY[@]}"
	' completion "$COMP" "$TIERFS" "$@" | LC_ALL=C sort
}

# expect WANT LINE...: the candidates are exactly WANT (space separated)
expect()
{
	local want=$1 got
	shift
	got=$(candidates "$@" | tr '\n' ' ' | sed 's/ $//')
	[ "$got" = "$want" ] || tfs_problem "tierfs ${*}<Tab>: got '$got', want '$want'"
}
# offers WORD LINE...: WORD is among the candidates
offers()
{
	local want=$1
	shift
	candidates "$@" | grep -qx -- "$want" || tfs_problem "tierfs ${*}<Tab> does not offer '$want'"
}

# the issue's line: tierfs po<Tab> a<Tab> --pl<Tab>
expect policy po
expect add policy a
expect --placement policy add --pl
expect "mirror on-demand private tier" policy add r1 --path /x --placement ''
expect "export import show" key ''
expect "check set verify" store ''
expect "add check explain list move rm" policy --volume /nonexistent ''

# every command of the command table; every option of every --help
cmds=$(sed -n '/commands\[\] = {/,/^};/s/.*{ "\([a-z-]*\)", cmd_.*/\1/p' "$TIERFS_SRC/src/main.c")
[ "$(wc -w <<<"$cmds")" -ge 10 ] || fail "cannot read the command table of src/main.c"
for c in $cmds; do
	offers "$c" ''
	for o in $("$TIERFS" "$c" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
		offers "$o" "$c" --
	done
done
for o in --key-file --cache --cache-size --passphrase-file; do offers "$o" mount --cloud --; done
for o in --out --passphrase-file --plain --volume; do offers "$o" key export --; done
offers --endpoint store check --
# mount options, the last of a comma-separated list
offers attr_timeout= mount -o ''
offers no_passthrough mount -o no_
offers sync_interval=1,publish_interval= mount -o sync_interval=1,pub
offers poll= mount --cloud -o ''

# rule names: from --volume, and from the mount holding the current directory
"$TIERFS" format "$T/vol" >/dev/null || fail "format"
for r in alpha beta gamma; do
	"$TIERFS" policy add "$r" --volume "$T/vol" --path "/$r/**" --placement mirror >/dev/null ||
		fail "policy add $r"
done
expect "alpha beta gamma" policy rm --volume "$T/vol" ''
expect "beta" policy move --volume "$T/vol" alpha --before b
tfs_mount "$T/vol" "$T/mnt"
offers "$T/mnt" umount ''
offers "$T/mnt" status --volume "$T/m"
got=$(cd "$T/mnt" && candidates policy rm '' | tr '\n' ' ')
[ "$got" = "alpha beta gamma " ] || tfs_problem "policy rm <Tab> inside the mount: got '$got'"
tfs_umount "$T/mnt"
tfs_finish
note "completion offers commands, subcommands, options, placements, mount options, rules, mount points"
