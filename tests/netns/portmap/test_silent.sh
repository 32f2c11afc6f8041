#!/bin/bash
# SPDX-License-Identifier: MIT
# A gateway that answers nothing: the router silently drops PCP/NAT-PMP
# (UDP 5351) and SSDP from the LAN, so every attempt of the port-mapping
# worker runs into its timeouts. The daemon on LAN host A, with
# upnp_forward_external_port set, must still join the mesh at once (a
# handshake with the public node P1 within 5 s of its start: the worker
# waits in its own thread), log one warning, and exit within 3 s of SIGTERM.
DRIVER=$1 WGAM=$2
. "$(dirname "$0")/rig.sh"
command -v wireguard-go >/dev/null || skip "no wireguard-go"
command -v wg >/dev/null || skip "no wg"
WGPORT=51820

rig_up
ip netns exec "$NR" nft add rule inet filter input iifname "$RLAN" udp dport '{ 1900, 5351 }' drop ||
  die "nft drop rule"

node a "$NA" 100.64.0.2
node 1 "$NP" 100.64.0.1
KA=$(cat "$TMP/a.pub") K1=$(cat "$TMP/1.pub")
config() {
  cat > "$TMP/$1.json" <<JSON
{
  "interface": "upn${S}g$1",
  "gossip_port": 1666,
  "gossip_secret": "silent gateway test",
  $2
  "control_socket": "$TMP/$1.ctl",
  "log_level": "debug",
  "peers": [ $3 ]
}
JSON
}
config a '"upnp_forward_external_port": 40000,' \
  "{\"pubkey\":\"$K1\",\"address\":\"100.64.0.1\",\"endpoint\":\"$PUB_IP:$WGPORT\"}"
config 1 "" "{\"pubkey\":\"$KA\",\"address\":\"100.64.0.2\"}"

bg ip netns exec "$NP" "$WGAM" run "$TMP/1.json" >"$TMP/d-1.log" 2>&1
t0=$(date +%s%N)
bg ip netns exec "$NA" "$WGAM" run "$TMP/a.json" >"$TMP/d-a.log" 2>&1
DA=${PIDS[-1]}
ok=
for i in $(seq 100); do
  hs=$(ip netns exec "$NA" wg show upn${S}ga dump | awk -v k="$K1" '$1 == k {print $5}')
  if [ "${hs:-0}" -gt 0 ]; then ok=1; break; fi
  sleep 0.05
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ -n "$ok" ] || { tail -30 "$TMP/d-a.log"; die "no handshake A <-> P1 within 5 s"; }
echo "A joined the mesh $ms ms after its start"
# Two attempts (4 s each, 2 s apart) have run and failed.
sleep 10
n=$(grep -c "no port mapping protocol answered" "$TMP/d-a.log")
[ "$n" -ge 2 ] || { cat "$TMP/d-a.log"; die "expected at least two failed attempts in 10 s, saw $n"; }
[ "$(grep -c 'warn.*no port mapping protocol answered' "$TMP/d-a.log")" = 1 ] ||
  { cat "$TMP/d-a.log"; die "expected exactly one warning"; }
t0=$(date +%s%N)
kill -TERM "$DA"
for i in $(seq 100); do
  kill -0 "$DA" 2>/dev/null || break
  sleep 0.05
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -0 "$DA" 2>/dev/null && die "daemon still running 5 s after SIGTERM"
[ "$ms" -lt 3000 ] || die "exit took $ms ms"
echo "attempts: $n failed, one warning; exit $ms ms after SIGTERM"
echo PASS
