"""Budget alerts through the proxy, as an operator receives them: a Slack-style webhook on loopback and Django's mail
outbox; once per holder and budget period under concurrent calls, again in the next period, never a secret."""

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.core import mail
from django.test import AsyncClient
from django.utils import timezone

from gateway.models import Deployment
from keys import alerts
from keys.budgets import next_reset_at
from keys.cache import key_cache
from keys.caller import Limits
from keys.limits import local_counters
from keys.limits_local import LocalCounters
from keys.models import BUDGET_HOLDERS, Budget, Customer
from spend.periods import local_zone
from tests.fakes.webhook import FakeWebhook
from tests.keys.factories import make_key, make_team, make_user

pytestmark = pytest.mark.django_db(transaction=True)

# A call to the mock deployment (gpt-4o-mini's prices) with max_tokens 5 reserves about 2e-5 USD: the budget admits
# a few calls at a time, the soft budget is crossed by the first one charged.
MAX_BUDGET = Decimal("0.00005")
SOFT_BUDGET = Decimal("0.000000001")
CALLS = 20
SOFT, REACHED = alerts.SOFT_BUDGET_CROSSED, alerts.BUDGET_REACHED


@pytest.fixture(autouse=True)
def _alert_settings(settings, tmp_path, mock_deployment):
    settings.TOLLGATE_SPOOL_DIR = tmp_path  # this test's own alert claims
    settings.TOLLGATE_ALERT_EMAILS = ["finance@example.test", "ops@example.test"]
    with FakeWebhook() as hook:
        settings.TOLLGATE_ALERT_WEBHOOK_URL = hook.url
        yield hook


@pytest.fixture
def mock_deployment(db):
    return Deployment.objects.create(
        model_id="mock-1", model_name="demo-model", litellm_model="mock/demo", base_model="gpt-4o-mini"
    )


def key_holder():
    raw, key = make_key(key_alias="alerts-key", max_budget=MAX_BUDGET, soft_budget=SOFT_BUDGET, budget_duration="1d")
    return raw, {}, "key alerts-key", {SOFT, REACHED}, ("key", key.token_hash)


def team_holder():
    team = make_team(team_alias="alerts-team", max_budget=MAX_BUDGET, budget_duration="1d", budget_reset_at=None)
    raw, _ = make_key(team_id=team.team_id)
    return raw, {}, "team alerts-team", {REACHED}, ("team", team.team_id)


def user_holder():
    user = make_user(user_id="alerts-user", max_budget=MAX_BUDGET, budget_duration="1d", budget_reset_at=None)
    raw, _ = make_key(user_id=user.user_id)
    return raw, {}, "user alerts-user", {REACHED}, ("user", user.user_id)


def customer_holder():
    budget = Budget.objects.create(
        budget_id="alerts-budget", max_budget=MAX_BUDGET, soft_budget=SOFT_BUDGET, budget_duration="1d"
    )
    Customer.objects.create(end_user_id="acme-corp", budget=budget, budget_reset_at=None)
    raw, _ = make_key()
    return raw, {"user": "acme-corp"}, "customer acme-corp", {SOFT, REACHED}, ("customer", "acme-corp")


HOLDERS = {"key": key_holder, "team": team_holder, "user": user_holder, "customer": customer_holder}


async def call_concurrently(raw_key: str, extra: dict) -> list[int]:
    body = orjson.dumps(
        {"model": "demo-model", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 5, **extra}
    )

    async def one():
        response = await AsyncClient().post(
            "/v1/chat/completions",
            body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {raw_key}"},
        )
        return response.status_code

    statuses = await asyncio.gather(*(one() for _ in range(CALLS)))
    await asyncio.gather(*list(alerts._pending))  # the alerts claimed by these calls, sent
    return statuses


def set_the_period_end(kind: str, entity_id: str, end: datetime) -> None:
    model, id_field = BUDGET_HOLDERS[kind]
    model.objects.filter(**{id_field: entity_id}).update(budget_reset_at=end)
    key_cache().clear()  # as a sync would: cached limits hold the period they were loaded with


def start_a_period(kind: str, entity_id: str) -> None:
    """A period that ends before the next midnight, where the period a reset starts now ends: the next period then
    ends later than this one, as it does after a real midnight."""
    now = timezone.now()
    set_the_period_end(
        kind, entity_id, now + min(timedelta(minutes=10), (next_reset_at(now, "1d", local_zone()) - now) / 2)
    )


@sync_to_async
def end_the_period(kind: str, entity_id: str) -> None:
    """The holder's budget period is over: the next call resets it and starts the next one."""
    set_the_period_end(kind, entity_id, timezone.now() - timedelta(seconds=1))


def events(hook: FakeWebhook) -> list[str]:
    return sorted(body["event"] for body in hook.received)


@pytest.mark.parametrize("holder", HOLDERS)
async def test_each_alert_goes_out_once_per_period_naming_its_holder(holder, _alert_settings):
    hook = _alert_settings
    raw_key, extra, label, expected, (kind, entity_id) = await sync_to_async(HOLDERS[holder])()
    await sync_to_async(start_a_period)(kind, entity_id)

    statuses = await call_concurrently(raw_key, extra)

    assert 200 in statuses and 400 in statuses  # the budget refused some of the 20 calls: it was reached
    assert events(hook) == sorted(expected)
    assert sorted(message.subject for message in mail.outbox) == sorted(
        f"Tollgate: {label} {'crossed its soft budget' if event == SOFT else 'reached its budget'}"
        for event in expected
    )
    assert all(message.to == ["finance@example.test", "ops@example.test"] for message in mail.outbox)
    for body in hook.received:
        assert body["holder"] == label and body["holder_type"] == kind
        assert body["text"].startswith(f"Tollgate: {label} has spent $")
    reached = next(body for body in hook.received if body["event"] == REACHED)
    assert reached["max_budget"] == "0.00005"

    await end_the_period(kind, entity_id)
    again = await call_concurrently(raw_key, extra)

    assert 200 in again and 400 in again
    assert events(hook) == sorted([*expected, *expected])  # once more, for the new period
    assert len(mail.outbox) == 2 * len(expected)


async def test_alerts_carry_no_secret_and_no_key_hash(_alert_settings):
    hook = _alert_settings
    raw_key, _, _, _, (_, token_hash) = await sync_to_async(key_holder)()

    await call_concurrently(raw_key, {})

    told = b"".join(hook.raw).decode() + "".join(message.subject + message.body for message in mail.outbox)
    assert hook.received and mail.outbox
    assert raw_key not in told
    assert token_hash not in told


async def test_a_failing_webhook_still_mails_and_logs_without_its_address(settings, caplog):
    with FakeWebhook(status=500) as broken:
        settings.TOLLGATE_ALERT_WEBHOOK_URL = broken.url
        raw_key, *_ = await sync_to_async(key_holder)()

        await call_concurrently(raw_key, {})

    assert len(broken.received) == 2 and len(mail.outbox) == 2
    assert "the webhook answered 500" in caplog.text
    assert broken.url not in caplog.text


async def test_a_restarted_server_does_not_alert_again_in_the_same_period(_alert_settings):
    hook = _alert_settings
    raw_key, extra, _, expected, (kind, entity_id) = await sync_to_async(key_holder)()
    await sync_to_async(start_a_period)(kind, entity_id)
    await call_concurrently(raw_key, extra)

    local_counters().clear()  # all a restart forgets: the claims are on disk
    key_cache().clear()
    await call_concurrently(raw_key, extra)

    assert events(hook) == sorted(expected)


async def test_a_holder_keeps_the_claims_of_recent_periods_only(settings, tmp_path):
    settings.TOLLGATE_SPOOL_DIR = tmp_path
    counters = LocalCounters()
    day_ms = 24 * 3600 * 1000
    now_ms = int(timezone.now().timestamp() * 1000)
    periods = [0, now_ms - 3 * day_ms, now_ms - day_ms // 2, now_ms + day_ms]  # never resets, long over, just over

    claimed = [await counters.claim_alert(Limits("team", "t-1", "team t-1", period=period), SOFT) for period in periods]

    assert claimed == [True, True, True, True]
    kept = sorted(int(path.name.rsplit("-", 1)[1]) for path in (tmp_path / "alerts").iterdir())
    assert kept == [0, now_ms - day_ms // 2, now_ms + day_ms]
    assert not await LocalCounters().claim_alert(Limits("team", "t-1", "team t-1", period=now_ms - day_ms // 2), SOFT)
