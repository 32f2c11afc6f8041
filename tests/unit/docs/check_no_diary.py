#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""README.md and doc/*.md say what is true now: no working sessions, no issue
numbers, no commit diary (git log is the history). A commit hash may appear
only on a line that says which commit figures were measured at.

Usage: check_no_diary.py SOURCE_ROOT
"""
import glob
import os
import re
import sys

src = sys.argv[1]
files = [os.path.join(src, "README.md")] + sorted(
    glob.glob(os.path.join(src, "doc", "*.md")))
DIARY = re.compile(r"\b(session \d|sessions? [0-9]+|issue #?\d+|#\d{1,4}\b)",
                   re.I)
HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,12}\b")
fails = 0
for path in files:
    name = os.path.relpath(path, src)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    fenced = False
    for n, line in enumerate(lines, 1):
        if line.startswith("```"):
            fenced = not fenced
        m = DIARY.search(line)
        if m and not fenced:
            print("FAIL: %s:%d: %r: history belongs in git log" %
                  (name, n, m.group(0)))
            fails += 1
        # protocol.md quotes hex of the test vectors (checked elsewhere).
        if name != os.path.join("doc", "protocol.md") and not fenced:
            for h in HASH.findall(line):
                if "commit" not in line.lower():
                    print("FAIL: %s:%d: %s looks like a commit hash outside "
                          "a 'measured at commit' line" % (name, n, h))
                    fails += 1
if fails:
    print("%d problem(s)" % fails)
    sys.exit(1)
print("ok: %d documents without a diary" % len(files))
