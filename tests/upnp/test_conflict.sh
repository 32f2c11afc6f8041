#!/bin/bash
# SPDX-License-Identifier: MIT
# Another LAN host holds the external port: miniupnpd answers 718
# ConflictInMappingEntry; expect one clear warning naming the port, no busy
# retry, and the other host's mapping left alone (never deleted at exit).
DRIVER=$1
. "$(dirname "$0")/rig.sh"
EXT=40000

rig_up
stun_up
miniupnpd_up
ip netns exec "$NB" $UPNPC -e other-host -a $B_IP 51820 $EXT UDP 300 >"$TMP/upnpc.out" 2>&1 ||
  { cat "$TMP/upnpc.out"; die "host B could not map $EXT"; }
router_rules | grep -q "dport $EXT dnat ip to $B_IP:51820" || die "B's mapping not in the rules"

WGAM_UPNP_BACKOFF_MS=1000 WGAM_LOG_LEVEL=debug \
  ip netns exec "$NA" "$DRIVER" fail $EXT 51820 6 >"$TMP/out" 2>"$TMP/err"
rc=$?
cat "$TMP/out" "$TMP/err"
[ $rc = 0 ] || die "driver failed ($rc)"
grep -q "^RESULTS 1 0$" "$TMP/out" || die "expected exactly one not-mapped result"
[ "$(grep -c '^\[warn\]' "$TMP/err")" = 1 ] || die "expected exactly one warning"
grep -q "^\[warn\] upnp: external UDP port $EXT is already mapped.*718" "$TMP/err" ||
  die "the warning does not name the port and 718"
[ "$(grep -c -v '^\[debug\]' "$TMP/err")" = 2 ] || die "unexpected lines above debug level"
# First try after 2 s of discovery, then 1 s, 2 s backoff: at most 3 in 6 s
# although a renewal is asked for every 500 ms.
n=$(grep -c "AddPortMapping: ext port $EXT to $A_IP" "$TMP/miniupnpd.log")
[ "$n" -ge 1 ] && [ "$n" -le 3 ] || die "$n AddPortMapping requests in 6 s"
router_rules | grep -q "dport $EXT dnat ip to $B_IP:51820" || die "B's mapping was removed"
grep -q "DeletePortMapping" "$TMP/miniupnpd.log" && die "a DeletePortMapping was sent"
echo PASS
