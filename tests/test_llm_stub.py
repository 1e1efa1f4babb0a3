"""The scripted OpenAI-compatible server (tests/llm_stub.py), driven with plain urllib and
http.client, so that tests using it against the kernel can trust what it sends."""

from __future__ import annotations

import base64
import http.client
import json
import math
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from conftest import wait_until
from llm_stub import (
    EMBEDDING_DIM,
    MODEL_ID,
    ScriptedLLM,
    auth_error,
    delayed,
    embed_text,
    embeddings,
    garbage,
    non_streaming,
    pieces,
    rate_limited,
    reply,
    reply_without_usage,
    server_error,
    stall,
    status,
    with_headers,
)

MESSAGES = [
    {"role": "system", "content": "You write bpftrace."},
    {"role": "user", "content": "count syscalls by process"},
]


def chat_body(stream: bool = False, include_usage: bool = False, model: str = "gpt-test") -> dict:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "stream": stream}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def connect(llm: ScriptedLLM, timeout: float = 10) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", llm.port, timeout=timeout)


def post(conn: http.client.HTTPConnection, path: str, body: Any) -> http.client.HTTPResponse:
    conn.request("POST", path, body=json.dumps(body), headers={
        "Content-Type": "application/json", "Authorization": "Bearer sk-test"})
    return conn.getresponse()


def sse_data(raw: bytes) -> list[str]:
    """The `data:` payloads of an event stream, in order."""
    events = [e for e in raw.decode().split("\n\n") if e.strip()]
    out = []
    for e in events:
        assert e.startswith("data: "), e
        out.append(e[len("data: "):])
    return out


def urlopen_json(url: str, body: Any | None = None, timeout: float = 10) -> tuple[int, Any, Any]:
    """(status, headers, parsed body) with urllib; HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, json.loads(e.read())


# ---------------------------------------------------------------------------------------
# Replies


def test_non_streamed_reply(llm_stub):
    llm = llm_stub([reply("kprobe:do_sys_openat2 { @[comm] = count(); }"), "second"])
    assert llm.base_url == f"http://127.0.0.1:{llm.port}/v1"
    assert llm.remaining == 2

    code, headers, v = urlopen_json(llm.base_url + "/chat/completions", chat_body(model="my-model"))
    assert code == 200
    assert headers["Content-Type"] == "application/json"
    assert v == {
        "id": "chatcmpl-scripted-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "my-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "kprobe:do_sys_openat2 { @[comm] = count(); }"},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        # Prompt tokens: words in the messages (3 + 4); completion: streamed pieces.
        "usage": {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13},
    }
    assert llm.remaining == 1
    assert llm.requests == [chat_body(model="my-model")]
    rec = llm.recorded[0]
    assert (rec.method, rec.path) == ("POST", "/v1/chat/completions")
    assert rec.header("authorization") is None  # urllib sent none
    assert rec.header("Content-Type") == "application/json"

    # Plain strings in the script list are replies too.
    assert urlopen_json(llm.base_url + "/chat/completions", chat_body())[2]["choices"][0]["message"]["content"] == "second"


def test_streamed_reply(llm_stub):
    text = "tracepoint:raw_syscalls:sys_enter\n{ @[comm] = count(); }"
    llm = llm_stub([reply(text)])
    conn = connect(llm)
    r = post(conn, "/v1/chat/completions", chat_body(stream=True, model="m1"))
    assert r.status == 200
    assert r.getheader("Content-Type") == "text/event-stream"
    assert r.getheader("Transfer-Encoding") == "chunked"
    data = sse_data(r.read())
    conn.close()

    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    for c in chunks:
        assert c["id"] == "chatcmpl-scripted-1"
        assert c["object"] == "chat.completion.chunk"
        assert c["created"] == 1_700_000_000
        assert c["model"] == "m1"
        assert [ch["index"] for ch in c["choices"]] == [0]
        assert "usage" not in c  # include_usage was not asked for
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert contents == pieces(text)
    assert "".join(contents) == text
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


def test_streamed_usage_chunk_when_asked(llm_stub):
    llm = llm_stub([reply("a b c"), reply_without_usage("a b c")])
    conn = connect(llm)
    data = sse_data(post(conn, "/v1/chat/completions", chat_body(stream=True, include_usage=True)).read())
    chunks = [json.loads(d) for d in data[:-1]]
    # As OpenAI: every chunk carries "usage": null, then one last chunk with no choices.
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}

    # A server that never reports usage, even when asked.
    data = sse_data(post(conn, "/v1/chat/completions", chat_body(stream=True, include_usage=True)).read())
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in chunks)
    conn.close()


def test_non_streaming_and_garbage_ignore_stream(llm_stub):
    llm = llm_stub([non_streaming("plain"), garbage("data: {not json\n\n")])
    conn = connect(llm)
    r = post(conn, "/v1/chat/completions", chat_body(stream=True))
    assert r.getheader("Content-Type") == "application/json"
    assert json.loads(r.read())["choices"][0]["message"]["content"] == "plain"
    r = post(conn, "/v1/chat/completions", chat_body(stream=True))
    assert (r.status, r.getheader("Content-Type")) == (200, "text/event-stream")
    assert r.read() == b"data: {not json\n\n"
    conn.close()


def test_keepalive_one_connection_many_requests(llm_stub):
    llm = llm_stub(["one", "two", "three"])
    conn = connect(llm)
    conn.request("GET", "/v1/models")
    assert json.loads(conn.getresponse().read())["data"][0]["id"] == MODEL_ID
    sock = conn.sock
    assert sse_data(post(conn, "/v1/chat/completions", chat_body(stream=True)).read())[-1] == "[DONE]"
    assert json.loads(post(conn, "/v1/chat/completions", chat_body()).read())["choices"][0]["message"]["content"] == "two"
    r = post(conn, "/v1/embeddings", {"model": "e", "input": "x"})
    assert r.status == 200 and len(json.loads(r.read())["data"]) == 1
    # Exhaustion is a complete answer too: the connection stays usable.
    r = post(conn, "/v1/chat/completions", chat_body(stream=True))
    assert r.status == 200 and sse_data(r.read())[-1] == "[DONE]"
    r = post(conn, "/v1/chat/completions", chat_body())
    assert r.status == 500
    r.read()
    assert conn.sock is sock, "the client had to reconnect"
    assert llm.connections == 1
    conn.close()
    assert wait_until(lambda: llm.connections == 0, timeout=5)


def test_concurrent_requests_each_get_one_script(llm_stub):
    texts = [f"reply {i}" for i in range(12)]
    llm = llm_stub(texts)
    got: list[str] = []
    lock = threading.Lock()

    def ask() -> None:
        _, _, v = urlopen_json(llm.base_url + "/chat/completions", chat_body())
        with lock:
            got.append(v["choices"][0]["message"]["content"])

    threads = [threading.Thread(target=ask) for _ in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(got) == sorted(texts)
    assert len(llm.requests) == len(texts)
    assert llm.remaining == 0


# ---------------------------------------------------------------------------------------
# Failures


def test_rate_limited_with_retry_after(llm_stub):
    llm = llm_stub([rate_limited(7), rate_limited(0.5), "after"])
    code, headers, v = urlopen_json(llm.base_url + "/chat/completions", chat_body(stream=True))
    assert code == 429
    assert headers["Retry-After"] == "7"
    assert headers["Content-Type"] == "application/json"
    assert v == {"error": {"message": "Rate limit reached; please try again later.",
                           "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    assert urlopen_json(llm.base_url + "/chat/completions", chat_body())[1]["Retry-After"] == "0.5"
    assert urlopen_json(llm.base_url + "/chat/completions", chat_body())[0] == 200


def test_server_and_auth_errors(llm_stub):
    llm = llm_stub([server_error(), server_error(503), auth_error(),
                    status(400, "plain words"), with_headers({"x-request-id": "req-1"}, reply("ok"))])
    url = llm.base_url + "/chat/completions"
    code, _, v = urlopen_json(url, chat_body())
    assert code == 500 and v["error"]["type"] == "server_error"
    assert urlopen_json(url, chat_body())[0] == 503
    code, _, v = urlopen_json(url, chat_body())
    assert code == 401 and v["error"]["code"] == "invalid_api_key"

    conn = connect(llm)
    r = post(conn, "/v1/chat/completions", chat_body())
    assert (r.status, r.getheader("Content-Type"), r.read()) == (400, "text/plain; charset=utf-8", b"plain words")
    r = post(conn, "/v1/chat/completions", chat_body(stream=True))
    assert r.getheader("x-request-id") == "req-1"
    assert sse_data(r.read())[-1] == "[DONE]"
    conn.close()


def test_exhausted_scripts_answer_500(llm_stub):
    llm = llm_stub([])
    for stream in (False, True):
        code, headers, v = urlopen_json(llm.base_url + "/chat/completions", chat_body(stream=stream))
        assert code == 500
        assert "no more scripted replies" in v["error"]["message"]
    # Still recorded, so a test can see what the extra request was.
    assert len(llm.requests) == 2
    # Scripts can be added while running.
    llm.add("late")
    assert urlopen_json(llm.base_url + "/chat/completions", chat_body())[0] == 200


def test_unknown_route_is_404_and_models_lists_scripted(llm_stub):
    llm = llm_stub(["unused"])
    code, _, v = urlopen_json(llm.base_url + "/completions", {"prompt": "x"})
    assert code == 404 and "no route" in v["error"]["message"]
    code, _, v = urlopen_json(llm.base_url + "/models")
    assert code == 200
    assert v == {"object": "list", "data": [
        {"id": "scripted", "object": "model", "created": 1_700_000_000, "owned_by": "kgent-tests"}]}
    assert llm.remaining == 1 and llm.requests == []


# ---------------------------------------------------------------------------------------
# Time: delays and stalls


def test_delayed_reply(llm_stub):
    llm = llm_stub([delayed(0.5, reply("slow")), delayed(0.3, rate_limited(1))])
    t0 = time.monotonic()
    code, _, v = urlopen_json(llm.base_url + "/chat/completions", chat_body())
    assert time.monotonic() - t0 >= 0.5
    assert v["choices"][0]["message"]["content"] == "slow"
    t0 = time.monotonic()
    code, headers, _ = urlopen_json(llm.base_url + "/chat/completions", chat_body(stream=True))
    assert time.monotonic() - t0 >= 0.3
    assert (code, headers["Retry-After"]) == (429, "1")


def test_delay_longer_than_client_timeout(llm_stub):
    llm = llm_stub([delayed(30, "never seen"), "next"])
    conn = connect(llm, timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        post(conn, "/v1/chat/completions", chat_body())
    assert time.monotonic() - t0 < 2
    conn.close()
    # The handler notices the client left and stops waiting long before 30 s.
    assert wait_until(lambda: llm.connections == 0, timeout=5)
    assert urlopen_json(llm.base_url + "/chat/completions", chat_body())[2]["choices"][0]["message"]["content"] == "next"


def read_stalled(conn: http.client.HTTPConnection, tokens: int) -> tuple[http.client.HTTPResponse, list[str]]:
    """Reads a stalled stream until its role chunk and `tokens` content chunks arrived."""
    r = post(conn, "/v1/chat/completions", chat_body(stream=True))
    assert r.status == 200
    contents: list[str] = []
    while len(contents) < tokens + 1:
        line = r.readline()
        assert line, "stream ended before the stall"
        if line.startswith(b"data: "):
            contents.append(json.loads(line[6:])["choices"][0]["delta"]["content"])
    assert contents == [""] + [f"tok{i} " for i in range(tokens)]
    return r, contents


def test_stall_released_by_stop():
    llm = ScriptedLLM([stall(after_tokens=3)]).start()
    conn = connect(llm, timeout=10)
    r, _ = read_stalled(conn, 3)
    outcome: dict[str, Any] = {}

    def rest() -> None:
        try:
            outcome["data"] = r.read()
        except Exception as e:  # noqa: BLE001 - which exception is the point
            outcome["error"] = e

    reader = threading.Thread(target=rest, daemon=True)
    reader.start()
    time.sleep(0.3)
    assert reader.is_alive(), "the stalled stream ended by itself"
    t0 = time.monotonic()
    llm.stop()
    assert time.monotonic() - t0 < 1.0, "stop() waited for the stalled handler"
    reader.join(5)
    assert not reader.is_alive()
    # The body never ended (no final chunk), so the client sees a broken stream.
    assert isinstance(outcome.get("error"), (http.client.IncompleteRead, ConnectionError)), outcome
    conn.close()
    llm.stop()  # idempotent


def test_stall_released_by_client_disconnect(llm_stub):
    llm = llm_stub([stall(1), stall(0), "after"])
    conn = connect(llm)
    read_stalled(conn, 1)
    assert llm.connections == 1
    conn.close()
    assert wait_until(lambda: llm.connections == 0, timeout=5)

    # Non-streaming stall: headers and the start of a JSON object, then silence.
    conn = connect(llm, timeout=0.5)
    r = post(conn, "/v1/chat/completions", chat_body())
    assert (r.status, r.getheader("Content-Type")) == (200, "application/json")
    with pytest.raises(TimeoutError):
        r.read()
    conn.close()
    assert wait_until(lambda: llm.connections == 0, timeout=5)
    assert urlopen_json(llm.base_url + "/chat/completions", chat_body())[0] == 200


def test_stop_closes_idle_keepalive_and_delayed_connections():
    llm = ScriptedLLM(["a", delayed(60, "b")]).start()
    idle = connect(llm)
    assert post(idle, "/v1/chat/completions", chat_body()).read()
    waiting = connect(llm, timeout=10)
    errors: list[BaseException] = []

    def wait_delayed() -> None:
        try:
            post(waiting, "/v1/chat/completions", chat_body()).read()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=wait_delayed, daemon=True)
    t.start()
    llm.wait_for_requests(2, timeout=5)
    assert wait_until(lambda: llm.connections == 2, timeout=5)
    t0 = time.monotonic()
    llm.stop()
    assert time.monotonic() - t0 < 1.0
    t.join(5)
    assert errors and isinstance(errors[0], (http.client.RemoteDisconnected, ConnectionError))
    # The listening socket is gone too.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", idle.port), timeout=2).close()
    idle.close()
    waiting.close()


def test_context_manager():
    with ScriptedLLM(["hi"]) as llm:
        port = llm.port
        assert urlopen_json(llm.base_url + "/chat/completions", chat_body())[0] == 200
        assert repr(llm).startswith(f"<ScriptedLLM http://127.0.0.1:{port}/v1")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(RuntimeError):
        llm.base_url


# ---------------------------------------------------------------------------------------
# Embeddings


def test_embeddings_shape_and_determinism(llm_stub):
    llm = llm_stub([reply("unused")])
    body = {"model": "emb-model", "input": ["count syscalls by process", "trace file opens", ""]}
    code, _, v = urlopen_json(llm.base_url + "/embeddings", body)
    assert code == 200
    assert v["object"] == "list" and v["model"] == "emb-model"
    assert [d["index"] for d in v["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in v["data"])
    vecs = [d["embedding"] for d in v["data"]]
    assert all(len(x) == EMBEDDING_DIM for x in vecs)
    assert math.isclose(sum(x * x for x in vecs[0]), 1.0, rel_tol=1e-9)
    assert math.isclose(sum(x * x for x in vecs[1]), 1.0, rel_tol=1e-9)
    assert vecs[2] == [0.0] * EMBEDDING_DIM  # no words: zero, but finite
    assert vecs[0] != vecs[1]
    assert v["usage"] == {"prompt_tokens": 7, "total_tokens": 7}

    # Same text, same vector: in one call, across calls and across servers (no salted hash).
    assert urlopen_json(llm.base_url + "/embeddings", {"model": "e", "input": "trace file opens"})[2]["data"][0]["embedding"] == vecs[1]
    with ScriptedLLM() as other:
        assert urlopen_json(other.base_url + "/embeddings", body)[2]["data"][0]["embedding"] == vecs[0]
    assert vecs[0] == embed_text("Count syscalls, by process!")

    # Recorded separately; no chat script consumed.
    assert len(llm.embedding_requests) == 2 and llm.embedding_requests[0] == body
    assert llm.requests == [] and llm.remaining == 1


def test_embeddings_options_and_errors(llm_stub):
    llm = llm_stub(embedding_dim=16)
    url = llm.base_url + "/embeddings"
    assert len(urlopen_json(url, {"model": "e", "input": "x y"})[2]["data"][0]["embedding"]) == 16
    assert len(urlopen_json(url, {"model": "e", "input": "x y", "dimensions": 8})[2]["data"][0]["embedding"]) == 8
    # base64: little-endian float32, what the openai Python client asks for by default.
    enc = urlopen_json(url, {"model": "e", "input": "x y", "encoding_format": "base64"})[2]["data"][0]["embedding"]
    floats = struct.unpack("<16f", base64.b64decode(enc))
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(floats, embed_text("x y", 16)))
    # Token ids are accepted too.
    assert len(urlopen_json(url, {"model": "e", "input": [[1, 2], [3]]})[2]["data"]) == 2
    code, _, v = urlopen_json(url, {"model": "e"})
    assert code == 400 and v["error"]["param"] == "input"
    assert urlopen_json(url, {"model": "e", "input": []})[0] == 400


def test_embeddings_script_queue_and_custom_fn(llm_stub):
    llm = llm_stub(["chat reply", embeddings()], embedding_fn=lambda text: [float(len(text)), 0.0])
    url = llm.base_url + "/embeddings"
    llm.script_embeddings(rate_limited(2), delayed(0.2, embeddings()), reply("chat only"))
    assert llm.remaining_embeddings == 3
    code, headers, v = urlopen_json(url, {"model": "e", "input": "abc"})
    assert (code, headers["Retry-After"], v["error"]["code"]) == (429, "2", "rate_limit_exceeded")
    t0 = time.monotonic()
    code, _, v = urlopen_json(url, {"model": "e", "input": ["abc", "de"]})
    assert time.monotonic() - t0 >= 0.2
    assert code == 200 and [d["embedding"] for d in v["data"]] == [[3.0, 0.0], [2.0, 0.0]]
    code, _, v = urlopen_json(url, {"model": "e", "input": "abc"})
    assert code == 500 and "chat script" in v["error"]["message"]
    # Queue used up: vectors again, for any number of requests.
    assert llm.remaining_embeddings == 0
    assert all(urlopen_json(url, {"model": "e", "input": "x"})[0] == 200 for _ in range(3))
    # Chat scripts were not touched; embeddings() in the chat queue is a mistake, reported.
    assert llm.remaining == 2
    assert urlopen_json(llm.base_url + "/chat/completions", chat_body())[0] == 200
    code, _, v = urlopen_json(llm.base_url + "/chat/completions", chat_body())
    assert code == 500 and "only /v1/embeddings" in v["error"]["message"]


# ---------------------------------------------------------------------------------------
# Helpers and a real client


def test_pieces_rejoin_to_the_text():
    for text in ["", "one", "a b", "a  b\n", "kprobe:x\n{\n  exit();\n}\n", "  lead"]:
        assert "".join(pieces(text)) == text
    assert pieces("a b\nc") == ["a ", "b\n", "c"]


def test_wait_for_requests_times_out(llm_stub):
    llm = llm_stub(["x"])
    with pytest.raises(TimeoutError):
        llm.wait_for_requests(1, timeout=0.1)


def test_openai_client(llm_stub):
    openai = pytest.importorskip(
        "openai", reason="the `openai` package is not installed in .venv (not a test dependency)")
    llm = llm_stub([reply("hello there"), reply("streamed reply"), rate_limited(1)])
    client = openai.OpenAI(base_url=llm.base_url, api_key="sk-test", max_retries=0, timeout=10)
    r = client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert r.choices[0].message.content == "hello there"
    assert r.model == "gpt-test" and r.usage.completion_tokens == 2
    stream = client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    assert text == "streamed reply" and usage.completion_tokens == 2
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert e.value.response.headers["retry-after"] == "1"
    emb = client.embeddings.create(model="e", input=["count syscalls by process"])
    assert len(emb.data[0].embedding) == EMBEDDING_DIM
    assert llm.recorded[0].header("authorization") == "Bearer sk-test"
