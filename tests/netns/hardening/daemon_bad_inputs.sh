#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The daemon against bad input, in a network namespace with a wireguard-go
# interface, each case with its exact expectation:
#   - a config naming a missing interface: `run` exits 1 with a clear line
#     and touches nothing (no interface, no socket, state file untouched);
#   - a peer list with duplicate keys or addresses: `run` exits 2 with one
#     line per problem and the interface is left as it was;
#   - a state file that is empty, truncated, garbage, or larger than the
#     4 MiB bound: the daemon starts, warns, keeps the file as FILE.corrupt
#     (byte for byte), runs, and writes a good state file at exit;
#   - 50 silent control clients and a 1 MB command: status still answers;
#   - the interface disappears (wireguard-go killed) and returns: the daemon
#     logs it, keeps running, and configures the peers again;
#   - a LAN interface that comes up while running joins the IPv6 LAN group;
#   - a FIFO as the state file is reported, not waited on.
#
# Usage: daemon_bad_inputs.sh WGAUTOMESH VECTORS_JSON
set -u

WGAM=$(realpath "$1")
VECTORS=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
hdn_init
unset JOURNAL_STREAM

NS=hdn${ID}n
WG=hdn${ID}w
hdn_netns_add "$NS"
(umask 077 && for k in a b c; do wg genkey >"$TMP/$k.key"; done)
PUBA=$(wg pubkey <"$TMP/a.key")
PUBB=$(wg pubkey <"$TMP/b.key")
PUBC=$(wg pubkey <"$TMP/c.key")
hdn_start_wg "$NS" "$WG" "$TMP/a.key" 100.64.0.1/24

write_config() { # FILE IFACE [EXTRA_PEER_JSON]
  cat >"$1" <<EOC
{
  "interface": "$2",
  "gossip_port": 1666,
  "gossip_secret_file": "$TMP/secret",
  "persist_file": "$TMP/state",
  "control_socket": "$TMP/ctl.sock",
  "log_level": "debug",
  "peers": [
    {"pubkey": "$PUBA", "address": "100.64.0.1"},
    {"pubkey": "$PUBB", "address": "100.64.0.2", "endpoint": "198.51.100.2:51820"},
    {"pubkey": "$PUBC", "address": "100.64.0.3"}${3:+,
    $3}
  ]
}
EOC
}

dev_dump() { ip netns exec "$NS" wg show "$WG" dump; }
link_list() { ip -n "$NS" -o link show | sed 's/^[0-9]*: //'; }

# ---- a missing interface ----------------------------------------------------
write_config "$TMP/missing.json" "hdn${ID}zz"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))
open(sys.argv[2],"wb").write(bytes.fromhex(v["persist_cases"][1]["file_hex"]))' \
  "$VECTORS" "$TMP/state"
sum_before=$(sha256sum <"$TMP/state")
links_before=$(link_list)
dev_before=$(dev_dump)
timeout 20 ip netns exec "$NS" "$WGAM" run "$TMP/missing.json" \
  >"$TMP/missing.out" 2>"$TMP/missing.log"
rc=$?
[ $rc = 1 ] || fail "missing interface: exit $rc, expected 1"
grep -qxF "wgautomesh[error]: interface hdn${ID}zz: no such WireGuard interface (wgautomesh configures an existing WireGuard interface; it does not create one)" \
  "$TMP/missing.log" || fail "missing interface: no clear error line"
[ "$(grep -c . "$TMP/missing.log")" -le 2 ] ||
  fail "missing interface: more than the error line was printed"
[ "$(sha256sum <"$TMP/state")" = "$sum_before" ] ||
  fail "missing interface: the state file was modified"
[ ! -e "$TMP/state.corrupt" ] || fail "missing interface: state set aside"
[ ! -e "$TMP/ctl.sock" ] || fail "missing interface: control socket left"
[ "$(link_list)" = "$links_before" ] || fail "missing interface: links changed"
[ "$(dev_dump)" = "$dev_before" ] || fail "missing interface: $WG changed"
echo "ok: missing interface: exit 1, one clear line, nothing touched"

# ---- duplicate peers --------------------------------------------------------
write_config "$TMP/dupkey.json" "$WG" \
  "{\"pubkey\": \"$PUBB\", \"address\": \"100.64.0.9\"}"
write_config "$TMP/dupaddr.json" "$WG" \
  "{\"pubkey\": \"$(wg genkey | wg pubkey)\", \"address\": \"100.64.0.3\"}"
for c in dupkey:"peers[3].pubkey: duplicate of peers[1].pubkey" \
         dupaddr:"peers[3].address: duplicate of peers[2].address"; do
  name=${c%%:*}
  line=${c#*:}
  timeout 20 ip netns exec "$NS" "$WGAM" run "$TMP/$name.json" \
    >/dev/null 2>"$TMP/$name.log"
  rc=$?
  [ $rc = 2 ] || fail "$name: exit $rc, expected 2"
  [ "$(cat "$TMP/$name.log")" = "$TMP/$name.json: $line" ] ||
    fail "$name: expected exactly '$TMP/$name.json: $line'"
  "$WGAM" check "$TMP/$name.json" >/dev/null 2>&1
  [ $? = 2 ] || fail "$name: check does not exit 2"
  [ "$(dev_dump)" = "$dev_before" ] || fail "$name: $WG changed"
  [ "$(sha256sum <"$TMP/state")" = "$sum_before" ] ||
    fail "$name: the state file was modified"
  echo "ok: $name: exit 2, '$line', nothing touched"
done

# ---- more peers than settings.max_peers (16384) ------------------------------
python3 - "$TMP/many.json" "$WG" "$TMP" 16385 <<'EOP'
import base64, json, sys
path, iface, tmp, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
peers = [{"pubkey": base64.b64encode(i.to_bytes(4, "big") + b"\1" * 28).decode(),
          "address": "100.%d.%d.%d" % (64 + (i >> 16), (i >> 8) & 255, i & 255)}
         for i in range(1, n + 1)]
json.dump({"interface": iface, "gossip_port": 1666,
           "gossip_secret_file": tmp + "/secret",
           "persist_file": tmp + "/state",
           "control_socket": tmp + "/ctl.sock", "peers": peers},
          open(path, "w"))
EOP
"$WGAM" check "$TMP/many.json" >/dev/null 2>"$TMP/many-check.log"
rc=$?
[ $rc = 2 ] || fail "max_peers: check exits $rc, expected 2"
grep -qxF "$TMP/many.json: peers: 16385 peers, at most 16384" \
  "$TMP/many-check.log" || fail "max_peers: check does not name the limit"
timeout 60 ip netns exec "$NS" "$WGAM" run "$TMP/many.json" \
  >/dev/null 2>"$TMP/many.log"
rc=$?
[ $rc = 2 ] || fail "max_peers: exit $rc, expected 2"
grep -qxF "$TMP/many.json: peers: 16385 peers, at most 16384" \
  "$TMP/many.log" || fail "max_peers: run does not name the limit"
[ "$(dev_dump)" = "$dev_before" ] || fail "max_peers: $WG changed"
[ "$(sha256sum <"$TMP/state")" = "$sum_before" ] ||
  fail "max_peers: the state file was modified"
echo "ok: 16,385 peers: check and run exit 2 naming the limit, nothing touched"

# ---- bad state files ----------------------------------------------------------
write_config "$TMP/good.json" "$WG"

start_daemon() { # LOG
  ip netns exec "$NS" "$WGAM" run "$TMP/good.json" >"$1" 2>&1 &
  DPID=$!
  HDN_PIDS+=($DPID)
  hdn_wait_log "$1" "running; gossip on port 1666" 20 ||
    fail "daemon did not start (see $1)"
}

stop_daemon() {
  kill -TERM "$DPID"
  wait "$DPID"
  local rc=$?
  [ $rc = 0 ] || fail "daemon exited $rc after SIGTERM"
}

status_ok() {
  "$WGAM" status --json "$TMP/good.json" >"$TMP/status.json" 2>&1 &&
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))
assert len(s["peers"]) == 2, s' "$TMP/status.json"
}

python3 - "$VECTORS" "$TMP" <<'EOP'
import json, os, sys
v = json.load(open(sys.argv[1]))
d = sys.argv[2]
cases = {c["id"]: bytes.fromhex(c["file_hex"]) for c in v["persist_decode_cases"]}
open(d + "/bad-truncated", "wb").write(cases["persist-truncated"])
open(d + "/bad-empty", "wb").write(b"")
open(d + "/bad-garbage", "wb").write(os.urandom(3000))
# A valid header and entry, then 4 MiB of padding: larger than the bound.
good = bytes.fromhex(v["persist_cases"][1]["file_hex"])
open(d + "/bad-huge", "wb").write(good + b"\0" * (4 * 1024 * 1024))
EOP
for kind in truncated empty garbage huge; do
  rm -f "$TMP/state" "$TMP/state.corrupt"
  cp "$TMP/bad-$kind" "$TMP/state"
  start_daemon "$TMP/state-$kind.log"
  grep -qxF "wgautomesh[warn]: state file $TMP/state is corrupt; moved it to $TMP/state.corrupt" \
    "$TMP/state-$kind.log" || fail "state $kind: no warning line"
  cmp -s "$TMP/bad-$kind" "$TMP/state.corrupt" ||
    fail "state $kind: $TMP/state.corrupt is not the original file"
  status_ok || fail "state $kind: status does not answer"
  kill -0 "$DPID" 2>/dev/null || fail "state $kind: daemon died"
  stop_daemon
  "$WGAM" decode --state "$TMP/state" >"$TMP/decoded.json" ||
    fail "state $kind: the state file written at exit does not decode"
  cmp -s "$TMP/bad-$kind" "$TMP/state.corrupt" ||
    fail "state $kind: $TMP/state.corrupt was changed at exit"
  echo "ok: state file $kind: warned, kept as .corrupt, daemon ran, new file decodes"
done

# ---- control socket abuse ------------------------------------------------------
# 50 clients that connect and say nothing, and one that sends 1 MB without
# a newline: the daemon keeps at most 8 clients (CONTROL_MAX_CLIENTS),
# drops the silent ones after 5 s, refuses a command over 256 bytes, and
# answers a real status query within a few seconds.
rm -f "$TMP/state" "$TMP/state.corrupt"
start_daemon "$TMP/control.log"
fds0=$(ls "/proc/$DPID/fd" | wc -l)
python3 - "$TMP/ctl.sock" >"$TMP/control-abuse.log" 2>&1 <<'EOP' &
import socket, sys, time
held = []
for _ in range(50):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(sys.argv[1])
    except BlockingIOError:
        pass
    held.append(s)
big = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
big.settimeout(10)
try:
    big.connect(sys.argv[1])
    big.sendall(b"x" * (1 << 20))
    print("big: sent 1 MB, reply:", big.recv(4096)[:80])
except OSError as e:
    print("big:", e)
time.sleep(8)
EOP
ABUSE=$!
HDN_PIDS+=($ABUSE)
sleep 1
fds_max=0
for _ in $(seq 10); do
  n=$(ls "/proc/$DPID/fd" | wc -l)
  [ "$n" -gt "$fds_max" ] && fds_max=$n
  sleep 0.2
done
[ $((fds_max - fds0)) -le 8 ] ||
  fail "control: the daemon holds $((fds_max - fds0)) client sockets (bound 8)"
start=$(date +%s)
timeout 20 "$WGAM" status --json "$TMP/good.json" >"$TMP/status.json" ||
  fail "control: status does not answer under abuse"
echo "ok: control socket: 51 abusive clients, at most $((fds_max - fds0)) held, status answered in $(( $(date +%s) - start ))s"
kill "$ABUSE" 2>/dev/null
wait "$ABUSE" 2>/dev/null
kill -0 "$DPID" 2>/dev/null || fail "control: daemon died"
stop_daemon

# ---- the interface disappears and returns -------------------------------------
rm -f "$TMP/state" "$TMP/state.corrupt"
start_daemon "$TMP/vanish.log"
peers_on_device() { # prints the number of peers with their allowed IP
  ip netns exec "$NS" wg show "$WG" allowed-ips 2>/dev/null |
    grep -cE '100\.64\.0\.[23]/32'
}
wait_peers() { # TRIES: polls every 0.2 s until both peers are on the device
  for _ in $(seq "$1"); do
    [ "$(peers_on_device)" = 2 ] && return 0
    sleep 0.2
  done
  [ "$(peers_on_device)" = 2 ]
}
stop_wg() { # STEP: stops wireguard-go, polls 50 times STEP apart for its link to go
  kill "$WGPID"
  wait "$WGPID" 2>/dev/null
  for _ in $(seq 50); do
    ip -n "$NS" link show "$WG" >/dev/null 2>&1 || return 0
    sleep "$1"
  done
}
wait_peers 50 || fail "vanish: peers not configured at start"
stop_wg 0.1
ip -n "$NS" link show "$WG" >/dev/null 2>&1 && fail "vanish: $WG still exists"
hdn_wait_log "$TMP/vanish.log" \
  "^wgautomesh\[error\]: interface $WG: no such WireGuard interface; retrying every [0-9]+ ms$" 15 ||
  fail "vanish: no log line about the missing interface"
sleep 5 # a few retries
kill -0 "$DPID" 2>/dev/null || fail "vanish: daemon died without its interface"
[ "$(grep -c "no such WireGuard interface" "$TMP/vanish.log")" = 1 ] ||
  fail "vanish: the error is logged more than once"
status_ok || fail "vanish: status does not answer while the interface is gone"
hdn_start_wg "$NS" "$WG" "$TMP/a.key" 100.64.0.1/24
hdn_wait_log "$TMP/vanish.log" "^wgautomesh\[info\]: interface $WG is back$" 15 ||
  fail "vanish: the daemon did not see the interface come back"
wait_peers 50 || fail "vanish: peers not configured again on the new interface"
status_ok || fail "vanish: status does not answer after the return"
# Deleted and created again at once (wg-quick down; up), between two
# device reads: the new, empty interface gets the peers again.
stop_wg 0.02
hdn_start_wg "$NS" "$WG" "$TMP/a.key" 100.64.0.1/24
T0=$(date +%s%N)
wait_peers 25 || fail "vanish: peers not configured again after a quick re-creation"
echo "re-created interface: peers back after $(( ($(date +%s%N) - T0) / 1000000 )) ms"
stop_daemon
echo "ok: interface vanished and returned: logged once, recovered, peers set again, also when re-created at once"

# ---- a LAN interface that comes up while running -----------------------------
# With ipv6 and lan_discovery, the daemon must be in the LAN group ff05::1 on it within a few
# device reads, not only on the interfaces present at start.
rm -f "$TMP/state" "$TMP/state.corrupt"
write_config "$TMP/v6.json" "$WG"
python3 -c 'import json,sys; p=sys.argv[1]; v=json.load(open(p))
v["ipv6"]=True; v["lan_discovery"]=True; json.dump(v,open(p,"w"))' "$TMP/v6.json"
ip netns exec "$NS" "$WGAM" run "$TMP/v6.json" >"$TMP/lan6.log" 2>&1 &
DPID=$!
HDN_PIDS+=($DPID)
hdn_wait_log "$TMP/lan6.log" "running; gossip on port 1666" 20 ||
  fail "lan6: daemon did not start (see $TMP/lan6.log)"
in_group6() { # IFACE: member of ff05::1 there?
  ip netns exec "$NS" awk -v d="$1" \
    '$2 == d && $3 == "ff050000000000000000000000000001" { f = 1 }
     END { exit !f }' /proc/net/igmp6
}
LAN=hdn${ID}l
ip -n "$NS" link add "$LAN" type veth peer name "${LAN}p" ||
  fail "lan6: cannot add a veth pair"
ip -n "$NS" link set "$LAN" up
ip -n "$NS" link set "${LAN}p" up
for _ in $(seq 50); do
  in_group6 "$LAN" && break
  sleep 0.2
done
in_group6 "$LAN" || fail "lan6: ff05::1 not joined on $LAN, which came up later"
in_group6 "$WG" && fail "lan6: ff05::1 joined on the mesh interface"
hdn_wait_log "$TMP/lan6.log" "joined ff05::1 on $LAN" 5 ||
  fail "lan6: no log line for the join"
ip -n "$NS" link del "$LAN"
kill -0 "$DPID" 2>/dev/null || fail "lan6: daemon died"
stop_daemon
echo "ok: a LAN interface that comes up later joins the IPv6 LAN group"

# ---- last: a case that fails until the fix (see doc/limits.md) -------------
# A FIFO where the state file should be: not waited on (open() without
# O_NONBLOCK would block the start-up forever), reported, and replaced by
# a regular file at exit.
rm -f "$TMP/state" "$TMP/state.corrupt"
mkfifo -m 600 "$TMP/state"
start_daemon "$TMP/state-fifo.log"
grep -qxF "wgautomesh[warn]: cannot read state file $TMP/state: Invalid argument" \
  "$TMP/state-fifo.log" || fail "state fifo: no warning line"
status_ok || fail "state fifo: status does not answer"
stop_daemon
[ -f "$TMP/state" ] || fail "state fifo: no regular state file written at exit"
echo "ok: state file is a FIFO: not waited on, warned, replaced at exit"

echo PASS
