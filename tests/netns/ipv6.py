#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""IPv6 end-to-end scenarios: real wgautomesh daemons on wireguard-go
interfaces in network namespaces (rig.py), with IPv6 underlay addresses
(2001:db8::/64, one link: the rig's "wan" bridge) and IPv6 mesh addresses
(fd00::N/64 on the WireGuard interfaces).

    ipv6.py v6only|dualstack|lan6 [--runs N] [--keep]

v6only     three IPv6-only hosts (h, b, c); only the hub h's endpoint is
           configured, as "[2001:db8::10]:51820"; every pair must ping over
           the mesh (b and c learn each other's endpoints from h's gossip).
dualstack  the same three hosts with IPv4 and IPv6 underlay addresses; b is
           given h's IPv6 endpoint and c h's IPv4 endpoint, so h observes b
           on IPv6 and c on IPv4 and gossip carries both families; every
           pair must ping over the IPv6 mesh addresses.
lan6       three IPv6-only hosts, no endpoint configured at all, "ipv6" and
           "lan_discovery" on: the nodes can only find each other through
           the LAN broadcasts to [ff05::1]; every pair must ping over each
           other's own IPv6 addresses, and in each pair at least one end
           must know the other's LAN endpoint.

WGAM_BIN names the daemon executable. Exit 0 pass, 1 fail, 77 skip (not root,
no netns, no wireguard-go). Figures are printed ("FIGURE name = value"); the
only time bound asserted (HANG) catches a hang, not a slow start.
"""

import os
import random
import select
import socket
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rig as R  # noqa: E402
import scenarios as S  # noqa: E402

HANG = 30.0
V6_NET = "2001:db8::"
MESH6 = "fd00::"


class Prober6(R.Prober):
    """ICMPv6 echo between namespaces with raw sockets, the interface of
    rig.Prober.watch (the kernel fills in ICMPv6 checksums)."""

    FAMILY = socket.AF_INET6
    PROTO = socket.IPPROTO_ICMPV6

    def watch(self, pairs, timeout, interval=0.1, stop=None):
        """Probes every (src_ns, dst_ip) until each answered once or
        @timeout; returns {pair: monotonic time of the first answer}."""
        pairs = list(pairs)
        first = {}
        seq = 0
        deadline = time.monotonic() + timeout
        nxt = 0.0
        while len(first) < len(pairs):
            now = time.monotonic()
            if now >= deadline or (stop is not None and stop()):
                break
            if now >= nxt:
                seq = (seq + 1) & 0xFFFF
                for n, (ns, ip) in enumerate(pairs):
                    if n in first:
                        continue
                    pkt = struct.pack("!BBHHH", 128, 0, 0, (self.ident + n) & 0xFFFF, seq)
                    try:
                        self._sock(ns).sendto(pkt + b"wgautomesh-e2e", (ip, 0))
                    except OSError:
                        pass  # no route or no endpoint yet: keep trying
                nxt = now + interval
            r, _, _ = select.select(list(self.socks.values()), [], [],
                                    max(0.0, min(nxt, deadline) - time.monotonic()))
            t = time.monotonic()
            for s in r:
                while True:
                    try:
                        data, addr = s.recvfrom(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    if len(data) < 8 or data[0] != 129:
                        continue
                    ident = struct.unpack("!H", data[4:6])[0]
                    n = (ident - self.ident) & 0xFFFF
                    if n >= len(pairs) or n in first:
                        continue
                    if self.socks.get(pairs[n][0]) is not s:
                        continue
                    if socket.inet_pton(socket.AF_INET6, addr[0].split("%")[0]) != \
                            socket.inet_pton(socket.AF_INET6, pairs[n][1]):
                        continue
                    first[n] = t
        return {pairs[n]: first[n] for n in first}


def fig(name, value, unit=""):
    S.fig(name, value, unit)


def say(msg):
    S.say(msg)


def ep6(addr, port=R.LISTEN_PORT):
    return "[%s]:%d" % (addr, port)


def build(dual, policy="fast", keep=False):
    """Three hosts h, b, c on the rig's wan bridge. Underlay: IPv6
    2001:db8::10+k/64 (plus the rig's IPv4 198.51.100.10+k/24 with @dual);
    mesh: fd00::k+1/64 on each WireGuard interface, nothing else."""
    rig = R.Rig("pub:h pub:b pub:c", keep=keep)
    rig.policy = policy
    rig.prober6 = Prober6()
    # The bridge must pass multicast to every port (ff05::1), with or
    # without MLD reports seen.
    R.sh(["ip", "-n", rig.wan_ns, "link", "set", rig.wan_br, "type", "bridge",
          "mcast_snooping", "0"])
    for k, n in enumerate(rig.nodes):
        n.addr6 = "%s%x" % (V6_NET, 0x10 + k)
        R.sh(["ip", "netns", "exec", n.ns, "sysctl", "-q", "-w",
              "net.ipv6.conf.all.disable_ipv6=0"])
        if not dual:
            n.sh(["ip", "-4", "addr", "flush", "dev", n.up])
            n.addr = None
        n.sh(["ip", "-6", "addr", "add", n.addr6 + "/64", "dev", n.up, "nodad"])
    rig.start_all_wg()
    for k, n in enumerate(rig.nodes):
        n.sh(["ip", "-4", "addr", "flush", "dev", n.wg])
        n.mesh_ip = "%s%x" % (MESH6, k + 1)
        n.sh(["ip", "-6", "addr", "add", n.mesh_ip + "/64", "dev", n.wg, "nodad"])
    return rig


def mesh_pairs(rig, timeout):
    """Waits until every pair pings over the IPv6 mesh; returns
    {(a, b): seconds after the call}."""
    t0 = time.monotonic()
    probes = [(a.ns, b.mesh_ip) for a, b in rig.pairs()]
    back = {(a.ns, b.mesh_ip): (a, b) for a, b in rig.pairs()}
    got = rig.prober6.watch(probes, timeout, stop=lambda: S._any_daemon_dead(rig))
    rig.check_daemons_alive()
    return {back[k]: t - t0 for k, t in got.items()}


def report(rig, got, label):
    for a, b in rig.pairs():
        say("  %s - %s: %s" % (a.name, b.name, "%.2f s" % got[(a, b)] if (a, b) in got else "NO"))
    missing = [p for p in rig.pairs() if p not in got]
    S.expect(not missing, "%s: pairs not pinging after %.0f s: %s" % (
        label, HANG, S.fmt_pairs(missing)))
    return max(got.values())


def show_endpoints(rig):
    for n in rig.nodes:
        dump = rig.wg_dump(n)
        say("  %s sees %s" % (n.name, ", ".join(
            "%s at %s" % (o.name, dump.get(o.pubkey, {}).get("endpoint"))
            for o in rig.nodes if o is not n)))


def timeline(rig, nodes=None, pattern=("candidate", "try", "endpoint", "handshake",
                                        "announce", "device", "connected", "ping")):
    """The daemon log lines that explain a start (which timer waited)."""
    for n in nodes or rig.nodes:
        try:
            with open(n.log_path, errors="replace") as f:
                lines = [line.rstrip() for line in f
                         if any(p in line.lower() for p in pattern)]
        except FileNotFoundError:
            continue
        say("----- %s (%d lines)" % (n.name, len(lines)))
        for line in lines[:60]:
            say("  " + line)


def repeated(runs, dual, policy, keep, verbose, label, figure, configure, check):
    """Runs a scenario @runs times, each on a fresh rig: @configure writes
    the configs, the daemons start together, the time until every pair
    pings is printed as @figure, then @check asserts what the scenario is
    about."""
    times = []
    for i in range(runs):
        rig = build(dual=dual, policy=policy, keep=keep)
        try:
            configure(rig)
            rig.start_daemons()
            got = mesh_pairs(rig, HANG)
            t = report(rig, got, label)
            times.append(t)
            fig(figure, t, "s")
            show_endpoints(rig)
            check(rig)
            if verbose:
                timeline(rig)
        except BaseException:
            rig.dump_logs()
            raise
        finally:
            rig.prober6.close()
            rig.cleanup()
    if runs > 1:
        fig(figure + "_median", statistics.median(times), "s")
        fig(figure + "_max", max(times), "s")
    return True


def scenario_v6only(policy, keep, runs=1, verbose=False):
    def configure(rig):
        h = rig.node("h")
        rig.write_configs(endpoints={h: ep6(h.addr6)})

    def check(rig):
        b, c = rig.node("b"), rig.node("c")
        bc = rig.endpoint_of(b, c)
        S.expect(bc and bc.startswith("[" + c.addr6 + "]"),
                 "b reaches c through %s, not c's own IPv6 address" % bc)

    return repeated(runs, False, policy, keep, verbose, "v6only",
                    "ipv6_only_mesh_time", configure, check)


def scenario_dualstack(policy, keep, runs=1, verbose=False):
    def configure(rig):
        h, c = rig.node("h"), rig.node("c")
        for n in rig.nodes:
            # b knows the hub by its IPv6 address, c by its IPv4 one
            # (a hostname can resolve to either on different nodes).
            ep = ep6(h.addr6) if n is not c else h.endpoint
            rig.write_config(n, endpoints={h: ep})

    def check(rig):
        h, b, c = (rig.node(x) for x in "hbc")
        hb, hc = rig.endpoint_of(h, b), rig.endpoint_of(h, c)
        S.expect(hb and hb.startswith("["), "h sees b at %s, not over IPv6" % hb)
        S.expect(hc and not hc.startswith("["), "h sees c at %s, not over IPv4" % hc)

    return repeated(runs, True, policy, keep, verbose, "dualstack",
                    "dualstack_mesh_time", configure, check)


def scenario_lan6(policy, keep, runs=1, verbose=False):
    def configure(rig):
        for n in rig.nodes:
            rig.write_config(n, endpoints={}, extra={"ipv6": True, "lan_discovery": True})

    def check(rig):
        # Each pair: at least one end heard the other's broadcast (a
        # node broadcasts at start, then every 60 s; one started a
        # little earlier may miss it, be reached first, and WireGuard
        # roams to its peer).
        for n in rig.nodes:
            for o in rig.nodes:
                if o is not n:
                    ep = rig.endpoint_of(n, o) or ""
                    S.expect(ep.startswith("[" + o.addr6 + "]:"),
                             "%s uses %s for %s" % (n.name, ep, o.name))
        for n, o in rig.pairs():
            lan_no = rig.peer_status(n, o).get("lan_endpoint") or ""
            lan_on = rig.peer_status(o, n).get("lan_endpoint") or ""
            say("  LAN endpoint of %s at %s: %s; of %s at %s: %s" % (
                o.name, n.name, lan_no or "-", n.name, o.name, lan_on or "-"))
            S.expect(lan_no.startswith("[" + o.addr6 + "]:") or
                     lan_on.startswith("[" + n.addr6 + "]:"),
                     "neither %s nor %s heard the other on [ff05::1]" % (n.name, o.name))

    return repeated(runs, False, policy, keep, verbose, "lan6",
                    "ipv6_lan_discovery_mesh_time", configure, check)


SCENARIOS = {
    "v6only": scenario_v6only,
    "dualstack": scenario_dualstack,
    "lan6": scenario_lan6,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in SCENARIOS:
        print(__doc__)
        return 2
    policy = "fast"
    if "--policy" in argv:
        policy = argv[argv.index("--policy") + 1]
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 1
    return R.run_test("%s (policy %s)" % (argv[1], policy),
                      lambda: SCENARIOS[argv[1]](policy, "--keep" in argv, runs,
                                                 "--verbose" in argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
