#!/bin/bash
# SPDX-License-Identifier: MIT
#
# One-command demo of wgautomesh on a fresh Debian 12:
#
#     sudo ./examples/demo.sh
#
# It installs what it needs with apt-get, builds the project in build-demo/,
# then creates four nodes in network namespaces on this machine (one with a
# public address, two behind separate NAT routers, one more on a NAT-ed LAN),
# each with a userspace WireGuard interface and a wgautomesh daemon, and shows
# the mesh forming live. Everything is torn down after the mesh has stayed up
# for ~20 s, or on Ctrl-C. Nothing touches this machine's real interfaces.
#
# Environment: DEMO_HOLD (seconds to keep the converged mesh, default 20),
# DEMO_NO_APT=1 (skip package installation), DEMO_BUILD (build dir).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${DEMO_BUILD:-$here/build-demo}
hold=${DEMO_HOLD:-20}

say() { printf '\n==> %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
	echo "The demo creates network namespaces and interfaces: run it as root (sudo $0)." >&2
	exit 1
fi

packages=(meson ninja-build pkg-config gcc libc6-dev libsodium-dev check libcjson-dev
	libnl-3-dev libnl-genl-3-dev libminiupnpc-dev wireguard-tools wireguard-go
	nftables iproute2 python3)

if [[ ${DEMO_NO_APT:-0} != 1 ]]; then
	missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	if ((${#missing[@]})); then
		say "Installing build tools and runtime dependencies: ${missing[*]}"
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
	else
		say "All needed Debian packages are already installed"
	fi
fi

say "Building wgautomesh in $build"
if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" "$here" -Dtests=false
fi
ninja -C "$build"
daemon=$build/cli/wgautomesh
if [[ ! -x $daemon ]]; then
	echo "the build produced no daemon at $daemon" >&2
	exit 1
fi

say "Starting the demo (Ctrl-C at any time tears everything down)"
# The driver cleans up namespaces, processes and files on every exit path,
# Ctrl-C included; this trap only covers a driver that died hard.
trap 'python3 "$here/tests/netns/rig.py" cleanup >/dev/null 2>&1 || true' EXIT
python3 "$here/tests/netns/demo.py" "$daemon" --hold "$hold"
