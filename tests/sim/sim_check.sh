# SPDX-License-Identifier: MIT
# Sourced by the simulator's bound scripts (heal_within.sh,
# relay_share.sh): sim_run SIM ARGS... runs the simulator with --quiet
# --check and keeps its result line in $sim_last (on failure, prints the
# tail and exits 1); sim_field NAME prints that field of the line.
sim_run() {
  sim_out=$("$@" --quiet --check 2>/dev/null) || {
    printf '%s\n' "$sim_out" | tail -n 3 >&2
    exit 1
  }
  sim_last=$(printf '%s\n' "$sim_out" | tail -n 1)
}

sim_field() {
  printf '%s\n' "$sim_last" | tr ' ' '\n' | sed -n "s/^$1=//p"
}
