"""Messages are authenticated: the kernel drops a request whose HMAC signature is wrong
(no reply at all), answers a correctly signed one, and logs each rejection on stderr."""

from __future__ import annotations

import time
import uuid

import pytest
import zmq
from jupyter_client.session import Session

from conftest import KernelSession, start_kernel, wait_until


@pytest.fixture
def session_and_sockets(tmp_path):
    session = start_kernel(tmp_path)
    ctx = zmq.Context()
    info = session.km.get_connection_info()
    sockets = []

    def connect(channel: str) -> zmq.Socket:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, uuid.uuid4().hex.encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"{info['transport']}://{info['ip']}:{info[channel + '_port']}")
        sockets.append(sock)
        return sock

    try:
        yield session, info, connect
    finally:
        for s in sockets:
            s.close(0)
        ctx.term()
        session.shutdown()


def recv_reply(sock: zmq.Socket, session: Session, timeout: float) -> dict | None:
    if not sock.poll(int(timeout * 1000)):
        return None
    _, frames = session.feed_identities(sock.recv_multipart())
    return session.deserialize(frames)


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_bad_signature_is_dropped_and_logged(session_and_sockets, channel: str) -> None:
    kernel, info, connect = session_and_sockets
    key = info["key"]
    key = key.encode() if isinstance(key, str) else key
    assert key, "jupyter_client started the kernel without a signing key"
    good = Session(key=key, signature_scheme=info["signature_scheme"], username="test")
    wrong = Session(key=b"not-the-key-" + key[:8], signature_scheme=info["signature_scheme"], username="test")
    sock = connect(channel)

    # Signed with a wrong key: no reply.
    wrong.send(sock, "kernel_info_request", {})
    assert recv_reply(sock, good, timeout=2.0) is None, "the kernel answered a badly signed request"

    # Not signed at all (empty signature): no reply either.
    unsigned = Session(key=b"", username="test")
    unsigned.send(sock, "kernel_info_request", {})
    assert recv_reply(sock, good, timeout=1.0) is None, "the kernel answered an unsigned request"

    # Correctly signed: answered, on the same socket.
    sent = good.send(sock, "kernel_info_request", {})
    reply = recv_reply(sock, good, timeout=5.0)
    assert reply is not None, "no reply to a correctly signed request"
    assert reply["msg_type"] == "kernel_info_reply"
    assert reply["parent_header"]["msg_id"] == sent["header"]["msg_id"]
    assert reply["content"]["implementation"] == "kgent"

    # Both rejections were logged on the kernel's stderr.
    logged = wait_until(lambda: kernel.stderr_text().count(f"rejected a message on {channel}") >= 2, timeout=3)
    assert logged, f"kernel stderr:\n{kernel.stderr_text()}"
    assert "bad HMAC signature" in kernel.stderr_text()
    assert kernel.km.is_alive()


def test_tampered_content_is_dropped(session_and_sockets) -> None:
    """A message signed correctly and then altered (here: its content) is rejected."""
    kernel, info, connect = session_and_sockets
    key = info["key"]
    key = key.encode() if isinstance(key, str) else key
    good = Session(key=key, signature_scheme=info["signature_scheme"], username="test")
    sock = connect("shell")
    msg = good.msg("execute_request", {"code": "%lsmagic", "silent": False, "store_history": True,
                                       "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    frames = good.serialize(msg)
    i = frames.index(b"<IDS|MSG>")
    # frames after the delimiter: signature, header, parent, metadata, content
    frames[i + 5] = frames[i + 5].replace(b"%lsmagic", b"%probes ")
    sock.send_multipart(frames)
    assert recv_reply(sock, good, timeout=2.0) is None, "the kernel ran a tampered request"
    assert wait_until(lambda: "bad HMAC signature" in kernel.stderr_text(), timeout=3), kernel.stderr_text()
    # The kernel still serves correctly signed requests.
    kernel.drain()
    cell = kernel.run("%lsmagic")
    assert cell.status == "ok"


def test_wrongly_signed_interrupt_does_not_stop_a_cell(session_and_sockets) -> None:
    kernel, info, connect = session_and_sockets
    key = info["key"]
    key = key.encode() if isinstance(key, str) else key
    wrong = Session(key=b"forged", signature_scheme=info["signature_scheme"], username="test")
    control = connect("control")
    cell = kernel.execute('%%bpftrace --timeout 2s\ninterval:ms:100 { printf("tick\\n"); }')
    kernel.wait_for_output(cell, lambda c: "tick" in c.stdout, timeout=30)
    wrong.send(control, "interrupt_request", {})
    kernel.wait(cell, timeout=30)
    assert cell.status == "ok", cell.describe()
    assert cell.summary.startswith("detached at the timeout"), cell.summary
    time.sleep(0.1)
    assert "rejected a message on control" in kernel.stderr_text()
