"""A call's tags (metadata.tags, or LiteLLM's top-level tags) are charged and reported: /spend/tags,
/global/spend/tags and /global/spend/report?group_by=tag count a call the moment its log commits, before any rollup,
and the same after one."""

from decimal import Decimal

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from gateway.models import Deployment
from spend.models import SpendLog
from spend.rollups import rollup_spend
from tests.e2e.server import MASTER_KEY

pytestmark = pytest.mark.django_db(transaction=True)
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CHAT = {"model": "demo-model", "messages": [{"role": "user", "content": "Hello there"}]}


@pytest.fixture(autouse=True)
def proxy(settings, spend_urls):
    """The whole gateway (proxy and management API) in-process, without Redis, with the demo mock deployment."""
    settings.ROOT_URLCONF = "gateway.urls"
    settings.TOLLGATE_MASTER_KEY = MASTER_KEY
    settings.REDIS_URL = ""
    Deployment.objects.create(model_id="mock-1", model_name="demo-model", litellm_model="mock/demo")


async def call(client: AsyncClient, **extra) -> Decimal:
    response = await client.post(
        "/v1/chat/completions", orjson.dumps({**CHAT, **extra}), content_type="application/json", headers=AUTH
    )
    assert response.status_code == 200, response.content
    return Decimal(response["x-litellm-response-cost"])


async def report(client: AsyncClient, path: str, **params):
    today = timezone.localdate().isoformat()
    response = await client.get(path, {"start_date": today, "end_date": today, **params}, headers=AUTH)
    assert response.status_code == 200, response.content
    return orjson.loads(response.content)


async def test_tags_are_reported_as_soon_as_the_call_is_logged():
    client = AsyncClient()
    first = await call(client, metadata={"tags": ["team:search", "prod"]})
    second = await call(client, tags=["prod"])
    await call(client)
    assert [log.request_tags async for log in SpendLog.objects.order_by("id")] == [
        ["team:search", "prod"],
        ["prod"],
        [],
    ]

    expected = [
        {"individual_request_tag": "prod", "log_count": 2, "total_spend": float(first + second)},
        {"individual_request_tag": "team:search", "log_count": 1, "total_spend": float(first)},
    ]
    assert await report(client, "/spend/tags") == expected
    by_tag = await report(client, "/global/spend/tags", tags="team:search")
    assert by_tag == {"spend_per_tag": [{"name": "team:search", "spend": float(first), "log_count": 1}]}
    days = await report(client, "/global/spend/report", group_by="tag")
    assert [(tag["tag"], tag["total_spend"]) for tag in days[0]["tags"]] == [
        ("prod", float(first + second)),
        ("team:search", float(first)),
    ]

    await sync_to_async(rollup_spend)()
    assert await report(client, "/spend/tags") == expected
