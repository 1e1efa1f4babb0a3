"""Natural-language cells end to end: the real kernel, the real checker and bpftrace, and a
scripted OpenAI-compatible server on 127.0.0.1 standing in for the model (issue 4)."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterable

import pytest

from conftest import KernelSession, start_kernel, strip_ansi, wait_until
from llm_stub import delayed, rate_limited, reply, stall

GOOD = """```bpftrace
tracepoint:syscalls:sys_enter_openat
/strncmp(str(args->filename), "/etc/", 5) == 0/
{
    printf("%d %s %s\\n", pid, comm, str(args->filename));
}
```"""

TYPO = """```bpftrace
tracepoint:syscalls:sys_enter_opnat
{
    printf("%d %s\\n", pid, comm);
}
```"""

REQUEST = "show which processes open files under /etc, with the path"


@pytest.fixture(scope="module")
def nl_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterable[KernelSession]:
    """A kernel with no LLM configured and its own cache, data and config directories, so
    answers cached by other runs cannot leak in. The probe-type cache is copied to skip
    detection, which the tests here do not exercise."""
    home = tmp_path_factory.mktemp("nl-home")
    cache = home / "cache"
    (cache / "kgent").mkdir(parents=True)
    for base in (os.environ.get("XDG_CACHE_HOME"), str(Path.home() / ".cache")):
        caps = Path(base or "/nonexistent") / "kgent" / "capabilities.json"
        if caps.exists():
            shutil.copy(caps, cache / "kgent" / "capabilities.json")
            break
    env = {
        "XDG_CACHE_HOME": str(cache),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
    }
    remove = [k for k in os.environ if k.startswith("KGENT_LLM_") or k.startswith("KGENT_EMBEDDINGS_")]
    session = start_kernel(home, env_extra=env, env_remove=remove + ["OPENAI_API_KEY", "OPENAI_BASE_URL"])
    session.home = home  # type: ignore[attr-defined]
    yield session
    session.shutdown()


@pytest.fixture
def k(nl_kernel: KernelSession) -> Iterable[KernelSession]:
    nl_kernel.drain()
    yield nl_kernel
    if nl_kernel.km.is_alive() and nl_kernel.bpftrace_children():
        nl_kernel.interrupt()
        wait_until(lambda: not nl_kernel.bpftrace_children(), timeout=10)
    # Back to no model for the next test.
    nl_kernel.run("%llm reset", timeout=30)
    nl_kernel.drain()


def use_stub(k: KernelSession, stub, extra: str = "") -> None:
    cell = k.run(f"%llm --base-url {stub.base_url} --model scripted {extra}", timeout=60)
    assert not cell.errors, cell.describe()
    text = cell.displays[0]["data"]["text/plain"]
    assert "scripted" in text and stub.base_url.split("//")[1] in text, text


def next_input(cell) -> str | None:
    for p in (cell.reply or {}).get("content", {}).get("payload", []):
        if p.get("source") == "set_next_input":
            return p["text"]
    return None


def final_html(cell) -> str:
    return cell.updates[-1]["data"]["text/html"]


def final_plain(cell) -> str:
    return cell.updates[-1]["data"]["text/plain"]


def user_messages(body: dict) -> str:
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")


def test_offline_request_becomes_a_pinned_retrieved_program(k: KernelSession) -> None:
    cell = k.run(REQUEST, timeout=120)
    assert not cell.errors, cell.describe()
    # One display, updated in place: same display_id throughout.
    ids = {d["transient"]["display_id"] for d in cell.displays} | {
        u["transient"]["display_id"] for u in cell.updates
    }
    assert len(cell.displays) == 1 and len(ids) == 1, cell.describe()
    assert len(cell.updates) >= 3
    html = final_html(cell)
    assert "retrieved from the verified example library" in html
    assert "synthesised" not in html
    assert "<span style=\"color:" in html and "sys_enter_openat" in html  # highlighted
    assert "<details>" in html  # the collapsible history
    pinned = next_input(cell)
    assert pinned is not None, cell.describe()
    lines = pinned.splitlines()
    assert lines[0] == "%%bpftrace"
    assert lines[1] == f"// Request: {REQUEST}"
    assert lines[2].startswith("// Kgent: retrieved from the verified example library (")
    assert "sys_enter_openat" in pinned


def test_the_pinned_cell_runs_and_traces(k: KernelSession, tmp_path: Path) -> None:
    cell = k.run("%%nl --offline\nshow new processes as they start, with their arguments", timeout=120)
    pinned = next_input(cell)
    assert pinned, cell.describe()
    header, body = pinned.split("\n", 1)
    assert header == "%%bpftrace"
    run = k.run(f"%%bpftrace -c 'sh -c \"/bin/true kgent-nl-marker\"' --timeout 20s\n{body}", timeout=60)
    assert not run.errors, run.describe()
    assert "kgent-nl-marker" in run.stdout, run.describe()


def test_an_approved_program_joins_the_library(k: KernelSession) -> None:
    # The previous test ran a pinned cell: that was the approval.
    def approved() -> bool:
        text = k.run("%llm", timeout=60).displays[0]["data"]["text/plain"]
        return "(1 approved by you)" in text

    wait_until(approved, timeout=60, interval=0.5)
    cell = k.run("%%nl --offline\nprocesses being started, and their argv", timeout=60)
    assert not cell.errors, cell.describe()
    assert "approved-" in final_plain(cell), final_plain(cell)


def test_run_flag_attaches_at_once(k: KernelSession) -> None:
    cell = k.run("%%nl --offline --run --timeout 3s\ncount system calls by process", timeout=120)
    assert not cell.errors, cell.describe()
    assert next_input(cell) is None  # approved and run: nothing to insert
    # The traced result: the map printed when the program stopped.
    results = [r["data"]["text/plain"] for r in cell.results]
    assert any("@" in r and ":" in r for r in results), cell.describe()
    assert "attaching it now" in final_plain(cell).lower()


def test_model_answer_accepted_first_time_streams_tokens(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([reply("Here it is:\n" + GOOD)])
    use_stub(k, stub)
    cell = k.run("%%nl --no-load\nlist opens of files in /etc by process, model test one", timeout=120)
    assert not cell.errors, cell.describe()
    assert len(stub.requests) == 1
    html = final_html(cell)
    assert "synthesised by scripted" in html, html
    # Usage as the server reported it (the interrupt test sees the reply stream live).
    assert "prompt + " in html and "reply tokens" in html, html
    pinned = next_input(cell)
    assert pinned and "// Kgent: synthesised by scripted" in pinned
    assert "strncmp(str(args->filename)" in pinned
    # The prompt carried the kernel's facts and library examples.
    prompt = json.dumps(stub.requests[0])
    assert "sys_enter_openat" in prompt


def test_wrong_attach_point_is_fixed_after_feedback(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([reply(TYPO), reply(GOOD)])
    use_stub(k, stub)
    cell = k.run("%%nl --no-load\nwho opens /etc files, model test two", timeout=120)
    assert not cell.errors, cell.describe()
    assert len(stub.requests) == 2
    feedback = user_messages(stub.requests[1])
    assert "unknown-probe" in feedback, feedback
    assert "sys_enter_openat" in feedback, feedback  # the suggestion
    plain = final_plain(cell)
    assert "attempt 1: 1 error(s)" in plain and "accepted at attempt 2" in plain, plain
    html = final_html(cell)
    assert "attempt 1 failed" in html and "sys_enter_opnat" in html  # kept in the history


def test_three_failures_ask_for_a_hint_and_the_hint_reaches_the_model(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([reply(TYPO), reply(TYPO), reply(TYPO), reply(GOOD)])
    use_stub(k, stub)
    request = "who opens /etc files, model test three"
    cell = k.run(f"%%nl --no-load\n{request}", timeout=120)
    assert cell.errors and cell.error["ename"] == "NeedsHint", cell.describe()
    assert "--hint" in strip_ansi(cell.traceback_text)
    assert next_input(cell) is None
    assert len(stub.requests) == 3
    cell = k.run(f"%%nl --no-load --hint 'the event is sys_enter_openat'\n{request}", timeout=120)
    assert not cell.errors, cell.describe()
    assert "the event is sys_enter_openat" in user_messages(stub.requests[3])


def test_endpoint_down_says_how_to_go_offline(k: KernelSession) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cell = k.run(f"%llm --base-url http://127.0.0.1:{port}/v1 --model nothing", timeout=30)
    assert not cell.errors, cell.describe()
    cell = k.run("%%nl --no-load\ncount reads by process, endpoint down", timeout=60)
    assert cell.errors and cell.error["ename"] == "LlmUnavailable", cell.describe()
    assert "--offline" in strip_ansi(cell.traceback_text)


def test_timeout_then_success(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([delayed(5, GOOD), reply(GOOD)])
    use_stub(k, stub, "--timeout 1s")
    t = time.monotonic()
    cell = k.run("%%nl --no-load\nopens under /etc, timeout test", timeout=60)
    assert not cell.errors, cell.describe()
    assert time.monotonic() - t < 5
    assert "accepted at attempt 2" in final_plain(cell)


def test_rate_limited_then_success(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([rate_limited(1), reply(GOOD)])
    use_stub(k, stub)
    cell = k.run("%%nl --no-load\nopens under /etc, rate limit test", timeout=60)
    assert not cell.errors, cell.describe()
    assert len(stub.requests) == 2
    assert "rate" in final_plain(cell).lower()


def test_reply_without_program_gets_told_and_retries(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([reply("I think you should use a tracepoint."), reply(GOOD)])
    use_stub(k, stub)
    cell = k.run("%%nl --no-load\nopens under /etc, no program test", timeout=60)
    assert not cell.errors, cell.describe()
    assert "no program" in user_messages(stub.requests[1]).lower()


def test_rerun_replays_without_calling_the_model(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([reply(GOOD)])
    use_stub(k, stub)
    code = "%%nl --no-load\nopens under /etc, replay test"
    first = k.run(code, timeout=60)
    assert not first.errors, first.describe()
    second = k.run(code, timeout=60)
    assert not second.errors, second.describe()
    assert len(stub.requests) == 1  # no second call
    assert "answered before" in final_plain(second)
    assert next_input(first) is not None
    assert next_input(second) is None  # not inserted twice in one session


def test_interrupt_while_the_model_writes(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([stall(3)])
    use_stub(k, stub)
    cell = k.execute("%%nl --no-load\nopens under /etc, interrupt test")
    k.wait_for_output(cell, lambda c: any("writing" in u["data"]["text/plain"] for u in c.updates), timeout=30)
    k.interrupt()
    k.wait(cell, timeout=15)
    assert cell.errors and cell.error["ename"] == "Interrupted", cell.describe()
    assert k.run("%llm", timeout=30).displays  # still answering


def test_llm_magic_shows_offline_and_refuses_bad_settings(k: KernelSession) -> None:
    text = k.run("%llm", timeout=60).displays[0]["data"]["text/plain"]
    assert "offline" in text and "KGENT_LLM_BASE_URL" in text, text
    assert "verified request/program pairs" in text
    cell = k.run("%llm --base-url http://127.0.0.1:1/v1", timeout=30)
    assert cell.errors and "--model" in cell.error["evalue"], cell.describe()


# ---------------------------------------------------------------------------------------
# Verification (issue 5): annotations, verdicts and counterexamples in the notebook

IPV4_ONLY = """tracepoint:sock:inet_sock_set_state
/args->family == 2/
{
    printf("%d -> %d\\n", args->oldstate, args->newstate);
}"""

BOTH_FAMILIES = """tracepoint:sock:inet_sock_set_state
/args->family == 2 || args->family == 10/
{
    printf("%d -> %d\\n", args->oldstate, args->newstate);
}"""


def fence(program: str) -> str:
    return f"```bpftrace\n{program}\n```"


def test_a_refuted_program_is_repaired_and_the_verdicts_are_shown(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([reply(fence(IPV4_ONLY)), reply(fence(BOTH_FAMILIES))])
    use_stub(k, stub)
    cell = k.run("%%nl --no-load\nshow TCP state changes of IPv4 and IPv6 connections", timeout=120)
    assert not cell.errors, cell.describe()
    # Each candidate that passed the checks was sent for annotation, then verified.
    assert len(stub.requests) == 2 and len(stub.comprehension_requests) == 2
    assert "inet_sock_set_state" in user_messages(stub.comprehension_requests[0])
    # The refutation reached the model, with the rule and the program as verified.
    feedback = user_messages(stub.requests[1])
    assert "the verifier refuted 1 assertion" in feedback, feedback
    assert "rule address-family" in feedback and "assert(10 == 2" in feedback, feedback
    assert "counterexample: it fails for every event that reaches it" in feedback, feedback

    html = final_html(cell)
    # The accepted program as verified: annotations tagged by origin, verdicts inline.
    assert "Verification: 2 proved" in html, html
    assert "[assume · spec tracepoint:sock:inet_sock_set_state]" in html, html
    assert "[assert · rule address-family]" in html, html
    assert "[✓ proved]" in html, html
    # The verification trace, collapsible: the refuted attempt, then the proved one.
    assert "<summary>Verification trace: 2 run(s)" in html, html
    trace = html[html.index("Verification trace"):]
    assert "attempt 1: 1 proved, 1 refuted" in trace, trace
    assert "attempt 2: 2 proved" in trace, trace
    # The failed attempt in the history: its annotated program with the counterexample.
    assert "attempt 1 failed: the verifier refuted" in html, html
    assert "↳ counterexample: it fails for every event that reaches it" in html, html
    plain = final_plain(cell)
    assert "// assert · rule address-family; ✓ proved" in plain, plain
    # The pinned cell holds the program without annotations: it is what runs.
    pinned = next_input(cell)
    assert pinned and "assert(" not in pinned and "args->family == 10" in pinned, pinned


def test_the_model_s_assertion_is_refuted_with_concrete_inputs(k: KernelSession, llm_stub) -> None:
    loose = "tracepoint:syscalls:sys_exit_read\n/args->ret > 1000/\n{\n    printf(\"%d KB\\n\", args->ret / 1024);\n}"
    tight = loose.replace("> 1000/", "> 1048576/")
    check = '    assert(args->ret > 1048576, "only reads over 1 MB are printed");\n}'
    stub = llm_stub([reply(fence(loose)), reply(fence(tight))])
    stub.script_comprehensions(reply(fence(loose.replace("\n}", "\n" + check))),
                               reply(fence(tight.replace("\n}", "\n" + check))))
    use_stub(k, stub)
    cell = k.run("%%nl --no-load\nshow reads that return more than 1 MB, with the size in KB", timeout=120)
    assert not cell.errors, cell.describe()
    feedback = user_messages(stub.requests[1])
    assert "(request: " in feedback and "only reads over 1 MB" in feedback, feedback
    assert "counterexample: in tracepoint:syscalls:sys_exit_read: args->ret = " in feedback, feedback
    assert "before the assertion:\n    " in feedback and " KB" in feedback, feedback
    html = final_html(cell)
    assert "[assert · request]" in html and "request annotations by scripted" in html, html
    # Under the refuted assertion in the history: the inputs and the line it printed.
    assert "↳ counterexample: in tracepoint:syscalls:sys_exit_read: args-&gt;ret = " in html, html
    assert "↳   it printed: " in html and " KB</span>" in html, html


def test_no_verify_skips_annotation(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([reply(fence(IPV4_ONLY))])
    use_stub(k, stub)
    cell = k.run("%%nl --no-load --no-verify\nshow TCP state changes of IPv4 and IPv6 connections, no verify", timeout=120)
    assert not cell.errors, cell.describe()
    assert len(stub.comprehension_requests) == 0
    html = final_html(cell)
    assert "Verification" not in html, html


def test_interrupt_while_the_model_annotates(k: KernelSession, llm_stub) -> None:
    stub = llm_stub([reply(fence(BOTH_FAMILIES)), reply(fence(BOTH_FAMILIES))])
    stub.script_comprehensions(delayed(30, fence(BOTH_FAMILIES)))
    use_stub(k, stub)
    request = "show TCP state changes of IPv4 and IPv6 connections, interrupted"
    cell = k.execute(f"%%nl --no-load\n{request}")
    k.wait_for_output(cell, lambda c: any("the model annotates" in u["data"]["text/plain"]
                                          for u in c.updates), timeout=30)
    k.interrupt()
    k.wait(cell, timeout=15)
    assert cell.errors and cell.error["ename"] == "Interrupted", cell.describe()
    # The next request is annotated (echoed back) and verified as usual.
    cell = k.run(f"%%nl --no-load\n{request}, again", timeout=120)
    assert not cell.errors, cell.describe()
    assert "Verification: 2 proved" in final_plain(cell), final_plain(cell)
