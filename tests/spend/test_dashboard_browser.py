"""The spend overview in a real browser: headless Chromium logs into the admin, opens the dashboard, and the chart
it draws adds up, to the last decimal place, to the spend logs in the server's database.

Chromium is driven over the DevTools protocol (a websocket, with the `websockets` package uvicorn already brings):
it types into the login form and submits it, so the login is the real form POST with its CSRF token and cookie.
"""

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests import secrets_audit
from tests.e2e.server import GatewayServer

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM}"),
]

# A mock deployment with a custom price: 0.000003 USD per prompt token, 0.000015 per completion token.
CONFIG = """
model_list:
  - model_name: priced-mock
    litellm_params: {model: mock/priced}
    model_info: {id: priced-mock-1, input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}
"""
ADMIN_USER, ADMIN_PASSWORD = "finance", "correct-horse-battery-staple-42"
OVERVIEW = "/admin/spend/spendlog/overview/"
PAGE_WIDTH, PAGE_HEIGHT = 1280, 1900


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

    def __init__(self, socket):
        self.socket = socket
        self._ids = itertools.count(1)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=PAGE_WIDTH, height=PAGE_HEIGHT,
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
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, predicate_js: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(predicate_js):
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {predicate_js} on {self.evaluate('location.href')}")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def type_into(self, selector: str, text: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", session=True, text=text)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory):
    with GatewayServer(tmp_path_factory.mktemp("dashboard"), CONFIG) as server:
        server.manage(
            "createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "finance@example.com",
            env_extra={"DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
        )  # fmt: skip
        # Four weeks of synthetic traffic (within the overview's default 30 days), then calls proxied for real.
        server.manage("generate_spend_data", "--logs", "600", "--days", "27", "--teams", "5", "--keys", "20")
        team = server.api("POST", "/team/new", json={"team_alias": "Browser team", "max_budget": 50}).json()
        key = server.api("POST", "/key/generate", json={"team_id": team["team_id"]}).json()["key"]
        for _ in range(3):
            response = httpx.post(
                f"{server.url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "priced-mock", "messages": [{"role": "user", "content": "What did this cost?"}]},
                timeout=30,
            )
            assert response.status_code == 200, response.text
        server.manage("shell", "-c", "from spend.tasks import rollup_spend; rollup_spend()")
        yield server


@pytest.fixture
def browser(tmp_path):
    from websockets.sync.client import connect

    profile = tmp_path / "chromium-profile"
    process = _launch_chromium(profile, tmp_path / "chromium.log")
    try:
        with connect(_devtools_url(process, profile), max_size=None, open_timeout=10) as socket:
            yield DevTools(socket)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def _daily_costs_in_database(server: GatewayServer, start: date, end: date) -> dict[date, Decimal]:
    """Exact cost per local day of every spend log, summed here in Decimal (SQLite stores money as text)."""
    zone = ZoneInfo(server.env.get("TIME_ZONE") or "UTC")
    totals: dict[date, Decimal] = defaultdict(Decimal)
    for start_time, cost in server.query("SELECT start_time, cost FROM spend_spendlog"):
        moment = start_time if isinstance(start_time, datetime) else datetime.fromisoformat(start_time)
        day = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone).date()
        if start <= day <= end:
            totals[day] += Decimal(str(cost))
    return {day: total for day, total in totals.items() if total}


def _log_in_to_the_overview(browser: DevTools, server: GatewayServer) -> None:
    browser.navigate(f"{server.url}/admin/login/?next={OVERVIEW}")
    browser.type_into("#id_username", ADMIN_USER)
    browser.type_into("#id_password", ADMIN_PASSWORD)
    browser.evaluate("document.querySelector('#login-form input[type=submit]').click()")
    browser.wait_for(
        f"location.pathname === {json.dumps(OVERVIEW)} && document.readyState === 'complete'"
        " && !!document.querySelector('#daily-spend-chart')"
    )


def test_chromium_logs_in_and_the_dashboard_chart_adds_up_to_the_logs(dashboard_server, browser, tmp_path):
    server = dashboard_server

    _log_in_to_the_overview(browser, server)
    page = browser.evaluate(
        """(() => {
            const chart = document.querySelector('#daily-spend-chart');
            return {
                total: chart.dataset.total,
                exact: document.querySelector('#total-spend').dataset.exact,
                bars: [...chart.querySelectorAll('rect.bar')].map(bar => ({
                    day: bar.dataset.day, value: bar.dataset.value, height: bar.getBBox().height})),
                axisTitles: [...chart.querySelectorAll('text.axis-title')].map(text => text.textContent.trim()),
                yTicks: [...chart.querySelectorAll('text')].map(text => text.textContent.trim())
                    .filter(label => label.startsWith('$')),
                start: document.querySelector('#id_start').value,
                end: document.querySelector('#id_end').value,
            };
        })()"""
    )
    screenshot = browser.screenshot(tmp_path / "spend-overview.png")
    print(f"dashboard screenshot: {screenshot}")

    start, end = date.fromisoformat(page["start"]), date.fromisoformat(page["end"])
    logged = _daily_costs_in_database(server, start, end)
    drawn: dict[date, Decimal] = defaultdict(Decimal)
    for bar in page["bars"]:
        drawn[date.fromisoformat(bar["day"])] += Decimal(bar["value"])
    assert end - start == timedelta(days=29)
    assert len(logged) >= 20  # the chart has a month of days to draw, not one bar
    assert dict(drawn) == logged
    assert Decimal(page["total"]) == Decimal(page["exact"]) == sum(logged.values())
    assert all(bar["height"] > 0 for bar in page["bars"])
    assert page["axisTitles"] == ["Day", "Spend (USD)"]
    assert len(page["yTicks"]) >= 3
    assert screenshot.stat().st_size > 20_000


def test_every_bar_fits_under_the_top_tick_and_the_chart_fits_the_page(dashboard_server, browser):
    _log_in_to_the_overview(browser, dashboard_server)

    layout = browser.evaluate(
        """(() => {
            const chart = document.querySelector('#daily-spend-chart');
            const gridlines = [...chart.querySelectorAll('line.grid')].map(line => line.y1.baseVal.value);
            const bars = [...chart.querySelectorAll('rect.bar')].map(bar => bar.y.baseVal.value);
            return {topTick: Math.min(...gridlines), highestBar: Math.min(...bars),
                    chartRight: chart.getBoundingClientRect().right, pageWidth: document.documentElement.clientWidth};
        })()"""
    )

    assert layout["highestBar"] >= layout["topTick"] - 0.5, layout
    assert layout["chartRight"] <= layout["pageWidth"], layout
