#!/bin/bash
# SPDX-License-Identifier: MIT
# No port mapping service on the LAN (no miniupnpd: PCP and NAT-PMP get
# "port unreachable", UPnP discovery finds nothing): exactly one warning, one
# "not mapped" result, no crash, and retries paced by the backoff even though
# the caller asks for a renewal every 500 ms.
DRIVER=$1
. "$(dirname "$0")/rig.sh"

rig_up
WGAM_UPNP_BACKOFF_MS=1000 WGAM_LOG_LEVEL=debug \
  ip netns exec "$NA" "$DRIVER" fail 40000 51820 6 >"$TMP/out" 2>"$TMP/err"
rc=$?
cat "$TMP/out" "$TMP/err"
[ $rc = 0 ] || die "driver failed ($rc)"
grep -q "^RESULTS 1 0$" "$TMP/out" || die "expected exactly one not-mapped result"
[ "$(grep -c '^\[warn\]' "$TMP/err")" = 1 ] || die "expected exactly one warning"
grep -q '^\[warn\] portmap: no port mapping protocol answered' "$TMP/err" ||
  die "warning does not say that nothing answered"
[ "$(grep -c -v '^\[debug\]' "$TMP/err")" = 1 ] || die "lines other than the warning above debug level"
# An attempt is 2 s (SSDP; PCP and NAT-PMP end at the ICMP error), then the
# backoff waits 1 s, 2 s, ...: at most two attempts fit in 6 s.
n=$(grep -c 'no port mapping protocol answered' "$TMP/err")
[ "$n" -le 2 ] || die "$n attempts in 6 s: backoff not respected"
ms=$(sed -n 's/^STOP_MS //p' "$TMP/out")
[ "$ms" -lt 2500 ] || die "stop took $ms ms"
echo PASS
