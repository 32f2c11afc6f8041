#!/bin/bash
# SPDX-License-Identifier: MIT
# Both external endpoints announced: the daemon on LAN host A ("ipv6": true,
# upnp_forward_external_port 40000) behind a miniupnpd serving IPv4 and IPv6
# gets the IPv4 mapping and an IPv6 pinhole, shows both in its status, and
# the public node P1 learns both through the gossip ("known" endpoints of A).
DRIVER=$1 WGAM=$2
. "$(dirname "$0")/rig.sh"
command -v wireguard-go >/dev/null || skip "no wireguard-go"
command -v wg >/dev/null || skip "no wg"
EXT=40000 WGPORT=51820

rig_up
rig_ipv6
stun_up
MINIUPNPD_IPV6=1 miniupnpd_up

node a "$NA" 100.64.0.2
node 1 "$NP" 100.64.0.1
KA=$(cat "$TMP/a.pub") K1=$(cat "$TMP/1.pub")
config() {
  cat > "$TMP/$1.json" <<JSON
{
  "interface": "upn${S}g$1",
  "gossip_port": 1666,
  "gossip_secret": "pinhole test",
  $2
  "control_socket": "$TMP/$1.ctl",
  "log_level": "debug",
  "peers": [ $3 ]
}
JSON
}
config a "\"upnp_forward_external_port\": $EXT, \"ipv6\": true," \
  "{\"pubkey\":\"$K1\",\"address\":\"100.64.0.1\",\"endpoint\":\"$PUB_IP:$WGPORT\"}"
config 1 "" "{\"pubkey\":\"$KA\",\"address\":\"100.64.0.2\"}"
bg ip netns exec "$NP" "$WGAM" run "$TMP/1.json" >"$TMP/d-1.log" 2>&1
bg ip netns exec "$NA" "$WGAM" run "$TMP/a.json" >"$TMP/d-a.log" 2>&1

fail() {
  for f in d-a d-1; do echo "--- $f"; tail -30 "$TMP/$f.log"; done
  die "$*"
}
# P1 learns both of A's external endpoints.
ok=
for i in $(seq 60); do
  ip netns exec "$NP" "$WGAM" status --json --socket "$TMP/1.ctl" > "$TMP/s1.json" 2>/dev/null &&
    python3 - "$TMP/s1.json" "$KA" "$ROUTER_WAN:$EXT" "[$A_IP6]:$WGPORT" <<'PY' && { ok=1; break; }
import json, sys
st = json.load(open(sys.argv[1]))
peer = [p for p in st["peers"] if p["pubkey"] == sys.argv[2]][0]
known = {k["addr"] for k in peer["known"]}
sys.exit(0 if {sys.argv[3], sys.argv[4]} <= known else 1)
PY
  sleep 0.5
done
[ -n "$ok" ] || { cat "$TMP/s1.json"; fail "P1 did not learn both external endpoints of A"; }
echo "P1 knows A at $ROUTER_WAN:$EXT and [$A_IP6]:$WGPORT"
ip netns exec "$NA" "$WGAM" status --json --socket "$TMP/a.ctl" > "$TMP/sa.json" || fail "status"
python3 - "$TMP/sa.json" "$ROUTER_WAN:$EXT" "[$A_IP6]:$WGPORT" <<'PY' || { cat "$TMP/sa.json"; fail "A's status"; }
import json, sys
e = json.load(open(sys.argv[1]))["external_endpoints"]
assert [(x["endpoint"], x["protocol"]) for x in e] == [
    (sys.argv[2], "upnp"), (sys.argv[3], "upnp-pinhole")], e
PY
ip netns exec "$NA" "$WGAM" status --socket "$TMP/a.ctl" | head -1
echo PASS
