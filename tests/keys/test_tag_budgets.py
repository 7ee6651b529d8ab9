"""Tags as budget holders (LiteLLM's tag budgets): every call carrying a tag, whatever its key, is charged to the tag
and refused once the tag's budget is spent; exact under concurrent calls, reconciled, reset when its period ends;
and /tag/* in LiteLLM's shapes."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import openai
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gateway.proxy.payload import MAX_TAGS_PER_CALL
from keys import tag_services
from keys.api.tag_serializers import MAX_TAG_LENGTH
from keys.auth import sync_key_cache
from keys.limits import local_counters
from keys.models import Tag, VirtualKey, record_change
from spend.ledger import SpendEntry, write_batch
from spend.models import BudgetReset, PrunedSpend, SpendLog
from spend.reconcile import find_drift, fix_drift
from spend.retention import prune_spend_logs
from spend.rollups import rollup_spend
from tests.e2e.server import MASTER_KEY
from tests.keys.factories import make_key
from tests.keys.litellm_client import mock_gateway
from tests.keys.metered import METERED, chat, metered  # noqa: F401 (metered: the fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("metered")]

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


async def api(method: str, path: str, body=None):
    client = AsyncClient()
    if method == "GET":
        response = await client.get(path, headers=AUTH)
    else:
        response = await client.post(path, orjson.dumps(body), content_type="application/json", headers=AUTH)
    return response.status_code, orjson.loads(response.content)


async def tagged(raw_key: str, tags=None, **extra):
    """A metered call carrying `tags` in its metadata (or none), with `extra` fields."""
    return await chat(raw_key, {**METERED, **extra, **({"metadata": {"tags": tags}} if tags is not None else {})})


def _tag(name: str, **limits) -> Tag:
    return tag_services.create_tag({"name": name, **limits}, actor="test")


async def _key(**fields) -> str:
    raw_key, key = await sync_to_async(make_key)()
    if fields:
        await VirtualKey.objects.filter(pk=key.pk).aupdate(**fields)
    return raw_key


def _error(response) -> dict:
    return orjson.loads(response.content)["error"]


# -- the tag as a budget holder ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("backend")
async def test_fifty_concurrent_calls_against_a_tag_budget_for_ten_admit_exactly_ten():
    await sync_to_async(_tag)("tight", max_budget=Decimal(1))
    # Two keys with no budget of their own: only the tag's holds them.
    first, second = await _key(), await _key()

    responses = await asyncio.gather(*(tagged(first if n % 2 else second, ["tight", "other"]) for n in range(50)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [400] * 40
    assert all("tag tight has spent" in _error(r)["message"] for r in responses if r.status_code == 400)
    assert (await Tag.objects.aget(name="tight")).spend == Decimal("1.0")
    assert await sync_to_async(find_drift)() == []


async def test_a_spent_tag_refuses_with_budget_exceeded_naming_the_tag():
    await sync_to_async(_tag)("spent", max_budget=Decimal("0.1"))
    raw_key = await _key()

    admitted = await tagged(raw_key, ["spent"])
    refused = await tagged(raw_key, ["spent"])
    untagged = await tagged(raw_key)

    assert admitted.status_code == 200
    assert refused.status_code == 400
    error = _error(refused)
    assert (error["type"], error["code"], error["param"]) == ("budget_exceeded", "budget_exceeded", "max_budget")
    assert error["message"] == "Budget has been exceeded: tag spent has spent 0.1 of its max_budget 0.1."
    assert untagged.status_code == 200  # the key is fine: only calls carrying the tag are refused


@pytest.mark.parametrize(
    "where",
    [
        pytest.param({"metadata": {"tags": ["billed"]}}, id="metadata.tags"),
        pytest.param({"tags": ["billed"]}, id="tags"),
    ],
)
async def test_a_call_charges_the_tag_it_carries(where):
    await sync_to_async(_tag)("billed")
    raw_key = await _key()

    response = await tagged(raw_key, **where)

    assert response.status_code == 200
    assert (await Tag.objects.aget(name="billed")).spend == Decimal("0.1")


async def test_the_x_litellm_tags_header_tags_a_call_too():
    await sync_to_async(_tag)("from-header", max_budget=Decimal("0.1"))
    raw_key = await _key()
    headers = {"Authorization": f"Bearer {raw_key}", "x-litellm-tags": "team-api, from-header,,"}

    first, second = [
        await AsyncClient().post("/v1/chat/completions", orjson.dumps(METERED), content_type="application/json",
                                 headers=headers)
        for _ in range(2)
    ]  # fmt: skip

    assert (first.status_code, second.status_code) == (200, 400)
    assert "tag from-header" in _error(second)["message"]
    assert await SpendLog.objects.values_list("request_tags", flat=True).aget() == ["team-api", "from-header"]


async def test_a_spent_tag_is_found_behind_any_number_of_other_tags():
    await sync_to_async(_tag)("spent", max_budget=Decimal(0))

    refused = await tagged(await _key(), [f"noise-{n}" for n in range(MAX_TAGS_PER_CALL - 1)] + ["spent"])

    assert refused.status_code == 400
    assert "tag spent" in _error(refused)["message"]


@pytest.mark.parametrize(
    ("body_tags", "header", "refusal"),
    [
        ([f"t{n}" for n in range(MAX_TAGS_PER_CALL + 1)], "", "at most 64 tags"),
        ([f"t{n}" for n in range(MAX_TAGS_PER_CALL)], "one-more", "carries 65"),
        (["x" * (MAX_TAG_LENGTH + 1)], "", "at most 200 characters"),
        ([], "ok, " + "y" * (MAX_TAG_LENGTH + 1), "at most 200 characters"),
    ],
)
async def test_a_call_with_too_many_or_too_long_tags_is_refused_before_anything_is_sent(body_tags, header, refusal):
    await sync_to_async(_tag)("t0", max_budget=Decimal("1"))
    raw_key = await _key()
    headers = {"Authorization": f"Bearer {raw_key}", "x-litellm-tags": header}
    body = {**METERED, "metadata": {"tags": body_tags}}

    refused = await AsyncClient().post(
        "/v1/chat/completions", orjson.dumps(body), content_type="application/json", headers=headers
    )

    assert refused.status_code == 400
    assert _error(refused)["param"] == "tags" and refusal in _error(refused)["message"]
    assert not await SpendLog.objects.aexists()
    assert (await Tag.objects.aget(name="t0")).spend == 0


async def test_a_keys_tags_are_carried_by_each_of_its_calls_and_charged():
    await sync_to_async(_tag)("cost-center", max_budget=Decimal("0.1"))
    raw_key = await _key(tags=["cost-center"])

    first = await tagged(raw_key, ["feature-x"])
    second = await tagged(raw_key)

    assert (first.status_code, second.status_code) == (200, 400)
    assert "tag cost-center" in _error(second)["message"]
    assert await SpendLog.objects.values_list("request_tags", flat=True).aget() == ["feature-x", "cost-center"]
    assert (await Tag.objects.aget(name="cost-center")).spend == Decimal("0.1")


async def test_a_call_carrying_a_tag_twice_is_charged_once():
    await sync_to_async(_tag)("twice")
    raw_key = await _key(tags=["twice"])

    await tagged(raw_key, ["twice", "twice"])

    assert await SpendLog.objects.values_list("request_tags", flat=True).aget() == ["twice"]
    assert (await Tag.objects.aget(name="twice")).spend == Decimal("0.1")
    assert await sync_to_async(find_drift)() == []


async def test_a_log_naming_a_tag_twice_charges_it_once():
    """Logs from elsewhere than the proxy (a journal's sweep, a spool's replay) may hold a tag twice."""
    await sync_to_async(_tag)("twice")
    now = timezone.now()
    entry = SpendEntry(request_id="r1", call_type="chat", requested_model="metered", start_time=now, end_time=now,
                       cost=Decimal("0.1"), request_tags=["twice", "twice"])  # fmt: skip

    await sync_to_async(write_batch)([entry])

    assert (await Tag.objects.aget(name="twice")).spend == Decimal("0.1")
    assert await sync_to_async(find_drift)() == []


async def test_a_tag_rpm_limit_answers_429():
    await sync_to_async(_tag)("chatty", rpm_limit=1)
    raw_key = await _key()

    first, second = await tagged(raw_key, ["chatty"]), await tagged(raw_key, ["chatty"])

    assert (first.status_code, second.status_code) == (200, 429)
    assert "tag chatty is limited to 1 requests per minute" in _error(second)["message"]


async def test_a_tags_spend_counts_from_when_it_is_made():
    raw_key = await _key()
    await tagged(raw_key, ["late"])  # before the tag is a holder: reported, not its spend

    await sync_to_async(_tag)("late")
    await tagged(raw_key, ["late"])

    assert (await Tag.objects.aget(name="late")).spend == Decimal("0.1")
    assert await sync_to_async(find_drift)() == []


async def test_reconcile_finds_a_drift_planted_in_a_tag_and_fixes_it():
    await sync_to_async(_tag)("audited")
    raw_key = await _key()
    await tagged(raw_key, ["audited", "unmanaged"])
    await tagged(raw_key, ["unmanaged"])
    await Tag.objects.filter(name="audited").aupdate(spend=Decimal("1.1"))

    drifts = await sync_to_async(find_drift)()

    assert [(d.kind, d.entity_id, d.stored, d.expected) for d in drifts] == [
        ("tag", "audited", Decimal("1.1"), Decimal("0.1"))
    ]
    await sync_to_async(fix_drift)(drifts[0])
    assert (await Tag.objects.aget(name="audited")).spend == Decimal("0.1")


async def test_a_tag_budget_period_that_ended_is_reset_by_its_next_call():
    await sync_to_async(_tag)("monthly", max_budget=Decimal("0.1"), budget_duration="1mo")
    raw_key = await _key()
    await tagged(raw_key, ["monthly"])
    await Tag.objects.filter(name="monthly").aupdate(budget_reset_at=timezone.now() - timedelta(hours=1))
    await sync_to_async(record_change)("tag", "monthly")
    await sync_to_async(sync_key_cache)()
    # This test moved the period's end back: counters that knew the original period would take the next one, which
    # ends at the same moment, for the same period. A process starting now knows neither.
    local_counters().clear()

    response = await tagged(raw_key, ["monthly"])

    assert response.status_code == 200, response.content
    reset = await BudgetReset.objects.filter(kind="tag", entity_id="monthly").alatest("id")
    assert reset.period_spend == Decimal("0.1")
    tag = await Tag.objects.aget(name="monthly")
    assert tag.spend == Decimal("0.1")
    assert tag.budget_reset_at > timezone.now()
    assert await sync_to_async(find_drift)() == []


# -- /tag/* ------------------------------------------------------------------------------------------------------------


async def test_tag_new_info_update_list_and_delete_answer_litellms_shapes():
    status, made = await api(
        "POST",
        "/tag/new",
        {"name": "engineering", "description": "Engineering department", "max_budget": 500,
         "budget_duration": "30d", "rpm_limit": 100},
    )  # fmt: skip
    assert status == 200, made
    assert (made["name"], made["description"], made["max_budget"]) == ("engineering", "Engineering department", 500)
    assert (made["budget_duration"], made["rpm_limit"], made["spend"]) == ("30d", 100, 0)

    await tagged(await _key(), ["engineering"])
    status, info = await api("POST", "/tag/info", {"names": ["engineering"]})
    assert status == 200, info
    assert list(info) == ["engineering"]
    assert info["engineering"]["spend"] == 0.1

    status, updated = await api("POST", "/tag/update", {"name": "engineering", "max_budget": 600})
    assert (status, updated["max_budget"], updated["budget_duration"]) == (200, 600, "30d")

    status, listed = await api("GET", "/tag/list")
    assert [tag["name"] for tag in listed] == ["engineering"]

    status, deleted = await api("POST", "/tag/delete", {"name": "engineering"})
    assert status == 200, deleted
    assert not await Tag.objects.filter(name="engineering").aexists()


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/tag/new", {"name": "dup"}, 400, "name"),
        ("/tag/new", {"name": "x", "budget": 5}, 400, "budget"),
        # Over the length only before trimming: a name is kept as sent, as a call's tags are.
        ("/tag/new", {"name": "\x1f" + "t" * MAX_TAG_LENGTH}, 400, "name"),
        ("/tag/info", {"names": ["missing"]}, 404, "names"),
        ("/tag/update", {"name": "missing"}, 404, "name"),
        ("/tag/delete", {"name": "missing"}, 404, "name"),
    ],
)
async def test_tag_api_refusals_name_the_field(path, body, status, param):
    await sync_to_async(_tag)("dup")

    answered, error = await api("POST", path, body)

    assert answered == status, error
    assert error["error"]["param"] == param


def test_the_spend_overview_shows_each_tag_budget_against_its_spend(admin_client):
    _tag("marketing", max_budget=Decimal(4), budget_duration="1mo")
    _tag("unbudgeted")
    Tag.objects.filter(name="marketing").update(spend=Decimal(1))

    response = admin_client.get("/admin/spend/spendlog/overview/")

    assert [
        (tag["name"], tag["spend"], tag["max_budget"], tag["percent"]) for tag in response.context["tag_budgets"]
    ] == [("marketing", Decimal(1), Decimal(4), "25.0")]
    assert b'data-tag="marketing"' in response.content


def test_a_tag_holders_pruned_logs_still_count_and_other_tags_leave_nothing_behind(settings):
    settings.SPEND_LOG_RETENTION_DAYS = 7
    _tag("kept")
    now = timezone.now()
    old = [
        SpendEntry(request_id=f"old-{n}", call_type="chat", requested_model="metered", start_time=now - timedelta(days=30),
                   end_time=now - timedelta(days=30), cost=Decimal("0.1"), request_tags=["kept", "loose"])
        for n in range(3)
    ]  # fmt: skip
    write_batch(old)
    rollup_spend(now)

    assert prune_spend_logs(now).rows == 3

    assert list(PrunedSpend.objects.values_list("kind", "entity_id", "cost")) == [("tag", "kept", Decimal("0.3"))]
    assert find_drift() == []


async def test_tag_and_per_model_budgets_cost_no_query_once_the_process_knows_them():
    """The tag holders are read once per process and a key's per-model spend with the key: a warm call with both
    makes the same queries as one with neither."""
    await sync_to_async(_tag)("warm", max_budget=Decimal(5))
    budgeted = await _key(tags=["warm"], model_max_budget={"metered": "5"})
    plain = await _key()
    counts = []
    for raw_key in (plain, budgeted):
        await tagged(raw_key), await tagged(raw_key)  # the process reads the key, its model spend, the tag holders
        with CaptureQueriesContext(connection) as queries:
            response = await tagged(raw_key)
        assert response.status_code == 200
        counts.append(len(queries))

    assert counts[0] == counts[1]


async def test_a_key_made_with_a_spent_tag_is_refused_through_the_openai_sdk():
    """As a LiteLLM user does it: /tag/new, /key/generate with `tags`, then the openai SDK."""
    async with mock_gateway() as gateway:
        status, _ = await gateway.post("/tag/new", {"name": "frozen", "max_budget": 0})
        assert status == 200
        _, made = await gateway.post("/key/generate", {"tags": ["frozen"]})
        _, other = await gateway.post("/key/generate", {})

        refused = await gateway.chat(made["key"])
        tagged_by_the_call = await gateway.chat(other["key"], extra_body={"tags": ["frozen"]})
        untagged = await gateway.chat(other["key"])

    assert isinstance(refused, openai.BadRequestError), refused
    assert (refused.code, refused.body["type"]) == ("budget_exceeded", "budget_exceeded")
    assert "tag frozen has spent 0 of its max_budget 0" in refused.message
    assert isinstance(tagged_by_the_call, openai.BadRequestError)
    assert not isinstance(untagged, openai.APIStatusError)
