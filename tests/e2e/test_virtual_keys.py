"""Virtual keys end to end: the spec's requests as written, and the openai SDK calling with generated keys.

Runs a two-process server when Redis is configured (limits and budgets shared through Redis), else one process.
"""

import asyncio
import os
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import openai
import pytest

from tests.e2e.server import GatewayServer, within_one_minute
from tests.polling import wait_until

pytestmark = pytest.mark.live

MULTI_PROCESS = bool(os.environ.get("REDIS_URL"))

# The spec's configs, with mock deployments standing in for ollama/huggingface/gpt-4 upstreams.
# "metered" costs exactly 0.01 USD per completion token and nothing for input: the mock's reply is 10 tokens.
CONFIG = """
model_list:
  - model_name: gpt-4
    litellm_params: {model: mock/llama2}
    model_info: {id: gpt4-mock, base_model: gpt-4}
  - model_name: gpt-3.5-turbo
    litellm_params: {model: mock/llama2}
    model_info: {id: gpt35-mock, base_model: gpt-3.5-turbo}
  - model_name: my-free-tier
    litellm_params: {model: mock/zephyr-7b-beta}
    model_info: {id: free-1, input_cost_per_token: 0, output_cost_per_token: 0}
  - model_name: my-paid-tier
    litellm_params: {model: mock/gpt-4}
    model_info: {id: paid-1, base_model: gpt-4}
  - model_name: metered
    litellm_params: {model: mock/metered}
    model_info: {id: metered-1, input_cost_per_token: 0, output_cost_per_token: 0.01}
"""

MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with GatewayServer(tmp_path_factory.mktemp("keys"), CONFIG, workers=2 if MULTI_PROCESS else 1) as live:
        yield live


def generate(server, **body) -> dict:
    response = server.api("POST", "/key/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=20)


def list_models(server, key: str) -> httpx.Response:
    """GET /v1/models on a fresh connection, so either process may answer; it charges nothing."""
    return httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)


def known_to_every_process(server, key: str) -> None:
    """Ten listings with the key: each process that answers keeps the key cached, so a change must reach the cache
    (a process meeting the key for the first time would read it fresh from the database)."""
    assert all(list_models(server, key).status_code == 200 for _ in range(10))


def refused_by_every_process(server, key: str, code: str) -> None:
    """Wait until ten listings in a row refuse `key` with `code`: the process that made a change applies it at once,
    the other within its sync interval (0.2 s)."""

    def refused() -> bool:
        response = list_models(server, key)
        return response.status_code == 401 and response.json()["error"]["code"] == code

    wait_until(lambda: all(refused() for _ in range(10)), f"every process refuses the key with {code}")


def test_spec_generate_temporary_key(server):
    before = datetime.now().astimezone()
    response = server.api(
        "POST", "/key/generate", json={"models": ["gpt-3.5-turbo", "gpt-4", "claude-2"], "duration": "20m"}
    )

    body = response.json()
    assert response.status_code == 200
    assert body["key"].startswith("sk-")
    expires = datetime.fromisoformat(body["expires"])
    assert timedelta(minutes=19) < expires - before < timedelta(minutes=21)


def test_spec_upgrade_downgrade_with_aliases(server):
    key = generate(server, models=["my-free-tier"], aliases={"gpt-3.5-turbo": "my-free-tier"}, duration="30min")["key"]

    raw = sdk(server, key).chat.completions.with_raw_response.create(model="gpt-3.5-turbo", messages=MESSAGES)

    assert raw.headers["x-litellm-model-group"] == "my-free-tier"
    assert raw.headers["x-litellm-model-id"] == "free-1"
    assert {model.id for model in sdk(server, key).models.list()} == {"my-free-tier", "gpt-3.5-turbo"}


def test_spec_key_info_tracks_spend(server):
    key = generate(server, models=["gpt-3.5-turbo", "gpt-4"])["key"]
    client = sdk(server, key)
    costs = [
        Decimal(
            client.chat.completions.with_raw_response.create(model=m, messages=MESSAGES).headers[
                "x-litellm-response-cost"
            ]
        )
        for m in ("gpt-4", "gpt-3.5-turbo", "gpt-4")
    ]

    info = server.api("GET", f"/key/info?key={key}").json()

    assert Decimal(str(info["info"]["spend"])) == sum(costs)
    assert info["info"]["models"] == ["gpt-3.5-turbo", "gpt-4"]
    assert key not in str(info["info"])  # only the hint is ever shown again


def test_model_outside_the_key_list_is_403(server):
    key = generate(server, models=["my-free-tier"])["key"]

    with pytest.raises(openai.PermissionDeniedError) as raised:
        sdk(server, key).chat.completions.create(model="gpt-4", messages=MESSAGES)

    assert raised.value.code == "key_model_access_denied"


def test_expired_key_is_401_naming_the_expiry(server):
    key = generate(server, duration="1s")["key"]
    refused_by_every_process(server, key, "expired_key")

    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(server, key).chat.completions.create(model="gpt-4", messages=MESSAGES)

    assert raised.value.code == "expired_key"
    assert "expired" in raised.value.message.lower()


def test_blocked_key_is_refused_by_every_process(server):
    key = generate(server)["key"]
    sdk(server, key).chat.completions.create(model="gpt-4", messages=MESSAGES)
    known_to_every_process(server, key)

    assert server.api("POST", "/key/block", json={"key": key}).status_code == 200
    refused_by_every_process(server, key, "key_blocked")

    for _ in range(4):  # whichever process answers
        with pytest.raises(openai.AuthenticationError) as raised:
            sdk(server, key).chat.completions.create(model="gpt-4", messages=MESSAGES)
        assert raised.value.code == "key_blocked"


def test_over_budget_key_is_refused_naming_the_budget(server):
    key = generate(server, max_budget=0.5)["key"]  # five calls of 0.1
    client = sdk(server, key)

    spends = []
    for _ in range(5):
        raw = client.chat.completions.with_raw_response.create(model="metered", messages=MESSAGES, max_tokens=10)
        assert raw.headers["x-litellm-key-max-budget"] == "0.5"
        spends.append(raw.headers["x-litellm-key-spend"])
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="metered", messages=MESSAGES, max_tokens=10)

    assert raised.value.code == "budget_exceeded"
    assert spends == ["0", "0.1", "0.2", "0.3", "0.4"]  # as LiteLLM: the key's spend when the call was admitted
    assert "max_budget 0.5" in raised.value.message
    assert Decimal(str(server.api("GET", f"/key/info?key={key}").json()["info"]["spend"])) == Decimal("0.5")


def test_rate_limited_key_gets_429_with_retry_after(server):
    key = generate(server, rpm_limit=2)["key"]
    client = sdk(server, key)
    first = client.chat.completions.with_raw_response.create(model="gpt-4", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4", messages=MESSAGES)

    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4", messages=MESSAGES)

    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 60


def test_fifty_concurrent_calls_cannot_overshoot_a_budget_for_ten(server):
    key = generate(server, max_budget=1.0)["key"]

    async def one(client):
        return await client.post(
            "/v1/chat/completions", json={"model": "metered", "messages": MESSAGES, "max_tokens": 10}
        )

    async def burst():
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
            return await asyncio.gather(*[one(client) for _ in range(50)])

    responses = asyncio.run(burst())

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [400] * 40
    assert all(r.json()["error"]["code"] == "budget_exceeded" for r in responses if r.status_code == 400)
    info = server.api("GET", f"/key/info?key={key}").json()["info"]
    assert Decimal(str(info["spend"])) == Decimal("1.0")


@pytest.mark.skipif(not MULTI_PROCESS, reason="two server processes share limits through Redis")
def test_rate_limit_is_held_by_two_processes_together(server):
    key = generate(server, rpm_limit=10)["key"]
    within_one_minute()

    async def burst():
        headers = {"Authorization": f"Bearer {key}"}
        # Fresh connections each time, so both worker processes answer.
        results = []
        for _ in range(30):
            async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
                results.append(await client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": MESSAGES}))
        return results

    responses = asyncio.run(burst())

    assert [r.status_code for r in responses].count(200) == 10
    assert [r.status_code for r in responses].count(429) == 20


def test_management_api_refuses_virtual_keys(server):
    key = generate(server)["key"]

    response = httpx.post(f"{server.url}/key/generate", headers={"Authorization": f"Bearer {key}"}, json={})

    assert response.status_code == 401


def _metered_call(server, key: str):
    return sdk(server, key).chat.completions.with_raw_response.create(model="metered", messages=MESSAGES, max_tokens=10)


def _refused_as(server, key: str, error) -> str:
    with pytest.raises(error) as raised:
        _metered_call(server, key)
    return raised.value.code


def test_a_regenerated_key_keeps_its_spend_logs_and_budget(server):
    old = generate(server, max_budget=0.5)["key"]  # five calls of 0.1
    for _ in range(3):
        _metered_call(server, old)
    known_to_every_process(server, old)

    regenerated = server.api("POST", "/key/regenerate", json={"key": old})
    assert regenerated.status_code == 200, regenerated.text
    new = regenerated.json()["key"]
    refused_by_every_process(server, old, "invalid_api_key")
    spends = [_metered_call(server, new).headers["x-litellm-key-spend"] for _ in range(2)]

    for _ in range(4):  # whichever process answers
        assert _refused_as(server, old, openai.AuthenticationError) == "invalid_api_key"
        assert _refused_as(server, new, openai.BadRequestError) == "budget_exceeded"
    assert spends == ["0.3", "0.4"]  # the budget counters carried on from the old secret's calls
    info = server.api("GET", f"/key/info?key={new}").json()["info"]
    assert Decimal(str(info["spend"])) == Decimal("0.5")
    logs = server.api("GET", "/spend/logs", params={"api_key": new}).json()
    assert [Decimal(str(log["spend"])) for log in logs] == [Decimal("0.1")] * 5
    assert {log["api_key"] for log in logs} == {info["token"]}
    for args in [(), ("--fix",)]:  # the stored spend is the sum of the key's logs: --fix has nothing to correct
        reconcile = server.manage("reconcile_spend", *args)
        assert "Spend reconciles" in reconcile.stdout, reconcile.stdout
    ((stored,),) = server.query("SELECT spend FROM keys_virtualkey WHERE token_hash = %s", info["token"])
    assert Decimal(str(stored)) == Decimal("0.5")  # PostgreSQL gives a Decimal, SQLite the stored text


def test_a_key_regenerated_past_its_budget_is_still_past_it(server):
    old = generate(server, max_budget=0.1)["key"]
    _metered_call(server, old)
    assert _refused_as(server, old, openai.BadRequestError) == "budget_exceeded"
    known_to_every_process(server, old)

    new = server.api("POST", "/key/regenerate", json={"key": old}).json()["key"]
    refused_by_every_process(server, old, "invalid_api_key")

    assert _refused_as(server, new, openai.BadRequestError) == "budget_exceeded"
    assert _refused_as(server, old, openai.AuthenticationError) == "invalid_api_key"
