"""Shared fixtures for the end-to-end tests: the real `kgent` kernel, driven by real
Jupyter clients (jupyter_client), against the real bpftrace and Linux kernel.

Nothing is mocked. Tests need root (BPF), bpftrace, bpftool and the `kgent` kernelspec
that `scripts/setup.sh` installs into `.venv`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Callable, Iterable

import pytest
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parents[1]
KERNEL_NAME = "kgent"

SUMMARY_RE = re.compile(
    r"^(finished|detached on interrupt|detached at the timeout|killed after it did not stop within \d+ s)"
    r" after ([\d.]+) s"
)


# ---------------------------------------------------------------------------------------
# Process helpers (everything from /proc, as the kernel sees it)


def proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state, ppid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm is in parentheses and may contain spaces or parentheses itself.
    comm = text[text.index("(") + 1 : text.rindex(")")]
    rest = text[text.rindex(")") + 2 :].split()
    return comm, rest[0], int(rest[1])


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children_of(pid: int) -> list[tuple[int, str]]:
    """Live (non-zombie) direct children of `pid`, as (pid, comm)."""
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st and st[2] == pid and st[1] not in ("Z", "X"):
            out.append((p, st[0]))
    return out


def descendants_of(pid: int) -> list[tuple[int, str]]:
    """Live descendants of `pid` (children, their children, ...), as (pid, comm)."""
    out = []
    for child, comm in children_of(pid):
        out.append((child, comm))
        out.extend(descendants_of(child))
    return out


def bpftrace_children(pid: int) -> list[int]:
    return [p for p, comm in children_of(pid) if comm.startswith("bpftrace")]


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def bpf_programs() -> dict[int, dict[str, Any]]:
    """BPF programs loaded in the kernel right now, by id (bpftool prog show -j)."""
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        raise RuntimeError("bpftool is not installed (scripts/setup.sh installs it)")
    out = subprocess.run([bpftool, "prog", "show", "-j"], check=True, capture_output=True, text=True).stdout
    return {p["id"]: p for p in json.loads(out or "[]")}


def bpf_prog_ids() -> set[int]:
    return set(bpf_programs())


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Polls `pred` until it returns something truthy; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------------------------------
# What one cell produced


@dataclass
class CellRun:
    """The IOPub messages of one execute_request (busy/idle and execute_input excluded) and
    its execute_reply. `times` holds the monotonic arrival time of each message."""

    msg_id: str
    reply: dict[str, Any] | None = None
    msgs: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    reply_time: float | None = None
    done: bool = False
    execute_inputs: int = 0

    @property
    def status(self) -> str | None:
        return self.reply["content"]["status"] if self.reply else None

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.msgs if m["msg_type"] in types]

    def streams(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.of_type("stream") if m["content"]["name"] == name]

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.streams("stdout"))

    @property
    def stderr(self) -> str:
        return "".join(m["content"]["text"] for m in self.streams("stderr"))

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [m["content"] for m in self.of_type("error")]

    @property
    def error(self) -> dict[str, Any]:
        errs = self.errors
        assert len(errs) == 1, f"expected exactly one error output, got {len(errs)}: {self.describe()}"
        return errs[0]

    @property
    def traceback_text(self) -> str:
        return strip_ansi("\n".join(self.error["traceback"]))

    @property
    def displays(self) -> list[dict[str, Any]]:
        return [m["content"] for m in self.of_type("display_data")]

    @property
    def updates(self) -> list[dict[str, Any]]:
        return [m["content"] for m in self.of_type("update_display_data")]

    @property
    def results(self) -> list[dict[str, Any]]:
        return [m["content"] for m in self.of_type("execute_result")]

    @property
    def summary(self) -> str | None:
        """text/plain of the summary display every successful bpftrace cell ends with."""
        for d in reversed(self.displays):
            text = d["data"].get("text/plain", "")
            if SUMMARY_RE.match(text):
                return text
        return None

    @property
    def log_path(self) -> Path | None:
        s = self.summary
        m = re.search(r"full output: (\S+)", s or "")
        return Path(m.group(1)) if m else None

    def describe(self) -> str:
        lines = [f"reply={self.reply and self.reply['content']}; {len(self.msgs)} outputs"]
        shown = self.msgs if len(self.msgs) <= 30 else self.msgs[:15] + self.msgs[-15:]
        for i, m in enumerate(shown):
            if len(self.msgs) > 30 and i == 15:
                lines.append(f"  ... {len(self.msgs) - 30} more ...")
            c = m["content"]
            if m["msg_type"] == "stream":
                lines.append(f"  stream/{c['name']}: {c['text'][:300]!r}")
            elif "data" in c:
                lines.append(f"  {m['msg_type']}: {c['data'].get('text/plain', list(c['data']))!r:.300}")
            else:
                lines.append(f"  {m['msg_type']}: {json.dumps(c)[:600]}")
        return "\n".join(lines)


def strip_ansi(s: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", s)


# ---------------------------------------------------------------------------------------
# A running kernel with a blocking client


class KernelSession:
    """A `kgent` kernel started with jupyter_client's KernelManager, and one client.

    IOPub messages are demultiplexed by parent msg_id, so a test can start a cell, watch its
    output arrive, interrupt it, and run the next one."""

    def __init__(self, env: dict[str, str] | None = None, stderr_path: Path | None = None,
                 ready_timeout: float = 60):
        self.km = KernelManager(kernel_name=KERNEL_NAME)
        self.stderr_path = stderr_path
        kwargs: dict[str, Any] = {}
        if stderr_path is not None:
            self._stderr_file = open(stderr_path, "w")
            kwargs["stderr"] = self._stderr_file
        if env is not None:
            kwargs["env"] = env
        self.km.start_kernel(**kwargs)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=ready_timeout)
        self._iopub: dict[str, list[tuple[float, dict]]] = defaultdict(list)
        self._shell: dict[str, tuple[float, dict]] = {}
        self._control: dict[str, dict] = {}
        self.drain()

    @property
    def pid(self) -> int:
        return self.km.provisioner.process.pid  # type: ignore[union-attr]

    def stderr_text(self) -> str:
        if self.stderr_path is None:
            return ""
        self._stderr_file.flush()
        return self.stderr_path.read_text(errors="replace")

    # -- low level ---------------------------------------------------------------------

    def drain(self) -> None:
        """Sorts whatever IOPub/shell messages are waiting, without blocking."""
        while True:
            try:
                self._pump_iopub(timeout=0)
            except Empty:
                break
        while True:
            try:
                self._pump_shell(timeout=0)
            except Empty:
                break

    def _pump_iopub(self, timeout: float) -> None:
        msg = self.kc.get_iopub_msg(timeout=timeout)
        parent = (msg.get("parent_header") or {}).get("msg_id", "")
        self._iopub[parent].append((time.monotonic(), msg))

    def _pump_shell(self, timeout: float) -> None:
        msg = self.kc.get_shell_msg(timeout=timeout)
        parent = (msg.get("parent_header") or {}).get("msg_id", "")
        self._shell[parent] = (time.monotonic(), msg)

    def shell_reply(self, msg_id: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while msg_id not in self._shell:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no shell reply to {msg_id} within {timeout} s")
            try:
                self._pump_shell(timeout=min(left, 0.2))
            except Empty:
                pass
        return self._shell.pop(msg_id)[1]

    # -- cells -------------------------------------------------------------------------

    def execute(self, code: str, **kw: Any) -> CellRun:
        """Sends an execute_request and returns at once."""
        return CellRun(msg_id=self.kc.execute(code, **kw))

    def poll(self, cell: CellRun, timeout: float = 0.1) -> None:
        """Moves newly arrived messages of `cell` into it, waiting at most `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for t, msg in self._iopub.pop(cell.msg_id, []):
                typ = msg["msg_type"]
                if typ == "status":
                    if msg["content"]["execution_state"] == "idle":
                        cell.done = True
                    continue
                if typ == "execute_input":
                    cell.execute_inputs += 1
                    continue
                cell.msgs.append(msg)
                cell.times.append(t)
            if cell.reply is None and cell.msg_id in self._shell:
                cell.reply_time, cell.reply = self._shell.pop(cell.msg_id)
            left = deadline - time.monotonic()
            if left <= 0 or (cell.done and cell.reply is not None):
                return
            try:
                self._pump_iopub(timeout=min(left, 0.05))
            except Empty:
                pass
            try:
                self._pump_shell(timeout=0)
            except Empty:
                pass

    def wait(self, cell: CellRun, timeout: float = 60) -> CellRun:
        """Waits for the cell's execute_reply and its idle status."""
        deadline = time.monotonic() + timeout
        while not (cell.done and cell.reply is not None):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"cell did not finish within {timeout} s:\n{cell.describe()}")
            self.poll(cell, timeout=min(left, 0.5))
        return cell

    def wait_for_output(self, cell: CellRun, pred: Callable[[CellRun], Any], timeout: float = 30) -> None:
        """Waits until `pred(cell)` is true (e.g. some stdout arrived)."""
        deadline = time.monotonic() + timeout
        while not pred(cell):
            if cell.done and cell.reply is not None:
                raise AssertionError(f"cell ended before the expected output:\n{cell.describe()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"expected output did not arrive within {timeout} s:\n{cell.describe()}")
            self.poll(cell, timeout=min(left, 0.2))

    def run(self, code: str, timeout: float = 60, **kw: Any) -> CellRun:
        """Runs a cell to the end and returns everything it produced."""
        return self.wait(self.execute(code, **kw), timeout=timeout)

    # -- control -----------------------------------------------------------------------

    def interrupt(self, timeout: float = 5) -> dict:
        """Sends interrupt_request on the control channel; returns the interrupt_reply."""
        msg = self.kc.session.msg("interrupt_request", {})
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no interrupt_reply")
            reply = self.kc.get_control_msg(timeout=left)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return reply

    def bpftrace_children(self) -> list[int]:
        return bpftrace_children(self.pid)

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            try:
                if self.km.has_kernel:
                    self.km.shutdown_kernel(now=False)
            finally:
                self.km.cleanup_resources()
                if self.stderr_path is not None:
                    self._stderr_file.close()


def start_kernel(tmp_path: Path, env_extra: dict[str, str] | None = None,
                 env_remove: Iterable[str] = ()) -> KernelSession:
    env = dict(os.environ)
    for k in env_remove:
        env.pop(k, None)
    env.update(env_extra or {})
    stderr_path = tmp_path / f"kernel-stderr-{uuid.uuid4().hex[:8]}.log"
    return KernelSession(env=env, stderr_path=stderr_path)


def wait_for_capabilities(session: KernelSession, timeout: float = 60) -> CellRun:
    """Capability detection runs in the background after the kernel starts (cached in
    ~/.cache/kgent afterwards). Until it is done a kprobe cell really runs bpftrace and
    fails at attach time; once it is done the kernel refuses it before running. Polls with
    a kprobe cell until the refusal comes; returns that cell."""
    deadline = time.monotonic() + timeout
    while True:
        cell = session.run("%%bpftrace\nkprobe:do_nanosleep { exit(); }", timeout=30)
        if cell.errors and cell.errors[0]["ename"] == "ProbeTypeUnavailable":
            return cell
        if time.monotonic() > deadline:
            return cell
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------
# Fixtures


def _check_environment() -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("the tests load BPF programs and must run as root")
    if shutil.which("bpftrace") is None:
        problems.append("bpftrace is not on PATH")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        problems.append("the kgent kernelspec is not installed (run scripts/setup.sh)")
    if problems:
        pytest.exit("cannot run the kgent end-to-end tests: " + "; ".join(problems), returncode=2)


@pytest.fixture(scope="session", autouse=True)
def _environment(tmp_path_factory: pytest.TempPathFactory) -> Iterable[None]:
    _check_environment()
    # Run logs of the test kernels go to a temporary directory, not ~/.local/state.
    run_dir = tmp_path_factory.mktemp("kgent-runs")
    old = os.environ.get("KGENT_RUN_DIR")
    os.environ["KGENT_RUN_DIR"] = str(run_dir)
    yield
    if old is None:
        os.environ.pop("KGENT_RUN_DIR", None)
    else:
        os.environ["KGENT_RUN_DIR"] = old


@pytest.fixture(scope="module")
def module_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterable[KernelSession]:
    """One kernel per test module."""
    session = start_kernel(tmp_path_factory.mktemp("kernel"))
    yield session
    session.shutdown()


@pytest.fixture
def kernel(module_kernel: KernelSession) -> Iterable[KernelSession]:
    """The module's kernel; a test that fails while a cell runs must not leave that cell
    running for the next test, so leftovers are interrupted afterwards."""
    module_kernel.drain()
    yield module_kernel
    if module_kernel.km.is_alive() and module_kernel.bpftrace_children():
        module_kernel.interrupt()
        wait_until(lambda: not module_kernel.bpftrace_children(), timeout=10)
    time.sleep(0.2)
    module_kernel.drain()
    module_kernel._iopub.clear()
    module_kernel._shell.clear()


# ---------------------------------------------------------------------------------------
# A scripted OpenAI-compatible LLM server (tests/llm_stub.py)

from llm_stub import Script, ScriptedLLM  # noqa: E402  (appended section)


@pytest.fixture
def llm_stub() -> Iterable[Callable[..., ScriptedLLM]]:
    """A factory: `llm_stub([reply("..."), rate_limited(2)])` returns a started
    ScriptedLLM (see tests/llm_stub.py); every server it made is stopped at teardown,
    stalled and idle connections included."""
    servers: list[ScriptedLLM] = []

    def start(scripts: Iterable[Script | str] = (), **kwargs: Any) -> ScriptedLLM:
        server = ScriptedLLM(scripts, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
