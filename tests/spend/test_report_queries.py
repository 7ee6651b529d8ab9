"""Each report of LiteLLM's reporting family (and /spend/logs summarized) reads in a pinned number of queries, the same for 3 logs as for 60 over
more keys, teams, customers, tags and days, rolled up or not: the rollups and the tail are read grouped, and names
in one query per kind, never one per row (/spend/logs' list, /global/spend/report and the overview are pinned in
test_api.py and test_current_spend.py).

The reads: the rollup mark, the tail (the logs not rolled up), the rollups, the mark again; the tag reports read the
tag rollups and the tagged tail besides; the key reports name their keys, the team report its teams.
"""

from datetime import timedelta
from decimal import Decimal

import pytest

from spend.ledger import write_batch
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, make_entry, make_key, make_team

pytestmark = pytest.mark.django_db
WINDOW = {"start_date": "2026-03-10", "end_date": "2026-03-14"}
END_USERS = "/global/spend/end_users"
REPORTS = [
    ("/global/spend", WINDOW, 4),
    ("/global/spend/keys", WINDOW, 5),
    ("/global/spend/keys", {**WINDOW, "limit": 2}, 5),
    ("/global/spend/teams", WINDOW, 5),
    ("/global/spend/models", WINDOW, 4),
    (END_USERS, {"startTime": "2026-03-10", "endTime": "2026-03-14"}, 4),
    (END_USERS, {"startTime": "2026-03-10", "endTime": "2026-03-14", "api_key": f"{0:064x}"}, 4),
    ("/global/spend/logs", WINDOW, 4),
    ("/global/spend/logs", {**WINDOW, "api_key": f"{1:064x}"}, 4),
    ("/global/spend/tags", WINDOW, 5),
    ("/spend/tags", WINDOW, 5),
    ("/spend/tags", {**WINDOW, "format": "csv"}, 5),
    ("/user/daily/activity", WINDOW, 5),
    ("/user/daily/activity", {**WINDOW, "api_key": f"{0:064x}", "page_size": 2}, 5),
    ("/spend/logs", WINDOW, 4),  # summarized per day
    ("/spend/logs", {**WINDOW, "api_key": f"{0:064x}", "user_id": "u0"}, 4),
    ("/global/spend/report", {**WINDOW, "group_by": "customer"}, 4),
    ("/global/spend/report", {**WINDOW, "group_by": "tag"}, 5),
]


def _calls(count: int, first: int = 0) -> list:
    return [
        make_entry(key_hash=f"{n % 7:064x}", team_id=f"t{n % 5}", user_id=f"u{n % 3}", end_user=f"c{n % 4}",
                   model_group=f"m{n % 6}", request_tags=[f"tag{n % 5}", "all"], cost=Decimal("0.01") * (n + 1),
                   start_time=DAY + timedelta(days=n % 5))
        for n in range(first, first + count)
    ]  # fmt: skip


def _read(api, url: str, params: dict) -> bytes:
    """The answer's body, read inside the caller's query count (a CSV is streamed: its queries run as it is read)."""
    if url == END_USERS:
        response = api.post(url, params, content_type="application/json")
    else:
        response = api.get(url, params)
    assert response.status_code == 200
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize(("url", "params", "queries"), REPORTS)
def test_each_report_reads_in_a_pinned_number_of_queries_whatever_the_number_of_logs(
    api, url, params, queries, django_assert_num_queries
):
    make_team(team_id="t0", team_alias="Research")
    make_key(token_hash=f"{0:064x}", key_alias="app", team_id="t0")
    write_batch(_calls(3))
    with django_assert_num_queries(queries):
        few = _read(api, url, params)
    write_batch(_calls(40, first=3))
    rollup_spend(DAY + timedelta(days=5))
    write_batch(_calls(17, first=43))  # not rolled up: the tail
    with django_assert_num_queries(queries):
        more = _read(api, url, params)

    assert more != few  # the logs written since are in the answer


def test_the_report_by_key_is_summed_per_key_and_model_in_the_database_not_read_per_day(api):
    """The by-key report has no days: read per day, 90 days of rollups came back as 90 times the rows to sum here
    (612 ms at 20 million logs). The answer is the same either way; what the database sends back is not."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    write_batch(_calls(60))
    rollup_spend(DAY + timedelta(days=5))
    with CaptureQueriesContext(connection) as captured:
        response = api.get("/global/spend/report", {**WINDOW, "group_by": "api_key"})
    assert response.status_code == 200
    rollup_reads = [query["sql"] for query in captured if "spend_dailyspend" in query["sql"]]
    assert len(rollup_reads) == 1
    selected = rollup_reads[0].split(" FROM ")[0]  # grouped in SQL on PostgreSQL, summed exactly in Python on SQLite
    assert '"key_hash"' in selected and '"day"' not in selected
    keys = response.json()
    assert len(keys) == 7
    assert sum(Decimal(str(key["total_cost"])) for key in keys) == sum(call.cost for call in _calls(60))
