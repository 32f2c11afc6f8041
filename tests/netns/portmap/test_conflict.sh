#!/bin/bash
# SPDX-License-Identifier: MIT
# The external port is already mapped to another host (B, by UPnP): the
# worker, asking by one protocol (argument 2: upnp, pcp or natpmp), gets
# another external port from the gateway (UPnP IGD:2 AddAnyPortMapping; PCP
# and NAT-PMP assign one), reports the port actually mapped, and at stop
# deletes its own mapping only, never B's.
DRIVER=$1 PROTO=${2:-upnp}
. "$(dirname "$0")/rig.sh"
EXT=40000

rig_up
stun_up
MINIUPNPD_NATPMP=yes miniupnpd_up
ip netns exec "$NB" $UPNPC -e other-host -a $B_IP 51820 $EXT UDP 300 >"$TMP/upnpc.out" 2>&1 ||
  { cat "$TMP/upnpc.out"; die "host B could not map $EXT"; }
router_rules | grep -q "dport $EXT dnat ip to $B_IP:51820" || die "B's mapping not in the rules"

cat > "$TMP/stopped.sh" <<HOOK
! ip netns exec $NR nft list chain inet filter prerouting_miniupnpd | grep -q "dnat ip to $A_IP:51820"
HOOK
PORTMAP_PROTO=$PROTO WGAM_LOG_LEVEL=debug HOOK_STOPPED="bash $TMP/stopped.sh" \
  ip netns exec "$NA" "$DRIVER" watch $EXT 51820 5 >"$TMP/out" 2>"$TMP/err"
rc=$?
cat "$TMP/out" "$TMP/err"
[ $rc = 0 ] || die "driver failed or the mapping was not deleted ($rc)"
[ "$(grep -c '^RESULT ' "$TMP/out")" = 1 ] || die "expected exactly one result"
port=$(sed -n "s/^RESULT [0-9]* 1 $PROTO $ROUTER_WAN:\([0-9]*\) [0-9]*\$/\1/p" "$TMP/out")
[ -n "$port" ] || die "no $PROTO mapping reported"
[ "$port" != $EXT ] || die "reported the port of another host"
grep -q "$PROTO: external port $EXT was not available: the gateway assigned $port" "$TMP/err" ||
  die "no log of the assigned port"
grep -q '^\[warn\]' "$TMP/err" && die "a warning was logged"
router_rules | grep -q "dport $EXT dnat ip to $B_IP:51820" || die "B's mapping was removed"
echo "mapped by $PROTO to $ROUTER_WAN:$port (asked for $EXT, taken by B)"
echo PASS
