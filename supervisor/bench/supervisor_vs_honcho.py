#!/usr/bin/env python3
"""Benchmark: `n2d up` (the built-in supervisor) against honcho on the same Procfile.

Generates a workspace whose deployment `start` holds N services and whose
deployment `flooding` holds one service `flood` printing many lines, builds both once
for the procfile target, then measures, in one run, for both:
  1. start: time from launch until the N services have all signalled ready
     (for n2d this is `n2d up //app:start` as a user runs it: a no-op build,
     the hand-over to the supervisor image, and the starts);
  2. log throughput: `flood` printing L lines, lines/s through the
     multiplexer to a file, with every line counted (none may be lost);
  3. memory, sampled while the N services run, of the process that
     supervises: for n2d the very process `n2d up` started, which has exec'd
     the `n2d-supervise` executable after its build (its /proc/PID/exe is
     printed), for honcho its master process. Peak RSS (VmHWM), its private
     part (RssAnon: what it does not share with the page cache), PSS
     (shared pages divided among the processes sharing them), and the
     summed PSS of its helper processes (n2d's keepers, honcho's
     per-process forks).
honcho runs the Procfile n2d rendered, so both run the same entrypoints.

Usage: supervisor/bench/supervisor_vs_honcho.py [--lines L] [--services N] [--rounds R]
Builds n2d and n2d-supervise in release mode into $CARGO_TARGET_DIR (default
/work/target-supervisor). Needs honcho on PATH. With --rounds R > 1 the
kinds alternate R times and each figure is the median.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR", "/work/target-supervisor")
N2D = os.environ.get("N2D_BIN", os.path.join(TARGET_DIR, "release", "n2d"))


def build():
    if "N2D_BIN" in os.environ:
        return
    subprocess.run(["cargo", "build", "--release", "--bin", "n2d", "--bin", "n2d-supervise"],
                   cwd=ROOT, check=True,
                   env=dict(os.environ, CARGO_TARGET_DIR=TARGET_DIR))


def write_workspace(root, services, lines):
    os.makedirs(os.path.join(root, "app"))
    os.makedirs(os.path.join(root, "ready"))
    with open(os.path.join(root, "n2d.workspace.toml"), "w") as f:
        f.write('default_targets = ["procfile"]\n')
    text = ""
    for i in range(services):
        text += (f'[services.svc{i}]\ncommand = ["/bin/sh", "-c", '
                 f'"touch {root}/ready/svc{i}; exec sleep 1000"]\n\n')
    text += f'[services.flood]\ncommand = ["seq", "1", "{lines}"]\n\n'
    names = ", ".join(f'":svc{i}"' for i in range(services))
    text += f'[deployments.start]\nservices = [{names}]\n\n[deployments.flooding]\nservices = [":flood"]\n'
    with open(os.path.join(root, "app", "n2d.toml"), "w") as f:
        f.write(text)
    for deployment in ["start", "flooding"]:
        subprocess.run([N2D, "build", f"//app:{deployment}"], cwd=root, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def launch(kind, root, deployment, stdout):
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    if kind == "n2d":
        argv = [N2D, "up", f"//app:{deployment}"]
        cwd = root
    else:
        folder = os.path.join(root, "n2d-out", "app", deployment, "procfile")
        argv = ["honcho", "-f", os.path.join(folder, "Procfile"), "-d", folder, "start"]
        cwd = folder
    return subprocess.Popen(argv, cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT, env=env)


def children(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return found


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def bench_start(kind, root, count):
    ready = os.path.join(root, "ready")
    for name in os.listdir(ready):
        os.remove(os.path.join(ready, name))
    with open(os.path.join(root, f"start-{kind}.log"), "w") as out:
        started = time.monotonic()
        process = launch(kind, root, "start", out)
        while len(os.listdir(ready)) < count:
            time.sleep(0.001)
        elapsed = time.monotonic() - started
        time.sleep(0.5)  # let the supervisor settle before sampling memory
        sample = dict(
            exe=os.path.basename(os.readlink(f"/proc/{process.pid}/exe")),
            hwm=status_kb(process.pid, "VmHWM"),
            anon=status_kb(process.pid, "RssAnon"),
            file=status_kb(process.pid, "RssFile"),
            pss=pss_kb(process.pid),
            threads=status_kb(process.pid, "Threads"),
        )
        helpers = children(process.pid)
        sample["helper_pss"] = sum(pss_kb(p) for p in helpers)
        sample["helpers"] = len(helpers)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return dict(start=elapsed, **sample)


def bench_logs(kind, root, lines):
    out_path = os.path.join(root, f"flood-{kind}.log")
    with open(out_path, "w") as out:
        started = time.monotonic()
        process = launch(kind, root, "flooding", out)
        process.wait(timeout=600)
        elapsed = time.monotonic() - started
    arrived = 0
    expected = 1
    in_order = True
    with open(out_path, "rb") as out:
        for line in out:
            text = line.rstrip(b"\n").split(b"| ", 1)
            if len(text) == 2 and text[0].split()[-1:] in ([b"flood"], [b"flood.1"]):
                arrived += 1
                in_order &= text[1] == str(expected).encode()
                expected += 1
    return dict(elapsed=elapsed, arrived=arrived, in_order=in_order, rate=arrived / elapsed)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("honcho") is None:
        sys.exit("honcho is not installed")
    build()
    root = tempfile.mkdtemp(prefix="n2d-bench-")
    try:
        write_workspace(root, args.services, args.lines)
        runs = {"n2d": [], "honcho": []}
        for _ in range(args.rounds):
            for kind in os.environ.get("BENCH_ONLY", "n2d honcho").split():
                runs[kind].append({**bench_start(kind, root, args.services),
                                   **bench_logs(kind, root, args.lines)})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results = {}
    for kind, samples in runs.items():
        if samples:
            results[kind] = {key: (statistics.median(s[key] for s in samples)
                                   if isinstance(samples[0][key], (int, float))
                                   and not isinstance(samples[0][key], bool)
                                   else all(s[key] for s in samples)
                                   if isinstance(samples[0][key], bool)
                                   else ",".join(sorted({s[key] for s in samples})))
                             for key in samples[0]}
    print(json.dumps(results))
    if len(results) < 2:
        return
    print(f"{'':36} {'n2d':>12} {'honcho':>12} {'ratio':>8}")

    def row(label, key, fmt, better_low):
        a, b = results["n2d"][key], results["honcho"][key]
        ratio = (b / a if better_low else a / b) if a and b else float("nan")
        print(f"{label:36} {fmt(a):>12} {fmt(b):>12} {ratio:>7.1f}x")

    row(f"start {args.services} services (s)", "start", lambda v: f"{v:.3f}", True)
    row(f"log lines/s ({args.lines} lines)", "rate", lambda v: f"{v:,.0f}", False)
    row(f"supervisor VmHWM, {args.services} svcs (kB)", "hwm", lambda v: f"{v:,.0f}", True)
    row(f"supervisor RssAnon, {args.services} svcs (kB)", "anon", lambda v: f"{v:,.0f}", True)
    row(f"supervisor RssFile, {args.services} svcs (kB)", "file", lambda v: f"{v:,.0f}", True)
    row(f"supervisor PSS, {args.services} svcs (kB)", "pss", lambda v: f"{v:,.0f}", True)
    row("helper processes PSS sum (kB)", "helper_pss", lambda v: f"{v:,.0f}", True)
    for kind, r in results.items():
        lost = args.lines - r["arrived"]
        if kind == "n2d":
            print(f"n2d: the measured process is `n2d up` exec'd into {r['exe']}")
        print(f"{kind}: {r['threads']:.0f} threads, {r['helpers']:.0f} helper processes; "
              f"{r['arrived']:.0f} of {args.lines} lines arrived ({lost:.0f} lost), "
              f"in order: {r['in_order']}")


if __name__ == "__main__":
    main()
