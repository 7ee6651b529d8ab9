import io
import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from spend.ledger import write_batch
from spend.models import DailySpend, RollupState, SpendLog
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, make_entry, make_log, needs_postgres

pytestmark = pytest.mark.django_db
NOW = DAY + timedelta(days=2)


def rows():
    return {
        (row.day, row.team_id, row.model_group): (row.requests, row.failed_requests, row.prompt_tokens, row.cost)
        for row in DailySpend.objects.all()
    }


def test_rollup_totals_each_day_team_and_model_exactly():
    for _ in range(3):
        make_log(team_id="t1", cost=Decimal("0.00000000013"), prompt_tokens=7)
    make_log(team_id="t1", model_group="claude", cost=Decimal("1.5"), status="failure")
    make_log(team_id="t2", start_time=DAY + timedelta(days=1), cost=Decimal("2"))

    rollup_spend(NOW)

    assert rows() == {
        (date(2026, 3, 10), "t1", "gpt-4o"): (3, 0, 21, Decimal("0.00000000039")),
        (date(2026, 3, 10), "t1", "claude"): (1, 1, 10, Decimal("1.5")),
        (date(2026, 3, 11), "t2", "gpt-4o"): (1, 0, 10, Decimal("2")),
    }


def test_running_twice_counts_nothing_twice():
    make_log(team_id="t1")
    rollup_spend(NOW)
    first = rows()
    rollup_spend(NOW)
    assert rows() == first
    assert DailySpend.objects.get().requests == 1


def test_a_late_log_corrects_its_day():
    make_log(team_id="t1", cost=Decimal("1"))
    rollup_spend(NOW)
    make_log(team_id="t1", cost=Decimal("0.25"), start_time=DAY - timedelta(hours=1))  # committed after the run

    run = rollup_spend(NOW)

    assert run.recomputed_days[0] == date(2026, 3, 10)
    assert DailySpend.objects.get().cost == Decimal("1.25")
    assert DailySpend.objects.get().requests == 2


def test_a_late_log_on_a_pruned_day_is_added_not_recomputed(retention):
    retention(1)
    old_day = DAY - timedelta(days=10)
    make_log(team_id="t1", start_time=old_day, cost=Decimal("3"))
    rollup_spend(NOW)
    DailySpend.objects.update(requests=5)  # stands in for logs that retention has since deleted
    make_log(team_id="t1", start_time=old_day, cost=Decimal("0.5"))

    run = rollup_spend(NOW)

    assert run.added_days == [old_day.date()]
    row = DailySpend.objects.get()
    assert (row.requests, row.cost) == (6, Decimal("3.5"))


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_count_nothing_twice():
    for hour in range(40):
        make_log(team_id=f"t{hour % 3}", start_time=DAY + timedelta(hours=hour), cost=Decimal("0.0000001"))
    barrier = threading.Barrier(2)
    errors = []

    def worker():
        try:
            barrier.wait()
            rollup_spend(NOW)
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(row.requests for row in DailySpend.objects.all()) == 40
    assert sum((row.cost for row in DailySpend.objects.all()), Decimal(0)) == Decimal("0.000004")


def test_the_rollup_spend_command_rolls_up_now():
    write_batch([make_entry(cost=Decimal("0.00000000013")), make_entry(cost=Decimal("1.1"))])
    out = io.StringIO()
    call_command("rollup_spend", stdout=out)
    last_log_id = SpendLog.objects.order_by("-id").values_list("id", flat=True).first()
    assert RollupState.objects.get().last_log_id == last_log_id
    assert f"Rolled up to spend log {last_log_id}" in out.getvalue()
    assert DailySpend.objects.get(day=DAY.date()).cost == Decimal("1.10000000013")
