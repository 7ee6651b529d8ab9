"""Headless Chromium for the admin's browser tests, driven over the DevTools protocol.

The protocol is a websocket (with the `websockets` package uvicorn already brings), so no browser driver is
installed. `admin_browser` logs in by typing into the admin's login form and submitting it: the real form POST with
its CSRF token and cookie. Screenshots go to test-artifacts/screenshots/ (gitignored), where CI keeps them.

    with chromium(tmp_path) as browser:
        log_in(browser, server.url, "finance", password, next_path="/admin/")
        browser.screenshot_artifact("admin-index")
"""

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import secrets_audit
from tests.e2e.server import GatewayServer

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
PAGE_WIDTH, PAGE_HEIGHT = 1280, 1900

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM}")
# A mock deployment with a custom price: 0.000003 USD per prompt token, 0.000015 per completion token.
PRICED_MOCK_CONFIG = """
model_list:
  - model_name: priced-mock
    litellm_params: {model: mock/priced}
    model_info: {id: priced-mock-1, input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}
"""


@contextmanager
def admin_gateway(workdir: Path, username: str, password: str) -> Iterator[GatewayServer]:
    """A live server of the embedded default (SQLite, no Celery) serving ``priced-mock``, with an admin login."""
    with GatewayServer(workdir, PRICED_MOCK_CONFIG) as server:
        server.manage("createsuperuser", "--noinput", "--username", username, "--email", f"{username}@example.com",
                      env_extra={"DJANGO_SUPERUSER_PASSWORD": password})  # fmt: skip
        yield server


def _launch_chromium(profile: Path, log_path: Path) -> subprocess.Popen:
    secrets_audit.register_log_file(log_path, "Chromium's output")
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own: the zygote and renderers are killed with it
        )  # fmt: skip


def _devtools_url(process: subprocess.Popen, profile: Path, timeout=20.0) -> str:
    """The browser's websocket, from the DevToolsActivePort file Chromium writes once it listens."""
    active_port = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        lines = active_port.read_text().split() if active_port.exists() else []
        if len(lines) == 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.05)
    raise RuntimeError("chromium did not open its DevTools port in time")


class DevTools:
    """One page of a headless Chromium, over the DevTools protocol (a flat session on the browser's websocket)."""

    def __init__(self, socket, width: int = PAGE_WIDTH, height: int = PAGE_HEIGHT):
        self.socket = socket
        self._ids = itertools.count(1)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.resize(width, height)

    def resize(self, width: int, height: int = PAGE_HEIGHT) -> None:
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def call(self, method: str, *, session: bool = False, timeout: float = 20.0, **params) -> dict:
        message_id = next(self._ids)
        message = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:  # events arrive in between; recv raises TimeoutError once the deadline passes
            reply = json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)  # fmt: skip
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, predicate_js: str, timeout: float = 20.0):
        """The predicate's first truthy value, polled until the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := self.evaluate(predicate_js):
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {predicate_js} on {self.evaluate('location.href')}")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def type_into(self, selector: str, text: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", session=True, text=text)

    def fetch_text(self, url: str) -> str:
        """A page fetched by the browser with its cookies (a CSV export, say), as text."""
        return self.evaluate(f"fetch({json.dumps(url)}, {{credentials: 'same-origin'}}).then(r => r.text())")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def screenshot_artifact(self, name: str) -> Path:
        """A screenshot kept as a test artifact: test-artifacts/screenshots/<name>.png."""
        return self.screenshot(SCREENSHOTS / f"{name}.png")


@contextmanager
def chromium(workdir: Path, width: int = PAGE_WIDTH) -> Iterator[DevTools]:
    """A fresh headless Chromium (its own profile under ``workdir``), killed with its whole process group after."""
    from websockets.sync.client import connect

    profile = workdir / "chromium-profile"
    process = _launch_chromium(profile, workdir / "chromium.log")
    try:
        with connect(_devtools_url(process, profile), max_size=None, open_timeout=10) as socket:
            yield DevTools(socket, width)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def log_in(browser: DevTools, base_url: str, username: str, password: str, next_path: str = "/admin/") -> None:
    """Log into the admin through its login form; returns once ``next_path`` has loaded."""
    browser.navigate(f"{base_url}/admin/login/?next={next_path}")
    browser.type_into("#id_username", username)
    browser.type_into("#id_password", password)
    browser.evaluate("document.querySelector('#login-form input[type=submit]').click()")
    browser.wait_for(f"location.pathname === {json.dumps(next_path)} && document.readyState === 'complete'")
