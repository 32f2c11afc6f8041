#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Runs one fuzz target on a fresh seed corpus made from the vectors.
#
# Usage: run_target.sh libfuzzer|replay EXE TARGET GEN_SEEDS VECTORS [CORPUS]
#   libfuzzer: runs EXE for $WGAM_FUZZ_SECONDS (default 60) on CORPUS (a
#              temporary directory unless given) seeded with the vectors;
#   replay:    runs the replay driver on the seeds ($WGAM_FUZZ_RUNS mutated
#              inputs, bounded by $WGAM_FUZZ_SECONDS).
# A crash leaves its input in $WGAM_FUZZ_ARTIFACTS (default ./fuzz-artifacts).
set -eu

mode=$1 exe=$2 target=$3 gen=$4 vectors=$5 corpus=${6:-}
seconds=${WGAM_FUZZ_SECONDS:-60}
artifacts=${WGAM_FUZZ_ARTIFACTS:-$PWD/fuzz-artifacts}
tmp=$(mktemp -d /tmp/wgam-fuzz-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$artifacts"
python3 "$gen" "$vectors" "$tmp/seeds"
case $mode in
libfuzzer)
  if [ -z "$corpus" ]; then
    corpus=$tmp/corpus
  fi
  mkdir -p "$corpus"
  # -use_value_profile helps with the length and tag comparisons of the
  # decoders; -max_len covers a full datagram plus a script header.
  "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=8192 -use_value_profile=1 -print_final_stats=1 \
    -error_exitcode=1 -timeout_exitcode=1 \
    -artifact_prefix="$artifacts/$target-" "$corpus" "$tmp/seeds/$target"
  ;;
replay)
  WGAM_FUZZ_SECONDS=$seconds WGAM_FUZZ_CRASH_DIR=$artifacts \
    "$exe" "$tmp/seeds/$target"
  ;;
*)
  echo "usage: $0 libfuzzer|replay EXE TARGET GEN_SEEDS VECTORS [CORPUS]" >&2
  exit 2
  ;;
esac
