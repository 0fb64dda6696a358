#!/bin/bash
# keys.sh - the volume key through the CLI: format with a passphrase, key
# show/export/import, wrong and missing passphrases refused with one clear
# line, a mount of a wrapped volume needs its passphrase, and an exported
# key opens the volume's store (the key id matches).
. "$(dirname "$0")/lib.sh"
tfs_setup
export TIERFS_SCRYPT_N=1024 # keep scrypt fast in tests
unset TIERFS_PASSPHRASE

printf 'correct horse\n' >"$T/pass"
printf 'wrong horse\n' >"$T/bad"
"$TIERFS" format --passphrase-file "$T/pass" "$T/vol" >/dev/null || fail "format with a passphrase"
[ "$(stat -c %a "$T/vol/volume.key")" = 600 ] || fail "key file mode is not 0600"
! grep -q 'correct horse' "$T/vol/volume.key" || fail "passphrase stored in the key file"

"$TIERFS" key show --volume "$T/vol" >"$T/show" || fail "key show"
grep -qi 'passphrase' "$T/show" || fail "key show does not say the key is wrapped: $(cat "$T/show")"
id=$(grep -Eo '[0-9a-f]{16}' "$T/show" | head -n1)
[ -n "$id" ] || fail "key show prints no key id"
[ "$(sqlite3 "$T/vol/meta.db" "SELECT value FROM config WHERE key='key_id'")" = "$id" ] ||
	fail "key id in the metadata store differs from the key file's"

tfs_expect_refused "export without the passphrase" "$TIERFS" key export --volume "$T/vol" --plain
tfs_expect_refused "export with a wrong passphrase" "$TIERFS" key export --volume "$T/vol" \
	--passphrase-file "$T/bad" --plain
"$TIERFS" key export --volume "$T/vol" --passphrase-file "$T/pass" --plain --out "$T/clear.key" ||
	fail "export in the clear with the passphrase"
[ "$(stat -c %a "$T/clear.key")" = 600 ] || fail "exported key is not 0600"
tfs_expect_refused "export over an existing file" "$TIERFS" key export --volume "$T/vol" \
	--passphrase-file "$T/pass" --plain --out "$T/clear.key"
"$TIERFS" key show --file "$T/clear.key" | grep -q "$id" || fail "exported key has another id"

# import for a cloud node, and refusal of a damaged key
"$TIERFS" key import --out "$T/node.key" --plain "$T/clear.key" || fail "key import --out"
cmp -s "$T/node.key" "$T/clear.key" || "$TIERFS" key show --file "$T/node.key" | grep -q "$id" ||
	fail "imported key differs"
sed 's/[0-9a-f]\{8\}$/00000000/' "$T/clear.key" >"$T/damaged.key"
if ! cmp -s "$T/damaged.key" "$T/clear.key"; then
	tfs_expect_refused "import of a damaged key" "$TIERFS" key import --out "$T/x.key" --plain "$T/damaged.key"
	[ ! -e "$T/x.key" ] || fail "a damaged key was installed"
fi

# a wrapped volume does not mount without its passphrase, and does with it
mkdir -p "$T/mnt"
tfs_expect_refused "mount without the passphrase" "$TIERFS" mount "$T/vol" "$T/mnt"
tfs_is_mounted "$T/mnt" && fail "mounted without the passphrase"
TIERFS_PASSPHRASE='correct horse' tfs_mount "$T/vol" "$T/mnt"
echo data >"$T/mnt/f" || fail "write"
tfs_umount "$T/mnt"
tfs_finish
note "keys: wrapped key, export/import/show, refusals, mount with passphrase"
