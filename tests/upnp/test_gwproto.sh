#!/bin/bash
# SPDX-License-Identifier: MIT
# cli/portmap.c with ONE protocol, PCP or NAT-PMP (argument 2), against a real
# miniupnpd that speaks only NAT-PMP and PCP (enable_upnp=no): the mapping is
# in the router's rules, real UDP goes through it, a renewal pushes the
# lease's expiry forward, and stop deletes it.
DRIVER=$1 PROTO=$2
. "$(dirname "$0")/rig.sh"
EXT=40000 INT=51820

rig_up
stun_up
MINIUPNPD_UPNP=no MINIUPNPD_NATPMP=yes miniupnpd_up

cat > "$TMP/mapped.sh" <<HOOK
set -e
ip netns exec $NR nft list chain inet filter prerouting_miniupnpd | grep -q "dport $EXT dnat ip to $A_IP:$INT"
ip netns exec $NA timeout 5 python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("$A_IP", $INT)); print(s.recvfrom(100)[0].decode(), flush=True)' > $TMP/recv.out &
sleep 0.5
ip netns exec $NP python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"through-the-mapping", ("$ROUTER_WAN", $EXT))'
wait
grep -q through-the-mapping $TMP/recv.out
sleep 1.2
grep "^UDP:$EXT:" $TMP/leases > $TMP/lease.before
HOOK
cat > "$TMP/renewed.sh" <<HOOK
for i in \$(seq 50); do
  b=\$(cut -d: -f5 $TMP/lease.before)
  a=\$(grep "^UDP:$EXT:" $TMP/leases | cut -d: -f5)
  [ -n "\$a" ] && [ "\$a" -gt "\$b" ] && exit 0
  sleep 0.1
done
echo "lease not renewed: before \$b after \$a"; exit 1
HOOK
cat > "$TMP/stopped.sh" <<HOOK
! ip netns exec $NR nft list chain inet filter prerouting_miniupnpd | grep -q "dport $EXT" &&
! grep -q "^UDP:$EXT:" $TMP/leases
HOOK

PORTMAP_PROTO=$PROTO WGAM_LOG_LEVEL=debug \
HOOK_MAPPED="bash $TMP/mapped.sh" HOOK_RENEWED="bash $TMP/renewed.sh" \
HOOK_STOPPED="bash $TMP/stopped.sh" \
  ip netns exec "$NA" "$DRIVER" map $EXT $INT >"$TMP/out" 2>"$TMP/err"
rc=$?
cat "$TMP/out" "$TMP/err"
[ $rc = 0 ] || { cat "$TMP/miniupnpd.log"; die "driver failed ($rc)"; }
grep -q "^ENDPOINTS $PROTO $ROUTER_WAN:$EXT " "$TMP/out" || die "not mapped by $PROTO"
ms=$(sed -n 's/^MAPPED_MS //p' "$TMP/out")
[ "$ms" -lt 3000 ] || die "mapping took $ms ms"
ms=$(sed -n 's/^STOP_MS //p' "$TMP/out")
[ "$ms" -lt 3000 ] || die "stop took $ms ms"
grep -q "$PROTO: removed the mapping of UDP port $EXT" "$TMP/err" || die "no removal log"
echo PASS
