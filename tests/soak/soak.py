#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Soak test: a mesh of real daemons (tests/netns/rig.py) behind assorted
NATs takes faults in a row, chosen at random from a seeded generator, one at
a time and sometimes two at once (tests/netns/faults.py lists them). After
each fault the clock runs until every expected pair pings again over the
mesh.

    soak.py [--seed N] [--minutes M] [--no-symmetric] [--relay auto|yes|no]
            [--kinds k1,k2,...] [--double P] [--bound S] [--keep] [--keep-going]
            [--trace] [--diag] [--pcap]

Topology: public a, b (both relays when the configuration knows relays) and
k; c, d, g alone behind cone NATs r1, r2, r4; the LAN pair e, f behind the
cone NAT r3; with the symmetric part (default), s1 and s2 behind the
symmetric NATs r5 and r6. A pair of a symmetric-NAT node and another NAT-ed
node cannot punch a hole: it needs a relay. --relay yes expects those pairs
to ping; no leaves them out; auto (default) expects them when they all ping
within 30 s of the rest of the mesh, and otherwise counts them apart (not
as failures).

Length: --minutes, else WGAM_SOAK_MINUTES, else 5 minutes of faults. The
seed is random unless given (and printed: a failing run can be replayed).

Fails (exit 1) when a fault is not recovered within the bound (60 s: it
catches hangs, it does not measure), a daemon dies unexpectedly, a relay's
WireGuard interface does not forward 5 s after a fault, a daemon's
resident memory grows (at the end more than 4 MiB over its first figure:
a daemon holds about 2.6 MiB),
or a state file does not load (`wgautomesh decode --state`) after the daemons
stopped. Exit 77 without root, netns or wireguard-go. WGAM_BIN names the
daemon. Every daemon logs at debug level to its log in the rig's directory
(kept with --keep; --trace: trace level); lines carry the rig's clock, as
do the fault lines. --diag: while a fault heals, every daemon's view of its
peers (`status --json`) once a second into diag.jsonl in that directory.
--pcap (needs tcpdump): every UDP datagram on the internet's bridge and on
each NAT router's LAN into *.pcap in that directory, and clock.txt, the
wall clock at a rig time (tcpdump stamps are wall clock), for timelines.
"""

import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "netns"))
import rig as R  # noqa: E402
import faults as F  # noqa: E402

HANG = 60.0
RELAY_WAIT = 30.0
TOPO = ("pub:a pub:b pub:k nat:r1 nat:r2 nat:r3 nat:r4 "
        "host:c@r1 host:d@r2 host:e@r3 host:f@r3 host:g@r4")
TOPO_SYM = " sym:r5 sym:r6 host:s1@r5 host:s2@r6"
RELAYS = ("a", "b")
SLOW = 5.0


def say(msg):
    print(msg)
    sys.stdout.flush()


def fig(name, value, unit=""):
    if isinstance(value, float):
        value = "%.2f" % value
    say("FIGURE %s = %s%s" % (name, value, (" " + unit) if unit else ""))


def arg(argv, name, default):
    if name in argv:
        return argv[argv.index(name) + 1]
    return default


def fmt_pairs(pairs):
    return ", ".join("%s-%s" % (a.name, b.name) for a, b in pairs)


def needs_relay(a, b):
    """Direct punching is impossible when both are NAT-ed, behind different
    routers, and one of the routers is symmetric."""
    if a.router is None or b.router is None or a.router is b.router:
        return False
    return a.router.symmetric or b.router.symmetric


class Record:
    def __init__(self, n, kinds, descs, t_end, double):
        self.n = n
        self.kinds = kinds
        self.descs = descs
        self.t_end = t_end
        self.double = double
        self.recovery = None     # seconds, None when not within the bound
        self.late = None         # seconds, when it came back after the bound
        self.slowest = []


class Soak:
    def __init__(self, argv):
        self.seed = int(arg(argv, "--seed", random.randrange(1, 10 ** 6)))
        self.minutes = float(arg(argv, "--minutes",
                                 os.environ.get("WGAM_SOAK_MINUTES", "5")))
        self.symmetric = "--no-symmetric" not in argv
        self.relay_mode = arg(argv, "--relay", "auto")
        self.kinds = arg(argv, "--kinds", ",".join(F.KINDS)).split(",")
        self.p_double = float(arg(argv, "--double", "0.25"))
        self.bound = float(arg(argv, "--bound", str(HANG)))
        self.keep = "--keep" in argv
        self.keep_going = "--keep-going" in argv
        self.flags = ("-vv",) if "--trace" in argv else ("-v",)
        self.diag = "--diag" in argv
        self.pcap = "--pcap" in argv
        self.rng = random.Random(self.seed)
        self.wgam = os.environ.get("WGAM_BIN")
        self.records = []
        self.failures = []
        self.deaths = []
        self.broken = []
        self.no_forwarding = set()
        for k in self.kinds:
            if k not in F.INJECT:
                raise SystemExit("unknown fault kind %r (known: %s)" % (k, ", ".join(F.KINDS)))
        if self.relay_mode not in ("auto", "yes", "no"):
            raise SystemExit("--relay auto|yes|no")

    # -- set-up -----------------------------------------------------------------

    def build(self):
        topo = TOPO + (TOPO_SYM if self.symmetric else "")
        # The rig's own names are random; the seed drives only the faults.
        self.rig = R.Rig(topo, keep=self.keep)
        rig = self.rig
        rig.start_all_wg()
        rig.write_configs(endpoints=rig.public_endpoints())
        self.relay_cfg = (self.relay_mode != "no" and
                          F.config_accepts_relay(rig, self.wgam))
        if self.relay_mode == "yes" and not self.relay_cfg:
            raise AssertionError("--relay yes: the configuration refuses \"relay\": true")
        relays = [rig.node(x) for x in RELAYS] if self.relay_cfg else []
        self.ctx = F.Ctx(rig, relays)
        self.ctx.flags = self.flags
        for n in rig.nodes:
            F.write_config(rig, n, relays)
        all_pairs = rig.pairs()
        self.relay_pairs = [p for p in all_pairs if needs_relay(*p)]
        self.direct_pairs = [p for p in all_pairs if not needs_relay(*p)]
        self.expected = list(self.direct_pairs)
        say("soak: seed %d, %.1f min of faults, %d nodes (%s), %d pairs: %d direct, "
            "%d need a relay; relays in the configuration: %s; kinds: %s" % (
                self.seed, self.minutes, len(rig.nodes),
                " ".join(n.name for n in rig.nodes), len(all_pairs),
                len(self.direct_pairs), len(self.relay_pairs),
                ",".join(n.name for n in relays) or "none", ",".join(self.kinds)))
        if self.pcap:
            self.start_pcap()
        for n in rig.nodes:
            F.start_daemon(rig, n, self.flags)

    def start_pcap(self):
        """tcpdump on the internet's bridge (public hosts, NAT-ed traffic as
        it leaves the routers) and on every router's LAN (before NAT)."""
        rig = self.rig
        if not shutil.which("tcpdump"):
            raise SystemExit("--pcap: no tcpdump (Debian: tcpdump)")
        points = [("wan", rig.wan_ns, rig.wan_br)]
        points += [(r.name, r.ns, r.lanbr) for r in rig.routers.values()]
        for name, ns, ifname in points:
            path = os.path.join(rig.tmp, name + ".pcap")
            rig.spawn(ns, ["tcpdump", "-n", "-U", "-s", "96", "-i", ifname, "-w", path, "udp"],
                      os.path.join(rig.tmp, name + ".tcpdump.log"))
        with open(os.path.join(rig.tmp, "clock.txt"), "w") as f:
            f.write("%.6f %.6f\n" % (time.time(), F.rig_time()))
        time.sleep(1)

    def form(self):
        rig = self.rig
        t0 = time.monotonic()
        got = rig.wait_pairs(self.direct_pairs, HANG, stop=self.someone_died)
        self.check_deaths()
        missing = [p for p in self.direct_pairs if p not in got]
        if missing:
            raise AssertionError("mesh not formed after %.0f s: %s" % (HANG, fmt_pairs(missing)))
        say("mesh: %d/%d direct pairs ping after %.2f s" % (
            len(got), len(self.direct_pairs), max(got.values()) - t0))
        fig("soak_mesh_time", max(got.values()) - t0, "s")
        if self.relay_pairs and self.relay_mode != "no":
            wait = HANG if self.relay_mode == "yes" else RELAY_WAIT
            t1 = time.monotonic()
            rgot = rig.wait_pairs(self.relay_pairs, wait, stop=self.someone_died)
            self.check_deaths()
            say("relay pairs: %d/%d ping within %.0f s%s" % (
                len(rgot), len(self.relay_pairs), wait,
                (", last after %.2f s" % (max(rgot.values()) - t1)) if rgot else ""))
            if len(rgot) == len(self.relay_pairs):
                self.expected += self.relay_pairs
            elif self.relay_mode == "yes":
                raise AssertionError("--relay yes: pairs not pinging through a relay: %s" %
                                     fmt_pairs([p for p in self.relay_pairs if p not in rgot]))
        if self.relay_pairs and len(self.expected) == len(self.direct_pairs):
            say("NOTE: %d pairs need a relay and do not ping: counted apart, not as failures" %
                len(self.relay_pairs))
        # The first memory figure once the mesh is whole and settled.
        time.sleep(5)
        self.rss0 = {n: F.rss_kb(n.daemon) for n in rig.nodes}

    # -- daemons ------------------------------------------------------------------

    def someone_died(self):
        for n in self.rig.nodes:
            p = n.daemon
            if p is not None and p.poll() is not None and n not in self.ctx.expected_deaths:
                return True
        return False

    def check_deaths(self):
        """Records daemons that exited without being asked; restarts them
        (the soak goes on) when --keep-going."""
        for n in self.rig.nodes:
            p = n.daemon
            if p is None or p.poll() is None or n in self.ctx.expected_deaths:
                continue
            rc = p.returncode
            msg = "daemon of %s exited unexpectedly (status %s) at rig time %.1f" % (
                n.name, rc, F.rig_time())
            say("FAIL: " + msg)
            self.deaths.append(msg)
            self.failures.append(msg)
            self.rig.dump_logs([n], lines=60)
            n.daemon = None
            if self.keep_going:
                F.start_daemon(self.rig, n, self.flags)
                say("  restarted the daemon of %s" % n.name)

    # -- faults -------------------------------------------------------------------

    def pick(self):
        """One fault, sometimes two on distinct routers/nodes."""
        picks, held = [], set()
        two = self.rng.random() < self.p_double
        for _ in range(2 if two else 1):
            for _ in range(50):
                kind = self.rng.choice(self.kinds)
                target = self.rng.choice(F.targets(self.ctx, kind))
                res = F.resource(kind, target)
                if res & held:
                    continue
                held |= res
                picks.append((kind, target))
                break
        return picks

    def inject(self, picks):
        """Runs the faults (concurrently when two); returns their
        descriptions when the last one is over."""
        descs = [None] * len(picks)
        errors = []

        def run(i, kind, target):
            # Each fault gets its own generator derived from the main one, so
            # the choices do not depend on thread timing.
            try:
                descs[i] = F.INJECT[kind](self.ctx, rngs[i], target)
            except Exception as e:  # an injector that failed is the rig's bug
                errors.append("%s: %r" % (kind, e))
        rngs = [random.Random(self.rng.randrange(1 << 30)) for _ in picks]
        if len(picks) == 1:
            run(0, *picks[0])
        else:
            ts = [threading.Thread(target=run, args=(i, k, t)) for i, (k, t) in enumerate(picks)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        if errors:
            raise RuntimeError("fault injection failed: %s" % "; ".join(errors))
        return descs

    def one(self, n):
        rig = self.rig
        picks = self.pick()
        t_inj = F.rig_time()
        descs = self.inject(picks)
        t_end = time.monotonic()
        rec = Record(n, [k for k, _ in picks], descs, t_end, len(picks) > 1)
        label = " + ".join("%s %s" % (k, d) for k, d in zip(rec.kinds, descs))
        sampler = None
        if self.diag:
            sampler = F.Sampler(rig, os.path.join(rig.tmp, "diag.jsonl"),
                                "%d %s" % (n, label)).start()
        try:
            got = rig.wait_pairs(self.expected, self.bound, stop=self.someone_died)
        finally:
            if sampler:
                sampler.stop()
        missing = [p for p in self.expected if p not in got]
        if got:
            times = sorted(((t - t_end, p) for p, t in got.items()), key=lambda x: -x[0])
            rec.slowest = [(p, dt) for dt, p in times[:3]]
        died = self.someone_died()
        if not missing:
            rec.recovery = max(0.0, max(got.values()) - t_end)
            say("fault %d [rig %.1f-%.1f] %s: recovered in %.2f s%s (slowest %s)" % (
                n, t_inj, t_end - R.T_START, label, rec.recovery,
                " SLOW" if rec.recovery > SLOW else "",
                ", ".join("%s-%s %.2f" % (p[0].name, p[1].name, dt) for p, dt in rec.slowest)))
        else:
            msg = "fault %d [rig %.1f-%.1f] %s: NOT recovered within %.0f s: %s" % (
                n, t_inj, t_end - R.T_START, label, self.bound, fmt_pairs(missing))
            if died:
                msg += " (a daemon died)"
            say("FAIL: " + msg)
            self.failures.append(msg)
            self.show(missing)
            if not died:
                # How late, if at all (for the report; still a failure).
                late = rig.wait_pairs(missing, HANG, stop=self.someone_died)
                if len(late) == len(missing):
                    rec.late = max(late.values()) - t_end
                    say("  ... recovered after %.2f s" % rec.late)
                else:
                    # Pairs that stay broken are left out of the later
                    # figures (the run has failed already).
                    gone = [p for p in missing if p not in late]
                    self.broken += gone
                    self.expected = [p for p in self.expected if p not in gone]
                    say("  ... still not after %.0f s more: %s left out from now on" % (
                        HANG, fmt_pairs(gone)))
        self.check_deaths()
        self.check_relays()
        for k, (kind, target) in enumerate(picks):
            if kind == "state_bad" and F.restore_state_path(target.state_path):
                say("  (state path of %s made a plain path again)" % target.name)
        self.records.append(rec)
        return not missing

    def check_relays(self):
        """Every relay with a running daemon forwards on its WireGuard
        interface, also after the interface was deleted and created again
        (a new interface starts with forwarding off)."""
        for n in self.ctx.relays:
            if n.daemon is None or n.daemon.poll() is not None:
                continue
            deadline = time.monotonic() + 5
            while F.forwarding(n) != 1 and time.monotonic() < deadline:
                time.sleep(0.5)
            v = F.forwarding(n)
            if v != 1 and n not in self.no_forwarding:
                msg = "relay %s: net.ipv4.conf.%s.forwarding is %s at rig time %.1f" % (
                    n.name, n.wg, v, F.rig_time())
                say("FAIL: " + msg)
                self.failures.append(msg)
                self.no_forwarding.add(n)
            elif v == 1:
                self.no_forwarding.discard(n)

    def show(self, missing):
        """What the daemons and the devices say about the missing pairs."""
        nodes = sorted({x for p in missing for x in p}, key=lambda n: n.idx)
        for a, b in missing[:6]:
            for x, y in ((a, b), (b, a)):
                try:
                    wg = self.rig.wg_dump(x).get(y.pubkey, {})
                    st = self.rig.peer_status(x, y)
                    say("  %s -> %s: device endpoint %s hs %s; daemon state %s endpoint %s "
                        "source %s tries %s route %s via %s" % (
                            x.name, y.name, wg.get("endpoint"), wg.get("handshake"),
                            st.get("state"), st.get("endpoint"), st.get("source"),
                            st.get("tries"), st.get("route"), st.get("via")))
                except Exception as e:
                    say("  %s -> %s: %s" % (x.name, y.name, e))
        self.rig.dump_logs(nodes[:4], lines=30)

    # -- the run ------------------------------------------------------------------

    def run(self):
        self.build()
        self.form()
        t_faults = time.monotonic()
        deadline = t_faults + self.minutes * 60
        n = 0
        self.rss_mid = None
        self.rss_series = []
        while time.monotonic() < deadline:
            n += 1
            ok = self.one(n)
            # Memory after every fault: growth without bound keeps climbing.
            self.rss_series.append({x: F.rss_kb(x.daemon) for x in self.rig.nodes})
            if self.rss_mid is None and time.monotonic() >= t_faults + self.minutes * 30:
                self.rss_mid = self.rss_series[-1]
            if (not ok or self.deaths) and not self.keep_going:
                break
            time.sleep(self.rng.uniform(1, 3))
        self.elapsed = time.monotonic() - t_faults
        self.finish()

    def finish(self):
        rig = self.rig
        # the relay pairs, for the record, when they were not expected
        if self.relay_pairs and len(self.expected) == len(self.direct_pairs):
            rgot = rig.wait_pairs(self.relay_pairs, 5)
            say("relay pairs at the end: %d/%d ping (not expected)" % (
                len(rgot), len(self.relay_pairs)))
        self.rss1 = {n: F.rss_kb(n.daemon) for n in rig.nodes}
        self.rss_bad = []
        for n in rig.nodes:
            a, b = self.rss0.get(n), self.rss1.get(n)
            # Growth: more than 4 MiB over the first figure at the end
            # (faults reload, restart and re-create; none of it may leave
            # memory behind).
            if a and b and b > a + 4096:
                self.rss_bad.append("%s %d -> %d KiB" % (n.name, a, b))
        # stop every daemon: they write their state files
        for n in rig.nodes:
            if n.daemon is not None:
                n.daemon.send_signal(signal.SIGTERM)
        self.exit_codes = {}
        for n in rig.nodes:
            if n.daemon is not None:
                self.exit_codes[n] = R.stop_proc(n.daemon, signal.SIGTERM, 15)
                n.daemon = None
        self.states = {n: F.state_loads(self.wgam, n.state_path) for n in rig.nodes}

    def report(self):
        recs = self.records
        say("")
        say("faults by kind (one at a time; seconds until every expected pair pings again):")
        say("  %-12s %3s %4s %8s %8s %6s" % ("kind", "n", "ok", "median", "worst", ">5 s"))
        for kind in F.KINDS:
            rs = [r for r in recs if r.kinds == [kind]]
            if not rs:
                continue
            ok = [r.recovery for r in rs if r.recovery is not None]
            slow = len([x for x in ok if x > SLOW])
            say("  %-12s %3d %4d %8s %8s %6d" % (
                kind, len(rs), len(ok), "%.2f" % statistics.median(ok) if ok else "-",
                "%.2f" % max(ok) if ok else "-", slow))
            if ok:
                fig("soak_%s_median" % kind, statistics.median(ok), "s")
                fig("soak_%s_worst" % kind, max(ok), "s")
        doubles = [r for r in recs if r.double]
        if doubles:
            say("two at once:")
            for r in doubles:
                say("  %-26s %s" % ("+".join(r.kinds), "%.2f s" % r.recovery
                                    if r.recovery is not None else "NOT recovered"))
        mid = getattr(self, "rss_mid", None) or {}
        say("daemon RSS (KiB), first figure -> halfway -> end:")
        say("  " + ", ".join("%s %s->%s->%s" % (n.name, self.rss0.get(n), mid.get(n),
                                                self.rss1.get(n))
                             for n in self.rig.nodes))
        bad_exit = ["%s: %s" % (n.name, rc) for n, rc in self.exit_codes.items() if rc != 0]
        if bad_exit:
            say("daemons that did not exit 0 on SIGTERM: %s" % ", ".join(bad_exit))
        bad_state = ["%s: %s" % (n.name, m) for n, (ok, m) in self.states.items() if not ok]
        for n, (ok, m) in self.states.items():
            if not ok:
                say("FAIL: state file of %s does not load: %s" % (n.name, m))
        for x in self.rss_bad:
            say("FAIL: memory grew: %s" % x)
        if self.broken:
            say("FAIL: pairs broken for good: %s" % fmt_pairs(self.broken))
        nrec = len([r for r in recs if r.recovery is not None])
        worst = max(((r.recovery, "+".join(r.kinds)) for r in recs if r.recovery is not None),
                    default=(0.0, "-"))
        growth = max(((self.rss1.get(n) or 0) - (self.rss0.get(n) or 0) for n in self.rig.nodes),
                     default=0)
        nload = len([1 for ok, _ in self.states.values() if ok])
        relay_note = ""
        if self.relay_pairs and len(self.expected) == len(self.direct_pairs):
            relay_note = ", %d relay pairs not expected" % len(self.relay_pairs)
        say("soak: %d faults, %d recovered, worst %.2f s (%s), %d daemon deaths, "
            "RSS growth max %+d KiB, %d/%d state files load, %d/%d pairs expected%s, "
            "seed %d, %.1f min" % (
                len(recs), nrec, worst[0], worst[1], len(self.deaths), growth, nload,
                len(self.states), len(self.expected), len(self.direct_pairs) +
                len(self.relay_pairs), relay_note, self.seed, self.elapsed / 60))
        failed = (self.failures or self.rss_bad or bad_state or bad_exit)
        return 1 if failed else 0


def main(argv):
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    R.skip_unless_possible()
    if not shutil.which("conntrack"):
        print("FAIL: missing conntrack (Debian: conntrack)")
        return 1
    wgam = os.environ.get("WGAM_BIN")
    if not wgam or not os.access(wgam, os.X_OK):
        print("FAIL: WGAM_BIN does not name the daemon executable (%r)" % wgam)
        return 1
    s = Soak(argv)
    try:
        s.run()
    except AssertionError as e:
        say("FAIL: %s" % e)
        if getattr(s, "rig", None):
            s.rig.dump_logs(lines=30)
        return 1
    finally:
        if getattr(s, "rig", None):
            s.rig.cleanup()
    return s.report()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
