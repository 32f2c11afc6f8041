#!/bin/bash
# SPDX-License-Identifier: MIT
# A router that only takes permanent leases (725 OnlyPermanentLeasesSupported,
# scripted by fake_igd.py since miniupnpd never says it): the mapping is
# retried with lease 0, renewed with lease 0, and deleted at stop.
DRIVER=$1
. "$(dirname "$0")/rig.sh"
EXT=40000 INT=51820

rig_up
: > "$TMP/igd.log"
bg ip netns exec "$NR" python3 -u "$HERE/fake_igd.py" 192.168.1.1 --only-permanent \
  >"$TMP/igd.log" 2>&1
for i in $(seq 50); do grep -q ready "$TMP/igd.log" && break; sleep 0.1; done
grep -q ready "$TMP/igd.log" || die "fake IGD did not start"

cat > "$TMP/renewed.sh" <<HOOK
for i in \$(seq 50); do
  [ \$(grep -c "AddPortMapping port=$EXT client=$A_IP lease=0 -> 0" $TMP/igd.log) -ge 2 ] && exit 0
  sleep 0.1
done
exit 1
HOOK
HOOK_RENEWED="bash $TMP/renewed.sh" \
HOOK_STOPPED="grep -q 'DeletePortMapping port=$EXT -> 0' $TMP/igd.log" \
  ip netns exec "$NA" "$DRIVER" map $EXT $INT >"$TMP/out" 2>"$TMP/err"
rc=$?
cat "$TMP/out" "$TMP/err" "$TMP/igd.log"
[ $rc = 0 ] || die "driver failed ($rc)"
grep -q "^EXTERNAL 198.51.100.11:$EXT\$" "$TMP/out" || die "wrong external endpoint"
grep -q "only supports permanent leases; mapping UDP port $EXT permanently" "$TMP/err" ||
  die "no permanent-lease log"
[ "$(grep -c 'lease=300 -> 725' "$TMP/igd.log")" = 1 ] ||
  die "the 300 s lease should be tried once"
grep -q "(permanent)" "$TMP/err" || die "the mapping log does not say permanent"
echo PASS
