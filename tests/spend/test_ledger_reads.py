"""Reads of the ledger that must not grow with it (issue 22): a payer's first page of logs off its index."""

from datetime import timedelta

import pytest
from django.db import connection, transaction

from spend import selectors
from spend.ledger import write_batch
from spend.models import SpendLog
from spend.partitions import ensure_partitions
from spend.periods import local_day
from tests.spend.conftest import DAY, make_entry

pytestmark = pytest.mark.django_db
KEY = "a" * 64


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="day partitions and their plans are PostgreSQL's")
@pytest.mark.parametrize("payer", ["api_key", "team_id", "user_id"])
def test_a_payers_first_page_is_read_off_its_index_newest_first_without_a_sort(payer):
    """The page is ordered by (-start_time, -id): an index led by the payer and holding both gives that order in
    each day's partition (the days in turn), so the limit stops the read at the page's end. With (payer,
    start_time) only, every log of the payer in the range was read and sorted for the id: that read grew with the
    payer's logs (x2.3 from 200,000 to 20 million logs for the quietest key)."""
    days = [local_day(DAY) - timedelta(days=offset) for offset in range(5)]
    ensure_partitions(days=days)
    write_batch(
        [make_entry(start_time=DAY - timedelta(days=offset % 5, minutes=offset), key_hash=KEY, team_id="t", user_id="u")
         for offset in range(200)]
    )  # fmt: skip
    logs = selectors.spend_logs(
        selectors.LogFilter(**{payer: KEY if payer == "api_key" else payer[0]}, start_date=days[-1], end_date=days[0])
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # However few rows the test has, a plan that must sort says so: sorts priced out, the plan still has one.
        cursor.execute("SET LOCAL enable_sort = off; SET LOCAL enable_incremental_sort = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off")
        plan = _plan(logs[:50])
    assert "Sort" not in plan, plan
    assert "Index Scan Backward" in plan, plan
    page = list(logs.values_list("start_time", "id")[:50])
    assert page == sorted(SpendLog.objects.values_list("start_time", "id"), reverse=True)[:50]
