#!/bin/sh
# SPDX-License-Identifier: MIT
# One node's wall clock a year ahead, or back in 1970, must not slow the
# mesh down: it forms and a roaming node is reached again about as fast as
# with every clock right (within 25 % or 2 s of simulated time).
set -eu
sim="$1"
shift
args="$*"

# key=value from the last line of a run
figure() {
  printf '%s\n' "$1" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# shellcheck disable=SC2086
base=$("$sim" $args --quiet 2>/dev/null)
fail=0
for skew in 31536000 -1700000000; do
  # shellcheck disable=SC2086
  run=$("$sim" $args --skew-s "$skew" --quiet 2>/dev/null) || true
  for f in converged_s recovered_s; do
    b=$(figure "$base" $f)
    v=$(figure "$run" $f)
    if ! awk -v b="$b" -v v="$v" 'BEGIN {
          if (v == "never" || v == "") exit 1
          lim = b * 1.25; if (lim < b + 2) lim = b + 2
          exit !(v + 0 <= lim) }'; then
      echo "skew $skew s: $f=$v, with every clock right $b" >&2
      fail=1
    else
      echo "skew $skew s: $f=$v (with every clock right $b)"
    fi
  done
done
exit $fail
