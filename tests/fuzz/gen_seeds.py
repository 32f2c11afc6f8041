#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpora of the fuzz targets into OUTDIR/<target>/.

Usage: gen_seeds.py VECTORS_JSON OUTDIR

Datagram and state file seeds come from the v1 test vectors
(tests/vectors/wgautomesh-v1.json); config, UAPI, netlink and PCP/NAT-PMP
seeds are built here in the formats the daemon reads. See tests/fuzz/fuzz_*.c for the input
layout of each target (mode byte, scripts).
"""
import base64
import json
import os
import socket
import struct
import sys

# The keys of tests/fuzz/fuzz_common.c: [0] is the fuzzed node itself.
KEYS = [
    "Z5DddUq5GewAeS9Lndx0e6eLuENG9SOvANK2GBzGUxg=",
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=",
    "NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/gHLAnFM=",
    "CR5wxWBfBHY0SI1vHZ99TMxICWIZ6Ez6u9AnBAV4WUk=",
    "zqm6sutNRM2Bx6lsym+gigCbKbn28MXLLkDekDMXw50=",
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
]


class Out:
    def __init__(self, root, target):
        self.dir = os.path.join(root, target)
        os.makedirs(self.dir, exist_ok=True)
        self.n = 0

    def put(self, name, data):
        if isinstance(data, str):
            data = data.encode()
        path = os.path.join(self.dir, "%03d-%s" % (self.n, name))
        with open(path, "wb") as f:
            f.write(data)
        self.n += 1


# ---- bincode (the original's layout) --------------------------------------
def sockaddr(s):
    host, port = s.rsplit(":", 1)
    if host.startswith("["):
        ip = socket.inet_pton(socket.AF_INET6, host[1:-1].split("%")[0])
        return struct.pack("<I", 1) + ip + struct.pack("<H", int(port))
    return (struct.pack("<I", 0) + socket.inet_aton(host) +
            struct.pack("<H", int(port)))


def endpoints(eps):
    b = struct.pack("<Q", len(eps))
    for addr, t in eps:
        b += sockaddr(addr) + struct.pack("<Q", t)
    return b


def string(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(s)) + s


def announce(key, eps):
    return struct.pack("<I", 2) + string(key) + endpoints(eps)


def lanbroadcast(key, port):
    return struct.pack("<I", 4) + string(key) + struct.pack("<H", port)


def state(entries):
    b = struct.pack("<Q", len(entries))
    for key, eps in entries:
        b += string(key) + endpoints(eps)
    return b


PING = struct.pack("<I", 0)
PONG = struct.pack("<I", 1)
REQUEST = struct.pack("<I", 3)


# ---- datagrams -------------------------------------------------------------
def rec(op, arg=b""):
    assert len(arg) < 256
    return bytes([op, len(arg)]) + arg


def src_op(kind, src):  # kind 0 sealed, 2 raw; source index in op >> 3
    return kind | (src << 3)


def gen_pkt(vec, out):
    n = 0
    for c in vec["message_cases"]:
        # mode 0: the datagram as captured (opens when the secret is the
        # fuzzed mesh's "hunter2"); mode 1: the plaintext, sealed by the
        # target.
        out.put(c["id"] + "-pkt", bytes([(3 * n) % 255]) +
                bytes.fromhex(c["packet_hex"]))
        out.put(c["id"] + "-plain", bytes([(3 * n + 1) % 255]) +
                bytes.fromhex(c["plaintext_hex"]))
        n += 1
    for c in vec["invalid_packet_cases"]:
        out.put(c["id"], bytes([0]) + bytes.fromhex(c["packet_hex"]))
    for c in vec["invalid_packet_cases"]:
        if c.get("plaintext_hex"):
            out.put(c["id"] + "-plain",
                    bytes([1]) + bytes.fromhex(c["plaintext_hex"]))

    # Announces and LAN broadcasts about the fuzzed mesh's own peers.
    out.put("announce-peer2", bytes([1 + 8]) + announce(
        KEYS[2], [("198.51.100.20:51820", 1700000000),
                  ("[2001:db8::20]:51820", 1699999000)]))
    out.put("announce-self", bytes([4 + 1]) + announce(
        KEYS[0], [("203.0.113.50:51820", 1700000001)]))
    out.put("announce-5", bytes([1 + 16]) + announce(
        KEYS[3], [("198.51.100.%d:51820" % i, 1700000000 + i)
                  for i in range(1, 8)]))
    out.put("announce-bad-endpoints", bytes([1]) + announce(
        KEYS[4], [("127.0.0.1:1", 1), ("0.0.0.0:51820", 2),
                  ("[ff02::1]:51820", 3), ("100.64.0.2:51820", 4),
                  ("198.51.100.9:0", 5)]))
    out.put("lan-peer3", bytes([1 + (6 << 3)]) + lanbroadcast(KEYS[3], 51820))
    out.put("lan-self", bytes([1 + (7 << 3)]) + lanbroadcast(KEYS[0], 51820))

    # Scripts (mode 2): the first script byte's bit 0 = peers connected.
    a2 = announce(KEYS[2], [("198.51.100.20:51820", 1700000000)])
    a5 = announce(KEYS[5], [("203.0.113.5:4500", 1700000100)])
    st = state([(KEYS[1], [("198.51.100.11:51820", 1690000000)]),
                (KEYS[4], [("[2001:db8::44]:51820", 1690000001)])])
    scripts = [
        [rec(src_op(0, 1), a2), rec(3, b"\x05"), rec(5)],
        [rec(src_op(0, 2), REQUEST), rec(src_op(0, 2), REQUEST),
         rec(3, b"\x06"), rec(src_op(0, 2), REQUEST), rec(5)],
        [rec(src_op(0, 6), lanbroadcast(KEYS[3], 51820)), rec(3, b"\x01"),
         rec(4 | (5 << 4), b"\x01\x02\x03\x04\x05"), rec(3, b"\x1e"),
         rec(src_op(0, 1), PONG), rec(3, b"\x3c"), rec(5)],
        [rec(7, st), rec(3, b"\x0a"), rec(4 | (3 << 4), b"\x80\x80\x80"),
         rec(3, b"\xff"), rec(3, b"\xff"), rec(5)],
        [rec(6 | (8 << 3), b"\x01"), rec(src_op(0, 9), PING), rec(5),
         rec(6, b""), rec(src_op(0, 4), a5), rec(3, b"\x3c\x10"), rec(5)],
        [rec(src_op(2, 8), b"\x00" * 30), rec(src_op(2, 8), b"\x00" * 23),
         rec(src_op(0, 3), b"\x09\x00\x00\x00"), rec(5)],
    ]
    for i, s in enumerate(scripts):
        for first in (0, 1):
            out.put("script-%d-%d" % (i, first),
                    bytes([2, first]) + b"".join(s))


def gen_state(vec, out):
    for c in vec["persist_cases"] + vec["persist_decode_cases"]:
        out.put(c["id"], bytes.fromhex(c["file_hex"]))
    out.put("fuzzed-mesh", state(
        [(KEYS[i], [("198.51.100.%d:51820" % i, 1700000000 - i),
                    ("[2001:db8::%d]:51820" % i, 1690000000)])
         for i in range(6)]))
    out.put("unknown-and-bad", state(
        [("not a key", [("198.51.100.1:1", 1)]),
         (KEYS[2], [("127.0.0.1:51820", 5), ("224.0.0.1:1", 6),
                    ("198.51.100.2:51820", 7)] * 3)]))
    out.put("max-endpoints", state(
        [(KEYS[3], [("203.0.113.%d:51820" % i, i) for i in range(64)])]))


# ---- config ------------------------------------------------------------------
def gen_config(out):
    peers = [{"pubkey": KEYS[1], "address": "100.64.0.1"},
             {"pubkey": KEYS[2], "address": "100.64.0.2",
              "endpoint": "198.51.100.2:51820"},
             {"pubkey": KEYS[3], "address": "fd00::3",
              "endpoint": "[2001:db8::3]:51820"},
             {"pubkey": KEYS[4], "address": "100.64.0.4",
              "endpoint": "node4.example.net:51820"}]
    base = {"interface": "wg0", "gossip_port": 1666,
            "gossip_secret": "s3cret", "peers": peers}
    full = dict(base, persist_file="/var/lib/wgautomesh/state",
                ipv6=True, lan_discovery=True,
                upnp_forward_external_port=51820, log_level="debug",
                control_socket="/run/wgautomesh/wg0.sock", policy="classic")
    out.put("minimal", json.dumps(base))
    out.put("full", json.dumps(full, indent=2))
    out.put("secret-file", json.dumps(dict(
        {k: v for k, v in base.items() if k != "gossip_secret"},
        gossip_secret_file="/etc/wgautomesh.secret")))
    out.put("both-secrets", json.dumps(dict(
        base, gossip_secret_file="/etc/wgautomesh.secret")))
    out.put("dup-key", json.dumps(dict(base, peers=peers + [peers[0]])))
    out.put("unknown-key", json.dumps(dict(base, colour="blue")))
    out.put("bad-types", json.dumps(dict(base, gossip_port="1666",
                                         ipv6="yes")))
    out.put("empty-peers", json.dumps(dict(base, peers=[])))
    out.put("no-secret", json.dumps(
        {k: v for k, v in base.items() if k != "gossip_secret"}))
    out.put("endpoint-v4", "198.51.100.2:51820")
    out.put("endpoint-v6", "[fe80::1%eth0]:51820")
    out.put("endpoint-host", "a.very.long.name.example:1")
    out.put("not-json", "{\"interface\": \"wg0\", \"gossip_port\": }")


# ---- UAPI ------------------------------------------------------------------
def hexkey(b64):
    return base64.b64decode(b64).hex()


def gen_uapi(out):
    good = ("private_key=" + "a8" * 32 + "\n"
            "listen_port=51820\nfwmark=0\n"
            "public_key=" + hexkey(KEYS[1]) + "\n"
            "preshared_key=" + "00" * 32 + "\n"
            "protocol_version=1\nendpoint=[2001:db8::1]:51820\n"
            "last_handshake_time_sec=1700000000\n"
            "last_handshake_time_nsec=42\n"
            "tx_bytes=18446744073709551615\nrx_bytes=456\n"
            "persistent_keepalive_interval=25\n"
            "allowed_ip=100.64.0.1/32\nallowed_ip=fd00::1/128\n"
            "public_key=" + hexkey(KEYS[2]) + "\n"
            "endpoint=198.51.100.7:4500\n"
            "persistent_keepalive_interval=0\nallowed_ip=0.0.0.0/0\n"
            "public_key=" + hexkey(KEYS[3]) + "\n"
            "endpoint=[fe80::1%eth0]:1\nsome_future_key=whatever=it is\n"
            "public_key=" + hexkey(KEYS[0]) + "\n"
            "errno=0\n\n")
    out.put("good", good)
    out.put("empty-device", "listen_port=0\nerrno=0\n\n")
    out.put("errno-only", "errno=0\n\n")
    out.put("errno-fail", "errno=19\n\n")
    out.put("no-errno", "listen_port=1\n")
    out.put("attr-before-key", "endpoint=1.2.3.4:5\nerrno=0\n\n")
    out.put("big-numbers", "public_key=" + hexkey(KEYS[1]) +
            "\nrx_bytes=18446744073709551616\nerrno=0\n\n")


# ---- netlink -----------------------------------------------------------------
NLA_F_NESTED = 0x8000


def nla(t, payload):
    b = struct.pack("=HH", 4 + len(payload), t) + payload
    return b + b"\0" * (-len(b) % 4)


def nest(t, *attrs):
    return nla(t | NLA_F_NESTED, b"".join(attrs))


def nlmsg(attrs, seq=1):
    body = struct.pack("=BBH", 0, 1, 0) + b"".join(attrs)  # GET_DEVICE, v1
    return struct.pack("=IHHII", 16 + len(body), 0x15, 0x2, seq, 0) + body


def aip(family, ip, cidr):
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    return nest(0, nla(1, struct.pack("=H", af)),
                nla(2, socket.inet_pton(af, ip)), nla(3, bytes([cidr])))


def sin(ip, port):
    return (struct.pack("=H", socket.AF_INET) + struct.pack(">H", port) +
            socket.inet_aton(ip) + b"\0" * 8)


def sin6(ip, port):
    return (struct.pack("=H", socket.AF_INET6) + struct.pack(">H", port) +
            b"\0" * 4 + socket.inet_pton(socket.AF_INET6, ip) + b"\0" * 4)


def gen_netlink(out):
    k = [base64.b64decode(x) for x in KEYS]
    m1 = nlmsg([
        nla(1, struct.pack("=I", 7)), nla(2, b"wg0\0"), nla(4, k[0]),
        nla(6, struct.pack("=H", 51820)), nla(7, struct.pack("=I", 0)),
        nest(8,
             nest(0, nla(1, k[1]), nla(4, sin("198.51.100.9", 51820)),
                  nla(6, struct.pack("=qq", 1700000000, 123)),
                  nla(7, struct.pack("=Q", 1000)),
                  nla(8, struct.pack("=Q", 2**64 - 1)),
                  nla(5, struct.pack("=H", 25)),
                  nla(10, struct.pack("=I", 1)),
                  nest(9, aip(4, "100.64.0.1", 32), aip(6, "fd00::1", 128))),
             nest(0, nla(1, k[2]), nla(4, sin6("2001:db8::9", 4500)),
                  nla(5, struct.pack("=H", 10)),
                  nest(9, aip(4, "100.64.1.0", 24))))])
    m2 = nlmsg([nest(8,
                     nest(0, nla(1, k[2]),
                          nest(9, aip(4, "100.64.2.0", 24),
                               aip(6, "fd00:1::", 64))),
                     nest(0, nla(1, k[3])))], seq=2)
    out.put("one-message", b"\0" + m1)
    out.put("continuation", b"\0" + m2)
    out.put("split-dump", b"\1" + m1 + m2)
    out.put("split-dump-3", b"\1" + m1 + m2 + nlmsg([], seq=3))
    out.put("truncated", b"\0" + m1[:60])
    out.put("bad-family", b"\0" + nlmsg([nest(8, nest(
        0, nla(1, k[1]), nest(9, nest(0, nla(1, struct.pack("=H", 99)),
                                      nla(3, b"\x20")))))]))


# ---- PCP and NAT-PMP responses, routing tables ----------------------------
def gen_pcp(out):
    nonce = bytes(range(1, 13))

    def v4mapped(ip):
        return b"\0" * 10 + b"\xff\xff" + socket.inet_aton(ip)

    def pcp(op, result, lifetime, epoch, data=b""):
        return (struct.pack(">BBBBII", 2, 0x80 | op, 0, result, lifetime,
                            epoch) + b"\0" * 12 + data)

    mapdata = (nonce + struct.pack(">B3xHH", 17, 51820, 40001) +
               v4mapped("198.51.100.11"))
    out.put("pcp-map", pcp(1, 0, 120, 7298, mapdata))
    out.put("pcp-map-option", pcp(1, 0, 120, 7298, mapdata) +
            struct.pack(">BBH", 1, 0, 4) + b"\0" * 4)
    out.put("pcp-not-authorized", pcp(1, 2, 30, 9))
    out.put("pcp-announce", pcp(0, 0, 0, 3))
    out.put("natpmp-external",
            struct.pack(">BBHI", 0, 128, 0, 7298) +
            socket.inet_aton("198.51.100.11"))
    out.put("natpmp-map", struct.pack(">BBHIHHI", 0, 129, 0, 7299, 51820,
                                      40001, 120))
    out.put("natpmp-unsupported-version", struct.pack(">BBHI", 0, 129, 1, 5))
    out.put("route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\t"
            "Metric\tMask\t\tMTU\tWindow\tIRTT\n"
            "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n")
    out.put("ipv6-route",
            "0" * 32 + " 00 " + "0" * 32 + " 00 fd000001" + "0" * 23 +
            "1 00000400 00000001 00000000 00000003 eth0\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        vec = json.load(f)
    root = sys.argv[2]
    gen_pkt(vec, Out(root, "pkt"))
    gen_state(vec, Out(root, "state"))
    gen_config(Out(root, "config"))
    gen_uapi(Out(root, "uapi"))
    gen_netlink(Out(root, "netlink"))
    gen_pcp(Out(root, "pcp"))


if __name__ == "__main__":
    main()
