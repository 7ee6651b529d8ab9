"""The spend overview by tag from its own rollup plus the tail (issue 22): DailyTaggedSpend, rolled with DailySpend,
and only the logs above the watermark read and split by tag."""

import importlib
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from spend.models import DailyTaggedSpend, RollupState, SpendLog
from spend.overview import TAG, UNTAGGED, TaggedSpend
from spend.periods import local_day
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, make_log

pytestmark = pytest.mark.django_db
NOW = DAY + timedelta(days=2)
FIRST, LAST = local_day(DAY), local_day(NOW)
# (cost, tags, team, day offset): several tags, a tag repeated in one call, none.
LOGS = [
    ("0.00000000013", ["nightly"], "t1", 0),
    ("1.5", ["nightly", "eval", "nightly"], "t1", 0),
    ("2.25", [], "t2", 0),
    ("0.1", ["eval"], "t2", 1),
    ("3", [], "t1", 1),
]
LATER = [
    ("0.7", ["nightly", "adhoc"], "t2", 0),  # late: its day is rolled up already
    ("0.05", [], "t1", 2),
    ("4", ["eval"], "t1", 1),
]


def add(logs):
    for cost, tags, team, offset in logs:
        make_log(cost=Decimal(cost), request_tags=tags, team_id=team, start_time=DAY + timedelta(days=offset))


def from_logs(group_by, tag=""):
    """The raw logs' totals per tag (once per distinct tag, UNTAGGED for none) and ``group_by``."""
    totals = {}
    for log in SpendLog.objects.all():
        row = {"day": local_day(log.start_time), "team_id": log.team_id}
        for name in dict.fromkeys(log.request_tags) or [UNTAGGED]:
            if tag and name != tag:
                continue
            key = tuple({**row, TAG: name}[field] for field in group_by)
            cost, requests = totals.get(key, (Decimal(0), 0))
            totals[key] = (cost + log.cost, requests + 1)
    return totals


def read(group_by, tag=""):
    rows = TaggedSpend(FIRST, LAST, {}, tag).totals(group_by, integers=["requests"])
    return {tuple(row[field] for field in group_by): (row["cost"], row["requests"]) for row in rows}


GROUPS = [["day", TAG], [TAG, "team_id"], ["day", "team_id"]]


@pytest.mark.parametrize("tag", ["", "nightly", "eval", UNTAGGED, "adhoc"])
def test_by_tag_and_narrowed_to_one_equals_the_logs_rolled_up_and_in_the_tail(tag):
    add(LOGS)
    rollup_spend(NOW)
    add(LATER)  # the tail, with a late log in a rolled day
    assert RollupState.objects.get().last_log_id < SpendLog.objects.latest("id").id

    for group_by in GROUPS:
        assert read(group_by, tag) == from_logs(group_by, tag)
    rollup_spend(NOW)  # everything rolled up, the late day recomputed whole
    for group_by in GROUPS:
        assert read(group_by, tag) == from_logs(group_by, tag)


def test_a_call_counts_whole_under_each_of_its_tags_once_and_the_untagged_under_untagged():
    add(LOGS)
    rollup_spend(NOW)

    rows = {(row.day, row.tag, row.team_id): (row.cost, row.requests) for row in DailyTaggedSpend.objects.all()}
    assert rows == {
        (FIRST, "nightly", "t1"): (Decimal("1.50000000013"), 2),
        (FIRST, "eval", "t1"): (Decimal("1.5"), 1),
        (FIRST, UNTAGGED, "t2"): (Decimal("2.25"), 1),
        (FIRST + timedelta(days=1), "eval", "t2"): (Decimal("0.1"), 1),
        (FIRST + timedelta(days=1), UNTAGGED, "t1"): (Decimal("3"), 1),
    }


def test_the_overview_by_tag_reads_no_log_below_the_watermark():
    add(LOGS)
    rollup_spend(NOW)
    watermark = RollupState.objects.get().last_log_id
    add(LATER)

    for tag in ("", "nightly"):
        with CaptureQueriesContext(connection) as queries:
            TaggedSpend(FIRST, LAST, {}, tag).totals([TAG])
        log_reads = [query["sql"] for query in queries.captured_queries if '"spend_spendlog"' in query["sql"]]
        assert log_reads, queries.captured_queries
        for sql in log_reads:
            assert f'"spend_spendlog"."id" > {watermark}' in sql, sql


def test_a_late_log_in_a_day_past_retention_is_added_to_its_rows(retention):
    add(LOGS)
    rollup_spend(NOW)
    retention(1)  # the first day is past the horizon now: its rows are added to, not recomputed
    make_log(cost=Decimal("0.5"), request_tags=["eval"], team_id="t1", start_time=DAY)
    run = rollup_spend(NOW)

    assert FIRST in run.added_days
    assert read([TAG], "eval") == from_logs([TAG], "eval")
    assert DailyTaggedSpend.objects.get(day=FIRST, tag="eval", team_id="t1").cost == Decimal("2.0")


def test_the_migration_backfills_every_rolled_up_day_up_to_the_watermark():
    add(LOGS)
    rollup_spend(NOW)
    rolled = sorted(DailyTaggedSpend.objects.values_list("day", "tag", "team_id", "cost", "requests"))
    add(LATER)  # above the watermark: left to the tail
    DailyTaggedSpend.objects.all().delete()

    migration = importlib.import_module("spend.migrations.0015_daily_tagged_spend")
    migration.backfill(apps, SimpleNamespace(connection=connection))

    assert sorted(DailyTaggedSpend.objects.values_list("day", "tag", "team_id", "cost", "requests")) == rolled
    for group_by in GROUPS:
        assert read(group_by) == from_logs(group_by)
