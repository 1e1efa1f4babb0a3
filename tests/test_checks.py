"""The front end's checks in the notebook: errors stop a cell before anything attaches,
warnings are shown once the program runs, annotations never reach bpftrace."""

from __future__ import annotations

from conftest import KernelSession, strip_ansi


def test_annotations_are_blanked_before_bpftrace_runs(kernel: KernelSession) -> None:
    code = (
        "%%bpftrace\n"
        "BEGIN\n"
        "{\n"
        "    assume(pid > 0);\n"
        "    printf(\"annotated %d\\n\", 42);\n"
        "    assert(1 == 1, \"trivially\");\n"
        "    exit();\n"
        "}"
    )
    cell = kernel.run(code)
    assert cell.status == "ok", cell.describe()
    assert cell.stdout == "annotated 42\n", cell.describe()


def test_errors_stop_the_cell_before_attaching(kernel: KernelSession) -> None:
    code = "%%bpftrace\ninterval:ms:100 { @x = count(); @x = hist(5); }"
    cell = kernel.run(code)
    assert cell.status == "error", cell.describe()
    assert cell.error["ename"] == "CheckError"
    text = strip_ansi("\n".join(cell.error["traceback"]))
    assert "error[map-type-conflict]" in text, text
    assert not kernel.bpftrace_children()


def test_warnings_show_once_the_program_runs(kernel: KernelSession) -> None:
    # A uprobe target that does not exist is only a warning (bpftrace skips it), so the
    # program runs and the warning appears on stderr.
    code = (
        "%%bpftrace\n"
        "uprobe:/bin/bash:no_such_function_here, uprobe:/bin/bash:readline { @n = count(); }\n"
        "BEGIN { printf(\"running\\n\"); exit(); }"
    )
    cell = kernel.run(code)
    assert cell.status == "ok", cell.describe()
    assert "running" in cell.stdout
    err = strip_ansi(cell.stderr)
    assert "warning[unknown-probe]" in err, cell.describe()
    assert "no_such_function_here" in err


def test_force_runs_what_the_checks_refuse_and_keeps_their_notes(kernel: KernelSession) -> None:
    code = "%%bpftrace --force\nBEGIN { @x = count(); @x = hist(5); exit(); }"
    cell = kernel.run(code)
    assert cell.status == "error", cell.describe()
    assert cell.error["ename"] == "BpftraceError"
    text = strip_ansi("\n".join(cell.error["traceback"]))
    assert "Kgent's checks before running had said:" in text
    assert "map-type-conflict" in text
