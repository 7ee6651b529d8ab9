"""Health endpoints: liveliness always, readiness checks the database and Redis, /health probes every deployment
(master key only)."""

import time

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from gateway.models import Deployment
from spend.models import SpendLog
from tests.e2e.server import MASTER_KEY, free_port
from tests.fakes.upstream import Behaviour
from tests.keys.factories import make_key

pytestmark = pytest.mark.django_db(transaction=True)


async def test_liveliness_needs_nothing():
    response = await AsyncClient().get("/health/liveliness")

    assert response.status_code == 200


async def test_readiness_reports_database_and_cache(settings):
    settings.REDIS_URL = ""
    response = await AsyncClient().get("/health/readiness")

    assert response.status_code == 200
    assert orjson.loads(response.content) == {"status": "healthy", "db": "connected", "cache": "in-process"}


async def test_readiness_fails_when_redis_is_unreachable(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = await AsyncClient().get("/health/readiness")

    assert response.status_code == 503
    assert orjson.loads(response.content)["cache"] == "unreachable"


async def test_health_lists_deployments_for_the_master_key_only():
    await Deployment.objects.acreate(model_id="h-1", model_name="demo", litellm_model="mock/demo")

    listed = await AsyncClient().get("/health", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    refused = await AsyncClient().get("/health")

    assert orjson.loads(listed.content)["healthy_endpoints"][0]["model_id"] == "h-1"
    assert refused.status_code == 401


async def probe(query: str = "", key: str = MASTER_KEY):
    response = await AsyncClient().get(f"/health{query}", headers={"Authorization": f"Bearer {key}"})
    return response.status_code, orjson.loads(response.content)


def by_id(endpoints: list[dict]) -> dict[str, dict]:
    return {endpoint["model_id"]: endpoint for endpoint in endpoints}


async def deployment(model_id: str, model_name: str, litellm_model: str, api_base: str, **fields):
    await Deployment.objects.acreate(
        model_id=model_id,
        model_name=model_name,
        litellm_model=litellm_model,
        api_base=api_base,
        api_key="sk-probe-upstream-5521",
        **fields,
    )


async def test_health_probes_each_deployment_with_a_minimal_real_call(upstream):
    await deployment("chat", "gpt-4o", "openai/gpt-4o", f"{upstream.url}/v1")
    await deployment("embed", "embedder", "openai/text-embedding-3-small", f"{upstream.url}/v1")
    await deployment("down", "gpt-4o", "openai/gpt-4o", f"http://127.0.0.1:{free_port()}/v1?code=pw-in-url")

    status, body = await probe()

    assert status == 200
    assert set(by_id(body["healthy_endpoints"])) == {"chat", "embed"}
    (down,) = body["unhealthy_endpoints"]
    assert (down["model_id"], down["error"]) == ("down", "the connection could not be made")
    assert down["api_base"].endswith("/v1?code=***")  # the secret in the address is not shown
    assert (body["healthy_count"], body["unhealthy_count"]) == (2, 1)
    sent = {request.path: request.json for request in upstream.requests}
    assert sent["/v1/chat/completions"]["max_tokens"] == 1
    assert sent["/v1/embeddings"]["input"] == "ping"
    assert await SpendLog.objects.acount() == 0  # probes are the operator's: no key is charged


async def test_an_upstream_error_and_a_timeout_are_reported_with_their_reason(upstream):
    await deployment("refusing", "a", "openai/gpt-4o", f"{upstream.url}/v1")
    await deployment("slow", "b", "openai/gpt-4o", f"{upstream.url}/v1", timeout=0.3)
    upstream.script(Behaviour(status=500, message="upstream is down for maintenance"))
    upstream.behaviour = Behaviour(first_byte_delay=3)

    _status, body = await probe()

    errors = {endpoint["model_id"]: endpoint["error"] for endpoint in body["unhealthy_endpoints"]}
    assert set(errors) == {"refusing", "slow"}
    assert "no answer within 0.3 s" in errors.values()
    assert any("upstream answered 500" in error and "maintenance" in error for error in errors.values())


async def test_deployments_are_probed_at_once_not_one_after_another(upstream):
    upstream.behaviour = Behaviour(first_byte_delay=0.5)
    for index in range(4):
        await deployment(f"slow-{index}", f"group-{index}", "openai/gpt-4o", f"{upstream.url}/v1")

    started = time.perf_counter()
    _status, body = await probe()

    assert body["healthy_count"] == 4
    assert time.perf_counter() - started < 1.5  # 2 s one after another


async def test_health_of_one_model_group(upstream):
    await deployment("one", "gpt-4o", "openai/gpt-4o", f"{upstream.url}/v1")
    await deployment("other", "other", "openai/gpt-4o", f"{upstream.url}/v1")

    _status, body = await probe("?model=gpt-4o")
    missing_status, missing = await probe("?model=nothing-of-that-name")

    assert [endpoint["model_id"] for endpoint in body["healthy_endpoints"]] == ["one"]
    assert len(upstream.requests) == 1
    assert (missing_status, missing["error"]["param"]) == (404, "model")


async def test_a_wildcard_is_probed_with_its_health_check_model_or_reported_without_one(upstream):
    await deployment(
        "wild", "openai/*", "openai/*", f"{upstream.url}/v1", model_info={"health_check_model": "openai/gpt-4o-mini"}
    )
    await deployment("wild-unprobed", "groq/*", "groq/*", f"{upstream.url}/v1")

    _status, body = await probe()

    assert [endpoint["model_id"] for endpoint in body["healthy_endpoints"]] == ["wild"]
    assert upstream.requests[0].json["model"] == "gpt-4o-mini"
    (unprobed,) = body["unhealthy_endpoints"]
    assert unprobed["model_id"] == "wild-unprobed" and "health_check_model" in unprobed["error"]


async def test_health_is_for_the_master_key_only():
    raw_key, _key = await sync_to_async(make_key)()

    status, body = await probe(key=raw_key)

    assert status == 403
    assert body["error"]["code"] == "forbidden"
