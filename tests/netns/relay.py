#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end relay test: real wgautomesh daemons on wireguard-go in network
namespaces (rig.py), relaying configured only through the config file.

    relay.py [--keep] [--trace] [--kill-wg] [--without-relay]

Topology: two public nodes r1 and r2, both "relay": true in every node's
config; a behind the symmetric NAT sa, b behind the symmetric NAT sb, c
behind the port-restricted cone NAT nc. Neither a-b, a-c nor b-c can punch
through: those pairs need a relay. Only the public endpoints are configured.

  1. All daemons start together: every pair pings (bound 30 s); a and b
     show each other relayed (or relay-pending) through r1 or r2, and the
     WireGuard device agrees (the peer's address on the relay's entry).
     The relays' daemons turned IPv4 forwarding on for their interface.
  2. sa and sb become cone NATs (postrouting flushed, plain masquerade,
     conntrack -F): a and b show each other "direct" with a fresh direct
     handshake (bound 90 s) and still ping; then a-c and b-c are direct
     too (same bound).
  3. sa and sb become symmetric again: a-b goes back through one relay
     (bound 60 s). That relay's daemon gets SIGTERM (it restores the
     forwarding sysctl at exit, so it stops forwarding; its WireGuard
     interface stays up and keeps handshaking; --kill-wg stops its
     wireguard-go too): a-b pings again through the other relay (bound
     60 s) and both ends' status says so. No daemon of a, b, c may claim a
     direct path to another of them ("connected via") while the NATs are
     symmetric: that would move the route back onto a dead path (flapping).

Figures are printed as "FIGURE name = value s". --without-relay writes the
configs without "relay": the test must then fail (a check that it can).
--keep keeps the rig's files (daemon logs) for a diagnosis; --trace adds
trace.log there (device entries of a, b, c and the NATs' conntrack, every
0.25 s).

WGAM_BIN names the daemon executable. Exit 0 pass, 1 fail, 77 skip (not
root, no netns, no wireguard-go). Names start with E2E_PREFIX (default
"rly") and the rig's random tag.
"""

import json
import os
import subprocess
import sys
import threading
import time

os.environ.setdefault("E2E_PREFIX", "rly")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rig as R  # noqa: E402
import scenarios as S  # noqa: E402
from bench import make_cone  # noqa: E402
from scenarios import expect, fig, say, wait_for  # noqa: E402

TOPOLOGY = ("pub:r1 pub:r2 sym:sa sym:sb nat:nc "
            "host:a@sa host:b@sb host:c@nc")

BOUND_MESH = 30.0      # start -> every pair pings
BOUND_DIRECT = 90.0    # cone NATs -> a-b direct
BOUND_RELAY = 60.0     # symmetric again -> a-b relayed; relay lost -> other relay
RELAYED = ("relayed", "relay-pending")


def make_symmetric(rig, r):
    """A cone NAT turned (back) into a symmetric NAT: endpoint-dependent
    mapping (masquerade random), every mapping forgotten."""
    rules = """
flush chain ip nat postrouting
add rule ip nat postrouting oifname "%s" masquerade random
""" % r.wan
    R.sh(["ip", "netns", "exec", r.ns, "nft", "-f", "-"], input=rules)
    R.sh(["ip", "netns", "exec", r.ns, "conntrack", "-F"], check=False)


def forwarding(node):
    """net.ipv4.conf.IFACE.forwarding inside the node's namespace."""
    out = node.sh(["sysctl", "-n", "net.ipv4.conf.%s.forwarding" % node.wg])
    return out.strip()


def write_relay_configs(rig, relays, with_relay=True):
    rig.write_configs(endpoints=rig.public_endpoints())
    keys = {r.pubkey for r in relays}
    for n in rig.nodes:
        if with_relay:
            for p in n.config["peers"]:
                if p["pubkey"] in keys:
                    p["relay"] = True
        with open(n.config_path, "w") as f:
            json.dump(n.config, f, indent=1)


def node_by_key(rig, key):
    return next((o for o in rig.nodes if o.pubkey == key), None)


def route(rig, n, o):
    """(route, via node or None) of peer @o in @n's status."""
    p = rig.peer_status(n, o)
    return p.get("route"), node_by_key(rig, p.get("via")) if p.get("via") else None


def routes_text(rig, n, o):
    r, via = route(rig, n, o)
    return "%s%s" % (r, (" via " + via.name) if via else "")


def print_routes(rig, nodes):
    for n in nodes:
        st = rig.status(n)
        cells = []
        for p in st["peers"]:
            o = node_by_key(rig, p["pubkey"])
            if o is None or o is n:
                continue
            via = node_by_key(rig, p.get("via")) if p.get("via") else None
            cells.append("%s:%s%s%s" % (o.name, p.get("route"),
                                        ("/" + via.name) if via else "",
                                        "" if p.get("connected") else "(down)"))
        say("  routes of %s: %s (relay switches %s)" % (
            n.name, " ".join(cells), st.get("stats", {}).get("relay_switches")))


def entry_holding(rig, n, ip):
    """The node whose device entry on @n holds @ip/32 (the truth)."""
    for key, e in rig.wg_dump(n).items():
        if (ip + "/32") in e["allowed"].split(","):
            return node_by_key(rig, key)
    return None


def both_relayed(rig, a, b, relays):
    """The relay a and b both route each other through, or None."""
    ra, va = route(rig, a, b)
    rb, vb = route(rig, b, a)
    if ra in RELAYED and rb in RELAYED and va is vb and va in relays:
        return va
    return None


class Trace(threading.Thread):
    """--trace: every 0.25 s, the device entries of the NAT-ed nodes
    (endpoint, handshake, rx bytes, allowed IPs) and the NAT routers' UDP
    conntrack entries, into trace.log in the rig's files (with --keep)."""

    def __init__(self, rig):
        super().__init__(daemon=True)
        self.rig = rig
        self.done = threading.Event()
        self.path = os.path.join(rig.tmp, "trace.log")

    def run(self):
        names = {n.pubkey: n.name for n in self.rig.nodes}
        nated = [n for n in self.rig.nodes if n.kind == "lan"]
        with open(self.path, "w") as f:
            while not self.done.wait(0.25):
                t = time.monotonic() - R.T_START
                for n in nated:
                    try:
                        dump = self.rig.wg_dump(n)
                    except Exception:
                        continue
                    f.write("[%8.3f] %s: %s\n" % (t, n.name, "  ".join(
                        "%s ep=%s hs=%d rx=%d ips=%s" % (names.get(k, "?"), e["endpoint"],
                                                         e["handshake"], e["rx"], e["allowed"])
                        for k, e in dump.items())))
                for r in self.rig.routers.values():
                    out = R.sh(["ip", "netns", "exec", r.ns, "conntrack", "-L", "-p", "udp"],
                               check=False)
                    for line in out.splitlines():
                        f.write("[%8.3f] ct %s: %s\n" % (t, r.name, " ".join(line.split())))
                f.flush()

    def stop(self):
        self.done.set()
        self.join(5)


def false_directs(rig, nodes, since):
    """"connected via" lines in the daemon logs of @nodes since rig time
    @since about each other: none of these pairs can punch through their
    NATs while the NATs are symmetric, so each one is a direct path
    claimed that cannot work (the peer's route then goes back to it).
    Returns [(rig time, node, peer)]."""
    short = {n.pubkey[:8]: n for n in nodes}
    out = []
    for n in nodes:
        with open(n.log_path, errors="replace") as f:
            for line in f:
                if not line.startswith("[") or ": connected via " not in line:
                    continue
                t = float(line[1:line.index("]")])
                key = line.split("peer ", 1)[1][:8]
                if t >= since and key in short and short[key] is not n:
                    out.append((t, n, short[key]))
    return sorted(out, key=lambda x: x[0])


def alive(rig):
    return not S._any_daemon_dead(rig)


def run(keep, kill_wg, with_relay, trace=False):
    rig = R.Rig(TOPOLOGY, keep=keep)
    tracer = None
    try:
        rig.start_all_wg()
        r1, r2 = rig.node("r1"), rig.node("r2")
        a, b, c = rig.node("a"), rig.node("b"), rig.node("c")
        relays = (r1, r2)
        for r in relays:
            if forwarding(r) != "0":
                # Inherited from the host (IPv4 netns inherit init_net's
                # conf): a fresh host without forwarding, else a relay's
                # loss would not be one.
                say("note: %s's namespace inherited IPv4 forwarding; turned off" % r.name)
                r.sh(["sysctl", "-q", "-w", "net.ipv4.conf.all.forwarding=0"])
            expect(forwarding(r) == "0", "%s forwards before its daemon runs" % r.name)
        write_relay_configs(rig, relays, with_relay)
        chk = subprocess.run([rig.wgam, "check", a.config_path], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        expect(chk.returncode == 0, "config refused: %s" % chk.stdout.strip())
        say("relays: %s (%s)" % (", ".join(r.name for r in relays),
                                 "\"relay\": true in every config" if with_relay
                                 else "WITHOUT \"relay\": this run must fail"))

        # --- 1: start, every pair pings, a-b relayed -------------------------
        if trace:
            tracer = Trace(rig)
            tracer.start()
        rig.start_daemons()
        t_mesh = S.form_mesh(rig, "start", timeout=BOUND_MESH)
        fig("relay_start_all_pairs_ping", t_mesh, "s")
        for r in relays:
            expect(wait_for(lambda: forwarding(r) == "1", 5),
                   "%s's daemon did not turn on forwarding on %s" % (r.name, r.wg))
        via = wait_for(lambda: both_relayed(rig, a, b, relays), 10)
        print_routes(rig, [a, b, c])
        expect(via, "a-b not shown relayed through one relay: a sees b %s, b sees a %s" % (
            routes_text(rig, a, b), routes_text(rig, b, a)))
        ha, hb = entry_holding(rig, a, b.mesh_ip), entry_holding(rig, b, a.mesh_ip)
        say("device: a routes b's address to %s's entry, b routes a's to %s's" % (
            ha and ha.name, hb and hb.name))
        expect(ha in relays and hb in relays,
               "the device does not route a-b through a relay (%s, %s)" % (ha, hb))

        # --- 2: cone NATs, a-b direct ----------------------------------------
        since = int(time.time())
        for r in (a.router, b.router):
            make_cone(rig, r)
        t1 = time.monotonic()
        say("sa and sb are cone NATs now (rig time %.3f)" % (t1 - R.T_START))

        def direct():
            if not alive(rig):
                return True
            if route(rig, a, b)[0] != "direct" or route(rig, b, a)[0] != "direct":
                return False
            for n, o in ((a, b), (b, a)):
                e = rig.wg_dump(n).get(o.pubkey, {})
                if entry_holding(rig, n, o.mesh_ip) is not o or e.get("handshake", 0) < since:
                    return False
            return True
        ok = wait_for(direct, BOUND_DIRECT, 0.2)
        t_direct = time.monotonic() - t1
        rig.check_daemons_alive()
        print_routes(rig, [a, b, c])
        expect(ok, "a-b not direct %.0f s after the NATs became cone NATs: "
               "a sees b %s, b sees a %s" % (BOUND_DIRECT, routes_text(rig, a, b),
                                             routes_text(rig, b, a)))
        say("endpoints: a -> b %s, b -> a %s (NAT-ed addresses %s, %s)" % (
            rig.endpoint_of(a, b), rig.endpoint_of(b, a), b.router.wan_addr, a.router.wan_addr))
        fig("relay_cone_to_direct", t_direct, "s")
        got = rig.wait_pairs([(a, b)], 10, need=3)
        expect(got, "a-b direct in status but not pinging")
        # c (cone NAT all along) can punch to both now too; all three pairs
        # connected directly before the NATs turn back, so that any direct
        # path claimed after that is a false one (see false_directs).
        nated = [(a, b), (a, c), (b, c)]

        def all_direct():
            return not alive(rig) or all(
                rig.peer_status(n, o).get("connected") and route(rig, n, o)[0] == "direct"
                for x, y in nated for n, o in ((x, y), (y, x)))
        ok = wait_for(all_direct, max(5.0, BOUND_DIRECT - (time.monotonic() - t1)), 0.2)
        rig.check_daemons_alive()
        expect(ok, "NAT-ed pairs not all direct after the NATs became cone NATs: %s" % ", ".join(
            "%s->%s %s" % (n.name, o.name, routes_text(rig, n, o))
            for x, y in nated for n, o in ((x, y), (y, x))))
        fig("relay_cone_all_direct", time.monotonic() - t1, "s")

        # --- 3: symmetric again, relay lost, the other relay ------------------
        for r in (a.router, b.router):
            make_symmetric(rig, r)
        t2 = time.monotonic()
        say("sa and sb are symmetric NATs again (rig time %.3f)" % (t2 - R.T_START))
        via = wait_for(lambda: both_relayed(rig, a, b, relays) or not alive(rig),
                       BOUND_RELAY, 0.2)
        rig.check_daemons_alive()
        expect(via, "a-b not relayed %.0f s after the NATs became symmetric: "
               "a sees b %s, b sees a %s" % (BOUND_RELAY, routes_text(rig, a, b),
                                             routes_text(rig, b, a)))
        left = max(5.0, BOUND_RELAY - (time.monotonic() - t2))
        got = rig.wait_pairs([(a, b)], left, stop=lambda: not alive(rig))
        rig.check_daemons_alive()
        expect(got, "a-b relayed through %s in status but not pinging" % via.name)
        t_back = max(got.values()) - t2
        via = both_relayed(rig, a, b, relays) or via
        print_routes(rig, [a, b])
        fig("relay_symmetric_to_relayed", t_back, "s")
        other = r2 if via is r1 else r1
        rig.stop_daemon(via)
        what = "daemon stopped"
        if kill_wg:
            rig.stop_wg(via)
            what += ", wireguard-go stopped"
        t3 = time.monotonic()
        say("relay %s lost (%s) at rig time %.3f; forwarding on %s: %s" % (
            via.name, what, t3 - R.T_START, via.wg,
            "gone" if kill_wg else forwarding(via)))
        if not kill_wg:
            expect(forwarding(via) == "0", "%s still forwards after its daemon exited" % via.name)
        got = rig.wait_pairs([(a, b)], BOUND_RELAY, stop=lambda: not alive(rig))
        rig.check_daemons_alive()
        print_routes(rig, [a, b])
        expect(got, "a-b not pinging %.0f s after relay %s was lost: a sees b %s, "
               "b sees a %s" % (BOUND_RELAY, via.name, routes_text(rig, a, b),
                                routes_text(rig, b, a)))
        t_fail = max(got.values()) - t3
        now = wait_for(lambda: both_relayed(rig, a, b, relays) is other, 15, 0.2)
        expect(now, "a-b ping but status does not say through %s: a sees b %s, b sees a %s" % (
            other.name, routes_text(rig, a, b), routes_text(rig, b, a)))
        ha, hb = entry_holding(rig, a, b.mesh_ip), entry_holding(rig, b, a.mesh_ip)
        expect(ha is other and hb is other, "device routes a-b via %s and %s, not %s" % (
            ha and ha.name, hb and hb.name, other.name))
        fig("relay_lost_to_other_relay", t_fail, "s")
        # The rest of the mesh without the lost relay still works.
        rest = [p for p in rig.pairs() if via not in p]
        got = rig.wait_pairs(rest, 30, need=2, stop=lambda: not alive(rig))
        rig.check_daemons_alive()
        expect(len(got) == len(rest), "pairs not pinging after the relay loss: %s" %
               S.fmt_pairs([p for p in rest if p not in got]))
        # No flapping: no direct path claimed that cannot work (no NAT-ed
        # pair can punch while the NATs are symmetric, since t2); such a
        # claim moves the pair's route back onto a dead path.
        bogus = false_directs(rig, [a, b, c], t2 - R.T_START)
        fig("relay_false_direct_while_symmetric", len(bogus))
        expect(not bogus, "%d direct path(s) claimed connected while the NATs were "
               "symmetric (rig time, node->peer): %s" % (len(bogus), ", ".join(
                   "%.1f %s->%s" % (t, n.name, o.name) for t, n, o in bogus)))
        return True
    except BaseException:
        rig.dump_logs()
        raise
    finally:
        if tracer:
            tracer.stop()
        rig.cleanup()


def main(argv):
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    return R.run_test("relay", lambda: run("--keep" in argv, "--kill-wg" in argv,
                                           "--without-relay" not in argv,
                                           "--trace" in argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
