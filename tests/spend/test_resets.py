from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from spend.ledger import write_batch
from spend.models import BudgetReset
from spend.resets import reset_due_budgets
from spend.tasks import reset_budgets
from tests.spend.conftest import charged_entry, make_key, make_team

pytestmark = pytest.mark.django_db
MIDNIGHT = datetime(2026, 3, 11, tzinfo=UTC)


def refreshed(entity):
    entity.refresh_from_db()
    return entity


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (MIDNIGHT - timedelta(microseconds=1), False),
        (MIDNIGHT, True),
        (MIDNIGHT + timedelta(hours=5), True),
    ],
)
def test_a_budget_resets_once_its_reset_time_has_passed(now, due):
    team = make_team(budget_duration="1d", budget_reset_at=MIDNIGHT, spend=Decimal("3.5"))

    assert reset_due_budgets(now) == int(due)

    team = refreshed(team)
    if due:
        assert (team.spend, team.budget_reset_at) == (Decimal(0), MIDNIGHT + timedelta(days=1))
        reset = BudgetReset.objects.get()
        assert (reset.kind, reset.entity_id, reset.period_spend) == ("team", team.team_id, Decimal("3.5"))
    else:
        assert (team.spend, team.budget_reset_at) == (Decimal("3.5"), MIDNIGHT)


@pytest.mark.parametrize(
    ("duration", "next_reset"),
    [("1d", datetime(2026, 3, 12, tzinfo=UTC)), ("1mo", datetime(2026, 4, 1, tzinfo=UTC)), ("6h", None)],
)
def test_the_next_reset_is_the_next_boundary_after_now(duration, next_reset):
    now = MIDNIGHT + timedelta(hours=7, minutes=30)
    key = make_key(budget_duration=duration, budget_reset_at=MIDNIGHT)
    reset_due_budgets(now)
    assert refreshed(key).budget_reset_at == (next_reset or MIDNIGHT + timedelta(hours=12))


def test_a_second_run_finds_nothing_due():
    make_key(budget_duration="1d", budget_reset_at=MIDNIGHT)
    assert reset_due_budgets(MIDNIGHT) == 1
    assert reset_due_budgets(MIDNIGHT) == 0
    assert BudgetReset.objects.count() == 1


def test_calls_on_either_side_of_a_reset_are_charged_to_one_period_each(payers):
    key, user, team = payers
    type(team).objects.filter(pk=team.pk).update(budget_duration="1d", budget_reset_at=MIDNIGHT)
    write_batch([charged_entry(key, cost=Decimal("1"))])
    reset_budgets.apply()  # the task, run in-process
    write_batch([charged_entry(key, cost=Decimal("0.00000000013"))])

    assert refreshed(team).spend == Decimal("0.00000000013")
    assert refreshed(key).spend == Decimal("1.00000000013")  # the key itself has no budget period
    assert BudgetReset.objects.get().period_spend == Decimal("1")
    call_command("reconcile_spend")


def test_a_reset_tells_every_server_process_and_clears_the_soft_budget_alert():
    from keys.models import KeyChange

    key = make_key(budget_duration="1d", budget_reset_at=MIDNIGHT, soft_budget_alerted_at=MIDNIGHT)

    reset_due_budgets(MIDNIGHT)

    change = KeyChange.objects.filter(entity_id=key.token_hash).latest("id")
    assert (change.kind, change.action) == ("key", "budget_reset")
    assert refreshed(key).soft_budget_alerted_at is None
