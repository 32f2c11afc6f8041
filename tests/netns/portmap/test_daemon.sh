#!/bin/bash
# SPDX-License-Identifier: MIT
# The daemon behind a miniupnpd router: node A (LAN, upnp_forward_external_port
# 40000) maps its WireGuard port and announces 198.51.100.11:40000 through the
# gossip. P1 (public) knows everyone. P2 sits behind a symmetric NAT (router
# R2, masquerade random) and knows only P1; A's router is a port-restricted
# cone NAT that drops unsolicited UDP. No hole can be punched between them:
# a handshake between P2 and A can only come from P2 dialling A's announced
# external endpoint through the mapping. Then: the status view shows
# the endpoint with its protocol and lease, the daemon renews the short lease
# (10 s) and the mapping outlives it, and SIGTERM removes it.
#
# Argument 3 is the router: "upnp" (UPnP IGD only, the default) or "natpmp"
# (NAT-PMP and PCP only: the daemon maps by PCP, which it asks first).
DRIVER=$1 WGAM=$2 ROUTER=${3:-upnp}
. "$(dirname "$0")/rig.sh"
command -v wireguard-go >/dev/null || skip "no wireguard-go"
command -v wg >/dev/null || skip "no wg"
EXT=40000 WGPORT=51820 P2_IP=192.168.2.2 R2_WAN=198.51.100.21

rig_up
# P2 at 192.168.2.2 behind R2 (WAN 198.51.100.21), a symmetric NAT.
NP2=upn${S}q NR2=upn${S}s
for ns in "$NP2" "$NR2"; do
  ip netns add "$ns" || die "netns add"
  ip -n "$ns" link set lo up
done
trap 'cleanup; ip netns del "$NP2" 2>/dev/null; ip netns del "$NR2" 2>/dev/null' EXIT
ip -n "$NW" link add upn${S}ws type veth peer name upn${S}sw netns "$NR2"
ip -n "$NW" link set upn${S}ws master upn${S}wb up
ip -n "$NR2" addr add $R2_WAN/24 dev upn${S}sw
ip -n "$NR2" link set upn${S}sw up
ip -n "$NR2" route add default via $PUB_IP
ip -n "$NR2" link add upn${S}sl type veth peer name upn${S}qe netns "$NP2"
ip -n "$NR2" addr add 192.168.2.1/24 dev upn${S}sl
ip -n "$NR2" link set upn${S}sl up
ip netns exec "$NR2" sysctl -qw net.ipv4.ip_forward=1
ip -n "$NP2" addr add $P2_IP/24 dev upn${S}qe
ip -n "$NP2" link set upn${S}qe up
ip -n "$NP2" route add default via 192.168.2.1
ip netns exec "$NR2" nft -f - <<NFT || die "nft R2"
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat;
    oifname "upn${S}sw" masquerade random
  }
}
table inet fw {
  chain input {
    type filter hook input priority filter;
    iifname "upn${S}sw" ct state new meta l4proto udp drop
  }
}
NFT
stun_up
if [ "$ROUTER" = natpmp ]; then
  MINIUPNPD_UPNP=no MINIUPNPD_NATPMP=yes miniupnpd_up
  PROTO=pcp
else
  miniupnpd_up
  PROTO=upnp
fi
export WGAM_PORTMAP_LEASE_S=10

node a "$NA" 100.64.0.2
node 1 "$NP" 100.64.0.1
node 2 "$NP2" 100.64.0.3
KA=$(cat "$TMP/a.pub") K1=$(cat "$TMP/1.pub") K2=$(cat "$TMP/2.pub")

# config NAME EXTRA PEERS...
config() {
  local name=$1 extra=$2
  shift 2
  local peers
  peers=$(IFS=,; echo "$*")
  cat > "$TMP/$name.json" <<JSON
{
  "interface": "upn${S}g$name",
  "gossip_port": 1666,
  "gossip_secret": "upnp test secret",
  $extra
  "control_socket": "$TMP/$name.ctl",
  "log_level": "debug",
  "peers": [ $peers ]
}
JSON
}
PA="{\"pubkey\":\"$KA\",\"address\":\"100.64.0.2\"}"
P1="{\"pubkey\":\"$K1\",\"address\":\"100.64.0.1\",\"endpoint\":\"$PUB_IP:$WGPORT\"}"
P2="{\"pubkey\":\"$K2\",\"address\":\"100.64.0.3\"}"
config a "\"upnp_forward_external_port\": $EXT," "$P1" "$P2"
config 1 "" "$PA" "$P2"
config 2 "" "$PA" "$P1"

bg ip netns exec "$NA" "$WGAM" run "$TMP/a.json" >"$TMP/d-a.log" 2>&1
DA=${PIDS[-1]}
bg ip netns exec "$NP" "$WGAM" run "$TMP/1.json" >"$TMP/d-1.log" 2>&1
# P2 joins once A and P1 are connected: P1 asks its first connected peer (A)
# for its store, which holds A's UPnP endpoint, and P2 asks P1 on joining.
# (An endpoint set before any peer is connected is only re-announced after
# gossip_interval, 300 s: see the report.)
for i in $(seq 300); do
  grep -q "connected via $ROUTER_WAN:" "$TMP/d-1.log" && break
  sleep 0.1
done
bg ip netns exec "$NP2" "$WGAM" run "$TMP/2.json" >"$TMP/d-2.log" 2>&1

show_logs() {
  for f in d-a d-1 d-2; do echo "--- $f"; tail -40 "$TMP/$f.log"; done
  echo "--- wg P2"; ip netns exec "$NP2" wg show upn${S}g2
  echo "--- wg A"; ip netns exec "$NA" wg show upn${S}ga
  echo "--- miniupnpd"; grep -E "AddPortMapping|DeletePortMapping|PCP|NAT-PMP" "$TMP/miniupnpd.log" | tail -20
}
fail() { show_logs; die "$*"; }

# 1. The mapping appears in the router's rules.
for i in $(seq 100); do
  router_rules | grep -q "dport $EXT dnat ip to $A_IP:$WGPORT" && break
  sleep 0.2
done
router_rules | grep -q "dport $EXT dnat ip to $A_IP:$WGPORT" || fail "no mapping in the router"
lease_expiry() { grep "^UDP:$EXT:$A_IP:" "$TMP/leases" | cut -d: -f5; }
E0=$(lease_expiry)
[ -n "$E0" ] || fail "no lease file entry"

# 2. P2 handshakes with A at the mapped endpoint.
ok=
for i in $(seq 120); do
  line=$(ip netns exec "$NP2" wg show upn${S}g2 dump | awk -v k="$KA" '$1 == k')
  ep=$(echo "$line" | cut -f3) hs=$(echo "$line" | cut -f5)
  if [ "$ep" = "$ROUTER_WAN:$EXT" ] && [ "${hs:-0}" -gt 0 ]; then ok=1; break; fi
  sleep 0.5
done
[ -n "$ok" ] || fail "P2 has no handshake with A through $ROUTER_WAN:$EXT (endpoint '$ep', handshake '$hs')"
echo "P2 <-> A handshake through the mapping ($ep)"
# Traffic through the tunnel (no ping binary here): a UDP echo on A's mesh
# address, asked from P2.
bg ip netns exec "$NA" timeout 20 python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("100.64.0.2", 7777))
while True:
    d, a = s.recvfrom(100); s.sendto(d, a)'
sleep 0.3
ip netns exec "$NP2" python3 -c '
import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
for i in range(5):
    s.sendto(b"echo-through-tunnel", ("100.64.0.2", 7777))
    try:
        if s.recvfrom(100)[0] == b"echo-through-tunnel": sys.exit(0)
    except socket.timeout: pass
sys.exit(1)' || fail "no UDP echo from A through the tunnel"

# 3. The status view shows the external endpoint.
ip netns exec "$NA" "$WGAM" status --json --socket "$TMP/a.ctl" > "$TMP/status.json" ||
  fail "status failed"
grep -q "\"external_endpoint\": *\"$ROUTER_WAN:$EXT\"" "$TMP/status.json" ||
  { cat "$TMP/status.json"; fail "status has no external_endpoint"; }
python3 - "$TMP/status.json" "$ROUTER_WAN:$EXT" $PROTO <<'PY' || fail "status external_endpoints"
import json, sys
st = json.load(open(sys.argv[1]))
e = st["external_endpoints"]
assert len(e) == 1 and e[0]["endpoint"] == sys.argv[2], e
assert e[0]["protocol"] == sys.argv[3] and e[0]["lease"] == 10, e
assert 0 <= e[0]["expires_in"] <= 10, e
PY
ip netns exec "$NA" "$WGAM" status --socket "$TMP/a.ctl" | head -1 | tee "$TMP/status.txt"
grep -q "external endpoint: $ROUTER_WAN:$EXT ($PROTO, [0-9]*s left)" "$TMP/status.txt" ||
  fail "status table does not show the endpoint with its protocol"

# 4. The worker renews the 10 s lease at half of it: after 25 s the mapping
# is still there, its expiry moved forward, and not too many requests.
sleep 25
e=$(lease_expiry)
[ -n "$e" ] && [ "$e" -ge $((E0 + 15)) ] || fail "the mapping was not renewed (expiry $E0 -> '$e')"
router_rules | grep -q "dport $EXT dnat ip to $A_IP:$WGPORT" || fail "mapping gone after 25 s"
if [ $PROTO = upnp ]; then
  n=$(grep -c "AddPortMapping: ext port $EXT to $A_IP" "$TMP/miniupnpd.log")
else
  n=$(grep -c "PCP request received from $A_IP" "$TMP/miniupnpd.log")
fi
[ "$n" -le 12 ] || fail "$n mapping requests: renewing too often"
echo "mapping renewed: lease expiry +$((e - E0)) s, $n $PROTO requests"

# 5. SIGTERM: the mapping is removed and the daemon exits.
kill -TERM "$DA"
for i in $(seq 100); do
  kill -0 "$DA" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$DA" 2>/dev/null && fail "daemon A still running 10 s after SIGTERM"
router_rules | grep -q "dport $EXT" && fail "mapping still in the router after exit"
grep -q "^UDP:$EXT:" "$TMP/leases" && fail "mapping still in the lease file after exit"
if [ $PROTO = upnp ]; then
  grep -q "DeletePortMapping: external port: $EXT" "$TMP/miniupnpd.log" || fail "no DeletePortMapping"
else
  grep -q "PCP: UDP port $EXT mapping removed" "$TMP/miniupnpd.log" || fail "no PCP deletion"
fi
echo PASS
