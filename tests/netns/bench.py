#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark (not a test): time to full mesh and reconnection after roaming,
our fast policy against the original's classic timers, in the same run.

    sudo WGAM_BIN=build/cli/wgautomesh tests/netns/bench.py [--runs 5]
         [--policies fast,classic] [--no-roam] [--join] [--mesh-cap 180] [--roam-cap 400]

Mesh: scenario 1's six nodes (2 public, 2 behind separate cone NATs, 2 on one
LAN behind a third); the clock starts when the last daemon was spawned and
stops when all 15 pairs have answered an ICMP echo over their mesh addresses.
Roaming: scenario 3, (a) a public node renumbered, (b) a NAT router's WAN
address changed; the clock stops when every other node reaches the moved one.
--join: also a NAT-ed node joining a running mesh of the five others (no
start-up race with peers still being configured).
A run that does not finish within the cap is printed as ">cap".
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rig as R  # noqa: E402
import scenarios as S  # noqa: E402


def arg(argv, name, default):
    if name in argv:
        return argv[argv.index(name) + 1]
    return default


def mesh_once(policy, cap):
    rig = S.start_six(policy)
    try:
        t0 = time.monotonic()
        got = rig.wait_pairs(rig.pairs(), cap, stop=lambda: S._any_daemon_dead(rig))
        rig.check_daemons_alive()
        if len(got) < 15:
            return None
        return max(got.values()) - t0
    finally:
        rig.cleanup()


def join_once(policy, cap):
    """A node behind NAT (d) joins a running mesh: five daemons run and are
    meshed; d's daemon starts; the clock stops when d reaches all five.
    Unlike a cold start of every node, no peer is still being configured."""
    rig = R.Rig(S.SIX)
    try:
        rig.policy = policy
        rig.start_all_wg()
        rig.write_configs(endpoints=rig.public_endpoints(), policy=policy)
        d = rig.node("d")
        others = [n for n in rig.nodes if n is not d]
        for n in others:
            rig.start_daemon(n)
        got = rig.wait_pairs(rig.pairs(others), cap)
        if len(got) < len(rig.pairs(others)):
            return None
        rig.start_daemon(d)
        t0 = time.monotonic()
        pairs = [(d, n) for n in others]
        got = rig.wait_pairs(pairs, cap)
        if len(got) < len(pairs):
            return None
        return max(got.values()) - t0
    finally:
        rig.cleanup()


def roam_once(policy, cap):
    rig = S.start_six(policy)
    res = {"a": None, "b": None}
    try:
        got = rig.wait_pairs(rig.pairs(), cap)
        if len(got) < 15:
            return res
        S.wait_for(lambda: not S.all_connected_in_status(rig), 40, 0.5)
        a = rig.node("a")
        rig.move_public(a, "198.51.100.110")
        t0 = time.monotonic()
        pairs = [(n, a) for n in rig.nodes if n is not a]
        got = rig.wait_pairs(pairs, cap)
        if len(got) == len(pairs):
            res["a"] = max(got.values()) - t0
        else:
            return res
        c = rig.node("c")
        rig.move_router(c.router, "203.0.113.110")
        t0 = time.monotonic()
        pairs = [(n, c) for n in rig.nodes if n is not c]
        got = rig.wait_pairs(pairs, cap)
        if len(got) == len(pairs):
            res["b"] = max(got.values()) - t0
        return res
    finally:
        rig.cleanup()


def show(v, cap):
    return ">%.0f" % cap if v is None else "%.2f" % v


def summary(vals, cap):
    """median and max; a run that hit the cap counts as the cap (so the
    median is a lower bound when any run failed)."""
    xs = [cap if v is None else v for v in vals]
    return statistics.median(xs), max(xs), sum(v is None for v in vals)


def main(argv):
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    R.skip_unless_possible()
    if not os.environ.get("WGAM_BIN"):
        print("set WGAM_BIN to the daemon executable")
        return 1
    runs = int(arg(argv, "--runs", 5))
    policies = arg(argv, "--policies", "fast,classic").split(",")
    mesh_cap = float(arg(argv, "--mesh-cap", 180))
    roam_cap = float(arg(argv, "--roam-cap", 400))
    S.HANG = max(mesh_cap, roam_cap)
    print("wgautomesh netns benchmark: %d runs per policy, daemon %s" % (
        runs, os.environ["WGAM_BIN"]))
    mesh = {}
    for pol in policies:
        mesh[pol] = []
        for i in range(runs):
            t = mesh_once(pol, mesh_cap)
            mesh[pol].append(t)
            print("mesh %-7s run %d: %s s" % (pol, i + 1, show(t, mesh_cap)))
            sys.stdout.flush()
    join = {}
    if "--join" in argv:
        for pol in policies:
            join[pol] = []
            for i in range(runs):
                t = join_once(pol, mesh_cap)
                join[pol].append(t)
                print("join %-7s run %d: %s s" % (pol, i + 1, show(t, mesh_cap)))
                sys.stdout.flush()
    roam = {}
    if "--no-roam" not in argv:
        for pol in policies:
            roam[pol] = roam_once(pol, roam_cap)
            print("roam %-7s: (a) public node moved %s s, (b) NAT router moved %s s" % (
                pol, show(roam[pol]["a"], roam_cap), show(roam[pol]["b"], roam_cap)))
            sys.stdout.flush()
    print()
    print("%-8s %-14s %-10s %-10s %-8s" % ("policy", "figure", "median s", "max s", "capped"))
    med = {}
    for pol in policies:
        m, mx, capped = summary(mesh[pol], mesh_cap)
        med[pol] = m
        print("%-8s %-14s %-10.2f %-10.2f %d/%d" % (pol, "full mesh", m, mx, capped, runs))
    for pol in join:
        m, mx, capped = summary(join[pol], mesh_cap)
        print("%-8s %-14s %-10.2f %-10.2f %d/%d" % (pol, "join (NAT-ed)", m, mx, capped, runs))
    for pol in roam:
        for k, label in (("a", "roam public"), ("b", "roam NAT")):
            print("%-8s %-14s %-10s %-10s" % (pol, label, show(roam[pol][k], roam_cap), ""))
    if "fast" in med and "classic" in med and med["classic"] > 0:
        print("ratio fast/classic, median time to full mesh: %.3f" % (med["fast"] / med["classic"]))
    if "fast" in roam and "classic" in roam:
        for k, label in (("a", "public node"), ("b", "NAT router")):
            f, c = roam["fast"][k], roam["classic"][k]
            if f is not None:
                cc = roam_cap if c is None else c
                print("ratio fast/classic, reconnection after %s moved: %s%.3f" % (
                    label, "<" if c is None else "", f / cc))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
