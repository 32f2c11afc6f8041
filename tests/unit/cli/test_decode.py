#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`wgautomesh decode` on every packet and state file of the v1 vectors.

Usage: test_decode.py WGAUTOMESH VECTORS.json
"""
import json
import os
import subprocess
import sys
import tempfile

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


def expected_msg(value):
    """Turns a vector's value into the JSON `decode` prints."""
    out = {"type": value["variant"]}
    fields = value.get("fields", {})
    if "pubkey" in fields:
        out["pubkey"] = fields["pubkey"]
    if value["variant"] == "Announce":
        out["endpoints"] = [
            {"addr": e["addr"], "time": int(e["last_seen"])}
            for e in fields["endpoints"]
        ]
    if "listen_port" in fields:
        out["listen_port"] = fields["listen_port"]
    return out


def expected_state(value):
    return {
        k: [{"addr": e["addr"], "time": int(e["last_seen"])} for e in v]
        for k, v in value.items()
    }


def run(exe, args, stdin=""):
    r = subprocess.run([exe] + args, input=stdin.encode(), capture_output=True,
                       timeout=30)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def decode_lines(exe, tmp, secret, lines):
    path = os.path.join(tmp, "secret")
    with open(path, "wb") as f:
        f.write(secret.encode("utf-8"))
    rc, out, err = run(exe, ["decode", "--secret-file", path],
                       "".join(l + "\n" for l in lines))
    if rc != 0:
        fail("decode exited %d: %s" % (rc, err))
        return []
    # json.loads keeps big integers exact: u64 times are checked exactly.
    return [json.loads(l) for l in out.splitlines()]


def main():
    exe, vectors = sys.argv[1], sys.argv[2]
    with open(vectors) as f:
        v = json.load(f)
    n = 0
    with tempfile.TemporaryDirectory(prefix="wgam-decode-") as tmp:
        for c in v["message_cases"]:
            got = decode_lines(exe, tmp, c["secret"], [c["packet_hex"]])
            want = expected_msg(c.get("decoded_value", c["value"]))
            if got != [want]:
                fail("%s: got %r want %r" % (c["id"], got, want))
            n += 1

        for c in v["invalid_packet_cases"]:
            got = decode_lines(exe, tmp, c["receiver_secret"],
                               [c["packet_hex"]])
            if len(got) != 1:
                fail("%s: %d output lines" % (c["id"], len(got)))
            elif c["expected"] == "reject":
                if set(got[0]) != {"error"} or not got[0]["error"]:
                    fail("%s: got %r, want an error" % (c["id"], got[0]))
            elif got[0] != expected_msg(c["decoded_value"]):
                fail("%s: got %r" % (c["id"], got[0]))
            n += 1

        # Several datagrams in one run: one line out per line in, blank and
        # comment lines skipped, spaces and ':' between bytes allowed.
        ping = next(c for c in v["message_cases"] if c["id"] == "ping")
        h = ping["packet_hex"]
        spaced = " ".join(h[i:i + 2] for i in range(0, len(h), 2))
        got = decode_lines(exe, tmp, ping["secret"],
                           ["# capture", h, "", spaced, h.upper(), "zz", h[:-1]])
        want = [{"type": "Ping"}] * 3 + [{"error": "invalid hex"}] * 2
        if got != want:
            fail("multi-line: got %r" % got)
        n += 1

        # The wrong secret fails authentication, per line.
        got = decode_lines(exe, tmp, "not-" + ping["secret"], [h])
        if len(got) != 1 or "error" not in got[0]:
            fail("wrong secret: got %r" % got)
        n += 1

        for c in v["persist_cases"] + v["persist_decode_cases"]:
            path = os.path.join(tmp, "state")
            with open(path, "wb") as f:
                f.write(bytes.fromhex(c["file_hex"]))
            rc, out, err = run(exe, ["decode", "--state", path])
            lines = out.splitlines()
            if len(lines) != 1:
                fail("%s: %d output lines: %r %s" % (c["id"], len(lines), out,
                                                     err))
                continue
            got = json.loads(lines[0])
            if c.get("expected", "accept") == "reject":
                if rc != 1 or set(got) != {"error"}:
                    fail("%s: rc %d, got %r, want an error" % (c["id"], rc,
                                                               got))
            else:
                want = expected_state(c.get("decoded_value", c.get("value")))
                if rc != 0 or got != want:
                    fail("%s: rc %d got %r want %r" % (c["id"], rc, got, want))
            n += 1

        rc, out, err = run(exe, ["decode", "--state",
                                 os.path.join(tmp, "absent")])
        if rc != 1:
            fail("missing state file: rc %d" % rc)
        n += 1

    print("%d decode checks, %d failures" % (n, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
