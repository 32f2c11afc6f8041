#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Two wgautomesh daemons in two network namespaces joined by a veth pair
# (198.51.100.1/24 and 198.51.100.2/24), each with a wireguard-go interface
# (mesh addresses 100.64.0.1/24 and 100.64.0.2/24). Both have the same peer
# list, in which only B has an endpoint. They must connect and gossip, and
# `wgautomesh status --json` on each must show the other connected within
# 60 s.
#
# With "lan" as second argument, no endpoint is configured at all and
# lan_discovery is on: the nodes must find each other by LAN broadcast.
#
# Usage: netns_two_daemons.sh WGAUTOMESH [lan]
set -u

WGAM=$(realpath "$1")
MODE=${2:-endpoint}
TIMEOUT=${WGAM_NETNS_TIMEOUT:-60}

. "$(dirname "$0")/netns_lib.sh"
require_netns_wg

# Names must be unique across concurrent tests: the UAPI socket path
# /var/run/wireguard/IFNAME.sock is shared by all namespaces.
ID=$(( ($$ + RANDOM) % 100000 ))
NSA=wgd${ID}na
NSB=wgd${ID}nb
WGA=wgd${ID}a
WGB=wgd${ID}b
TMP=$(mktemp -d /tmp/wgam-netns-XXXXXX)
PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pids
  ip netns del "$NSA" 2>/dev/null
  ip netns del "$NSB" 2>/dev/null
  rm -f "/var/run/wireguard/$WGA.sock" "/var/run/wireguard/$WGB.sock"
  finish "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM


ip netns add "$NSA" || fail "ip netns add"
ip netns add "$NSB" || fail "ip netns add"
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up
ip -n "$NSA" link add wgd${ID}va type veth peer name wgd${ID}vb netns "$NSB" ||
  fail "veth"
ip -n "$NSA" addr add 198.51.100.1/24 dev wgd${ID}va
ip -n "$NSB" addr add 198.51.100.2/24 dev wgd${ID}vb
ip -n "$NSA" link set wgd${ID}va up
ip -n "$NSB" link set wgd${ID}vb up
# Broadcasts to 255.255.255.255 need a route (else ENETUNREACH); the
# default route stays inside the namespaces (the veth).
ip -n "$NSA" route add default dev wgd${ID}va
ip -n "$NSB" route add default dev wgd${ID}vb

(umask 077 && wg genkey >"$TMP/a.key" && wg genkey >"$TMP/b.key")
PUBA=$(wg pubkey <"$TMP/a.key")
PUBB=$(wg pubkey <"$TMP/b.key")
printf 'netns-test-secret\n' >"$TMP/secret"
chmod 600 "$TMP"/*.key "$TMP/secret"

start_wg() { # NS IFACE KEY ADDR
  ip netns exec "$1" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$2" \
    >>"$TMP/$2-wg.log" 2>&1 &
  WGPID=$!
  PIDS+=($!)
  for _ in $(seq 100); do
    [ -S "/var/run/wireguard/$2.sock" ] && break
    sleep 0.05
  done
  [ -S "/var/run/wireguard/$2.sock" ] || fail "wireguard-go $2 did not start"
  ip netns exec "$1" wg set "$2" private-key "$3" listen-port 51820 ||
    fail "wg set $2"
  ip -n "$1" addr add "$4" dev "$2"
  ip -n "$1" link set "$2" up
}
start_wg "$NSA" "$WGA" "$TMP/a.key" 100.64.0.1/24
start_wg "$NSB" "$WGB" "$TMP/b.key" 100.64.0.2/24
WGPID_B=$WGPID

if [ "$MODE" = lan ]; then
  ENDPOINT_B=""
  LAN=true
else
  ENDPOINT_B=', "endpoint": "198.51.100.2:51820"'
  LAN=false
fi
write_config() { # NAME IFACE
  cat >"$TMP/$1.json" <<EOC
{
  "interface": "$2",
  "gossip_port": 1666,
  "gossip_secret_file": "$TMP/secret",
  "persist_file": "$TMP/$1.state",
  "control_socket": "$TMP/$1.sock",
  "log_level": "debug",
  "lan_discovery": $LAN,
  "peers": [
    {"pubkey": "$PUBA", "address": "100.64.0.1"},
    {"pubkey": "$PUBB", "address": "100.64.0.2"$ENDPOINT_B}
  ]
}
EOC
}
write_config a "$WGA"
write_config b "$WGB"
"$WGAM" check "$TMP/a.json" >/dev/null || fail "check a.json"

ip netns exec "$NSA" "$WGAM" "$TMP/a.json" >"$TMP/a.log" 2>&1 &
PIDS+=($!)
PIDA=$!
ip netns exec "$NSB" "$WGAM" run "$TMP/b.json" >"$TMP/b.log" 2>&1 &
PIDS+=($!)
PIDB=$!

# Prints "connected pkts_in" of peer $2 as seen by the daemon with config $1.
peer_view() {
  "$WGAM" status --json "$TMP/$1.json" 2>/dev/null | python3 -c '
import json, sys
st = json.load(sys.stdin)
p = [p for p in st["peers"] if p["pubkey"] == sys.argv[1]]
print(p[0]["connected"] if p else "missing", sum(st["stats"]["pkts_in"].values()))
' "$2" 2>/dev/null
}

start=$(date +%s)
ok=0
while [ $(( $(date +%s) - start )) -lt "$TIMEOUT" ]; do
  kill -0 "$PIDA" 2>/dev/null || fail "daemon A exited"
  kill -0 "$PIDB" 2>/dev/null || fail "daemon B exited"
  va=$(peer_view a "$PUBB")
  vb=$(peer_view b "$PUBA")
  if [ "${va%% *}" = True ] && [ "${vb%% *}" = True ] &&
     [ "${va##* }" -gt 0 ] && [ "${vb##* }" -gt 0 ]; then
    ok=1
    break
  fi
  sleep 0.5
done
elapsed=$(( $(date +%s) - start ))
[ $ok = 1 ] || fail "not connected after ${TIMEOUT}s: A sees B: $va; B sees A: $vb"
echo "connected and gossiping after ${elapsed}s (A sees B: $va; B sees A: $vb)"
if [ "$MODE" = lan ]; then
  n=$("$WGAM" status --json "$TMP/a.json" | python3 -c '
import json, sys
print(json.load(sys.stdin)["stats"]["pkts_in"]["lan_broadcast"])')
  [ "$n" -gt 0 ] || fail "A received no LanBroadcast"
fi

# Traffic flows through the mesh (when ping is installed).
if command -v ping >/dev/null; then
  ip netns exec "$NSA" ping -c 1 -W 2 100.64.0.2 >/dev/null || fail "ping"
fi

# The table renders for both.
"$WGAM" status "$TMP/a.json" | grep -q connected || fail "status table"

# B's interface disappears (wireguard-go stops) and comes back: the daemon
# logs it once, keeps running, and reconnects the new interface.
kill "$WGPID_B"
wait "$WGPID_B" 2>/dev/null
for _ in $(seq 100); do
  grep -q "interface $WGB: no such WireGuard interface; retrying" "$TMP/b.log" &&
    break
  sleep 0.1
done
grep -q "interface $WGB: no such WireGuard interface; retrying" "$TMP/b.log" ||
  fail "B did not notice its interface going away"
sleep 3
kill -0 "$PIDB" 2>/dev/null || fail "daemon B exited when its interface went away"
[ "$(grep -c 'no such WireGuard interface' "$TMP/b.log")" = 1 ] ||
  fail "the missing interface was logged more than once"
start_wg "$NSB" "$WGB" "$TMP/b.key" 100.64.0.2/24
WGPID_B=$WGPID
start=$(date +%s)
ok=0
while [ $(( $(date +%s) - start )) -lt "$TIMEOUT" ]; do
  va=$(peer_view a "$PUBB")
  vb=$(peer_view b "$PUBA")
  if [ "${va%% *}" = True ] && [ "${vb%% *}" = True ] &&
     grep -q "interface $WGB is back" "$TMP/b.log" &&
     ip netns exec "$NSB" wg show "$WGB" latest-handshakes | awk '{exit !($2 > 0)}'; then
    ok=1
    break
  fi
  sleep 0.5
done
[ $ok = 1 ] || fail "no reconnection after B's interface returned: A sees B: $va; B sees A: $vb"
echo "reconnected $(( $(date +%s) - start ))s after B's interface returned"

# SIGTERM: clean exit, state file written and decodable.
kill -TERM "$PIDA"
wait "$PIDA"
rc=$?
[ $rc = 0 ] || fail "daemon A exited $rc after SIGTERM"
"$WGAM" decode --state "$TMP/a.state" | grep -q "$PUBB" ||
  fail "state file of A does not list B"
echo "PASS"
