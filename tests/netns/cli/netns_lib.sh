# SPDX-License-Identifier: MIT
# Shared by the daemon's namespace tests (sourced, bash).

# Exits 77 unless we are root with ip, wg, wireguard-go and network
# namespaces.
require_netns_wg() {
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root"
    exit 77
  fi
  for t in ip wg wireguard-go; do
    if ! command -v $t >/dev/null; then
      echo "SKIP: $t not found"
      exit 77
    fi
  done
  if ! ip netns list >/dev/null 2>&1; then
    echo "SKIP: no ip netns"
    exit 77
  fi
}

# Stops the processes this test started (the PIDS array), and waits.
stop_pids() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null
  done
}

# The end of a test's clean-up: on failure the tail of every log in $TMP,
# then $TMP goes and the test exits with RC.
finish() {
  local rc=$1
  if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
    for f in "$TMP"/*.log; do
      [ -f "$f" ] || continue
      echo "---- $f (last 40 lines)"
      tail -n 40 "$f"
    done
  fi
  rm -rf "$TMP"
  exit "$rc"
}

fail() {
  echo "FAIL: $*"
  exit 1
}
