"""The Jupyter messaging protocol, checked with jupyter_kernel_test against the real kernel.

Every sample attribute of `KernelTests` is filled, so none of its tests is skipped for lack
of a sample. A few extra checks cover what the generic suite cannot express (the chart of a
histogram, live map displays, comm_info, the IOPub welcome message).
"""

from __future__ import annotations

import re
import unittest

import jupyter_kernel_test as jkt
from jupyter_kernel_test.msgspec_v5 import validate_message

HELLO = '%%bpftrace\nBEGIN { printf("hello, world\\n"); exit(); }'
# A printed map: a display_data with text/html while running, updated at exit.
PRINTED_MAP = '%%bpftrace\nBEGIN { @m["a"] = 1; print(@m); exit(); }'
# A histogram at exit: an image/svg+xml chart with a text/plain fallback.
HISTOGRAM = "%%bpftrace\nBEGIN { @h = hist(5); @h = hist(100); exit(); }"
# Non-histogram maps at exit: one execute_result.
COUNT_MAP = '%%bpftrace\nBEGIN { @opens["x"] = count(); exit(); }'


class KgentKernelTests(jkt.KernelTests):
    kernel_name = "kgent"
    language_name = "bpftrace"
    file_extension = ".bt"

    code_hello_world = HELLO
    # A runtime error of bpftrace (not a failure of the program) goes to stderr.
    code_stderr = '%%bpftrace\nBEGIN { cat("/nonexistent"); exit(); }'

    completion_samples = [
        {"text": "%lsm", "matches": {"%lsmagic"}},
        {"text": "%%bpftrace\nBEGIN { prin", "matches": {"print", "printf"}},
        {"text": "%%bpftrace\nBEGIN { ks", "matches": {"kstack", "ksym"}},
        {"text": "tracepo", "matches": {"tracepoint:"}},
        {
            "text": "tracepoint:syscalls:sys_enter_opena",
            "matches": {"tracepoint:syscalls:sys_enter_openat", "tracepoint:syscalls:sys_enter_openat2"},
        },
        {
            "text": '%%bpftrace\ntracepoint:syscalls:sys_enter_openat { printf("%s\\n", str(args->fi',
            "matches": {"filename"},
        },
        {"text": "%%bpftrace\nBEGIN { @count = 1; @co", "matches": {"@count"}},
    ]

    complete_code_samples = [
        HELLO,
        "BEGIN { exit(); }",
        '%%bpftrace\nBEGIN { printf("}{\\n"); exit(); } // {',
        "%lsmagic",
        "%probes t:syscalls:*",
    ]
    incomplete_code_samples = [
        "%%bpftrace\nBEGIN {",
        "%%bpftrace\nBEGIN {\n  if (1) {",
        "tracepoint:syscalls:sys_enter_openat {\n  printf(",
    ]
    invalid_code_samples = [
        "%%bpftrace\nBEGIN } ",
        "%%bpftrace\nBEGIN { (] }",
        "%nosuchmagic",
    ]

    code_page_something = "tracepoint:syscalls:sys_enter_openat?"

    # A syntax error: one error output, nothing else.
    code_generate_error = '%%bpftrace\nBEGIN { printf("x\\n") exit(); }'

    code_execute_result = [{"code": COUNT_MAP, "mime": "text/plain", "result": "@opens[x]: 1"}]

    # Every display_data of the cell must carry the mime type, and every bpftrace cell ends
    # with a summary display (text/html, text/markdown, text/plain; no picture), so the
    # chart's image/svg+xml is checked in test_histogram_is_a_chart instead.
    code_display_data = [
        {"code": PRINTED_MAP, "mime": "text/html"},
        {"code": HISTOGRAM, "mime": "text/plain"},
        {"code": "%lsmagic", "mime": "text/html"},
        {"code": "%probes tracepoint:syscalls:sys_enter_openat*", "mime": "text/plain"},
        {"code": "%help", "mime": "text/markdown"},
    ]

    # Matches COUNT_MAP only (history search is a glob over whole inputs).
    code_history_pattern = "*@opens*"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "printf"

    # --watch clears the output (wait=True) at every time() event.
    code_clear_output = (
        '%%bpftrace --watch\ninterval:ms:100 { time("%H:%M:%S\\n"); @n++; if (@n >= 3) { exit(); } }'
    )

    # -- beyond the generic suite ----------------------------------------------------

    def test_kernel_info_details(self) -> None:
        self.flush_channels()
        msg_id = self.kc.kernel_info()
        reply = self.kc.get_shell_msg(timeout=jkt.TIMEOUT)
        validate_message(reply, "kernel_info_reply", msg_id)
        c = reply["content"]
        self.assertEqual(c["implementation"], "kgent")
        self.assertEqual(c["protocol_version"].split(".")[0], "5")
        self.assertEqual(c["language_info"]["mimetype"], "text/x-bpftrace")
        self.assertIn("bpftrace", c["banner"])

    def test_histogram_is_a_chart(self) -> None:
        self.flush_channels()
        reply, outputs = self.execute_helper(HISTOGRAM)
        self.assertEqual(reply["content"]["status"], "ok")
        charts = [m for m in outputs if m["msg_type"] == "display_data" and "image/svg+xml" in m["content"]["data"]]
        self.assertEqual(len(charts), 1, [m["msg_type"] for m in outputs])
        data = charts[0]["content"]["data"]
        self.assertIn("<svg", data["image/svg+xml"])
        self.assertIn("@h", data["text/plain"])
        self.assertRegex(data["text/plain"], r"\[4, 8\)\s+1 \|@+\|")
        self.assertRegex(data["text/plain"], r"\[64, 128\)\s+1 \|@+\|")

    def test_printed_map_is_a_live_display_updated_at_exit(self) -> None:
        self.flush_channels()
        reply, outputs = self.execute_helper(PRINTED_MAP)
        self.assertEqual(reply["content"]["status"], "ok")
        live = [m for m in outputs if m["msg_type"] == "display_data" and (m["content"].get("transient") or {}).get("display_id")]
        self.assertEqual(len(live), 1, [m["msg_type"] for m in outputs])
        display_id = live[0]["content"]["transient"]["display_id"]
        self.assertEqual(live[0]["content"]["data"]["text/plain"], "@m[a]: 1")
        updates = [m for m in outputs if m["msg_type"] == "update_display_data"]
        self.assertTrue(updates, "the map printed while running is not updated at exit")
        for u in updates:
            self.assertEqual(u["content"]["transient"]["display_id"], display_id)
        # Shown in its live display, the map is not repeated as an execute_result.
        self.assertFalse([m for m in outputs if m["msg_type"] == "execute_result"])

    def test_summary_ends_every_bpftrace_cell(self) -> None:
        self.flush_channels()
        reply, outputs = self.execute_helper(HELLO)
        self.assertEqual(reply["content"]["status"], "ok")
        last = outputs[-1]
        self.assertEqual(last["msg_type"], "display_data")
        self.assertEqual(set(last["content"]["data"]), {"text/html", "text/markdown", "text/plain"})
        self.assertRegex(
            last["content"]["data"]["text/plain"],
            r"^finished after \d+\.\d s · 1 event · 1 probe\nfull output: /\S+\.log$",
        )

    def test_stdout_without_magic(self) -> None:
        self.flush_channels()
        reply, outputs = self.execute_helper('BEGIN { printf("no magic needed\\n"); exit(); }')
        self.assertEqual(reply["content"]["status"], "ok")
        text = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")
        self.assertEqual(text, "no magic needed\n")

    def test_comm_info(self) -> None:
        self.flush_channels()
        msg_id = self.kc.comm_info()
        reply = self.kc.get_shell_msg(timeout=jkt.TIMEOUT)
        validate_message(reply, "comm_info_reply", msg_id)
        self.assertEqual(reply["content"]["comms"], {})

    def test_inspect_probe_fields(self) -> None:
        self.flush_channels()
        code = "tracepoint:syscalls:sys_enter_openat"
        msg_id = self.kc.inspect(code, 5)
        reply = self.kc.get_shell_msg(timeout=jkt.TIMEOUT)
        validate_message(reply, "inspect_reply", msg_id)
        self.assertTrue(reply["content"]["found"])
        plain = reply["content"]["data"]["text/plain"]
        self.assertRegex(plain, r"const char \*\s*filename;")
        self.assertRegex(plain, r"int flags;")

    def test_complete_cursor_positions(self) -> None:
        self.flush_channels()
        code = "%%bpftrace\nBEGIN { prin"
        msg_id = self.kc.complete(code)
        reply = self.kc.get_shell_msg(timeout=jkt.TIMEOUT)
        validate_message(reply, "complete_reply", msg_id)
        self.assertEqual(reply["content"]["cursor_end"], len(code))
        self.assertEqual(reply["content"]["cursor_start"], len(code) - len("prin"))

    def test_execution_count_increases(self) -> None:
        self.flush_channels()
        first, _ = self.execute_helper("%lsmagic")
        second, _ = self.execute_helper("%lsmagic")
        self.assertEqual(second["content"]["execution_count"], first["content"]["execution_count"] + 1)

    def test_pager_shows_probe_fields(self) -> None:
        self.flush_channels()
        reply, _ = self.execute_helper(self.code_page_something)
        page = reply["content"]["payload"][0]["data"]["text/plain"]
        self.assertTrue(page.startswith("tracepoint:syscalls:sys_enter_openat\n"), page)
        self.assertTrue(re.search(r"filename;", page), page)


class KgentIopubWelcomeTests(jkt.IopubWelcomeTests):
    kernel_name = "kgent"
    support_iopub_welcome = True


if __name__ == "__main__":
    unittest.main()
