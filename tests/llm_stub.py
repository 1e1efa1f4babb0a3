"""`ScriptedLLM`: an OpenAI-compatible chat server on 127.0.0.1 that answers from a script.

The Python twin of `llm/src/testing.rs` (`ScriptedServer`), so end-to-end tests can point
the real `kgent` kernel at a real HTTP server whose replies they choose. Standard library
only (http.server + threading).

    with ScriptedLLM([reply("kprobe:do_nanosleep { exit(); }"), rate_limited(3)]) as llm:
        env = {"KGENT_LLM_BASE_URL": llm.base_url, ...}
        ...
        assert llm.requests[0]["messages"][-1]["content"] == "..."

Routes:
- `POST .../chat/completions` takes the next script, in order, and answers as it says:
  server-sent events when the body has `"stream": true`, one JSON object otherwise, in
  the shapes the OpenAI API uses. When the scripts have run out the answer is a 500
  whose error message says "no more scripted replies".
- `GET .../models` lists one model, "scripted".
- `POST .../embeddings` answers with deterministic hashed bag-of-words vectors
  (`embed_text`), in the order of the inputs, each with its `index`. It never consumes
  chat scripts and is recorded separately (`embedding_requests`). Like the Rust server it
  has its own, normally empty, queue (`script_embeddings`) for failures: a queued
  `rate_limited(2)` answers the next embeddings request, then vectors again.

Comprehension requests (Kgent asking the model to annotate a program that passed the
checks: the system message starts with `COMPREHENSION_MARK`) are answered from their own
queue (`script_comprehensions`) and recorded separately (`comprehension_requests`), so
that scripts and counts of synthesis requests stay as they were. With that queue empty,
the answer is the program Kgent sent, unchanged, in a bpftrace fence: the model found
nothing to assert. (The Rust server has no such routing: its tests script the annotation
replies in sequence with the others.)

Routes are matched on how the path ends (as the Rust server does), so a base URL with or
without `/v1` both work. Connections are HTTP/1.1 keep-alive; streamed bodies use chunked
transfer encoding, like OpenAI. `stop()` closes every connection, releases delayed and
stalled handlers, and returns within a bounded time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import select
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Callable, Iterable, Union

__all__ = [
    "ScriptedLLM",
    "RecordedRequest",
    "Script",
    "Reply",
    "NonStreaming",
    "Status",
    "WithHeaders",
    "Delay",
    "Stall",
    "Garbage",
    "Embeddings",
    "reply",
    "reply_without_usage",
    "non_streaming",
    "status",
    "with_headers",
    "rate_limited",
    "server_error",
    "auth_error",
    "delayed",
    "stall",
    "garbage",
    "embeddings",
    "pieces",
    "embed_text",
    "MODEL_ID",
    "EMBEDDING_DIM",
    "COMPREHENSION_MARK",
]

#: The one model `GET /v1/models` lists, and the `model` echoed when a request names none.
MODEL_ID = "scripted"
#: How the system message of Kgent's comprehension request begins.
COMPREHENSION_MARK = "You annotate bpftrace programs for a verifier"
#: Default length of the vectors `POST /v1/embeddings` returns.
EMBEDDING_DIM = 64
#: A fixed `created` timestamp, as in the Rust server, so replies are reproducible.
CREATED = 1_700_000_000
#: How often waiting handlers look at their client and at stop(); bounds stop()'s latency.
_POLL = 0.05
#: stop() waits at most this long for server and handler threads (they are daemons anyway).
_JOIN_TIMEOUT = 5.0


# ---------------------------------------------------------------------------------------
# Scripts: how the server answers one chat request


@dataclass(frozen=True)
class Reply:
    """A normal reply with `text`, streamed or not as the request asks. With `usage`
    (prompt tokens: words in the messages; completion tokens: streamed pieces); when
    streaming, usage comes in a last chunk only if the request set
    `stream_options.include_usage`, as OpenAI does."""

    text: str
    usage: bool = True


@dataclass(frozen=True)
class NonStreaming:
    """A plain JSON reply even when the request asked to stream (servers that ignore `stream`)."""

    text: str


@dataclass(frozen=True)
class Status:
    """An HTTP status with this body (a dict is sent as JSON) and extra headers."""

    status: int
    body: Union[str, dict, list] = ""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WithHeaders:
    """The inner answer with extra response headers (they replace defaults of the same name)."""

    headers: tuple[tuple[str, str], ...]
    inner: "Script"


@dataclass(frozen=True)
class Delay:
    """Wait `seconds` before sending anything, then answer with `inner`. The wait ends early,
    without an answer, if the client disconnects or the server stops."""

    seconds: float
    inner: "Script"


@dataclass(frozen=True)
class Stall:
    """Send the headers and `after_tokens` pieces of a reply, then nothing, without closing
    the connection, until the client disconnects or the server stops."""

    after_tokens: int = 0


@dataclass(frozen=True)
class Garbage:
    """Status 200 with this body, labelled as JSON (or as an event stream when the request
    asked to stream)."""

    body: str


@dataclass(frozen=True)
class Embeddings:
    """For `POST /v1/embeddings`: the normal answer, one vector per input (what the server
    does when no embeddings script is queued). A chat request given it gets a 500."""


Script = Union[Reply, NonStreaming, Status, WithHeaders, Delay, Stall, Garbage, Embeddings]
_SCRIPT_TYPES = (Reply, NonStreaming, Status, WithHeaders, Delay, Stall, Garbage, Embeddings)


def reply(text: str) -> Reply:
    """A normal reply with usage."""
    return Reply(text)


def reply_without_usage(text: str) -> Reply:
    """A normal reply without any usage, as many local servers answer."""
    return Reply(text, usage=False)


def non_streaming(text: str) -> NonStreaming:
    """A JSON reply even to a streaming request."""
    return NonStreaming(text)


def status(code: int, body: Union[str, dict, list] = "", headers: Iterable[tuple[str, str]] = ()) -> Status:
    """Any status and body, e.g. `status(400, {"error": {...}})`."""
    return Status(code, body, tuple(headers))


def with_headers(headers: Union[dict[str, str], Iterable[tuple[str, str]]], inner: Script) -> WithHeaders:
    """`inner` with extra response headers."""
    items = headers.items() if isinstance(headers, dict) else headers
    return WithHeaders(tuple((str(k), str(v)) for k, v in items), inner)


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    """The error object the OpenAI API answers failures with."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def rate_limited(retry_after_secs: float) -> Status:
    """`429 Too Many Requests` with `Retry-After: retry_after_secs` and an OpenAI-style error
    body (the same body the Rust server sends). Whole seconds are sent as an integer, which
    is what HTTP allows; a fraction is sent as is (the OpenAI clients parse it)."""
    secs = float(retry_after_secs)
    header = str(int(secs)) if secs.is_integer() else repr(secs)
    return Status(
        429,
        _error_body("Rate limit reached; please try again later.", "requests", "rate_limit_exceeded"),
        (("Retry-After", header),),
    )


def server_error(status: int = 500, message: str = "The server had an error while processing your request.") -> Status:
    """A 5xx (or any `status`) with an OpenAI-style error body."""
    return Status(status, _error_body(message, "server_error", None))


def auth_error(message: str = "Incorrect API key provided.") -> Status:
    """`401 Unauthorized` with the error body OpenAI sends for a bad key."""
    return Status(401, _error_body(message, "invalid_request_error", "invalid_api_key"))


def delayed(seconds: float, inner: Script | str) -> Delay:
    """`inner` (a script, or text for `reply(text)`) after `seconds`; for timeout tests."""
    return Delay(float(seconds), _as_script(inner))


def stall(after_tokens: int = 0) -> Stall:
    """A reply that stops after `after_tokens` pieces and hangs until the client
    disconnects or stop() is called; for idle-timeout and cancellation tests."""
    return Stall(int(after_tokens))


def garbage(body: str) -> Garbage:
    """Status 200 with a body that is not what the client expects."""
    return Garbage(body)


def embeddings() -> Embeddings:
    """The normal embeddings answer, e.g. `delayed(1, embeddings())` in `script_embeddings`."""
    return Embeddings()


def _as_script(s: Script | str) -> Script:
    """Plain strings are shorthand for `reply(text)`."""
    if isinstance(s, str):
        return Reply(s)
    if not isinstance(s, _SCRIPT_TYPES):
        raise TypeError(f"not a script: {s!r}")
    return s


# ---------------------------------------------------------------------------------------
# Shapes of the OpenAI API


def _is_comprehension(body: Any) -> bool:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return False
    return str(messages[0].get("content", "")).startswith(COMPREHENSION_MARK)


def _echo_program(body: Any) -> Script:
    """The program of a comprehension request, fenced: annotations of nothing."""
    text = str(body["messages"][-1].get("content", ""))
    found = re.search(r"```bpftrace\n(.*?)\n```", text, re.S)
    return Reply(text=f"```bpftrace\n{found.group(1) if found else ''}\n```")


def pieces(text: str) -> list[str]:
    """The text in pieces as the server streams it: words with their trailing whitespace
    (Rust's `split_inclusive(char::is_whitespace)`), so that "".join(pieces(t)) == t."""
    return re.findall(r"\S*\s|\S+", text)


@dataclass
class _Ask:
    """What a chat request asked for."""

    stream: bool
    include_usage: bool
    model: str
    prompt_words: int

    @classmethod
    def of(cls, body: Any) -> "_Ask":
        body = body if isinstance(body, dict) else {}
        opts = body.get("stream_options")
        model = body.get("model")
        words = 0
        for m in body.get("messages") or []:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                words += len(content.split())
        return cls(
            stream=body.get("stream") is True,
            include_usage=isinstance(opts, dict) and opts.get("include_usage") is True,
            model=model if isinstance(model, str) else MODEL_ID,
            prompt_words=words,
        )


def _usage(ask: _Ask, completion: int) -> dict:
    return {
        "prompt_tokens": ask.prompt_words,
        "completion_tokens": completion,
        "total_tokens": ask.prompt_words + completion,
    }


def _chunk(ask: _Ask, n: int, delta: dict, finish: str | None) -> dict:
    c: dict[str, Any] = {
        "id": f"chatcmpl-scripted-{n}",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": ask.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if ask.include_usage:
        # OpenAI puts `"usage": null` on every chunk but the last when usage was asked for.
        c["usage"] = None
    return c


def _completion(ask: _Ask, n: int, text: str, usage: bool) -> dict:
    v: dict[str, Any] = {
        "id": f"chatcmpl-scripted-{n}",
        "object": "chat.completion",
        "created": CREATED,
        "model": ask.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": "stop",
        }],
    }
    if usage:
        v["usage"] = _usage(ask, len(pieces(text)))
    return v


def _stream_events(ask: _Ask, n: int, text: str, usage: bool) -> list[dict]:
    """The chunks of a streamed reply, before `data: [DONE]`."""
    parts = pieces(text)
    events = [_chunk(ask, n, {"role": "assistant", "content": ""}, None)]
    events += [_chunk(ask, n, {"content": p}, None) for p in parts]
    events.append(_chunk(ask, n, {}, "stop"))
    if usage and ask.include_usage:
        events.append({
            "id": f"chatcmpl-scripted-{n}",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": ask.model,
            "choices": [],
            "usage": _usage(ask, len(parts)),
        })
    return events


def _sse(event: dict | str) -> bytes:
    data = event if isinstance(event, str) else json.dumps(event)
    return f"data: {data}\n\n".encode()


def embed_text(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """A deterministic unit vector for `text`: a signed, hashed bag of lower-cased words.

    hashlib rather than hash(), which is salted per process: vectors must be the same in
    every run and in every process (the kernel may cache them). Texts sharing words get a
    positive cosine. A text without words gives the zero vector (still finite)."""
    v = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        h = hashlib.blake2b(word.encode(), digest_size=8).digest()
        bucket = int.from_bytes(h[:4], "little") % dim
        sign = 1.0 if h[4] & 1 else -1.0
        v[bucket] += sign
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v] if norm else v


# ---------------------------------------------------------------------------------------
# The server


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received (every route)."""

    method: str
    path: str
    #: Header names in lower case, in the order sent.
    headers: tuple[tuple[str, str], ...]
    #: The JSON body; the raw text when it was not JSON; None when there was no body.
    body: Any

    def header(self, name: str) -> str | None:
        """The first header with this name (case-insensitive)."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


@dataclass
class _State:
    scripts: list[Script]
    embedding_scripts: list[Script]
    recorded: list[RecordedRequest] = field(default_factory=list)
    chat: list[Any] = field(default_factory=list)
    embeddings: list[Any] = field(default_factory=list)
    comprehension_scripts: list[Script] = field(default_factory=list)
    comprehension: list[Any] = field(default_factory=list)
    served: int = 0


class _Abort(Exception):
    """Ends a handler without answering: the connection is closed (stop(), client gone)."""


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections and handler threads, so that
    stop() can close the former and join the latter with a bound."""

    daemon_threads = True
    # ThreadingMixIn's own bookkeeping would make server_close() join every handler thread
    # without a timeout, which hangs on a stalled handler; we keep our own list instead.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, owner: "ScriptedLLM"):
        self.owner = owner
        self.stopping = threading.Event()
        self.conns: set[socket.socket] = set()
        self.threads: list[threading.Thread] = []
        self.conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can take
        # seconds in a sandbox; the name is never used here.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        # Runs on the accept thread, so a connection is registered before stop() can look
        # (stop() first waits for the accept loop to end).
        t = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                             name="scripted-llm-conn", daemon=True)
        with self.conns_lock:
            if self.stopping.is_set():
                self.shutdown_request(request)
                return
            self.conns.add(request)
            self.threads = [x for x in self.threads if x.is_alive()]
            self.threads.append(t)
        t.start()

    def shutdown_request(self, request: socket.socket) -> None:
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal in these tests (timeouts, stalls);
        # anything else is a bug in the stub and is shown.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, _Abort)) or self.stopping.is_set():
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: keep-alive by default; every answer has Content-Length or is chunked.
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedLLM/1"
    disable_nagle_algorithm = True  # streamed chunks go out at once
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: pytest would show every request line on failure

    # -- routing ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        try:
            self._dispatch(method)
        except _Abort:
            self.close_connection = True
        except (ConnectionError, OSError):
            # The client went away (or stop() shut the socket) while we were writing.
            self.close_connection = True

    def _dispatch(self, method: str) -> None:
        raw = self._read_body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        path = self.path.split("?", 1)[0].rstrip("/")
        owner = self.server.owner
        route = None
        if method == "POST" and path.endswith("/chat/completions"):
            route = "chat"
        elif method == "POST" and path.endswith("/embeddings"):
            route = "embeddings"
        elif method == "GET" and path.endswith("/models"):
            route = "models"

        with owner._cond:
            st = owner._state
            st.recorded.append(RecordedRequest(
                method=method,
                path=self.path,
                headers=tuple((k.lower(), v) for k, v in self.headers.items()),
                body=body,
            ))
            st.served += 1
            n = st.served
            script = None
            if route == "chat" and _is_comprehension(body):
                route = "comprehension"
                st.comprehension.append(body)
                script = (st.comprehension_scripts.pop(0) if st.comprehension_scripts
                          else _echo_program(body))
            elif route == "chat":
                st.chat.append(body)
                chats = len(st.chat)
                script = st.scripts.pop(0) if st.scripts else None
            elif route == "embeddings":
                st.embeddings.append(body)
                # An empty queue means "answer normally", so any number of requests work.
                script = st.embedding_scripts.pop(0) if st.embedding_scripts else Embeddings()
            owner._cond.notify_all()

        if route == "models":
            self._send(200, {"object": "list", "data": [
                {"id": MODEL_ID, "object": "model", "created": CREATED, "owned_by": "kgent-tests"}]})
        elif route == "chat" and script is None:
            self._send(500, _error_body(
                f"scripted LLM: no more scripted replies (chat request {chats} "
                f"found the script empty)", "server_error", None))
        elif route in ("chat", "embeddings", "comprehension"):
            assert script is not None
            self._answer(script, "chat" if route == "comprehension" else route, body, n)
        else:
            self._send(404, _error_body(f"scripted LLM: no route for {method} {self.path}",
                                        "invalid_request_error", None))

    def _read_body(self) -> bytes:
        """The whole request body, so that the connection can serve the next request."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, up to the empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- chat answers -------------------------------------------------------------------

    def _answer(self, script: Script, route: str, body: Any, n: int) -> None:
        ask = _Ask.of(body)
        # Unwrap delays and extra headers, outermost first (as the Rust server does).
        extra: list[tuple[str, str]] = []
        while isinstance(script, (Delay, WithHeaders)):
            if isinstance(script, Delay):
                if not self._hold(script.seconds):
                    raise _Abort
                script = script.inner
            else:
                extra += script.headers
                script = script.inner

        if route == "embeddings" and isinstance(script, (Reply, NonStreaming, Stall)):
            self._send(500, _error_body("scripted LLM: a chat script was queued for an embeddings request",
                                        "server_error", None), extra)
        elif isinstance(script, Embeddings):
            if route == "embeddings":
                self._embeddings(body, extra)
            else:
                self._send(500, _error_body("scripted LLM: embeddings() answers only /v1/embeddings",
                                            "server_error", None), extra)
        elif isinstance(script, Reply):
            if ask.stream:
                self._stream(_stream_events(ask, n, script.text, script.usage), extra, done=True)
            else:
                self._send(200, _completion(ask, n, script.text, script.usage), extra)
        elif isinstance(script, NonStreaming):
            self._send(200, _completion(ask, n, script.text, True), extra)
        elif isinstance(script, Status):
            self._send(script.status, script.body, list(script.headers) + extra)
        elif isinstance(script, Garbage):
            ctype = "text/event-stream" if ask.stream else "application/json"
            self._send(200, script.body, [("Content-Type", ctype)] + extra)
        elif isinstance(script, Stall):
            self._stall(ask, n, script.after_tokens, extra)
        else:  # pragma: no cover - _as_script rejects anything else
            self._send(500, _error_body(f"scripted LLM: bad script {script!r}", "server_error", None))

    def _stall(self, ask: _Ask, n: int, after_tokens: int, extra: list[tuple[str, str]]) -> None:
        words = [f"tok{i} " for i in range(after_tokens)]
        if ask.stream:
            events = [_chunk(ask, n, {"role": "assistant", "content": ""}, None)]
            events += [_chunk(ask, n, {"content": w}, None) for w in words]
            self._stream(events, extra, done=False)
        else:
            # Headers and the start of a JSON object, then silence.
            start = (f'{{"id":"chatcmpl-scripted-{n}","object":"chat.completion","choices":'
                     f'[{{"index":0,"message":{{"role":"assistant","content":"{"".join(words)}')
            self._start_chunked(200, [("Content-Type", "application/json")] + extra)
            self._write_chunk(start.encode())
        # Never finish the body: the client sees an open, silent connection. The final
        # chunk is never sent, so even a keep-alive client cannot mistake it for complete.
        self._hold(None)
        raise _Abort

    # -- waiting ------------------------------------------------------------------------

    def _hold(self, seconds: float | None) -> bool:
        """Waits `seconds` (None: until released). True when the time ran out normally;
        False when the server is stopping or the client hung up, which ends the wait early
        so that neither stop() nor a client timeout leaves a thread sleeping."""
        deadline = None if seconds is None else time.monotonic() + seconds
        sock = self.connection
        while True:
            if self.server.stopping.is_set():
                return False
            step = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
            if step <= 0:
                return True
            try:
                readable, _, _ = select.select([sock], [], [], step)
            except (OSError, ValueError):
                return False  # socket closed under us (stop())
            if readable:
                # Readable while we owe an answer: either EOF (client gone) or bytes of a
                # pipelined request, which stay in the socket for later.
                try:
                    peek = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    return False
                if not peek:
                    return False
                # Pipelined bytes keep the socket readable; sleep instead of spinning.
                if self.server.stopping.wait(step):
                    return False

    # -- writing ------------------------------------------------------------------------

    def _headers(self, code: int, headers: list[tuple[str, str]]) -> None:
        """Status line and headers; later headers replace earlier ones of the same name."""
        merged: dict[str, tuple[str, str]] = {}
        for k, v in headers:
            merged[k.lower()] = (k, v)
        self.send_response(code)
        for k, v in merged.values():
            self.send_header(k, v)
        self.end_headers()

    def _send(self, code: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        """A whole answer with Content-Length. A str that parses as JSON, or a dict/list, is
        labelled JSON; other text is text/plain (as the Rust server labels `Status` bodies)."""
        if isinstance(body, (dict, list)):
            data, ctype = json.dumps(body).encode(), "application/json"
        else:
            try:
                json.loads(body)
                ctype = "application/json"
            except ValueError:
                ctype = "text/plain; charset=utf-8"
            data = body.encode()
        self._headers(code, [("Content-Type", ctype), ("Content-Length", str(len(data)))]
                      + [h for h in headers if h[0].lower() != "content-length"])
        self.wfile.write(data)

    def _start_chunked(self, code: int, headers: list[tuple[str, str]]) -> None:
        self._headers(code, [("Cache-Control", "no-cache")] + headers + [("Transfer-Encoding", "chunked")])

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _stream(self, events: list[dict], extra: list[tuple[str, str]], done: bool) -> None:
        """Server-sent events, one chunk per event; with `done`, `data: [DONE]` and the end
        of the body."""
        self._start_chunked(200, [("Content-Type", "text/event-stream")] + extra)
        for e in events:
            if self.server.stopping.is_set():
                raise _Abort
            self._write_chunk(_sse(e))
        if done:
            self._write_chunk(_sse("[DONE]"))
            self.wfile.write(b"0\r\n\r\n")

    # -- embeddings ---------------------------------------------------------------------

    def _embeddings(self, body: Any, extra: list[tuple[str, str]]) -> None:
        owner = self.server.owner
        if not isinstance(body, dict) or "input" not in body:
            self._send(400, _error_body("'input' is a required property", "invalid_request_error", None, "input"))
            return
        inp = body["input"]
        # OpenAI accepts a string, a list of strings, a list of token ids, or a list of
        # token-id lists; token ids are embedded as their decimal text.
        if isinstance(inp, str):
            texts = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
            texts = [" ".join(map(str, inp))]
        elif isinstance(inp, list) and inp and all(isinstance(x, (str, list)) for x in inp):
            texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in inp]
        else:
            self._send(400, _error_body("'input' must be a string or a non-empty array",
                                        "invalid_request_error", None, "input"))
            return
        dim = body.get("dimensions")
        dim = dim if isinstance(dim, int) and dim > 0 else owner.embedding_dim
        b64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            # A custom embedding_fn decides its own length; `dimensions` is for the default.
            vec = owner.embedding_fn(text) if owner.embedding_fn else embed_text(text, dim)
            # base64 is what the `openai` Python client asks for by default: little-endian f32.
            emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(t.split()) for t in texts)
        model = body.get("model") if isinstance(body.get("model"), str) else MODEL_ID
        self._send(200, {"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, extra)


class ScriptedLLM:
    """A scripted OpenAI-compatible server on 127.0.0.1, ephemeral port.

    `scripts` are answers to chat requests, used one per request in order (a plain str is
    `reply(text)`). `embedding_dim` is the default vector length of `/v1/embeddings`;
    `embedding_fn(text) -> list[float]` replaces `embed_text` altogether. Use as a context
    manager, or call start() and stop(). All accessors are thread-safe and return copies."""

    def __init__(self, scripts: Iterable[Script | str] = (), *, embedding_dim: int = EMBEDDING_DIM,
                 embedding_fn: Callable[[str], list[float]] | None = None):
        self.embedding_dim = embedding_dim
        self.embedding_fn = embedding_fn
        self._state = _State(scripts=[_as_script(s) for s in scripts], embedding_scripts=[])
        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> "ScriptedLLM":
        """Binds 127.0.0.1:0 and serves on a daemon thread. Returns self."""
        if self._server is not None:
            raise RuntimeError("ScriptedLLM already started")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": _POLL},
            name="scripted-llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops accepting, closes every connection (idle keep-alive, delayed and stalled
        ones included) and waits a bounded time for the threads. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        # 1. Release handlers waiting in _hold (they poll this), refuse new connections.
        server.stopping.set()
        # 2. End the accept loop; afterwards no connection can be registered.
        server.shutdown()
        # 3. Shut down every open connection: wakes handlers blocked reading the next
        #    keep-alive request or writing to a client that does not read.
        with server.conns_lock:
            conns, threads = list(server.conns), list(server.threads)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for t in [self._thread, *threads]:
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> "ScriptedLLM":
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._server else "stopped"
        return f"<ScriptedLLM {where}, {self.remaining} scripts left>"

    # -- where --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ScriptedLLM is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, to use as the base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- what happened ------------------------------------------------------------------

    @property
    def requests(self) -> list[Any]:
        """The JSON bodies of the chat completion requests, in order."""
        with self._cond:
            return list(self._state.chat)

    @property
    def comprehension_requests(self) -> list[Any]:
        """The JSON bodies of the comprehension (annotation) requests, in order."""
        with self._cond:
            return list(self._state.comprehension)

    @property
    def embedding_requests(self) -> list[Any]:
        """The JSON bodies of the embeddings requests, in order."""
        with self._cond:
            return list(self._state.embeddings)

    @property
    def recorded(self) -> list[RecordedRequest]:
        """Every request on every route (method, path, headers, body), in order."""
        with self._cond:
            return list(self._state.recorded)

    @property
    def remaining(self) -> int:
        """Chat scripts not used yet."""
        with self._cond:
            return len(self._state.scripts)

    @property
    def remaining_embeddings(self) -> int:
        """Embeddings scripts not used yet."""
        with self._cond:
            return len(self._state.embedding_scripts)

    @property
    def connections(self) -> int:
        """Connections open right now (a client that closes its end brings this down)."""
        server = self._server
        if server is None:
            return 0
        with server.conns_lock:
            return len(server.conns)

    def add(self, *scripts: Script | str) -> None:
        """Appends chat scripts (also while running)."""
        with self._cond:
            self._state.scripts.extend(_as_script(s) for s in scripts)

    def script_comprehensions(self, *scripts: Script | str) -> None:
        """Queues answers for the next comprehension requests, one each, in order; once
        they are used up the program is echoed back unannotated."""
        with self._cond:
            self._state.comprehension_scripts.extend(_as_script(s) for s in scripts)

    def script_embeddings(self, *scripts: Script) -> None:
        """Queues answers for the next `/v1/embeddings` requests, one each, in order (e.g.
        `rate_limited(2)`, `delayed(1, embeddings())`); once they are used up the server
        answers with vectors again. Chat-only scripts (reply, stall) get a 500 there."""
        with self._cond:
            self._state.embedding_scripts.extend(_as_script(s) for s in scripts)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Any]:
        """Waits until at least `count` chat requests have arrived; returns their bodies.
        Raises TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._state.chat) >= count, timeout):
                raise TimeoutError(f"{len(self._state.chat)} of {count} chat requests within {timeout} s")
            return list(self._state.chat)
