#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The whole test suite on a fresh Debian 12 machine, as root:
#   sudo ./tests/run.sh
# installs the packages the build and the tests need, builds, and runs every
# suite (unit, sim, netns, soak, vm, fuzz), then the unit and sim suites
# again in an ASan+UBSan build. WGAM_NO_APT=1 skips the package
# installation; WGAM_SUITES="unit sim" runs only those suites.
set -eu
cd "$(dirname "$0")/.."

packages="meson ninja-build pkg-config gcc clang libclang-rt-14-dev clang-format git
  libsodium-dev check libcjson-dev libnl-3-dev libnl-genl-3-dev
  libminiupnpc-dev miniupnpc miniupnpd wireguard-tools wireguard-go nftables
  iproute2 procps kmod python3 qemu-system-x86 busybox-static valgrind conntrack
  systemd groff-base man-db make nebula python3-matplotlib"

if [ "${WGAM_NO_APT:-0}" != 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: run as root (it installs packages and builds network namespaces)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $packages
fi

suites=${WGAM_SUITES:-unit sim netns soak vm fuzz}
build=${WGAM_BUILD:-build-test}
args=""
for s in $suites; do args="$args --suite $s"; done

start=$(date +%s)
passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs one meson test command and adds its summary to the totals; a
# failing phase does not stop the others (the exit status says it).
tally() {
  "$@" 2>&1 | tee "$log" || true
  ok=$(sed -n 's/^Ok: *\([0-9]*\) *$/\1/p' "$log" | tail -n 1)
  xf=$(sed -n 's/^Expected Fail: *\([0-9]*\) *$/\1/p' "$log" | tail -n 1)
  bad=$(sed -n 's/^Fail: *\([0-9]*\) *$/\1/p' "$log" | tail -n 1)
  up=$(sed -n 's/^Unexpected Pass: *\([0-9]*\) *$/\1/p' "$log" | tail -n 1)
  to=$(sed -n 's/^Timeout: *\([0-9]*\) *$/\1/p' "$log" | tail -n 1)
  sk=$(sed -n 's/^Skipped: *\([0-9]*\) *$/\1/p' "$log" | tail -n 1)
  if [ -z "$ok$bad" ]; then
    failed=$((failed + 1)) # the command failed before running its tests
    return
  fi
  passed=$((passed + ${ok:-0} + ${xf:-0}))
  failed=$((failed + ${bad:-0} + ${up:-0} + ${to:-0}))
  skipped=$((skipped + ${sk:-0}))
}

meson setup "$build" --wipe >/dev/null 2>&1 || meson setup "$build"
ninja -C "$build"
# shellcheck disable=SC2086
tally meson test -C "$build" --print-errorlogs $args

# The engine suites under valgrind (no fork, so every leak is seen; the
# codec suites, random-input heavy, run under ASan below instead).
if command -v valgrind >/dev/null; then
  tally meson test -C "$build" --print-errorlogs --setup valgrind \
    blake3 mesh relay hardening-lib
fi

# The same code under AddressSanitizer and UndefinedBehaviorSanitizer.
asan=${build}-asan
meson setup "$asan" --wipe -Db_sanitize=address,undefined -Db_lundef=false \
  >/dev/null 2>&1 || meson setup "$asan" -Db_sanitize=address,undefined -Db_lundef=false
ninja -C "$asan"
tally env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C "$asan" --print-errorlogs --suite unit --suite sim

# Every fuzz target for WGAM_FUZZ_SECONDS (60) with libFuzzer, ASan and
# UBSan (the fuzz suite above replays the seeds with the default compiler);
# each target counts as one test.
case " $suites " in
*" fuzz "*)
  if command -v clang >/dev/null; then
    BUILD=${build}-fuzz ./tools/fuzz.sh "${WGAM_FUZZ_SECONDS:-60}" 2>&1 |
      tee "$log" || true
    passed=$((passed + $(grep -c ': ok$' "$log" || true)))
    failed=$((failed + $(grep -c ': CRASH$' "$log" || true)))
  fi ;;
esac

echo "tests/run.sh: $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
