#!/bin/sh
# SPDX-License-Identifier: MIT
# Usage: netns_wg.sh PROGRAM [ARGS...]
# Starts wireguard-go in a fresh network namespace with a private key and
# listen port 51820, runs "PROGRAM IFNAME ARGS...", and removes everything
# it made on every exit path. Exit 77 (skip) only when the machine lacks
# root, network namespaces, wireguard-go or wg.
set -u

skip() {
  echo "SKIP: $*"
  exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root"
command -v ip >/dev/null 2>&1 || skip "no ip(8)"
command -v wireguard-go >/dev/null 2>&1 || skip "no wireguard-go"
command -v wg >/dev/null 2>&1 || skip "no wg(8)"
[ $# -ge 1 ] || { echo "usage: $0 PROGRAM [ARGS...]" >&2; exit 2; }

# The UAPI socket path is shared by every namespace: the name must be unique
# among concurrent runs (PID), and at most 15 characters.
NS="wgu$$n"
IF="wgu$$a0"
GO_PID=
KEYFILE=

cleanup() {
  if [ -n "$GO_PID" ]; then
    kill "$GO_PID" 2>/dev/null
    wait "$GO_PID" 2>/dev/null
  fi
  ip netns del "$NS" 2>/dev/null
  rm -f "/var/run/wireguard/$IF.sock"
  [ -n "$KEYFILE" ] && rm -f "$KEYFILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS" 2>/dev/null || skip "ip netns add failed"
ip -n "$NS" link set lo up || exit 1

ip netns exec "$NS" wireguard-go -f "$IF" >/dev/null 2>&1 &
GO_PID=$!

i=0
while [ ! -S "/var/run/wireguard/$IF.sock" ]; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 "$GO_PID" 2>/dev/null; then
    echo "FAIL: wireguard-go did not create its UAPI socket" >&2
    exit 1
  fi
  sleep 0.05
done

KEYFILE=$(mktemp /tmp/wgu-key.XXXXXX) || exit 1
wg genkey >"$KEYFILE" || exit 1
wg set "$IF" private-key "$KEYFILE" listen-port 51820 || exit 1
ip -n "$NS" link set "$IF" up || exit 1

prog=$1
shift
"$prog" "$IF" "$@"
