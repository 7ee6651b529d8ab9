"""A key's per-model budgets and rate limits (LiteLLM's model_max_budget, model_rpm_limit, model_tpm_limit): the
key's calls to a model group are refused once its spend on that group reaches the limit, while its other models
keep working; exact under concurrent calls, reconciled, reset when the period ends."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import openai
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from gateway.models import Deployment
from keys.auth import sync_key_cache
from keys.budgets import InvalidModelBudget, ModelBudget, check_model_budgets, model_budget
from keys.limits import local_counters
from keys.models import KeyModelSpend, VirtualKey, record_change
from spend.models import BudgetReset
from spend.reconcile import find_drift, fix_drift
from tests.e2e.server import MASTER_KEY
from tests.keys.factories import make_key
from tests.keys.litellm_client import mock_gateway
from tests.keys.metered import METERED, chat, metered  # noqa: F401 (metered: the fixture)

OTHER = {**METERED, "model": "other"}  # the same price under another model group


@pytest.fixture
def other(metered):  # noqa: F811 (the fixture imported above)
    Deployment.objects.create(
        model_id="other-1",
        model_name="other",
        litellm_model="mock/metered",
        input_cost_per_token=metered.input_cost_per_token,
        output_cost_per_token=metered.output_cost_per_token,
    )


async def _key(**fields) -> tuple[str, VirtualKey]:
    raw_key, key = await sync_to_async(make_key)()
    await VirtualKey.objects.filter(pk=key.pk).aupdate(**fields)
    return raw_key, key


async def _tell_processes(kind: str, entity_id: str) -> None:
    """A change made behind the services' back, logged and applied as theirs are."""
    await sync_to_async(record_change)(kind, entity_id)
    await sync_to_async(sync_key_cache)()


def _error(response) -> dict:
    return orjson.loads(response.content)["error"]


async def _model_spend(key: VirtualKey, model: str = "metered") -> Decimal:
    return (await KeyModelSpend.objects.aget(key_id=key.token_hash, model=model)).spend


# -- the entry, as LiteLLM writes it -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"budget_limit": "0.5", "time_period": "1d"}, ModelBudget(Decimal("0.5"), "1d")),
        ({"budget_limit": 2}, ModelBudget(Decimal(2), "")),
        (Decimal("0.25"), ModelBudget(Decimal("0.25"), "")),  # a bare amount, as older LiteLLM keys hold
        ("3", ModelBudget(Decimal(3), "")),
    ],
)
def test_a_model_budget_entry_is_read_as_litellm_writes_it(entry, expected):
    assert model_budget(entry) == expected


@pytest.mark.parametrize(
    "budgets",
    [
        {"gpt-4o": {"budget_limit": "x"}},
        {"gpt-4o": {"budget_limit": -1}},
        {"gpt-4o": {"budget_limit": 1, "time_period": "fortnight"}},
        {"gpt-4o": {"budget_limit": 1, "period": "1d"}},
        {"gpt-4o": True},
        {"gpt-4o": None},
        {"m" * 136: 1},
    ],
)
def test_a_model_budget_the_proxy_could_not_enforce_is_refused(budgets):
    with pytest.raises(InvalidModelBudget):
        check_model_budgets(budgets)


# -- enforced ----------------------------------------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytestmark_db
@pytest.mark.usefixtures("backend")
async def test_fifty_concurrent_calls_against_a_per_model_budget_for_ten_admit_exactly_ten(other):
    raw_key, key = await _key(model_max_budget={"metered": {"budget_limit": "1.0", "time_period": "1d"}})

    responses = await asyncio.gather(*(chat(raw_key) for _ in range(50)))
    other = await chat(raw_key, OTHER)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [400] * 40
    assert all("on model metered has spent" in _error(r)["message"] for r in responses if r.status_code == 400)
    assert await _model_spend(key) == Decimal("1.0")
    assert other.status_code == 200  # the key's other models keep working
    assert await sync_to_async(find_drift)() == []


@pytestmark_db
async def test_a_spent_model_budget_refuses_with_budget_exceeded_naming_key_and_model(other):
    raw_key, key = await _key(key_alias="reporting", model_max_budget={"metered": "0.1"})

    admitted, refused = await chat(raw_key), await chat(raw_key)

    assert (admitted.status_code, refused.status_code) == (200, 400)
    error = _error(refused)
    assert (error["type"], error["code"], error["param"]) == ("budget_exceeded", "budget_exceeded", "max_budget")
    assert error["message"] == (
        "Budget has been exceeded: key reporting on model metered has spent 0.1 of its max_budget 0.1."
    )


@pytestmark_db
async def test_a_budget_set_on_the_name_asked_for_does_not_hold_an_alias_to_another_group(other):
    """Budgets are per model group: the group a call reaches is the one charged and checked."""
    raw_key, key = await _key(aliases={"cheap": "metered"}, model_max_budget={"metered": "0.1"})

    first, second = await chat(raw_key, {**METERED, "model": "cheap"}), await chat(raw_key)

    assert (first.status_code, second.status_code) == (200, 400)


@pytestmark_db
@pytest.mark.parametrize(
    ("limits", "what"),
    [
        ({"model_rpm_limit": {"metered": 1}}, "1 requests per minute (rpm_limit)"),
        ({"model_tpm_limit": {"metered": 1}}, "1 tokens per minute (tpm_limit)"),
    ],
)
async def test_a_per_model_rate_limit_answers_429_for_that_model_only(other, limits, what):
    raw_key, _ = await _key(key_alias="limited", **limits)

    first, second, other = await chat(raw_key), await chat(raw_key), await chat(raw_key, OTHER)

    assert (first.status_code, second.status_code, other.status_code) == (200, 429, 200)
    assert _error(second)["message"] == f"Rate limit exceeded: key limited on model metered is limited to {what}."


@pytestmark_db
async def test_a_keys_spend_on_a_model_counts_from_when_its_budget_is_first_used(other):
    raw_key, key = await _key()
    await chat(raw_key)  # before the key had a budget for the model
    await VirtualKey.objects.filter(pk=key.pk).aupdate(model_max_budget={"metered": "0.2"})
    await _tell_processes("key", key.token_hash)

    first, second, third = await chat(raw_key), await chat(raw_key), await chat(raw_key)

    assert [r.status_code for r in (first, second, third)] == [200, 200, 400]
    assert await _model_spend(key) == Decimal("0.2")
    assert await sync_to_async(find_drift)() == []


@pytestmark_db
async def test_reconcile_finds_a_drift_planted_in_a_keys_model_spend_and_fixes_it(other):
    raw_key, key = await _key(model_max_budget={"metered": "5"})
    await chat(raw_key)
    await chat(raw_key, OTHER)  # the key's spend, not its spend on "metered"
    await KeyModelSpend.objects.filter(key_id=key.token_hash).aupdate(spend=Decimal("1.1"))

    drifts = await sync_to_async(find_drift)()

    assert [(d.kind, d.entity_id, d.stored, d.expected) for d in drifts] == [
        ("keymodel", f"{key.token_hash}:metered", Decimal("1.1"), Decimal("0.1"))
    ]
    await sync_to_async(fix_drift)(drifts[0])
    assert await _model_spend(key) == Decimal("0.1")


@pytestmark_db
async def test_a_per_model_budget_period_that_ended_is_reset_by_the_next_call(other):
    raw_key, key = await _key(model_max_budget={"metered": {"budget_limit": "0.1", "time_period": "1d"}})
    await chat(raw_key)
    await KeyModelSpend.objects.filter(key_id=key.token_hash).aupdate(
        budget_reset_at=timezone.now() - timedelta(hours=1)
    )
    await _tell_processes("keymodel", f"{key.token_hash}:metered")
    # This test moved the period's end back: counters that knew the original period would take the next one, which
    # ends at the same moment, for the same period. A process starting now knows neither.
    local_counters().clear()

    response = await chat(raw_key)

    assert response.status_code == 200, response.content
    reset = await BudgetReset.objects.filter(kind="keymodel").alatest("id")
    assert (reset.entity_id, reset.period_spend) == (f"{key.token_hash}:metered", Decimal("0.1"))
    spend = await KeyModelSpend.objects.aget(key_id=key.token_hash)
    assert spend.spend == Decimal("0.1")
    assert spend.budget_reset_at > timezone.now()
    assert await sync_to_async(find_drift)() == []


@pytestmark_db
async def test_a_key_generated_with_a_spent_model_budget_is_refused_through_the_openai_sdk():
    """As a LiteLLM user does it: /key/generate with model_max_budget in LiteLLM's shape, then the openai SDK."""
    async with mock_gateway() as gateway:
        status, made = await gateway.post(
            "/key/generate",
            {"key_alias": "capped", "model_max_budget": {"demo-model": {"budget_limit": 0, "time_period": "1d"}}},
        )
        assert status == 200, made
        refused = await gateway.chat(made["key"])

    assert isinstance(refused, openai.BadRequestError), refused
    assert (refused.code, refused.body["type"]) == ("budget_exceeded", "budget_exceeded")
    assert "key capped on model demo-model has spent 0 of its max_budget 0" in refused.message


@pytestmark_db
async def test_key_info_shows_the_keys_spend_on_each_model_it_has_a_budget_for(other):
    raw_key, key = await _key(model_max_budget={"metered": "5"}, model_rpm_limit={"other": 100})
    await chat(raw_key)
    await chat(raw_key, OTHER)

    response = await AsyncClient().get("/key/info", {"key": raw_key}, headers={"Authorization": f"Bearer {MASTER_KEY}"})

    assert response.status_code == 200
    assert orjson.loads(response.content)["info"]["model_spend"] == {"metered": 0.1}
