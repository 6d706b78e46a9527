"""Request heads under attack (issue 12.4), against a real ``keyfob serve`` with raw
sockets: a head size limit (431), a read timeout (408, or a silent close for a silent
connection), a concurrency cap (503 with Retry-After), all answered in keyfob's JSON."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from keyfob.settings import Settings

from .uvicorn_process import UvicornProcess

pytestmark = pytest.mark.slow

READ_TIMEOUT = 1.0
MAX_HEAD = 8192
JWKS = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornProcess]:
    env = {
        "KEYFOB_READ_TIMEOUT": str(READ_TIMEOUT),
        "KEYFOB_MAX_HEAD_SIZE": str(MAX_HEAD),
        "KEYFOB_MAX_CONCURRENCY": "20",
    }
    with UvicornProcess(tmp_path_factory.mktemp("limits"), serve=True, env=env) as server:
        yield server


def connect(server: UvicornProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.settimeout(10)  # every read below is bounded: no test can hang
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(answer: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_head_over_the_limit_is_431_and_closed(served: UvicornProcess) -> None:
    """A header larger than KEYFOB_MAX_HEAD_SIZE is refused before any app sees it, in
    one read or spread over many, and the server goes on answering others."""
    big = b"GET /auth/me HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n"
    with connect(served) as sock:
        sock.sendall(big)
        status, headers, body = status_and_body(read_all(sock))
    assert status == 431
    assert headers["connection"] == "close"
    assert body["error"] == "invalid_request"
    with connect(served) as sock:
        # An open-ended head: refused once it crosses the limit, not when it ends.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for _ in range(4):
            sock.sendall(b"X-Pad: " + b"b" * (MAX_HEAD // 3) + b"\r\n")
        assert status_and_body(read_all(sock))[0] == 431
    with connect(served) as sock:
        sock.sendall(JWKS)
        assert read_all(sock).startswith(b"HTTP/1.1 200 ")


def test_a_head_just_under_the_limit_is_served(served: UvicornProcess) -> None:
    """The limit is on the head, not on the reads: a large head that fits is answered."""
    pad = b"X-Pad: " + b"c" * (MAX_HEAD - 200) + b"\r\n"
    request = JWKS.replace(b"Host: x\r\n", b"Host: x\r\n" + pad)
    assert len(request) < MAX_HEAD
    with connect(served) as sock:
        sock.sendall(request)
        assert read_all(sock).startswith(b"HTTP/1.1 200 ")


def test_slowloris_head_is_408_after_the_read_timeout(served: UvicornProcess) -> None:
    """A client sending one header line at a time, forever, is cut off: 408, closed,
    within the read timeout (plus scheduling slack), not kept open."""
    with connect(served) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        for n in range(100):
            try:
                sock.sendall(f"X-Slow-{n}: 1\r\n".encode())
            except OSError:
                break  # the server closed
            time.sleep(READ_TIMEOUT / 5)
            sock.setblocking(False)
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            finally:
                sock.settimeout(10)
            if answer:
                break
        answer += read_all(sock)
        elapsed = time.monotonic() - started
    status, headers, body = status_and_body(answer)
    assert status == 408
    assert headers["connection"] == "close"
    assert body["error"] == "invalid_request"
    assert READ_TIMEOUT * 0.9 <= elapsed < READ_TIMEOUT + 5


def test_a_body_that_never_comes_is_408(served: UvicornProcess) -> None:
    """A request whose body stops short is cut off too (the app is told the client left)."""
    with connect(served) as sock:
        sock.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        assert status_and_body(read_all(sock))[0] == 408


def test_silent_connection_is_closed(served: UvicornProcess) -> None:
    """A connection that never sends a byte is closed after the read timeout, unanswered."""
    with connect(served) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
        assert time.monotonic() - started < READ_TIMEOUT + 5


def test_malformed_request_is_a_json_400(served: UvicornProcess) -> None:
    with connect(served) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, _, body = status_and_body(read_all(sock))
    assert status == 400
    assert body["error"] == "invalid_request"


def test_concurrency_cap_is_a_json_503_with_retry_after(served: UvicornProcess) -> None:
    """Beyond KEYFOB_MAX_CONCURRENCY open connections, requests get 503 + Retry-After;
    once they close, requests are served again."""
    held = [connect(served) for _ in range(20)]
    try:
        # Each held connection sends a partial head, so the server has accepted it.
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\n")
        with connect(served) as sock:
            sock.sendall(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = status_and_body(read_all(sock))
        assert status == 503
        assert headers["retry-after"] == "1"
        assert body["error"] == "temporarily_unavailable"
    finally:
        for sock in held:
            sock.close()
    # The server notices the closed connections at once; then it serves again.
    deadline = time.monotonic() + 10
    while True:
        with connect(served) as sock:
            sock.sendall(JWKS)
            answer = read_all(sock)
        if answer.startswith(b"HTTP/1.1 200 "):
            break
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)


def test_settings_defaults_are_sane() -> None:
    """Defaults: a 32 KiB head (nginx's default ceiling), 10 s to send a request, and
    1000 connections per worker; nonsense values are refused."""
    settings = Settings()
    assert (settings.max_head_size, settings.read_timeout, settings.max_concurrency) == (
        32 * 1024,
        10.0,
        1000,
    )
    from keyfob.exceptions import ConfigurationError

    for bad in ({"max_head_size": 10}, {"read_timeout": 0}, {"max_concurrency": -1}):
        with pytest.raises(ConfigurationError):
            Settings(**bad)  # type: ignore[arg-type]


def test_pipelined_and_split_requests_are_served(served: UvicornProcess) -> None:
    """The limits change nothing for well-behaved clients: two pipelined requests in one
    write get two answers in order, and a request split over several reads within the
    timeout is answered (its timer is cancelled when it completes)."""
    jwks = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(served) as sock:
        sock.sendall(jwks + JWKS)
        answer = read_all(sock)
    assert answer.count(b"HTTP/1.1 200 ") == 2
    with connect(served) as sock:
        for piece in (JWKS[:10], JWKS[10:30], JWKS[30:]):
            sock.sendall(piece)
            time.sleep(READ_TIMEOUT / 4)
        assert read_all(sock).startswith(b"HTTP/1.1 200 ")
    with connect(served) as sock:
        # A keep-alive connection idle between requests is uvicorn's keep-alive business;
        # a request that arrives in pieces after a first answer is timed afresh.
        sock.sendall(jwks)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        time.sleep(READ_TIMEOUT / 2)
        sock.sendall(JWKS[:20])
        time.sleep(READ_TIMEOUT / 2)
        sock.sendall(JWKS[20:])
        assert (first + read_all(sock)).count(b"HTTP/1.1 200 ") == 2
