"""Every notebook in notebooks/ runs top to bottom on the kgent kernel with nbclient (as
`jupyter nbconvert --execute` or papermill would), without errors, and the tour notebook
shows the events of its own workload.

Cells tagged `raises-exception` (nbclient's convention) may end with an error; every other
cell must not produce one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import ROOT, SUMMARY_RE, strip_ansi

NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 120

_executed: dict[Path, Any] = {}


def execute(path: Path, out_dir: Path) -> Any:
    """Executes a notebook once per test session; saves the result for inspection."""
    if path not in _executed:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            kernel_name="kgent",
            timeout=CELL_TIMEOUT,
            startup_timeout=60,
            resources={"metadata": {"path": str(out_dir)}},
        )
        try:
            client.execute()
        except CellExecutionError as e:
            nbformat.write(nb, out_dir / path.name)
            raise AssertionError(f"{path.name}: a cell failed (executed copy: {out_dir / path.name}):\n{e}") from None
        nbformat.write(nb, out_dir / path.name)
        _executed[path] = nb
    return _executed[path]


def code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def source(cell: Any) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def stream_text(cell: Any, name: str = "stdout") -> str:
    return "".join(
        o.text if isinstance(o.text, str) else "".join(o.text)
        for o in cell.outputs
        if o.output_type == "stream" and o.name == name
    )


def data_texts(cell: Any, mime: str = "text/plain", types: tuple[str, ...] = ("display_data", "execute_result")) -> list[str]:
    out = []
    for o in cell.outputs:
        if o.output_type in types and mime in o.data:
            v = o.data[mime]
            out.append(v if isinstance(v, str) else "".join(v))
    return out


def the_cell(nb: Any, *needles: str) -> Any:
    """The one code cell whose source contains all `needles`."""
    found = [c for c in code_cells(nb) if all(n in source(c) for n in needles)]
    assert len(found) == 1, f"expected one cell containing {needles}, found {len(found)}; did the notebook change?"
    return found[0]


def is_bpftrace_cell(cell: Any) -> bool:
    s = source(cell).lstrip()
    return s.startswith("%%bpftrace") or bool(re.match(r"(BEGIN|END|tracepoint:|t:|interval:|profile:|uprobe:)", s))


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("executed-notebooks")


# ---------------------------------------------------------------------------------------
# Checks for every notebook


@pytest.mark.parametrize(
    "path", NOTEBOOKS or [pytest.param(None, id="no-notebooks")], ids=lambda p: p.name if p else "none"
)
def test_notebook_runs_without_errors(path: Path | None, out_dir: Path) -> None:
    assert path is not None, f"no notebooks in {NOTEBOOK_DIR}"
    nb = execute(path, out_dir)
    assert nb.metadata.kernelspec.name == "kgent", nb.metadata.kernelspec
    for i, cell in enumerate(code_cells(nb)):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        tags = cell.metadata.get("tags", [])
        if "raises-exception" in tags:
            continue
        assert not errors, (
            f"{path.name} code cell {i}:\n{source(cell)}\n-> "
            + "\n".join(f"{e.ename}: {strip_ansi(e.evalue)}" for e in errors)
        )
        if is_bpftrace_cell(cell):
            # Every tracing cell ends with its summary; none hit the kernel's kill path.
            summaries = [t for t in data_texts(cell, types=("display_data",)) if SUMMARY_RE.match(t)]
            assert len(summaries) == 1, f"{path.name} code cell {i} has {len(summaries)} summaries:\n{source(cell)}"
            assert not summaries[0].startswith("killed"), summaries[0]
        assert cell.execution_count is not None


# ---------------------------------------------------------------------------------------
# 01-tracing-basics: the events of the notebook's own workloads are in the outputs


def check_tracing_basics(nb: Any) -> None:
    # %probes lists the scheduler's process tracepoints.
    probes = "\n".join(data_texts(the_cell(nb, "%probes t:sched:sched_process_*")))
    for tp in ("exec", "exit", "fork"):
        assert f"tracepoint:sched:sched_process_{tp}\n" in probes, probes

    # %probes -v shows typed fields.
    fields = "\n".join(data_texts(the_cell(nb, "%probes -v t:syscalls:sys_enter_openat")))
    assert re.search(r"const char \*\s*filename;", fields), fields

    # The workload writes /tmp/kgent-tour-{1,2,3}.txt with sh and reads them with cat.
    opens = stream_text(the_cell(nb, "sys_enter_openat", "kgent-tour"))
    for i in (1, 2, 3):
        path = f"/tmp/kgent-tour-{i}.txt"
        assert re.search(rf"^\d+\s+sh\s+{re.escape(path)}$", opens, re.M), opens
        assert re.search(rf"^\d+\s+cat\s+{re.escape(path)}$", opens, re.M), opens
    # The predicate kept only the tour files.
    assert all("/tmp/kgent-tour-" in line for line in opens.splitlines()), opens

    # The workload execs uname and id.
    execs = stream_text(the_cell(nb, "sched_process_exec"))
    assert re.search(r"^\d+\s+\S*/uname$", execs, re.M), execs
    assert re.search(r"^\d+\s+\S*/id$", execs, re.M), execs

    # Syscalls counted per workload program, as a table at the end.
    counting = the_cell(nb, "@syscalls[comm] = count()")
    results = [o for o in counting.outputs if o.output_type == "execute_result"]
    assert len(results) == 1, counting.outputs
    table = "".join(results[0].data["text/plain"])
    for comm in ("ls", "gzip", "sort"):
        m = re.search(rf"^@syscalls\[{comm}\]:\s+(\d+)$", table, re.M)
        assert m and int(m.group(1)) > 0, table
    assert "text/html" in results[0].data

    # The histogram of dd's reads is a chart; dd read 2000 blocks of 4 KiB.
    hist_cell = the_cell(nb, "@bytes_read = hist(")
    charts = [o for o in hist_cell.outputs if o.output_type == "display_data" and "image/svg+xml" in o.data]
    assert len(charts) == 1, [o.output_type for o in hist_cell.outputs]
    assert "<svg" in "".join(charts[0].data["image/svg+xml"])
    chart_text = "".join(charts[0].data["text/plain"])
    assert chart_text.startswith("@bytes_read:"), chart_text
    # (The predicate is comm == "dd", so another dd on the machine may add to the counts.)
    m = re.search(r"^\[4K, 8K\)\s+(\d+) \|@+ *\|$", chart_text, re.M)
    assert m and int(m.group(1)) >= 2000, chart_text

    # The periodically printed map is one display (updated in place), not one per print.
    live = the_cell(nb, "print(@per_process")
    tables = [t for t in data_texts(live, types=("display_data",)) if t.startswith("@per_process[")]
    assert len(tables) == 1, data_texts(live)
    assert len(tables[0].splitlines()) <= 5, tables[0]
    summary = [t for t in data_texts(live) if SUMMARY_RE.match(t)][0]
    assert summary.startswith("detached at the timeout"), summary

    # The kprobe cell is refused before running, with alternatives.
    kprobe = the_cell(nb, "kprobe:do_nanosleep")
    errors = [o for o in kprobe.outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "ProbeTypeUnavailable", kprobe.outputs
    assert "Use instead:" in strip_ansi("\n".join(errors[0].traceback))
    assert "raises-exception" in kprobe.metadata.get("tags", [])


def check_plain_english(nb: Any) -> None:
    # No model in CI: %llm says so and names the library.
    llm = "\n".join(data_texts(the_cell(nb, "%llm")))
    assert "offline" in llm and "verified request/program pairs" in llm, llm

    # The request's one display was updated in place to the final answer (nbclient
    # applies update_display_data to the output with that display_id).
    request = the_cell(nb, "%%nl --offline\nshow which processes open files under /etc")
    shown = data_texts(request, types=("display_data",))
    assert len(shown) == 1, shown
    final = shown[0]
    assert "retrieved from the verified example library (files-opens-under-etc)" in final, final
    assert "synthesised" not in final
    html = "".join(data_texts(request, mime="text/html", types=("display_data",)))
    assert "<details>" in html and "<span style=" in html

    # The pinned cell holds exactly the program Kgent proposes on this machine (the
    # notebook is reproducible without a model); regenerate it if the library changed.
    pinned = the_cell(nb, "// Request: show which processes open files under /etc")
    pinned_body = source(pinned).split("\n", 1)[1].strip()
    shown_block = final.split("\n\n", 1)[1].split("\n\nTo attach it", 1)[0]
    # Shown as verified: with the contract's assumptions, each tagged with its origin.
    assert shown_block.startswith("Verification: "), shown_block
    assert "// assume · spec " in shown_block, shown_block
    proposed_program = "\n".join(
        line for line in shown_block.splitlines()[1:]
        if not re.match(r"\s*(assume|assert)\(", line) and not re.match(r"\s*//   ", line)
    ).strip()
    assert proposed_program in pinned_body, (proposed_program, pinned_body)

    # Verified against the request: the contract's assumption and the rule's assertion,
    # each tagged with where it came from, the assertion proved, the trace folded away.
    verified = the_cell(nb, "histogram of how many bytes each read() returns")
    shown = data_texts(verified, types=("display_data",))
    assert len(shown) == 1, shown
    assert "Verification: 1 proved" in shown[0], shown[0]
    assert "// assume · spec tracepoint:syscalls:sys_exit_read" in shown[0], shown[0]
    assert "// assert · rule errno-aggregated; ✓ proved" in shown[0], shown[0]
    html = "".join(data_texts(verified, mime="text/html", types=("display_data",)))
    assert "<summary>Verification trace: 1 run(s)" in html, html
    assert "Not verified" not in final and "Not verified" not in shown[0]

    # It traced its own workload: cat opening /etc/hostname.
    opens = stream_text(pinned)
    assert re.search(r"^\d+\s+cat\s+/etc/hostname$", opens, re.M), opens

    # --run: checked, attached, and the map printed when it stopped.
    run = the_cell(nb, "--run --timeout 3s")
    results = ["".join(o.data["text/plain"]) for o in run.outputs if o.output_type == "execute_result"]
    assert len(results) == 1 and re.search(r"^@\w+\[\S+\]:\s+\d+$", results[0], re.M), run.outputs
    summary = [t for t in data_texts(run) if SUMMARY_RE.match(t)]
    assert summary and summary[0].startswith("detached at the timeout"), data_texts(run)


SPECIFIC_CHECKS: dict[str, Callable[[Any], None]] = {
    "01-tracing-basics.ipynb": check_tracing_basics,
    "02-plain-english.ipynb": check_plain_english,
}


def test_tracing_basics_notebook_exists() -> None:
    assert (NOTEBOOK_DIR / "01-tracing-basics.ipynb").is_file()


@pytest.mark.parametrize("name", sorted(SPECIFIC_CHECKS))
def test_notebook_shows_its_own_events(name: str, out_dir: Path) -> None:
    path = NOTEBOOK_DIR / name
    assert path.is_file(), f"{path} is missing"
    SPECIFIC_CHECKS[name](execute(path, out_dir))
