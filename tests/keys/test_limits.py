"""Budgets and rate limits under concurrency, against this process's counters and against Redis."""

import asyncio
from decimal import Decimal

import pytest

from keys import limits as limits_module
from keys.errors import BudgetExceeded, RateLimited
from keys.limits import admit, live_spend
from tests.keys.factories import caller, limits

pytestmark = pytest.mark.usefixtures("backend")


async def _try(call_caller, cost="0.1", tokens=10):
    try:
        return await admit(call_caller, model_group="gpt-4", worst_case_cost=Decimal(cost), estimated_tokens=tokens)
    except (BudgetExceeded, RateLimited) as exc:
        return exc


async def test_fifty_concurrent_calls_against_a_budget_for_ten_admit_exactly_ten():
    key = caller(limits("key", max_budget=Decimal("1")))
    outcomes = await asyncio.gather(*(_try(key) for _ in range(50)))
    admitted = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert (len(admitted), len(refused)) == (10, 40)
    assert "calls in flight have reserved 1" in str(refused[0])


async def test_settling_for_less_frees_the_budget_for_more_calls():
    key_limits = limits("key", max_budget=Decimal("1"))
    key = caller(key_limits)
    first = await asyncio.gather(*(_try(key) for _ in range(10)))
    assert isinstance(await _try(key), BudgetExceeded)
    await asyncio.gather(*(admission.settle(Decimal("0.01"), 12) for admission in first))
    assert live_spend(key_limits) == Decimal("0.1")
    second = await asyncio.gather(*(_try(key) for _ in range(20)))
    assert sum(not isinstance(o, Exception) for o in second) == 9  # 0.1 spent + 9 x 0.1 reserved = 1


async def test_a_call_that_would_start_over_budget_names_the_budget_its_limit_and_spend():
    key = caller(limits("key", max_budget=Decimal("0.5"), spend=Decimal("0.5")))
    refusal = await _try(key, cost="0")
    assert isinstance(refusal, BudgetExceeded)
    assert refusal.code == "budget_exceeded"
    assert "has spent 0.5 of its max_budget 0.5" in str(refusal)


@pytest.mark.parametrize("over", ["user", "team"])
async def test_the_users_and_teams_budgets_apply_too(over):
    user = limits("user", max_budget=Decimal("10"), spend=Decimal("10") if over == "user" else Decimal(0))
    team = limits("team", max_budget=Decimal("10"), spend=Decimal("10") if over == "team" else Decimal(0))
    refusal = await _try(caller(limits("key"), user=user, team=team))
    assert isinstance(refusal, BudgetExceeded)
    assert f"{over} {over}-" in str(refusal)


async def test_release_gives_the_reservation_back():
    key = caller(limits("key", max_budget=Decimal("0.1")))
    admission = await _try(key)
    assert isinstance(await _try(key), BudgetExceeded)
    await admission.release()
    await admission.release()  # idempotent
    assert not isinstance(await _try(key), Exception)


async def test_settled_spend_is_exact_and_counts_against_the_budget():
    key_limits = limits("key", max_budget=Decimal("0.000000000301"))
    key = caller(key_limits)
    for _ in range(3):
        admission = await _try(key, cost="0.0000000001")
        await admission.settle(Decimal("0.0000000001"), 1)
    assert live_spend(key_limits) == Decimal("0.0000000003")
    assert isinstance(await _try(key, cost="0.000000000002"), BudgetExceeded)


async def test_a_new_budget_period_starts_from_the_databases_spend():
    old = limits("key", entity_id="k-period", max_budget=Decimal("1"), spend=Decimal("1"), period=1000)
    assert isinstance(await _try(caller(old)), BudgetExceeded)
    reset = limits("key", entity_id="k-period", max_budget=Decimal("1"), spend=Decimal("0"), period=2000)
    assert not isinstance(await _try(caller(reset)), Exception)
    # A process that still holds the old period sees the new one's spend, not its stale copy.
    assert not isinstance(await _try(caller(old)), Exception)
    assert live_spend(reset) == Decimal(0)


async def test_rpm_limit_refuses_with_retry_after_and_rate_headers():
    key = caller(limits("key", rpm_limit=3))
    admitted = [await _try(key) for _ in range(3)]
    assert [a.headers()["x-ratelimit-remaining-requests"] for a in admitted] == ["2", "1", "0"]
    assert admitted[0].headers()["x-ratelimit-limit-requests"] == "3"
    refusal = await _try(key)
    assert isinstance(refusal, RateLimited)
    assert refusal.code == "rate_limit_exceeded"
    assert 1 <= int(refusal.headers["retry-after"]) <= 60
    assert refusal.headers["x-ratelimit-remaining-requests"] == "0"


async def test_tpm_limit_counts_estimated_then_actual_tokens():
    key = caller(limits("key", tpm_limit=100))
    admission = await _try(key, tokens=60)
    assert admission.headers()["x-ratelimit-remaining-tokens"] == "40"
    await admission.settle(Decimal(0), 20)  # it used fewer than estimated
    second = await _try(key, tokens=50)
    assert second.headers()["x-ratelimit-remaining-tokens"] == "30"
    await second.settle(Decimal(0), 90)
    assert isinstance(await _try(key, tokens=1), RateLimited)


async def test_max_parallel_requests_counts_calls_in_flight():
    key = caller(limits("key", max_parallel_requests=2), team=limits("team", max_parallel_requests=5))
    first, second = await _try(key), await _try(key)
    refusal = await _try(key)
    assert isinstance(refusal, RateLimited)
    assert "max_parallel_requests" in str(refusal)
    await first.settle(Decimal(0), 10)
    assert not isinstance(await _try(key), Exception)
    await second.release()


async def test_team_rate_limit_is_shared_by_its_keys():
    team = limits("team", rpm_limit=2)
    assert not isinstance(await _try(caller(limits("key"), team=team)), Exception)
    assert not isinstance(await _try(caller(limits("key"), team=team)), Exception)
    refusal = await _try(caller(limits("key"), team=team))
    assert isinstance(refusal, RateLimited)
    assert "team" in str(refusal)


async def test_spend_headers_show_the_keys_live_spend_and_budget():
    key = caller(limits("key", max_budget=Decimal("10"), spend=Decimal("1.25")))
    admission = await _try(key)
    assert admission.headers() == {"x-litellm-key-spend": "1.25", "x-litellm-key-max-budget": "10"}


async def test_the_master_key_has_no_limits():
    from keys.auth import MASTER

    admission = await admit(MASTER, model_group="gpt-4", worst_case_cost=Decimal(1000), estimated_tokens=10)
    assert admission.headers() == {}
    await admission.settle(Decimal(1), 1)


async def test_soft_budget_alerts_once_per_period(monkeypatch):
    sent = []
    monkeypatch.setattr(limits_module.alerts, "send_alert", lambda alert: sent.append(alert.spend))
    key = caller(limits("key", soft_budget=Decimal("0.15")))
    for _ in range(4):
        admission = await _try(key)
        await admission.settle(Decimal("0.1"), 1)
    await asyncio.gather(*limits_module.alerts._pending)
    assert sent == [Decimal("0.2")]
