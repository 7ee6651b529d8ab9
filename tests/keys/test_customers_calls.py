"""A call's end user (LiteLLM's customer) in-process: where it is read from, what is refused, where it is logged."""

import orjson
import pytest
from django.test import AsyncClient

from gateway.models import Deployment
from spend.models import SpendLog
from tests.e2e.server import MASTER_KEY

pytestmark = pytest.mark.django_db(transaction=True)

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CHAT = {"model": "demo-model", "messages": [{"role": "user", "content": "Hello there"}]}


@pytest.fixture
def mock_deployment(db):
    return Deployment.objects.create(
        model_id="mock-1", model_name="demo-model", litellm_model="mock/demo", base_model="gpt-4o-mini"
    )


async def post(path: str, body: dict, headers=None):
    return await AsyncClient().post(
        path, orjson.dumps(body), content_type="application/json", headers={**AUTH, **(headers or {})}
    )


@pytest.mark.parametrize(
    ("extra", "headers", "end_user"),
    [
        ({"user": "cust-1"}, {}, "cust-1"),
        ({"litellm_metadata": {"user": "cust-2"}}, {}, "cust-2"),
        ({"metadata": {"user_id": "cust-3"}}, {}, "cust-3"),
        # The headers come first, as in LiteLLM: a gateway in front may set them whatever the body says.
        ({"user": "body"}, {"x-litellm-customer-id": "cust-4"}, "cust-4"),
        ({"user": "body"}, {"x-litellm-end-user-id": "cust-5"}, "cust-5"),
        ({}, {}, ""),
    ],
)
async def test_the_end_user_is_logged_from_where_litellm_reads_it(mock_deployment, extra, headers, end_user):
    response = await post("/v1/chat/completions", {**CHAT, **extra}, headers)

    assert response.status_code == 200
    assert await SpendLog.objects.values_list("end_user", flat=True).aget() == end_user


async def test_embeddings_and_completions_log_their_user_too(mock_deployment):
    await post("/v1/embeddings", {"model": "demo-model", "input": "a", "user": "cust-e"})
    await post("/v1/completions", {"model": "demo-model", "prompt": "Say hi", "user": "cust-c"})

    logged = {(log.call_type, log.end_user) async for log in SpendLog.objects.all()}
    assert logged == {("embedding", "cust-e"), ("completion", "cust-c")}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"user": 42}, "user"),
        ({"user": ["a"]}, "user"),
        ({"user": "x" * 201}, "user"),
        ({"litellm_metadata": {"user": {"id": 1}}}, "litellm_metadata.user"),
    ],
)
async def test_an_end_user_that_is_not_a_short_string_is_refused_before_anything_is_sent(mock_deployment, extra, param):
    response = await post("/v1/chat/completions", {**CHAT, **extra})

    assert response.status_code == 400
    error = orjson.loads(response.content)["error"]
    assert (error["param"], error["code"], error["type"]) == (param, "invalid_value", "invalid_request_error")
    assert await SpendLog.objects.acount() == 0


async def test_a_200_character_end_user_is_accepted(mock_deployment):
    response = await post("/v1/chat/completions", {**CHAT, "user": "x" * 200})

    assert response.status_code == 200
    assert await SpendLog.objects.values_list("end_user", flat=True).aget() == "x" * 200


async def test_spend_logs_show_filter_and_export_the_end_user(mock_deployment):
    await post("/v1/chat/completions", {**CHAT, "user": "cust-a"})
    await post("/v1/chat/completions", {**CHAT, "user": "cust-b"})
    client = AsyncClient()

    everything = orjson.loads((await client.get("/spend/logs", headers=AUTH)).content)
    only_a = orjson.loads((await client.get("/spend/logs", {"end_user": "cust-a"}, headers=AUTH)).content)
    exported = await client.get("/spend/logs", {"format": "csv"}, headers=AUTH)
    csv = b"".join(exported.streaming_content)

    assert sorted(log["end_user"] for log in everything) == ["cust-a", "cust-b"]
    assert [log["end_user"] for log in only_a] == ["cust-a"]
    header, *rows = csv.decode().splitlines()
    column = header.split(",").index("end_user")
    assert sorted(row.split(",")[column] for row in rows) == ["cust-a", "cust-b"]
