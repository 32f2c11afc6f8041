#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A node moved over from the original Rust wgautomesh, end to end: its TOML
configuration converted by wgautomesh-toml2json, its state file as the
original wrote it, every configured endpoint wrong (the mesh was renumbered
since the configuration was written). The mesh must form from the state
files, and the state files the daemon writes back must read as the
original's layout.

Three public nodes a, b, c (tests/netns/rig.py), wireguard-go, daemons in
network namespaces:
  - configured endpoints: 198.51.100.200-202, addresses nobody has;
  - a's state file knows b and c (plus older dead endpoints, one IPv6),
    b's knows a, c's is the empty map: a-b and a-c form from the state,
    b-c only from what a gossips, so gossip must work;
  - a's secret is inline in its TOML (a tab, quotes, a backslash, control
    characters, non-ASCII, a trailing newline), b's and c's is the same
    bytes in a secret file:
    gossip between them proves the converted inline secret is the file's
    bytes, byte for byte.

With --policy classic the converted configurations carry "policy":
"classic" (the original's 30 s cycle); the bound is then 150 s.

Usage: e2e_migrate.py CONVERTER [--policy fast|classic] [--keep]
WGAM_BIN names the daemon. Exit 0 pass, 1 fail, 77 skip (not root, no
netns, no wireguard-go).
"""
import json
import os
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import rig as R  # noqa: E402

HANG = 60.0


def say(msg):
    print(msg)
    sys.stdout.flush()


def fig(name, value, unit=""):
    if isinstance(value, float):
        value = "%.2f" % value
    say("FIGURE %s = %s%s" % (name, value, (" " + unit) if unit else ""))


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---- the original's state file: bincode HashMap<String, Vec<(SocketAddr, u64)>>

def encode_state(entries):
    """@entries: {pubkey: [("ip:port" or "[v6]:port", unix time)]}."""
    out = [struct.pack("<Q", len(entries))]
    for key, eps in entries.items():
        k = key.encode()
        out.append(struct.pack("<Q", len(k)) + k + struct.pack("<Q", len(eps)))
        for addr, t in eps:
            host, _, port = addr.rpartition(":")
            if host.startswith("["):
                import ipaddress
                out.append(struct.pack("<I", 1) + ipaddress.IPv6Address(host[1:-1]).packed)
            else:
                out.append(struct.pack("<I", 0) + bytes(int(x) for x in host.split(".")))
            out.append(struct.pack("<HQ", int(port), t))
    return b"".join(out)


def decode_state(data):
    """The reverse, strict: every byte used, tags 0/1 only."""
    import ipaddress
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(data):
            raise ValueError("truncated at %d" % pos)
        b = data[pos:pos + n]
        pos += n
        return b

    res = {}
    (count,) = struct.unpack("<Q", take(8))
    for _ in range(count):
        (klen,) = struct.unpack("<Q", take(8))
        key = take(klen).decode()
        (n,) = struct.unpack("<Q", take(8))
        eps = []
        for _ in range(n):
            (tag,) = struct.unpack("<I", take(4))
            if tag == 0:
                host = str(ipaddress.IPv4Address(take(4)))
            elif tag == 1:
                host = "[%s]" % ipaddress.IPv6Address(take(16))
            else:
                raise ValueError("SocketAddr tag %d" % tag)
            port, t = struct.unpack("<HQ", take(10))
            eps.append(("%s:%d" % (host, port), t))
        res[key] = eps
    if pos != len(data):
        raise ValueError("%d trailing bytes" % (len(data) - pos))
    return res


def toml_str(s):
    """A TOML basic string."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"%s"' % "".join(out)


def scenario(conv, policy, keep):
    rig = R.Rig("pub:a pub:b pub:c", keep=keep)
    try:
        a, b, c = (rig.node(x) for x in "abc")
        rig.start_all_wg()
        secret = 'migrated\t"ré" back\\slash \x01\x1f\x7f ключ %s\n' % rig.secret
        wrong = {n: "198.51.100.%d:%d" % (200 + k, R.LISTEN_PORT) for k, n in enumerate(rig.nodes)}
        # The age of the state's entries. Classic, like the original, asks
        # for gossip (Request) only at start, before any tunnel is up, and
        # re-announces an endpoint only when the device's handshake is
        # gossip_interval (300 s) newer than the store's entry: a state file
        # younger than that is announced only when it ages. The fast policy
        # asks the peers it connects to.
        age = 100 if policy == "fast" else 400
        now = int(time.time())
        states = {
            a: {b.pubkey: [(b.endpoint, now - age), ("198.51.100.250:51820", now - 4000)],
                c.pubkey: [(c.endpoint, now - age), ("[2001:db8::3]:51820", now - 5000)]},
            b: {a.pubkey: [(a.endpoint, now - age)]},
            c: {},
        }
        for n in rig.nodes:
            # the original's TOML
            t = ["interface = %s" % toml_str(n.wg), "gossip_port = %d" % R.GOSSIP_PORT]
            if n is a:
                t.append("gossip_secret = %s" % toml_str(secret))
                t.append("lan_discovery = true")
            else:
                sf = os.path.join(n.dir, "gossip_secret")
                with open(sf, "wb") as f:
                    os.fchmod(f.fileno(), 0o600)
                    f.write(secret.encode())
                t.append("gossip_secret_file = %s" % toml_str(sf))
                t.append("ipv6 = false")
            t.append("persist_file = %s" % toml_str(n.state_path))
            for o in rig.nodes:
                t += ["", "[[peers]]", "pubkey = %s" % toml_str(o.pubkey),
                      "address = %s" % toml_str(o.mesh_ip),
                      "endpoint = %s" % toml_str(wrong[o])]
            toml_path = os.path.join(n.dir, "wgautomesh.toml")
            with open(toml_path, "w", encoding="utf-8") as f:
                f.write("\n".join(t) + "\n")
            p = subprocess.run([sys.executable, conv, "--policy", policy, "-o", n.config_path,
                                toml_path],
                               capture_output=True, text=True)
            expect(p.returncode == 0, "%s: converter exit %d: %s" % (n.name, p.returncode, p.stderr))
            with open(n.config_path, encoding="utf-8") as f:
                cfg = json.load(f)
            # What only a test needs: a socket of its own, more logging.
            cfg["control_socket"] = n.ctl_path
            cfg["log_level"] = "debug"
            with open(n.config_path, "w", encoding="utf-8") as f:
                json.dump(cfg, f, ensure_ascii=False, indent=1)
            n.config = cfg
            # the original's state file
            data = encode_state(states[n])
            with open(n.state_path, "wb") as f:
                f.write(data)
            p = subprocess.run([rig.wgam, "decode", "--state", n.state_path],
                               capture_output=True, text=True)
            expect(p.returncode == 0, "%s: decode --state: %s" % (n.name, p.stderr))
            seen = {k: [(e["addr"], e["time"]) for e in v] for k, v in json.loads(p.stdout).items()}
            expect(seen == states[n], "%s: the daemon reads the state as %s, not %s" % (
                n.name, seen, states[n]))
            say("%s: %s secret, state file %d bytes (%d keys), configured endpoints all wrong" % (
                n.name, "inline" if n is a else "file", len(data), len(states[n])))
        expect(a.config["gossip_secret"] == secret, "converted secret differs")
        expect(all(n.config.get("policy") == policy for n in rig.nodes), "policy not converted")
        hang = HANG if policy == "fast" else 150.0

        rig.start_daemons()
        t0 = time.monotonic()
        pairs = rig.pairs()
        got = rig.wait_pairs(pairs, hang, stop=lambda: any(
            n.daemon.poll() is not None for n in rig.nodes))
        rig.check_daemons_alive()
        for (x, y), t in sorted(got.items(), key=lambda kv: kv[1]):
            say("%s-%s pings after %.2f s" % (x.name, y.name, t - t0))
        missing = [p for p in pairs if p not in got]
        expect(not missing, "pairs not pinging after %.0f s: %s" % (
            hang, ", ".join("%s-%s" % (x.name, y.name) for x, y in missing)))
        fig("migrate_mesh_time_%s" % policy, max(got.values()) - t0, "s")

        # Every node on every other's real address, none on a configured one.
        def settled():
            for x in rig.nodes:
                for y in rig.nodes:
                    if x is not y and rig.endpoint_of(x, y) != y.endpoint:
                        return False
            return True
        deadline = time.monotonic() + (15 if policy == "fast" else 65)
        while not settled() and time.monotonic() < deadline:
            time.sleep(0.25)
        for x in rig.nodes:
            for y in rig.nodes:
                if x is y:
                    continue
                ps = rig.peer_status(x, y)
                say("%s sees %s at %s (source %s, %s)" % (
                    x.name, y.name, rig.endpoint_of(x, y), ps.get("source"), ps.get("state")))
                expect(rig.endpoint_of(x, y) == y.endpoint, "%s uses %s for %s, not %s" % (
                    x.name, rig.endpoint_of(x, y), y.name, y.endpoint))
        bc = rig.peer_status(b, c).get("source"), rig.peer_status(c, b).get("source")
        expect("gossip" in bc, "b-c formed without gossip (sources %s, %s)" % bc)

        # Back: the files the daemon writes read as the original's layout.
        rig.stop_daemons()
        for n in rig.nodes:
            with open(n.state_path, "rb") as f:
                data = f.read()
            try:
                st = decode_state(data)
            except ValueError as e:
                raise AssertionError("%s: state file written back is not the original's layout: %s" % (
                    n.name, e))
            for o in rig.nodes:
                if o is n:
                    continue
                eps = [ep for ep, _ in st.get(o.pubkey, [])]
                expect(eps and eps[0] == o.endpoint,
                       "%s: state written back has %s for %s, newest first should be %s" % (
                           n.name, eps, o.name, o.endpoint))
                times = [t for _, t in st[o.pubkey]]
                expect(times == sorted(times, reverse=True), "%s: not newest first: %s" % (
                    n.name, st[o.pubkey]))
            say("%s: state written back, %d bytes, keys %d, reads as the original's layout" % (
                n.name, len(data), len(st)))
        return True
    except BaseException:
        rig.dump_logs()
        raise
    finally:
        rig.cleanup()


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    conv = os.path.abspath(argv[1])
    policy = argv[argv.index("--policy") + 1] if "--policy" in argv else "fast"
    if policy not in ("fast", "classic"):
        print(__doc__)
        return 2
    return R.run_test("migrate (policy %s)" % policy,
                      lambda: scenario(conv, policy, "--keep" in argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
