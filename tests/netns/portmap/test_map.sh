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

# The hooks, and in mapped.sh also the mapping as upnpc -l lists it.
write_hooks 2.2 "ip netns exec $NA $UPNPC -l > $TMP/upnpc.out 2>&1
grep -Eq \"UDP +$EXT->$A_IP:$INT +'wgautomesh'\" $TMP/upnpc.out"

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
