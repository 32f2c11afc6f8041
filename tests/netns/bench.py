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

    sudo WGAM_BIN=build/cli/wgautomesh tests/netns/bench.py five [--runs 5]
         [--cap 60] [--cpu-minutes 3] [--settle 60] [--cpu-log-level info|debug]
         [--no-cpu | --cpu-only] [--keep] [--random-moment [--seed N]]
         [--no-roam-watch]

The speed rows, in five nodes (a public; b and c on one LAN behind the cone
NAT r1; d behind r2; e behind r3; only a's endpoint configured; daemons
started together): start -> all 20 directed WireGuard handshakes (wg show
dumps polled); start -> all 10 pairs ping (every pair probed every 0.3 s);
r2's WAN address changes -> every node pings d; r3 reboots (conntrack
flushed, external ports moved to 31000-31999) -> every pair pings again
(probes towards the moved node, whose own traffic would otherwise do the
daemons' work). Both come right after the mesh settled (every status shows
every peer connected), the same moment in the moved node's probe rounds
each run; with --random-moment, a seeded random 0-4 s later (one round).
Then, on a fresh mesh after --settle seconds, the CPU of each daemon over
--cpu-minutes (all its threads, /proc/PID/task/*/schedstat),
scaled to an hour, and how many times a minute its threads were put on a
CPU (about its wake-ups, each one a context switch); the daemons log at
--cpu-log-level (default info, as in production; the other rows run them
with -v and "log_level": "debug"). --no-roam-watch: every daemon with
"roam_watch": false (it reads every device_interval and probes every
probe_idle).

    sudo WGAM_BIN=build/cli/wgautomesh tests/netns/bench.py relay [--runs 5]
         [--cap 30] [--direct-cap 90]

The relay row: a public relay ("relay": true on its peer entry in every
config), b and c behind the cone NAT r1, d and e behind the symmetric NATs
r2 and r3: start -> every pair pings (6 of the 10 pairs need the relay);
then r2 and r3 become cone NATs (postrouting flushed, plain masquerade,
conntrack -F) -> every directed pair that was relayed has a direct
handshake on its own peer entry again. "never" when the cap passed.

    sudo tests/netns/bench.py nebula [--runs 5] [--cap 30]

Side by side: Debian's nebula (1.6.x) in the same topologies, a as the
lighthouse (its address the only one configured) and, where said, as
nebula's relay: start -> all 10 pairs ping, in FIVE (cone NATs) without
and with the relay, and in the relay topology (symmetric NATs) with it.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import threading
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


# --- the five-node speed rows ------------------------------------------------

FIVE = "pub:a nat:r1 nat:r2 nat:r3 host:b@r1 host:c@r1 host:d@r2 host:e@r3"
RELAY5 = "pub:a nat:r1 sym:r2 sym:r3 host:b@r1 host:c@r1 host:d@r2 host:e@r3"
PING_INTERVAL = 0.3


class HandshakeWatch(threading.Thread):
    """Polls `wg show dump` of every node; records when each directed pair
    (node, peer) first shows a handshake (later than @since, wall clock)."""

    def __init__(self, rig, since=0, cond=None):
        super().__init__(daemon=True)
        self.rig = rig
        self.since = since
        self.cond = cond or (lambda node, other, entry: entry["handshake"] > self.since)
        self.first = {}
        self.done = threading.Event()
        self.want = [(n, o) for n in rig.nodes for o in rig.nodes if n is not o]

    def run(self):
        while not self.done.is_set() and len(self.first) < len(self.want):
            for n in self.rig.nodes:
                try:
                    dump = self.rig.wg_dump(n)
                except Exception:
                    continue
                t = time.monotonic()
                for o in self.rig.nodes:
                    e = dump.get(o.pubkey)
                    if o is not n and (n, o) not in self.first and e and self.cond(n, o, e):
                        self.first[(n, o)] = t
            time.sleep(0.01)

    def stop(self):
        self.done.set()
        self.join(10)


def settle(rig, timeout=20):
    """Waits until every node's status shows every peer connected."""
    S.wait_for(lambda: not S.all_connected_in_status(rig), timeout, 0.5)


def reboot_router(rig, r, ports="31000-31999"):
    """A NAT router that reboots (LAB.md): every mapping forgotten, and new
    mappings on another external port range."""
    rules = """
flush chain ip nat postrouting
add rule ip nat postrouting oifname "%s" meta l4proto udp masquerade to :%s
add rule ip nat postrouting oifname "%s" masquerade
""" % (r.wan, ports, r.wan)
    R.sh(["ip", "netns", "exec", r.ns, "nft", "-f", "-"], input=rules)
    R.sh(["ip", "netns", "exec", r.ns, "conntrack", "-F"], check=False)


def make_cone(rig, r):
    """A symmetric NAT turned into a port-restricted cone NAT (LAB.md)."""
    rules = """
flush chain ip nat postrouting
add rule ip nat postrouting oifname "%s" masquerade
""" % r.wan
    R.sh(["ip", "netns", "exec", r.ns, "nft", "-f", "-"], input=rules)
    R.sh(["ip", "netns", "exec", r.ns, "conntrack", "-F"], check=False)


def probe(rig, pairs, cap):
    """{pair: monotonic time of the first answer}, every pair probed every
    PING_INTERVAL seconds."""
    probes = [(a.ns, b.mesh_ip) for a, b in pairs]
    back = {(a.ns, b.mesh_ip): (a, b) for a, b in pairs}
    res = rig.prober.watch(probes, cap, interval=PING_INTERVAL,
                           stop=lambda: S._any_daemon_dead(rig))
    return {back[k]: t for k, t in res.items()}


def last_of(got, want, t0):
    return (max(got[p] for p in want) - t0) if all(p in got for p in want) else None


def five_once(cap, keep=False, rng=None):
    """One run of rows 1-4. Returns {row: seconds or None}. With @rng the
    WAN change and the reboot each come a random 0-4 s (one round of the
    moved node's probes) after the mesh settled, not right after it."""
    res = {"handshakes": None, "ping": None, "wan": None, "reboot": None}
    rig = R.Rig(FIVE, keep=keep)
    try:
        rig.start_all_wg()
        rig.write_configs(endpoints=rig.public_endpoints())
        watch = HandshakeWatch(rig)
        rig.start_daemons()
        t0 = time.monotonic()
        watch.start()
        got = probe(rig, rig.pairs(), cap)
        res["ping"] = last_of(got, rig.pairs(), t0)
        deadline = t0 + cap
        while len(watch.first) < len(watch.want) and time.monotonic() < deadline:
            time.sleep(0.05)
        watch.stop()
        res["handshakes"] = last_of(watch.first, watch.want, t0)
        rig.check_daemons_alive()
        if res["ping"] is None:
            return res
        settle(rig)
        if rng:
            time.sleep(rng.uniform(0, 4))
        d = rig.node("d")
        rig.move_router(d.router, "203.0.113.110")
        t1 = time.monotonic()
        R.log("r2 (in front of d) moved to 203.0.113.110")
        pairs = [(n, d) for n in rig.nodes if n is not d]
        got = probe(rig, pairs, cap)
        res["wan"] = last_of(got, pairs, t1)
        if res["wan"] is None:
            return res
        got = probe(rig, rig.pairs(), cap)
        settle(rig)
        if rng:
            time.sleep(rng.uniform(0, 4))
        e = rig.node("e")
        reboot_router(rig, e.router)
        t2 = time.monotonic()
        R.log("r3 (in front of e) rebooted: conntrack flushed, ports 31000-31999")
        pairs = [(n, e) for n in rig.nodes if n is not e] + \
            [p for p in rig.pairs() if e not in p]
        got = probe(rig, pairs, cap)
        res["reboot"] = last_of(got, pairs, t2)
        rig.check_daemons_alive()
        return res
    except AssertionError:
        return res
    finally:
        rig.cleanup()


def proc_cpu(pid):
    """CPU seconds of a process: the sum over its threads of the scheduler's
    run time (ns resolution), utime+stime (10 ms ticks), and how many times
    its threads were put on a CPU (schedstat's third field: wake-ups, plus
    the rare preemption)."""
    ns = runs = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                v = f.read().split()
                ns += int(v[0])
                runs += int(v[2])
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None, None, None
    ticks = int(fields[11]) + int(fields[12])
    return ns / 1e9, ticks / os.sysconf("SC_CLK_TCK"), runs


def cpu_once(cap, settle_s, minutes, log_level="info"):
    """{node name: (CPU seconds per hour, the same in ticks, times put on a
    CPU per minute)} on a settled five-node mesh, the daemons logging at
    @log_level ("debug": as in the other rows, -v)."""
    rig = R.Rig(FIVE)
    try:
        rig.start_all_wg()
        for n in rig.nodes:
            rig.write_config(n, endpoints=rig.public_endpoints(),
                             extra={"log_level": log_level})
        for n in rig.nodes:
            rig.start_daemon(n, verbose=log_level == "debug")
        got = probe(rig, rig.pairs(), cap)
        if len(got) < len(rig.pairs()):
            return None
        time.sleep(settle_s)
        before = {n.name: proc_cpu(n.daemon.pid) for n in rig.nodes}
        t0 = time.monotonic()
        time.sleep(minutes * 60)
        dt = time.monotonic() - t0
        after = {n.name: proc_cpu(n.daemon.pid) for n in rig.nodes}
        rig.check_daemons_alive()
        out = {}
        for n in rig.nodes:
            b, a = before[n.name], after[n.name]
            out[n.name] = ((a[0] - b[0]) * 3600 / dt, (a[1] - b[1]) * 3600 / dt,
                           (a[2] - b[2]) * 60 / dt)
        return out
    finally:
        rig.cleanup()


def fmt_row(label, vals, goal):
    xs = [v for v in vals if v is not None]
    never = len(vals) - len(xs)
    if not xs:
        return "%-52s %8s %8s  %-7s %s" % (label, "never", "never", goal, "")
    med = statistics.median([v if v is not None else float("inf") for v in vals])
    return "%-52s %8s %8s  %-7s %s" % (
        label, "never" if med == float("inf") else "%.2f" % med,
        "never" if never else "%.2f" % max(xs), goal,
        ("%d/%d never" % (never, len(vals))) if never else "")


def main_five(argv):
    runs = 0 if "--cpu-only" in argv else int(arg(argv, "--runs", 5))
    cap = float(arg(argv, "--cap", 60))
    S.HANG = cap
    if "--no-roam-watch" in argv:
        R.Rig.extra_config = {"roam_watch": False}
    print("five nodes (%s), only a's endpoint configured, wireguard-go; "
          "%d runs, cap %.0f s; daemon %s%s" % (FIVE, runs, cap, os.environ["WGAM_BIN"],
                                              ", roam watch off" if R.Rig.extra_config else ""))
    rows = {"handshakes": [], "ping": [], "wan": [], "reboot": []}
    rng = None
    if "--random-moment" in argv:
        seed = int(arg(argv, "--seed", 1))
        rng = random.Random(seed)
        print("WAN change and reboot at a random moment, seed %d" % seed)
    for i in range(runs):
        r = five_once(cap, keep="--keep" in argv, rng=rng)
        for k in rows:
            rows[k].append(r[k])
        print("run %d: handshakes %s, ping %s, WAN change %s, reboot %s" % (
            i + 1, *(("%.2f s" % r[k]) if r[k] is not None else "never"
                     for k in ("handshakes", "ping", "wan", "reboot"))))
        sys.stdout.flush()
    if runs:
        print()
        print("%-52s %8s %8s  %-7s" % ("figure (s)", "median", "max", "goal"))
        print(fmt_row("start -> all 20 directed handshakes", rows["handshakes"], "<= 1.0"))
        print(fmt_row("start -> all 10 pairs ping", rows["ping"], "<= 1.0"))
        print(fmt_row("NAT WAN address change -> all ping it", rows["wan"], "<= 3"))
        print(fmt_row("NAT router reboot -> every pair pings", rows["reboot"], "<= 5"))
    sys.stdout.flush()
    if "--no-cpu" not in argv:
        minutes = float(arg(argv, "--cpu-minutes", 3))
        settle_s = float(arg(argv, "--settle", 60))
        level = arg(argv, "--cpu-log-level", "info")
        cpu = cpu_once(cap, settle_s, minutes, level)
        if cpu is None:
            print("CPU: the mesh did not form")
        else:
            per = sorted(v[0] for v in cpu.values())
            print("CPU per daemon per hour at steady state, log level %s (measured over "
                  "%.0f s after %.0f s of settling, scaled to 3600 s; runs: times put on a "
                  "CPU per minute, about the wake-ups): %s" % (
                      level, minutes * 60, settle_s, ", ".join(
                          "%s %.3f (ticks %.2f, %.0f runs/min, %.0f us/run)" % (
                              k, v[0], v[1], v[2], v[0] / 60 * 1e6 / v[2] if v[2] else 0)
                          for k, v in cpu.items())))
            print("%-52s %8.3f %8.3f  %-7s" % ("CPU-s per daemon per hour", statistics.median(per),
                                               max(per), "<= 0.15"))
            print("%-52s %8.0f %8.0f" % ("times on a CPU per daemon per minute",
                                         statistics.median(v[2] for v in cpu.values()),
                                         max(v[2] for v in cpu.values())))
    return 0


# --- relay row ---------------------------------------------------------------

def write_relay_configs(rig, relay):
    rig.write_configs(endpoints=rig.public_endpoints())
    for n in rig.nodes:
        for p in n.config["peers"]:
            if p["pubkey"] == relay.pubkey:
                p["relay"] = True
        with open(n.config_path, "w") as f:
            json.dump(n.config, f, indent=1)


def relay_once(cap, direct_cap):
    res = {"ping": None, "direct": None, "error": None}
    rig = R.Rig(RELAY5)
    try:
        rig.start_all_wg()
        a = rig.node("a")
        write_relay_configs(rig, a)
        chk = subprocess.run([rig.wgam, "check", a.config_path], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        if chk.returncode != 0:
            res["error"] = "config refused: " + chk.stdout.strip().replace("\n", "; ")
            return res
        rig.start_daemons()
        t0 = time.monotonic()
        got = probe(rig, rig.pairs(), cap)
        rig.check_daemons_alive()
        res["ping"] = last_of(got, rig.pairs(), t0)
        if res["ping"] is None:
            return res
        d, e = rig.node("d"), rig.node("e")
        relayed = [(n, o) for n in rig.nodes for o in rig.nodes
                   if n is not o and a not in (n, o) and ({n, o} & {d, e})]
        since = int(time.time())
        for r in (d.router, e.router):
            make_cone(rig, r)
        t1 = time.monotonic()

        def direct(n, o, entry):
            return (entry["handshake"] > since and
                    (o.mesh_ip + "/32") in entry["allowed"].split(","))
        watch = HandshakeWatch(rig, cond=direct)
        watch.want = relayed
        watch.start()
        deadline = t1 + direct_cap
        while len(watch.first) < len(relayed) and time.monotonic() < deadline:
            time.sleep(0.1)
        watch.stop()
        res["direct"] = last_of(watch.first, relayed, t1)
        return res
    except AssertionError as ex:
        res["error"] = str(ex)
        return res
    finally:
        rig.cleanup()


def main_relay(argv):
    runs = int(arg(argv, "--runs", 5))
    cap = float(arg(argv, "--cap", 30))
    direct_cap = float(arg(argv, "--direct-cap", 90))
    S.HANG = max(cap, direct_cap)
    print("relay: %s, a is the relay, only a's endpoint configured; %d runs; daemon %s" % (
        RELAY5, runs, os.environ["WGAM_BIN"]))
    pings, directs = [], []
    for i in range(runs):
        r = relay_once(cap, direct_cap)
        pings.append(r["ping"])
        directs.append(r["direct"])
        print("run %d: every pair pings %s, direct after cone NATs %s%s" % (
            i + 1, "%.2f s" % r["ping"] if r["ping"] is not None else "never (cap %.0f s)" % cap,
            "%.2f s" % r["direct"] if r["direct"] is not None else "never",
            ("; " + r["error"]) if r["error"] else ""))
        sys.stdout.flush()
        if r["error"] and r["error"].startswith("config refused"):
            break
    print()
    print("%-52s %8s %8s  %-7s" % ("figure (s)", "median", "max", "goal"))
    print(fmt_row("relay: start -> every pair pings", pings, "<= 1.5"))
    print(fmt_row("relay: symmetric -> cone, all direct", directs, "<= 30"))
    return 0


# --- nebula side by side --------------------------------------------------------

def nebula_config(rig, n, lighthouse, relay):
    """A nebula config (JSON is YAML) for @n; @lighthouse is the node whose
    address is the only one configured; with @relay it relays as well."""
    am = n is lighthouse
    cfg = {
        "pki": {"ca": os.path.join(rig.tmp, "ca.crt"),
                "cert": os.path.join(n.dir, "host.crt"),
                "key": os.path.join(n.dir, "host.key")},
        "static_host_map": {lighthouse.mesh_ip: ["%s:4242" % lighthouse.addr]},
        "lighthouse": {"am_lighthouse": am, "interval": 60,
                       "hosts": [] if am else [lighthouse.mesh_ip]},
        "listen": {"host": "0.0.0.0", "port": 4242},
        "punchy": {"punch": True, "respond": True},
        "relay": {"am_relay": bool(relay and am), "use_relays": bool(relay),
                  "relays": [] if (am or not relay) else [lighthouse.mesh_ip]},
        "tun": {"dev": rig.ifname("n", n.idx), "mtu": 1300},
        "logging": {"level": "info"},
        "firewall": {"outbound": [{"port": "any", "proto": "any", "host": "any"}],
                     "inbound": [{"port": "any", "proto": "any", "host": "any"}]},
    }
    path = os.path.join(n.dir, "nebula.yml")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def nebula_once(topology, relay, cap):
    rig = R.Rig(topology)
    try:
        ca = [os.path.join(rig.tmp, x) for x in ("ca.crt", "ca.key")]
        R.sh(["nebula-cert", "ca", "-name", "wgam-bench", "-out-crt", ca[0], "-out-key", ca[1]])
        for n in rig.nodes:
            R.sh(["nebula-cert", "sign", "-ca-crt", ca[0], "-ca-key", ca[1], "-name", n.name,
                  "-ip", n.mesh_ip + "/10", "-out-crt", os.path.join(n.dir, "host.crt"),
                  "-out-key", os.path.join(n.dir, "host.key")])
        a = rig.node("a")
        paths = {n: nebula_config(rig, n, a, relay) for n in rig.nodes}
        procs = [rig.spawn(n.ns, ["nebula", "-config", paths[n]],
                           os.path.join(n.dir, "nebula.log")) for n in rig.nodes]
        t0 = time.monotonic()
        probes = [(x.ns, y.mesh_ip) for x, y in rig.pairs()]
        res = rig.prober.watch(probes, cap, interval=PING_INTERVAL,
                               stop=lambda: any(p.poll() is not None for p in procs))
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("nebula exited; logs in %s" % rig.tmp)
        return (max(res.values()) - t0) if len(res) == len(probes) else None
    finally:
        rig.cleanup()


def main_nebula(argv):
    import shutil
    if not shutil.which("nebula") or not shutil.which("nebula-cert"):
        print("nebula is not installed (Debian: apt-get install nebula)")
        return 1
    runs = int(arg(argv, "--runs", 5))
    cap = float(arg(argv, "--cap", 30))
    ver = R.sh(["nebula", "-version"], check=False).strip()
    print("nebula %s, %d runs, pings every %.1f s, cap %.0f s" % (ver, runs, PING_INTERVAL, cap))
    rows = []
    for label, topo, relay in (("nebula, cone NATs, no relay", FIVE, False),
                               ("nebula, cone NATs, relay", FIVE, True),
                               ("nebula, symmetric NATs, relay", RELAY5, True)):
        vals = []
        for i in range(runs):
            vals.append(nebula_once(topo, relay, cap))
            print("%s run %d: %s" % (label, i + 1, "%.2f s" % vals[-1] if vals[-1] is not None
                                     else "never"))
            sys.stdout.flush()
        rows.append((label + ": start -> all pairs ping", vals))
    print()
    print("%-52s %8s %8s" % ("figure (s)", "median", "max"))
    for label, vals in rows:
        print(fmt_row(label, vals, ""))
    return 0


def main(argv):
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    R.skip_unless_possible()
    if len(argv) > 1 and argv[1] == "nebula":
        return main_nebula(argv)
    if not os.environ.get("WGAM_BIN"):
        print("set WGAM_BIN to the daemon executable")
        return 1
    if len(argv) > 1 and argv[1] == "five":
        return main_five(argv)
    if len(argv) > 1 and argv[1] == "relay":
        return main_relay(argv)
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
