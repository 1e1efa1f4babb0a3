#!/usr/bin/env python3
"""Figures for the kernel (issue 2), printed, not asserted.

- round-trip latency of kernel_info and of a trivial cell, kgent vs ipykernel in the
  same run, as a ratio;
- kernel start to first kernel_info_reply, kgent and ipykernel;
- sustained events per second from a flooding program: through the kernel (every line
  parsed and logged, a capped stream to the client) vs bpftrace writing to /dev/null.

Run: .venv/bin/python scripts/bench_kernel.py   (after scripts/setup.sh, as root)
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from jupyter_client import BlockingKernelClient
from jupyter_client.manager import start_new_kernel
from jupyter_client.connect import write_connection_file

ROUNDS = 300
FLOOD_READS = 1_000_000
FLOOD_PROGRAM = 'tracepoint:syscalls:sys_enter_read /comm == "dd"/ { printf("read %d\\n", args->count); }'
# bpftrace -c wants an absolute path; the kernel's -c goes through /bin/sh.
FLOOD_COMMAND = f"/usr/bin/dd if=/dev/zero of=/dev/null bs=1 count={FLOOD_READS} status=none"
FLOOD_ROUNDS = 3


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def drain_until_idle(kc, msg_id, timeout=120):
    msgs = []
    while True:
        m = kc.get_iopub_msg(timeout=timeout)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            return msgs
        msgs.append(m)


def round_trips(kernel_name, trivial_code):
    km, kc = start_new_kernel(kernel_name=kernel_name)
    try:
        for _ in range(20):  # warm up
            kc.kernel_info(reply=True, timeout=10)
        info = []
        for _ in range(ROUNDS):
            t = time.perf_counter()
            kc.kernel_info(reply=True, timeout=10)
            info.append((time.perf_counter() - t) * 1e3)
        cells = []
        for _ in range(ROUNDS // 3):
            t = time.perf_counter()
            msg_id = kc.execute(trivial_code)
            kc.get_shell_msg(timeout=10)
            drain_until_idle(kc, msg_id)
            cells.append((time.perf_counter() - t) * 1e3)
        return info, cells
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def startup_ms(argv_for, runs=10):
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            cf = os.path.join(d, "conn.json")
            write_connection_file(cf, ip="127.0.0.1", key=b"benchkey")
            t = time.perf_counter()
            proc = subprocess.Popen(argv_for(cf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            kc = BlockingKernelClient(connection_file=cf)
            kc.load_connection_file()
            kc.start_channels()
            try:
                kc.kernel_info()
                kc.get_shell_msg(timeout=30)
                times.append((time.perf_counter() - t) * 1e3)
            finally:
                kc.stop_channels()
                proc.kill()
                proc.wait()
    return times


def flood_direct():
    t = time.perf_counter()
    r = subprocess.run(
        ["bpftrace", "-f", "json", "-c", FLOOD_COMMAND, "-e", FLOOD_PROGRAM],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False,
    )
    elapsed = time.perf_counter() - t
    lines = sum(1 for line in r.stdout.splitlines() if b'"printf"' in line)
    return lines, elapsed


def flood_direct_devnull():
    t = time.perf_counter()
    subprocess.run(
        ["bpftrace", "-f", "json", "-c", FLOOD_COMMAND, "-e", FLOOD_PROGRAM],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )
    return time.perf_counter() - t


def flood_direct_pipe():
    """bpftrace into a pipe read by `cat`: the cost of any pipe consumer at all."""
    t = time.perf_counter()
    bt = subprocess.Popen(["bpftrace", "-f", "json", "-c", FLOOD_COMMAND, "-e", FLOOD_PROGRAM],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    subprocess.run(["cat"], stdin=bt.stdout, stdout=subprocess.DEVNULL, check=False)
    bt.wait()
    return time.perf_counter() - t


def flood_kernel():
    km, kc = start_new_kernel(kernel_name="kgent")
    try:
        code = f"%%bpftrace -c '{FLOOD_COMMAND}'\n{FLOOD_PROGRAM}"
        cpu0 = cpu_seconds(km.provisioner.process.pid)
        t = time.perf_counter()
        msg_id = kc.execute(code)
        msgs = drain_until_idle(kc, msg_id, timeout=300)
        elapsed = time.perf_counter() - t
        streams = [m for m in msgs if m["msg_type"] == "stream"]
        shown = sum(len(m["content"]["text"]) for m in streams)
        summary = next(m["content"]["data"]["text/plain"] for m in msgs
                       if m["msg_type"] == "display_data" and "full output:" in m["content"]["data"].get("text/plain", ""))
        log = summary.split("full output:")[1].strip()
        with open(log, "rb") as f:
            logged = sum(1 for line in f if line.startswith(b"read "))
        pid = km.provisioner.process.pid
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
        return logged, elapsed, len(streams), shown, summary.splitlines()[0], rss, cpu_seconds(pid) - cpu0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    print(f"# kgent kernel figures ({time.strftime('%Y-%m-%d %H:%M')}, {os.uname().release}, {os.cpu_count()} CPUs)")
    if "--flood-only" not in sys.argv:
        latency_figures()
    flood_figures()


def latency_figures():
    print("\n## Round trips (ms), same run; trivial cell: an empty cell for kgent, `pass` for ipykernel")
    k_info, k_cell = round_trips("kgent", "// nothing")
    p_info, p_cell = round_trips("python3", "pass")
    for name, k, p in (("kernel_info", k_info, p_info), ("trivial cell", k_cell, p_cell)):
        km, pm = statistics.median(k), statistics.median(p)
        print(f"{name:13s} kgent p50 {km:6.3f} p95 {pct(k,95):6.3f} | ipykernel p50 {pm:6.3f} p95 {pct(p,95):6.3f} | ipykernel/kgent {pm/km:5.1f}x")

    print("\n## Start to first kernel_info_reply (ms), 10 starts each")
    kgent_bin = os.path.abspath("target/release/kgent")
    k = startup_ms(lambda cf: [kgent_bin, "kernel", "--connection-file", cf])
    p = startup_ms(lambda cf: [sys.executable, "-m", "ipykernel_launcher", "-f", cf])
    print(f"kgent     p50 {statistics.median(k):7.1f}  max {max(k):7.1f}")
    print(f"ipykernel p50 {statistics.median(p):7.1f}  max {max(p):7.1f}")


def flood_figures():
    print(f"\n## Flood: `{FLOOD_COMMAND}` traced with printf per read()")
    # Alternate the two so background load hits both alike; report medians.
    devnull, piped, kernel = [], [], []
    for _ in range(FLOOD_ROUNDS):
        devnull.append(flood_direct_devnull())
        piped.append(flood_direct_pipe())
        kernel.append(flood_kernel())
    direct_lines, _ = flood_direct()
    devnull_s = statistics.median(devnull)
    kernel_s = statistics.median(k[1] for k in kernel)
    piped_s = statistics.median(piped)
    print(f"runs (s): /dev/null {', '.join(f'{d:.2f}' for d in devnull)}; | cat {', '.join(f'{d:.2f}' for d in piped)}; kgent {', '.join(f'{k[1]:.2f}' for k in kernel)}")
    logged, _, n_streams, shown, summary, rss, cpu = kernel[-1]
    rate_null = direct_lines / devnull_s
    rate_kernel = logged / kernel_s
    print(f"bpftrace > /dev/null      : {direct_lines:>9,} events in {devnull_s:6.2f} s = {rate_null:>10,.0f} events/s  (median of {FLOOD_ROUNDS}; event count from a counted run)")
    print(f"bpftrace | cat > /dev/null: {direct_lines:>9,} events in {piped_s:6.2f} s = {direct_lines/piped_s:>10,.0f} events/s  (any pipe reader at all)")
    print(f"through the kgent kernel  : {logged:>9,} events in {kernel_s:6.2f} s = {rate_kernel:>10,.0f} events/s  (median of {FLOOD_ROUNDS}; every event parsed and logged)")
    print(f"kgent rate / bpftrace rate: {rate_kernel/rate_null*100:.1f}%  (target: at least 90%)")
    print(f"kgent CPU per event       : {cpu/logged*1e6:.2f} us  ({cpu:.2f} s for {logged:,} events)")
    print(f"client received           : {n_streams} stream messages, {shown:,} bytes shown; summary: {summary}")
    print(f"kernel peak RSS           : {rss/1024:.1f} MiB")


if __name__ == "__main__":
    main()
