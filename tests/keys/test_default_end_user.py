"""LiteLLM's default end-user budget (litellm_settings max_end_user_budget, max_end_user_budget_id): a customer with
no budget of its own is held to it, on its own spend; one with a budget of its own is not."""

from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from gateway.config_import import parse_config
from gateway.general_settings import environment_from_config
from keys import customer_services
from keys.models import Budget, Customer
from spend.models import BudgetReset
from spend.reconcile import find_drift
from tests.e2e.server import MASTER_KEY
from tests.keys.metered import METERED, metered  # noqa: F401 (metered: the fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("metered")]

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


async def chat(user: str):
    return await AsyncClient().post(
        "/v1/chat/completions", orjson.dumps({**METERED, "user": user}), content_type="application/json", headers=AUTH
    )


def error_of(response) -> dict:
    return orjson.loads(response.content)["error"]


async def test_max_end_user_budget_holds_each_new_customer_on_its_own_spend(settings):
    settings.TOLLGATE_MAX_END_USER_BUDGET = "0.15"  # one call of 0.1 each

    first, second, other = await chat("alice"), await chat("alice"), await chat("bob")

    assert (first.status_code, second.status_code, other.status_code) == (200, 400, 200)
    assert error_of(second)["code"] == "budget_exceeded"
    assert "customer alice has spent 0.1 of its max_budget 0.15" in error_of(second)["message"]
    assert (await Customer.objects.aget(end_user_id="alice")).budget_id is None  # no budget was made for it


async def test_a_customer_with_a_budget_of_its_own_is_not_held_to_the_default(settings):
    settings.TOLLGATE_MAX_END_USER_BUDGET = "0"
    await sync_to_async(customer_services.create_customer)({"user_id": "vip", "max_budget": Decimal(5)}, actor="t")

    assert (await chat("vip")).status_code == 200
    assert (await chat("nobody")).status_code == 400


async def test_max_end_user_budget_id_gives_the_budgets_rate_limits_and_a_change_reaches_everyone(settings):
    await Budget.objects.acreate(budget_id="end-users", rpm_limit=1)
    settings.TOLLGATE_MAX_END_USER_BUDGET_ID = "end-users"
    settings.TOLLGATE_MAX_END_USER_BUDGET = "0"  # the budget id wins

    first, second = await chat("carol"), await chat("carol")
    assert (first.status_code, second.status_code) == (200, 429)
    assert "customer carol is limited to 1 requests per minute" in error_of(second)["message"]

    budget = await Budget.objects.aget(budget_id="end-users")
    await sync_to_async(customer_services.update_budget)(budget, {"rpm_limit": 5}, actor="t")
    assert (await chat("carol")).status_code == 200


async def test_the_default_budgets_period_starts_on_first_sight_and_resets(settings):
    await Budget.objects.acreate(budget_id="daily", max_budget=Decimal("0.1"), budget_duration="1d")
    settings.TOLLGATE_MAX_END_USER_BUDGET_ID = "daily"
    # A customer that spent its default budget in a period that has ended.
    await sync_to_async(customer_services.create_customer)({"user_id": "dave", "spend": Decimal("0.1")}, actor="t")
    await Customer.objects.filter(end_user_id="dave").aupdate(budget_reset_at=timezone.now() - timedelta(minutes=1))

    first, second = await chat("dave"), await chat("dave")
    newcomer = await chat("erin")

    assert (first.status_code, second.status_code, newcomer.status_code) == (200, 400, 200)
    assert (await BudgetReset.objects.aget(kind="customer", entity_id="dave")).period_spend == Decimal("0.1")
    async for customer in Customer.objects.filter(end_user_id__in=["dave", "erin"]):
        assert (customer.spend, customer.budget_reset_at > timezone.now()) == (Decimal("0.1"), True)
    assert await sync_to_async(find_drift)() == []


async def test_customer_info_shows_the_spend_the_default_budget_counts(settings):
    settings.TOLLGATE_MAX_END_USER_BUDGET = "1"
    await chat("erin")

    info = await AsyncClient().get("/customer/info", {"end_user_id": "erin"}, headers=AUTH)

    assert Decimal(str(orjson.loads(info.content)["spend"])) == Decimal("0.1")


CONFIG = """
litellm_settings:
  max_end_user_budget: 0.5
  max_end_user_budget_id: os.environ/H6_END_USER_BUDGET
"""


def test_a_configs_litellm_settings_set_the_default_and_are_not_reported_unsupported(tmp_path, monkeypatch):
    monkeypatch.setenv("H6_END_USER_BUDGET", "from-env")
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)

    assert environment_from_config(str(path)) == {
        "TOLLGATE_MAX_END_USER_BUDGET": "0.5",
        "TOLLGATE_MAX_END_USER_BUDGET_ID": "from-env",
    }
    assert parse_config(CONFIG).unsupported == []
