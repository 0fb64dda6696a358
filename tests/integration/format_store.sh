#!/bin/bash
# format_store.sh - 'tierfs format --store' checks the store first: an
# invalid URL, a store it cannot create or write (a path under /proc, an
# immutable directory), an S3 endpoint that does not answer are refused
# with one clear line and no volume made (--no-check formats offline); a
# store prefix that already holds another volume's objects is refused
# (--force formats over it), and a fresh prefix is accepted.
. "$(dirname "$0")/lib.sh"
tfs_setup
. "$(dirname "$0")/sync_lib.sh"
sync_on_exit "chattr -R -i '$T/ro' 2>/dev/null"

refused()
{
	local what=$1 vol=$2
	shift 2
	tfs_expect_refused "$what" "$TIERFS" format "$@" "$vol" || return 0
	[ -e "$vol/meta.db" ] && tfs_problem "$what: a volume was made in '$vol' anyway"
	return 0
}

refused "unknown scheme" "$T/v1" --store "ftp://x/y"
refused "file store under /proc" "$T/v2" --store "file:///proc/tierfs-nope/store"
mkdir -p "$T/ro"
chattr +i "$T/ro" || fail "chattr +i"
refused "immutable store directory" "$T/v3" --store "file://$T/ro"
chattr -i "$T/ro"
# an S3 endpoint nobody answers on
(
	export AWS_ENDPOINT_URL=http://127.0.0.1:9 AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=s AWS_REGION=us-east-1
	refused "S3 endpoint down" "$T/v4" --store "s3://bucket/vol"
	grep -q 'no-check' "$T/err" || tfs_problem "the refusal does not mention --no-check: $(cat "$T/err")"
	"$TIERFS" format --no-check --store "s3://bucket/vol" "$T/v4" >/dev/null 2>"$T/err" ||
		tfs_problem "format --no-check with the endpoint down: $(cat "$T/err")"
	exit "$TFS_PROBLEMS"
) || TFS_PROBLEMS=$((TFS_PROBLEMS + $?))

# Two volumes on one prefix.
SH=$T/shared
"$TIERFS" format --store "file://$SH" "$T/a" >/dev/null || fail "format a on a fresh prefix"
"$TIERFS" policy add --volume "$T/a" m --path '/**' --placement mirror --settle 1s >/dev/null || fail "policy add"
tfs_mount "$T/a" "$T/ma" -o sync_interval=1
echo hello >"$T/ma/f"
timeout 60 "$TIERFS" sync --wait "$T/ma/f" >/dev/null 2>&1 || tfs_problem "sync --wait"
timeout 60 "$TIERFS" publish --volume "$T/ma" >/dev/null 2>&1 || tfs_problem "publish"
tfs_umount "$T/ma"
ls "$SH" | sed 's/^/    shared: /'
refused "a prefix another volume uses" "$T/b" --store "file://$SH"
grep -q 'in use' "$T/err" || tfs_problem "the refusal does not say the store is in use: $(cat "$T/err")"
"$TIERFS" format --force --store "file://$SH" "$T/b" >/dev/null 2>"$T/err" || tfs_problem "format --force: $(cat "$T/err")"
# b was forced onto a's prefix: it never publishes over a's head
H0=$(sha "$SH/head")
"$TIERFS" policy add --volume "$T/b" m --path '/**' --placement mirror --settle 1s >/dev/null || fail "policy add b"
tfs_mount "$T/b" "$T/mb" -o sync_interval=1,publish_interval=1
echo other >"$T/mb/g"
timeout 60 "$TIERFS" sync --wait "$T/mb/g" >/dev/null 2>&1 || tfs_problem "sync --wait on b"
rc=0
timeout 60 "$TIERFS" publish --volume "$T/mb" >/dev/null 2>"$T/err" || rc=$?
note "publish of b over a's prefix: exit $rc: $(cat "$T/err")"
[ "$rc" -ne 0 ] || tfs_problem "b published over a's head"
grep -q "another volume" "$T/err" || tfs_problem "the refused publish does not say why: $(cat "$T/err")"
sleep 2
[ "$(sha "$SH/head")" = "$H0" ] || tfs_problem "a's head was overwritten by b"
s=$(timeout 20 "$TIERFS" status --json --volume "$T/mb" | sync_json 'j["sync"]["health"]["publish"]["state"]')
[ "$s" = failing ] || tfs_problem "b's publish health is '$s', expected failing"
tfs_umount "$T/mb"
"$TIERFS" format --store "file://$T/fresh" "$T/c" >/dev/null 2>"$T/err" || tfs_problem "format on a fresh prefix: $(cat "$T/err")"
tfs_finish
note "format_store: all passed"
