#!/bin/bash
# SPDX-License-Identifier: MIT
# The router's external address changes (198.51.100.11 -> .12, as after an
# ISP reconnect; miniupnpd is told with SIGUSR1, learns the new address by
# STUN and announces it): the worker reports the new endpoint, by PCP/NAT-PMP
# announcement or at the next renewal, and the new mapping forwards real UDP.
# Argument 2: the router, "natpmp" (NAT-PMP/PCP only) or "upnp". $LEASE is
# the lease asked for (default 10 s), $MAX_MS the delay allowed (20 s).
DRIVER=$1 ROUTER=${2:-natpmp}
. "$(dirname "$0")/rig.sh"
EXT=40000 INT=51820 NEW_WAN=198.51.100.12

rig_up
stun_up
if [ "$ROUTER" = natpmp ]; then
  PROTO=pcp
  MINIUPNPD_UPNP=no MINIUPNPD_NATPMP=yes miniupnpd_up
else
  PROTO=upnp
  miniupnpd_up
fi
WGAM_PORTMAP_LEASE_S=${LEASE:-10} WGAM_LOG_LEVEL=debug \
  bg ip netns exec "$NA" "$DRIVER" watch $EXT $INT 30 >"$TMP/out" 2>"$TMP/err"
DRV=${PIDS[-1]}
for i in $(seq 100); do
  grep -q "^RESULT .* $PROTO $ROUTER_WAN:$EXT " "$TMP/out" && break
  sleep 0.1
done
grep -q "^RESULT .* $PROTO $ROUTER_WAN:$EXT " "$TMP/out" || { cat "$TMP/out" "$TMP/err"; die "no first mapping"; }

ip -n "$NR" addr del $ROUTER_WAN/24 dev "$RWAN"
ip -n "$NR" addr add $NEW_WAN/24 dev "$RWAN"
ip -n "$NR" route add default via $PUB_IP
ip netns exec "$NR" conntrack -F >/dev/null 2>&1
t0=$(date +%s%N)
kill -USR1 "$(cat "$TMP/miniupnpd.pid")"
for i in $(seq 200); do
  grep -q "^RESULT .* $PROTO $NEW_WAN:$EXT " "$TMP/out" && break
  sleep 0.1
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q "^RESULT .* $PROTO $NEW_WAN:$EXT " "$TMP/out" ||
  { cat "$TMP/out" "$TMP/err"; grep -v "HTTP\|Host:" "$TMP/miniupnpd.log" | tail -30; die "new external address not reported within 20 s"; }
echo "new external endpoint $NEW_WAN:$EXT reported $ms ms after the change"
[ "$ms" -le "${MAX_MS:-20000}" ] || die "reported after $ms ms (more than ${MAX_MS:-20000})"
# The new endpoint forwards real UDP.
ip netns exec "$NA" timeout 5 python3 -c "
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('$A_IP', $INT)); print(s.recvfrom(100)[0].decode(), flush=True)" > "$TMP/recv.out" &
sleep 0.5
ip netns exec "$NP" python3 -c "
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b'through-the-new-address', ('$NEW_WAN', $EXT))"
wait $!
grep -q through-the-new-address "$TMP/recv.out" || die "no datagram through the new address"
wait "$DRV" || die "driver failed"
cat "$TMP/out"
grep -E "announced|mapped external" "$TMP/err"
echo PASS
