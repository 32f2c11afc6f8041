#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Flood: two daemons in network namespaces (A 198.51.100.1, B
# 198.51.100.2, each with wireguard-go) connect; then a flooder in B's
# namespace, from a third address 198.51.100.3, sends $WGAM_FLOOD_RATE
# (default 50,000) bad datagrams per second for $WGAM_FLOOD_SECONDS
# (default 60) at A's gossip port: random bytes, truncated datagrams, bad
# tags, a wrong key, replays of valid datagrams. Asserted:
#   - the pair stays connected (status --json on both, sampled every 5 s,
#     always answers and shows the other connected), and ping crosses the
#     mesh after the flood;
#   - A's resident memory (VmRSS) grows by less than 2 MiB over the flood;
#   - A's status counts what arrived: rejected (length+auth+decode) plus
#     accepted replays plus what the kernel dropped for a full socket
#     buffer (Udp RcvbufErrors) is at least 95% of what was sent, and the
#     rejected counters grew by at least half of the bad datagrams sent.
#
# Usage: flood.sh WGAUTOMESH FLOODER
set -u

WGAM=$(realpath "$1")
FLOODER=$(realpath "$2")
RATE=${WGAM_FLOOD_RATE:-50000}
SECONDS_=${WGAM_FLOOD_SECONDS:-60}
RSS_BOUND_KB=2048
. "$(dirname "$0")/lib.sh"
hdn_init
unset JOURNAL_STREAM

NSA=hdn${ID}a
NSB=hdn${ID}b
WGA=hdn${ID}wa
WGB=hdn${ID}wb
hdn_netns_add "$NSA"
hdn_netns_add "$NSB"
ip -n "$NSA" link add hdn${ID}va type veth peer name hdn${ID}vb netns "$NSB" ||
  fail "veth"
ip -n "$NSA" addr add 198.51.100.1/24 dev hdn${ID}va
ip -n "$NSB" addr add 198.51.100.2/24 dev hdn${ID}vb
ip -n "$NSB" addr add 198.51.100.3/24 dev hdn${ID}vb
ip -n "$NSA" link set hdn${ID}va up
ip -n "$NSB" link set hdn${ID}vb up

(umask 077 && wg genkey >"$TMP/a.key" && wg genkey >"$TMP/b.key")
PUBA=$(wg pubkey <"$TMP/a.key")
PUBB=$(wg pubkey <"$TMP/b.key")
hdn_start_wg "$NSA" "$WGA" "$TMP/a.key" 100.64.0.1/24
hdn_start_wg "$NSB" "$WGB" "$TMP/b.key" 100.64.0.2/24

for n in a b; do
  iface=$WGA
  [ $n = b ] && iface=$WGB
  cat >"$TMP/$n.json" <<EOC
{
  "interface": "$iface",
  "gossip_port": 1666,
  "gossip_secret_file": "$TMP/secret",
  "persist_file": "$TMP/$n.state",
  "control_socket": "$TMP/$n.sock",
  "log_level": "info",
  "peers": [
    {"pubkey": "$PUBA", "address": "100.64.0.1"},
    {"pubkey": "$PUBB", "address": "100.64.0.2", "endpoint": "198.51.100.2:51820"}
  ]
}
EOC
done
ip netns exec "$NSA" "$WGAM" run "$TMP/a.json" >"$TMP/a.log" 2>&1 &
PIDA=$!
HDN_PIDS+=($PIDA)
ip netns exec "$NSB" "$WGAM" run "$TMP/b.json" >"$TMP/b.log" 2>&1 &
PIDB=$!
HDN_PIDS+=($PIDB)

# Prints "connected rejected accepted mem_bytes" of the daemon with config
# $1 about the peer with key $2 (rejected: length+auth+decode; accepted:
# every datagram counted in).
view() {
  "$WGAM" status --json "$TMP/$1.json" 2>/dev/null | python3 -c '
import json, sys
st = json.load(sys.stdin)
p = [p for p in st["peers"] if p["pubkey"] == sys.argv[1]]
r = st["stats"]["rejected"]
print(p[0]["connected"] if p else "missing",
      r["length"] + r["auth"] + r["decode"],
      sum(st["stats"]["pkts_in"].values()), st["stats"]["mem_bytes"])
' "$2"
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PIDA/status"; }
rcvbuf_errors() {
  ip netns exec "$NSA" awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' \
    /proc/net/snmp
}

end=$(( $(date +%s) + 60 ))
while :; do
  kill -0 "$PIDA" 2>/dev/null || fail "daemon A exited"
  kill -0 "$PIDB" 2>/dev/null || fail "daemon B exited"
  va=$(view a "$PUBB")
  vb=$(view b "$PUBA")
  [ "${va%% *}" = True ] && [ "${vb%% *}" = True ] && break
  [ "$(date +%s)" -lt "$end" ] ||
    fail "not connected before the flood: A: $va; B: $vb"
  sleep 0.5
done
echo "connected before the flood (A sees B: $va; B sees A: $vb)"
sleep 3 # let the start-up gossip settle
read -r _ rej0 acc0 mem0 <<<"$(view a "$PUBB")"
rss0=$(rss_kb)
drops0=$(rcvbuf_errors)

ip netns exec "$NSB" "$FLOODER" 198.51.100.1:1666 198.51.100.3 \
  "$TMP/secret" "$PUBB" "$RATE" "$SECONDS_" >"$TMP/flood.json" \
  2>"$TMP/flooder.log" &
FPID=$!
HDN_PIDS+=($FPID)
rss_max=$rss0
samples=0
while kill -0 "$FPID" 2>/dev/null; do
  sleep 5
  kill -0 "$FPID" 2>/dev/null || break
  va=$(view a "$PUBB")
  vb=$(view b "$PUBA")
  [ "${va%% *}" = True ] || fail "during the flood, A: $va"
  [ "${vb%% *}" = True ] || fail "during the flood, B: $vb"
  r=$(rss_kb)
  [ "$r" -gt "$rss_max" ] && rss_max=$r
  samples=$((samples + 1))
done
wait "$FPID" || fail "flooder failed: $(cat "$TMP/flooder.log")"
sleep 2 # let A drain its socket
kill -0 "$PIDA" 2>/dev/null || fail "daemon A died in the flood"
r=$(rss_kb)
[ "$r" -gt "$rss_max" ] && rss_max=$r
read -r conn rej1 acc1 mem1 <<<"$(view a "$PUBB")"
drops1=$(rcvbuf_errors)
[ "$conn" = True ] || fail "after the flood A sees B: $conn"
vb=$(view b "$PUBA")
[ "${vb%% *}" = True ] || fail "after the flood B sees A: $vb"
# Traffic crosses the mesh: UDP from A to B's mesh address (no ping on
# minimal systems).
ip netns exec "$NSB" timeout 10 python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("100.64.0.2", 7777))
s.settimeout(8)
print(s.recv(100).decode())' >"$TMP/mesh-udp.out" 2>&1 &
RPID=$!
sleep 0.5
for _ in 1 2 3 4 5 6 7 8 9 10; do
  ip netns exec "$NSA" python3 -c '
import socket
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"through the mesh",
                                                        ("100.64.0.2", 7777))'
  sleep 0.3
done
wait "$RPID"
grep -q "through the mesh" "$TMP/mesh-udp.out" ||
  fail "no UDP across the mesh after the flood"

python3 - "$TMP/flood.json" "$rej0" "$rej1" "$acc0" "$acc1" "$drops0" \
  "$drops1" "$rss0" "$rss_max" "$mem0" "$mem1" "$RSS_BOUND_KB" \
  "$RATE" "$samples" <<'EOP'
import json, sys
f = json.load(open(sys.argv[1]))
rej0, rej1, acc0, acc1, d0, d1, rss0, rssmax, mem0, mem1, bound, rate, \
    samples = map(int, sys.argv[2:])
rej, acc, drops = rej1 - rej0, acc1 - acc0, d1 - d0
bad = f["sent"] - f["replay"]
print("flooder: %(sent)d datagrams in %(seconds).1f s (%(rate).0f/s): "
      "%(random)d random, %(truncated)d truncated, %(badtag)d bad tag, "
      "%(wrongkey)d wrong key, %(replay)d replays; %(failed)d not sent" % f)
print("daemon A: rejected +%d, accepted +%d, kernel drops +%d "
      "(accounted %.1f%% of sent)" % (rej, acc, drops,
                                      100.0 * (rej + acc + drops) / f["sent"]))
print("daemon A: VmRSS %d kB before, %d kB max (+%d kB); engine mem_bytes "
      "%d -> %d; %d status samples during the flood" %
      (rss0, rssmax, rssmax - rss0, mem0, mem1, samples))
ok = True
if f["rate"] < 0.9 * rate:
    print("FAIL: the flooder reached only %.0f/s of %d/s" % (f["rate"], rate))
    ok = False
if rej + acc + drops < 0.95 * f["sent"]:
    print("FAIL: less than 95% of the datagrams are accounted for")
    ok = False
if rej > bad or rej < 0.5 * bad:
    print("FAIL: rejected +%d for %d bad datagrams sent" % (rej, bad))
    ok = False
if rssmax - rss0 > bound:
    print("FAIL: VmRSS grew by more than %d kB" % bound)
    ok = False
sys.exit(0 if ok else 1)
EOP
[ $? = 0 ] || fail "flood expectations"
echo PASS
