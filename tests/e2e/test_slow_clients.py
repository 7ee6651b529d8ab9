"""Clients that never finish their request headers (slowloris) are closed after TOLLGATE_HEADER_TIMEOUT; everyone
else is served as before, and a keep-alive connection idle between requests still lasts uvicorn's keep-alive."""

import socket
import time

import httpx
import pytest

from tests.e2e.server import GatewayServer

pytestmark = pytest.mark.live

HEADER_TIMEOUT = 1.0
KEEP_ALIVE = 5.0  # uvicorn's default timeout_keep_alive, which `serve` keeps
MARGIN = 1.5
CONFIG = """
model_list:
  - model_name: house
    litellm_params: {model: mock/house-model}
"""
REQUEST = b"GET /health/liveliness HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"TOLLGATE_HEADER_TIMEOUT": str(HEADER_TIMEOUT)}
    with GatewayServer(tmp_path_factory.mktemp("slow-clients"), CONFIG, workers=2, env=env) as live:
        yield live


def connect(server: GatewayServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.settimeout(0.05)
    return sock


def closed(sock: socket.socket) -> bool:
    """Whether the server has closed the connection (anything it sent first is read and dropped)."""
    try:
        while data := sock.recv(65536):
            del data
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def read_response(sock: socket.socket) -> bytes:
    """One whole response: its headers and its body, sent with a Content-Length or chunked."""
    deadline = time.monotonic() + 5
    data = b""
    while time.monotonic() < deadline:
        head, end, body = data.partition(b"\r\n\r\n")
        lengths = [line.split(b":")[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
        if end and (len(body) >= int(lengths[0]) if lengths else body.endswith(b"0\r\n\r\n")):
            return data
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    raise TimeoutError(f"no whole response, got {data!r}")


def test_a_client_that_never_finishes_its_headers_is_closed(server):
    started = time.monotonic()
    with connect(server) as half, connect(server) as trickle:
        half.sendall(b"GET /health/liveli")
        trickle_sent, last_sent = 0, started
        assert httpx.get(f"{server.url}/health/liveliness", timeout=2).status_code == 200  # others are served
        while time.monotonic() - started < HEADER_TIMEOUT + MARGIN and not (closed(half) and closed(trickle)):
            if trickle_sent < len(REQUEST) - 1:  # a byte at a time, never the last one
                try:
                    trickle.send(REQUEST[trickle_sent : trickle_sent + 1])
                    trickle_sent, last_sent = trickle_sent + 1, time.monotonic()
                except OSError:
                    pass
            time.sleep(0.05)
        elapsed = time.monotonic() - started

        assert closed(half) and closed(trickle), f"still open after {elapsed:.1f}s"
    assert elapsed >= HEADER_TIMEOUT - 0.2
    assert last_sent - started >= HEADER_TIMEOUT / 2  # sending all along: only complete headers count
    assert httpx.get(f"{server.url}/health/liveliness", timeout=2).status_code == 200


def test_an_idle_keep_alive_connection_lasts_the_keep_alive_timeout(server):
    with connect(server) as sock:
        sock.sendall(REQUEST)
        assert read_response(sock).startswith(b"HTTP/1.1 200")

        time.sleep(HEADER_TIMEOUT + 1)  # idle past the header timeout, within keep-alive: still open
        sock.sendall(REQUEST)
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()

        while not closed(sock):
            assert time.monotonic() - answered < KEEP_ALIVE + MARGIN, "keep-alive connection never closed"
            time.sleep(0.1)
    assert time.monotonic() - answered >= KEEP_ALIVE - 0.5
