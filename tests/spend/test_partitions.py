"""The spend log's day partitions on PostgreSQL: made ahead, a log of any time kept, retention by whole days."""

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from gateway.periodic import PeriodicTasks
from spend import tasks
from spend.ledger import SpendEntry, write_batch
from spend.models import DailySpend, PrunedSpend, SpendLog
from spend.partitions import AHEAD_DAYS, DEFAULT_PARTITION, day_partitions, drop_partition, ensure_partitions
from spend.periods import local_day
from spend.reconcile import find_drift
from spend.resets import reset_due_budgets
from spend.retention import prune_spend_logs
from spend.rollups import rollup_spend
from spend.spool import Spool
from tests.spend.conftest import DAY, charged_entry, make_entry

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions are PostgreSQL's; SQLite keeps one plain table"
)
NOW = DAY + timedelta(days=10)


def _rows_in(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        return cursor.fetchone()[0]


def _exists(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        return cursor.fetchone()[0]


def _covered_days() -> set:
    return {partition.day for partition in day_partitions()}


@postgres_only
def test_migrate_leaves_a_partitioned_table_with_the_days_ahead_made():
    with connection.cursor() as cursor:
        cursor.execute("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'spend_spendlog'::regclass")
        assert cursor.fetchone() == ("r",)  # by range (of start_time)
    today = local_day(timezone.now())
    assert {today + timedelta(days=offset) for offset in range(AHEAD_DAYS + 1)} <= _covered_days()


@postgres_only
def test_the_scheduled_task_makes_a_missing_day_ahead():
    last = day_partitions()[-1]
    drop_partition(last)
    assert last.day not in _covered_days()

    made = tasks.create_spend_partitions.apply().get()

    assert made == [last.name]
    assert last.day in _covered_days()


def test_beat_and_the_server_processs_own_loop_both_run_the_partition_task(settings):
    assert PeriodicTasks(settings.CELERY_BEAT_SCHEDULE).intervals["spend.tasks.create_spend_partitions"] == 3600


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite's plain table: the no-op")
def test_on_sqlite_there_is_nothing_to_make():
    assert tasks.create_spend_partitions.apply().get() == []


@postgres_only
@pytest.mark.parametrize("when", [datetime(2001, 1, 1, tzinfo=UTC), datetime(2099, 6, 1, 12, tzinfo=UTC)])
def test_a_log_no_day_partition_covers_lands_in_the_default_and_moves_to_its_day_when_made(when):
    entry = make_entry(start_time=when)
    write_batch([entry])
    assert _rows_in(DEFAULT_PARTITION) == 1

    (made,) = ensure_partitions(days=[local_day(when)])

    assert (_rows_in(DEFAULT_PARTITION), _rows_in(made.name)) == (0, 1)
    assert list(SpendLog.objects.values_list("request_id", "start_time")) == [(entry.request_id, when)]


@pytest.mark.django_db(transaction=True)
def test_a_replayed_call_is_logged_and_charged_once(payers, tmp_path):
    """Through the one-round-trip path (outside a transaction) and through the spool: a replay carries the start time
    its call was given, so the request id's uniqueness per start time still refuses the second copy."""
    key, _, _ = payers
    entry = charged_entry(key, start_time=timezone.now(), cost=Decimal("0.25"))
    write_batch([entry])
    spool = Spool(tmp_path, SpendEntry)
    spool.write([entry])

    write_batch([entry, charged_entry(key, start_time=timezone.now(), cost=Decimal("0.5"))])
    spool.replay(write_batch)

    assert SpendLog.objects.filter(request_id=entry.request_id).count() == 1
    assert SpendLog.objects.count() == 2
    key.refresh_from_db()
    assert key.spend == Decimal("0.75")


@postgres_only
def test_retention_drops_whole_days_keeps_the_period_and_leaves_the_rollups(payers, retention):
    key, _, _ = payers
    retention(7)
    key.budget_duration, key.budget_reset_at = "30d", DAY - timedelta(days=2, hours=-6)
    key.save()
    days = [local_day(DAY - timedelta(days=back)) for back in range(3)]
    ensure_partitions(days=days, now=NOW)

    def log(at, cost):
        return charged_entry(key, start_time=at, cost=Decimal(cost), model_group="g", provider="p")

    # The oldest day's logs straddle the key's budget reset: only those after it count toward its period.
    write_batch([log(DAY - timedelta(days=2), "1")])
    reset_due_budgets(DAY - timedelta(days=2, hours=-7))
    write_batch([log(DAY - timedelta(days=2, hours=-1), "0.1"), log(DAY - timedelta(days=1), "0.01")])
    write_batch([log(DAY, "0.001"), log(NOW, "0.0001")])
    rollup_spend(NOW)
    rollups = sorted(DailySpend.objects.values_list("day", "requests", "cost"))

    pruned = prune_spend_logs(NOW)

    assert (pruned.rows, pruned.days) == (4, days[::-1])
    assert pruned.partitions == [f"spend_spendlog_p{day:%Y%m%d}" for day in days[::-1]]
    assert not any(_exists(name) for name in pruned.partitions)
    assert SpendLog.objects.count() == 1
    assert sorted(DailySpend.objects.values_list("day", "requests", "cost")) == rollups
    carried = PrunedSpend.objects.filter(kind="key")  # one row per day dropped
    assert (sum(row.cost for row in carried), sum(row.requests for row in carried)) == (Decimal("0.111"), 3)
    assert find_drift() == []


@postgres_only
def test_a_day_not_yet_rolled_up_is_kept(retention):
    retention(7)
    day = local_day(DAY)
    ensure_partitions(days=[day], now=NOW)
    write_batch([make_entry(start_time=DAY)])

    assert prune_spend_logs(NOW).partitions == []
    assert day in _covered_days()


def test_the_command_says_what_it_pruned(retention):
    retention(7)
    old = timezone.now() - timedelta(days=30)
    ensure_partitions(days=[local_day(old)])
    write_batch([make_entry(start_time=old), make_entry(start_time=old)])
    rollup_spend()

    out = io.StringIO()
    call_command("prune_spend_logs", stdout=out)

    partitioned = connection.vendor == "postgresql"
    dropped = f"1 partitions dropped (spend_spendlog_p{local_day(old):%Y%m%d})" if partitioned else "0 partitions"
    assert f"Pruned 2 spend logs: {dropped}" in out.getvalue()
