#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz and runs
# each for SECONDS (default 60), one after the other, keeping a corpus per
# target in build-fuzz/fuzz-corpus/TARGET so that runs accumulate. Prints
# libFuzzer's final statistics per target; exits 1 if any target crashed
# (the input is in build-fuzz/fuzz-artifacts/).
#
# Usage: tools/fuzz.sh [SECONDS] [TARGET...]
#   TARGET: pkt state config uapi netlink pcp (default: all)
# Environment: BUILD (default build-fuzz), CC (default clang).
set -eu

cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pkt state config uapi netlink pcp)
build=${BUILD:-build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
  CC=${CC:-clang} meson setup "$build" -Dfuzzing=true -Db_lundef=false
fi
ninja -C "$build" $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}")

export WGAM_FUZZ_SECONDS=$seconds
export WGAM_FUZZ_ARTIFACTS=$PWD/$build/fuzz-artifacts
failed=0
for t in "${targets[@]}"; do
  log=$build/fuzz-$t.log
  echo "== $t: ${seconds}s (log: $log)"
  if tests/fuzz/run_target.sh libfuzzer "$build/tests/fuzz/fuzz_$t" "$t" \
      tests/fuzz/gen_seeds.py tests/vectors/wgautomesh-v1.json \
      "$build/fuzz-corpus/$t" >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed=1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
    "$log" || true
  echo "$t: $status"
done
exit $failed
