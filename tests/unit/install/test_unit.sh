#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/wgautomesh.service passes `systemd-analyze verify` (with its
# ExecStart pointed at the built binary, and its man: documentation links
# resolved against our own man pages), keeps the directives the issue
# requires, and its exposure score (`systemd-analyze security`) stays low.
# Usage: test_unit.sh UNIT BINARY DOCDIR
set -eu

unit=$1 bin=$(readlink -f "$2") docdir=$3

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIP: systemd-analyze not found (package systemd)"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgam-unit.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Required content of the shipped unit (the copy below is rewritten).
# shellcheck disable=SC2016 # $MAINPID is for systemd, not the shell
for line in \
  'Type=notify' \
  'ExecStart=/usr/sbin/wgautomesh run /etc/wgautomesh.json' \
  'ExecReload=/bin/kill -HUP $MAINPID' \
  'Restart=on-failure' \
  'RestartPreventExitStatus=2' \
  'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW' \
  'AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW' \
  'ProtectSystem=strict' \
  'ProtectHome=yes' \
  'PrivateTmp=yes' \
  'StateDirectory=wgautomesh' \
  'RuntimeDirectory=wgautomesh' \
  'ReadWritePaths=-/run/wireguard' \
  'NoNewPrivileges=yes' \
  'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET' \
  'ProtectKernelModules=yes' \
  'ProtectKernelTunables=yes' \
  'LockPersonality=yes' \
  'MemoryDenyWriteExecute=yes' \
  'RestrictNamespaces=yes' \
  'SystemCallArchitectures=native'; do
  grep -qxF "$line" "$unit" || fail "missing line: $line"
done

# verify insists on an existing ExecStart binary: use the built one. The
# man: links are looked up with man(1); point it at our pages.
mkdir -p "$tmp/man/man8" "$tmp/man/man5"
cp "$docdir/wgautomesh.8" "$tmp/man/man8/"
cp "$docdir/wgautomesh.json.5" "$tmp/man/man5/"
sed "s#/usr/sbin/wgautomesh#$bin#g" "$unit" >"$tmp/wgautomesh.service"
man_opt=--man=yes
if ! command -v man >/dev/null 2>&1; then
  echo "note: man(1) not found: Documentation= links not checked"
  man_opt=--man=no
fi
if MANPATH=$tmp/man systemd-analyze verify "$man_opt" \
    "$tmp/wgautomesh.service" >"$tmp/verify.log" 2>&1 &&
    ! grep -q . "$tmp/verify.log"; then
  echo "ok: systemd-analyze verify $man_opt: no complaint"
else
  cat "$tmp/verify.log"
  fail "systemd-analyze verify"
fi

# Exposure is reported as 0.0 (locked down) .. 10.0 (unprotected); the
# threshold is in tenths. The unit scores 2.0 on systemd 252.
if systemd-analyze security --offline=yes --threshold=25 \
    "$tmp/wgautomesh.service" >"$tmp/security.log" 2>&1; then
  echo "ok: $(grep 'Overall exposure' "$tmp/security.log" || echo 'exposure <= 2.5')"
else
  grep 'Overall exposure' "$tmp/security.log" || cat "$tmp/security.log"
  fail "exposure above 2.5"
fi

[ $fails -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
