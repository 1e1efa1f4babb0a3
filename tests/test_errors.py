"""Mistakes people make give one clear error in the notebook, pointing at the cell.

Each failing cell must produce exactly one `error` output (no stream noise before it) and
an execute_reply with status `error` carrying the same ename.
"""

from __future__ import annotations

import re

import pytest

from conftest import CellRun, KernelSession, start_kernel, strip_ansi, wait_for_capabilities


def single_error(cell: CellRun, ename: str) -> dict:
    assert cell.status == "error", cell.describe()
    assert [m["msg_type"] for m in cell.msgs] == ["error"], cell.describe()
    err = cell.error
    assert err["ename"] == ename, cell.describe()
    assert cell.reply["content"]["ename"] == ename
    return err


def caret_under(tb_lines: list[str], cell_line: int, text: str) -> None:
    """The traceback shows `cell_line` with its source, and a caret line under `text`."""
    lines = [strip_ansi(line) for line in tb_lines]
    for i, line in enumerate(lines):
        m = re.match(r"^\s*(\d+) \| (.*)$", line)
        if m and int(m.group(1)) == cell_line:
            assert i + 1 < len(lines), lines
            carets = lines[i + 1]
            assert "^" in carets and carets.strip(" ^") == "", f"no caret line under:\n{line}\n{carets}"
            col = carets.index("^")
            assert line[col:].startswith(text), f"caret not under {text!r}:\n{line}\n{carets}"
            return
    raise AssertionError(f"cell line {cell_line} is not shown in the traceback:\n" + "\n".join(lines))


def test_syntax_error_points_at_cell_line(kernel: KernelSession) -> None:
    # Kgent's own front end catches it before bpftrace runs, with a fix.
    code = '%%bpftrace\nBEGIN {\n  printf("x\\n")\n  exit();\n}'
    err = single_error(kernel.run(code), "CheckError")
    text = strip_ansi("\n".join(err["traceback"]))
    assert "error[missing-semicolon]" in text, text
    assert "suggestion: insert `;`" in text, text
    assert "--force" in text
    # The statement without `;` is program line 2; the %%bpftrace line makes it cell line 3.
    caret_under(err["traceback"], 3, "")
    assert not kernel.bpftrace_children()


def test_syntax_error_from_bpftrace_itself_with_force(kernel: KernelSession) -> None:
    # --force skips the front end: bpftrace's own error, classified, at the cell line.
    code = '%%bpftrace --force\nBEGIN {\n  printf("x\\n")\n  exit();\n}'
    err = single_error(kernel.run(code), "BpftraceError")
    assert err["evalue"].startswith("Syntax error"), err
    text = strip_ansi("\n".join(err["traceback"]))
    assert "[parse-error]" in text
    # bpftrace reports program line 3 (`exit();`); the %%bpftrace line makes it cell line 4.
    caret_under(err["traceback"], 4, "exit")


def test_syntax_error_without_magic_counts_from_line_one(kernel: KernelSession) -> None:
    code = 'BEGIN {\n  printf("x\\n")\n  exit();\n}'
    err = single_error(kernel.run(code), "CheckError")
    caret_under(err["traceback"], 2, "")


def test_front_end_errors_suggest_fixes(kernel: KernelSession) -> None:
    code = '%%bpftrace\ntracepoint:syscalls:sys_enter_openat\n{\n    printf("%s\\n", str(args->fname));\n}'
    err = single_error(kernel.run(code), "CheckError")
    text = strip_ansi("\n".join(err["traceback"]))
    assert "error[no-such-field]" in text, text
    assert "did you mean `filename`?" in text, text
    caret_under(err["traceback"], 4, "fname")


@pytest.mark.parametrize(
    "code, cell_line",
    [
        ("%%bpftrace\ntracepoint:syscalls:sys_enter_nosuch { exit(); }", 2),
        # bpftrace 0.17 reports these as a multi-line span (`stdin:1-2:`, `stdin:1-3:`) that
        # starts at the comment or at the previous probe; the bad probe is its last line.
        ("%%bpftrace\n// comment line\ntracepoint:syscalls:sys_enter_nosuch { exit(); }", 3),
        ("%%bpftrace\nBEGIN { printf(\"hi\\n\"); }\n\ntracepoint:syscalls:sys_enter_nosuch { exit(); }", 4),
    ],
    ids=["first-line", "after-comment", "second-probe"],
)
def test_unknown_tracepoint_is_caught_before_attaching(kernel: KernelSession, code: str, cell_line: int) -> None:
    err = single_error(kernel.run(code), "CheckError")
    text = strip_ansi("\n".join(err["traceback"]))
    assert "error[unknown-probe]" in text, text
    caret_under(err["traceback"], cell_line, "tracepoint:syscalls:sys_enter_nosuch")


@pytest.mark.parametrize(
    "code, cell_line",
    [
        ("%%bpftrace --force\ntracepoint:syscalls:sys_enter_nosuch { exit(); }", 2),
        # bpftrace 0.17 reports these as a multi-line span (`stdin:1-2:`, `stdin:1-3:`) that
        # starts at the comment or at the previous probe; the bad probe is its last line.
        ("%%bpftrace --force\n// comment line\ntracepoint:syscalls:sys_enter_nosuch { exit(); }", 3),
        ("%%bpftrace --force\nBEGIN { printf(\"hi\\n\"); }\n\ntracepoint:syscalls:sys_enter_nosuch { exit(); }", 4),
    ],
    ids=["first-line", "after-comment", "second-probe"],
)
def test_unknown_tracepoint_is_a_semantic_error_with_probes_hint(kernel: KernelSession, code: str, cell_line: int) -> None:
    err = single_error(kernel.run(code), "BpftraceError")
    text = strip_ansi("\n".join(err["traceback"]))
    assert "[semantic-error]" in text, text
    assert "tracepoint not found: syscalls:sys_enter_nosuch" in text, text
    assert re.search(r"hint: .*%probes t:", text), text
    caret_under(err["traceback"], cell_line, "tracepoint:syscalls:sys_enter_nosuch")


def test_verifier_rejection_shows_the_verifier_log(kernel: KernelSession) -> None:
    code = "%%bpftrace\nBEGIN { $i = 0; while ($i < 10) { @[$i] = 1; } exit(); }"
    err = single_error(kernel.run(code), "BpftraceError")
    assert err["evalue"].startswith("The kernel's eBPF verifier rejected the program"), err
    text = strip_ansi("\n".join(err["traceback"]))
    assert "[verifier-rejected]" in text
    assert "verifier log" in text
    assert "infinite loop detected" in text, text


def test_kprobe_refused_with_alternatives(kernel: KernelSession) -> None:
    cell = wait_for_capabilities(kernel)
    err = single_error(cell, "ProbeTypeUnavailable")
    assert "kprobe probes do not work on this kernel" in err["evalue"], err
    text = strip_ansi("\n".join(err["traceback"]))
    assert "cell line 2: kprobe:do_nanosleep" in text, text
    assert "Use instead:" in text, text
    assert "tracepoint:syscalls:sys_enter_" in text, text
    assert "--force" in text
    # Refused before running: no bpftrace was started for it.
    assert not kernel.bpftrace_children()


@pytest.mark.parametrize(
    "code, spelled, suggestion",
    [
        ("%probs tcp", "%probs", "%probes"),
        ("%%bpftrce\nBEGIN { exit(); }", "%%bpftrce", "%%bpftrace"),
        ("%lsmgic", "%lsmagic", "%lsmagic"),
    ],
)
def test_unknown_magic_suggests_the_right_one(kernel: KernelSession, code: str, spelled: str, suggestion: str) -> None:
    err = single_error(kernel.run(code), "UnknownMagic")
    assert f"did you mean `{suggestion}`?" in err["evalue"], err
    assert "%lsmagic" in strip_ansi("\n".join(err["traceback"]))


def test_unknown_magic_without_near_name(kernel: KernelSession) -> None:
    err = single_error(kernel.run("%%frobnicate\nwhatever"), "UnknownMagic")
    assert "unknown magic `%%frobnicate`" in err["evalue"]
    assert "did you mean" not in err["evalue"]


def test_bad_option_value(kernel: KernelSession) -> None:
    err = single_error(kernel.run("%%bpftrace --timeout soon\nBEGIN { exit(); }"), "UsageError")
    assert "soon" in err["evalue"], err
    assert "5s" in err["evalue"], err  # how to write it instead
    assert any("usage: %%bpftrace" in strip_ansi(line) for line in err["traceback"]), err


def test_unknown_option(kernel: KernelSession) -> None:
    err = single_error(kernel.run("%%bpftrace --timeot 5s\nBEGIN { exit(); }"), "UsageError")
    assert "--timeot" in err["evalue"], err


def test_empty_program(kernel: KernelSession) -> None:
    err = single_error(kernel.run("%%bpftrace --timeout 5s\n\n"), "UsageError")
    assert "no program" in err["evalue"], err


def test_empty_or_malformed_request_cells(kernel: KernelSession) -> None:
    err = single_error(kernel.run("%%nl --offline\n"), "UsageError")
    assert "no request" in err["evalue"]
    assert "show which processes" in strip_ansi("\n".join(err["traceback"]))  # an example
    err = single_error(kernel.run("%%nl --retries many\ncount opens"), "UsageError")
    assert "usage: %%nl" in strip_ansi("\n".join(err["traceback"]))


def test_introspecting_unknown_name(kernel: KernelSession) -> None:
    err = single_error(kernel.run("tracepoint:nosuch:thing?"), "NotFound")
    assert "tracepoint:nosuch:thing" in err["evalue"]


def test_kernel_still_works_after_errors(kernel: KernelSession) -> None:
    kernel.run("%%bpftrace\nBEGIN { oops }")
    cell = kernel.run('%%bpftrace\nBEGIN { printf("still fine\\n"); exit(); }')
    assert cell.status == "ok", cell.describe()
    assert cell.stdout == "still fine\n"


@pytest.mark.parametrize(
    "how",
    ["KGENT_BPFTRACE=/nonexistent/bpftrace", "PATH without bpftrace"],
)
def test_missing_bpftrace(tmp_path, how: str) -> None:
    if how.startswith("KGENT_BPFTRACE"):
        session = start_kernel(tmp_path, env_extra={"KGENT_BPFTRACE": "/nonexistent/bpftrace"})
    else:
        session = start_kernel(tmp_path, env_extra={"PATH": str(tmp_path)}, env_remove=["KGENT_BPFTRACE"])
    try:
        cell = session.run('%%bpftrace\nBEGIN { printf("x\\n"); exit(); }')
        err = single_error(cell, "BpftraceMissing")
        text = strip_ansi("\n".join(err["traceback"]))
        assert "bpftrace is not installed" in text, text
        assert "apt-get install bpftrace" in text, text
        assert "KGENT_BPFTRACE" in text, text
        # Line magics that need no bpftrace still work.
        assert session.run("%lsmagic").status == "ok"
    finally:
        session.shutdown()
