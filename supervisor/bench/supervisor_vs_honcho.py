#!/usr/bin/env python3
"""Benchmark: n2d's built-in supervisor against honcho on the same Procfile.

Measures, in one run, for both:
  1. start: time from launch until 50 services have all signalled ready;
  2. log throughput: one service printing N lines, lines/s through the
     multiplexer to a file, with every line counted (none may be lost);
  3. memory: peak RSS (VmHWM) of the supervisor process, its private
     (anonymous) RSS, which leaves out shared libc/binary text, and the summed PSS
     of its helper processes (n2d's keepers, honcho's multiprocessing forks),
     sampled while the 50 services run.

Usage: supervisor/bench/supervisor_vs_honcho.py [--lines N] [--services N]
Builds n2d-supervise in release mode into $CARGO_TARGET_DIR (default
/work/target-supervisor). Needs honcho on PATH.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR", "/work/target-supervisor")
SUPERVISE = os.path.join(TARGET_DIR, "release", "n2d-supervise")


def build():
    subprocess.run(
        ["cargo", "build", "--release", "-p", "n2d-supervisor", "--bin", "n2d-supervise"],
        cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=TARGET_DIR))


def write_target(folder, services):
    """services: name -> shell body. Writes bin/<name>, Procfile, launch.json."""
    os.makedirs(os.path.join(folder, "bin"), exist_ok=True)
    specs = []
    with open(os.path.join(folder, "Procfile"), "w") as procfile:
        for name, body in services.items():
            path = os.path.join(folder, "bin", name)
            with open(path, "w") as script:
                script.write("#!/bin/sh\n" + body + "\n")
            os.chmod(path, 0o755)
            procfile.write(f"{name}: bin/{name}\n")
            specs.append({
                "name": name, "command": [f"bin/{name}"], "replicas": 1, "depends_on": {},
                "readiness": None, "restart": "no", "max_restarts": None, "backoff_ms": 1000,
                "stop_signal": "TERM", "stop_timeout_ms": 5000, "spec_digest": "0" * 64,
            })
    with open(os.path.join(folder, "launch.json"), "w") as launch:
        json.dump({"version": 1, "services": specs}, launch)


def launch(kind, folder, stdout):
    if kind == "n2d":
        argv = [SUPERVISE, folder]
    else:
        argv = ["honcho", "-f", os.path.join(folder, "Procfile"), "-d", folder, "start"]
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    return subprocess.Popen(argv, cwd=folder, stdout=stdout, stderr=subprocess.STDOUT, env=env)


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


def bench_start(kind, count):
    folder = tempfile.mkdtemp(prefix=f"n2d-bench-{kind}-")
    ready = os.path.join(folder, "ready")
    os.makedirs(ready)
    write_target(folder, {f"svc{i}": f"touch ready/svc{i}; exec sleep 1000" for i in range(count)})
    with open(os.path.join(folder, "out.log"), "w") as out:
        started = time.monotonic()
        process = launch(kind, folder, out)
        while len(os.listdir(ready)) < count:
            time.sleep(0.001)
        elapsed = time.monotonic() - started
        time.sleep(0.5)  # let the supervisor settle before sampling memory
        hwm = status_kb(process.pid, "VmHWM")
        anon = status_kb(process.pid, "RssAnon")
        helpers = [p for p in children(process.pid)]
        helper_pss = sum(pss_kb(p) for p in helpers)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    shutil.rmtree(folder, ignore_errors=True)
    return elapsed, hwm, anon, helper_pss, len(helpers)


def bench_logs(kind, lines):
    folder = tempfile.mkdtemp(prefix=f"n2d-bench-{kind}-")
    write_target(folder, {"flood": f"seq 1 {lines}"})
    out_path = os.path.join(folder, "out.log")
    with open(out_path, "w") as out:
        started = time.monotonic()
        process = launch(kind, folder, out)
        peak = 0
        while process.poll() is None:
            try:
                peak = max(peak, status_kb(process.pid, "VmHWM"))
            except OSError:
                pass
            time.sleep(0.05)
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
    shutil.rmtree(folder, ignore_errors=True)
    return elapsed, arrived, in_order, peak


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--services", type=int, default=50)
    args = parser.parse_args()
    if shutil.which("honcho") is None:
        sys.exit("honcho is not installed")
    build()
    results = {}
    for kind in os.environ.get("BENCH_ONLY", "n2d honcho").split():
        start, hwm, anon, helper_pss, helpers = bench_start(kind, args.services)
        elapsed, arrived, in_order, log_hwm = bench_logs(kind, args.lines)
        results[kind] = dict(start=start, hwm=hwm, anon=anon, helper_pss=helper_pss, helpers=helpers,
                             elapsed=elapsed, arrived=arrived, in_order=in_order, log_hwm=log_hwm)
    for kind in results:
        results[kind]["rate"] = results[kind]["arrived"] / results[kind]["elapsed"]
    print(json.dumps(results))
    if len(results) < 2:
        return
    print(f"{'':32} {'n2d':>12} {'honcho':>12} {'ratio':>8}")
    def row(label, key, fmt, better_low):
        a, b = results["n2d"][key], results["honcho"][key]
        ratio = (b / a if better_low else a / b) if a and b else float("nan")
        print(f"{label:32} {fmt(a):>12} {fmt(b):>12} {ratio:>7.1f}x")
    row(f"start {args.services} services (s)", "start", lambda v: f"{v:.3f}", True)
    row(f"log lines/s ({args.lines} lines)", "rate", lambda v: f"{v:,.0f}", False)
    row("supervisor VmHWM, 50 svcs (kB)", "hwm", lambda v: f"{v:,}", True)
    row("supervisor RssAnon, 50 svcs (kB)", "anon", lambda v: f"{v:,}", True)
    row("supervisor VmHWM, logs (kB)", "log_hwm", lambda v: f"{v:,}", True)
    row("helper processes PSS sum (kB)", "helper_pss", lambda v: f"{v:,}", True)
    for kind, r in results.items():
        lost = args.lines - r["arrived"]
        print(f"{kind}: {r['helpers']} helper processes; {r['arrived']} of {args.lines} lines arrived "
              f"({lost} lost), in order: {r['in_order']}")


if __name__ == "__main__":
    main()
