#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end rig: real wgautomesh daemons on wireguard-go interfaces in network
namespaces, behind real nftables NAT routers. Python 3 standard library only.

A topology is a short description, words separated by spaces:

    pub:NAME            a host with a public address (198.51.100.0/24)
    nat:NAME            a port-restricted cone NAT router (WAN 203.0.113.0/24)
    sym:NAME            a symmetric NAT router (masquerade random)
    host:NAME@ROUTER    a host on the LAN (192.168.x.0/24) behind ROUTER

The "wan" namespace holds the internet: one bridge, 198.51.100.1 and 203.0.113.1
as the gateways of both public ranges, forwarding between them. Every host gets
a default route (LAN broadcast needs one), a wireguard-go interface with a fresh
key and listen port 51820, and a mesh address 100.64.0.N/10.

Every name this rig creates starts with PREFIX + a random tag (PREFIX defaults
to "e2e"): namespaces "e2e1a2b-NAME", interfaces "e2e1a2bw3" etc.; the tag is
recorded in /run/wgam-e2e/ with the owner's PID so `rig.py cleanup` removes
only leftovers of runs whose owner died.

Command line:
    rig.py cleanup [--all]      remove leftovers of crashed runs (--all: also live ones)
    rig.py selftest             validate the rig without the daemon: plain wg
                                configuration, NAT punching by hand, LAN broadcast
"""

import atexit
import ctypes
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

PREFIX = os.environ.get("E2E_PREFIX", "e2e")
RUN_DIR = "/run/wgam-e2e"
WG_SOCK_DIR = "/var/run/wireguard"
LISTEN_PORT = 51820
GOSSIP_PORT = 1666
CLONE_NEWNET = 0x40000000

SKIP = 77


def log(msg):
    sys.stderr.write("[rig %7.2f] %s\n" % (time.monotonic() - T_START, msg))
    sys.stderr.flush()


T_START = time.monotonic()


def sh(argv, check=True, capture=True, timeout=30, input=None):
    """Runs argv; returns stdout (str). Raises on failure when check."""
    p = subprocess.run(argv, stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE, timeout=timeout, input=input,
                       text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                                 (p.stderr or "").strip()))
    return p.stdout if capture else ""


def environment_problem():
    """Returns why netns tests cannot run here, or None. Only a truly missing
    capability (root, network namespaces, wireguard-go and its tun device)
    is a reason to skip."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no iproute2, so no network namespaces"
    if shutil.which("wireguard-go") is None:
        return "wireguard-go not installed"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun for wireguard-go"
    name = "%sprobe%d" % (PREFIX, os.getpid())
    p = subprocess.run(["ip", "netns", "add", name], stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        return "cannot create a network namespace: " + p.stderr.strip()
    subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
    return None


def missing_tools():
    """Tools the rig needs besides those: their absence is a failure."""
    return [t for t in ("wg", "nft", "sysctl") if shutil.which(t) is None]


def skip_unless_possible():
    why = environment_problem()
    if why:
        print("SKIP: " + why)
        sys.exit(SKIP)
    missing = missing_tools()
    if missing:
        print("FAIL: missing %s (Debian: wireguard-tools, nftables, procps)" % ", ".join(missing))
        sys.exit(1)


def run_test(name, fn):
    """The common end of a test script: SKIP (exit 77) where the machine
    cannot run it, FAIL without the daemon under test (WGAM_BIN), then
    fn(), whose AssertionError is a FAIL. Returns the exit status."""
    skip_unless_possible()
    wgam = os.environ.get("WGAM_BIN")
    if not wgam or not os.access(wgam, os.X_OK):
        print("FAIL: WGAM_BIN does not name the daemon executable (%r)" % wgam)
        return 1
    t = time.monotonic()
    try:
        fn()
    except AssertionError as e:
        print("FAIL: %s: %s (after %.1f s)" % (name, e, time.monotonic() - t))
        return 1
    print("PASS: %s (%.1f s)" % (name, time.monotonic() - t))
    return 0


# --- sockets inside a namespace, without a child process -------------------

_libc = ctypes.CDLL(None, use_errno=True)


def ns_socket(ns, family, type_, proto=0):
    """Creates a socket inside netns @ns: setns() only changes the calling
    thread, so do it in a short-lived thread; the socket keeps its namespace."""
    out = {}

    def run():
        try:
            fd = os.open("/run/netns/" + ns, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, "setns %s: %s" % (ns, os.strerror(e)))
            finally:
                os.close(fd)
            out["sock"] = socket.socket(family, type_, proto)
        except BaseException as e:  # handed to the caller
            out["err"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["sock"]


def _icmp_checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


class Prober:
    """ICMP echo between namespaces with raw sockets (no ping binary needed,
    10 probes/s per pair, ms resolution)."""

    FAMILY = socket.AF_INET
    PROTO = socket.IPPROTO_ICMP

    def __init__(self):
        self.socks = {}
        self.ident = random.randrange(1, 0xFFFF)

    def _sock(self, ns):
        s = self.socks.get(ns)
        if s is None:
            s = ns_socket(ns, self.FAMILY, socket.SOCK_RAW, self.PROTO)
            s.setblocking(False)
            self.socks[ns] = s
        return s

    def close(self):
        for s in self.socks.values():
            s.close()
        self.socks = {}

    def watch(self, pairs, timeout, interval=0.1, need=1, stop=None, on_reply=None):
        """Probes every pair (src_ns, dst_ip) until each answered @need times
        (consecutively counted from the first answer) or @timeout seconds.
        Returns {pair: monotonic time of the first answer} for the pairs
        that answered. @stop(): optional predicate to end early."""
        pairs = list(pairs)
        index = {}
        for n, (ns, ip) in enumerate(pairs):
            index[(ns, ip, n)] = (ns, ip)
        first = {}
        count = {n: 0 for n in range(len(pairs))}
        seq = 0
        deadline = time.monotonic() + timeout
        nxt = 0.0
        while True:
            now = time.monotonic()
            if all(count[n] >= need for n in count):
                break
            if now >= deadline or (stop is not None and stop()):
                break
            if now >= nxt:
                seq = (seq + 1) & 0xFFFF
                for n, (ns, ip) in enumerate(pairs):
                    if count[n] >= need:
                        continue
                    ident = (self.ident + n) & 0xFFFF
                    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
                    payload = struct.pack("!d", now) + b"wgautomesh-e2e"
                    ck = _icmp_checksum(hdr + payload)
                    pkt = struct.pack("!BBHHH", 8, 0, ck, ident, seq) + payload
                    try:
                        self._sock(ns).sendto(pkt, (ip, 0))
                    except OSError:
                        pass  # no route / no endpoint yet: keep trying
                nxt = now + interval
            socks = list(self.socks.values())
            if not socks:
                time.sleep(interval)
                continue
            r, _, _ = select.select(socks, [], [], max(0.0, min(nxt, deadline) - time.monotonic()))
            t = time.monotonic()
            for s in r:
                while True:
                    try:
                        data, addr = s.recvfrom(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    ihl = (data[0] & 0xF) * 4
                    if len(data) < ihl + 8:
                        continue
                    typ, _, _, ident, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                    if typ != 0:
                        continue
                    n = (ident - self.ident) & 0xFFFF
                    if n >= len(pairs) or pairs[n][1] != addr[0]:
                        continue
                    if self.socks.get(pairs[n][0]) is not s:
                        continue
                    if n not in first:
                        first[n] = t
                        if on_reply:
                            on_reply(pairs[n], t)
                    count[n] += 1
        return {pairs[n]: first[n] for n in first if count[n] >= need}


# --- the rig ---------------------------------------------------------------

class Node:
    def __init__(self, rig, idx, name, kind, router=None):
        self.rig = rig
        self.idx = idx
        self.name = name
        self.kind = kind  # "pub" or "lan"
        self.router = router
        self.ns = rig.nsname(name)
        self.wg = rig.ifname("w", idx)
        self.up = rig.ifname("u", idx)      # uplink inside the host
        self.down = rig.ifname("d", idx)    # its other end, on a bridge
        self.mesh_ip = "100.64.0.%d" % (idx + 1)
        self.addr = None                    # current underlay address
        self.gw = None
        self.prefixlen = 24
        self.privkey = None
        self.pubkey = None
        self.wg_proc = None
        self.daemon = None
        self.daemon_log = None
        self.dir = os.path.join(rig.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "config.json")
        self.state_path = os.path.join(self.dir, "state.bin")
        self.ctl_path = os.path.join(self.dir, "ctl.sock")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.config = None

    def __repr__(self):
        return self.name

    def sh(self, argv, **kw):
        return sh(["ip", "netns", "exec", self.ns] + argv, **kw)

    @property
    def endpoint(self):
        return "%s:%d" % (self.addr, LISTEN_PORT)


class Router:
    def __init__(self, rig, idx, name, symmetric):
        self.rig = rig
        self.idx = idx
        self.name = name
        self.symmetric = symmetric
        self.ns = rig.nsname(name)
        self.wan = rig.ifname("rw", idx)
        self.wan_peer = rig.ifname("rv", idx)
        self.lanbr = rig.ifname("rb", idx)
        self.wan_addr = "203.0.113.%d" % (10 + idx)
        self.lan_net = "192.168.%d" % (10 + idx)
        self.nhosts = 0

    def __repr__(self):
        return self.name


class Rig:
    def __init__(self, topology, wgam_bin=None, keep=False):
        self.tag = None
        for _ in range(100):
            tag = "%04x" % random.randrange(0x10000)
            if not any(n.startswith(PREFIX + tag) for n in list_netns()):
                self.tag = tag
                break
        self.base = PREFIX + self.tag
        self.tmp = tempfile.mkdtemp(prefix="wgam-%s-" % self.base)
        self.wgam = wgam_bin or os.environ.get("WGAM_BIN")
        self.keep = keep
        self.nodes = []
        self.routers = {}
        self.namespaces = []
        self.procs = []
        self.cleaned = False
        self.secret = os.urandom(16).hex()
        self.policy = "fast"
        self.prober = Prober()
        self.wan_ns = None
        self._lock = threading.Lock()
        os.makedirs(RUN_DIR, exist_ok=True)
        with open(os.path.join(RUN_DIR, self.base), "w") as f:
            f.write("%d\n%s\n" % (os.getpid(), self.tmp))
        _install_cleanup(self)
        try:
            self._build(topology)
        except BaseException:
            self.cleanup()
            raise

    # names
    def nsname(self, name):
        return "%s-%s" % (self.base, name)

    def ifname(self, role, idx):
        n = "%s%s%d" % (self.base, role, idx)
        assert len(n) <= 15, n
        return n

    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    # building
    def _ns_add(self, name):
        ns = self.nsname(name)
        sh(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        return ns

    def _sysctl(self, ns, key, val):
        sh(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "%s=%s" % (key, val)])

    def _build(self, topology):
        self.wan_ns = self._ns_add("wan")
        br = self.ifname("br", 0)
        w = self.wan_ns
        sh(["ip", "-n", w, "link", "add", br, "type", "bridge"])
        sh(["ip", "-n", w, "addr", "add", "198.51.100.1/24", "dev", br])
        sh(["ip", "-n", w, "addr", "add", "203.0.113.1/24", "dev", br])
        sh(["ip", "-n", w, "link", "set", br, "up"])
        self._sysctl(w, "net.ipv4.ip_forward", 1)
        # Same-bridge forwarding between the two public ranges: no redirects,
        # so traffic between them keeps going through the "internet" router.
        self._sysctl(w, "net.ipv4.conf.all.send_redirects", 0)
        self._sysctl(w, "net.ipv4.conf.%s.send_redirects" % br, 0)
        self.wan_br = br
        # The internet does not carry LAN broadcasts: without this, public
        # hosts (one L2 segment here) would "LAN-discover" each other.
        sh(["ip", "netns", "exec", w, "nft", "-f", "-"], input="""
table bridge wan {
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip daddr 255.255.255.255 drop
  }
}
""")
        npub = 0
        for word in topology.split():
            kind, _, rest = word.partition(":")
            if kind == "pub":
                self._add_public(rest, npub)
                npub += 1
            elif kind in ("nat", "sym"):
                self._add_router(rest, kind == "sym")
            elif kind == "host":
                name, _, rname = rest.partition("@")
                self._add_lan_host(name, self.routers[rname])
            else:
                raise ValueError("bad topology word %r" % word)
        log("topology %s: %s (files in %s)" % (self.base, topology, self.tmp))

    def _new_node(self, name, kind, router=None):
        node = Node(self, len(self.nodes), name, kind, router)
        self.nodes.append(node)
        self._ns_add(name)
        node.privkey = sh(["wg", "genkey"]).strip()
        node.pubkey = sh(["wg", "pubkey"], input=node.privkey + "\n").strip()
        with open(os.path.join(node.dir, "private.key"), "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(node.privkey + "\n")
        return node

    def _add_public(self, name, k):
        node = self._new_node(name, "pub")
        node.addr = "198.51.100.%d" % (10 + k)
        node.gw = "198.51.100.1"
        self._uplink(node, self.wan_ns, self.wan_br)

    def _uplink(self, node, bridge_ns, bridge):
        sh(["ip", "-n", node.ns, "link", "add", node.up, "type", "veth",
            "peer", "name", node.down, "netns", bridge_ns])
        sh(["ip", "-n", bridge_ns, "link", "set", node.down, "master", bridge])
        sh(["ip", "-n", bridge_ns, "link", "set", node.down, "up"])
        sh(["ip", "-n", node.ns, "addr", "add", "%s/%d" % (node.addr, node.prefixlen),
            "dev", node.up])
        sh(["ip", "-n", node.ns, "link", "set", node.up, "up"])
        sh(["ip", "-n", node.ns, "route", "add", "default", "via", node.gw])

    def _add_router(self, name, symmetric):
        r = Router(self, len(self.routers), name, symmetric)
        self.routers[name] = r
        self._ns_add(name)
        sh(["ip", "-n", r.ns, "link", "add", r.wan, "type", "veth", "peer",
            "name", r.wan_peer, "netns", self.wan_ns])
        sh(["ip", "-n", self.wan_ns, "link", "set", r.wan_peer, "master", self.wan_br])
        sh(["ip", "-n", self.wan_ns, "link", "set", r.wan_peer, "up"])
        sh(["ip", "-n", r.ns, "addr", "add", r.wan_addr + "/24", "dev", r.wan])
        sh(["ip", "-n", r.ns, "link", "set", r.wan, "up"])
        sh(["ip", "-n", r.ns, "route", "add", "default", "via", "203.0.113.1"])
        sh(["ip", "-n", r.ns, "link", "add", r.lanbr, "type", "bridge"])
        sh(["ip", "-n", r.ns, "addr", "add", r.lan_net + ".1/24", "dev", r.lanbr])
        sh(["ip", "-n", r.ns, "link", "set", r.lanbr, "up"])
        self._sysctl(r.ns, "net.ipv4.ip_forward", 1)
        # LAB.md: masquerade alone is not enough, a router must drop
        # unsolicited UDP to itself or its own conntrack entries clash with
        # the LAN host's later mapping; "random" gives endpoint-dependent
        # mapping, i.e. a symmetric NAT.
        rules = """
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "%s" masquerade%s
  }
}
table inet fw {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "%s" ct state new meta l4proto udp drop
  }
}
""" % (r.wan, " random" if symmetric else "", r.wan)
        sh(["ip", "netns", "exec", r.ns, "nft", "-f", "-"], input=rules)

    def _add_lan_host(self, name, r):
        node = self._new_node(name, "lan", r)
        r.nhosts += 1
        node.addr = "%s.%d" % (r.lan_net, 10 + r.nhosts)
        node.gw = r.lan_net + ".1"
        self._uplink(node, r.ns, r.lanbr)

    # processes
    def spawn(self, ns, argv, logfile, env=None, stamp=False):
        """Starts argv in netns @ns, output appended to @logfile; with @stamp
        every line gets the rig's clock (seconds since the rig started) so
        daemon logs line up with the scenario's figures."""
        out = open(logfile, "ab")
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv,
                             stdout=subprocess.PIPE if stamp else out,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=e)
        if stamp:
            def pump(src, dst):
                for line in iter(src.readline, b""):
                    dst.write(b"[%8.3f] " % (time.monotonic() - T_START) + line)
                    dst.flush()
                src.close()
                dst.close()
            threading.Thread(target=pump, args=(p.stdout, out), daemon=True).start()
        else:
            out.close()
        with self._lock:
            self.procs.append(p)
        return p

    def start_wg(self, node, peers_by_hand=False):
        """wireguard-go interface with the node's key, port and mesh address."""
        sock = os.path.join(WG_SOCK_DIR, node.wg + ".sock")
        node.wg_proc = self.spawn(node.ns, ["wireguard-go", "-f", node.wg],
                                  os.path.join(node.dir, "wireguard-go.log"),
                                  env={"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
                                       "LOG_LEVEL": os.environ.get("E2E_WG_LOG", "error")})
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if node.wg_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("wireguard-go for %s did not start" % node.name)
            time.sleep(0.01)
        node.sh(["wg", "set", node.wg, "private-key",
                 os.path.join(node.dir, "private.key"), "listen-port", str(LISTEN_PORT)])
        node.sh(["ip", "addr", "add", node.mesh_ip + "/10", "dev", node.wg])
        node.sh(["ip", "link", "set", node.wg, "up"])

    def stop_wg(self, node):
        stop_proc(node.wg_proc, signal.SIGTERM)
        node.wg_proc = None
        sock = os.path.join(WG_SOCK_DIR, node.wg + ".sock")
        for _ in range(100):
            if not os.path.exists(sock):
                break
            time.sleep(0.02)

    def start_all_wg(self):
        for n in self.nodes:
            self.start_wg(n)

    # daemon
    # Configuration keys every node gets (a benchmark's switch).
    extra_config = {}

    def write_config(self, node, endpoints=None, policy=None, extra=None):
        """Every node gets the same peer list (itself included, as with the
        original); only nodes in @endpoints {node: "ip:port"} get one."""
        peers = []
        for n in self.nodes:
            p = {"pubkey": n.pubkey, "address": n.mesh_ip}
            if endpoints and n in endpoints:
                p["endpoint"] = endpoints[n]
            peers.append(p)
        cfg = {
            "interface": node.wg,
            "gossip_port": GOSSIP_PORT,
            "gossip_secret": self.secret,
            "persist_file": node.state_path,
            "lan_discovery": True,
            "policy": policy or self.policy,
            "control_socket": node.ctl_path,
            "log_level": os.environ.get("WGAM_LOG_LEVEL", "debug"),
            "peers": peers,
        }
        cfg.update(self.extra_config)
        if extra:
            cfg.update(extra)
        node.config = cfg
        with open(node.config_path, "w") as f:
            json.dump(cfg, f, indent=1)

    def write_configs(self, endpoints=None, policy=None):
        for n in self.nodes:
            self.write_config(n, endpoints, policy)

    def public_endpoints(self):
        return {n: n.endpoint for n in self.nodes if n.kind == "pub"}

    def start_daemon(self, node, verbose=True):
        if not self.wgam:
            raise RuntimeError("no daemon: set WGAM_BIN")
        argv = [self.wgam] + (["-v"] if verbose else []) + ["run", node.config_path]
        with open(node.log_path, "ab") as f:
            f.write(b"[%8.3f] === daemon started\n" % (time.monotonic() - T_START))
        node.daemon = self.spawn(node.ns, argv, node.log_path, stamp=True)
        return node.daemon

    def stop_daemon(self, node, sig=signal.SIGTERM, timeout=10):
        rc = stop_proc(node.daemon, sig, timeout)
        node.daemon = None
        return rc

    def start_daemons(self):
        for n in self.nodes:
            self.start_daemon(n)

    def stop_daemons(self):
        for n in self.nodes:
            if n.daemon:
                n.daemon.send_signal(signal.SIGTERM)
        for n in self.nodes:
            if n.daemon:
                self.stop_daemon(n)

    def check_daemons_alive(self):
        dead = [(n.name, n.daemon.returncode) for n in self.nodes
                if n.daemon is not None and n.daemon.poll() is not None]
        if dead:
            raise AssertionError("daemon(s) exited: %s" % dead)

    def status(self, node, timeout=5):
        out = node.sh([self.wgam, "status", "--json", node.config_path], timeout=timeout)
        return json.loads(out)

    def peer_status(self, node, other):
        st = self.status(node)
        for p in st.get("peers", []):
            if p.get("pubkey") == other.pubkey:
                return p
        raise KeyError("%s: no peer %s in status" % (node.name, other.name))

    def wg_dump(self, node):
        """{pubkey: {"endpoint": str|None, "handshake": int, "rx": int, "tx": int,
        "keepalive": str}} from `wg show IFACE dump` (the truth)."""
        lines = node.sh(["wg", "show", node.wg, "dump"]).strip().split("\n")
        res = {}
        for line in lines[1:]:
            f = line.split("\t")
            if len(f) < 8:
                continue
            res[f[0]] = {"endpoint": None if f[2] == "(none)" else f[2],
                         "allowed": f[3], "handshake": int(f[4]),
                         "rx": int(f[5]), "tx": int(f[6]), "keepalive": f[7]}
        return res

    def endpoint_of(self, node, other):
        return self.wg_dump(node).get(other.pubkey, {}).get("endpoint")

    # reachability
    def pairs(self, nodes=None):
        nodes = nodes or self.nodes
        return [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1:]]

    def wait_pairs(self, pairs, timeout, need=1, stop=None):
        """Probes a->b over the mesh for every pair; returns {(a,b): t_first}."""
        probes = [(a.ns, b.mesh_ip) for a, b in pairs]
        back = {(a.ns, b.mesh_ip): (a, b) for a, b in pairs}
        res = self.prober.watch(probes, timeout, need=need, stop=stop)
        return {back[k]: t for k, t in res.items()}

    # roaming
    def move_public(self, node, new_addr):
        """Renumbers a host the way DHCP does: new address first, then the old
        one removed (promote_secondaries keeps the routes). Note: wireguard-go
        (0.0.20220316) keeps sending from the old source address ("sticky"
        source, ENETUNREACH) until the peer's endpoint is set again; the
        kernel module would clear it by itself."""
        self._sysctl(node.ns, "net.ipv4.conf.all.promote_secondaries", 1)
        self._sysctl(node.ns, "net.ipv4.conf.%s.promote_secondaries" % node.up, 1)
        old = node.addr
        node.sh(["ip", "addr", "add", "%s/%d" % (new_addr, node.prefixlen), "dev", node.up])
        node.sh(["ip", "addr", "del", "%s/%d" % (old, node.prefixlen), "dev", node.up])
        node.sh(["ip", "route", "replace", "default", "via", node.gw])
        node.addr = new_addr

    def move_router(self, r, new_addr):
        self_ns = ["ip", "-n", r.ns]
        sh(self_ns + ["addr", "flush", "dev", r.wan])
        sh(self_ns + ["addr", "add", new_addr + "/24", "dev", r.wan])
        sh(self_ns + ["route", "replace", "default", "via", "203.0.113.1"])
        r.wan_addr = new_addr

    # diagnostics
    def dump_logs(self, nodes=None, lines=40):
        for n in nodes or self.nodes:
            try:
                with open(n.log_path, "rb") as f:
                    tail = f.read().decode(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                continue
            sys.stderr.write("----- %s daemon log (last %d lines)\n" % (n.name, lines))
            sys.stderr.write("\n".join(tail) + "\n")
            try:
                sys.stderr.write("----- %s wg dump\n%s" % (
                    n.name, n.sh(["wg", "show", n.wg, "dump"], check=False)))
            except Exception:
                pass

    # cleanup
    def cleanup(self):
        with self._lock:
            if self.cleaned:
                return
            self.cleaned = True
            procs = list(self.procs)
        self.prober.close()
        for p in procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in procs:
            stop_proc(p, signal.SIGTERM, 3)
        for ns in reversed(self.namespaces):
            # Anything still running in our namespaces is ours.
            for pid in ns_pids(ns):
                _kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        for n in self.nodes:
            try:
                os.unlink(os.path.join(WG_SOCK_DIR, n.wg + ".sock"))
            except FileNotFoundError:
                pass
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log("kept files in %s" % self.tmp)
        try:
            os.unlink(os.path.join(RUN_DIR, self.base))
        except FileNotFoundError:
            pass


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_proc(p, sig=signal.SIGTERM, timeout=10):
    """Signals one process we started and reaps it; SIGKILL after @timeout."""
    if p is None:
        return None
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def list_netns():
    try:
        return os.listdir("/run/netns")
    except FileNotFoundError:
        return []


def ns_pids(ns):
    p = subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return [int(x) for x in p.stdout.split()]


_RIGS = []


def _install_cleanup(rig):
    """Cleanup on every exit path: normal exit, exception, SIGINT/TERM/HUP."""
    if not _RIGS:
        atexit.register(_cleanup_all)
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, _on_signal)
    _RIGS.append(rig)


def _cleanup_all():
    for r in list(_RIGS):
        r.cleanup()
    _RIGS.clear()


def _on_signal(signum, frame):
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    log("signal %d: cleaning up" % signum)
    _cleanup_all()
    sys.exit(128 + signum)


def cleanup_leftovers(everything=False):
    """Removes what crashed runs of OUR prefix left: namespaces, their
    processes, wireguard-go sockets, temp dirs. A run whose owner PID is alive
    is left alone unless @everything."""
    removed = 0
    owners = {}
    if os.path.isdir(RUN_DIR):
        for base in os.listdir(RUN_DIR):
            if not base.startswith(PREFIX):
                continue
            try:
                with open(os.path.join(RUN_DIR, base)) as f:
                    pid_s, tmp = f.read().split("\n")[:2]
                owners[base] = (int(pid_s), tmp)
            except (OSError, ValueError):
                owners[base] = (0, "")
    live = set()
    for base, (pid, _) in owners.items():
        if not everything and pid > 0 and os.path.exists("/proc/%d" % pid):
            live.add(base)

    def base_of(name):
        # namespaces: e2eTAG-name; interfaces/sockets: e2eTAG<role><n>
        return name[:len(PREFIX) + 4]

    for ns in list_netns():
        if not ns.startswith(PREFIX) or base_of(ns) in live:
            continue
        if "-" not in ns and "probe" not in ns:
            continue
        for pid in ns_pids(ns):
            _kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        print("removed netns " + ns)
        removed += 1
    if os.path.isdir(WG_SOCK_DIR):
        for s in os.listdir(WG_SOCK_DIR):
            if s.startswith(PREFIX) and base_of(s) not in live:
                os.unlink(os.path.join(WG_SOCK_DIR, s))
                print("removed " + os.path.join(WG_SOCK_DIR, s))
                removed += 1
    for base, (pid, tmp) in owners.items():
        if base in live:
            continue
        if tmp.startswith(tempfile.gettempdir() + "/wgam-" + PREFIX):
            shutil.rmtree(tmp, ignore_errors=True)
        os.unlink(os.path.join(RUN_DIR, base))
        removed += 1
    print("cleanup: %d item(s) removed, %d live run(s) left alone" % (removed, len(live)))
    return 0


# --- self test of the rig without the daemon -------------------------------

def selftest():
    """Validates the rig with plain wg: public hosts reachable, NAT-ed hosts
    punching each other when told each other's NAT-ed endpoints (the thing the
    daemon automates), symmetric NAT failing, LAN broadcast reaching the LAN."""
    skip_unless_possible()
    rig = Rig("pub:p1 pub:p2 nat:r1 nat:r2 nat:r3 sym:r4 sym:r5 "
              "host:c@r1 host:d@r2 host:e@r3 host:f@r3 host:s1@r4 host:s2@r5")
    ok = True
    try:
        rig.start_all_wg()
        P1, P2 = rig.node("p1"), rig.node("p2")

        def peer(a, b, endpoint=None, ka=1):
            argv = ["wg", "set", a.wg, "peer", b.pubkey, "allowed-ips", b.mesh_ip + "/32",
                    "persistent-keepalive", str(ka)]
            if endpoint:
                argv += ["endpoint", endpoint]
            a.sh(argv)

        # everybody knows the public hosts
        for a in rig.nodes:
            for b in rig.nodes:
                if a is not b:
                    peer(a, b, b.endpoint if b.kind == "pub" else None)
        t0 = time.monotonic()
        to_pub = [(a, b) for a in rig.nodes for b in (P1, P2) if a is not b]
        got = rig.wait_pairs(to_pub, 15)
        print("every host reaches both public hosts: %d/%d pairs, max %.2f s" % (
            len(got), len(to_pub), max(got.values()) - t0 if got else -1))
        ok &= len(got) == len(to_pub)
        # now the NAT-ed endpoints as P1 sees them (what gossip tells)
        seen = rig.wg_dump(P1)
        lan = [n for n in rig.nodes if n.kind == "lan"]
        for a in lan:
            for b in lan:
                if a is not b:
                    ep = seen[b.pubkey]["endpoint"]
                    if a.router is b.router:
                        ep = b.endpoint  # LAN discovery's job
                    peer(a, b, ep)
        t1 = time.monotonic()
        c, d, e, f, s1, s2 = (rig.node(x) for x in ("c", "d", "e", "f", "s1", "s2"))
        # (port-restricted cone <-> symmetric cannot punch either: not tried)
        cone = [(c, d), (c, e), (d, f), (e, f)]
        got = rig.wait_pairs(cone, 15)
        print("punching through cone NATs: %d/%d pairs, max %.2f s" % (
            len(got), len(cone), max(got.values()) - t1 if got else -1))
        ok &= len(got) == len(cone)
        epc, epd = rig.endpoint_of(c, d), rig.endpoint_of(d, c)
        print("c sees d at %s, d sees c at %s" % (epc, epd))
        ok &= epc.split(":")[0] == d.router.wan_addr and epd.split(":")[0] == c.router.wan_addr
        print("e sees f at %s" % rig.endpoint_of(e, f))
        ok &= rig.endpoint_of(e, f).startswith(f.router.lan_net + ".")
        # symmetric on both sides: impossible
        got = rig.wait_pairs([(s1, s2)], 8)
        print("symmetric-symmetric pair: %s (expected no)" % ("yes" if got else "no"))
        ok &= not got
        # LAN broadcast from e reaches f (with a default route; LAB.md)
        rx = ns_socket(f.ns, socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("0.0.0.0", GOSSIP_PORT))
        rx.settimeout(2)
        tx = ns_socket(e.ns, socket.AF_INET, socket.SOCK_DGRAM)
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        tx.sendto(b"hello", ("255.255.255.255", GOSSIP_PORT))
        try:
            data, src = rx.recvfrom(100)
            print("LAN broadcast received from %s" % src[0])
            ok &= src[0] == e.addr
        except socket.timeout:
            print("LAN broadcast NOT received")
            ok = False
        rx.close()
        tx.close()
        # roaming of a public host: WireGuard itself roams between public hosts
        # once p1 sends from its new address (re-setting the endpoint clears
        # wireguard-go's sticky source address: see move_public)
        rig.move_public(P1, "198.51.100.111")
        P1.sh(["wg", "set", P1.wg, "peer", P2.pubkey, "endpoint", P2.endpoint])
        t2 = time.monotonic()
        got = rig.wait_pairs([(P2, P1)], 15)
        print("public host moved: p2 reaches it again after %.2f s, endpoint %s" % (
            (list(got.values())[0] - t2) if got else -1, rig.endpoint_of(P2, P1)))
        ok &= bool(got)
    finally:
        rig.cleanup()
    print("selftest: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv[1] == "cleanup":
        if os.geteuid() != 0:
            print("cleanup needs root")
            return 1
        return cleanup_leftovers("--all" in argv)
    if argv[1] == "selftest":
        return selftest()
    print("unknown command %r" % argv[1])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
