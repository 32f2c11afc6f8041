#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""wgautomesh-toml2json against the original's README sample, every key,
every refused value, and the daemon's own checker:

- the README sample converts to the expected JSON, and so does the example
  of wgautomesh-toml2json(1);
- every key of the original maps to its JSON key with the same value;
- every bad value is refused with a line naming its field, exit 2, nothing
  on standard output; all problems of one input are reported together;
- each value the converter refuses for this daemon's sake, written straight
  into a JSON configuration, is refused by `wgautomesh check` on the same
  field, and each tricky value it accepts, `check` accepts: the converter
  and the daemon agree;
- `wgautomesh check` accepts every converted configuration;
- an inline secret keeps its exact characters (tab, newline, quotes,
  backslash, non-ASCII); -o writes 0600 with an inline secret;
- the timer table of doc/migrating.md states the values of lib/settings.c.

Usage: test_toml2json.py CONVERTER WGAUTOMESH SOURCE_ROOT
"""
import json
import os
import re
import stat
import subprocess
import sys
import tempfile

conv, wgam, src = sys.argv[1:4]
tmp = tempfile.mkdtemp(prefix="wgam-toml2json-")
SECRET = os.path.join(tmp, "secret")
with open(SECRET, "w") as f:
    f.write("Z5DddUq5GewAeS9Lndx0e6eLuENG9SOvANK2GBzGUxg=\n")
os.chmod(SECRET, 0o600)

K1 = "7Nm7pMmyS7Nts1MB+loyD8u84ODxHPTkDu+uqQR6yDk="
K2 = "lABn/axzD1jkFulX8c+K3B3CbKXORlIMDDoe8sQVxhs="
K3 = "m9rLf+233X1VColmeVrM/xfDGro5W6Gk5N0zqcf32WY="

fails = []
count = 0


def check(cond, msg):
    global count
    count += 1
    if not cond:
        print("FAIL: " + msg)
        fails.append(msg)


def run(args, stdin=None):
    p = subprocess.run([sys.executable, conv] + args, input=stdin,
                       capture_output=True)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def convert(toml):
    """(exit, parsed JSON or None, stderr lines)"""
    rc, out, errtext = run([], toml.encode())
    return rc, (json.loads(out) if rc == 0 else out), errtext.splitlines()


def wgam_check(cfg):
    """(exit, stderr) of `wgautomesh check` on @cfg (a dict or JSON text)."""
    path = os.path.join(tmp, "check.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(cfg if isinstance(cfg, str) else json.dumps(cfg, ensure_ascii=False))
    p = subprocess.run([wgam, "check", path], capture_output=True, text=True)
    return p.returncode, p.stderr


def base(extra="", peers=None):
    """A valid original config plus @extra top-level lines."""
    t = 'interface = "wg0"\ngossip_port = 1666\ngossip_secret_file = "%s"\n%s\n' % (
        SECRET, extra)
    for p in peers if peers is not None else [
            'pubkey = "%s"\naddress = "10.14.1.2"' % K1,
            'pubkey = "%s"\naddress = "10.14.1.3"' % K2]:
        t += "[[peers]]\n%s\n" % p
    return t


# ---- the README sample -------------------------------------------------------
sample = os.path.join(src, "tests", "unit", "migrate", "readme-sample.toml")
rc, out, errtext = run([sample])
check(rc == 0 and not errtext, "README sample: exit %d, %s" % (rc, errtext))
expected = {
    "interface": "wg0",
    "gossip_port": 1666,
    "gossip_secret_file": "/var/lib/wgautomesh/gossip_secret",
    "persist_file": "/var/lib/wgautomesh/state",
    "lan_discovery": True,
    "upnp_forward_external_port": 33723,
    "peers": [
        {"pubkey": K1, "address": "10.14.1.2", "endpoint": "77.207.15.215:33722"},
        {"pubkey": K2, "address": "10.14.1.3", "endpoint": "77.207.15.215:33723"},
        {"pubkey": "XLOYoMXF+PO4jcgfSVAk+thh4VmWx0wzWnb0xs08G1s=", "address": "10.14.4.1",
         "endpoint": "bitfrost.fiber.shirokumo.net:33734"},
        {"pubkey": "smBQYUS60JDkNoqkTT7TgbpqFiM43005fcrT6472llI=", "address": "10.14.2.33",
         "endpoint": "82.64.238.84:33733"},
        {"pubkey": K3, "address": "10.14.3.1"},
    ],
}
got = json.loads(out) if rc == 0 else None
check(got == expected, "README sample converts to %s" % got)
check(got is not None and list(got) == list(expected), "README sample: key order %s" %
      (list(got) if got else None))
# the same from standard input and from "-"
with open(sample, "rb") as f:
    data = f.read()
for args in ([], ["-"]):
    rc2, out2, _ = run(args, data)
    check(rc2 == 0 and out2 == out, "README sample via stdin %s" % args)
# `wgautomesh check` on it, with a secret file that exists here
with open(sample) as f:
    text = f.read().replace("/var/lib/wgautomesh/gossip_secret", SECRET)
rc, cfg, errl = convert(text)
rc2, err2 = wgam_check(cfg)
check(rc == 0 and rc2 == 0, "check on the converted README sample: %d %s" % (rc2, err2))

# ---- the example of wgautomesh-toml2json(1) ---------------------------------
with open(os.path.join(src, "doc", "wgautomesh-toml2json.1"), encoding="utf-8") as f:
    page = f.read()
blocks = [b.replace("\\-", "-").replace("\\\n", "")
          for b in re.findall(r"^\.EX\n(.*?)^\.EE", page, re.S | re.M)]
pair = [b for b in blocks if b.startswith("interface") or b.startswith("{")]
check(len(pair) == 2, "man page: TOML and JSON example blocks found (%d)" % len(pair))
if len(pair) == 2:
    rc, out, errtext = run([], pair[0].encode())
    check(rc == 0 and out == pair[1], "man page example: output differs:\n%s\n%s" %
          (out, pair[1]))

# ---- every key -----------------------------------------------------------------
KEYS = [
    ('interface = "wg-mesh.0"', "interface", "wg-mesh.0"),
    ('interface = "fifteen-chars15"', "interface", "fifteen-chars15"),
    ("gossip_port = 1", "gossip_port", 1),
    ("gossip_port = 65535", "gossip_port", 65535),
    ("gossip_port = 0x682", "gossip_port", 1666),
    ('gossip_secret = "hunter2"', "gossip_secret", "hunter2"),
    ('gossip_secret = ""', "gossip_secret", ""),
    ('gossip_secret_file = "%s"' % SECRET, "gossip_secret_file", SECRET),
    ('gossip_secret_file = "/nonexistent/here"', "gossip_secret_file", "/nonexistent/here"),
    ('persist_file = "/var/lib/wgautomesh/state"', "persist_file", "/var/lib/wgautomesh/state"),
    ('persist_file = "state.bin"', "persist_file", "state.bin"),
    ("ipv6 = true", "ipv6", True),
    ("ipv6 = false", "ipv6", False),
    ("lan_discovery = true", "lan_discovery", True),
    ("lan_discovery = false", "lan_discovery", False),
    ("upnp_forward_external_port = 33723", "upnp_forward_external_port", 33723),
    ("upnp_forward_external_port = 1", "upnp_forward_external_port", 1),
]
for line, key, value in KEYS:
    t = "%s\n" % line
    if key != "interface":
        t += 'interface = "wg0"\n'
    if key != "gossip_port":
        t += "gossip_port = 1666\n"
    rc, cfg, errl = convert(t)
    check(rc == 0 and cfg.get(key) == value and type(cfg.get(key)) is type(value),
          "key %r: %s -> %s %s" % (line, rc, cfg, errl))
    if rc == 0:
        check(cfg["peers"] == [], "no [[peers]] gives an empty list (%s)" % line)
        # nothing else appears
        want = {"interface", "gossip_port", key, "peers"}
        check(set(cfg) == want, "key %r: output keys %s" % (line, sorted(cfg)))
        if key != "gossip_secret_file" or value == SECRET:
            rc2, err2 = wgam_check(cfg)
            check(rc2 == 0, "check refuses the conversion of %r: %s" % (line, err2))

# not given: not in the output (the defaults are the original's)
rc, cfg, _ = convert('interface = "wg0"\ngossip_port = 1666\n')
check(rc == 0 and cfg == {"interface": "wg0", "gossip_port": 1666, "peers": []},
      "minimal config: %s" % cfg)
# --policy
for pol in ("fast", "classic"):
    rc, out, _ = run(["--policy", pol], base().encode())
    check(rc == 0 and json.loads(out).get("policy") == pol, "--policy %s" % pol)
    if rc == 0:
        check(wgam_check(out)[0] == 0, "check on --policy %s" % pol)
rc, out, e = run(["--policy", "slow"], base().encode())
check(rc == 2 and not out, "--policy slow refused (exit %d)" % rc)

# peers: every key, IPv6, hostnames, the node's own entry kept
PEERS = [
    ('pubkey = "%s"\naddress = "10.14.1.2"\nendpoint = "198.51.100.7:51820"' % K1,
     {"pubkey": K1, "address": "10.14.1.2", "endpoint": "198.51.100.7:51820"}),
    ('pubkey = "%s"\naddress = "fd00::3"\nendpoint = "[2001:db8::1]:51820"' % K2,
     {"pubkey": K2, "address": "fd00::3", "endpoint": "[2001:db8::1]:51820"}),
    ('pubkey = "%s"\naddress = "100.64.0.3"\nendpoint = "vpn.example.org:33734"' % K3,
     {"pubkey": K3, "address": "100.64.0.3", "endpoint": "vpn.example.org:33734"}),
]
rc, cfg, errl = convert(base(peers=[p for p, _ in PEERS]))
check(rc == 0 and cfg["peers"] == [e for _, e in PEERS], "peers: %s %s" % (cfg, errl))
if rc == 0:
    check(wgam_check(cfg)[0] == 0, "check on the peers")
# inline tables and arrays are TOML too
rc, cfg, errl = convert('interface = "wg0"\ngossip_port = 1666\npeers = [ '
                        '{ pubkey = "%s", address = "10.0.0.1" } ]\n' % K1)
check(rc == 0 and cfg["peers"] == [{"pubkey": K1, "address": "10.0.0.1"}],
      "inline peers: %s %s" % (cfg, errl))

# ---- the secret, character for character -------------------------------------
secret = 'tab\there "quoted" back\\slash é ключ 🔑\n'
t = base().replace('gossip_secret_file = "%s"' % SECRET,
                   'gossip_secret = "tab\\there \\"quoted\\" back\\\\slash é ключ 🔑\\n"')
rc, out, errtext = run([], t.encode())
check(rc == 0 and json.loads(out)["gossip_secret"] == secret,
      "inline secret kept exactly: %r" % (json.loads(out).get("gossip_secret") if rc == 0 else errtext))
check(rc == 0 and "ключ 🔑" in out, "inline secret written as UTF-8, not \\u escapes")
if rc == 0:
    check(wgam_check(out)[0] == 0, "check on the inline secret")
# literal strings and multi-line strings are TOML too
rc, cfg, _ = convert(base().replace('gossip_secret_file = "%s"' % SECRET,
                                    "gossip_secret = '''\nline1\nline2\n'''"))
check(rc == 0 and cfg["gossip_secret"] == "line1\nline2\n", "multi-line secret: %s" % cfg)

# -o: atomic, 0600 with an inline secret, 0644 without, nothing on error
outp = os.path.join(tmp, "out.json")
rc, out, _ = run(["-o", outp], t.encode())
check(rc == 0 and not out and stat.S_IMODE(os.stat(outp).st_mode) == 0o600,
      "-o with an inline secret: mode %o" % stat.S_IMODE(os.stat(outp).st_mode))
with open(outp, encoding="utf-8") as f:
    check(json.load(f)["gossip_secret"] == secret, "-o content")
rc, out, _ = run(["-o", outp], base().encode())
check(rc == 0 and stat.S_IMODE(os.stat(outp).st_mode) == 0o644, "-o without a secret: 0644")
before = open(outp).read()
rc, out, _ = run(["-o", outp], b"gossip_port = 0\n")
check(rc == 2 and open(outp).read() == before, "-o keeps the old file on error")
rc, out, e = run(["-o", os.path.join(tmp, "no", "such", "dir.json")], base().encode())
check(rc == 1, "-o into a missing directory: exit %d" % rc)
check(not [x for x in os.listdir(tmp) if x.startswith(".wgautomesh-toml2json")],
      "-o leaves no temporary file")

# ---- bad values: (TOML, field, words of the message, does check agree) -------
# @agree: the same value written into JSON must make `wgautomesh check` name
# the same field (None: a TOML-only problem, no JSON equivalent to test).
BAD = [
    # top level
    ('interface = "wg0"\ngossip_port = 1666\nfoo = 1', "foo", "unknown key", True),
    ('interface = "wg0"\ngossip_port = 1666\nlog_level = "debug"', "log_level", "not a key of the original", None),
    ('interface = "wg0"\ngossip_port = 1666\npolicy = "classic"', "policy", "not a key of the original", None),
    ('interface = "wg0"\ngossip_port = 1666\ncontrol_socket = "/run/x.sock"', "control_socket", "not a key of the original", None),
    ('gossip_port = 1666', "interface", "missing", True),
    ('interface = 3\ngossip_port = 1666', "interface", "not a string", True),
    ('interface = ""\ngossip_port = 1666', "interface", "not a valid interface name", True),
    ('interface = "sixteen-chars-16"\ngossip_port = 1666', "interface", "not a valid interface name", True),
    ('interface = "wg/0"\ngossip_port = 1666', "interface", "not a valid interface name", True),
    ('interface = "wg:0"\ngossip_port = 1666', "interface", "not a valid interface name", True),
    ('interface = "wg 0"\ngossip_port = 1666', "interface", "not a valid interface name", True),
    ('interface = ".."\ngossip_port = 1666', "interface", "not a valid interface name", True),
    ('interface = "wg\\u0000x"\ngossip_port = 1666', "interface", "NUL", None),
    ('interface = "wg0"', "gossip_port", "missing", True),
    ('interface = "wg0"\ngossip_port = 0', "gossip_port", "out of range", True),
    ('interface = "wg0"\ngossip_port = 65536', "gossip_port", "out of range", True),
    ('interface = "wg0"\ngossip_port = -1', "gossip_port", "out of range", True),
    ('interface = "wg0"\ngossip_port = 1666.5', "gossip_port", "not an integer", True),
    ('interface = "wg0"\ngossip_port = "1666"', "gossip_port", "not an integer", True),
    ('interface = "wg0"\ngossip_port = true', "gossip_port", "not an integer", True),
    ('interface = "wg0"\ngossip_port = 1666\ngossip_secret = "a"\ngossip_secret_file = "%s"' % SECRET,
     "gossip_secret_file", "conflicts", True),
    ('interface = "wg0"\ngossip_port = 1666\ngossip_secret = 42', "gossip_secret", "not a string", True),
    ('interface = "wg0"\ngossip_port = 1666\ngossip_secret = "a\\u0000b"', "gossip_secret", "NUL", None),
    ('interface = "wg0"\ngossip_port = 1666\ngossip_secret_file = ""', "gossip_secret_file", "empty path", True),
    ('interface = "wg0"\ngossip_port = 1666\ngossip_secret_file = ["x"]', "gossip_secret_file", "not a string", True),
    ('interface = "wg0"\ngossip_port = 1666\ngossip_secret_file = "EMPTY"', "gossip_secret_file", "is empty", True),
    ('interface = "wg0"\ngossip_port = 1666\ngossip_secret_file = "LONG"', "gossip_secret_file", "longer than 4096", True),
    ('interface = "wg0"\ngossip_port = 1666\npersist_file = ""', "persist_file", "empty path", True),
    ('interface = "wg0"\ngossip_port = 1666\npersist_file = 1', "persist_file", "not a string", True),
    ('interface = "wg0"\ngossip_port = 1666\nipv6 = "yes"', "ipv6", "not a boolean", True),
    ('interface = "wg0"\ngossip_port = 1666\nipv6 = 1', "ipv6", "not a boolean", True),
    ('interface = "wg0"\ngossip_port = 1666\nlan_discovery = "true"', "lan_discovery", "not a boolean", True),
    ('interface = "wg0"\ngossip_port = 1666\nupnp_forward_external_port = 0', "upnp_forward_external_port", "out of range", True),
    ('interface = "wg0"\ngossip_port = 1666\nupnp_forward_external_port = 70000', "upnp_forward_external_port", "out of range", True),
    ('interface = "wg0"\ngossip_port = 1666\nupnp_forward_external_port = "33723"', "upnp_forward_external_port", "not an integer", True),
    ('interface = "wg0"\ngossip_port = 1666\npeers = 3', "peers", "not an array", True),
    ('interface = "wg0"\ngossip_port = 1666\npeers = [1]', "peers[0]", "not a table", True),
    # peers
    ('interface = "wg0"\ngossip_port = 1666\n[[peers]]\naddress = "10.0.0.1"', "peers[0].pubkey", "missing", True),
    ('interface = "wg0"\ngossip_port = 1666\n[[peers]]\npubkey = "%s"' % K1, "peers[0].address", "missing", True),
    ('interface = "wg0"\ngossip_port = 1666\n[[peers]]\npubkey = "%s"\naddress = "10.0.0.1"\nname = "x"' % K1,
     "peers[0].name", "unknown key", True),
    ('interface = "wg0"\ngossip_port = 1666\n[[peers]]\npubkey = "%s"\naddress = "10.0.0.1"\nallowed_ips = ["10.1.0.0/16"]' % K1,
     "peers[0].allowed_ips", "not a key of the original", None),
    ('interface = "wg0"\ngossip_port = 1666\n[[peers]]\npubkey = "%s"\naddress = "10.0.0.1"\nrelay = true' % K1,
     "peers[0].relay", "not a key of the original", None),
]
for key in ("", "short=", K1[:-1], K1[:-1] + "A", K1.replace("=", "A"),
            K1[:-2] + "l=", "!" + K1[1:], K1[:-2] + "==", K1 + " "):
    BAD.append(('interface = "wg0"\ngossip_port = 1666\n[[peers]]\npubkey = "%s"\naddress = "10.0.0.1"' % key,
                "peers[0].pubkey", "not a 32-byte base64 key", True))
BAD.append(('interface = "wg0"\ngossip_port = 1666\n[[peers]]\npubkey = 3\naddress = "10.0.0.1"',
            "peers[0].pubkey", "not a string", True))
for addr, why in (("10.0.0.1/32", "not an IPv4 or IPv6 address"),
                  ("fe80::1%eth0", "not an IPv4 or IPv6 address"),
                  ("010.0.0.1", "not an IPv4 or IPv6 address"),
                  ("10.0.1", "not an IPv4 or IPv6 address"),
                  ("wg.example.org", "not an IPv4 or IPv6 address"),
                  ("", "not an IPv4 or IPv6 address"),
                  ("0.0.0.0", "not a unicast address"),
                  ("224.0.0.1", "not a unicast address"),
                  ("255.255.255.255", "not a unicast address"),
                  ("::", "not a unicast address"),
                  ("ff02::1", "not a unicast address")):
    BAD.append(('interface = "wg0"\ngossip_port = 1666\n[[peers]]\npubkey = "%s"\naddress = "%s"' % (K1, addr),
                "peers[0].address", why, True))
for ep, why in (("198.51.100.7", "not ip:port"),
                ("198.51.100.7:", "not ip:port"),
                ("198.51.100.7:x", "not ip:port"),
                ("198.51.100.7:0", "not a usable endpoint"),
                ("198.51.100.7:65536", "port out of range"),
                ("1.2.3.999:51820", "not ip:port"),
                ("01.2.3.4:51820", "not ip:port"),
                ("0.0.0.0:51820", "not a usable endpoint"),
                ("127.0.0.1:51820", "not a usable endpoint"),
                ("224.1.2.3:51820", "not a usable endpoint"),
                ("255.255.255.255:51820", "not a usable endpoint"),
                ("[::1]:51820", "not a usable endpoint"),
                ("[::]:51820", "not a usable endpoint"),
                ("[ff02::1]:51820", "not a usable endpoint"),
                ("[::ffff:127.0.0.1]:51820", "not a usable endpoint"),
                ("2001:db8::1:51820", "not ip:port"),
                ("[2001:db8::1]", "not ip:port"),
                ("[2001:db8::1%]:51820", "not ip:port"),
                ("[2001:db8::g]:51820", "not ip:port"),
                ("host name:51820", "not ip:port"),
                ("-bad..host:51820", "not ip:port"),
                (".host:51820", "not ip:port"),
                ("host:+80", "not ip:port"),
                ("host:80x", "port out of range"),
                ("host:0", "port out of range"),
                ("h\u00f4st:80", "not ip:port"),
                ("a" * 64 + ".org:80", "not ip:port"),
                ("a." * 127 + "ab:80", "not ip:port"),
                ("", "not ip:port")):
    BAD.append(('interface = "wg0"\ngossip_port = 1666\n[[peers]]\npubkey = "%s"\naddress = "10.0.0.1"\nendpoint = "%s"' % (K1, ep),
                "peers[0].endpoint", why, True))
BAD.append(('interface = "wg0"\ngossip_port = 1666\n[[peers]]\npubkey = "%s"\naddress = "10.0.0.1"\nendpoint = 51820' % K1,
            "peers[0].endpoint", "not a string", True))
BAD.append((base(peers=['pubkey = "%s"\naddress = "10.0.0.1"' % K1, 'pubkey = "%s"\naddress = "10.0.0.2"' % K1]),
            "peers[1].pubkey", "duplicate of peers[0].pubkey", True))
BAD.append((base(peers=['pubkey = "%s"\naddress = "10.0.0.1"' % K1, 'pubkey = "%s"\naddress = "10.0.0.1"' % K2]),
            "peers[1].address", "duplicate of peers[0].address", True))
BAD.append((base(peers=['pubkey = "%s"\naddress = "fd00::1"' % K1, 'pubkey = "%s"\naddress = "fd00:0::1"' % K2]),
            "peers[1].address", "duplicate of peers[0].address", True))
BAD.append(('interface = "wg0"\ngossip_port = 1666\npeers = [%s]' % ", ".join(
    '{pubkey = "%s", address = "10.%d.%d.1"}' % (K1, i // 256, i % 256) for i in range(16385)),
    "peers", "at most 16384", True))

empty = os.path.join(tmp, "empty")
open(empty, "w").close()
longf = os.path.join(tmp, "long")
with open(longf, "w") as f:
    f.write("x" * 4097)


def fix_paths(t):
    return t.replace('"EMPTY"', '"%s"' % empty).replace('"LONG"', '"%s"' % longf)


def toml_to_json_text(t):
    """The bad TOML written as JSON as literally as possible (what a person
    would write by hand): tomllib gives the values, json keeps them."""
    import tomllib
    doc = tomllib.loads(t)
    if "peers" not in doc:
        doc["peers"] = []
    return json.dumps(doc, ensure_ascii=False)


for t, field, words, agree in BAD:
    t = fix_paths(t)
    rc, out, errl = convert(t)
    label = "%s (%s)" % (field, t.splitlines()[-1][:70])
    check(rc == 2, "%s: exit %d, not 2" % (label, rc))
    check(out == "", "%s: printed %r" % (label, str(out)[:80]))
    named = [ln for ln in errl if ln.startswith("<stdin>: %s: " % field)]
    check(len(named) == 1 and words in named[0],
          "%s: expected one line naming it with %r, got %s" % (label, words, errl))
    if agree:
        rc2, err2 = wgam_check(toml_to_json_text(t))
        check(rc2 == 2 and re.search(r": %s: " % re.escape(field), err2),
              "%s: wgautomesh check does not refuse the same field: %d %s" % (label, rc2, err2))

# tricky values both accept (converter and `wgautomesh check`)
GOOD_EP = ["[2001:db8::1%eth0]:51820", "[::ffff:198.51.100.7]:51820", "198.51.100.7:05182",
           "1.2.3.4x:80", "host.:80", "a-b_c.example:1", "[2001:DB8::A]:65535",
           "240.0.0.1:80", "xn--ls8h.example:80", "a" * 63 + ".org:80"]
for ep in GOOD_EP:
    t = base(peers=['pubkey = "%s"\naddress = "10.0.0.1"\nendpoint = "%s"' % (K1, ep)])
    rc, cfg, errl = convert(t)
    check(rc == 0, "endpoint %r refused by the converter: %s" % (ep, errl))
    if rc == 0:
        rc2, err2 = wgam_check(cfg)
        check(rc2 == 0, "endpoint %r: converter accepts, check refuses: %s" % (ep, err2))
for addr in ("::ffff:10.0.0.1", "fd00::1", "2001:db8:0:0:0:0:0:1", "100.64.0.1", "223.255.255.255"):
    t = base(peers=['pubkey = "%s"\naddress = "%s"' % (K1, addr)])
    rc, cfg, errl = convert(t)
    check(rc == 0 and wgam_check(cfg)[0] == 0, "address %r: %s" % (addr, errl))

# every problem of one input, each on its own line
t = ('interface = "wg/0"\ngossip_port = 0\nfoo = 1\ngossip_secret = 1\n'
     'upnp_forward_external_port = 0\nipv6 = "no"\n'
     '[[peers]]\npubkey = "x"\naddress = "10.0.0.300"\nendpoint = "nowhere"\n'
     '[[peers]]\npubkey = "%s"\naddress = "10.0.0.2"\nbar = 2\n' % K1)
rc, out, errl = convert(t)
fields = [ln.split(": ")[1] for ln in errl]
want = ["foo", "interface", "gossip_port", "gossip_secret", "ipv6", "upnp_forward_external_port",
        "peers[0].pubkey", "peers[0].address", "peers[0].endpoint", "peers[1].bar"]
check(rc == 2 and sorted(fields) == sorted(want), "all problems at once: %s" % errl)

# not TOML, not UTF-8, unreadable
for data, words in ((b"interface = \n", "invalid TOML"), (b"interface = \"\xff\"\n", "not UTF-8"),
                    (b"[[peers]]\n[peers]\n", "invalid TOML")):
    rc, out, e = run([], data)
    check(rc == 2 and words in e and not out, "%r: %d %s" % (data, rc, e))
rc, out, e = run([os.path.join(tmp, "nonexistent.toml")])
check(rc == 2 and "cannot read" in e, "unreadable input: %d %s" % (rc, e))
rc, out, e = run(["a.toml", "b.toml"])
check(rc == 2 and not out, "two inputs: usage error (%d)" % rc)
rc, out, e = run(["--help"])
check(rc == 0 and "--policy" in out, "--help")

# ---- doc/migrating.md states the timers of lib/settings.c --------------------
with open(os.path.join(src, "lib", "settings.c"), encoding="utf-8") as f:
    settings_c = f.read()


def preset(func):
    """{field: seconds} assigned in @func's body (settings_common's first)."""
    vals = {}
    for name in ("settings_common", func):
        body = re.search(r"\b%s\(.*?\)\s*\{(.*?)\n\}" % name, settings_c, re.S).group(1)
        for field, num, unit in re.findall(
                r"(?:s|settings)->(\w+)\s*=\s*(\d+)(?:\s*\*\s*WGAM_(SECONDS|MILLISECONDS))?;", body):
            v = int(num)
            vals[field] = v / 1000 if unit == "MILLISECONDS" else v
    return vals


def secs(v):
    return "%g s" % v


fast = preset("wgam_settings_default_versioned")
classic = preset("wgam_settings_classic_versioned")
with open(os.path.join(src, "doc", "migrating.md"), encoding="utf-8") as f:
    rows = {ln.split("|")[1].strip(): ln for ln in f.read().splitlines()
            if ln.startswith("| ") and ln.count("|") >= 5}
WANT = {
    "interface read": ["every " + secs(classic["device_interval"]),
                       "every " + secs(fast["device_interval"])],
    "next candidate of a disconnected peer": [
        "next %s cycle" % secs(classic["try_interval"]),
        "(%s)" % secs(fast["try_interval"])],
    "all candidates failed": ["%s each" % secs(classic["backoff_min"]),
                              "back off %s doubling to %s" % (secs(fast["backoff_min"]),
                                                              secs(fast["backoff_max"]))],
    "connected while the last handshake is younger than": [
        "| %s |" % secs(classic["timeout"]), "| %s," % secs(fast["timeout"]),
        "after %s of silence" % secs(fast["probe_idle"]),
        "%s to answer" % secs(fast["probe_timeout"])],
    "state file": ["every %s and at exit" % secs(classic["persist_interval"]),
                   "%s after a change" % secs(fast["persist_interval"])],
    "unchanged in all three": [
        "re-announce %s" % secs(fast["gossip_interval"]),
        "LAN broadcast %s" % secs(fast["lan_interval"]),
        "forgotten after %s" % secs(fast["lan_timeout"]),
        "UPnP renewal %s" % secs(fast["igd_interval"]),
        "keepalive %s while trying" % secs(fast["keepalive_trying"]),
        "%s when connected" % secs(fast["keepalive_connected"])],
}
for k in ("gossip_interval", "lan_interval", "lan_timeout", "igd_interval",
          "keepalive_trying", "keepalive_connected"):
    check(fast[k] == classic[k], "lib/settings.c: %s differs between presets: "
          "doc/migrating.md says it does not" % k)
for row, words in WANT.items():
    line = rows.get(row)
    check(line is not None, "doc/migrating.md: no timer row %r" % row)
    for w in words:
        check(line is not None and w in line,
              "doc/migrating.md: row %r does not say %r (lib/settings.c)" % (row, w))

print("%d checks, %d failed" % (count, len(fails)))
sys.exit(1 if fails else 0)
