#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What README.md and doc/*.md point at exists: every source path in
backticks (lib/, cli/, include/, tests/, tools/, examples/, doc/), every
"`file.c` `function`" pair (the function is in that file), and every
upper-case constant of doc/limits.md (defined in lib/, cli/ or include/).

Usage: check_doc_refs.py SOURCE_ROOT
"""
import glob
import os
import re
import sys

src = sys.argv[1]
docs = [os.path.join(src, "README.md")] + sorted(
    glob.glob(os.path.join(src, "doc", "*.md")))
PATH = re.compile(r"`((?:lib|cli|include|tests|tools|examples|doc)/"
                  r"[\w./-]+)`")
PAIR = re.compile(r"`((?:lib|cli)/[\w./]+\.[ch])` `(\w+)`")
CONST = re.compile(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`")
fails = 0


def fail(msg):
    global fails
    print("FAIL: " + msg)
    fails += 1


def code_text():
    text = []
    for d in ("lib", "cli", "include"):
        for p in glob.glob(os.path.join(src, d, "*.[ch]")):
            with open(p, encoding="utf-8") as f:
                text.append(f.read())
    return "\n".join(text)


code = code_text()
for doc in docs:
    name = os.path.relpath(doc, src)
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    for path in sorted(set(PATH.findall(text))):
        path = path.rstrip(".")
        if re.search(r"[A-Z]{3,}|\*", path):
            continue  # a pattern such as doc/perf/CASE.txt
        if not os.path.exists(os.path.join(src, path)):
            fail("%s: %s does not exist" % (name, path))
    for path, func in PAIR.findall(text):
        p = os.path.join(src, path)
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                if not re.search(r"\b%s\b" % func, f.read()):
                    fail("%s: %s is not in %s" % (name, func, path))
    if name == os.path.join("doc", "limits.md"):
        for c in sorted(set(CONST.findall(text))):
            if not re.search(r"\b%s\b" % c, code):
                fail("%s: %s is not defined in lib/, cli/ or include/" %
                     (name, c))
if fails:
    print("%d problem(s)" % fails)
    sys.exit(1)
print("ok: what %d documents point at exists" % len(docs))
