"""A call's end user (LiteLLM's customer) in-process: where it is read from, what is refused, where it is logged."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from gateway.models import Deployment
from keys import customer_services
from keys.models import Customer
from spend.models import BudgetReset, SpendLog
from spend.reconcile import find_drift, fix_drift
from tests.e2e.server import MASTER_KEY
from tests.keys.factories import make_key
from tests.keys.metered import METERED, chat, metered  # noqa: F401 (metered: the fixture)

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


# -- the customer as a budget holder -----------------------------------------------------------------------------------


def _customer(end_user_id: str, **budget) -> Customer:
    return customer_services.create_customer({"user_id": end_user_id, **budget}, actor="test")


async def test_a_call_charges_its_customer_made_on_first_sight(mock_deployment):
    response = await post("/v1/chat/completions", {**CHAT, "user": "new-customer"})

    customer = await Customer.objects.aget(end_user_id="new-customer")
    assert customer.spend == Decimal(response["x-litellm-response-cost"]) > 0
    assert await sync_to_async(find_drift)() == []


@pytest.mark.usefixtures("backend", "metered")
async def test_fifty_concurrent_calls_against_a_customer_budget_for_ten_admit_exactly_ten():
    await sync_to_async(_customer)("tight", max_budget=Decimal(1))
    # Two keys with no budget of their own: only the customer's holds them.
    first, second = (await sync_to_async(make_key)())[0], (await sync_to_async(make_key)())[0]

    responses = await asyncio.gather(
        *(chat(first if n % 2 else second, {**METERED, "user": "tight"}) for n in range(50))
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [400] * 40
    refusals = [orjson.loads(r.content)["error"]["message"] for r in responses if r.status_code == 400]
    assert all("customer tight has spent" in message for message in refusals)
    assert (await Customer.objects.aget(end_user_id="tight")).spend == Decimal("1.0")
    assert await sync_to_async(find_drift)() == []


async def test_a_spent_customer_budget_refuses_with_budget_exceeded_naming_the_customer(mock_deployment):
    await sync_to_async(_customer)("spent", max_budget=Decimal(1), spend=Decimal(1))
    raw_key, _ = await sync_to_async(make_key)()
    key = {"Authorization": f"Bearer {raw_key}"}

    refused = await post("/v1/chat/completions", {**CHAT, "user": "spent"}, key)
    other = await post("/v1/chat/completions", {**CHAT, "user": "someone-else"}, key)

    assert refused.status_code == 400
    error = orjson.loads(refused.content)["error"]
    assert (error["type"], error["code"]) == ("budget_exceeded", "budget_exceeded")
    assert "customer spent has spent 1 of its max_budget 1" in error["message"]
    assert other.status_code == 200  # the key is fine: only that customer is spent
    assert await SpendLog.objects.filter(end_user="spent").exclude(call_type="adjustment").acount() == 0


async def test_a_customer_rpm_limit_answers_429(mock_deployment):
    await sync_to_async(_customer)("chatty", rpm_limit=1)

    first = await post("/v1/chat/completions", {**CHAT, "user": "chatty"})
    second = await post("/v1/chat/completions", {**CHAT, "user": "chatty"})

    assert (first.status_code, second.status_code) == (200, 429)
    assert "customer chatty is limited to 1 requests per minute" in orjson.loads(second.content)["error"]["message"]


async def test_a_blocked_customer_is_refused_and_unblocking_lets_it_in_at_once(mock_deployment):
    await post("/v1/chat/completions", {**CHAT, "user": "troublemaker"})  # cached by this process
    await sync_to_async(customer_services.set_blocked)(["troublemaker"], True, actor="test")

    refused = await post("/v1/chat/completions", {**CHAT, "user": "troublemaker"})
    await sync_to_async(customer_services.set_blocked)(["troublemaker"], False, actor="test")
    admitted = await post("/v1/chat/completions", {**CHAT, "user": "troublemaker"})

    assert refused.status_code == 403
    error = orjson.loads(refused.content)["error"]
    assert (error["type"], error["code"], error["param"]) == ("auth_error", "customer_blocked", "user")
    assert admitted.status_code == 200
    assert await SpendLog.objects.filter(end_user="troublemaker").acount() == 2


async def test_reconcile_finds_a_drift_planted_in_a_customer_and_fixes_it(mock_deployment):
    await post("/v1/chat/completions", {**CHAT, "user": "audited"})
    charged = (await Customer.objects.aget(end_user_id="audited")).spend
    await Customer.objects.filter(end_user_id="audited").aupdate(spend=charged + 1)

    drifts = await sync_to_async(find_drift)()

    assert [(d.kind, d.entity_id, d.stored, d.expected) for d in drifts] == [
        ("customer", "audited", charged + 1, charged)
    ]
    await sync_to_async(fix_drift)(drifts[0])
    assert (await Customer.objects.aget(end_user_id="audited")).spend == charged


async def test_a_customer_budget_period_that_ended_is_reset_by_its_next_call(mock_deployment):
    await sync_to_async(_customer)("monthly", max_budget=Decimal(1), budget_duration="1mo", spend=Decimal(1))
    await Customer.objects.filter(end_user_id="monthly").aupdate(budget_reset_at=timezone.now() - timedelta(hours=1))

    response = await post("/v1/chat/completions", {**CHAT, "user": "monthly"})

    assert response.status_code == 200, response.content
    reset = await BudgetReset.objects.aget(kind="customer", entity_id="monthly")
    assert reset.period_spend == 1
    customer = await Customer.objects.aget(end_user_id="monthly")
    assert customer.spend == Decimal(response["x-litellm-response-cost"])
    assert customer.budget_reset_at > timezone.now()
    assert await sync_to_async(find_drift)() == []
