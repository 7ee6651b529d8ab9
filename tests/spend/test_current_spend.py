"""Every report counts every committed call at once: the overview and /global/spend/report show the same exact
totals whether no rollup has run, all logs are rolled up, or only some are, and read them in a pinned number of
queries.

The overview's queries: the session and its user, the rollup mark, the logs not rolled up, the reads of the rollups
(days, the stacked dimension by day, top teams, keys, users, customers and models: seven) and the unpriced calls,
the mark again, names (of the stacked teams, and of the top teams, keys, users and customers: five), the admin's
router settings, and the teams' month (the mark, the logs not rolled up, the rollups, the mark, the teams: five):
24. /global/spend/report: the mark, the logs not rolled up, the rollups, the mark
again (and team names, grouped by team).
"""

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from django.utils import timezone

from spend import selectors
from spend.ledger import write_batch
from spend.rollups import recompute_day, rollup_spend
from tests.spend.conftest import DAY, make_entry, make_team

pytestmark = pytest.mark.django_db
OVERVIEW = "/admin/spend/spendlog/overview/"
RANGE = {"start": "2026-03-10", "end": "2026-03-12"}
KEY_A, KEY_B = "a" * 64, "b" * 64
OVERVIEW_QUERIES = 24  # names: no query for a kind with no ids on the page (one kind has none here); tag budgets
REPORT_QUERIES = {"team": 5, "api_key": 4, "user": 4, "model": 4}


def _first_calls():
    return [
        make_entry(request_id="a", team_id="t1", key_hash=KEY_A, user_id="u1", cost=Decimal("0.00000000013")),
        make_entry(request_id="b", team_id="t1", key_hash=KEY_A, user_id="u2", model_group="claude",
                   cost=Decimal("1.1"), start_time=DAY + timedelta(days=1)),
    ]  # fmt: skip


def _later_calls():
    return [
        make_entry(request_id="c", team_id="t2", key_hash=KEY_B, user_id="u2", cost=Decimal("0.2"),
                   start_time=DAY + timedelta(days=2)),
        make_entry(request_id="d", team_id="t1", key_hash=KEY_A, user_id="u1", cost=Decimal("0.3")),
        make_entry(request_id="e", team_id="t2", model_group="mystery", pricing_source="unpriced", cost=Decimal(0),
                   start_time=DAY + timedelta(days=1)),
    ]  # fmt: skip


@pytest.fixture(params=["nothing rolled up", "some rolled up", "all rolled up"])
def calls(request):
    make_team(team_id="t1", team_alias="Research")
    write_batch(_first_calls())
    if request.param != "nothing rolled up":
        rollup_spend(DAY + timedelta(days=2))
    write_batch(_later_calls())
    if request.param == "all rolled up":
        rollup_spend(DAY + timedelta(days=2))
    return request.param


def test_the_overview_counts_every_committed_call(admin_client, calls, django_assert_num_queries):
    admin_client.get(OVERVIEW)  # warm the session
    before = timezone.now()
    with django_assert_num_queries(OVERVIEW_QUERIES):
        response = admin_client.get(OVERVIEW, RANGE)
    context = response.context
    assert context["totals"]["exact_cost"] == Decimal("1.60000000013")
    assert context["totals"]["requests"] == 5
    assert [(row.name, row.cost, row.requests) for row in context["top"]["team"]] == [
        ("Research", Decimal("1.40000000013"), 3),
        ("(deleted team)", Decimal("0.2"), 2),  # a team id no team holds (any more)
    ]
    assert [(row.cost, KEY_A in row.logs_url) for row in context["top"]["key"]][:2] == [
        (Decimal("1.40000000013"), True),
        (Decimal("0.2"), False),
    ]
    assert [(row["model_group"], row["unpriced_requests"]) for row in context["unpriced"]] == [("mystery", 1)]
    assert sum(segment.value for segment in context["chart"].segments) == Decimal("1.60000000013")
    assert before <= context["as_of"] <= timezone.now()
    assert (context["rolled_up_at"] is None) == (calls == "nothing rolled up")
    assert 'id="as-of"' in response.content.decode()


@pytest.mark.parametrize("group_by", ["team", "api_key", "user", "model"])
def test_the_spend_report_counts_every_committed_call(api, calls, group_by, django_assert_num_queries):
    with django_assert_num_queries(REPORT_QUERIES[group_by]):
        response = api.get("/global/spend/report", {"start_date": "2026-03-10", "end_date": "2026-03-12",
                                                    "group_by": group_by})  # fmt: skip
    assert response.status_code == 200
    report = orjson.loads(response.content)
    if group_by == "api_key":
        spend = {key["api_key"]: Decimal(str(key["total_cost"])) for key in report}
        assert spend == {KEY_A: Decimal("1.40000000013"), KEY_B: Decimal("0.2"), "": Decimal(0)}
    else:
        plural = f"{group_by}s"
        assert sum(Decimal(str(group["total_spend"])) for day in report for group in day[plural]) == Decimal(
            "1.60000000013"
        )
    as_of = datetime.fromisoformat(response["X-Tollgate-As-Of"])
    assert timedelta(0) <= timezone.now() - as_of < timedelta(seconds=5)


def test_the_report_csv_counts_every_committed_call(api, calls):
    response = api.get("/global/spend/report", {"start_date": "2026-03-10", "end_date": "2026-03-12", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["day"], row["team"], row["model"], row["spend"], row["requests"]) for row in rows] == [
        ("2026-03-10", "t1", "gpt-4o", "0.30000000013", "2"),
        ("2026-03-11", "t1", "claude", "1.1", "1"),
        ("2026-03-11", "t2", "mystery", "0", "1"),
        ("2026-03-12", "t2", "gpt-4o", "0.2", "1"),
    ]
    assert response["X-Tollgate-As-Of"]


def _total(spend: selectors.CurrentSpend) -> tuple[Decimal, int]:
    rows = spend.totals(["day"])
    return sum((row["cost"] for row in rows), Decimal(0)), sum(row["requests"] for row in rows)


def test_a_rollup_committing_mid_read_makes_the_read_start_again():
    write_batch(_first_calls())
    reads = []

    def read_while_a_rollup_commits(spend):
        reads.append(spend.last_log_id)
        if len(reads) == 1:
            rollup_spend(DAY + timedelta(days=2))  # moves both logs from the tail into the rollups
        return _total(spend)

    total, spend = selectors.read_current_spend(DAY.date(), DAY.date() + timedelta(days=1), read_while_a_rollup_commits)
    assert total == (Decimal("1.10000000013"), 2)
    assert reads == [0, spend.last_log_id] and spend.last_log_id > 0


def test_a_log_committed_while_the_rollup_recomputes_its_day_counts_once():
    write_batch(_first_calls()[:1])
    run = rollup_spend(DAY + timedelta(days=2))
    write_batch(_later_calls()[1:2])  # same day, its id above the run's watermark
    recompute_day(DAY.date(), run.last_log_id)  # what the run's recompute reads if that log commits meanwhile
    total, _ = selectors.read_current_spend(DAY.date(), DAY.date(), _total)
    assert total == (Decimal("0.30000000013"), 2)


@pytest.mark.parametrize("rolled_up", [True, False])
def test_a_value_the_tail_lifts_ranks_among_the_top(rolled_up):
    # Twenty keys at 1..20 dollars; then the cheapest gets 20 more, a new key 15.5 and the second cheapest 0.5.
    write_batch([make_entry(key_hash=f"{n:064x}", cost=Decimal(n)) for n in range(1, 21)])
    if rolled_up:
        rollup_spend(DAY + timedelta(days=1))
    write_batch([make_entry(key_hash=f"{1:064x}", cost=Decimal(20)), make_entry(key_hash=KEY_B, cost=Decimal("15.5")),
                 make_entry(key_hash=f"{2:064x}", cost=Decimal("0.5"))])  # fmt: skip
    top, _ = selectors.read_current_spend(DAY.date(), DAY.date(), lambda spend: spend.top("key_hash", 10))
    expected = [(f"{1:064x}", Decimal(21), 2)] + [(f"{n:064x}", Decimal(n), 1) for n in range(20, 15, -1)]
    expected += [(KEY_B, Decimal("15.5"), 1)] + [(f"{n:064x}", Decimal(n), 1) for n in range(15, 12, -1)]
    assert [(row["key_hash"], row["cost"], row["requests"]) for row in top] == expected
