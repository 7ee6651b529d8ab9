"""Factories for cost map tests: small maps written as exact JSON, and a loopback server that serves them."""

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

D = Decimal


def entry(input_price="0.000001", output_price="0.000002", provider="openai", mode="chat", **extra) -> dict:
    return {
        "litellm_provider": provider,
        "mode": mode,
        "input_cost_per_token": D(input_price),
        "output_cost_per_token": D(output_price),
        **extra,
    }


def small_map(count: int = 20) -> dict[str, dict]:
    return {f"model-{index:02d}": entry() for index in range(count)}


def as_json(value) -> str:
    """JSON text with every Decimal written as its own digits (never through a float)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)}: {as_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(as_json(item) for item in value) + "]"
    return json.dumps(value)


def raw(cost_map: dict) -> bytes:
    return as_json(cost_map).encode()


@pytest.fixture
def active_small_map(db):
    """A 20-model map as the active version (replacing the shipped one the migration installed)."""
    from pricing.versions import store_fetched_map

    store_fetched_map(raw(small_map()), "test://small", max_loss_share=D(1))
    return small_map()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = self.server.routes.get(self.path, (404, b"not found"))
        self.server.hits.append(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class CostMapServer:
    """A loopback HTTP server: ``serve(path, body, status)`` answers GET path with it; returns the URL."""

    def __init__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.routes = {}
        self._server.hits = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def hits(self) -> list[str]:
        return self._server.hits

    def serve(self, path: str, body: bytes, status: int = 200) -> str:
        self._server.routes[path] = (status, body)
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def cost_map_server():
    server = CostMapServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _fresh_store(request):
    """Every test reads the active version from the database (no label cached across tests). The calculator and
    cost map tests may run without pytest-django (-p no:django): they never touch the store."""
    if not request.config.pluginmanager.hasplugin("django"):
        yield
        return
    from pricing import store

    request.getfixturevalue("settings").TOLLGATE_SYNC_INTERVAL = 0
    store.forget_active_version()
    yield
    store.forget_active_version()
