#!/bin/bash
# SPDX-License-Identifier: MIT
# cli/upnp.c against a real miniupnpd: mapping seen in the router's rules and
# in upnpc -l, real UDP forwarded through it, renewal refreshes the lease,
# stop removes it.
DRIVER=$1
. "$(dirname "$0")/rig.sh"
EXT=40000 INT=51820

rig_up
stun_up
miniupnpd_up

# HOOK_MAPPED: rules, upnpc -l, and a datagram from the public host reaching
# the LAN host through the mapping.
cat > "$TMP/mapped.sh" <<HOOK
set -e
ip netns exec $NR nft list chain inet filter prerouting_miniupnpd | grep -q "dport $EXT dnat ip to $A_IP:$INT"
ip netns exec $NA $UPNPC -l > $TMP/upnpc.out 2>&1
grep -Eq "UDP +$EXT->$A_IP:$INT +'wgautomesh'" $TMP/upnpc.out
ip netns exec $NA timeout 5 python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("$A_IP", $INT)); print(s.recvfrom(100)[0].decode(), flush=True)' > $TMP/recv.out &
sleep 0.5
ip netns exec $NP python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"through-the-mapping", ("$ROUTER_WAN", $EXT))'
wait
grep -q through-the-mapping $TMP/recv.out
sleep 2.2
grep "^UDP:$EXT:" $TMP/leases > $TMP/lease.before
HOOK
# HOOK_RENEWED: the lease's expiry moves forward.
cat > "$TMP/renewed.sh" <<HOOK
for i in \$(seq 50); do
  b=\$(cut -d: -f5 $TMP/lease.before)
  a=\$(grep "^UDP:$EXT:" $TMP/leases | cut -d: -f5)
  [ -n "\$a" ] && [ "\$a" -gt "\$b" ] && exit 0
  sleep 0.1
done
echo "lease not renewed: before \$b after \$a"; exit 1
HOOK
# HOOK_STOPPED: gone from rules and lease file.
cat > "$TMP/stopped.sh" <<HOOK
! ip netns exec $NR nft list chain inet filter prerouting_miniupnpd | grep -q "dport $EXT" &&
! grep -q "^UDP:$EXT:" $TMP/leases
HOOK

HOOK_MAPPED="bash $TMP/mapped.sh" HOOK_RENEWED="bash $TMP/renewed.sh" \
HOOK_STOPPED="bash $TMP/stopped.sh" \
  ip netns exec "$NA" "$DRIVER" map $EXT $INT >"$TMP/out" 2>"$TMP/err"
rc=$?
cat "$TMP/out" "$TMP/err"
[ $rc = 0 ] || { cat "$TMP/miniupnpd.log"; die "driver failed ($rc)"; }
grep -q "^EXTERNAL $ROUTER_WAN:$EXT\$" "$TMP/out" || die "wrong external endpoint"
ms=$(sed -n 's/^STOP_MS //p' "$TMP/out")
[ "$ms" -lt 10000 ] || die "stop took $ms ms"
grep -q "removed the mapping of UDP port $EXT" "$TMP/err" || die "no removal log"
echo PASS
