#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Runs the simulator cases of doc/performance.md and plots them.

    tools/plot_sim.py [--sim PATH] [--only NAME ...]   run, save, plot
    tools/plot_sim.py --replot                          plot the saved runs

Each case's output (stdout of wgautomesh-sim with --progress 1, plus the
command, commit, CPU time and peak RSS) is saved as doc/perf/NAME.txt; the
plots are written next to them as PNG, and the simulator tables of
doc/performance.md (between its "plot_sim.py: begin/end" comments) are
rewritten from the saved output.

Needs matplotlib (Debian: python3-matplotlib) for the plots only.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "doc", "perf")

# name -> simulator arguments (--progress 1 is added). 30 % of the nodes
# behind NAT (40 % full cone, 40 % port-restricted, 20 % symmetric), seed 1,
# the simulator's defaults otherwise.
SCALE = [50, 100, 200, 500, 1000, 2000]
CLASSIC_MAX = 1000  # classic costs ~10x the CPU: not run above this
CASES = []
for n in SCALE:
    CASES.append(("scale-%d" % n,
                  ["--nodes", str(n), "--seed", "1", "--policy",
                   "both" if n <= CLASSIC_MAX else "fast"]))
CASES.append(("lan-loss-roam",
              ["--nodes", "100", "--nat", "0.5", "--lan-groups", "4",
               "--loss", "0.01", "--latency-ms", "30", "--roam", "120",
               "--seed", "3", "--policy", "both"]))
# Steady gossip over a later, longer window: 300-600 s after full mesh, past
# the first session renewals (120 s) and gossip interval (300 s).
CASES.append(("steady-1000",
              ["--nodes", "1000", "--seed", "1", "--policy", "fast",
               "--settle", "300", "--window", "300"]))

BOTTOM = 0.001  # lowest share shown in the convergence plot, in %
RESULT = re.compile(r"^policy=(\w+) (.*)$")
PROGRESS = re.compile(r"^t=(\d+)s connected=(\d+)/(\d+) ")


def commit():
    def git(*a):
        return subprocess.run(["git", "-C", ROOT] + list(a),
                              capture_output=True, text=True).stdout.strip()
    sha = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "lib", "include", "tests/sim")
    return sha + ("-dirty" if dirty else "")


def run_case(sim, name, args, rev):
    cmd = [sim] + args + ["--progress", "1"]
    shown = "wgautomesh-sim " + " ".join(args)
    print("running: " + shown, file=sys.stderr, flush=True)
    t0 = time.time()
    with tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    wall = time.time() - t0
    if p.returncode != 0:
        sys.exit("%s: exit %d\n%s" % (shown, p.returncode, stderr[-2000:]))
    cpu = ru.ru_utime + ru.ru_stime
    with open(os.path.join(OUT, name + ".txt"), "w") as f:
        f.write("# command: %s\n" % shown)
        f.write("# commit: %s\n" % rev)
        f.write("# date: %s\n" % time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                               time.gmtime()))
        f.write("# cpu_s: %.1f\n" % cpu)
        f.write("# wall_s: %.1f\n" % wall)
        f.write("# maxrss_kib: %d\n" % ru.ru_maxrss)
        for line in stderr.splitlines():
            if (line.startswith("  [") and not line.startswith("  [wall")) \
                    or line.startswith("wgautomesh-sim: "):
                f.write("# " + line.strip() + "\n")
        f.write(thin(stdout))


def thin(stdout):
    """Progress lines only where the count of connected pairs changed (and
    the last one of each policy): what the plots need, a fraction of the
    bytes."""
    lines, out, last = stdout.splitlines(), [], None
    for i, line in enumerate(lines):
        m = PROGRESS.match(line)
        if m:
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if m.group(2) == last and PROGRESS.match(nxt):
                continue
            last = m.group(2)
        else:
            last = None
        out.append(line)
    return "\n".join(out) + "\n"


def load(name):
    """{'meta': {...}, 'results': {policy: {key: value}},
    'progress': {policy: [(t, fraction)]}}"""
    path = os.path.join(OUT, name + ".txt")
    if not os.path.exists(path):
        return None
    meta, results, progress, pending = {}, {}, {}, []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^# (\w+): (.*)$", line)
            if m:
                meta[m.group(1)] = m.group(2)
                continue
            m = PROGRESS.match(line)
            if m:
                t, c, n = (int(m.group(i)) for i in (1, 2, 3))
                pending.append((t, c / n if n else 1.0))
                continue
            m = RESULT.match(line)
            if m:
                kv = dict(x.split("=", 1) for x in m.group(2).split())
                results[m.group(1)] = kv
                progress[m.group(1)] = pending
                pending = []
    return {"meta": meta, "results": results, "progress": progress}


def num(v):
    try:
        return float(v)
    except ValueError:
        return None


def fmt_int(v):
    return format(round(v), ",")


def seconds(r):
    c = num(r["converged_s"])
    if c is None:
        return "never in %.0f s (%.2f %% of pairs at the end)" % (
            float(r["sim_end_s"]),
            100.0 * int(r["connected_at_end"]) / int(r["reachable_pairs"]))
    return "%.2f s" % c


def rate(r, key):
    v = num(r[key])
    return "—" if v is None or v != v else fmt_int(v)


def mem(kib):
    return "%.1f GiB" % (kib / 2**20) if kib >= 2**20 else "%d MiB" % (
        kib / 2**10)


def table():
    """The simulator tables of doc/performance.md (markdown)."""
    out = ["| nodes | full mesh: fast | full mesh: classic | steady gossip "
           "(B/node/s): fast | steady gossip: classic | gossip until full "
           "mesh (B/node/s): fast | heap per peer: fast | simulator CPU, "
           "peak RSS | command |",
           "|---|---|---|---|---|---|---|---|---|"]
    for n in SCALE:
        d = load("scale-%d" % n)
        if not d:
            continue
        f, c = d["results"].get("fast"), d["results"].get("classic")
        m = d["meta"]
        out.append("| %s | %s | %s | %s | %s | %s | %s B | %s s, %s | "
                   "`%s` |" % (
                       format(n, ","), seconds(f),
                       seconds(c) if c else "not run",
                       rate(f, "steady_bytes_per_node_s"),
                       rate(c, "steady_bytes_per_node_s") if c else "—",
                       rate(f, "gossip_bytes_per_node_s"),
                       f["mem_per_peer_bytes"], m.get("cpu_s", "?"),
                       mem(int(m.get("maxrss_kib", 0))),
                       m.get("command", "?")))
    out += ["", "| case | figure | fast | classic | command |",
            "|---|---|---|---|---|"]
    d = load("lan-loss-roam")
    if d:
        f, c = d["results"]["fast"], d["results"]["classic"]
        cmd = "`%s`" % d["meta"].get("command", "?")
        out.append("| 100 nodes, half behind NAT, 4 LANs of 4, 1 %% loss, "
                   "30 ms mean latency, seed 3 | full mesh | %s | %s | %s |" %
                   (seconds(f), seconds(c), cmd))
        out.append("| the same, a NAT router's address changes at 120 s | "
                   "every pair of the moved node carries traffic again "
                   "after | %s s | %s s | (same run) |" %
                   (f["recovered_s"], c["recovered_s"]))
        out.append("| the same | steady gossip, B/node/s | %s | %s | "
                   "(same run) |" % (rate(f, "steady_bytes_per_node_s"),
                                      rate(c, "steady_bytes_per_node_s")))
    d = load("steady-1000")
    if d:
        f = d["results"]["fast"]
        conv = float(f["converged_s"])
        out.append("| 1,000 nodes, a later and longer window | steady gossip "
                   "%.0f–%.0f s after the start, B/node/s | %s | — | `%s` |"
                   % (conv + 300, conv + 600,
                      rate(f, "steady_bytes_per_node_s"),
                      d["meta"].get("command", "?")))
    return "\n".join(out)


BEGIN = "<!-- plot_sim.py: begin -->"
END = "<!-- plot_sim.py: end -->"


def update_doc():
    """Replaces the generated block of doc/performance.md."""
    path = os.path.join(ROOT, "doc", "performance.md")
    with open(path) as f:
        text = f.read()
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        print("doc/performance.md: no %s ... %s block" % (BEGIN, END),
              file=sys.stderr)
        return
    commits = sorted({(load(n) or {"meta": {}})["meta"].get("commit", "?")
                      for n, _ in CASES if load(n)})
    block = "%s\n<!-- generated from doc/perf/*.txt: do not edit -->\n\n" \
        "Simulator, commit %s. By mesh size: 30 %% of the nodes behind NAT " \
        "(40 %% full cone, 40 %% port-restricted, 20 %% symmetric), seed 1, " \
        "steady window 30–90 s after full mesh:\n\n%s\n" \
        % (BEGIN, ", ".join(commits), table())
    with open(path, "w") as f:
        f.write(text[:i] + block + text[j:])


def plot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"fast": "tab:blue", "classic": "tab:orange"}
    labels = {"fast": "fast (ours)", "classic": "classic (the original's)"}

    # 1. Time to full mesh and steady gossip against the number of nodes.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for pol in ("fast", "classic"):
        xs, ys, xn, yn, gx, gy = [], [], [], [], [], []
        for n in SCALE:
            d = load("scale-%d" % n)
            r = d and d["results"].get(pol)
            if not r:
                continue
            c = num(r["converged_s"])
            if c is None:
                xn.append(n)
                yn.append(float(r["sim_end_s"]))
            else:
                xs.append(n)
                ys.append(c)
            s = num(r["steady_bytes_per_node_s"])
            if s is not None and s == s:
                gx.append(n)
                gy.append(s)
        ax1.plot(xs, ys, "o-", color=colors[pol], label=labels[pol])
        if xn:
            ax1.plot(xn, yn, "v", color=colors[pol], markersize=9,
                     label=labels[pol] + ": not within %.0f s" % yn[0])
        ax2.plot(gx, gy, "o-", color=colors[pol], label=labels[pol])
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(SCALE)
        ax.set_xticklabels([str(n) for n in SCALE])
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("nodes (30 % behind NAT)")
        ax.legend(fontsize=8)
    ax1.set_ylabel("seconds")
    ax1.set_title("Time to full mesh (every connectable pair)")
    ax2.set_ylabel("bytes per node per second")
    ax2.set_title("Steady gossip (30-90 s after full mesh)")
    fig.suptitle("wgautomesh-sim, seed 1, commit %s" %
                 (load("scale-%d" % SCALE[0]) or {"meta": {}})["meta"].get(
                     "commit", "?"), fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "sim-scale.png"), dpi=110)
    plt.close(fig)

    # 2. Pairs still without a session over time, ours against classic (a
    # log scale shows the tail: the last pairs are what "full mesh" waits
    # for).
    fig, ax = plt.subplots(figsize=(10, 4.2))
    styles = {200: "-", 1000: "--"}
    for n, ls in styles.items():
        d = load("scale-%d" % n)
        if not d:
            continue
        for pol in ("fast", "classic"):
            pts = d["progress"].get(pol)
            if not pts:
                continue
            r = d["results"][pol]
            conv = num(r["converged_s"])
            xs = [t for t, f in pts if f < 1]
            ys = [100 * (1 - f) for t, f in pts if f < 1]
            if conv is not None:  # the line drops out where the mesh is full
                xs += [conv, conv]
                ys += [ys[-1] if ys else 100, BOTTOM / 10]
            label = "%s, %d nodes: %s" % (
                labels[pol], n, "full mesh at %.1f s" % conv
                if conv is not None else "%.3f %% not connected in %.0f s"
                % (ys[-1], float(r["sim_end_s"])))
            ax.step(xs, ys, ls, where="post", color=colors[pol], label=label)
            if conv is not None:
                ax.plot([conv], [BOTTOM], "o", color=colors[pol],
                        clip_on=False, zorder=5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1, 1000)
    ax.set_xticks([1, 2, 5, 10, 30, 60, 120, 300, 900])
    ax.set_xticklabels(["1", "2", "5", "10", "30", "60", "120", "300",
                        "900"])
    ax.set_ylim(BOTTOM, 100)
    ax.set_yticks([100, 10, 1, 0.1, 0.01, 0.001])
    ax.set_yticklabels(["100 %", "10 %", "1 %", "0.1 %", "0.01 %",
                        "0.001 %"])
    ax.minorticks_off()
    ax.set_xlabel("simulated seconds since start")
    ax.set_ylabel("connectable pairs without a session yet")
    ax.set_title("Convergence: nodes start within 1 s, 30 % behind NAT, "
                 "seed 1 (a dot on the axis: full mesh)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "sim-convergence.png"), dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", default=os.path.join(
        ROOT, "build", "tests", "sim", "wgautomesh-sim"))
    ap.add_argument("--replot", action="store_true",
                    help="do not run the simulator, plot the saved output")
    ap.add_argument("--only", nargs="*", help="run only these cases")
    ap.add_argument("--commit", help="the commit the simulator was built "
                    "from (default: HEAD, -dirty if lib/ or tests/sim/ "
                    "has changes)")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if not a.replot:
        if not os.access(a.sim, os.X_OK):
            sys.exit("%s: not built (ninja -C build)" % a.sim)
        rev = a.commit or commit()
        for name, args in CASES:
            if not a.only or name in a.only:
                run_case(a.sim, name, args, rev)
    plot()
    update_doc()
    print(table())


if __name__ == "__main__":
    main()
