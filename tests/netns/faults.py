#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fault injectors for the soak test (soak.py), on a rig (rig.py). Each one
breaks something the way it breaks in real life, inside the rig's namespaces
only, and returns when the fault is over: the clock of its recovery starts
then. Every random choice comes from the caller's seeded generator.

    nat_reboot   a NAT router reboots: mappings forgotten (conntrack -F),
                 new external port range (masquerade to :LO-HI)
    wan_change   a NAT router's ISP gives it another WAN address
    kill9        a daemon killed with SIGKILL, restarted after a moment
    hup_peers    a daemon reloaded (SIGHUP) with some peers removed from its
                 configuration, then reloaded again with them back
    wg_recreate  the WireGuard interface deleted (wireguard-go stopped) and
                 created again, empty, while the daemon runs
    wan_loss     random loss on the internet bridge (nftables numgen in the
                 bridge family) for a window
    garbage      random UDP datagrams to a daemon's gossip port at line rate,
                 bounded in count and time, over the underlay or the mesh
    state_bad    a daemon stopped, its state file corrupted or made
                 unreadable, the daemon started again
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import rig as R

KINDS = ("nat_reboot", "wan_change", "kill9", "hup_peers", "wg_recreate",
         "wan_loss", "garbage", "state_bad")

GARBAGE_MAX_COUNT = 200000
GARBAGE_MAX_SECONDS = 3.0


def rig_time():
    return time.monotonic() - R.T_START


# --- configuration with per-peer keys ----------------------------------------

def write_config(rig, node, relays=(), drop=()):
    """The rig's configuration for @node, with `"relay": true` on the peers
    in @relays and without the peers in @drop."""
    endpoints = rig.public_endpoints()
    rig.write_config(node, endpoints)
    cfg = node.config
    keys = {n.pubkey: n for n in rig.nodes}
    peers = []
    for p in cfg["peers"]:
        n = keys.get(p["pubkey"])
        if n in drop:
            continue
        if n in relays:
            p["relay"] = True
        peers.append(p)
    cfg["peers"] = peers
    node.config = cfg
    with open(node.config_path, "w") as f:
        json.dump(cfg, f, indent=1)


def config_accepts_relay(rig, wgam):
    """True when `wgautomesh check` accepts a peer's "relay": true."""
    n = rig.nodes[0]
    path = os.path.join(n.dir, "relay-probe.json")
    cfg = dict(n.config)
    cfg["peers"] = [dict(p) for p in cfg["peers"]]
    cfg["peers"][0]["relay"] = True
    with open(path, "w") as f:
        json.dump(cfg, f)
    p = subprocess.run([wgam, "check", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    os.unlink(path)
    return p.returncode == 0


# --- the injectors ------------------------------------------------------------

class Ctx:
    """What the injectors share with the soak loop."""

    def __init__(self, rig, relays):
        self.rig = rig
        self.relays = relays
        self.expected_deaths = set()  # nodes whose daemon we stop on purpose
        self.used_wan = set(r.wan_addr for r in rig.routers.values())
        self.lock = threading.Lock()
        self.flags = ("-v",)


def targets(ctx, kind):
    """Possible targets of @kind: routers, nodes or the internet."""
    rig = ctx.rig
    if kind in ("nat_reboot", "wan_change"):
        return list(rig.routers.values())
    if kind == "wan_loss":
        return ["wan"]
    return list(rig.nodes)


def nat_reboot(ctx, rng, r):
    lo = rng.randrange(10, 60) * 1000
    hi = lo + 999
    rnd = " random" if r.symmetric else ""
    ns = r.ns
    R.sh(["ip", "netns", "exec", ns, "nft", "flush", "chain", "ip", "nat", "postrouting"])
    R.sh(["ip", "netns", "exec", ns, "nft", "add", "rule", "ip", "nat", "postrouting",
          "oifname", r.wan, "meta", "l4proto", "udp", "masquerade", "to",
          ":%d-%d" % (lo, hi)] + rnd.split())
    R.sh(["ip", "netns", "exec", ns, "nft", "add", "rule", "ip", "nat", "postrouting",
          "oifname", r.wan, "masquerade"] + rnd.split())
    R.sh(["ip", "netns", "exec", ns, "conntrack", "-F"])
    return "%s: conntrack flushed, udp ports %d-%d" % (r.name, lo, hi)


def wan_change(ctx, rng, r):
    with ctx.lock:
        free = ["203.0.113.%d" % k for k in range(100, 200)
                if "203.0.113.%d" % k not in ctx.used_wan]
        new = rng.choice(free)
        ctx.used_wan.discard(r.wan_addr)
        ctx.used_wan.add(new)
    old = r.wan_addr
    ctx.rig.move_router(r, new)
    return "%s: %s -> %s" % (r.name, old, new)


def _daemon_down(ctx, node, sig):
    with ctx.lock:
        ctx.expected_deaths.add(node)
    p = node.daemon
    if p is not None:
        p.send_signal(sig)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    node.daemon = None


def start_daemon(rig, node, flags=("-v",)):
    """rig.start_daemon with the verbosity flags of the soak (-v: debug)."""
    argv = [rig.wgam] + list(flags) + ["run", node.config_path]
    with open(node.log_path, "ab") as f:
        f.write(b"[%8.3f] === daemon started\n" % rig_time())
    node.daemon = rig.spawn(node.ns, argv, node.log_path, stamp=True)
    return node.daemon


def _daemon_up(ctx, node):
    start_daemon(ctx.rig, node, ctx.flags)
    with ctx.lock:
        ctx.expected_deaths.discard(node)


def kill9(ctx, rng, node):
    _daemon_down(ctx, node, signal.SIGKILL)
    pause = rng.uniform(0, 2)
    time.sleep(pause)
    _daemon_up(ctx, node)
    return "%s: SIGKILL, restarted %.1f s later" % (node.name, pause)


def hup_peers(ctx, rng, node):
    rig = ctx.rig
    others = [n for n in rig.nodes if n is not node]
    drop = rng.sample(others, rng.randint(1, 3))
    window = rng.uniform(2, 6)
    write_config(rig, node, ctx.relays, drop=drop)
    node.daemon.send_signal(signal.SIGHUP)
    time.sleep(window)
    write_config(rig, node, ctx.relays)
    node.daemon.send_signal(signal.SIGHUP)
    return "%s: peers %s removed for %.1f s" % (
        node.name, ",".join(n.name for n in drop), window)


def wg_recreate(ctx, rng, node):
    rig = ctx.rig
    rig.stop_wg(node)
    pause = rng.uniform(0, 2)
    time.sleep(pause)
    rig.start_wg(node)
    return "%s: interface gone for %.1f s" % (node.name, pause)


def wan_loss(ctx, rng, _target):
    pct = rng.choice((10, 20, 30, 50))
    window = rng.uniform(5, 15)
    ns = ctx.rig.wan_ns
    R.sh(["ip", "netns", "exec", ns, "nft", "-f", "-"], input="""
table bridge chaos {
  chain f {
    type filter hook forward priority 0; policy accept;
    numgen random mod 100 < %d drop
  }
}
""" % pct)
    try:
        time.sleep(window)
    finally:
        R.sh(["ip", "netns", "exec", ns, "nft", "delete", "table", "bridge", "chaos"])
    return "%d %% loss for %.1f s" % (pct, window)


def garbage(ctx, rng, node):
    """Random datagrams at line rate to @node's gossip port: over the
    underlay from the network in front of it (the internet for a public
    node, its router for a LAN host), or over the mesh from another node."""
    rig = ctx.rig
    if rng.random() < 0.5:
        src_ns = node.router.ns if node.router else rig.wan_ns
        dst = node.addr
        path = "underlay from %s" % (node.router.name if node.router else "wan")
    else:
        src = rng.choice([n for n in rig.nodes if n is not node])
        src_ns = src.ns
        dst = node.mesh_ip
        path = "mesh from %s" % src.name
    payloads = [os.urandom(rng.choice((1, 8, 32, 48, 64, 100, 200, 500, 1000, 1400,
                                       rng.randrange(1, 1500))))
                for _ in range(256)]
    s = R.ns_socket(src_ns, socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    count = rng.randrange(GARBAGE_MAX_COUNT // 4, GARBAGE_MAX_COUNT)
    seconds = rng.uniform(1, GARBAGE_MAX_SECONDS)
    sent = errors = 0
    t0 = time.monotonic()
    deadline = t0 + seconds
    i = 0
    try:
        while i < count:
            if (i & 1023) == 0 and time.monotonic() >= deadline:
                break
            try:
                s.sendto(payloads[i & 255], (dst, R.GOSSIP_PORT))
                sent += 1
            except BlockingIOError:
                time.sleep(0.0005)  # the queue is full: that is line rate
            except OSError:
                errors += 1
            i += 1
    finally:
        s.close()
    dt = time.monotonic() - t0
    return "%s (%s): %d datagrams in %.1f s (%.0f/s)" % (
        node.name, path, sent, dt, sent / dt if dt else 0)


def _corrupt(rng, path):
    how = rng.choice(("random", "truncated", "flipped", "empty", "directory",
                      "symlink-loop", "fifo"))
    try:
        data = open(path, "rb").read()
    except OSError:
        data = b""
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)
    elif os.path.lexists(path):
        os.unlink(path)
    if how == "random":
        data = os.urandom(max(1, len(data)))
    elif how == "truncated":
        data = data[:rng.randrange(0, max(1, len(data)))]
    elif how == "flipped":
        if data:
            b = bytearray(data)
            k = rng.randrange(len(b))
            b[k] ^= 1 << rng.randrange(8)
            data = bytes(b)
    elif how == "empty":
        data = b""
    if how == "directory":
        os.mkdir(path)
    elif how == "symlink-loop":
        os.symlink(os.path.basename(path), path)
    elif how == "fifo":
        os.mkfifo(path)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return how


def restore_state_path(path):
    """Removes what state_bad left that a daemon cannot replace by itself
    (a directory, a loop, a FIFO), so it writes its state file again."""
    if os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path)):
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)
        return True
    return False


def state_bad(ctx, rng, node):
    sig = rng.choice((signal.SIGKILL, signal.SIGTERM))
    _daemon_down(ctx, node, sig)
    how = _corrupt(rng, node.state_path)
    _daemon_up(ctx, node)
    return "%s: stopped by %s, state file %s" % (
        node.name, "SIGKILL" if sig == signal.SIGKILL else "SIGTERM", how)


INJECT = {
    "nat_reboot": nat_reboot,
    "wan_change": wan_change,
    "kill9": kill9,
    "hup_peers": hup_peers,
    "wg_recreate": wg_recreate,
    "wan_loss": wan_loss,
    "garbage": garbage,
    "state_bad": state_bad,
}


def resource(kind, target):
    """What a fault holds, so that two at once do not collide: a router and
    the nodes behind it, a node, or the internet."""
    if kind == "wan_loss":
        return {"wan"}
    if isinstance(target, R.Router):
        return {"router:" + target.name}
    res = {"node:" + target.name}
    if target.router is not None:
        res.add("router:" + target.router.name)
    return res


# --- measurements -------------------------------------------------------------

def rss_kb(proc):
    """Resident set size of a process we started, in KiB (None if gone)."""
    if proc is None or proc.poll() is not None:
        return None
    try:
        with open("/proc/%d/status" % proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def forwarding(node):
    """The relay's IPv4 forwarding switch on its WireGuard interface (the
    daemon of a relay turns it on), or None when there is no interface."""
    try:
        out = node.sh(["cat", "/proc/sys/net/ipv4/conf/%s/forwarding" % node.wg],
                      check=False)
        return int(out.strip()) if out.strip() else None
    except (ValueError, OSError):
        return None


def state_loads(wgam, path):
    """(ok, message): `wgautomesh decode --state` reads the file."""
    if not os.path.isfile(path):
        return False, "no state file"
    p = subprocess.run([wgam, "decode", "--state", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return False, "exit %d: %s" % (p.returncode, p.stderr.strip()[:200])
    try:
        json.loads(p.stdout)
    except ValueError as e:
        return False, "decoder output is not JSON: %s" % e
    return True, "%d bytes" % os.path.getsize(path)


class Sampler:
    """While a fault heals: every node's view of its peers (`status --json`:
    state, endpoint, source, tries, the endpoints it knows with their
    times), once a second, one JSON line per node into @path."""

    def __init__(self, rig, path, label):
        self.rig = rig
        self.path = path
        self.label = label
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.names = {n.pubkey: n.name for n in rig.nodes}

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join()

    def run(self):
        with open(self.path, "a") as out:
            out.write(json.dumps({"t": round(rig_time(), 3), "fault": self.label}) + "\n")
            while not self.stop_ev.is_set():
                for n in self.rig.nodes:
                    if n.daemon is None or n.daemon.poll() is not None:
                        continue
                    p = subprocess.run([self.rig.wgam, "status", "--json", n.config_path],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       text=True, timeout=5)
                    try:
                        st = json.loads(p.stdout)
                    except ValueError:
                        continue
                    peers = {}
                    for q in st.get("peers", []):
                        name = self.names.get(q.get("pubkey"), "?")
                        if name == n.name:
                            continue
                        peers[name] = [q.get("state"), q.get("endpoint"), q.get("source"),
                                       q.get("tries"), [(k.get("addr"), k.get("time"))
                                                        for k in q.get("known") or []],
                                       q.get("lan_endpoint"), q.get("route"),
                                       q.get("via")]
                    out.write(json.dumps({"t": round(rig_time(), 3), "node": n.name,
                                          "ext": st.get("external_endpoint"),
                                          "peers": peers}) + "\n")
                out.flush()
                self.stop_ev.wait(1.0)
