#!/bin/sh
# SPDX-License-Identifier: MIT
# A relay run with a fault (--reload-at, --kill-at): heal_s at most MAX
# seconds, and --check's conditions. Not --check-relay: a pair that has
# nothing to do with the fault may be caught at the end with one end direct
# and the other relayed (one end alone lost its direct path), which it
# rejects. Prints heal_s.
set -eu
sim="$1"
max="$2"
shift 2
out=$("$sim" "$@" --quiet --check 2>/dev/null) || {
  printf '%s\n' "$out" | tail -n 3 >&2
  exit 1
}
heal=$(printf '%s\n' "$out" | tail -n 1 | tr ' ' '\n' |
  sed -n 's/^heal_s=//p')
echo "heal_s=$heal (at most $max)"
awk -v h="$heal" -v m="$max" 'BEGIN { exit !(h != "" && h + 0 >= 0 && h + 0 <= m + 0) }' || {
  echo "healed in $heal s, more than $max" >&2
  exit 1
}
