import csv
import io
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest

from keys.auth import hash_key
from spend.ledger import write_batch
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, make_entry, make_team

pytestmark = pytest.mark.django_db
RAW_KEY = "sk-spend-api-test"
KEY_HASH = hash_key(RAW_KEY)


@pytest.fixture
def logs():
    make_team(team_id="t1", team_alias="Research")
    write_batch(
        [
            make_entry(request_id="a", key_hash=KEY_HASH, user_id="u1", team_id="t1", cost=Decimal("0.00000000013")),
            make_entry(request_id="b", key_hash=KEY_HASH, user_id="u2", team_id="t1", cost=Decimal("1.1"),
                       model_group="claude", start_time=DAY + timedelta(days=1)),
            make_entry(request_id="c", user_id="u2", team_id="t2", cost=Decimal("0.2"), start_time=DAY + timedelta(days=2)),
        ]
    )  # fmt: skip
    rollup_spend(DAY + timedelta(days=3))


def get_json(api, url, **params):
    response = api.get(url, params)
    assert response.status_code == 200, response.content
    return orjson.loads(response.content)


@pytest.mark.parametrize(
    ("params", "request_ids"),
    [
        ({}, ["c", "b", "a"]),
        ({"api_key": RAW_KEY}, ["b", "a"]),
        ({"api_key": KEY_HASH}, ["b", "a"]),
        ({"user_id": "u2"}, ["c", "b"]),
        ({"team_id": "t2"}, ["c"]),
        ({"request_id": "b"}, ["b"]),
        ({"start_date": "2026-03-11"}, ["c", "b"]),
        ({"start_date": "2026-03-10", "end_date": "2026-03-11", "summarize": "false"}, ["b", "a"]),
        ({"end_date": "2026-03-10"}, ["a"]),
    ],
)
def test_spend_logs_filters(api, logs, params, request_ids):
    assert [log["request_id"] for log in get_json(api, "/spend/logs", **params)] == request_ids


def test_spend_logs_print_money_exactly_as_json_numbers(api, logs):
    response = api.get("/spend/logs", {"request_id": "a"})
    assert b'"spend":0.00000000013,' in response.content


def test_spend_logs_summarized_by_day(api, logs):
    days = get_json(api, "/spend/logs", start_date="2026-03-10", end_date="2026-03-12")
    assert [(day["startTime"], day["spend"], day["models"]) for day in days] == [
        ("2026-03-10", 1.3e-10, {"gpt-4o": 1.3e-10}),
        ("2026-03-11", 1.1, {"claude": 1.1}),
        ("2026-03-12", 0.2, {"gpt-4o": 0.2}),
    ]


def test_spend_logs_summary_counts_the_logs_not_rolled_up_and_narrows_to_a_key(api, logs):
    write_batch(
        [
            make_entry(request_id="d", key_hash=KEY_HASH, user_id="u1", cost=Decimal("0.5")),
            make_entry(request_id="e", user_id="u1", cost=Decimal("9")),  # another key
        ]
    )
    days = get_json(api, "/spend/logs", start_date="2026-03-10", end_date="2026-03-12", api_key=RAW_KEY)
    assert [(day["startTime"], day["spend"], day["requests"], day["users"]) for day in days] == [
        ("2026-03-10", 0.50000000013, 2, {"u1": 0.50000000013}),
        ("2026-03-11", 1.1, 1, {"u2": 1.1}),
    ]


def test_spend_logs_as_csv(api, logs):
    response = api.get("/spend/logs", {"format": "csv", "team_id": "t1"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert response["Content-Type"].startswith("text/csv")
    assert [(row["request_id"], row["cost"]) for row in rows] == [("b", "1.1"), ("a", "0.00000000013")]


def test_spend_logs_query_count(api, logs, django_assert_num_queries):
    with django_assert_num_queries(1):
        api.get("/spend/logs", {"team_id": "t1"})


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (
            "team",
            [
                {"group_by_day": "2026-03-10", "teams": [
                    {"team_name": "Research", "team_id": "t1", "total_spend": 1.3e-10,
                     "metadata": [{"model": "gpt-4o", "spend": 1.3e-10, "requests": 1, "total_tokens": 15}]}]},
                {"group_by_day": "2026-03-11", "teams": [
                    {"team_name": "Research", "team_id": "t1", "total_spend": 1.1,
                     "metadata": [{"model": "claude", "spend": 1.1, "requests": 1, "total_tokens": 15}]}]},
                {"group_by_day": "2026-03-12", "teams": [
                    {"team_name": "t2", "team_id": "t2", "total_spend": 0.2,
                     "metadata": [{"model": "gpt-4o", "spend": 0.2, "requests": 1, "total_tokens": 15}]}]},
            ],
        ),
        (
            "api_key",
            [
                {"api_key": "", "total_cost": 0.2, "total_input_tokens": 10, "total_output_tokens": 5,
                 "model_details": [{"model": "gpt-4o", "total_cost": 0.2, "total_input_tokens": 10,
                                    "total_output_tokens": 5}]},
                {"api_key": KEY_HASH, "total_cost": 1.10000000013, "total_input_tokens": 20, "total_output_tokens": 10,
                 "model_details": [
                     {"model": "claude", "total_cost": 1.1, "total_input_tokens": 10, "total_output_tokens": 5},
                     {"model": "gpt-4o", "total_cost": 1.3e-10, "total_input_tokens": 10, "total_output_tokens": 5}]},
            ],
        ),
    ],
)  # fmt: skip
def test_global_spend_report(api, logs, group_by, expected, django_assert_num_queries):
    # The rollup mark, the logs not rolled up, the rollups, the mark again (and the team names).
    with django_assert_num_queries(5 if group_by == "team" else 4):
        report = get_json(
            api, "/global/spend/report", start_date="2026-03-01", end_date="2026-03-31", group_by=group_by
        )
    assert report == expected


@pytest.mark.parametrize("group_by", ["user", "model"])
def test_global_spend_report_totals_every_grouping(api, logs, group_by):
    report = get_json(api, "/global/spend/report", start_date="2026-03-01", end_date="2026-03-31", group_by=group_by)
    plural = f"{group_by}s"
    assert sum(Decimal(str(group["total_spend"])) for day in report for group in day[plural]) == Decimal(
        "1.30000000013"
    )


def test_global_spend_report_as_csv(api, logs):
    response = api.get("/global/spend/report", {"start_date": "2026-03-10", "end_date": "2026-03-11", "format": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [
        ["day", "team", "model", "spend", "requests", "failed_requests", "prompt_tokens", "completion_tokens"],
        ["2026-03-10", "t1", "gpt-4o", "0.00000000013", "1", "0", "10", "5"],
        ["2026-03-11", "t1", "claude", "1.1", "1", "0", "10", "5"],
    ]


@pytest.mark.parametrize(
    ("params", "status"),
    [({"start_date": "2026-03-02", "end_date": "2026-03-01"}, 400), ({"start_date": "x", "end_date": "y"}, 400),
     ({"start_date": "2026-03-01", "end_date": "2026-03-02", "group_by": "planet"}, 400),
     # An empty value is a value: it was read as no value (group_by= grouped by team).
     ({"start_date": "2026-03-01", "end_date": "2026-03-02", "group_by": ""}, 400)],
)  # fmt: skip
def test_global_spend_report_refuses_bad_input(api, params, status):
    response = api.get("/global/spend/report", params)
    assert response.status_code == status
    assert orjson.loads(response.content)["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("params", [{"limit": "0"}, {"start_date": ""}, {"summarize": "maybe"}])
def test_spend_logs_refuse_bad_input(api, params):
    response = api.get("/spend/logs", params)

    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["param"] == next(iter(params))


@pytest.mark.parametrize(
    "url", ["/spend/logs?format=csv&limit=0", "/global/spend/report?format=csv&start_date=x&end_date=2026-03-01"]
)
def test_errors_are_json_when_csv_was_asked_for(api, url):
    response = api.get(url)  # was a text/csv body holding the error dict's repr

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert set(orjson.loads(response.content)["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("url", ["/spend/logs", "/global/spend/report?start_date=2026-03-01&end_date=2026-03-02"])
def test_spend_endpoints_need_the_master_key(client, url):
    assert client.get(url).status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Bearer sk-not-master").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-4o", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}},
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
         "completion_response": {"usage": {"prompt_tokens": 1000, "completion_tokens": 100}}},
    ],
)  # fmt: skip
def test_spend_calculate_prices_usage_without_a_call(api, body):
    response = api.post("/spend/calculate", orjson.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    result = orjson.loads(response.content)
    assert result["pricing_source"] == "cost_map"
    assert b'"cost":0.0035,' in response.content  # 1000 x 2.5e-6 + 100 x 1e-5, exactly


def test_spend_calculate_needs_usage(api):
    response = api.post("/spend/calculate", orjson.dumps({"model": "gpt-4o"}), content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": 4, "usage": {"prompt_tokens": 1}}, "model"),
        # A count another shadows (cache_creation_input_tokens wins over cache_creation_tokens) was not checked.
        ({"model": "gpt-4o", "usage": {"cache_creation_input_tokens": 1,
                                       "prompt_tokens_details": {"cache_creation_tokens": -1}}}, "usage"),
        ({"model": "gpt-4o", "usage": {"prompt_tokens": 1, "input_tokens": "many"}}, "usage"),
    ],
)  # fmt: skip
def test_spend_calculate_refuses_bad_input(api, body, param):
    response = api.post("/spend/calculate", orjson.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["param"] == param


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/spend/logs?end_date=9999-12-31", "end_date"),
        ("/spend/logs?start_date=9999-12-31", "start_date"),
        ("/spend/logs?start_date=0001-01-01&summarize=false", "start_date"),
        ("/spend/logs?start_date=2026-03-01&end_date=9999-12-31&format=csv", "end_date"),
        ("/global/spend/report?start_date=2026-03-01&end_date=9999-12-31", "end_date"),
        ("/global/spend/report?start_date=0001-01-01&end_date=2026-03-01&format=csv", "start_date"),
    ],
)
def test_dates_whose_day_has_no_end_in_every_time_zone_are_refused(api, url, param, settings):
    settings.TIME_ZONE = "Pacific/Kiritimati"  # UTC+14: the first day's start is before datetime.min in UTC
    response = api.get(url)  # was a 500: OverflowError computing the day's bounds

    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["param"] == param
    assert orjson.loads(response.content)["error"]["type"] == "invalid_request_error"
