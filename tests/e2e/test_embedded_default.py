"""The embedded default (no REDIS_URL, no Celery worker or beat) is a complete system: calls show in the spend
overview and /global/spend/report within a second, and the server rolls spend up by itself."""

import re
import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import openai
import pytest

from tests.e2e.server import GatewayServer
from tests.polling import wait_until

pytestmark = pytest.mark.live

CONFIG = """
model_list:
  - model_name: metered
    litellm_params: {model: mock/metered}
    model_info: {id: metered-1, input_cost_per_token: 0, output_cost_per_token: 0.00001}
"""
ADMIN_USER, ADMIN_PASSWORD = "finance", "finance-password-e2e-7261"
CALLS = 5
COST_PER_CALL = Decimal("0.0001")  # the mock's reply is 10 tokens
OVERVIEW = "/admin/spend/spendlog/overview/"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # REDIS_URL empty: the embedded default even when the suite runs with Redis. A rollup every half second.
    env = {"REDIS_URL": "", "SPEND_ROLLUP_SECONDS": "0.5"}
    with GatewayServer(tmp_path_factory.mktemp("embedded"), CONFIG, env=env) as live:
        live.manage(
            "createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "finance@example.com",
            env_extra={"DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
        )  # fmt: skip
        yield live


def _admin(server: GatewayServer) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=10)
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/",
        data={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": f"{server.url}/admin/login/"},
    )
    assert response.status_code == 302, response.text
    return client


def _overview_figures(client: httpx.Client) -> tuple[Decimal, int]:
    page = client.get(OVERVIEW).text
    spend = re.search(r'id="total-spend" data-exact="([^"]+)"', page).group(1)
    calls = re.search(r'id="total-calls"[^>]*>(\d+)<', page).group(1)
    return Decimal(spend), int(calls)


def _report_figures(server: GatewayServer) -> tuple[Decimal, int]:
    today = datetime.now(UTC).date().isoformat()
    response = server.api("GET", "/global/spend/report", params={"start_date": today, "end_date": today,
                                                                   "group_by": "model"})  # fmt: skip
    assert response.status_code == 200, response.text
    groups = [group for day in response.json() for group in day["models"]]
    spend = sum((Decimal(str(detail["spend"])) for group in groups for detail in group["metadata"]), Decimal(0))
    return spend, sum(detail["requests"] for group in groups for detail in group["metadata"])


def _call(server: GatewayServer, times: int) -> None:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.master_key, max_retries=0, timeout=20) as sdk:
        for _ in range(times):
            sdk.chat.completions.create(model="metered", messages=[{"role": "user", "content": "Hello"}])


def test_calls_show_in_the_overview_and_the_report_within_a_second(server):
    admin = _admin(server)
    try:
        _call(server, CALLS)
        called = time.monotonic()
        expected = (COST_PER_CALL * CALLS, CALLS)
        assert _overview_figures(admin) == expected
        assert _report_figures(server) == expected
        assert time.monotonic() - called < 1.0
    finally:
        admin.close()


def test_the_server_rolls_spend_up_by_itself(server):
    _call(server, 1)
    last_log_id = server.query("SELECT MAX(id) FROM spend_spendlog")[0][0] or 0
    wait_until(
        lambda: server.query("SELECT COALESCE(MAX(last_log_id), 0) FROM spend_rollupstate")[0][0] >= last_log_id,
        lambda: f"a rollup:\n{server.log()[-3000:]}",
        timeout=15,
        interval=0.1,
    )
    assert "periodic task" not in server.log()  # no run failed
