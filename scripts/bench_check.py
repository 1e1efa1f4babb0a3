#!/usr/bin/env python3
"""Figures for the front end (issue 3), printed, not asserted: `kgent check` wall time
per program against `bpftrace -d` (bpftrace's own parse + semantic + codegen dry run) on
the same files in the same run, over the tools Debian's bpftrace installs.

Run from the repository root after scripts/setup.sh, as root:
    .venv/bin/python scripts/bench_check.py
"""
import glob
import statistics
import subprocess
import time

ROUNDS = 5


def wall(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t


def main():
    tools = sorted(glob.glob("/usr/sbin/*.bt"))
    kgent, bpftrace = [], []
    for _ in range(ROUNDS):
        for tool in tools:
            kgent.append(wall(["target/release/kgent", "check", tool]))
            bpftrace.append(wall(["bpftrace", "-d", tool]))
    k, b = statistics.median(kgent), statistics.median(bpftrace)
    print(f"# {len(tools)} tools x {ROUNDS} rounds, wall time per program (process start included)")
    print(f"kgent check : p50 {k*1e3:7.1f} ms  p95 {sorted(kgent)[int(len(kgent)*.95)]*1e3:7.1f} ms")
    print(f"bpftrace -d : p50 {b*1e3:7.1f} ms  p95 {sorted(bpftrace)[int(len(bpftrace)*.95)]*1e3:7.1f} ms")
    print(f"ratio (bpftrace -d / kgent check, medians): {b/k:.1f}x  (target: at least 20x)")


if __name__ == "__main__":
    main()
