# npm_peers.sh - sourced by integration tests that need the npm-packaged
# store emulators (s3rver, azurite). Installs the versions pinned in
# tests/package.json (and package-lock.json) into tests/node_modules once,
# under a lock so tests running in parallel do not race, and exports
# TIERFS_NODE_MODULES. CI runs on a fresh clone, so this must work from
# nothing but node and npm (Debian: nodejs npm).

npm_peers_install() {
	local dir="$TIERFS_SRC/tests"
	local lock="${TMPDIR:-/tmp}/tierfs-npm-install.lock"

	command -v node >/dev/null || { echo "node is not installed (apt-get install nodejs npm)" >&2; return 1; }
	command -v npm >/dev/null || { echo "npm is not installed (apt-get install npm)" >&2; return 1; }
	(
		flock 9
		if [ ! -e "$dir/node_modules/s3rver/package.json" ] ||
		   [ ! -e "$dir/node_modules/azurite/package.json" ]; then
			echo "# installing store emulators with npm into $dir/node_modules" >&2
			if [ -e "$dir/package-lock.json" ]; then
				npm ci --prefix "$dir" --no-audit --no-fund >&2
			else
				npm install --prefix "$dir" --no-audit --no-fund >&2
			fi
		fi
	) 9>"$lock"
	export TIERFS_NODE_MODULES="$dir/node_modules"
}
