"""The spend overview's chart and money formatting: the axis covers the tallest day, the legend fits, amounts print in
plain digits, the bars carry exact values and escaped names, and the top-N tables rank by cost with few queries."""

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from pricing.money import usd
from spend.chart import HEIGHT, LEFT, RIGHT, WIDTH, stacked_chart
from spend.ledger import write_batch
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, make_entry, make_team

OVERVIEW = "/admin/spend/spendlog/overview/"
DAYS = [date(2026, 3, 1) + timedelta(days=offset) for offset in range(3)]


def _chart(values, series=("a",)):
    return stacked_chart(DAYS, list(series), values, lambda day, name: f"/logs/?day={day}&s={name}")


@pytest.mark.parametrize(
    ("amount", "shown"),
    [("1234.567", "$1,234.57"), ("0", "$0.00"), ("0.005", "$0.005"), ("0.00123456", "$0.001235"),
     ("0.0001", "$0.0001"), ("0.000007325", "$0.000007325"), ("7.325E-6", "$0.000007325"),
     ("1E-12", "$0.000000000001"), ("0.0099996", "$0.01"), ("-0.00004", "$-0.00004")],
)  # fmt: skip
def test_usd_rounds_for_display_in_plain_digits(amount, shown):
    assert usd(Decimal(amount)) == shown
    assert "e" not in shown.lower()


@pytest.mark.parametrize("peak", ["10.5", "7", "0.00003", "123456.78", "1", "0.1"])
def test_the_axis_top_is_a_tick_at_or_above_the_tallest_day(peak):
    chart = _chart({(DAYS[0], "a"): Decimal(peak) / 2, (DAYS[1], "a"): Decimal(peak)})
    top_tick = min(float(tick.position) for tick in chart.y_ticks)
    highest_bar = min(segment.y for segment in chart.segments)
    assert highest_bar >= top_tick - 1e-6
    assert len(chart.y_ticks) >= 2


def test_the_old_truncating_ceiling_case_now_fits():
    # 10.5 / step 5: Decimal // truncated -(-10.5 // 5) to 2, so the axis stopped at 10 under a 10.5 bar.
    chart = _chart({(DAYS[0], "a"): Decimal("10.5")})
    assert [tick.label for tick in chart.y_ticks][-1] == "$15.00"


def test_an_empty_chart_has_one_step_and_no_bars():
    chart = _chart({})
    assert chart.segments == [] and chart.bars == ""
    assert [tick.label for tick in chart.y_ticks] == ["$0.00", "$1.00"]


def test_bars_carry_exact_values_iso_days_titles_and_escaped_names():
    chart = _chart({(DAYS[0], "<b>&"): Decimal("0.000007325"), (DAYS[2], "<b>&"): Decimal("2")}, series=["<b>&"])
    bars = str(chart.bars)
    assert bars.count('class="bar"') == 2
    assert 'data-value="0.000007325"' in bars and 'data-value="2"' in bars
    assert 'data-day="2026-03-01"' in bars and 'data-day="2026-03-03"' in bars
    assert "<title>2026-03-01 &lt;b&gt;&amp;: $0.000007325</title>" in bars
    assert "<b>&" not in bars
    assert 'href="/logs/?day=2026-03-01&amp;s=&lt;b&gt;&amp;"' in bars
    heights = [float(value) for value in re.findall(r'height="([^"]+)"', bars)]
    assert all(height > 0 for height in heights)  # the tiny amount is still drawn


def test_nine_legend_entries_fit_inside_the_chart():
    series = [f"a-rather-long-team-name-{n}" for n in range(9)]
    chart = _chart({(DAYS[0], name): Decimal(1) for name in series}, series=series)
    assert len(chart.legend) == 9
    for entry in chart.legend:
        right = float(entry.x) + 16 + 7 * len(entry.label)
        assert LEFT <= float(entry.x) and right <= WIDTH - RIGHT + 1, entry
        assert int(entry.y) < chart.svg_height
    assert chart.legend[0].name == series[0] and chart.legend[0].label.endswith("…")
    assert chart.svg_height >= HEIGHT + 40


def test_many_legend_entries_wrap_into_rows_and_the_svg_grows():
    series = [f"s{n}" for n in range(14)]
    chart = _chart({(DAYS[0], name): Decimal(1) for name in series}, series=series)
    rows = sorted({entry.y for entry in chart.legend})
    assert len(rows) == 2
    assert chart.svg_height >= int(rows[-1]) + 10
    assert max(float(entry.x) for entry in chart.legend) < WIDTH - RIGHT


@pytest.fixture
def ranked_data():
    make_team(team_id="t1", team_alias="Research")
    make_team(team_id="t2", team_alias="Sales")
    entries = [make_entry(team_id=f"t{n % 12}", key_hash=f"{n % 12:064x}", user_id=f"u{n % 12}",
                          model_group=f"m{n % 12}", cost=Decimal(n % 12) + Decimal("0.000001"))
               for n in range(48)]  # fmt: skip
    entries.append(make_entry(team_id="t1", cost=Decimal("0.000007325"), start_time=DAY + timedelta(days=1)))
    write_batch(entries)
    rollup_spend(DAY + timedelta(days=2))


@pytest.mark.django_db
def test_the_top_tables_rank_by_cost_and_keep_ten(admin_client, ranked_data, django_assert_num_queries):
    admin_client.get(OVERVIEW)  # warm the session
    # see tests/spend/test_current_spend.py; names: one query per kind of id shown (none for a kind no row names);
    # the teams' month: one more read; the tags with a budget: one more
    with django_assert_num_queries(23):
        response = admin_client.get(OVERVIEW, {"start": "2026-03-10", "end": "2026-03-11", "stack": "model"})
    assert response.status_code == 200
    top = response.context["top"]
    assert [row.name for row in top["customer"]] == ["(no customer)"]  # no call here names one
    for rows in (top["team"], top["key"], top["user"], top["model"]):
        assert len(rows) == 10
        assert [row.cost for row in rows] == sorted((row.cost for row in rows), reverse=True)
    assert [row.name for row in top["model"]][:2] == ["m11", "m10"]
    assert [row.name for row in top["team"]][:2] == ["(deleted team)", "(deleted team)"]
    assert top["model"][0].cost == Decimal("44.000004") and top["model"][0].requests == 4
    page = response.content.decode()
    assert "e-" not in " ".join(re.findall(r"\$[-0-9.,eE]+", page))
    assert response.content.count(b'class="bar"') == len(response.context["chart"].segments)
