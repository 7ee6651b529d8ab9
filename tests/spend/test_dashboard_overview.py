"""What finance asks the overview, answered on the page: spend stacked by key, user, team, tag and model under the
names people know (never a hash or an id where a name exists), narrowed by a click, exported as CSV to the last
digit, each team's month against its budget with a forecast, and a bad date range refused with a field error."""

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from keys.models import Customer
from pricing.money import usd
from spend.ledger import write_batch
from spend.overview import linear_forecast
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, charged_entry, make_entry, make_key, make_team, make_user

OVERVIEW = "/admin/spend/spendlog/overview/"
RANGE = {"start": "2026-03-09", "end": "2026-03-11"}


@pytest.fixture
def ledger(db):
    """Two keys of two teams, one rolled up and one in the tail, tagged calls, and an unnamed key."""
    research = make_team(team_alias="Research")
    sales = make_team(team_alias="Sales")
    alice = make_user(user_email="alice@example.com")
    bob = make_user()  # no email: named by the id he was given
    chatbot = make_key(key_alias="chatbot", user=alice, team=research)
    unnamed = make_key(user=bob, team=sales)
    write_batch([
        charged_entry(chatbot, cost=Decimal("1.000000000000000001"), request_tags=["prod", "=HYPERLINK(1)"],
                      end_user="acme"),
        charged_entry(chatbot, cost=Decimal("0.000007325"), model_group="claude", request_tags=["prod"],
                      end_user="globex"),
        charged_entry(unnamed, cost=Decimal("2.5"), start_time=DAY + timedelta(days=1)),
    ])  # fmt: skip
    rollup_spend(DAY + timedelta(days=1, hours=1))
    write_batch([charged_entry(unnamed, cost=Decimal("0.25"), model_group="claude", request_tags=["batch"],
                               end_user="acme")])  # the tail  # fmt: skip
    Customer.objects.create(end_user_id="acme", alias="Acme Corp")
    return {"research": research, "sales": sales, "alice": alice, "bob": bob, "chatbot": chatbot, "unnamed": unnamed}


def _table(response) -> dict[str, tuple[Decimal, int]]:
    return {row.name: (row.cost, row.requests) for row in response.context["table"]}


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ("key", {"chatbot": ("1.000007325000000001", 2), "sk-...{unnamed}": ("2.75", 2)}),
        ("team", {"Research": ("1.000007325000000001", 2), "Sales": ("2.75", 2)}),
        ("user", {"alice@example.com": ("1.000007325000000001", 2), "{bob}": ("2.75", 2)}),
        ("customer", {"Acme Corp": ("1.250000000000000001", 2), "globex": ("0.000007325", 1),
                      "(no customer)": ("2.5", 1)}),
        ("model", {"gpt-4o": ("3.500000000000000001", 2), "claude": ("0.250007325", 2)}),
        ("tag", {"prod": ("1.000007325000000001", 2), "=HYPERLINK(1)": ("1.000000000000000001", 1),
                 "batch": ("0.25", 1), "(untagged)": ("2.5", 1)}),
    ],
)  # fmt: skip
def test_every_stack_shows_every_call_by_name(admin_client, ledger, stack, expected):
    names = {"unnamed": ledger["unnamed"].key_hint[6:], "bob": ledger["bob"].user_id}
    expected = {name.format(**names): (Decimal(cost), calls) for name, (cost, calls) in expected.items()}

    response = admin_client.get(OVERVIEW, {**RANGE, "stack": stack})

    assert response.status_code == 200
    assert _table(response) == expected
    page = response.content.decode()
    for key in (ledger["chatbot"], ledger["unnamed"]):
        assert key.token_hash not in re.sub(r'(href|data-[a-z]+)="[^"]*"', "", page)  # never shown, only linked
    assert {segment.series for segment in response.context["chart"].segments} == set(expected)


def test_money_is_readable_with_the_exact_value_on_hover(admin_client, ledger):
    page = admin_client.get(OVERVIEW, {**RANGE, "stack": "key"}).content.decode()

    assert 'title="1.000007325000000001 USD">$1.00</td>' in page
    assert 'id="total-spend" data-exact="3.750007325000000001"' in page
    shown = re.findall(r"\$(-?[0-9,]+\.[0-9]+)", page)
    assert shown and all(usd(Decimal(amount.replace(",", ""))) == f"${amount}" for amount in shown)  # no long tails
    assert "0E-" not in page


def test_the_csv_is_what_the_page_shows_to_the_last_digit(admin_client, ledger):
    query = {**RANGE, "stack": "tag"}
    shown = _table(admin_client.get(OVERVIEW, query))

    response = admin_client.get(OVERVIEW, {**query, "format": "csv"})

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    exported: dict[str, tuple[Decimal, int]] = {}
    for row in rows:
        cost, calls = exported.get(row["tag"], (Decimal(0), 0))
        exported[row["tag"]] = (cost + Decimal(row["cost_usd"]), calls + int(row["calls"]))
    assert exported == {("'" + name if name.startswith("=") else name): value for name, value in shown.items()}
    assert {row["day"] for row in rows} == {"2026-03-10", "2026-03-11"}
    assert "1.000000000000000001" in {row["cost_usd"] for row in rows}


def test_narrowing_to_a_key_counts_only_its_calls_and_its_links_keep_the_narrowing(admin_client, ledger):
    everything = admin_client.get(OVERVIEW, {**RANGE, "stack": "key"})
    (chatbot,) = [row for row in everything.context["table"] if row.name == "chatbot"]

    narrowed = admin_client.get(OVERVIEW + chatbot.narrow_url)

    assert _table(narrowed) == {"chatbot": (Decimal("1.000007325000000001"), 2)}
    assert narrowed.context["totals"]["exact_cost"] == Decimal("1.000007325000000001")
    assert [name for name, *_ in narrowed.context["narrowed"]] == ["key"]
    default_range = admin_client.get(OVERVIEW, {"key": ledger["chatbot"].token_hash}).content.decode()
    today = timezone.localdate()
    assert f'value="{today - timedelta(days=29)}"' in default_range and f'value="{today}"' in default_range
    assert narrowed.context["narrowed"][0][1] == "chatbot"
    by_model = admin_client.get(OVERVIEW + narrowed.context["stacks"][-1][1])  # stack the narrowed view by model
    assert _table(by_model) == {"gpt-4o": (Decimal("1.000000000000000001"), 1), "claude": (Decimal("0.000007325"), 1)}
    assert f"key_hash={ledger['chatbot'].token_hash}" in chatbot.logs_url


def test_narrowing_to_a_tag_reads_the_logs_and_links_no_log_list(admin_client, ledger):
    response = admin_client.get(OVERVIEW, {**RANGE, "stack": "team", "tag": "prod"})

    assert _table(response) == {"Research": (Decimal("1.000007325000000001"), 2)}
    assert response.context["totals"]["exact_cost"] == Decimal("1.000007325000000001")
    assert all(row.logs_url == "" for row in response.context["table"])
    assert all("tag=prod" in segment.url for segment in response.context["chart"].segments)


def test_a_tag_segment_drills_down_to_the_overview_of_its_day(admin_client, ledger):
    response = admin_client.get(OVERVIEW, {**RANGE, "stack": "tag"})

    (batch,) = [segment for segment in response.context["chart"].segments if segment.series == "batch"]
    assert batch.url.startswith("?") and "tag=batch" in batch.url and "start=2026-03-10&end=2026-03-10" in batch.url
    drilled = admin_client.get(OVERVIEW + batch.url)
    assert _table(drilled) == {"batch": (Decimal("0.25"), 1)}


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"start": "2026-03-11", "end": "2026-03-09"}, "end", "The end (2026-03-09) is before the start (2026-03-11)."),
        ({"start": "2026-13-45", "end": "2026-03-09"}, "start", "Enter a valid date."),
        ({"start": "2026-03-01", "end": "yesterday"}, "end", "Enter a valid date."),
        ({"stack": "cost-centre"}, "stack", "Select a valid choice. cost-centre is not one of the available choices."),
    ],
)
def test_a_bad_range_is_a_field_error_on_the_page(admin_client, ledger, query, field, message):
    response = admin_client.get(OVERVIEW, query)

    assert response.status_code == 200
    assert response.context["form"].errors == {field: [message]}
    assert message in response.content.decode()
    assert response.context["start"] <= response.context["end"]


def test_the_month_end_forecast_is_linear_on_the_days_so_far():
    assert linear_forecast(Decimal("10"), date(2026, 4, 10)) == Decimal("30")  # 10 days of 30
    assert linear_forecast(Decimal("3.1"), date(2026, 1, 1)) == Decimal("96.1")  # 1 day of 31
    assert linear_forecast(Decimal("0"), date(2026, 2, 28)) == 0


@pytest.mark.django_db
def test_each_team_has_its_burn_down_and_forecast_this_month(admin_client):
    team = make_team(team_alias="Burners", max_budget=Decimal("10"))
    now = timezone.now()
    write_batch([make_entry(team_id=team.team_id, cost=Decimal("4"), start_time=now)])
    team.refresh_from_db()

    response = admin_client.get(OVERVIEW)

    (budget,) = response.context["budgets"]
    assert budget["month_to_date"] == Decimal("4")
    assert budget["forecast"] == linear_forecast(Decimal("4"), timezone.localdate(now))
    assert budget["forecast_over"] == (budget["forecast"] > 10)
    svg = str(budget["burn_down"])
    (points,) = re.findall(r'class="spent" points="([^"]*)"', svg)
    assert len(points.split()) == timezone.localdate(now).day  # one point a day so far this month
    assert 'class="budget"' in svg and 'class="forecast"' in svg
    page = response.content.decode()
    assert "Month-end forecast: the spend so far this month divided by the days so far" in page
    assert 'data-team="Burners"' in page


def test_the_admin_index_links_the_overview(admin_client, db):
    page = admin_client.get("/admin/").content.decode()

    assert f'href="{OVERVIEW}"' in page


@pytest.mark.parametrize("stack", ["key", "user", "customer", "team", "model"])
def test_every_row_drills_down_to_exactly_its_spend_logs(admin_client, ledger, stack):
    rows = admin_client.get(OVERVIEW, {**RANGE, "stack": stack}).context["table"]

    for row in rows:  # "(no customer)" too: the calls that name none
        response = admin_client.get(row.logs_url)
        assert response.status_code == 200, row
        shown = list(response.context["cl"].queryset)
        assert (len(shown), sum(log.cost for log in shown)) == (row.requests, row.cost), row
