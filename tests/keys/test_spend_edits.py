"""Spend set by hand (/key/update, /team/update, /user/update with `spend`) is an adjustment row in the ledger: the
stored spend stays the sum of its logs, and the budget counters of every process take the edit at their next call."""

from decimal import Decimal

import pytest

from keys.auth import authenticate
from keys.errors import BudgetExceeded
from keys.limits import admit
from keys.models import InternalUser, Team, VirtualKey
from spend.ledger import write_batch
from spend.models import SpendLog
from spend.reconcile import find_drift
from tests.spend.conftest import make_entry

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("backend")]


async def try_admit(raw_key: str):
    caller = await authenticate(f"Bearer {raw_key}")
    try:
        return await admit(caller, model_group="gpt-4", worst_case_cost=Decimal("0.01"), estimated_tokens=1)
    except BudgetExceeded as exc:
        return exc


def charge(key: VirtualKey, cost: str) -> None:
    """A call's charge, as the ledger commits it."""
    write_batch(
        [make_entry(key_hash=key.token_hash, user_id=key.user_id or "", team_id=key.team_id or "", cost=Decimal(cost))]
    )


async def test_setting_a_keys_spend_to_zero_is_an_adjustment_and_reopens_its_budget_at_once(api):
    status, made = api.post("/key/generate", {"max_budget": 1, "duration": "30d"})
    assert status == 200
    key = await VirtualKey.objects.aget(token_hash=made["token"])
    charge(key, "1.000000000000000007")
    assert isinstance(await try_admit(made["key"]), BudgetExceeded)

    status, _ = api.post("/key/update", {"key": made["key"], "spend": 0})

    assert status == 200
    assert not isinstance(await try_admit(made["key"]), Exception)
    adjustment = await SpendLog.objects.aget(call_type="adjustment")
    assert adjustment.cost == Decimal("-1.000000000000000007")
    assert (adjustment.key_hash, adjustment.user_id, adjustment.team_id) == (key.token_hash, "", "")
    assert adjustment.metadata["reason"] == "spend set by hand"
    assert (await VirtualKey.objects.aget(pk=key.pk)).spend == 0
    assert find_drift() == []


async def test_a_teams_and_a_users_spend_edit_moves_only_their_own_spend(api):
    status, team = api.post("/team/new", {"team_alias": "Edits"})
    status, user = api.post("/user/new", {"teams": [team["team_id"]], "auto_create_key": False})
    status, made = api.post("/key/generate", {"team_id": team["team_id"], "user_id": user["user_id"]})
    key = await VirtualKey.objects.aget(token_hash=made["token"])
    charge(key, "0.25")

    assert api.post("/team/update", {"team_id": team["team_id"], "spend": 5})[0] == 200
    assert api.post("/user/update", {"user_id": user["user_id"], "spend": 0.1})[0] == 200

    assert (await Team.objects.aget(team_id=team["team_id"])).spend == Decimal(5)
    assert (await InternalUser.objects.aget(user_id=user["user_id"])).spend == Decimal("0.1")
    assert (await VirtualKey.objects.aget(pk=key.pk)).spend == Decimal("0.25")
    assert find_drift() == []


async def test_an_edit_that_changes_nothing_writes_no_adjustment(api):
    status, made = api.post("/key/generate", {"max_budget": 1})

    assert api.post("/key/update", {"key": made["key"], "spend": 0})[0] == 200
    assert await SpendLog.objects.acount() == 0
