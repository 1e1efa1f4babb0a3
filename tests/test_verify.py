"""`%%verify` cells end to end: the real kernel and its `kgent-verifier` helper (Z3), the
running kernel's types and the shipped contracts (issue 5)."""
from __future__ import annotations

from typing import Iterable

import pytest

from conftest import KernelSession, start_kernel, strip_ansi

IPV4_ONLY = """tracepoint:sock:inet_sock_set_state
/args->family == 2/
{
    printf("%d -> %d\\n", args->oldstate, args->newstate);
}"""

BIG_READS = """tracepoint:syscalls:sys_exit_read
/args->ret > {limit}/
{{
    printf("%d KB\\n", args->ret / 1024);
    assert(args->ret > 1048576, "only reads over 1 MB are printed");
}}"""


@pytest.fixture(scope="module")
def k(tmp_path_factory: pytest.TempPathFactory) -> Iterable[KernelSession]:
    session = start_kernel(tmp_path_factory.mktemp("verify"))
    yield session
    session.shutdown()


def shown(cell) -> tuple[str, str]:
    (d,) = cell.displays
    return d["data"]["text/plain"], d["data"]["text/html"]


def test_a_rule_refutes_an_ipv4_only_program(k: KernelSession) -> None:
    cell = k.run(f"%%verify --request 'TCP state changes of IPv4 and IPv6 connections'\n{IPV4_ONLY}",
                 timeout=60)
    assert cell.errors and cell.error["ename"] == "AssertionRefuted", cell.describe()
    tb = strip_ansi(cell.traceback_text)
    assert "1 of 2 assertion(s) refuted" in tb and "assert(10 == 2" in tb, tb
    assert "counterexample: it fails for every event that reaches it" in tb, tb
    plain, html = shown(cell)
    assert plain.startswith("✗ Verification for the request “TCP state changes"), plain
    assert "// assert · rule address-family; ✗ refuted" in plain, plain
    assert "// assume · spec tracepoint:sock:inet_sock_set_state" in plain, plain
    assert "[assert · rule address-family]" in html and "[✗ refuted]" in html, html
    # Nothing ran: the cell verifies, it does not attach.
    assert not k.bpftrace_children()


def test_the_program_s_own_assertion_proved_and_refuted(k: KernelSession) -> None:
    cell = k.run("%%verify\n" + BIG_READS.format(limit=1048576), timeout=60)
    assert not cell.errors, cell.describe()
    plain, _ = shown(cell)
    assert plain.startswith("✓ Verification: 1 proved"), plain
    assert "// assert · request; ✓ proved" in plain, plain

    cell = k.run("%%verify\n" + BIG_READS.format(limit=1000), timeout=60)
    assert cell.errors and cell.error["ename"] == "AssertionRefuted", cell.describe()
    tb = strip_ansi(cell.traceback_text)
    # Concrete inputs: a read the filter lets through and the assertion does not want,
    # and the line the program printed for it.
    assert "counterexample: in tracepoint:syscalls:sys_exit_read: args->ret = " in tb, tb
    assert "it printed: " in tb and " KB" in tb, tb
    plain, html = shown(cell)
    assert "//   counterexample: in tracepoint:syscalls:sys_exit_read: args->ret = " in plain, plain
    assert "↳ counterexample" in html, html


def test_a_pinned_cell_s_request_is_used(k: KernelSession) -> None:
    pinned = ("// Request: show TCP state changes of IPv4 and IPv6 connections\n"
              "// Kgent: synthesised by somebody\n" + IPV4_ONLY)
    cell = k.run(f"%%verify\n{pinned}", timeout=60)
    assert cell.errors and cell.error["ename"] == "AssertionRefuted", cell.describe()
    plain, _ = shown(cell)
    assert "for the request “show TCP state changes of IPv4 and IPv6 connections”" in plain, plain


def test_no_annotate_checks_only_the_program_s_own(k: KernelSession) -> None:
    cell = k.run("%%verify --no-annotate\n" + BIG_READS.format(limit=1048576), timeout=60)
    assert not cell.errors, cell.describe()
    plain, _ = shown(cell)
    assert "assume" not in plain and "// assert · request; ✓ proved" in plain, plain


def test_bad_cells_say_what_is_wrong(k: KernelSession) -> None:
    cell = k.run("%%verify\n// nothing here", timeout=60)
    assert cell.errors and cell.error["ename"] == "UsageError", cell.describe()
    cell = k.run("%%verify\ntracepoint:syscalls:sys_exit_read { printf( }", timeout=60)
    assert cell.errors and cell.error["ename"] == "VerifyError", cell.describe()
    assert "parse" in cell.error["evalue"], cell.describe()
    cell = k.run("%%verify --frobnicate\nBEGIN { }", timeout=60)
    assert cell.errors and cell.error["ename"] == "UsageError", cell.describe()


def test_without_the_verifier_programs_are_said_to_be_unverified(tmp_path) -> None:
    session = start_kernel(tmp_path, env_extra={"KGENT_VERIFIER": str(tmp_path / "absent"),
                                                "XDG_CACHE_HOME": str(tmp_path / "cache")})
    try:
        cell = session.run("%%nl --offline --no-load\ncount system calls by process", timeout=120)
        assert not cell.errors, cell.describe()
        final = cell.updates[-1]["data"]["text/plain"]
        assert "! Not verified: the verifier helper `kgent-verifier` was not found" in final, final
        assert "Verification:" not in final, final
        cell = session.run(f"%%verify\n{IPV4_ONLY}", timeout=60)
        assert cell.errors and cell.error["ename"] == "VerifierUnavailable", cell.describe()
        assert "cargo build --release -p kgent-verify" in cell.error["evalue"], cell.describe()
    finally:
        session.shutdown()
