from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from spend.ledger import SpendEntry, write_batch
from spend.models import SpendLog
from spend.partitions import DEFAULT_PARTITION, day_partitions
from tests.spend.conftest import charged_entry, make_entry, make_key, needs_postgres

pytestmark = pytest.mark.django_db


def test_a_batch_written_twice_is_logged_once():
    batch = [make_entry(), make_entry()]
    write_batch(batch)
    write_batch(batch)  # a retry after a commit whose acknowledgement was lost

    assert SpendLog.objects.count() == 2


def test_a_request_id_twice_in_one_batch_is_logged_once():
    entry = make_entry()
    write_batch([entry, entry])
    assert SpendLog.objects.count() == 1


@pytest.mark.parametrize("cost", ["0.00000000013", "123456789012345678.12345678901234567891", "0"])
def test_the_logged_cost_keeps_every_digit(cost):
    write_batch([make_entry(cost=Decimal(cost))])
    assert SpendLog.objects.get().cost == Decimal(cost)


# -- PostgreSQL's one-round-trip write (outside a transaction: what the ledger's writer thread does) ------------


def _fields(row) -> dict:
    """Every field of an entry or of the log it became."""
    return {name: getattr(row, name) for name in SpendEntry.__slots__}


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_commits_in_one_round_trip_and_stores_every_field_exactly(payers, django_assert_num_queries):
    key, user, team = payers
    first = charged_entry(
        key,
        cost=Decimal("123456789012345678.12345678901234567891"),
        cost_breakdown={"input": "0.1", "output": "0.00000000000000000001"},
        prices={"input_cost_per_token": "1.25E-7"},
        metadata={"tags": ["nightly", "ünïcødé ✓"], "nested": {"n": 1.5, "none": None}},
        request_tags=["nightly", "ünïcødé ✓"],
        time_to_first_token_ms=12,
        status=SpendLog.Status.CLIENT_DISCONNECTED,
        error_class="ClientDisconnected",
        attempts=3,
        start_time=datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=UTC),
    )
    second = charged_entry(key, cost=Decimal("1E-20"), time_to_first_token_ms=None)
    with django_assert_num_queries(1):
        write_batch([first, second])

    logs = {log.request_id: log for log in SpendLog.objects.all()}
    assert _fields(logs[first.request_id]) == _fields(first)
    assert _fields(logs[second.request_id]) == _fields(second)
    assert logs[first.request_id].id < logs[second.request_id].id  # logged in the batch's order
    total = Decimal("123456789012345678.12345678901234567892")
    assert [type(e).objects.get(pk=e.pk).spend for e in (key, user, team)] == [total] * 3


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_replayed_batch_falls_back_and_charges_only_what_is_new(payers):
    key, user, team = payers
    logged, fresh = charged_entry(key, cost=Decimal("0.5")), charged_entry(key, cost=Decimal("0.25"))
    write_batch([logged])
    write_batch([logged, fresh, fresh])  # the first already committed; the second twice in the batch

    assert sorted(SpendLog.objects.values_list("request_id", flat=True)) == sorted(
        [logged.request_id, fresh.request_id]
    )
    assert [type(e).objects.get(pk=e.pk).spend for e in (key, user, team)] == [Decimal("0.75")] * 3


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_full_batch_of_tiny_charges_over_many_payers_reconciles(payers):
    key, user, team = payers
    others = [make_key(team=team) for _ in range(20)]
    batch = [charged_entry([key, *others][n % 21], cost=Decimal("1.3E-10") * (n + 1)) for n in range(500)]
    write_batch(batch)

    assert SpendLog.objects.count() == 500
    assert type(team).objects.get(pk=team.pk).spend == sum((e.cost for e in batch), Decimal(0))
    call_command("reconcile_spend")  # raises CommandError on any drift


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_the_general_paths_request_id_check_reads_only_the_batchs_partitions(payers):
    key, _, _ = payers
    now = timezone.now()
    logged, fresh = charged_entry(key, start_time=now), charged_entry(key, start_time=now)
    write_batch([logged])
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        write_batch([logged, fresh])  # inside a transaction: the general path, which checks first
    assert sorted(SpendLog.objects.values_list("request_id", flat=True)) == sorted(
        [logged.request_id, fresh.request_id]
    )

    (check,) = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("SELECT")]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {check}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    tables = {partition.name for partition in day_partitions()} | {DEFAULT_PARTITION}
    (holding,) = [partition.name for partition in day_partitions() if partition.start <= now < partition.end]
    assert {table for table in tables if f" on {table} " in plan or f" on {table}\n" in plan} == {holding}, plan
