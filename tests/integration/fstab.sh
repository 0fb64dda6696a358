#!/bin/bash
# fstab.sh - a tierfs volume listed in an fstab file mounts with plain
# mount(8), serves files, and unmounts with umount(8) and with 'tierfs
# umount' (by mount point or by volume), by every route mount(8) takes:
# the helper /sbin/mount.fuse.tierfs (the tierfs binary under another
# name, as 'cmake --install' with the prefix /usr makes it), mount.fuse3
# running 'tierfs SOURCE DIR -o OPTS' (any other prefix), and
# 'tierfs mount VOLUME' taking the mount point and options from the fstab
# line (the systemd unit tierfs@.service). The usual FUSE options of an
# fstab line (allow_other, default_permissions, ro) are accepted, ro with
# its meaning. Uses 'mount -T FILE' so the machine's /etc/fstab is left
# alone; a /sbin/mount.fuse.tierfs found (even a stale or dangling one) is
# put back exactly as it was, on every exit path.
. "$(dirname "$0")/lib.sh"
tfs_setup

"$TIERFS" format "$T/vol" >/dev/null || fail "format"
mkdir -p "$T/mnt" "$T/bin"
ln -s "$TIERFS" "$T/bin/tierfs"
HELPER=/sbin/mount.fuse.tierfs
[ -w /sbin ] || { note "SKIP: /sbin not writable (run as root)"; exit 0; }
had_helper=0
if [ -e "$HELPER" ] || [ -L "$HELPER" ]; then
	had_helper=1
	before=$(stat -c '%F %a %s %Y' "$HELPER"; readlink "$HELPER" || true)
	mv "$HELPER" "$T/helper.saved" || fail "cannot move '$HELPER' aside"
fi
restore_helper()
{
	rm -f "$HELPER"
	if [ "$had_helper" = 1 ]; then
		mv "$T/helper.saved" "$HELPER"
		after=$(stat -c '%F %a %s %Y' "$HELPER"; readlink "$HELPER" || true)
		[ "$after" = "$before" ] || echo "FAIL: '$HELPER' not restored as it was" >&2
	fi
}
trap 'rc=$?; restore_helper; tfs_cleanup $rc' EXIT
printf '%s %s fuse.tierfs defaults,_netdev,allow_other,default_permissions,x-test=1 0 0\n' \
	"$T/vol" "$T/mnt" >"$T/fstab"
TFS_MOUNTS+=("$T/mnt")
TFS_VOLUMES+=("$T/vol")

# wait_released: the daemon finished and let go of the volume.
wait_released()
{
	local i
	for i in $(seq 100); do
		flock -n "$T/vol/lock" true && return 0
		sleep 0.1
	done
	fail "the daemon still holds '$T/vol' after unmounting"
}

# 1. mount(8) -> /sbin/mount.fuse.tierfs -> tierfs
ln -s "$TIERFS" "$HELPER"
timeout 30 mount -T "$T/fstab" "$T/mnt" 2>"$T/err" || {
	cat "$T/err" >&2
	fail "mount -T fstab (helper) failed"
}
tfs_wait_state "$T/mnt" 1 10 || fail "not mounted after mount(8)"
grep -q " $T/mnt fuse.tierfs " /proc/self/mounts || fail "mount type is not fuse.tierfs"
echo "from fstab" >"$T/mnt/hello" || fail "write through fstab mount"
[ "$(cat "$T/mnt/hello")" = "from fstab" ] || fail "read back through fstab mount"
umount "$T/mnt" || fail "umount(8)"
tfs_wait_state "$T/mnt" 0 10 || fail "still mounted after umount(8)"
wait_released
"$TIERFS" fsck "$T/vol" || fail "fsck after fstab mount not clean"

# 2. no helper: mount(8) -> mount.fuse3 -> 'PROGRAM SOURCE DIR -o OPTS'. For
# type fuse.tierfs, PROGRAM is 'tierfs' from the shell's default PATH (which
# has /usr/local/bin: mount(8) gives helpers no PATH), so here the form that
# names the binary: type fuse, source PROGRAM#SOURCE.
rm -f "$HELPER"
if [ -x /sbin/mount.fuse3 ]; then
	printf '%s#%s %s fuse defaults,_netdev,allow_other 0 0\n' "$TIERFS" "$T/vol" "$T/mnt" >"$T/fstab.fuse"
	timeout 30 mount -T "$T/fstab.fuse" "$T/mnt" 2>"$T/err" || {
		cat "$T/err" >&2
		fail "mount -T fstab (through mount.fuse3) failed"
	}
	tfs_wait_state "$T/mnt" 1 10 || fail "not mounted (mount.fuse3 route)"
	[ "$(cat "$T/mnt/hello")" = "from fstab" ] || fail "file lost across remount"
	"$TIERFS" umount "$T/vol" || fail "tierfs umount VOLUME"
	tfs_wait_state "$T/mnt" 0 10 || fail "still mounted after tierfs umount VOLUME"
	wait_released
else
	note "no /sbin/mount.fuse3: mount.fuse3 route not tested"
fi

# 3. mount.fuse3's command line itself, then tierfs umount MOUNTPOINT
PATH="$T/bin:$PATH" timeout 30 tierfs "$T/vol" "$T/mnt" -o rw,_netdev || fail "tierfs SOURCE DIR -o form"
tfs_wait_state "$T/mnt" 1 10 || fail "not mounted (helper form)"
[ "$(cat "$T/mnt/hello")" = "from fstab" ] || fail "file lost across remount"
tfs_umount "$T/mnt"

# 4. 'tierfs mount VOLUME': mount point and options (here ro) from the fstab line
printf '# comment\n/nonexistent /x fuse.tierfs defaults 0 0\n%s %s fuse.tierfs ro,allow_other,noauto 0 0\n' \
	"$T/vol" "$T/mnt" >"$T/fstab.ro"
timeout 30 "$TIERFS" mount --fstab "$T/fstab.ro" "$T/vol" || fail "tierfs mount VOLUME --fstab"
tfs_wait_state "$T/mnt" 1 10 || fail "not mounted (tierfs mount VOLUME)"
[ "$(cat "$T/mnt/hello")" = "from fstab" ] || fail "file lost across remount (ro)"
grep " $T/mnt fuse.tierfs " /proc/self/mounts | grep -qw ro || fail "ro mount is not read-only in /proc/self/mounts"
if echo x 2>"$T/err" >"$T/mnt/new"; then fail "a ro mount took a new file"; fi
grep -q "Read-only file system" "$T/err" || fail "write to a ro mount: $(cat "$T/err")"
tfs_umount "$T/mnt"
wait_released
tfs_expect_refused "mount VOLUME without fstab line" "$TIERFS" mount --fstab "$T/fstab" "$T/nonvol"
tfs_expect_refused "mount VOLUME with a missing fstab" "$TIERFS" mount --fstab "$T/nofstab" "$T/vol"
tfs_expect_refused "an unknown mount option" "$TIERFS" mount -o allow_other,bogus_opt "$T/vol" "$T/mnt"
grep -q "'bogus_opt'" "$T/err" || tfs_problem "the unknown option is not named: $(cat "$T/err")"
tfs_finish
note "fstab mount (helper, mount.fuse3, fstab lookup), umount(8) and tierfs umount work"
