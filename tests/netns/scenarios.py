#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end scenarios of issue 4: real wgautomesh daemons, wireguard-go,
nftables NAT routers, all in network namespaces (see rig.py).

    scenarios.py mesh|restart|roaming|killstate|symmetric [--policy fast|classic] [--keep]

WGAM_BIN names the daemon executable. Exit 0 pass, 1 fail, 77 skip (not root,
no netns, no wireguard-go). Every scenario prints its figures; the only time
bound asserted is a generous one (60 s) to fail a hang.
"""

import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rig as R  # noqa: E402

HANG = 60.0

# Timer presets, mirroring lib/settings.c (seconds): used only to compute
# the bound on endpoint changes in the symmetric NAT scenario.
POLICY_TIMERS = {
    "fast": {"try": 6, "backoff_min": 10, "backoff_max": 120},
    "classic": {"try": 30, "backoff_min": 30, "backoff_max": 30},
}

SIX = ("pub:a pub:b nat:r1 nat:r2 nat:r3 "
       "host:c@r1 host:d@r2 host:e@r3 host:f@r3")


def fig(name, value, unit=""):
    """One figure per line, easy to grep: FIGURE name = value unit."""
    if isinstance(value, float):
        value = "%.2f" % value
    print("FIGURE %s = %s%s" % (name, value, (" " + unit) if unit else ""))
    sys.stdout.flush()


def say(msg):
    print(msg)
    sys.stdout.flush()


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def fmt_pairs(pairs):
    return ", ".join("%s-%s" % (a.name, b.name) for a, b in pairs)


def wait_for(pred, timeout, step=0.25):
    """Polls @pred until true or @timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def form_mesh(rig, label="mesh", timeout=None):
    """Waits until every pair pings over the mesh addresses. The clock starts
    when the last daemon was spawned. Returns seconds to the full mesh."""
    timeout = timeout or HANG
    t0 = time.monotonic()
    pairs = rig.pairs()
    got = rig.wait_pairs(pairs, timeout, stop=lambda: _any_daemon_dead(rig))
    rig.check_daemons_alive()
    missing = [p for p in pairs if p not in got]
    if got:
        times = sorted(((t - t0, p) for p, t in got.items()), key=lambda x: x[0])
        say("%s: %d/%d pairs ping; first %.2f s (%s), last %.2f s (%s)" % (
            label, len(got), len(pairs), times[0][0], fmt_pairs([times[0][1]]),
            times[-1][0], fmt_pairs([times[-1][1]])))
    expect(not missing, "%s: pairs not pinging after %.0f s: %s" % (
        label, timeout, fmt_pairs(missing)))
    return max(got.values()) - t0


def _any_daemon_dead(rig):
    return any(n.daemon is not None and n.daemon.poll() is not None for n in rig.nodes)


def start_six(policy, keep=False):
    """Scenario 1's topology, interfaces up, configs with only the public
    endpoints, daemons started. Returns the rig."""
    rig = R.Rig(SIX, keep=keep)
    rig.policy = policy
    rig.start_all_wg()
    rig.write_configs(endpoints=rig.public_endpoints(), policy=policy)
    rig.start_daemons()
    return rig


def all_connected_in_status(rig, nodes=None, exclude=()):
    """True when every node's `status` shows every other node connected."""
    bad = []
    for n in nodes or rig.nodes:
        st = rig.status(n)
        for p in st["peers"]:
            other = next((o for o in rig.nodes if o.pubkey == p["pubkey"]), None)
            if other is None or other is n or (n, other) in exclude:
                continue
            if not p.get("connected"):
                bad.append((n, other))
    return bad


def print_status_table(rig, nodes=None):
    for n in nodes or rig.nodes:
        st = rig.status(n)
        say("status of %s (%s, external %s):" % (n.name, n.mesh_ip,
                                                  st.get("external_endpoint")))
        for p in st["peers"]:
            other = next((o.name for o in rig.nodes if o.pubkey == p["pubkey"]), "?")
            say("   %-2s %-21s %-8s %-9s hs_age=%-5s tries=%-3s changes=%s" % (
                other, p.get("endpoint"), p.get("source"), p.get("state"),
                p.get("handshake_age"), p.get("tries"), p.get("endpoint_changes")))


# --- 1 ----------------------------------------------------------------------

def check_direct_and_lan(rig, deadline):
    a, b, c, d, e, f = (rig.node(x) for x in "abcdef")
    # c and d sit behind different NATs: a ping between them proves a direct
    # tunnel (WireGuard never relays), and their endpoints must be each
    # other's NAT-ed public address.
    def direct():
        cd, dc = rig.endpoint_of(c, d), rig.endpoint_of(d, c)
        return (cd and cd.split(":")[0] == d.router.wan_addr and
                dc and dc.split(":")[0] == c.router.wan_addr) and (cd, dc)
    res = wait_for(direct, max(1, deadline - time.monotonic()))
    say("c -> d endpoint %s, d -> c endpoint %s (NAT-ed addresses %s, %s)" % (
        rig.endpoint_of(c, d), rig.endpoint_of(d, c), d.router.wan_addr, c.router.wan_addr))
    expect(res, "c and d are not connected directly through their NATs")

    def lan():
        ef, fe = rig.endpoint_of(e, f), rig.endpoint_of(f, e)
        return (ef and ef.startswith(f.router.lan_net + ".") and
                fe and fe.startswith(e.router.lan_net + ".")) and (ef, fe)
    t = time.monotonic()
    res = wait_for(lan, max(1, deadline - t))
    say("e -> f endpoint %s, f -> e endpoint %s (LAN %s.0/24)" % (
        rig.endpoint_of(e, f), rig.endpoint_of(f, e), e.router.lan_net))
    expect(res, "the LAN pair e-f does not use LAN endpoints")


def scenario_mesh(policy, keep):
    rig = start_six(policy, keep)
    try:
        t0 = time.monotonic()
        t_mesh = form_mesh(rig, "six nodes")
        fig("mesh_time_%s" % policy, t_mesh, "s")
        check_direct_and_lan(rig, t0 + HANG)
        # status must agree with the truth (device read every 2 s in fast)
        bad = wait_for(lambda: not all_connected_in_status(rig), 15, 0.5)
        print_status_table(rig)
        expect(bad, "status shows pairs not connected: %s" %
               fmt_pairs(all_connected_in_status(rig)))
        # and the mesh stays: every pair answers 3 probes in a row now
        again = rig.wait_pairs(rig.pairs(), 10, need=3)
        expect(len(again) == 15, "mesh did not hold: %s" %
               fmt_pairs([p for p in rig.pairs() if p not in again]))
        changes = sum(rig.status(n)["stats"].get("endpoint_changes", 0) for n in rig.nodes)
        fig("endpoint_changes_total", changes)
        return True
    except BaseException:
        rig.dump_logs()
        raise
    finally:
        rig.cleanup()


# --- 2 ----------------------------------------------------------------------

def scenario_restart(policy, keep):
    rig = start_six(policy, keep)
    try:
        form_mesh(rig, "first start")
        # let gossip settle so every state file knows every endpoint
        wait_for(lambda: not all_connected_in_status(rig), 15, 0.5)
        rig.stop_daemons()
        for n in rig.nodes:
            expect(os.path.exists(n.state_path), "%s wrote no state file" % n.name)
            out = subprocess.run([rig.wgam, "decode", "--state", n.state_path],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            expect(out.returncode == 0, "%s: state file does not decode: %s" % (
                n.name, out.stderr.strip()))
            say("state of %s: %d bytes" % (n.name, os.path.getsize(n.state_path)))
        # A reboot: fresh interfaces with no peers, and every configured
        # endpoint wrong (addresses nobody has).
        for n in rig.nodes:
            rig.stop_wg(n)
        for n in rig.nodes:
            rig.start_wg(n)
        wrong = {}
        for k, n in enumerate(x for x in rig.nodes if x.kind == "pub"):
            wrong[n] = "198.51.100.%d:%d" % (200 + k, R.LISTEN_PORT)
        rig.write_configs(endpoints=wrong, policy=policy)
        say("restarting with wrong configured endpoints: %s" % ", ".join(
            "%s=%s" % (n.name, ep) for n, ep in wrong.items()))
        rig.start_daemons()
        t = form_mesh(rig, "restart from state")
        fig("restart_mesh_time_%s" % policy, t, "s")
        a = rig.node("a")
        srcs = {}
        for n in rig.nodes:
            if n is a:
                continue
            p = rig.peer_status(n, a)
            srcs[n.name] = (p.get("endpoint"), p.get("source"))
            expect(p.get("endpoint", "").startswith(a.addr + ":") if p.get("endpoint") else False,
                   "%s uses %s for a, not its real address %s" % (n.name, p.get("endpoint"), a.addr))
        say("endpoint and source of a as seen by each node: %s" % srcs)
        return True
    except BaseException:
        rig.dump_logs()
        raise
    finally:
        rig.cleanup()


# --- 3 ----------------------------------------------------------------------

def reconnect(rig, moved, label):
    """Every other node -> @moved must ping again; probes go towards the moved
    node so that its own traffic does not do the daemons' work."""
    t0 = time.monotonic()
    pairs = [(n, moved) for n in rig.nodes if n is not moved]
    got = rig.wait_pairs(pairs, HANG, stop=lambda: _any_daemon_dead(rig))
    rig.check_daemons_alive()
    for p in pairs:
        say("  %s -> %s: %s" % (p[0].name, moved.name,
                                "%.2f s" % (got[p] - t0) if p in got else "NO"))
    missing = [p for p in pairs if p not in got]
    expect(not missing, "%s: not reconnected after %.0f s: %s" % (label, HANG, fmt_pairs(missing)))
    return max(got.values()) - t0


def scenario_roaming(policy, keep):
    rig = start_six(policy, keep)
    try:
        form_mesh(rig, "initial mesh")
        wait_for(lambda: not all_connected_in_status(rig), 15, 0.5)
        figures = {}
        # (a) a public node gets a new address
        a = rig.node("a")
        old = a.addr
        rig.move_public(a, "198.51.100.110")
        say("(a) public node a moved %s -> %s at rig time %.3f" % (
            old, a.addr, time.monotonic() - R.T_START))
        t = reconnect(rig, a, "(a) public node moved")
        figures["a"] = t
        fig("roam_public_reconnect_%s" % policy, t, "s")
        eps = {n.name: rig.endpoint_of(n, a) for n in rig.nodes if n is not a}
        say("  endpoints for a now: %s" % eps)
        # (b) the ISP gives NAT router r1 a new WAN address; c sits behind it
        c = rig.node("c")
        r1 = c.router
        old = r1.wan_addr
        rig.move_router(r1, "203.0.113.110")
        say("(b) NAT router r1 (in front of c) moved %s -> %s at rig time %.3f" % (
            old, r1.wan_addr, time.monotonic() - R.T_START))
        t = reconnect(rig, c, "(b) NAT router moved")
        figures["b"] = t
        fig("roam_nat_reconnect_%s" % policy, t, "s")
        eps = {n.name: rig.endpoint_of(n, c) for n in rig.nodes if n is not c}
        say("  endpoints for c now: %s" % eps)
        for name, ep in eps.items():
            if name in ("e", "f", "d", "a", "b"):
                expect(ep and ep.startswith(r1.wan_addr + ":"),
                       "%s still uses %s for c" % (name, ep))
        # the whole mesh is whole again
        form_mesh(rig, "after roaming", timeout=HANG)
        return figures
    except BaseException:
        rig.dump_logs()
        raise
    finally:
        rig.cleanup()


# --- 4 ----------------------------------------------------------------------

def scenario_killstate(policy, keep, rounds=50):
    rig = R.Rig("pub:a pub:b nat:r1 nat:r2 host:c@r1 host:d@r2", keep=keep)
    try:
        rig.policy = policy
        rig.start_all_wg()
        rig.write_configs(endpoints=rig.public_endpoints(), policy=policy)
        rig.start_daemons()
        form_mesh(rig, "4 nodes")
        c = rig.node("c")
        wait_for(lambda: not all_connected_in_status(rig, [c]), 15, 0.5)
        rig.stop_daemon(c)
        expect(os.path.exists(c.state_path), "c wrote no state file at exit")
        size0 = os.path.getsize(c.state_path)
        say("c's state file after a clean exit: %d bytes" % size0)
        killed_running = 0
        for i in range(rounds):
            p = rig.start_daemon(c, verbose=False)
            time.sleep(random.uniform(0.05, 0.4))
            # SIGTERM makes it write the state file; SIGKILL lands in the
            # middle of that write (0-4 ms later) or just before/after it.
            p.send_signal(signal.SIGTERM)
            time.sleep(random.uniform(0, 0.004))
            if p.poll() is None:
                killed_running += 1
            p.send_signal(signal.SIGKILL)
            p.wait()
            c.daemon = None
            expect(os.path.exists(c.state_path), "round %d: state file gone" % i)
            out = subprocess.run([rig.wgam, "decode", "--state", c.state_path],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            expect(out.returncode == 0, "round %d: state file does not load (exit %d): %s %s" % (
                i, out.returncode, out.stdout.strip()[:200], out.stderr.strip()[:200]))
            leftovers = [x for x in os.listdir(c.dir) if x.startswith("state.bin") and x != "state.bin"]
            if i % 10 == 9:
                say("round %d: state %d bytes, decodes; temp files left: %s" % (
                    i + 1, os.path.getsize(c.state_path), leftovers or "none"))
        fig("kill9_rounds", rounds)
        # Not an assertion (the file itself always loaded), but worth seeing:
        # temporary files a killed write leaves behind.
        fig("kill9_temp_files_left", len([x for x in os.listdir(c.dir)
                                          if x.startswith("state.bin") and x != "state.bin"]))
        fig("kill9_while_running", killed_running)
        # Rejoin from scratch: fresh interface, so the daemon must configure
        # everything from its config and the state file that survived.
        rig.stop_wg(c)
        rig.start_wg(c)
        rig.start_daemon(c)
        t0 = time.monotonic()
        pairs = [(n, c) for n in rig.nodes if n is not c]
        got = rig.wait_pairs(pairs, HANG, stop=lambda: _any_daemon_dead(rig))
        rig.check_daemons_alive()
        expect(len(got) == len(pairs), "restarted c did not rejoin: missing %s" %
               fmt_pairs([p for p in pairs if p not in got]))
        fig("kill9_rejoin_time", max(got.values()) - t0, "s")
        return True
    except BaseException:
        rig.dump_logs()
        raise
    finally:
        rig.cleanup()


# --- 5 ----------------------------------------------------------------------

def scenario_symmetric(policy, keep, warmup=None, window=None):
    timers = POLICY_TIMERS[policy]
    warmup = warmup if warmup is not None else 3 * timers["try"] + timers["backoff_min"]
    window = window if window is not None else 4 * timers["backoff_min"]
    rig = R.Rig("pub:a pub:b sym:r1 sym:r2 host:s1@r1 host:s2@r2", keep=keep)
    try:
        rig.policy = policy
        rig.start_all_wg()
        rig.write_configs(endpoints=rig.public_endpoints(), policy=policy)
        rig.start_daemons()
        t0 = time.monotonic()
        s1, s2 = rig.node("s1"), rig.node("s2")
        good = [p for p in rig.pairs() if set(p) != {s1, s2}]
        got = rig.wait_pairs(good, HANG, stop=lambda: _any_daemon_dead(rig))
        rig.check_daemons_alive()
        expect(len(got) == len(good), "rest of the mesh broken: %s" %
               fmt_pairs([p for p in good if p not in got]))
        fig("sym_rest_of_mesh_time", max(got.values()) - t0, "s")
        # first round of candidates for s1-s2, then observe
        time.sleep(max(0, t0 + warmup - time.monotonic()))
        base = {n: rig.peer_status(n, o)["endpoint_changes"] for n, o in ((s1, s2), (s2, s1))}
        dev = {s1: [rig.endpoint_of(s1, s2)], s2: [rig.endpoint_of(s2, s1)]}
        kmax = 1
        tw = time.monotonic()
        while time.monotonic() - tw < window:
            for n, o in ((s1, s2), (s2, s1)):
                ep = rig.endpoint_of(n, o)
                if ep != dev[n][-1]:
                    dev[n].append(ep)
                p = rig.peer_status(n, o)
                kmax = max(kmax, len(p.get("known") or []) + (1 if p.get("lan_endpoint") else 0))
            time.sleep(0.5)
        rig.check_daemons_alive()
        # One change per round and candidate at most: rounds start no more
        # often than once per backoff_min after the first round.
        rounds = int(window // timers["backoff_min"]) + 1
        bound = kmax * rounds
        for n, o in ((s1, s2), (s2, s1)):
            p = rig.peer_status(n, o)
            delta = p["endpoint_changes"] - base[n]
            seen = len(dev[n]) - 1
            say("%s -> %s: state %s, connected %s, endpoint %s, candidates known %d; "
                "endpoint_changes +%d (status), %d seen on the device in %.0f s; bound %d" % (
                    n.name, o.name, p["state"], p["connected"], p.get("endpoint"),
                    len(p.get("known") or []), delta, seen, window, bound))
            fig("sym_endpoint_changes_%s" % n.name, delta)
            expect(not p["connected"], "%s shows %s connected" % (n.name, o.name))
            expect(p["state"] != "connected", "%s: state connected" % n.name)
            expect(delta <= bound, "%s: %d endpoint changes in %.0f s > bound %d (flapping)" % (
                n.name, delta, window, bound))
            expect(seen <= bound, "%s: device endpoint changed %d times > bound %d" % (
                n.name, seen, bound))
        expect(not rig.wait_pairs([(s1, s2)], 3), "s1 and s2 ping: is the NAT really symmetric?")
        # the rest of the mesh is still whole
        again = rig.wait_pairs(good, 15, need=2)
        expect(len(again) == len(good), "rest of the mesh degraded: %s" %
               fmt_pairs([p for p in good if p not in again]))
        print_status_table(rig, [s1, s2])
        return True
    except BaseException:
        rig.dump_logs()
        raise
    finally:
        rig.cleanup()


SCENARIOS = {
    "mesh": scenario_mesh,
    "restart": scenario_restart,
    "roaming": scenario_roaming,
    "killstate": scenario_killstate,
    "symmetric": scenario_symmetric,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in SCENARIOS:
        print(__doc__)
        return 2
    policy = "fast"
    if "--policy" in argv:
        policy = argv[argv.index("--policy") + 1]
    keep = "--keep" in argv
    return R.run_test("%s (policy %s)" % (argv[1], policy),
                      lambda: SCENARIOS[argv[1]](policy, keep))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
