"""What a tracing cell shows: text exactly as the program printed it, options that shape
the output, and a kernel that stays responsive while a program runs."""

from __future__ import annotations

import re
import time

from conftest import KernelSession, strip_ansi


def ok(cell) -> None:
    assert cell.status == "ok", cell.describe()
    assert not cell.errors, cell.describe()


def test_unicode_text_is_exact(kernel: KernelSession) -> None:
    cell = kernel.run('%%bpftrace\nBEGIN { printf("héllo ✓ 世界\\n"); exit(); }')
    ok(cell)
    assert cell.stdout == "héllo ✓ 世界\n"


def test_text_without_newline_is_shown(kernel: KernelSession) -> None:
    cell = kernel.run('%%bpftrace\nBEGIN { printf("a"); printf("b"); printf("c\\n"); printf("no newline"); exit(); }')
    ok(cell)
    assert cell.stdout == "abc\nno newline"


def test_positional_parameters(kernel: KernelSession) -> None:
    cell = kernel.run('%%bpftrace -- 42 hello\nBEGIN { printf("%d %s\\n", $1, str($2)); exit(); }')
    ok(cell)
    assert cell.stdout == "42 hello\n"


def test_log_file_holds_the_output(kernel: KernelSession) -> None:
    cell = kernel.run('%%bpftrace\nBEGIN { printf("one\\n"); printf("two\\n"); exit(); }')
    ok(cell)
    assert cell.log_path.read_text() == "one\ntwo\n"


def test_runtime_error_of_bpftrace_goes_to_stderr(kernel: KernelSession) -> None:
    cell = kernel.run('%%bpftrace\nBEGIN { cat("/nonexistent"); printf("after\\n"); exit(); }')
    ok(cell)
    assert "failed to open file '/nonexistent'" in cell.stderr, cell.describe()
    assert cell.stdout == "after\n"
    # The harmless RLIMIT_MEMLOCK warning bpftrace prints on this VM is not shown.
    assert "RLIMIT_MEMLOCK" not in cell.stderr


def test_max_lines(kernel: KernelSession) -> None:
    cell = kernel.run(
        '%%bpftrace --max-lines 3\nBEGIN { printf("1\\n"); printf("2\\n"); printf("3\\n"); printf("4\\n"); printf("5\\n"); exit(); }'
    )
    ok(cell)
    assert cell.stdout == "1\n2\n3\n"
    assert re.search(r"\[kgent\] 3 lines shown.*--max-lines.*" + re.escape(str(cell.log_path)), cell.stderr), cell.stderr
    assert "· 2 lines not shown" in cell.summary, cell.summary
    assert cell.log_path.read_text() == "1\n2\n3\n4\n5\n"


def test_system_output_with_unsafe(kernel: KernelSession) -> None:
    """system() output is the command's own text, like in a terminal (bpftrace -f json
    reports it as {"type": "syscall", "data": "..."})."""
    cell = kernel.run('%%bpftrace --unsafe\nBEGIN { system("echo from-system"); exit(); }')
    ok(cell)
    assert cell.stdout == "from-system\n", cell.describe()


def test_command_option_runs_and_traces_a_workload(kernel: KernelSession) -> None:
    cell = kernel.run(
        "%%bpftrace --timeout 30s -c 'echo \"workload says hi\"; /bin/true'\n"
        'tracepoint:sched:sched_process_exec { printf("exec %s\\n", str(args->filename)); }'
    )
    ok(cell)
    # The workload's own output is shown, and the program saw the workload's exec.
    assert "workload says hi\n" in cell.stdout, cell.describe()
    assert re.search(r"^exec \S*/true$", cell.stdout, re.M), cell.stdout
    # The cell ended when the workload ended, not at the timeout.
    assert cell.summary.startswith("finished after"), cell.summary


def test_watch_shows_only_the_latest_frame(kernel: KernelSession) -> None:
    cell = kernel.run(
        '%%bpftrace --watch\ninterval:ms:100 { time("%H:%M:%S\\n"); @n++; printf("frame %d\\n", @n); if (@n >= 3) { exit(); } }'
    )
    ok(cell)
    kinds = [m["msg_type"] for m in cell.msgs]
    assert kinds.count("clear_output") == 3, kinds
    assert all(m["content"]["wait"] is True for m in cell.of_type("clear_output"))
    # After the last clear_output: the last frame only.
    last_clear = max(i for i, k in enumerate(kinds) if k == "clear_output")
    last_frame = "".join(m["content"]["text"] for m in cell.msgs[last_clear:] if m["msg_type"] == "stream")
    assert re.fullmatch(r"\d\d:\d\d:\d\d\nframe 3\n", last_frame), last_frame


def test_silent_execution_has_no_execute_result(kernel: KernelSession) -> None:
    """Protocol: silent=True "will not [...] have an execute_result" and is not stored in
    history. (Like ipykernel, streams and displays may still be published.)"""
    before = kernel.run("%lsmagic").reply["content"]["execution_count"]
    cell = kernel.run('%%bpftrace\nBEGIN { @n = count(); printf("quiet\\n"); exit(); }', silent=True)
    assert cell.status == "ok", cell.describe()
    assert cell.execute_inputs == 0
    assert cell.results == [], f"silent execution produced an execute_result:\n{cell.describe()}"
    after = kernel.run("%lsmagic").reply["content"]["execution_count"]
    assert after == before + 1, (before, after)
    reply = kernel.shell_reply(kernel.kc.history(hist_access_type="search", pattern="*quiet*", output=False, raw=True))
    assert reply["content"]["history"] == []


def test_error_aborts_queued_cells(kernel: KernelSession) -> None:
    bad = kernel.execute("%%bpftrace\nBEGIN { oops }")
    queued = kernel.execute('%%bpftrace\nBEGIN { printf("should not run\\n"); exit(); }')
    kernel.wait(bad)
    kernel.wait(queued)
    assert bad.status == "error"
    assert queued.status == "aborted", queued.describe()
    assert queued.msgs == []
    # Without stop_on_error the next cell runs.
    bad = kernel.execute("%%bpftrace\nBEGIN { oops }", stop_on_error=False)
    queued = kernel.execute('%%bpftrace\nBEGIN { printf("runs\\n"); exit(); }')
    kernel.wait(bad)
    kernel.wait(queued)
    assert queued.status == "ok" and queued.stdout == "runs\n", queued.describe()


def test_kernel_answers_while_a_program_runs(kernel: KernelSession) -> None:
    cell = kernel.execute('%%bpftrace\ninterval:ms:100 { printf("tick\\n"); }')
    kernel.wait_for_output(cell, lambda c: "tick" in c.stdout, timeout=30)
    for send in (
        lambda: kernel.kc.kernel_info(),
        lambda: kernel.kc.complete("%%bpftrace\nBEGIN { prin"),
        lambda: kernel.kc.inspect("printf", 3),
        lambda: kernel.kc.is_complete("BEGIN {"),
        lambda: kernel.kc.history(hist_access_type="tail", n=3, output=False, raw=True),
        lambda: kernel.kc.comm_info(),
    ):
        t0 = time.monotonic()
        reply = kernel.shell_reply(send(), timeout=5)
        took = time.monotonic() - t0
        expected = "incomplete" if reply["msg_type"] == "is_complete_reply" else "ok"
        assert reply["content"]["status"] == expected, reply["content"]
        assert took < 1.0, f"{reply['msg_type']} took {took:.2f} s while a cell runs"
    assert kernel.kc.is_alive()  # heartbeat
    kernel.interrupt()
    kernel.wait(cell, timeout=10)
    ok(cell)
    assert cell.summary.startswith("detached on interrupt")


def test_history_keeps_the_summary_as_output(kernel: KernelSession) -> None:
    code = '%%bpftrace\nBEGIN { printf("for history %d\\n", 7); exit(); }'
    cell = kernel.run(code)
    ok(cell)
    count = cell.reply["content"]["execution_count"]
    reply = kernel.shell_reply(kernel.kc.history(hist_access_type="search", pattern="*for history*", output=True, raw=True))
    entries = reply["content"]["history"]
    assert entries, reply
    session, line, (source, output) = entries[-1]
    assert (line, source) == (count, code)
    assert output.startswith("finished after") and "1 event" in output, output
    reply = kernel.shell_reply(kernel.kc.history(hist_access_type="range", session=session, start=count, stop=count + 1, raw=True, output=False))
    assert [tuple(e) for e in reply["content"]["history"]] == [(session, count, code)]


def test_help_and_lsmagic_list_every_magic(kernel: KernelSession) -> None:
    text = kernel.run("%lsmagic").displays[0]["data"]["text/plain"]
    for magic in ("%probes", "%lsmagic", "%help", "%%bpftrace"):
        assert magic in text, text
    cell = kernel.run("%help bpftrace")
    ok(cell)
    assert "--timeout" in cell.displays[0]["data"]["text/plain"]
    err = kernel.run("%help nosuch")
    assert err.status == "error" and "nosuch" in strip_ansi(err.error["evalue"])


def test_probes_lists_and_limits(kernel: KernelSession) -> None:
    cell = kernel.run("%probes --limit 5 t:syscalls:sys_enter_*")
    ok(cell)
    plain = cell.displays[0]["data"]["text/plain"]
    listed = [line for line in plain.splitlines() if line.startswith("tracepoint:syscalls:sys_enter_")]
    assert len(listed) == 5, plain
    m = re.match(r"5 of (\d+) attach points matching t:syscalls:sys_enter_\*", plain)
    assert m and int(m.group(1)) > 300, plain
