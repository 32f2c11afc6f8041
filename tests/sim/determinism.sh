#!/bin/sh
# SPDX-License-Identifier: MIT
# Same seed, same run: two processes must print the same bytes.
set -eu
sim="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
args="--nodes 40 --nat 0.5 --nat-mix 1:1:1 --lan-groups 2 --loss 0.02
      --seed 7 --duration 200 --settle 5 --window 20 --roam 40"
# shellcheck disable=SC2086
"$sim" $args >"$dir/a" 2>/dev/null
# shellcheck disable=SC2086
"$sim" $args >"$dir/b" 2>/dev/null
if ! cmp -s "$dir/a" "$dir/b"; then
  echo "runs differ:" >&2
  diff "$dir/a" "$dir/b" >&2 || true
  exit 1
fi
# A different seed must give a different run (the digest covers every
# packet), or the digest would prove nothing.
# shellcheck disable=SC2086
"$sim" $args --seed 8 >"$dir/c" 2>/dev/null || true
if cmp -s "$dir/a" "$dir/c"; then
  echo "seed has no effect" >&2
  exit 1
fi
# The relay model, extra prefixes, a skewed clock, a node that stops, NATs
# that change.
for more in "--relays 2 --oracle-relay --prefixes --skew-node 3
             --skew-s 31536000 --kill-at 60" "--relays 1 --nat-to-cone 60"; do
  # shellcheck disable=SC2086
  "$sim" $args $more >"$dir/d" 2>/dev/null || true
  # shellcheck disable=SC2086
  "$sim" $args $more >"$dir/e" 2>/dev/null || true
  if ! cmp -s "$dir/d" "$dir/e"; then
    echo "runs with $more differ:" >&2
    diff "$dir/d" "$dir/e" >&2 || true
    exit 1
  fi
  tail -n 1 "$dir/d"
done
tail -n 1 "$dir/a"
