"""Reads of the ledger that must not grow with it (issue 22): a payer's first page of logs off its index."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from spend import selectors
from spend.entities import PAYER_BY_KIND
from spend.ledger import write_batch
from spend.models import SpendLog
from spend.overview import TAG, UNTAGGED, TaggedSpend
from spend.partitions import ensure_partitions
from spend.periods import local_day
from spend.reconcile import Drift, reconcile
from spend.resets import reset_budget
from tests.spend.conftest import DAY, charged_entry, make_entry, make_key, make_log

pytestmark = pytest.mark.django_db
KEY = "a" * 64
# What a full reconcile run takes, whatever the number of holders (measured: 23 on SQLite, 27 on PostgreSQL).
FULL_RUN_QUERIES = 27


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


@pytest.mark.parametrize("holders", [3, 24])
def test_a_full_reconcile_takes_as_many_queries_for_any_number_of_reset_holders(holders, django_assert_max_num_queries):
    """Each holder reset once has its own period start: a full run read each of them alone, two queries a holder.
    Now one more pass reads them all; a drift planted in one of their periods is still found, exactly."""
    keys = [make_key(budget_duration="1d", budget_reset_at=DAY) for _ in range(holders)]
    for key in keys:  # each reset after one more log: every period starts at another log id
        write_batch([charged_entry(key, cost=Decimal(1))])
        assert reset_budget(PAYER_BY_KIND["key"], key.pk, DAY)
    write_batch([charged_entry(key, cost=Decimal("0.25")) for key in keys])
    drifted = keys[holders // 2]
    make_log(key_hash=drifted.token_hash, cost=Decimal("0.01"))  # its charge never reached the key's spend

    with django_assert_max_num_queries(FULL_RUN_QUERIES):
        drifts = reconcile(full=True).drifts

    assert drifts == [Drift("key", drifted.token_hash, Decimal("0.25"), Decimal("0.26"))]


@pytest.mark.parametrize(("tag", "costs"), [("nightly", ["1", "4"]), (UNTAGGED, ["8"])])
def test_the_overview_narrowed_to_a_tag_groups_only_its_logs_with_exact_totals(tag, costs):
    """The logs not rolled up are read; on PostgreSQL only the tag's are grouped and sent (the whole range was: 1.10 s
    at 200k logs, 0.10 s now, for a tag no log carries)."""
    for cost, tags in (("1", ["nightly"]), ("2", ["other"]), ("4", ["nightly", "other"]), ("8", [])):
        make_log(cost=Decimal(cost), request_tags=tags, team_id="t")
    with CaptureQueriesContext(connection) as queries:
        tagged = TaggedSpend(local_day(DAY), local_day(DAY), {}, tag)

    assert tagged.totals(["team_id", TAG], integers=["requests"]) == [
        {"team_id": "t", TAG: tag, "cost": sum(map(Decimal, costs)), "requests": len(costs)}
    ]
    if connection.vendor == "postgresql":
        *_, read = queries.captured_queries  # the tail: nothing is rolled up here
        assert '"request_tags" @>' in read["sql"] or '"request_tags" =' in read["sql"], read["sql"]
