#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The `wgautomesh` binary: command line, `check`, and (as root) a running
daemon against a fake userspace WireGuard device (a UAPI socket served by
this script), in a private network namespace (`unshare -n`) so no gossip
leaves it: status in all three formats, SIGHUP reload (valid and invalid),
sd_notify, the state file, SIGTERM.

Usage: test_cli.py WGAUTOMESH
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

K1 = "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k="
K2 = "NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/gHLAnFM="
K3 = "CR5wxWBfBHY0SI1vHZ99TMxICWIZ6Ez6u9AnBAV4WUk="
# Our device's private key, and the public key the daemon must derive.
PRIV_HEX = "a8" + "11" * 30 + "4b"

failures = 0
checks = 0


def check(cond, msg):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL:", msg)


def run(exe, args, timeout=30, env=None):
    r = subprocess.run([exe] + args, capture_output=True, timeout=timeout,
                       env=env)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def config(iface, tmp, peers, **extra):
    c = {"interface": iface, "gossip_port": 41000 + os.getpid() % 20000,
         "gossip_secret": "s3cret", "peers": peers,
         "control_socket": os.path.join(tmp, "ctl", "wg.sock")}
    c.update(extra)
    return json.dumps(c)


def cli_tests(exe, tmp):
    rc, out, _ = run(exe, ["--version"])
    check(rc == 0 and out.startswith("wgautomesh "), "--version: %d %r" %
          (rc, out))
    rc, out, _ = run(exe, ["--help"])
    check(rc == 0 and "Usage:" in out, "--help")
    rc, _, err = run(exe, ["--bogus"])
    check(rc == 2 and "unknown option --bogus" in err, "unknown option: %d" %
          rc)
    rc, _, _ = run(exe, ["check", "a.json", "b.json"])
    check(rc == 2, "two config paths: %d" % rc)
    rc, _, _ = run(exe, ["status", "--json", "--prometheus", "x.json"])
    check(rc == 2, "--json with --prometheus: %d" % rc)
    rc, _, _ = run(exe, ["decode", "--state", "a", "--secret-file", "b"])
    check(rc == 2, "decode --state with --secret-file: %d" % rc)

    peers = [{"pubkey": K1, "address": "100.64.0.1"},
             {"pubkey": K2, "address": "fd00::2",
              "endpoint": "node.example.net:51820"}]
    good = os.path.join(tmp, "good.json")
    write(good, config("wgdtest0", tmp, peers))
    rc, out, err = run(exe, ["check", good])
    check(rc == 0 and out == "%s: ok (interface wgdtest0, 2 peers)\n" % good,
          "check good: %d %r %r" % (rc, out, err))

    # Bad configs: exit 2 and exactly the error lines on stderr, for
    # `check` and for `run` (which must not touch any interface).
    bad = [
        ('{"interface":"wg0","gossip_port":1666,"gossip_secret":"a","peers":[{"pubkey":"xyz",'
         '"address":"100.64.0.1"}]}',
         ["peers[0].pubkey: not a 32-byte base64 key"]),
        ('{"interface":"wg0","gossip_port":1666,"gossip_secret":"a",'
         '"gossip_secret_file":"/nonexistent","peers":[]}',
         ["gossip_secret_file: conflicts with gossip_secret (give one)"]),
        ('{"interface":"wg0","gossip_port":99999,"colour":"blue",'
         '"gossip_secret":"a","peers":[]}',
         ["colour: unknown key", "gossip_port: out of range (1..65535)"]),
        ('{"interface":"wg0","gossip_port":1,"gossip_secret":"a","peers":['
         '{"pubkey":"%s","address":"100.64.0.1"},'
         '{"pubkey":"%s","address":"100.64.0.1"}]}' % (K1, K1),
         ["peers[1].pubkey: duplicate of peers[0].pubkey",
          "peers[1].address: duplicate of peers[0].address"]),
        # Relays and extra prefixes: the field and the value named.
        ('{"interface":"wg0","gossip_port":1,"gossip_secret":"a","peers":['
         '{"pubkey":"%s","address":"100.64.0.1","relay":"yes"},'
         '{"pubkey":"%s","address":"100.64.0.2",'
         '"allowed_ips":["192.168.5.0/24","10.0.0.1/8"]},'
         '{"pubkey":"%s","address":"100.64.0.3",'
         '"allowed_ips":["192.168.0.0/16","100.64.0.0/24"]}]}' % (K1, K2, K3),
         ["peers[0].relay: not a boolean",
          'peers[1].allowed_ips[1]: "10.0.0.1/8" has host bits set (the '
          'network is 10.0.0.0/8)',
          "peers[2].allowed_ips[0]: 192.168.0.0/16 overlaps "
          "peers[1].allowed_ips[0] (192.168.5.0/24)",
          "peers[2].allowed_ips[1]: 100.64.0.0/24 holds the mesh address of "
          "peers[0] (100.64.0.1)"]),
    ]
    path = os.path.join(tmp, "bad.json")
    for text, lines in bad:
        write(path, text)
        want = "".join("%s: %s\n" % (path, l) for l in lines)
        for args in (["check", path], [path], ["run", path]):
            rc, out, err = run(exe, args)
            check(rc == 2 and err == want,
                  "%s: rc %d stderr %r want %r" % (args[:-1], rc, err, want))

    rc, _, err = run(exe, ["check", os.path.join(tmp, "absent.json")])
    check(rc == 2 and "cannot read: No such file or directory" in err,
          "missing config: %d %r" % (rc, err))

    # No daemon behind the socket: a runtime error, with a hint.
    rc, _, err = run(exe, ["status", good])
    check(rc == 1 and "is wgautomesh running?" in err,
          "status without daemon: %d %r" % (rc, err))


class FakeUapi(threading.Thread):
    """A userspace WireGuard device: answers get=1 and applies set=1."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.peers = {}  # hex pubkey -> dict
        self.sets = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if not data:
                    continue  # a probe: connect and close
                try:
                    conn.sendall(self.handle(data.decode()).encode())
                except OSError:
                    pass

    def handle(self, req):
        lines = [l for l in req.split("\n") if l]
        with self.lock:
            if lines[:1] == ["get=1"]:
                out = ["private_key=" + PRIV_HEX, "listen_port=51820"]
                for k, p in self.peers.items():
                    out.append("public_key=" + k)
                    if p.get("endpoint"):
                        out.append("endpoint=" + p["endpoint"])
                    out.append("last_handshake_time_sec=0")
                    out.append("last_handshake_time_nsec=0")
                    out.append("rx_bytes=0")
                    out.append("tx_bytes=0")
                    out.append("persistent_keepalive_interval=%d" %
                               p.get("keepalive", 0))
                    for a in p.get("allowed", []):
                        out.append("allowed_ip=" + a)
                out.append("protocol_version=1")
                return "\n".join(out) + "\nerrno=0\n\n"
            if lines[:1] == ["set=1"]:
                self.sets.append(lines[1:])
                cur = None
                for l in lines[1:]:
                    k, _, v = l.partition("=")
                    if k == "public_key":
                        cur = self.peers.setdefault(v, {})
                        cur["key"] = v
                    elif k == "remove":
                        self.peers.pop(cur["key"], None)
                    elif k == "endpoint":
                        cur["endpoint"] = v
                    elif k == "persistent_keepalive_interval":
                        cur["keepalive"] = int(v)
                    elif k == "replace_allowed_ips":
                        cur["allowed"] = []
                    elif k == "allowed_ip":
                        cur.setdefault("allowed", []).append(v)
                return "errno=0\n\n"
            return "errno=22\n\n"

    def close(self):
        self.stop = True
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def b64_to_hex(k):
    return base64.b64decode(k).hex()


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def daemon_tests(exe, tmp):
    iface = "wgd%d" % (os.getpid() % 100000)
    uapi_dir = "/var/run/wireguard"
    os.makedirs(uapi_dir, exist_ok=True)
    fake = FakeUapi(os.path.join(uapi_dir, iface + ".sock"))
    fake.start()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = os.path.join(tmp, "notify.sock")
    notify.bind(notify_path)
    notify.settimeout(10)
    cfgpath = os.path.join(tmp, "daemon.json")
    state = os.path.join(tmp, "state.bin")
    peers = [{"pubkey": K1, "address": "100.64.0.1",
              "endpoint": "198.51.100.1:51820", "relay": True},
             {"pubkey": K2, "address": "100.64.0.2",
              "allowed_ips": ["192.168.5.0/24"]}]
    write(cfgpath, config(iface, tmp, peers, persist_file=state))
    # A corrupt state file is set aside, never a crash.
    with open(state, "wb") as f:
        f.write(b"\x05\x00\x00")
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    log = open(os.path.join(tmp, "daemon.log"), "w+")
    proc = subprocess.Popen(["unshare", "-n", exe, "-v", cfgpath], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    ctl = os.path.join(tmp, "ctl", "wg.sock")

    def note():
        try:
            return notify.recv(4096).decode()
        except socket.timeout:
            return None

    def status(*args):
        return run(exe, ["status"] + list(args) + [cfgpath])

    try:
        check(note() == "READY=1", "READY=1")
        check(os.path.exists(state + ".corrupt"),
              "corrupt state file moved aside")
        check(oct(os.stat(ctl).st_mode & 0o777) == "0o600",
              "control socket mode 0600")

        rc, out, err = status("--json")
        check(rc == 0, "status --json: %d %s" % (rc, err))
        st = json.loads(out)
        pub = subprocess.run(["wg", "pubkey"], input=base64.b64encode(
            bytes.fromhex(PRIV_HEX)) + b"\n", capture_output=True).stdout
        if pub:
            check(st["pubkey"] == pub.decode().strip(),
                  "own pubkey %r" % st["pubkey"])
        check(st["interface"] == iface and st["backend"] == "uapi" and
              st["listen_port"] == 51820 and st["policy"] == "fast" and
              st["external_endpoint"] is None, "status header %r" % st)
        byaddr = {p["address"]: p for p in st["peers"]}
        check(set(byaddr) == {"100.64.0.1", "100.64.0.2"}, "peers %r" %
              list(byaddr))
        for p in st["peers"]:
            for k in ("pubkey", "address", "endpoint", "source", "state",
                      "connected", "last_handshake", "handshake_age", "tries",
                      "endpoint_changes", "known", "lan_endpoint"):
                check(k in p, "peer field %s" % k)
            check(p["connected"] is False and p["handshake_age"] is None,
                  "not connected %r" % p)
        for k in ("pkts_in", "pkts_out", "bytes_in", "bytes_out", "rejected",
                  "endpoint_changes", "peer_updates", "state_writes",
                  "peers_connected"):
            check(k in st["stats"], "stats field %s" % k)
        check(set(st["stats"]["pkts_in"]) == {"ping", "pong", "announce",
                                              "request", "lan_broadcast"},
              "pkts_in types")
        # Relays and prefixes as configured; nothing relayed yet.
        check(st["relay"] is False and st["stats"]["relay_switches"] == 0,
              "not a relay %r" % st)
        check(byaddr["100.64.0.1"]["relay"] is True and
              byaddr["100.64.0.2"]["relay"] is False and
              byaddr["100.64.0.2"]["allowed_ips"] == ["192.168.5.0/24"] and
              byaddr["100.64.0.1"]["allowed_ips"] == [],
              "relay and allowed_ips %r" % st["peers"])
        for p in st["peers"]:
            check(p["route"] == "direct" and p["via"] is None and
                  p["via_address"] is None and p["route_changes"] == 0,
                  "route of %r" % p)

        # The engine configured both peers on the device.
        got = wait_for(lambda: len(fake.peers) >= 2 and fake.peers)
        check(got and set(got) == {b64_to_hex(K1), b64_to_hex(K2)},
              "device peers %r" % got)
        check(fake.peers.get(b64_to_hex(K1), {}).get("allowed") ==
              ["100.64.0.1/32"], "allowed ip of K1 %r" % fake.peers)

        # An address leaving an interface of the host has every endpoint
        # set again, as read (wireguard-go forgets the source address it
        # kept for the peer), and nothing else.
        k1 = b64_to_hex(K1)
        want = ["public_key=" + k1, "endpoint=198.51.100.1:51820"]

        def repointed(since):
            for lines in fake.sets[since:]:
                keys = {l.partition("=")[0] for l in lines}
                if keys <= {"public_key", "update_only", "endpoint"} and \
                        all(w in lines for w in want):
                    return True
            return False

        check(wait_for(lambda: fake.peers.get(k1, {}).get("endpoint")),
              "endpoint of K1 on the device %r" % fake.peers)
        ip = ["nsenter", "-t", str(proc.pid), "-n", "ip", "addr"]
        subprocess.run(ip + ["add", "198.51.100.77/32", "dev", "lo"],
                       check=True)
        since = len(fake.sets)
        subprocess.run(ip + ["del", "198.51.100.77/32", "dev", "lo"],
                       check=True)
        check(wait_for(lambda: repointed(since), 5),
              "endpoints set again after an address went: %r" %
              fake.sets[since:])

        rc, out, _ = status()
        lines = out.splitlines()
        check(rc == 0 and lines[0].startswith("interface: %s" % iface) and
              lines[1].split()[:3] == ["PEER", "ADDRESS", "ENDPOINT"] and
              len(lines) == 4 and "never" in lines[2],
              "status table %r" % out)
        check(lines[1].split()[-2:] == ["RELAY", "ROUTE"] and
              lines[2].split()[-2:] == ["yes", "direct"],
              "relay columns %r" % out)
        rc, out, _ = status("--prometheus")
        check(rc == 0 and "wgautomesh_peers_configured 2\n" in out and
              "wgautomesh_upnp_mapped 0\n" in out and
              'wgautomesh_gossip_packets_total{direction="out",type="request"}'
              in out and "wgautomesh_relay_switches_total 0\n" in out,
              "prometheus %r" % out[:300])
        # The raw command, as a metrics scraper would use it.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(ctl)
        s.sendall(b"metrics\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        check(b"# TYPE wgautomesh_peers_connected gauge" in data,
              "metrics command")

        # Reload with a third peer.
        peers.append({"pubkey": K3, "address": "fd00::3",
                      "endpoint": "[2001:db8::3]:51820"})
        write(cfgpath, config(iface, tmp, peers, persist_file=state))
        proc.send_signal(signal.SIGHUP)
        check(note().startswith("RELOADING=1"), "RELOADING=1")
        check(note() == "READY=1", "READY=1 after reload")
        rc, out, _ = status("--json")
        check(rc == 0 and len(json.loads(out)["peers"]) == 3,
              "3 peers after reload")
        got = wait_for(lambda: b64_to_hex(K3) in fake.peers)
        check(got, "K3 on the device")

        # An invalid config is refused; the running one stays.
        write(cfgpath, '{"interface":"%s","gossip_port":"x"}' % iface)
        proc.send_signal(signal.SIGHUP)
        check(note().startswith("RELOADING=1"), "RELOADING=1 (bad)")
        check(note() == "READY=1", "READY=1 after a failed reload")
        rc, out, _ = status("--json", "--socket", ctl)
        check(rc == 0 and len(json.loads(out)["peers"]) == 3,
              "still 3 peers after a bad reload")

        # Removing a peer by reload removes it from the device.
        write(cfgpath, config(iface, tmp, peers[:2], persist_file=state))
        proc.send_signal(signal.SIGHUP)
        note()
        note()
        got = wait_for(lambda: b64_to_hex(K3) not in fake.peers)
        check(got, "K3 removed from the device")

        proc.send_signal(signal.SIGTERM)
        check(note() == "STOPPING=1", "STOPPING=1")
        rc = proc.wait(timeout=20)
        check(rc == 0, "exit status after SIGTERM: %d" % rc)
        check(not os.path.exists(ctl), "control socket removed")
        check(os.path.exists(state), "state file written at exit")
        rc, out, _ = run(exe, ["decode", "--state", state])
        check(rc == 0 and isinstance(json.loads(out), dict),
              "state file decodes: %d %r" % (rc, out))
        check(oct(os.stat(state).st_mode & 0o777) == "0o600",
              "state file mode 0600")
    except BaseException:
        log.seek(0)
        print("---- daemon log ----\n" + log.read())
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        fake.close()
        notify.close()
        log.seek(0)
        text = log.read()
        log.close()
    check("reload failed" in text and "gossip_port: not an integer" in text,
          "bad reload logged")
    if failures:
        print("---- daemon log ----\n" + text)

    # A config naming a missing interface: a clear error, exit 1.
    write(cfgpath, config("wgdnone%d" % (os.getpid() % 10000), tmp, []))
    rc, _, err = run("unshare", ["-n", exe, cfgpath])
    check(rc == 1 and "no such WireGuard interface" in err,
          "missing interface: %d %r" % (rc, err))


def main():
    exe = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="wgam-cli-")
    try:
        cli_tests(exe, tmp)
        if os.geteuid() == 0 and shutil.which("unshare"):
            daemon_tests(exe, tmp)
        else:
            print("not root or no unshare: daemon tests skipped")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d checks, %d failures" % (checks, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
