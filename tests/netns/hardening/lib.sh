# SPDX-License-Identifier: MIT
# Shared by the scripts of tests/netns/hardening: namespaces and
# wireguard-go interfaces named hdn<ID>..., cleaned up on every exit path.
# Source it, then call hdn_init.

HDN_PIDS=()
HDN_NETNS=()

hdn_skip() {
  echo "SKIP: $*"
  exit 77
}

fail() {
  echo "FAIL: $*"
  exit 1
}

hdn_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${HDN_PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  # A process that blocks SIGTERM and is stuck (a daemon waiting on a FIFO
  # before its loop runs) gets SIGKILL after 5 s; so does anything else
  # still running inside the namespaces this script made.
  for _ in $(seq 50); do
    alive=0
    for p in "${HDN_PIDS[@]}"; do
      kill -0 "$p" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${HDN_PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  for ns in "${HDN_NETNS[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$p" 2>/dev/null
    done
    ip netns del "$ns" 2>/dev/null
  done
  rm -f /var/run/wireguard/hdn"$ID"*.sock
  if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
    for f in "$TMP"/*.log; do
      [ -f "$f" ] || continue
      echo "---- $f (last 30 lines)"
      tail -n 30 "$f"
    done
  fi
  rm -rf "$TMP"
  exit "$rc"
}

# Checks the environment, picks the run's ID and temporary directory.
hdn_init() {
  [ "$(id -u)" = 0 ] || hdn_skip "needs root"
  for t in ip wg wireguard-go python3; do
    command -v $t >/dev/null || hdn_skip "$t not found"
  done
  ip netns list >/dev/null 2>&1 || hdn_skip "no ip netns"
  # Interface names are at most 15 characters: hdn + 5 digits + a suffix.
  ID=$(( ($$ + RANDOM) % 100000 ))
  TMP=$(mktemp -d /tmp/hdn-XXXXXX)
  trap hdn_cleanup EXIT
  trap 'exit 1' INT TERM
  printf 'hardening-secret\n' >"$TMP/secret"
  chmod 600 "$TMP/secret"
}

hdn_netns_add() { # NAME
  ip netns add "$1" || fail "ip netns add $1"
  HDN_NETNS+=("$1")
  ip -n "$1" link set lo up
}

# Starts wireguard-go for IFACE in NS, with private key KEY, listen port
# 51820 and address ADDR; sets WGPID.
hdn_start_wg() { # NS IFACE KEY ADDR
  rm -f "/var/run/wireguard/$2.sock"
  ip netns exec "$1" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$2" \
    >>"$TMP/$2-wg.log" 2>&1 &
  WGPID=$!
  HDN_PIDS+=($WGPID)
  for _ in $(seq 200); do
    [ -S "/var/run/wireguard/$2.sock" ] && break
    sleep 0.05
  done
  [ -S "/var/run/wireguard/$2.sock" ] || fail "wireguard-go $2 did not start"
  ip netns exec "$1" wg set "$2" private-key "$3" listen-port 51820 ||
    fail "wg set $2"
  ip -n "$1" addr add "$4" dev "$2"
  ip -n "$1" link set "$2" up
}

# Waits until FILE contains PATTERN (grep -E), up to SECONDS.
hdn_wait_log() { # FILE PATTERN SECONDS
  local end=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -le "$end" ]; do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
