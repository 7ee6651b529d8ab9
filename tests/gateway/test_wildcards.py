"""Wildcard deployments (`model_name: "openai/*"`): which deployment a name reaches, the model sent upstream, the
price, the spend log, keys' wildcard model lists and /v1/models."""

from decimal import Decimal

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from gateway.models import Deployment
from gateway.proxy import wildcards
from gateway.proxy.state import gateway_state
from gateway.proxy.wildcards import served_model
from spend.models import SpendLog
from tests.e2e.server import MASTER_KEY
from tests.keys.factories import make_key

pytestmark = pytest.mark.django_db(transaction=True)

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


async def chat(model: str, headers=AUTH):
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
    return await AsyncClient().post("/v1/chat/completions", body, content_type="application/json", headers=headers)


@pytest.fixture
def openai_wildcard(db, upstream):
    upstream.prompt_tokens, upstream.completion_tokens = 1000, 100
    return Deployment.objects.create(
        model_id="wild-openai",
        model_name="openai/*",
        litellm_model="openai/*",
        api_base=f"{upstream.url}/v1",
        api_key="sk-wildcard-upstream-4417",
    )


@pytest.mark.parametrize(
    ("litellm_model", "parts", "requested", "served"),
    [
        ("openai/*", ("gpt-4o-mini",), "openai/gpt-4o-mini", "openai/gpt-4o-mini"),
        ("openai/*", ("gpt-4o",), "gpt-4o", "openai/gpt-4o"),  # model_name "*"
        ("*", ("anthropic/claude-3-5-haiku",), "anthropic/claude-3-5-haiku", "anthropic/claude-3-5-haiku"),
        ("openai/fo::*::static::*", ("hi", "there"), "fo::hi::static::there", "openai/fo::hi::static::there"),
        ("openai/gpt-4o", ("anything",), "custom/anything", "openai/gpt-4o"),  # no `*`: as written
        ("openai/*", ("a", "b"), "x/a/b", "x/a/b"),  # more parts than `*`: the requested name, as LiteLLM
    ],
)
def test_the_served_model_puts_what_the_name_matched_in_place_of_the_stars(litellm_model, parts, requested, served):
    assert served_model(litellm_model, parts, requested) == served


async def test_a_wildcard_calls_upstream_with_the_model_asked_for_priced_and_logged_as_that_model(
    openai_wildcard, upstream
):
    response = await chat("openai/gpt-4o-mini")

    assert response.status_code == 200, response.content
    (forwarded,) = upstream.requests
    assert forwarded.json["model"] == "gpt-4o-mini"
    assert forwarded.headers["authorization"] == "Bearer sk-wildcard-upstream-4417"
    # gpt-4o-mini: 0.15 USD / 1M input, 0.60 USD / 1M output (gpt-4o would cost 2.5 and 10).
    expected = 1000 * Decimal("1.5E-7") + 100 * Decimal("6E-7")
    assert Decimal(response["x-litellm-response-cost"]) == expected
    assert response["x-litellm-model-id"] == "wild-openai"
    assert response["x-litellm-model-group"] == "openai/gpt-4o-mini"
    log = await SpendLog.objects.aget()
    assert (log.requested_model, log.deployment_id, log.provider_model) == (
        "openai/gpt-4o-mini",
        "wild-openai",
        "gpt-4o-mini",
    )
    assert (log.cost, log.pricing_source, log.model_group) == (expected, "cost_map", "openai/gpt-4o-mini")


async def test_a_wildcard_stream_is_priced_as_the_model_asked_for(openai_wildcard, upstream):
    body = orjson.dumps({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    response = await AsyncClient().post("/v1/chat/completions", body, content_type="application/json", headers=AUTH)
    b"".join([part async for part in response.streaming_content])

    log = await SpendLog.objects.aget()
    assert log.cost == 1000 * Decimal("2.5E-6") + 100 * Decimal("1E-5")
    assert upstream.requests[0].json["model"] == "gpt-4o"


@pytest.mark.parametrize(
    ("requested", "model_id"),
    [
        ("mock/exact", "exact"),  # an exact group wins over every wildcard
        ("mock/gpt-4o", "long-prefix"),  # the longer pattern wins over mock/*
        ("mock/gpt-3.5-turbo", "provider"),
        ("something-else", "everything"),  # "*" last
    ],
)
async def test_exact_names_win_then_the_most_specific_wildcard(db, requested, model_id):
    for pk, name in (
        ("exact", "mock/exact"),
        ("long-prefix", "mock/gpt-4o*"),
        ("provider", "mock/*"),
        ("everything", "*"),
    ):
        await Deployment.objects.acreate(model_id=pk, model_name=name, litellm_model="mock/*" if "*" in name else name)

    response = await chat(requested)

    assert response.status_code == 200, response.content
    assert response["x-litellm-model-id"] == model_id


async def test_a_name_no_wildcard_matches_is_not_found(openai_wildcard):
    response = await chat("anthropic/claude-3-5-haiku")

    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    "requested",
    ["openai/../../v1/files", "openai/gpt-4o?alt=sse", "openai/gpt-4o#x", "openai/%2e%2e/files", "openai/gpt 4o"],
)
async def test_a_name_that_would_leave_the_models_path_upstream_is_not_served(openai_wildcard, upstream, requested):
    response = await chat(requested)

    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["code"] == "model_not_found"
    assert upstream.requests == []


async def test_an_unpriced_model_through_a_wildcard_follows_block_unpriced_models(openai_wildcard, upstream, settings):
    settings.BLOCK_UNPRICED_MODELS = True
    blocked = await chat("openai/no-such-model-in-the-cost-map")
    priced = await chat("openai/gpt-4o-mini")
    settings.BLOCK_UNPRICED_MODELS = False
    allowed = await chat("openai/no-such-model-in-the-cost-map")

    assert blocked.status_code == 400
    assert orjson.loads(blocked.content)["error"]["code"] == "unpriced_model"
    assert priced.status_code == 200
    assert (allowed.status_code, allowed["x-litellm-response-cost"]) == (200, "0")


async def test_each_requested_name_is_resolved_once_per_table_and_the_cache_is_bounded(openai_wildcard, monkeypatch):
    monkeypatch.setattr(wildcards, "_RESOLVED_LIMIT", 3)
    table = (await gateway_state()).table

    first = table.group("openai/gpt-4o-mini")
    assert table.group("openai/gpt-4o-mini") is first  # no second pattern search or cost-map lookup
    for name in ("openai/a", "openai/b", "openai/c", "openai/d"):
        table.group(name)
    assert len(table.wildcards._resolved) == 3
    assert first[0].price.matched == "gpt-4o-mini"
    assert first[0].price_key != table.group("openai/gpt-4o")[0].price_key  # one journal price per served model


@pytest.mark.parametrize(
    ("models", "requested", "status"),
    [
        (["openai/*"], "openai/gpt-4o-mini", 200),
        (["openai/gpt-4o*"], "openai/gpt-4o-mini", 200),
        (["openai/gpt-4o*"], "openai/gpt-3.5-turbo", 403),
        (["openai/gpt-4o-mini"], "openai/gpt-4o-mini", 200),
        (["gpt-4o-mini"], "openai/gpt-4o-mini", 403),
    ],
)
async def test_a_keys_model_list_may_hold_wildcards(openai_wildcard, models, requested, status):
    raw_key, _key = await sync_to_async(make_key)(models=models)

    response = await chat(requested, headers={"Authorization": f"Bearer {raw_key}"})

    assert response.status_code == status, response.content


async def test_models_lists_what_a_wildcard_serves_as_litellm_does(openai_wildcard):
    raw_key, _key = await sync_to_async(make_key)(models=["openai/gpt-4o*"])

    async def listed(headers, query=""):
        response = await AsyncClient().get(f"/v1/models{query}", headers=headers)
        return {model["id"] for model in orjson.loads(response.content)["data"]}

    everything = await listed(AUTH)
    assert {"openai/gpt-4o-mini", "openai/gpt-4o", "openai/text-embedding-3-small"} <= everything
    assert "openai/*" not in everything and not any(name.startswith("anthropic/") for name in everything)
    assert "openai/*" in await listed(AUTH, "?return_wildcard_routes=true")
    limited = await listed({"Authorization": f"Bearer {raw_key}"})
    assert "openai/gpt-4o-mini" in limited and all(name.startswith("openai/gpt-4o") for name in limited)


async def test_a_partial_wildcard_lists_only_the_models_it_matches(db):
    await Deployment.objects.acreate(
        model_id="gpt-4o-family", model_name="openai/gpt-4o*", litellm_model="openai/gpt-4o*"
    )

    response = await AsyncClient().get("/v1/models", headers=AUTH)

    listed = {model["id"] for model in orjson.loads(response.content)["data"]}
    assert "openai/gpt-4o-mini" in listed and "openai/gpt-3.5-turbo" not in listed
