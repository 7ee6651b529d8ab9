"""Budget periods end on time by themselves: the first call after the boundary resets its key's, user's and team's
period before it is admitted, with or without Celery beat (the embedded default runs none)."""

from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from gateway.models import Deployment
from keys.models import Team, VirtualKey
from spend.models import BudgetReset, SpendLog
from spend.reconcile import find_drift
from tests.keys.factories import make_key, make_team

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "demo-model", "messages": [{"role": "user", "content": "Hello there"}]}


async def call(raw_key: str):
    return await AsyncClient().post(
        "/v1/chat/completions",
        orjson.dumps(CHAT),
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw_key}"},
    )


@pytest.fixture
def mock_deployment(db):
    return Deployment.objects.create(
        model_id="mock-1", model_name="demo-model", litellm_model="mock/demo", base_model="gpt-4o-mini"
    )


async def test_an_exhausted_budget_whose_period_ended_is_reset_by_the_next_call(mock_deployment):
    team = await sync_to_async(make_team)(max_budget=Decimal("0.5"), budget_duration="1d")
    raw_key, key = await sync_to_async(make_key)(max_budget=Decimal("0.5"), budget_duration="1d", team_id=team.team_id)
    ended = timezone.now() - timedelta(seconds=1)
    await VirtualKey.objects.filter(pk=key.pk).aupdate(spend=Decimal("0.5"), budget_reset_at=ended)
    await Team.objects.filter(pk=team.pk).aupdate(spend=Decimal("0.5"), budget_reset_at=ended)

    response = await call(raw_key)

    assert response.status_code == 200, response.content
    resets = [reset async for reset in BudgetReset.objects.order_by("kind")]
    assert [(reset.kind, reset.period_spend) for reset in resets] == [("key", Decimal("0.5")), ("team", Decimal("0.5"))]
    log = await SpendLog.objects.aget()
    key = await VirtualKey.objects.aget(pk=key.pk)
    assert key.spend == log.cost > 0
    assert key.budget_reset_at > timezone.now()
    assert await sync_to_async(find_drift)() == []


async def test_a_budget_whose_period_has_not_ended_stays_exhausted(mock_deployment):
    raw_key, key = await sync_to_async(make_key)(max_budget=Decimal("0.5"), budget_duration="1d")
    await VirtualKey.objects.filter(pk=key.pk).aupdate(spend=Decimal("0.5"))

    response = await call(raw_key)

    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["type"] == "budget_exceeded"
    assert await BudgetReset.objects.acount() == 0
