#!/bin/sh
# SPDX-License-Identifier: MIT
# A relay run that must reach nearly every pair at its end: the share of
# pairs that reach each other (directly or through a relay) at least MIN,
# every prefix routed with its peer's address, and --check's direct-mesh
# conditions. Known limit: in 50-node runs with two relays, loss and a
# roaming node, one or two of the 1,225 pairs may be caught at the end with
# their two ends on different relays (each end moved on its own), which
# --check-relay rejects; this test prints the share and bounds it.
set -eu
. "$(dirname "$0")/sim_check.sh"
sim="$1"
min="$2"
shift 2
sim_run "$sim" "$@"
share=$(sim_field reachable_share)
misrouted=$(sim_field prefix_misrouted)
echo "reachable_share=$share (at least $min) prefix_misrouted=${misrouted:-0}"
awk -v s="$share" -v m="$min" 'BEGIN { exit !(s != "" && s + 0 >= m + 0) }' || {
  echo "reachable share $share below $min" >&2
  exit 1
}
[ "${misrouted:-0}" = 0 ] || { echo "prefixes misrouted: $misrouted" >&2; exit 1; }
