"""LiteLLM's reporting family answers in LiteLLM's shapes, with exact money, names where LiteLLM gives aliases, CSV
with ?format=csv, and every committed call: the fixture rolls up some logs and then writes more, which no rollup has
seen, and every report counts both."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from django.utils import timezone

from keys.auth import hash_key
from spend.ledger import write_batch
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, make_entry, make_key, make_team

pytestmark = pytest.mark.django_db
RAW_KEY = "sk-reports-test"
KEY = hash_key(RAW_KEY)
OTHER_KEY = "b" * 64
WINDOW = {"start_date": "2026-03-10", "end_date": "2026-03-12"}
TINY = Decimal("0.00000000013")


@pytest.fixture
def ledger():
    """Day 1 rolled up: KEY (team Research, customer acme, tagged) 1.1 + 0.00000000013 on two models. Day 2 not
    rolled up: KEY 0.5 for customer acme; OTHER_KEY (no team) 0.2, one failed call at 0."""
    make_team(team_id="t1", team_alias="Research")
    make_key(token_hash=KEY, key_alias="billing-app", key_hint="sk-...test", team_id="t1")
    common = {"key_hash": KEY, "team_id": "t1", "user_id": "u1"}
    write_batch(
        [
            make_entry(request_id="a", cost=Decimal("1.1"), end_user="acme", request_tags=["prod", "batch"], **common),
            make_entry(request_id="b", cost=TINY, model_group="claude", provider="anthropic", request_tags=["prod"],
                       **common),
        ]
    )  # fmt: skip
    rollup_spend(DAY + timedelta(days=1))
    later = DAY + timedelta(days=1)
    write_batch(
        [
            make_entry(request_id="c", cost=Decimal("0.5"), end_user="acme", start_time=later, request_tags=["prod"],
                       **common),
            make_entry(request_id="d", key_hash=OTHER_KEY, cost=Decimal("0.2"), start_time=later, end_user="zed"),
            make_entry(request_id="e", key_hash=OTHER_KEY, cost=Decimal(0), start_time=later, status="failure"),
        ]
    )  # fmt: skip


def get(api, url, **params):
    response = api.get(url, params)
    assert response.status_code == 200, response.content
    assert response["X-Tollgate-As-Of"]
    return orjson.loads(response.content)


def as_csv(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_global_spend_is_the_total_of_every_committed_call(api, ledger):
    assert get(api, "/global/spend", **WINDOW) == {"spend": 1.80000000013, "max_budget": 0}


def test_global_spend_defaults_to_the_last_30_days(api):
    write_batch(
        [
            make_entry(cost=Decimal("0.25"), start_time=timezone.now()),
            make_entry(cost=Decimal("9"), start_time=timezone.now() - timedelta(days=40)),
        ]
    )
    assert get(api, "/global/spend")["spend"] == 0.25


def test_global_spend_keys_ranks_keys_with_their_alias(api, ledger):
    assert get(api, "/global/spend/keys", **WINDOW) == [
        {"api_key": KEY, "total_spend": 1.60000000013, "key_alias": "billing-app", "key_name": "sk-...test"},
        {"api_key": OTHER_KEY, "total_spend": 0.2, "key_alias": None, "key_name": None},
    ]
    assert [row["api_key"] for row in get(api, "/global/spend/keys", limit=1, **WINDOW)] == [KEY]


def test_global_spend_teams_by_alias_per_day(api, ledger):
    assert get(api, "/global/spend/teams", **WINDOW) == {
        "daily_spend": [
            {"date": "2026-03-10", "Research": 1.10000000013},
            {"date": "2026-03-11", "Research": 0.5, "Unassigned": 0.2},
        ],
        "teams": ["Research", "Unassigned"],
        "total_spend_per_team": [
            {"team_id": "Research", "total_spend": 1.60000000013},
            {"team_id": "Unassigned", "total_spend": 0.2},
        ],
    }


def test_global_spend_models_top_n(api, ledger):
    assert get(api, "/global/spend/models", **WINDOW) == [
        {"model": "gpt-4o", "total_spend": 1.8},
        {"model": "claude", "total_spend": 0.00000000013},
    ]
    assert get(api, "/global/spend/models", limit=1, **WINDOW) == [{"model": "gpt-4o", "total_spend": 1.8}]


def test_global_spend_end_users_takes_litellms_body(api, ledger):
    body = {"startTime": "2026-03-10", "endTime": "2026-03-12"}
    response = api.post("/global/spend/end_users", body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert orjson.loads(response.content) == [
        {"end_user": "acme", "total_count": 2, "total_spend": 1.6},
        {"end_user": "zed", "total_count": 1, "total_spend": 0.2},
        {"end_user": "", "total_count": 2, "total_spend": 0.00000000013},
    ]
    response = api.post("/global/spend/end_users", {**body, "api_key": RAW_KEY}, content_type="application/json")
    assert [row["end_user"] for row in orjson.loads(response.content)] == ["acme", ""]


def test_global_spend_logs_per_day_and_per_key(api, ledger):
    assert get(api, "/global/spend/logs", **WINDOW) == [
        {"date": "2026-03-10", "spend": 1.10000000013},
        {"date": "2026-03-11", "spend": 0.7},
    ]
    assert get(api, "/global/spend/logs", api_key=OTHER_KEY, **WINDOW) == [
        {"date": "2026-03-11", "spend": 0.2, "api_key": OTHER_KEY}
    ]


def test_spend_tags_counts_each_tag_of_a_call(api, ledger):
    assert get(api, "/spend/tags", **WINDOW) == [
        {"individual_request_tag": "prod", "log_count": 3, "total_spend": 1.60000000013},
        {"individual_request_tag": "batch", "log_count": 1, "total_spend": 1.1},
    ]


@pytest.mark.parametrize(
    ("tags", "names"), [("", ["prod", "batch"]), ("all-tags", ["prod", "batch"]), ("batch,nope", ["batch"])]
)
def test_global_spend_tags(api, ledger, tags, names):
    answer = get(api, "/global/spend/tags", tags=tags, **WINDOW)
    assert [row["name"] for row in answer["spend_per_tag"]] == names
    assert answer["spend_per_tag"][-1] == {"name": "batch", "spend": 1.1, "log_count": 1}


def test_daily_activity_per_day_with_breakdowns(api, ledger):
    answer = get(api, "/user/daily/activity", **WINDOW)
    first, second = answer["results"]
    assert first["date"] == "2026-03-10"
    assert first["metrics"] == {
        "spend": 1.10000000013, "prompt_tokens": 20, "completion_tokens": 10, "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0, "total_tokens": 30, "api_requests": 2, "successful_requests": 2,
        "failed_requests": 0,
    }  # fmt: skip
    assert sorted(first["breakdown"]["models"]) == ["claude", "gpt-4o"]
    assert first["breakdown"]["providers"]["anthropic"]["metrics"]["spend"] == 0.00000000013
    assert first["breakdown"]["api_keys"][KEY]["metadata"] == {"key_alias": "billing-app", "team_id": "t1"}
    assert second["metrics"]["failed_requests"] == 1
    assert answer["metadata"] == {
        "total_spend": 1.80000000013, "total_prompt_tokens": 50, "total_completion_tokens": 25,
        "total_cache_read_input_tokens": 0, "total_cache_creation_input_tokens": 0, "total_api_requests": 5,
        "total_failed_requests": 1, "total_tokens": 75, "total_successful_requests": 4, "page": 1, "total_pages": 1,
        "has_more": False,
    }  # fmt: skip


def test_daily_activity_pages_days_and_filters(api, ledger):
    answer = get(api, "/user/daily/activity", page_size=1, page=2, api_key=RAW_KEY, **WINDOW)
    assert [day["date"] for day in answer["results"]] == ["2026-03-11"]
    assert answer["results"][0]["metrics"]["spend"] == 0.5
    assert (answer["metadata"]["page"], answer["metadata"]["total_pages"]) == (2, 2)
    assert get(api, "/user/daily/activity", model="claude", **WINDOW)["metadata"]["total_spend"] == 0.00000000013


@pytest.mark.parametrize(
    ("group_by", "plural", "expected"),
    [
        ("customer", "customers", [("2026-03-10", "", TINY), ("2026-03-10", "acme", 1.1), ("2026-03-11", "", 0),
                                   ("2026-03-11", "acme", 0.5), ("2026-03-11", "zed", 0.2)]),
        ("tag", "tags", [("2026-03-10", "batch", 1.1), ("2026-03-10", "prod", 1.10000000013),
                         ("2026-03-11", "prod", 0.5)]),
    ],
)  # fmt: skip
def test_spend_report_by_customer_and_tag(api, ledger, group_by, plural, expected):
    days = get(api, "/global/spend/report", group_by=group_by, **WINDOW)
    found = [(day["group_by_day"], group[group_by], group["total_spend"]) for day in days for group in day[plural]]
    assert found == [(day, name, float(spend)) for day, name, spend in expected]


@pytest.mark.parametrize(
    ("url", "params", "row"),
    [
        ("/global/spend", {}, {"spend": "1.80000000013", "max_budget": "0"}),
        ("/global/spend/keys", {}, {"api_key": KEY, "key_alias": "billing-app", "total_spend": "1.60000000013"}),
        ("/global/spend/teams", {}, {"date": "2026-03-10", "team_alias": "Research", "spend": "1.10000000013"}),
        ("/global/spend/models", {}, {"model": "gpt-4o", "total_spend": "1.8"}),
        ("/global/spend/logs", {}, {"date": "2026-03-10", "spend": "1.10000000013"}),
        ("/spend/tags", {}, {"individual_request_tag": "prod", "log_count": "3"}),
        ("/global/spend/tags", {}, {"name": "prod", "spend": "1.60000000013"}),
        ("/user/daily/activity", {}, {"date": "2026-03-10", "model": "claude", "spend": "0.00000000013"}),
        ("/global/spend/report", {"group_by": "tag"}, {"day": "2026-03-10", "tag": "batch", "spend": "1.1"}),
    ],
)
def test_every_report_as_csv(api, ledger, url, params, row):
    first = as_csv(api.get(url, {"format": "csv", **WINDOW, **params}))[0]
    assert {name: first[name] for name in row} == row


@pytest.mark.parametrize(
    "body", [[], {"api_key": 7}, {"api_key": False}, {"startTime": "2026-03-12", "endTime": "2026-03-10"}]
)
def test_end_users_refuses_a_bad_body(api, body):
    response = api.post("/global/spend/end_users", body, content_type="application/json")
    assert response.status_code == 400, response.content


def test_end_users_as_csv(api, ledger):
    body = {"startTime": "2026-03-10", "endTime": "2026-03-12"}
    rows = as_csv(api.post("/global/spend/end_users?format=csv", body, content_type="application/json"))
    assert rows[0] == {"end_user": "acme", "total_count": "2", "total_spend": "1.6"}


@pytest.mark.parametrize(
    ("url", "params", "param"),
    [
        ("/global/spend", {"start_date": "2026-03-12", "end_date": "2026-03-10"}, "end_date"),
        ("/global/spend/keys", {"limit": "0"}, "limit"),
        ("/user/daily/activity", {"page": "0"}, "page"),
        ("/global/spend/report", {**WINDOW, "group_by": "planet"}, "group_by"),
    ],
)
def test_bad_queries_are_named(api, url, params, param):
    response = api.get(url, params)
    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["param"] == param


def test_reports_need_the_master_key(client):
    assert client.get("/global/spend/keys").status_code == 401
