#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The table of timers and limits in wgautomesh(8) says what the code does.

Usage: check_limits_doc.py SOURCE_ROOT DUMP_LIMITS

DUMP_LIMITS (tests/unit/docs/dump_limits.c) prints both presets of wgam_settings
(lib/settings.c), every field of struct wgam_fixed (lib/settings.c) and the
limits of the public header. The man page's section TIMERS AND LIMITS holds
three tbl tables, each after a comment line `.\\" table: settings`,
`fixed` or `const`. This test fails when
  - a field of struct wgam_settings or struct wgam_fixed is neither dumped
    nor listed below as not being a value;
  - a dumped value has no row in the table, or a row no value in the code;
  - a documented value differs from the code.
"""
import os
import re
import subprocess
import sys

# wgam_settings fields that are not timers or limits: the caller's own.
NOT_VALUES = {"secret", "secretlen", "flags", "log", "rand", "user_data",
              "mem"}

src, dumper = sys.argv[1], sys.argv[2]
fails = []


def fail(msg):
    print("FAIL: " + msg)
    fails.append(msg)


def read(*parts):
    with open(os.path.join(src, *parts), encoding="utf-8") as f:
        return f.read()


def struct_fields(text, start, end):
    """Member names of the C struct between @start and @end."""
    i = text.find(start)
    j = text.find(end, i)
    if i < 0 or j < 0:
        fail("struct not found: " + start)
        return []
    body = re.sub(r"/\*.*?\*/", "", text[i + len(start):j], flags=re.S)
    names = []
    for decl in body.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        m = re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", decl)  # function pointer
        if m:
            names.append(m.group(1))
            continue
        for part in decl.split(","):
            m = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", part.strip())
            if m:
                names.append(m.group(1))
    return names


# ---- the code -------------------------------------------------------------
r = subprocess.run([dumper], capture_output=True, text=True)
if r.returncode != 0:
    print(r.stderr)
    sys.exit("dump_limits failed: exit %d" % r.returncode)


def code_value(tok):
    if tok.endswith("ns") and tok[:-2].isdigit():
        return ("time", int(tok[:-2]))
    if tok.isdigit():
        return ("count", int(tok))
    return ("name", tok)


code = {}
for line in r.stdout.splitlines():
    key, *vals = line.split()
    code[key] = [code_value(v) for v in vals]

header = read("include", "wgautomesh.h")
internal = read("lib", "internal.h")
for f in struct_fields(header, "typedef struct wgam_settings {",
                       "} wgam_settings;"):
    if f not in NOT_VALUES and "settings." + f not in code:
        fail("wgam_settings.%s: not printed by dump_limits (a new field? add "
             "it to tests/unit/docs/dump_limits.c and to the man page's "
             "table)" % f)
for f in struct_fields(internal, "struct wgam_fixed {", "};"):
    if "fixed." + f not in code:
        fail("wgam_fixed.%s: not printed by dump_limits (add it there and to "
             "the man page's table)" % f)

# ---- the man page -----------------------------------------------------------
page = read("doc", "wgautomesh.8")
if not page.startswith("'\\\" t\n"):
    fail("wgautomesh.8: first line must be '\\\" t (man runs tbl)")
tables = {}
for m in re.finditer(r'^\.\\" table: (\w+)\n\.TS\n(.*?)^\.TE$', page,
                     re.S | re.M):
    tables[m.group(1)] = m.group(2)
for want in ("settings", "fixed", "const"):
    if want not in tables:
        fail("wgautomesh.8: no table after '.\\\" table: %s'" % want)


def rows(body):
    """Data rows of a tbl body: (cells) with text blocks T{ T} dropped."""
    lines = body.split("\n")
    opts = lines[0]
    m = re.search(r"tab\((.)\)", opts)
    tab = m.group(1) if m else "\t"
    i = 1
    while i < len(lines) and not lines[i].rstrip().endswith("."):
        i += 1  # format lines, the last ends with '.'
    out, in_block = [], False
    for line in lines[i + 1:]:
        if in_block:
            if line.startswith("T}"):
                in_block = False
            continue
        if line in ("_", "=", "") or line.startswith(".\\\""):
            continue
        if line.startswith("."):
            continue  # a request such as .sp between rows
        cells = line.split(tab)
        if cells[-1] == "T{":
            in_block = True
        out.append([plain(c) for c in cells])
    return out


def plain(cell):
    cell = re.sub(r"\\f[BIRP]|\\f\(..|\\f\[[^\]]*\]", "", cell)
    cell = cell.replace("\\-", "-").replace("\\(em", "—").replace("\\ ", " ")
    cell = cell.replace("\\&", "").replace("\\~", " ")
    return cell.strip()


UNITS = {"ms": 10**6, "s": 10**9, "min": 60 * 10**9, "h": 3600 * 10**9}


def doc_value(text, kind):
    """The value a cell states, in the code's terms; None if unreadable."""
    t = text.replace(",", "")
    if kind == "name":
        return ("name", t.split()[0]) if t else None
    m = re.match(r"^(\d+(?:\.\d+)?)\s*(ms|s|min|h)?\b", t)
    if not m:
        return None
    num, unit = m.group(1), m.group(2)
    if kind == "count":
        return ("count", int(num)) if unit is None and "." not in num \
            else None
    if unit is None:
        return ("time", 0) if float(num) == 0 else None
    return ("time", round(float(num) * UNITS[unit]))


def human(v):
    kind, x = v
    if kind != "time":
        return str(x)
    if x == 0:
        return "0"
    for unit in ("h", "min", "s", "ms"):
        if x % UNITS[unit] == 0:
            return "%d %s" % (x // UNITS[unit], unit)
    return "%g s" % (x / 1e9)


documented = set()
ncols = {"settings": 3, "fixed": 3, "const": 2}
for name, body in tables.items():
    if name not in ncols:
        fail("wgautomesh.8: unknown table '%s'" % name)
        continue
    for cells in rows(body):
        if cells[0] in ("Field", "Name", "Limit", "Timer"):
            continue  # the heading
        key = "%s.%s" % (name, cells[0])
        if len(cells) < ncols[name]:
            fail("wgautomesh.8: row %s has %d cells" % (cells[0], len(cells)))
            continue
        if key not in code:
            fail("wgautomesh.8: %s is not a %s value of the code" %
                 (cells[0], name))
            continue
        documented.add(key)
        want = code[key]
        got = cells[1:1 + len(want)]
        if name == "fixed":
            # One value; the classic column repeats it or says the classic
            # policy does not use it.
            if got[0] != "—" and cells[2] != "—" and cells[1] != cells[2]:
                fail("wgautomesh.8: %s: fast %r and classic %r differ for a "
                     "fixed value" % (cells[0], cells[1], cells[2]))
        for i, (cell, w) in enumerate(zip(got, want)):
            v = doc_value(cell, w[0])
            if v != w:
                col = ["fast", "classic"][i] if len(want) == 2 else "value"
                fail("wgautomesh.8: %s (%s): the table says %r, the code %s" %
                     (cells[0], col, cell, human(w)))

for key in sorted(set(code) - documented):
    fail("wgautomesh.8: %s (%s) has no row in the table of timers and limits"
         % (key, " / ".join(human(v) for v in code[key])))

if fails:
    print("%d problem(s)" % len(fails))
    sys.exit(1)
print("ok: %d values of the code match the man page's table" % len(code))
