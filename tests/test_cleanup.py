"""No probe outlives the kernel: however the kernel process ends (SIGKILL, SIGTERM, a
shutdown_request while a cell runs), its bpftrace children die and their BPF programs are
unloaded from the Linux kernel."""

from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import (KernelSession, bpf_programs, children_of, descendants_of, pid_alive, start_kernel,
                      wait_until)

# A program that never ends, with probes of two kinds (perf_event and tracepoint programs).
ENDLESS = (
    "%%bpftrace\n"
    'interval:ms:100 { printf("tick\\n"); }\n'
    "tracepoint:syscalls:sys_enter_getppid { @calls = count(); }"
)


def start_endless_cell(session: KernelSession) -> tuple[int, set[int]]:
    """Starts ENDLESS; returns the bpftrace pid and the ids of the BPF programs it loaded."""
    before = set(bpf_programs())
    cell = session.execute(ENDLESS)
    session.wait_for_output(cell, lambda c: "tick" in c.stdout, timeout=30)
    children = session.bpftrace_children()
    assert len(children) == 1, f"expected one bpftrace child of the kernel, found {children}"
    progs = bpf_programs()
    new = {pid for pid, p in progs.items() if pid not in before and p.get("type") in ("perf_event", "tracepoint")}
    # The probes of this program (other BPF users on the machine may load programs too);
    # BPF program names keep 15 characters.
    assert any(progs[i].get("type") == "perf_event" for i in new), {i: progs[i] for i in new}
    assert any(progs[i].get("type") == "tracepoint" and progs[i].get("name", "").startswith("sys_enter_getpp") for i in new), {
        i: progs[i] for i in new
    }
    return children[0], new


def assert_all_gone(bpftrace_pid: int, prog_ids: set[int], within: float = 5.0) -> None:
    gone = wait_until(lambda: not pid_alive(bpftrace_pid), timeout=within)
    assert gone, f"bpftrace (pid {bpftrace_pid}) survived the kernel"
    unloaded = wait_until(lambda: not (prog_ids & set(bpf_programs())), timeout=within)
    assert unloaded, f"BPF programs still loaded: {sorted(prog_ids & set(bpf_programs()))}"


def test_sigkill_of_the_kernel_kills_bpftrace_and_unloads_programs(tmp_path) -> None:
    session = start_kernel(tmp_path)
    try:
        bpftrace_pid, prog_ids = start_endless_cell(session)
        kernel_pid = session.pid
        os.kill(kernel_pid, signal.SIGKILL)
        t0 = time.monotonic()
        assert_all_gone(bpftrace_pid, prog_ids)
        assert not session.km.is_alive()
        print(f"bpftrace and its programs gone {time.monotonic() - t0:.2f} s after SIGKILL")
    finally:
        session.shutdown()


def test_sigterm_of_the_kernel_kills_bpftrace(tmp_path) -> None:
    session = start_kernel(tmp_path)
    try:
        bpftrace_pid, prog_ids = start_endless_cell(session)
        os.kill(session.pid, signal.SIGTERM)
        assert_all_gone(bpftrace_pid, prog_ids)
        assert wait_until(lambda: not session.km.is_alive(), timeout=5), "the kernel ignored SIGTERM"
    finally:
        session.shutdown()


@pytest.mark.parametrize("restart", [False, True], ids=["shutdown", "restart"])
def test_shutdown_during_a_running_cell_leaves_nothing(tmp_path, restart: bool) -> None:
    session = start_kernel(tmp_path)
    try:
        bpftrace_pid, prog_ids = start_endless_cell(session)
        kernel_pid = session.pid
        t0 = time.monotonic()
        if restart:
            session.km.restart_kernel(now=False)
        else:
            session.km.shutdown_kernel(now=False)
        took = time.monotonic() - t0
        assert_all_gone(bpftrace_pid, prog_ids)
        assert not pid_alive(kernel_pid)
        # jupyter_client waits up to its shutdown_wait_time (5 s) before killing a kernel
        # that does not exit by itself; a prompt exit means the kernel obeyed the request.
        assert took < 4, f"the kernel took {took:.1f} s to shut down (was it killed?)"
        if restart:
            session.kc.wait_for_ready(timeout=30)
            session.drain()
            cell = session.run('%%bpftrace\nBEGIN { printf("after restart\\n"); exit(); }')
            assert cell.status == "ok", cell.describe()
            assert cell.stdout == "after restart\n"
    finally:
        session.shutdown()


def test_sigkill_of_the_kernel_also_ends_the_traced_command(tmp_path) -> None:
    """`%%bpftrace -c CMD` starts a workload (through /bin/sh); when the kernel is killed,
    the workload must not keep running on its own either."""
    session = start_kernel(tmp_path)
    leftovers: list[int] = []
    try:
        cell = session.execute("%%bpftrace -c 'sleep 1234; echo done'\ninterval:ms:100 { printf(\"tick\\n\"); }")
        session.wait_for_output(cell, lambda c: "tick" in c.stdout, timeout=30)
        (bpftrace_pid,) = session.bpftrace_children()
        workload = descendants_of(bpftrace_pid)
        assert any(comm == "sleep" for _, comm in workload), workload
        os.kill(session.pid, signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(bpftrace_pid), timeout=5)
        wait_until(lambda: not any(pid_alive(p) for p, _ in workload), timeout=5)
        leftovers = [p for p, _ in workload if pid_alive(p)]
        assert not leftovers, (
            f"the -c workload survived the kernel: {[(p, c) for p, c in workload if pid_alive(p)]}"
        )
    finally:
        for p in leftovers:  # only the processes this test's cell started
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        session.shutdown()


def test_interrupt_ends_the_traced_command(tmp_path) -> None:
    session = start_kernel(tmp_path)
    try:
        cell = session.execute("%%bpftrace -c 'sleep 1234; echo done'\ninterval:ms:100 { printf(\"tick\\n\"); }")
        session.wait_for_output(cell, lambda c: "tick" in c.stdout, timeout=30)
        (bpftrace_pid,) = session.bpftrace_children()
        workload = descendants_of(bpftrace_pid)
        assert any(comm == "sleep" for _, comm in workload), workload
        session.interrupt()
        session.wait(cell, timeout=10)
        assert cell.status == "ok", cell.describe()
        assert cell.summary.startswith("detached on interrupt"), cell.summary
        assert "done" not in cell.stdout
        assert wait_until(lambda: not any(pid_alive(p) for p, _ in workload), timeout=3), [
            (p, c) for p, c in workload if pid_alive(p)
        ]
    finally:
        session.shutdown()


@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
def test_the_verifier_process_ends_with_the_kernel(tmp_path, how: str) -> None:
    """The kernel's `kgent-verifier` helper (Z3 kept out of the kernel) lives as long as
    the session, and no longer, however the kernel ends."""
    session = start_kernel(tmp_path, env_extra={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    verifier = None
    try:
        cell = session.run("%%nl --offline --no-load\ncount system calls by process", timeout=120)
        assert not cell.errors, cell.describe()
        assert "Verification: " in cell.updates[-1]["data"]["text/plain"], cell.describe()
        helpers = [p for p, comm in children_of(session.pid) if comm == "kgent-verifier"]
        assert len(helpers) == 1, children_of(session.pid)
        verifier = helpers[0]
        if how == "sigkill":
            os.kill(session.pid, signal.SIGKILL)
        else:
            session.shutdown()
        assert wait_until(lambda: not pid_alive(verifier), timeout=10), (
            f"kgent-verifier {verifier} outlived the kernel ({how})")
    finally:
        if verifier is not None and pid_alive(verifier):
            os.kill(verifier, signal.SIGKILL)
        session.shutdown()
