"""The benchmark's floor is Tollgate's serving stack minus Tollgate's work: the same uvicorn settings as `manage.py
serve`, the same ProxyHandler, the same GC freeze and threshold, forwarding through the gateway's upstream pool.
If it parts from any of these, Tollgate can out-run it and it is no longer an upper bound (issue 20)."""

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from django.core.management import call_command

from bench.floor import serve as floor_serve
from bench.services import free_port
from gateway.memory import YOUNG_COLLECTION_THRESHOLD
from tests.fakes.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]


def _uvicorn_call(monkeypatch, start) -> tuple[tuple, dict]:
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    start()
    assert len(calls) == 1
    return calls[0]


def _comparable(kwargs: dict) -> dict:
    # The protocol is a functools.partial, equal only to itself: compare what it calls and with what.
    http = kwargs["http"]
    return {**kwargs, "http": (http.func, http.args, http.keywords)}


def test_the_floor_runs_on_the_server_serve_runs_tollgate_on(monkeypatch, tmp_path):
    monkeypatch.delenv("TOLLGATE_CONFIG", raising=False)
    # serve exports its metrics folder for its workers: set here, so that it is taken back after the test and the
    # servers later tests start make their own.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    monkeypatch.delenv("TOLLGATE_HEADER_TIMEOUT", raising=False)
    served_args, served = _uvicorn_call(monkeypatch, lambda: call_command("serve", stdout=io.StringIO()))
    floor_args, floor = _uvicorn_call(monkeypatch, lambda: floor_serve.main(["--port", str(served["port"])]))
    assert served_args == ("gateway.asgi:application",)
    assert floor_args == ("bench.floor.asgi:application",)
    assert _comparable(floor) == _comparable(served)


@pytest.fixture
def floor_server(tmp_path):
    with FakeUpstream(reply="floor test") as upstream:
        port = free_port()
        env = {
            **os.environ,
            "FLOOR_UPSTREAM": f"{upstream.url}/v1/chat/completions",
            "FLOOR_STREAM_UPSTREAM": f"{upstream.url}/v1/chat/completions",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        log = tmp_path / "floor.log"
        argv = [sys.executable, "-m", "bench.floor.serve", "--port", str(port)]
        with (
            open(log, "wb") as output,
            subprocess.Popen(argv, cwd=ROOT, env=env, stdout=output, stderr=output) as process,
        ):
            base = f"http://127.0.0.1:{port}"
            try:
                _wait_until_live(base, process, log)
                yield base, upstream
            finally:
                process.terminate()
                process.wait(15)


def _wait_until_live(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the floor exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health/liveliness", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("the floor did not answer within 60 s")


def test_the_floor_serves_with_tollgates_handler_and_process_tuning(floor_server):
    base, _ = floor_server
    tuning = httpx.get(f"{base}/floor/tuning", timeout=5).json()
    assert tuning["handler"] == "ProxyHandler"
    assert tuning["gc_frozen_objects"] > 0  # start-up's objects frozen out of the collector, as serve's lifespan does
    assert tuning["gc_young_threshold"] == YOUNG_COLLECTION_THRESHOLD


def test_the_floor_forwards_answers_and_streams_unchanged(floor_server):
    base, upstream = floor_server
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "floor test"
    streamed = httpx.post(f"{base}/stream/v1/chat/completions", json={**body, "stream": True}, timeout=10)
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(
        choice["delta"].get("content") or ""
        for event in events[:-1]
        for choice in orjson.loads(event).get("choices", [])
    )
    assert text == "floor test"
    assert [request.json["model"] for request in upstream.requests] == ["gpt-4o-mini", "gpt-4o-mini"]
