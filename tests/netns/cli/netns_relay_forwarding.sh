#!/bin/bash
# SPDX-License-Identifier: MIT
#
# A relay node's IP forwarding, with the real daemon on a wireguard-go
# interface in a network namespace made here: its own entry says
# "relay": true, so net.ipv4.conf.IFACE.forwarding must be 1 while it runs
# and back to what it was after SIGTERM; a reload that makes it no relay
# restores it at once, and one that makes it a relay again sets it. With an
# IPv6 mesh address and net.ipv6.conf.all.forwarding at 0 the daemon logs
# one error naming that sysctl and leaves it alone. When forwarding was on
# already, it stays on after exit.
#
# Usage: netns_relay_forwarding.sh WGAUTOMESH
set -u

WGAM=$(realpath "$1")

. "$(dirname "$0")/netns_lib.sh"
require_netns_wg

# Unique names: /var/run/wireguard/IFNAME.sock is shared by all namespaces.
ID=$(( ($$ + RANDOM) % 100000 ))
NS=wgf${ID}ns
WG=wgf${ID}a
TMP=$(mktemp -d /tmp/wgam-fwd-XXXXXX)
PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pids
  ip netns del "$NS" 2>/dev/null
  rm -f "/var/run/wireguard/$WG.sock"
  finish "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM


fwd() { # the interface's IPv4 forwarding, as the namespace sees it
  ip netns exec "$NS" cat "/proc/sys/net/ipv4/conf/$WG/forwarding"
}

wait_fwd() { # VALUE SECONDS
  for _ in $(seq $(( $2 * 10 ))); do
    [ "$(fwd)" = "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

ip netns add "$NS" || fail "ip netns add"
ip -n "$NS" link set lo up
ip netns exec "$NS" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$WG" \
  >"$TMP/wg.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  [ -S "/var/run/wireguard/$WG.sock" ] && break
  sleep 0.05
done
[ -S "/var/run/wireguard/$WG.sock" ] || fail "wireguard-go did not start"
KEY=$(wg genkey)
echo "$KEY" >"$TMP/key"
ip netns exec "$NS" wg set "$WG" private-key "$TMP/key" listen-port 51820 ||
  fail "wg set"
ip -n "$NS" addr add 100.64.0.1/24 dev "$WG"
ip -n "$NS" link set "$WG" up
PUB=$(echo "$KEY" | wg pubkey)
K2=$(wg genkey | wg pubkey)
K3=$(wg genkey | wg pubkey)

ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.forwarding=0
[ "$(fwd)" = 0 ] || fail "forwarding on $WG is $(fwd) before the start"

write_config() { # RELAY (true or false)
  cat >"$TMP/cfg.json" <<EOC
{"interface": "$WG", "gossip_port": $(( 20000 + ID % 20000 )),
 "gossip_secret": "relay-test", "control_socket": "$TMP/ctl.sock",
 "peers": [
  {"pubkey": "$PUB", "address": "100.64.0.1", "relay": $1},
  {"pubkey": "$K2", "address": "100.64.0.2", "allowed_ips": ["192.168.5.0/24"]},
  {"pubkey": "$K3", "address": "fd00::3"}]}
EOC
}

status_relay() {
  "$WGAM" status --json --socket "$TMP/ctl.sock" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["relay"])'
}

write_config true
ip netns exec "$NS" "$WGAM" -v "$TMP/cfg.json" >"$TMP/daemon.log" 2>&1 &
DPID=$!
PIDS+=($DPID)
wait_fwd 1 10 || fail "forwarding not on while the relay runs ($(fwd))"
echo "ok: net.ipv4.conf.$WG.forwarding is 1 while the relay runs"
for _ in $(seq 50); do
  [ -S "$TMP/ctl.sock" ] && break
  sleep 0.1
done
[ "$(status_relay)" = True ] || fail "status does not say relay"
n=$(grep -c "net.ipv6.conf.all.forwarding is 0" "$TMP/daemon.log")
[ "$n" = 1 ] || fail "IPv6 forwarding error logged $n times, not once"
[ "$(ip netns exec "$NS" cat /proc/sys/net/ipv6/conf/all/forwarding)" = 0 ] ||
  fail "net.ipv6.conf.all.forwarding was changed"
echo "ok: one error names net.ipv6.conf.all.forwarding; left at 0"

write_config false
kill -HUP $DPID
wait_fwd 0 10 || fail "reload to no relay did not restore forwarding"
[ "$(status_relay)" = False ] || fail "status still says relay"
echo "ok: a reload that makes it no relay restores forwarding to 0"

write_config true
kill -HUP $DPID
wait_fwd 1 10 || fail "reload to relay did not set forwarding"
echo "ok: a reload that makes it a relay again sets forwarding to 1"

# A bad reload (here: no longer a relay, and a prefix with host bits) is
# refused whole: forwarding stays on, the error names the field.
write_config false
sed -i 's|"192.168.5.0/24"|"192.168.5.1/24"|' "$TMP/cfg.json"
kill -HUP $DPID
for _ in $(seq 50); do
  grep -q "reload failed" "$TMP/daemon.log" && break
  sleep 0.1
done
grep -q 'peers\[1\].allowed_ips\[0\]: "192.168.5.1/24" has host bits set' \
  "$TMP/daemon.log" || fail "bad prefix not reported on reload"
grep -q "reload failed" "$TMP/daemon.log" || fail "bad reload not refused"
[ "$(fwd)" = 1 ] || fail "a failed reload changed forwarding"
[ "$(status_relay)" = True ] || fail "a failed reload changed the relay flag"
echo "ok: a refused reload leaves the relay and its forwarding as they were"

kill -TERM $DPID
wait $DPID
rc=$?
[ $rc = 0 ] || fail "daemon exit status $rc"
[ "$(fwd)" = 0 ] || fail "forwarding not restored at exit ($(fwd))"
echo "ok: forwarding restored to 0 at exit"

# Forwarding on before the start: left on at exit.
ip netns exec "$NS" sysctl -qw "net.ipv4.conf.$WG.forwarding=1"
write_config true
ip netns exec "$NS" "$WGAM" -v "$TMP/cfg.json" >"$TMP/daemon2.log" 2>&1 &
DPID=$!
PIDS+=($DPID)
for _ in $(seq 50); do
  grep -q "running" "$TMP/daemon2.log" && break
  sleep 0.1
done
grep -q "IPv4 forwarding is already on" "$TMP/daemon2.log" ||
  fail "no 'already on' message"
kill -TERM $DPID
wait $DPID
[ "$(fwd)" = 1 ] || fail "forwarding found on was turned off at exit"
echo "ok: forwarding found on stays on"
echo "PASS"
