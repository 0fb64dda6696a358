#!/bin/bash
# install.sh - 'cmake --install' as a package build uses it: with DESTDIR
# and a --prefix of its own, every file lands below DESTDIR/PREFIX and
# nowhere else (the machine's /sbin is not touched), the expected files are
# all there (binary, mount helper, man pages, bash completion, systemd
# units naming the installed binary), and no symlink dangles. With the
# prefix /usr, the units go where pkg-config systemd says (inside DESTDIR).
. "$(dirname "$0")/lib.sh"
tfs_setup

# what /sbin and /usr/local hold before, to compare after
sys_state() { ls -la /sbin/mount.fuse.tierfs /usr/local/bin/tierfs 2>&1 | sort; }
sys_before=$(sys_state)

# install DESTDIR PREFIX: run cmake --install, list what it made
install_to()
{
	DESTDIR=$1 timeout 120 cmake --install "$TIERFS_BIN_DIR" --prefix "$2" >"$T/install.out" 2>&1 || {
		cat "$T/install.out" >&2
		fail "DESTDIR='$1' cmake --install --prefix '$2'"
	}
	(cd "$1" && find . ! -type d | sed 's|^\.||' | LC_ALL=C sort) >"$T/files"
}

# check_links DESTDIR: every symlink resolves inside DESTDIR
check_links()
{
	local l
	while read -r l; do
		[ -L "$1$l" ] || continue
		[ -e "$1$l" ] || tfs_problem "symlink '$l' -> '$(readlink "$1$l")' dangles"
	done <"$T/files"
}

prefix=/opt/tierfs-test
install_to "$T/dest" "$prefix"
outside=$(grep -v "^$prefix/" "$T/files" || true)
[ -z "$outside" ] && note "all $(wc -l <"$T/files") files below $prefix" ||
	tfs_problem "files outside DESTDIR/$prefix: $outside"
for f in bin/tierfs sbin/mount.fuse.tierfs share/bash-completion/completions/tierfs \
	lib/systemd/system/tierfs@.service lib/systemd/system/tierfs-cloud@.service \
	share/man/man1/tierfs.1 share/man/man1/tierfs-mount.1 share/man/man1/tierfs-policy.1 \
	share/man/man5/tierfs.conf.5 share/man/man5/tierfs-policy.5; do
	grep -qx "$prefix/$f" "$T/files" || tfs_problem "'$prefix/$f' not installed"
done
# one installed page per source page, in its section
for src in "$TIERFS_SRC"/docs/man/*.scd; do
	page=$(basename "$src" .scd)
	grep -qx "$prefix/share/man/man${page##*.}/$page" "$T/files" || tfs_problem "page '$page' not installed"
done
check_links "$T/dest"
[ "$(readlink "$T/dest$prefix/sbin/mount.fuse.tierfs")" = ../bin/tierfs ] ||
	tfs_problem "the mount helper is not a relative link to the binary"
cmp -s "$TIERFS" "$T/dest$prefix/bin/tierfs" || tfs_problem "the installed binary is not the one built"
"$T/dest$prefix/sbin/mount.fuse.tierfs" -f "$T/vol" "$T/mnt" -o defaults ||
	tfs_problem "the installed helper does not run (mount(8)'s fake mount, -f)"
grep -q "^ExecStart=$prefix/bin/tierfs mount -f " "$T/dest$prefix/lib/systemd/system/tierfs@.service" ||
	tfs_problem "tierfs@.service does not run $prefix/bin/tierfs"
grep -q "^ExecStart=$prefix/bin/tierfs mount --cloud -f " "$T/dest$prefix/lib/systemd/system/tierfs-cloud@.service" ||
	tfs_problem "tierfs-cloud@.service does not run $prefix/bin/tierfs"
# the completion is a bash script that defines its function
bash -c ". '$T/dest$prefix/share/bash-completion/completions/tierfs' && complete -p tierfs" >/dev/null ||
	tfs_problem "the installed completion does not register for tierfs"

# a distribution package: prefix /usr, units where systemd's pkg-config file says
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
install_to "$T/deb" /usr
: "${unitdir:=/usr/lib/systemd/system}"
grep -qx "$unitdir/tierfs@.service" "$T/files" || tfs_problem "prefix /usr: units not in '$unitdir'"
outside=$(grep -v -e "^/usr/" -e "^$unitdir/" "$T/files" || true)
[ -z "$outside" ] || tfs_problem "prefix /usr: files outside /usr and $unitdir: $outside"
grep -qx /usr/sbin/mount.fuse.tierfs "$T/files" || tfs_problem "prefix /usr: no /usr/sbin/mount.fuse.tierfs"
check_links "$T/deb"

[ "$(sys_state)" = "$sys_before" ] || tfs_problem "the install changed the machine's /sbin or /usr/local"
tfs_finish
note "cmake --install honours DESTDIR and --prefix; nothing outside; no dangling links"
