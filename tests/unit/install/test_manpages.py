#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The man pages render without a groff warning and document what the code
does (and doc/protocol.md quotes only bytes of the test vectors): every configuration key cli/config.c accepts, every command and option
of `wgautomesh --help`, every metric cli/status.c prints, the default paths
of cli/config.h, and the signals, exit codes and environment of the daemon.

Usage: test_manpages.py SOURCE_ROOT
"""
import os
import re
import shutil
import subprocess
import sys

src = sys.argv[1]
doc = os.path.join(src, "doc")
page8 = os.path.join(doc, "wgautomesh.8")
page5 = os.path.join(doc, "wgautomesh.json.5")
fails = []


def fail(msg):
    print("FAIL: " + msg)
    fails.append(msg)


def read(*parts):
    with open(os.path.join(src, *parts), encoding="utf-8") as f:
        return f.read()


if not shutil.which("groff"):
    print("SKIP: groff not found (package groff-base)")
    sys.exit(77)


def render(page):
    """Plain text of @page; groff's warnings (all of them) are failures."""
    r = subprocess.run(
        ["groff", "-ww", "-t", "-man", "-Tutf8", "-rLL=250n", "-P-cbou", page],
        capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        fail("%s: groff -ww: %s" % (os.path.basename(page),
                                    r.stderr.strip() or r.returncode))
    if len(r.stdout.splitlines()) < 40:
        fail("%s: renders to %d lines only" %
             (os.path.basename(page), len(r.stdout.splitlines())))
    return r.stdout


text8 = render(page8)
text5 = render(page5)

# man(1) as a user runs it, when it is installed (man-db hides the
# formatter's warnings: groff -ww above is the warning check).
if shutil.which("man"):
    for page in (page8, page5):
        r = subprocess.run(["man", "-l", page], capture_output=True,
                           text=True,
                           env=dict(os.environ, MANPAGER="cat", PAGER="cat",
                                    MANWIDTH="80"))
        if r.returncode != 0 or "SEE ALSO" not in r.stdout:
            fail("man -l %s: %s" % (os.path.basename(page),
                                    r.stderr.strip() or r.returncode))


def tag_lines(text):
    """The first word of every line: .TP tags start a line."""
    return {m.group(1) for m in re.finditer(r"^\s+(\S+)", text, re.M)}


# ---- wgautomesh.json(5): every key of cli/config.c -------------------------
config_c = read("cli", "config.c")
keys = []
for block in re.findall(r"known\[\]\s*=\s*\{(.*?)NULL\}", config_c, re.S):
    keys += re.findall(r'"([a-z_0-9]+)"', block)
if len(keys) < 12:
    fail("found only %d config keys in cli/config.c: parser out of date" %
         len(keys))
tags5 = tag_lines(text5)
for k in keys:
    if k not in tags5:
        fail("wgautomesh.json(5) has no entry (a line starting with it) "
             "for the key %s" % k)
print("ok: %d configuration keys checked" % len(keys))

config_h = read("cli", "config.h")
for macro in ("CONFIG_DEFAULT_PATH", "CONFIG_SOCKET_DIR"):
    m = re.search(r'#define %s "([^"]+)"' % macro, config_h)
    if not m:
        fail("cli/config.h: %s not found" % macro)
        continue
    for name, text in (("wgautomesh(8)", text8),
                       ("wgautomesh.json(5)", text5)):
        if m.group(1) not in text:
            fail("%s does not mention %s (%s)" % (name, m.group(1), macro))

# ---- wgautomesh(8): commands and options of the usage text ------------------
main_c = read("cli", "main.c")
usage = re.search(r"static void usage\(FILE \*f\) \{(.*?)\n\}", main_c, re.S)
if not usage:
    fail("cli/main.c: usage() not found")
else:
    u = usage.group(1)
    opts = set(re.findall(r"(--[a-z][a-z-]*|(?<![\w-])-[a-zA-Z])\b", u))
    cmds = set(re.findall(r"wgautomesh (?:\[[^\]]*\] )*\[?([a-z]+)\]?", u))
    cmds.discard("or")
    for word in sorted(cmds):
        if not re.search(r"^\s+%s(\s|$)" % word, text8, re.M) and \
                not re.search(r"wgautomesh\s.*\b%s\b" % word, text8):
            fail("wgautomesh(8) does not describe the command %s" % word)
    for o in sorted(opts):
        if not re.search(r"(^|[\s,\[|])%s\b" % re.escape(o), text8, re.M):
            fail("wgautomesh(8) does not describe the option %s" % o)
    print("ok: commands %s and options %s checked" %
          (" ".join(sorted(cmds)), " ".join(sorted(opts))))

# ---- wgautomesh(8): every metric of cli/status.c -----------------------------
status_c = read("cli", "status.c")
metrics = re.findall(r'prom_head\(out,\s*"([a-z_0-9]+)"', status_c)
if len(metrics) < 10:
    fail("found only %d metrics in cli/status.c: parser out of date" %
         len(metrics))
for name in metrics:
    if "wgautomesh_" + name not in text8:
        fail("wgautomesh(8) does not document the metric wgautomesh_" + name)
# Label values of the metrics: message types and reject reasons.
for label in ("ping", "pong", "announce", "request", "lan_broadcast"):
    if label not in text8:
        fail("wgautomesh(8) does not list the message type label " + label)
error_c = read("lib", "error.c")
m = re.search(r"wgam_reject_name.*?names\[\]\s*=\s*\{(.*?)\};", error_c, re.S)
reasons = re.findall(r'"([a-z_]+)"', m.group(1)) if m else []
if len(reasons) < 7:
    fail("lib/error.c: reject reasons not found")
for r in reasons:
    if r not in text8:
        fail("wgautomesh(8) does not list the reject reason " + r)
print("ok: %d metrics, %d reject reasons checked" % (len(metrics),
                                                      len(reasons)))

# ---- wgautomesh(8): signals, exit status, environment, files ----------------
for word in ("SIGHUP", "SIGTERM", "SIGINT", "NOTIFY_SOCKET", "JOURNAL_STREAM",
             "READY=1", "RELOADING=1", "/var/run/wireguard",
             "EXIT STATUS", "SIGNALS", "FILES", "ENVIRONMENT", "SEE ALSO"):
    if word not in text8:
        fail("wgautomesh(8) does not mention %s" % word)
for code in ("0", "1", "2"):
    if not re.search(r"^\s+%s(\s|$)" % code, text8, re.M):
        fail("wgautomesh(8) has no entry for exit status %s" % code)
for word in ("EXAMPLE", "SEE ALSO"):
    if word not in text5:
        fail("wgautomesh.json(5) has no %s section" % word)

# ---- doc/protocol.md: every hex string in it is one of the vectors' -------
vectors = read("tests", "vectors", "wgautomesh-v1.json")
proto = read("doc", "protocol.md")
hexes = set(re.findall(r"\b[0-9a-f]{16,}\b", proto))
for h in sorted(hexes):
    if h not in vectors:
        fail("doc/protocol.md: %s... is not in the vectors file" % h[:24])
if len(hexes) < 10:
    fail("doc/protocol.md: only %d hex strings: worked example gone?" %
         len(hexes))
print("ok: %d hex strings of doc/protocol.md found in the vectors" %
      len(hexes))

if fails:
    print("%d problem(s)" % len(fails))
    sys.exit(1)
print("ok: man pages render cleanly and match the code")
