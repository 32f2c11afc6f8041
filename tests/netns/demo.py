#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Live demo: four wgautomesh nodes form a WireGuard full mesh through NAT,
in network namespaces on this machine. Run by examples/demo.sh, or:

    sudo python3 tests/netns/demo.py BUILD/cli/wgautomesh [--hold 20] [--timeout 120]
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rig as R  # noqa: E402

TOPOLOGY = "pub:hub nat:home nat:office host:alice@home host:carol@home host:bob@office"

HEADER = """\
What you are looking at
-----------------------
Four machines, each in its own network namespace with a userspace WireGuard
interface (wireguard-go) and a wgautomesh daemon. They share ONE config: every
node's public key and mesh address (100.64.0.x), and only ONE endpoint:
the public server "hub". Nobody tells anyone else where the others are.

  hub    198.51.100.10   a server with a public address
  alice  192.168.10.11   at home, behind a NAT router (public 203.0.113.10)
  carol  192.168.10.12   on the same home LAN as alice
  bob    192.168.11.11   at the office, behind another NAT (public 203.0.113.11)

The daemons tell each other, through the tunnels they already have, which
ip:port they see for each peer (gossip). So alice and bob learn each other's
NAT-ed address from hub and punch through both NATs directly; alice and carol
find each other by LAN broadcast and talk over the LAN. The NAT routers are
real (nftables masquerade, unsolicited packets dropped)."""

COMPACT = """\
wgautomesh live demo: 4 WireGuard nodes; the config gives an endpoint for "hub" only
  hub 198.51.100.10 (public) | alice 192.168.10.11 + carol 192.168.10.12: one LAN
  behind NAT "home" 203.0.113.10 | bob 192.168.11.11 behind NAT "office" 203.0.113.11"""

LEGEND = """\
Matrix: row pings column over the mesh (ICMP through WireGuard): "ok" or "--".
Per node: each peer, the endpoint WireGuard uses and how the daemon learned it
(config, gossip = told by a peer, lan = broadcast, roaming = WireGuard saw
packets from there), and the peer's state."""


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    wgam = os.path.abspath(argv[1])
    hold = float(argv[argv.index("--hold") + 1]) if "--hold" in argv else 20.0
    limit = float(argv[argv.index("--timeout") + 1]) if "--timeout" in argv else 120.0
    why = R.environment_problem() or (
        R.missing_tools() and "missing " + ", ".join(R.missing_tools()))
    if why:
        print("cannot run the demo: " + why)
        return 1
    tty = sys.stdout.isatty()
    print(HEADER)
    print()
    print("Building the topology (namespaces, NAT routers, WireGuard interfaces)...")
    rig = R.Rig(TOPOLOGY, wgam_bin=wgam, keep=os.environ.get("DEMO_KEEP") == "1")
    order = [rig.node(n) for n in ("hub", "alice", "carol", "bob")]
    rig.nodes = order  # display order; mesh addresses were fixed at creation
    try:
        rig.start_all_wg()
        rig.write_configs(endpoints=rig.public_endpoints(), policy="fast")
        print("Starting the four daemons now. (logs: %s/*/daemon.log)" % rig.tmp)
        if tty:
            print("(the live view starts in 8 s)")
            time.sleep(8)
        rig.start_daemons()
        t0 = time.monotonic()
        converged_at = None
        last_frame = None
        last_print = 0.0
        ordered = [(a, b) for a in order for b in order if a is not b]
        while True:
            rig.check_daemons_alive()
            got = rig.wait_pairs(ordered, 0.8)
            now = time.monotonic() - t0
            ok = set(got)
            full = len(ok) == len(ordered)
            if full and converged_at is None:
                converged_at = now
            elif not full:
                converged_at = None
            frame = render(rig, order, ok)
            changed = frame != last_frame
            if tty:
                sys.stdout.write("\033[H\033[J")
                print(COMPACT)
                print(LEGEND)
                print()
                print("t = %5.1f s since the daemons started%s" % (now, status_line(converged_at, now, hold)))
                print(frame)
                sys.stdout.flush()
            elif changed or now - last_print >= 5:
                print()
                print("--- t = %5.1f s%s" % (now, status_line(converged_at, now, hold)))
                if last_frame is None:
                    print(LEGEND)
                print(frame)
                sys.stdout.flush()
                last_print = now
            last_frame = frame
            if converged_at is not None and now - converged_at >= hold:
                print()
                print("The mesh formed by itself in %.1f s and stayed up for %.0f s: all 12 "
                      "directions answer." % (converged_at, now - converged_at))
                print("Tearing everything down.")
                return 0
            if converged_at is None and now > limit:
                print()
                print("The mesh did not form within %.0f s. Daemon logs follow." % limit)
                rig.dump_logs(lines=20)
                return 1
            time.sleep(max(0, 1.0 - (time.monotonic() - t0 - now)))
    finally:
        rig.cleanup()


def status_line(converged_at, now, hold):
    if converged_at is None:
        return "  (forming...)"
    return "  (full mesh since %.1f s; ending in %.0f s, Ctrl-C to stop now)" % (
        converged_at, max(0, hold - (now - converged_at)))


def render(rig, order, ok):
    names = [n.name for n in order]
    w = 7
    lines = ["", " " * w + "".join("%-*s" % (w, n) for n in names)]
    for a in order:
        row = "%-*s" % (w, a.name)
        for b in order:
            row += "%-*s" % (w, "." if a is b else ("ok" if (a, b) in ok else "--"))
        lines.append(row)
    lines.append("")
    for a in order:
        try:
            st = rig.status(a, timeout=2)
        except Exception as e:  # daemon not answering yet
            lines.append("%-6s status not available yet (%s)" % (a.name, str(e).split(":")[-1].strip()[:40]))
            continue
        lines.append("%-6s (%s)" % (a.name, a.mesh_ip))
        for p in st.get("peers", []):
            other = next((o.name for o in order if o.pubkey == p.get("pubkey")), "?")
            lines.append("   -> %-6s %-22s %-8s %s" % (
                other, p.get("endpoint") or "(no endpoint)", p.get("source") or "",
                p.get("state") or ""))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
