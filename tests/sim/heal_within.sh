#!/bin/sh
# SPDX-License-Identifier: MIT
# Usage: heal_within.sh SIM FIELD MAX ARGS...
# A run with a fault (--reload-at, --kill-at, --roam): its result FIELD
# (heal_s, recovered_s) at most MAX seconds, and --check's conditions. Not
# --check-relay: a pair that has nothing to do with the fault may be caught
# at the end with one end direct and the other relayed (one end alone lost
# its direct path), which it rejects. Prints the field.
set -eu
. "$(dirname "$0")/sim_check.sh"
sim="$1"
field="$2"
max="$3"
shift 3
sim_run "$sim" "$@"
got=$(sim_field "$field")
echo "$field=$got (at most $max)"
awk -v h="$got" -v m="$max" 'BEGIN { exit !(h != "" && h != "none" && h + 0 >= 0 && h + 0 <= m + 0) }' || {
  echo "$field: $got s, more than $max" >&2
  exit 1
}
