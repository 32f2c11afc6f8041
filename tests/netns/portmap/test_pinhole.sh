#!/bin/bash
# SPDX-License-Identifier: MIT
# IPv6 pinhole through WANIPv6FirewallControl on a real miniupnpd (secure
# mode: the pinhole must be asked for over IPv6, from the address it opens
# to): the pinhole appears in the router's forward rules, lets a datagram
# from the public host through the drop-by-default forward chain, is renewed
# with UpdatePinhole, and is deleted at stop; the worker reports it as an
# external endpoint [A's address]:port beside the IPv4 mapping.
DRIVER=$1
. "$(dirname "$0")/rig.sh"
EXT=40000 INT=51820

rig_up
rig_ipv6
stun_up
MINIUPNPD_IPV6=1 miniupnpd_up

# The pinhole's accept rule in miniupnpd's forward chain (the address shows
# as a raw match on the IPv6 header).
RULE="ip netns exec $NR nft list chain inet filter miniupnpd | grep 'th dport $INT' | grep -q 0xfd000001000000000000000000000002"

cat > "$TMP/mapped.sh" <<HOOK
set -e
$RULE
ip netns exec $NA timeout 5 python3 -c "
import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('$A_IP6', $INT)); print(s.recvfrom(100)[0].decode(), flush=True)" > $TMP/recv6.out &
sleep 0.5
ip netns exec $NP python3 -c "
import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.sendto(b'through-the-pinhole', ('$A_IP6', $INT))"
wait
grep -q through-the-pinhole $TMP/recv6.out
HOOK
cat > "$TMP/renewed.sh" <<HOOK
for i in \$(seq 50); do
  grep -q "UpdatePinhole" $TMP/miniupnpd.log && exit 0
  sleep 0.1
done
echo "no UpdatePinhole"; exit 1
HOOK
cat > "$TMP/stopped.sh" <<HOOK
! { $RULE; }
HOOK

UPNP_IPV6=1 HOOK_MAPPED="bash $TMP/mapped.sh" HOOK_RENEWED="bash $TMP/renewed.sh" \
HOOK_STOPPED="bash $TMP/stopped.sh" \
  ip netns exec "$NA" "$DRIVER" map $EXT $INT >"$TMP/out" 2>"$TMP/err"
rc=$?
cat "$TMP/out" "$TMP/err"
[ $rc = 0 ] || { grep -v "HTTP REQUEST\|Host:" "$TMP/miniupnpd.log" | tail -40; die "driver failed ($rc)"; }
grep -q "IPv6 pinhole open to \[$A_IP6\]:$INT" "$TMP/err" || die "no pinhole log"
# Both endpoints reported to the caller, to be announced.
grep -q "^ENDPOINTS upnp $ROUTER_WAN:$EXT 300 upnp-pinhole \[$A_IP6\]:$INT 300\$" "$TMP/out" ||
  die "the pinhole endpoint is not reported"
grep -q "removed IPv6 pinhole" "$TMP/err" || die "no pinhole removal log"
echo PASS
