"""The money promise tried from outside against a live server: every upstream request ends as one ledger row, stored
totals equal their logs, and budgets hold, under a poisoned call among other callers' calls, a server killed with
SIGKILL mid-stream, and Redis losing its counters."""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import orjson
import pytest
import redis

from tests.e2e.server import GatewayServer
from tests.e2e.services import PrivateRedis
from tests.e2e.test_crash_recovery import _kill_server
from tests.fakes.upstream import Behaviour, FakeUpstream
from tests.gateway.test_reservation_bound import most_billed
from tests.polling import wait_until

pytestmark = pytest.mark.live

INPUT, OUTPUT = Decimal("0.000001"), Decimal("0.000002")
CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{up}/v1", api_key: sk-money-integrity-upstream-3}}
    model_info: {{id: openai-1, input_cost_per_token: {input}, output_cost_per_token: {output}}}
"""
WITH_REDIS = bool(os.environ.get("REDIS_URL"))


@pytest.fixture
def upstream():
    with FakeUpstream(reply="one two three four five six seven eight nine ten " * 3) as up:
        yield up


@pytest.fixture
def server(upstream, tmp_path):
    config = CONFIG.format(up=upstream.url, input=INPUT, output=OUTPUT)
    with GatewayServer(tmp_path, config, workers=2 if WITH_REDIS else 1) as live:
        yield live


def new_key(server: GatewayServer, **settings) -> dict:
    response = server.api("POST", "/key/generate", json={"duration": "1d", **settings})
    assert response.status_code == 200, response.text
    return response.json()


def logs_of(server: GatewayServer, key: dict) -> list[tuple]:
    rows = server.query(
        "SELECT request_id, status, cost, prompt_tokens, completion_tokens FROM spend_spendlog WHERE key_hash = %s",
        key["token"],
    )
    return [(request_id, status, Decimal(str(cost)), *tokens) for request_id, status, cost, *tokens in rows]


def assert_reconciles(server: GatewayServer) -> None:
    reconcile = server.manage("reconcile_spend", check=False)
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    assert "Spend reconciles" in reconcile.stdout


def test_a_poisoned_call_among_other_callers_is_refused_before_upstream_and_takes_no_one_with_it(server, upstream):
    victims = [new_key(server) for _ in range(4)]
    poisoner = new_key(server)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    poisons = [{"note": "a\u0000b"}, {"tags": ["\u0000"]}, {"x\u0000": 1}]

    async def load():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

            async def call(key, extra):
                response = await client.post(
                    "/v1/chat/completions", json={**body, **extra}, headers={"Authorization": f"Bearer {key['key']}"}
                )
                return key, response.status_code

            calls = [call(victims[n % 4], {"metadata": {"n": n}}) for n in range(48)]
            calls += [call(poisoner, {"metadata": poison}) for poison in poisons * 4]
            return await asyncio.gather(*calls)

    outcomes = asyncio.run(load())

    assert [status for key, status in outcomes if key is poisoner] == [400] * 12
    assert [status for key, status in outcomes if key is not poisoner] == [200] * 48
    assert len(upstream.requests) == 48  # the poisoned calls never left
    assert sum(len(logs_of(server, key)) for key in victims) == 48
    assert logs_of(server, poisoner) == []
    assert_reconciles(server)


def test_a_server_killed_mid_stream_leaves_one_charged_row_per_request_sent_and_frees_its_slots(server, upstream):
    upstream.behaviour = Behaviour(chunk_delay=0.2)  # 30 words: 6 s a stream
    key = new_key(server, max_parallel_requests=12, max_budget=10)

    def stream(_):
        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key["key"], max_retries=0, timeout=30)
        try:
            for _chunk in sdk.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "count to thirty"}], stream=True
            ):
                pass
        except (openai.APIError, httpx.HTTPError):
            return  # cut by the kill

    with ThreadPoolExecutor(max_workers=12) as clients:
        streams = [clients.submit(stream, n) for n in range(12)]
        wait_until(lambda: upstream.open_requests >= 12, "12 streams under way", timeout=20, interval=0.1)
        wait_until(
            lambda: len(journaled_words(server)) >= 12,
            "every stream's words relayed on record",
            timeout=20,
            interval=0.1,
        )
        _kill_server(server)
        for done in streams:
            done.result()
    sent = len(upstream.requests)
    server.start()  # the same database and spool directory, a fresh process

    wait_until(lambda: len(logs_of(server, key)) >= sent, "a log per request sent", timeout=20, interval=0.1)
    logs = logs_of(server, key)
    assert sent == 12 and len(logs) == 12
    assert {status for _, status, *_ in logs} == {"interrupted"}
    assert all(cost > 0 and prompt > 0 and completion > 0 for _, _, cost, prompt, completion in logs)
    assert_reconciles(server)
    # The dead process's 12 parallel slots came back: a new call is admitted within seconds.
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key["key"], max_retries=0, timeout=30)
    upstream.behaviour = Behaviour()
    admitted = wait_until(lambda: _admitted(sdk), "a free parallel slot", timeout=15, interval=0.1)
    assert admitted


def journaled_words(server: GatewayServer) -> set[str]:
    """The calls whose relayed words the server's spend journal holds (read as an operator could)."""
    calls = set()
    for path in (server.workdir / "spool" / "journal").glob("*.journal"):
        for line in path.read_bytes().splitlines():
            try:
                entry = orjson.loads(line).get("e")
            except orjson.JSONDecodeError:
                continue  # a line being written
            if entry and entry["completion_tokens"] > 0:
                calls.add(entry["request_id"])
    return calls


def _admitted(sdk: openai.OpenAI) -> bool:
    try:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "again"}])
    except openai.RateLimitError:
        return False
    return True


@pytest.mark.skipif(not WITH_REDIS, reason="needs REDIS_URL: the shared counters")
def test_an_exhausted_key_stays_exhausted_when_redis_loses_its_counters(server):
    key = new_key(server, max_budget=0.001)  # each call reserves about 0.00026 and costs 0.000026
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key["key"], max_retries=0, timeout=30)
    prompt = [{"role": "user", "content": "spend it " * 20}]
    refused = 0
    for _ in range(60):
        try:
            sdk.chat.completions.create(model="gpt-4o", messages=prompt, max_tokens=5)
        except openai.BadRequestError as exc:
            assert exc.body["type"] == "budget_exceeded"
            refused += 1
    spent = sum(cost for _, _, cost, *_ in logs_of(server, key))
    assert 0 < refused < 60 and spent <= Decimal("0.001")

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    wiped = [client.delete(name) for name in client.scan_iter(match="tollgate:limits:*")]
    client.close()
    assert wiped

    for _ in range(10):
        with pytest.raises(openai.BadRequestError):
            sdk.chat.completions.create(model="gpt-4o", messages=prompt, max_tokens=5)
    assert sum(cost for _, _, cost, *_ in logs_of(server, key)) == spent
    assert_reconciles(server)


def test_with_redis_down_two_processes_still_hold_one_budget(tmp_path):
    with PrivateRedis() as redis_server, FakeUpstream() as up:
        up.billing = most_billed  # each call costs what it reserved: an overshoot would show in the spend
        config = CONFIG.format(up=up.url, input=INPUT, output=OUTPUT)
        with GatewayServer(tmp_path, config, workers=2, env={"REDIS_URL": redis_server.url}) as server:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "a" * 200}], "max_tokens": 50}
            prompt, completion = most_billed(body)
            one_call = prompt * INPUT + completion * OUTPUT
            key = new_key(server, max_budget=float(one_call * 20))
            redis_server.stop()

            async def load():
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                    headers = {"Authorization": f"Bearer {key['key']}"}
                    calls = [client.post("/v1/chat/completions", json=body, headers=headers) for _ in range(40)]
                    return [response.status_code for response in await asyncio.gather(*calls)]

            statuses = asyncio.run(load())
            spent = sum(cost for _, _, cost, *_ in logs_of(server, key))
            log = server.log()
            assert_reconciles(server)

    assert "budgets by the database" in log
    assert set(statuses) == {200, 400} and statuses.count(200) <= 20
    assert spent <= one_call * 20
