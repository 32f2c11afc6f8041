#!/bin/bash
# SPDX-License-Identifier: MIT
# A gateway that answers late: the worker starts while the router runs no
# port mapping service yet (the first attempts fail), and miniupnpd comes up
# 6 s later. The mapping must follow within seconds of the router being
# ready, not after a long backoff. Argument 2: "upnp" (UPnP IGD only, the
# worker asks by UPnP only) or "natpmp" (NAT-PMP/PCP only, every protocol).
DRIVER=$1 ROUTER=${2:-upnp}
. "$(dirname "$0")/rig.sh"
EXT=40000 INT=51820

rig_up
stun_up
if [ "$ROUTER" = natpmp ]; then
  PROTO=pcp
  export PORTMAP_PROTO=
  export MINIUPNPD_UPNP=no MINIUPNPD_NATPMP=yes
else
  PROTO=upnp
  export PORTMAP_PROTO=upnp
fi
t0=$(date +%s%N)
WAIT_MS=40000 WGAM_LOG_LEVEL=debug \
  bg ip netns exec "$NA" "$DRIVER" map $EXT $INT >"$TMP/out" 2>"$TMP/err"
DRV=${PIDS[-1]}
sleep 6
miniupnpd_up
ready=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$DRV"
rc=$?
cat "$TMP/out" "$TMP/err"
[ $rc = 0 ] || die "driver failed ($rc)"
grep -q "^ENDPOINTS $PROTO $ROUTER_WAN:$EXT " "$TMP/out" || die "not mapped by $PROTO"
ms=$(sed -n 's/^MAPPED_MS //p' "$TMP/out")
echo "router ready after $ready ms, mapped after $ms ms"
# The backoff after 6 s of failures is at most 8 s; an attempt costs 4 s.
[ "$ms" -lt $((ready + 12000)) ] || die "mapped $((ms - ready)) ms after the router was ready"
echo PASS
