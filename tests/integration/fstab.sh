#!/bin/bash
# fstab.sh - a tierfs volume listed in an fstab file mounts with plain
# mount(8) (through the mount.fuse.tierfs helper, which is the tierfs binary
# under another name), serves files, and unmounts with umount(8) and with
# 'tierfs umount'. Uses 'mount -T FILE' so the machine's /etc/fstab is
# left alone.
. "$(dirname "$0")/lib.sh"
tfs_setup

"$TIERFS" format "$T/vol" >/dev/null || fail "format"
mkdir -p "$T/mnt"
# mount(8) runs the helper /sbin/mount.fuse.tierfs (with a sanitised PATH);
# 'cmake --install' creates it as a symlink to tierfs. Put one in place for
# this test, pointing at the binary under test, and restore what was there.
HELPER=/sbin/mount.fuse.tierfs
[ -w /sbin ] || { note "SKIP: /sbin not writable (run as root)"; exit 0; }
if [ -e "$HELPER" ] || [ -L "$HELPER" ]; then
	mv "$HELPER" "$T/helper.saved"
fi
restore_helper()
{
	rm -f "$HELPER"
	if [ -e "$T/helper.saved" ] || [ -L "$T/helper.saved" ]; then mv "$T/helper.saved" "$HELPER"; fi
}
trap 'rc=$?; restore_helper; tfs_cleanup $rc' EXIT
ln -s "$TIERFS" "$HELPER"
printf '%s %s fuse.tierfs defaults,_netdev,x-test=1 0 0\n' "$T/vol" "$T/mnt" >"$T/fstab"
TFS_MOUNTS+=("$T/mnt")
TFS_VOLUMES+=("$T/vol")

timeout 30 mount -T "$T/fstab" "$T/mnt" 2>"$T/err" || {
	cat "$T/err" >&2
	fail "mount -T fstab failed"
}
tfs_wait_state "$T/mnt" 1 10 || fail "not mounted after mount(8)"
grep -q " $T/mnt fuse.tierfs " /proc/self/mounts || fail "mount type is not fuse.tierfs"
echo "from fstab" >"$T/mnt/hello" || fail "write through fstab mount"
[ "$(cat "$T/mnt/hello")" = "from fstab" ] || fail "read back through fstab mount"
umount "$T/mnt" || fail "umount(8)"
tfs_wait_state "$T/mnt" 0 10 || fail "still mounted after umount(8)"
# The daemon must finish and release the volume; then fsck is clean.
for i in $(seq 50); do
	flock -n "$T/vol/lock" true && break
	sleep 0.1
done
"$TIERFS" fsck "$T/vol" || fail "fsck after fstab mount not clean"

# Again, unmounting with the tierfs command; the file survived. This time
# through mount.fuse3's route: "tierfs SOURCE DIR -o OPTS".
restore_helper
mkdir -p "$T/bin" && ln -s "$TIERFS" "$T/bin/tierfs"
PATH="$T/bin:$PATH" timeout 30 tierfs "$T/vol" "$T/mnt" -o rw,_netdev || fail "tierfs SOURCE DIR -o form"
tfs_wait_state "$T/mnt" 1 10 || fail "not mounted (helper form)"
[ "$(cat "$T/mnt/hello")" = "from fstab" ] || fail "file lost across remount"
tfs_umount "$T/mnt"
ln -s "$TIERFS" "$HELPER"
timeout 30 mount -T "$T/fstab" "$T/mnt" || fail "second mount -T"
tfs_wait_state "$T/mnt" 1 10 || fail "not mounted (second time)"
[ "$(cat "$T/mnt/hello")" = "from fstab" ] || fail "file lost across remount"
tfs_umount "$T/mnt"
note "fstab mount, umount(8) and tierfs umount work"
