"""The spend overview in a real browser: headless Chromium logs into the admin, opens the dashboard, and the chart
it draws adds up, to the last decimal place, to the spend logs in the server's database.

Chromium is driven over the DevTools protocol by tests/browser.py, which logs in through the admin's login form.
"""

import csv
import io
import re
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from pricing.money import usd
from tests.browser import DevTools, admin_gateway, chromium, log_in, needs_chromium
from tests.e2e.server import GatewayServer

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]

ADMIN_USER, ADMIN_PASSWORD = "finance", "correct-horse-battery-staple-42"
OVERVIEW = "/admin/spend/spendlog/overview/"


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory):
    with admin_gateway(tmp_path_factory.mktemp("dashboard"), ADMIN_USER, ADMIN_PASSWORD) as server:
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
    with chromium(tmp_path) as browser:
        yield browser


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
    log_in(browser, server.url, ADMIN_USER, ADMIN_PASSWORD, next_path=OVERVIEW)
    browser.wait_for("!!document.querySelector('#daily-spend-chart')")


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
    screenshot = browser.screenshot_artifact("spend-overview")
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
                    chartRight: chart.getBoundingClientRect().right, pageWidth: document.documentElement.clientWidth,
                    contentWidth: document.documentElement.scrollWidth};
        })()"""
    )

    assert layout["highestBar"] >= layout["topTick"] - 0.5, layout
    assert layout["chartRight"] <= layout["pageWidth"], layout
    assert layout["contentWidth"] <= layout["pageWidth"], layout  # nothing behind a sideways scroll at 1280 px


def _spend_table(browser: DevTools) -> dict[str, dict]:
    return browser.evaluate(
        """Object.fromEntries([...document.querySelectorAll('#spend-by-stack tbody tr[data-name]')].map(row => {
            const cost = row.querySelector('td.cost');
            const box = cost.getBoundingClientRect();
            return [row.dataset.name, {shown: cost.textContent.trim(), exact: cost.dataset.exact,
                                       calls: row.cells[2].textContent.trim(), costRight: box.right,
                                       costVisible: box.width > 0 && box.right <= document.documentElement.clientWidth}];
        }))"""
    )


def test_five_calls_show_at_once_by_name_in_every_stack_and_the_csv_matches_the_page(dashboard_server, browser):
    server = dashboard_server
    team = server.api("POST", "/team/new", json={"team_alias": "Five calls team", "max_budget": 20}).json()
    user = server.api("POST", "/user/new", json={"user_email": "five@example.com", "auto_create_key": False}).json()
    key = server.api("POST", "/key/generate", json={"team_id": team["team_id"], "user_id": user["user_id"],
                                                    "key_alias": "five-calls-app"}).json()["key"]  # fmt: skip
    log_in(browser, server.url, ADMIN_USER, ADMIN_PASSWORD, next_path=OVERVIEW)
    costs = []
    for _ in range(5):
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "priced-mock", "messages": [{"role": "user", "content": "Five calls"}],
                  "metadata": {"tags": ["browser-five"]}, "user": "acme-corp"},
            timeout=30,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        costs.append(Decimal(response.headers["x-litellm-response-cost"]))
    answered = time.monotonic()
    spent = sum(costs, Decimal(0))

    # No rollup has run since: the overview adds the logs not yet rolled up, so the calls are there at once.
    narrowed = f"{server.url}{OVERVIEW}?team={team['team_id']}"
    deadline = answered + 1.0
    while True:
        browser.navigate(f"{narrowed}&stack=key")
        table = _spend_table(browser)
        if table.get("five-calls-app", {}).get("calls") == "5" or time.monotonic() > deadline:
            break
    shown_after = time.monotonic() - answered
    print(f"five calls on the overview {shown_after * 1000:.0f} ms after the last one was answered")
    assert table["five-calls-app"]["calls"] == "5", table
    assert shown_after <= 1.0

    names = {"key": "five-calls-app", "team": "Five calls team", "user": "five@example.com", "customer": "acme-corp",
             "model": "priced-mock", "tag": "browser-five"}  # fmt: skip
    for stack, name in names.items():
        browser.navigate(f"{narrowed}&stack={stack}")
        table = _spend_table(browser)
        browser.screenshot_artifact(f"spend-overview-five-calls-by-{stack}")
        assert list(table) == [name], (stack, table)
        row = table[name]
        assert (Decimal(row["exact"]), row["calls"]) == (spent, "5")
        assert row["shown"] == usd(spent) and re.fullmatch(r"\$\d[\d,]*\.\d{2,6}", row["shown"]), row
        assert row["costVisible"], row  # at 1280 px, without scrolling sideways
        legend = browser.evaluate("[...document.querySelectorAll('#daily-spend-chart g.legend title')]"
                                  ".map(title => title.textContent)")  # fmt: skip
        assert legend == [name]
        assert browser.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")

        csv_url = browser.evaluate("document.querySelector('#csv-export').href")
        exported = list(csv.DictReader(io.StringIO(browser.fetch_text(csv_url))))
        assert {line[stack] for line in exported} == {name}
        assert sum(Decimal(line["cost_usd"]) for line in exported) == Decimal(row["exact"])
        assert sum(int(line["calls"]) for line in exported) == 5
