#!/bin/bash
# SPDX-License-Identifier: MIT
# Repeats the port-mapping scenarios against miniupnpd (the daemon through a
# UPnP-only and a NAT-PMP/PCP-only router, a silent gateway, both endpoints
# announced, a late gateway, an external address change, each protocol
# alone, a taken port) and prints
# "N passed, N failed", with the failures per scenario and where their
# logs are.
#
# Usage (root): tests/netns/portmap/repeat.sh [-n RUNS] [-t SECONDS] [-s SCENARIO]...
#               [BUILD_DIR]
#   -n  rounds (default 20); -t  start no round after SECONDS (default: no
#   limit); -s  only these scenarios (repeatable); BUILD_DIR default build.
set -u
cd "$(dirname "$0")/../../.." || exit 2
runs=20 budget=0 only=()
while getopts n:t:s: o; do
  case $o in
  n) runs=$OPTARG ;;
  t) budget=$OPTARG ;;
  s) only+=("$OPTARG") ;;
  *) sed -n 's/^# \{0,1\}//p' "$0" | sed -n '2,12p'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
build=${1:-build}
drv=$build/tests/netns/portmap/upnp_driver wgam=$build/cli/wgautomesh
[ -x "$drv" ] && [ -x "$wgam" ] || { echo "build $build first (ninja -C $build)"; exit 2; }

# name: script and arguments (environment first).
declare -A sc=(
  [daemon-upnp]="test_daemon.sh $drv $wgam upnp"
  [daemon-natpmp]="test_daemon.sh $drv $wgam natpmp"
  [daemon-silent]="test_silent.sh $drv $wgam"
  [daemon-pinhole]="test_daemon_pinhole.sh $drv $wgam"
  [late-upnp]="test_late.sh $drv upnp"
  [late-natpmp]="test_late.sh $drv natpmp"
  [extaddr-natpmp]="LEASE=300 MAX_MS=3000 test_extaddr.sh $drv natpmp"
  [extaddr-upnp]="LEASE=10 MAX_MS=8000 test_extaddr.sh $drv upnp"
  [pcp]="test_gwproto.sh $drv pcp"
  [natpmp]="test_gwproto.sh $drv natpmp"
  [conflict-upnp]="test_conflict.sh $drv upnp"
  [conflict-pcp]="test_conflict.sh $drv pcp"
  [conflict-natpmp]="test_conflict.sh $drv natpmp"
  [upnp-map]="test_map.sh $drv"
  [upnp-pinhole]="test_pinhole.sh $drv"
)
order=(daemon-upnp daemon-natpmp daemon-silent daemon-pinhole late-upnp late-natpmp
       extaddr-natpmp extaddr-upnp pcp natpmp conflict-upnp conflict-pcp
       conflict-natpmp upnp-map upnp-pinhole)
[ ${#only[@]} -gt 0 ] && order=("${only[@]}")

logs=$(mktemp -d /tmp/portmap-repeat.XXXXXX)
declare -A fails
pass=0 fail=0 skip=0 start=$SECONDS round=0
for ((r = 1; r <= runs; r++)); do
  if [ "$budget" -gt 0 ] && [ $((SECONDS - start)) -ge "$budget" ]; then
    echo "time budget reached after $((r - 1)) rounds"
    break
  fi
  round=$r
  for name in "${order[@]}"; do
    read -r -a words <<< "${sc[$name]}"
    envs=()
    while [[ ${words[0]} == *=* ]]; do envs+=("${words[0]}"); words=("${words[@]:1}"); done
    log=$logs/$name.$r.log
    t=$SECONDS
    env "${envs[@]}" bash "tests/netns/portmap/${words[0]}" "${words[@]:1}" >"$log" 2>&1
    rc=$?
    case $rc in
    0) pass=$((pass + 1)); rm -f "$log"; res=ok ;;
    77) skip=$((skip + 1)); res=skip ;;
    *) fail=$((fail + 1)); fails[$name]=$(( ${fails[$name]:-0} + 1 )); res="FAIL (log $log)" ;;
    esac
    echo "round $r $name: $res ($((SECONDS - t)) s)"
  done
done
echo "rounds: $round; scenarios per round: ${#order[@]}"
for name in "${!fails[@]}"; do echo "  $name failed ${fails[$name]} times"; done
[ $skip -gt 0 ] && echo "$skip skipped"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
