"""/metrics as Prometheus reads it: a live `serve --workers 2` called with the openai SDK through a fake upstream,
every worker's counts in one answer, parsed with prometheus_client's own text parser; and who may read it."""

import os
import re
import signal
import threading
from decimal import Decimal

import httpx
import openai
import pytest
from django.test import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from spend.ledger import SpendEntry
from spend.spool import Spool
from tests.e2e.server import MASTER_KEY, GatewayServer
from tests.fakes.upstream import Behaviour, FakeUpstream
from tests.keys.factories import make_key
from tests.polling import wait_until

CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{up}/v1", api_key: sk-upstream-metrics-secret-7}}
    model_info: {{id: openai-metrics-1}}
"""
CALLS = 24


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(parsed: dict, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, found), value in parsed.items() if sample == name and wanted <= found)


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(prompt_tokens=11, completion_tokens=5) as up:
        yield up


@pytest.fixture(scope="module")
def server(tmp_path_factory, upstream):
    with GatewayServer(tmp_path_factory.mktemp("metrics"), CONFIG.format(up=upstream.url), workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def key(server):
    created = server.api(
        "POST", "/key/generate", json={"key_alias": "metrics-app", "max_budget": 5, "models": ["gpt-4o"]}
    )
    return created.json()["key"]


def scrape(server: GatewayServer) -> dict:
    response = httpx.get(f"{server.url}/metrics", headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(response.text)


def worker_pids(server: GatewayServer) -> set[int]:
    """The server processes that have counted something: each writes its own files."""
    names = os.listdir(server.workdir / "metrics")
    return {int(match.group(1)) for name in names if (match := re.fullmatch(r"counter_(\d+)\.db", name))}


@pytest.mark.live
def test_calls_through_every_worker_are_counted_once_in_one_scrape(server, upstream, key):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=30)
    usages = []

    def call():
        completion = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        usages.append(completion.usage)

    def calls_until_both_workers_counted() -> bool:
        # The kernel may hand one worker every connection of a burst: bursts go on until each worker has counted.
        threads = [threading.Thread(target=call) for _ in range(CALLS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(worker_pids(server)) == 2

    wait_until(calls_until_both_workers_counted, lambda: f"counts of two workers: {worker_pids(server)}")
    parsed = scrape(server)

    calls = len(usages)
    assert calls % CALLS == 0 and calls >= CALLS
    mine = {"api_key_alias": "metrics-app"}
    assert total(parsed, "litellm_proxy_total_requests_metric_total", **mine, status_code="200") == calls
    assert total(parsed, "litellm_proxy_failed_requests_metric_total", **mine) == 0
    assert total(parsed, "litellm_input_tokens_metric_total", **mine, model="gpt-4o") == calls * 11
    assert total(parsed, "litellm_output_tokens_metric_total", **mine, model="gpt-4o") == calls * 5
    assert total(parsed, "litellm_request_total_latency_metric_count", **mine) == calls
    assert total(parsed, "litellm_llm_api_latency_metric_count", **mine) == calls
    logged = server.query("SELECT cost FROM spend_spendlog")
    spent = sum(Decimal(str(cost)) for (cost,) in logged)
    assert len(logged) == calls and spent > 0
    assert total(parsed, "litellm_spend_metric_total", **mine) == pytest.approx(float(spent), rel=1e-9)
    left = total(parsed, "litellm_remaining_api_key_budget_metric", **mine)
    assert left == pytest.approx(float(5 - spent), rel=1e-9)
    assert total(parsed, "tollgate_ledger_spool_charges") == 0


@pytest.mark.live
def test_an_upstream_refusal_counts_as_a_failure_of_its_deployment(server, upstream, key):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=30)
    before = scrape(server)
    upstream.script(Behaviour(status=400, message="bad request for metrics"))

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    after = scrape(server)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    deployment = {"model_id": "openai-metrics-1", "exception_status": "400", "litellm_model_name": "gpt-4o"}
    assert grew("litellm_deployment_failure_responses_total", **deployment) == 1
    assert grew("litellm_proxy_failed_requests_metric_total", api_key_alias="metrics-app", exception_status="400") == 1


@pytest.mark.live
def test_a_killed_worker_keeps_its_counts_and_drops_its_calls_in_flight(server, key):
    counted = total(scrape(server), "litellm_proxy_total_requests_metric_total", api_key_alias="metrics-app")
    victim = min(worker_pids(server))
    assert (server.workdir / "metrics" / f"gauge_livesum_{victim}.db").exists()

    os.kill(victim, signal.SIGKILL)

    def scraped_after_the_kill():
        try:
            parsed = scrape(server)
        except (httpx.HTTPError, AssertionError):
            return None
        return parsed if not (server.workdir / "metrics" / f"gauge_livesum_{victim}.db").exists() else None

    parsed = wait_until(scraped_after_the_kill, "a scrape after the kill that forgot the dead worker's gauge")
    assert total(parsed, "litellm_proxy_total_requests_metric_total", api_key_alias="metrics-app") == counted


@pytest.mark.live
def test_metrics_need_the_master_key(server, key):
    missing = httpx.get(f"{server.url}/metrics", timeout=10)
    virtual = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=10)

    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "auth_error"
    assert virtual.status_code == 403


@pytest.mark.django_db(transaction=True)
async def test_metrics_open_to_anyone_when_made_public(settings):
    settings.TOLLGATE_METRICS_PUBLIC = True

    response = await AsyncClient().get("/metrics")

    assert response.status_code == 200
    assert "litellm_proxy_total_requests_metric" in response.content.decode()


@pytest.mark.django_db(transaction=True)
async def test_a_virtual_key_may_not_read_them_in_process(settings):
    from asgiref.sync import sync_to_async

    raw, _ = await sync_to_async(make_key)()

    response = await AsyncClient().get("/metrics", headers={"Authorization": f"Bearer {raw}"})

    assert response.status_code == 403


@pytest.mark.django_db(transaction=True)
async def test_the_spool_depth_is_the_charges_waiting_in_it(settings, tmp_path):
    from datetime import UTC, datetime

    settings.TOLLGATE_SPOOL_DIR = tmp_path
    now = datetime.now(UTC)
    entries = [
        SpendEntry(request_id=f"r{n}", call_type="chat", requested_model="m", start_time=now, end_time=now)
        for n in range(3)
    ]
    Spool(tmp_path, SpendEntry).write(entries)
    Spool(tmp_path, SpendEntry).write(entries[:1])

    response = await AsyncClient().get("/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"})

    assert samples(response.content.decode())[("tollgate_ledger_spool_charges", frozenset())] == 4
