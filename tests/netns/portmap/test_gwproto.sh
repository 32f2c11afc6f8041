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

write_hooks 1.2

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
