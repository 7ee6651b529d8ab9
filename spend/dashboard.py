"""The spend overview in the admin: totals against the previous range, daily spend stacked by key, user, customer,
team, tag or model (by name), a table of every one of them with a CSV export of exactly that, top spenders, each team's budget
burn-down and month-end forecast, unpriced calls.

Every committed call counts at once: the daily rollups (a few GROUP BYs over them) plus the logs not yet rolled up
(spend.selectors.CurrentSpend), never a scan of all the raw logs. Stacking or narrowing by tag reads a rollup
of its own the same way (spend.models.DailyTaggedSpend, through spend.overview.TaggedSpend).
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from pricing.money import usd
from spend.chart import burn_down, stacked_chart
from spend.exports import csv_response
from spend.overview import (
    DIMENSIONS,
    TAG,
    TaggedSpend,
    entity_names,
    scoped_filters,
    tag_budgets,
    team_months,
    team_scope,
)
from spend.periods import day_bounds, local_day
from spend.selectors import read_current_spend

TOP = 10
CHART_SERIES = 8
TABLE_ROWS = 200
TOP_TABLES = ("team", "key", "user", "customer", "model")
DEFAULT_DAYS = 30
FORECAST_METHOD = (
    "Month-end forecast: the spend so far this month divided by the days so far (today counted as a whole day), "
    "times the days in the month: a straight line, no seasonality."
)


class OverviewForm(forms.Form):
    """The range, what to stack by, and at most one value of each dimension to narrow to (set by drill-down links)."""

    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    stack = forms.ChoiceField(choices=[(name, name) for name in DIMENSIONS], required=False, label="Stack by")
    key = forms.CharField(required=False, widget=forms.HiddenInput)
    user = forms.CharField(required=False, widget=forms.HiddenInput)
    customer = forms.CharField(required=False, widget=forms.HiddenInput)
    team = forms.CharField(required=False, widget=forms.HiddenInput)
    tag = forms.CharField(required=False, widget=forms.HiddenInput)
    model = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", f"The end ({data['end']}) is before the start ({data['start']}).")
        return data


@dataclass(frozen=True, slots=True)
class Row:
    """One payer, model or tag on the page: its name, exact cost, calls, and where clicking it goes."""

    name: str
    cost: Decimal
    requests: int
    narrow_url: str  # the overview narrowed to it
    logs_url: str  # its spend logs in the range ("" for a tag: the log list cannot filter by tag)


class _Links:
    """Links to the spend-log admin (filtered to local days, both included) and to this overview narrowed further.
    The changelist's address is reversed once per page, each day's bounds computed once: the chart links hundreds of
    bars."""

    def __init__(self, query: dict[str, str], logs_shown: bool = True):
        # A Team admin reads its teams' totals here but not the ledger's list, which is not scoped: no log links.
        self.changelist = reverse("admin:spend_spendlog_changelist") if logs_shown else ""
        self.query = query  # the overview's own: range, stack and what it is narrowed to
        self._days: dict[date, tuple[str, str]] = {}

    def _bounds(self, day: date) -> tuple[str, str]:
        bounds = self._days.get(day)
        if bounds is None:
            since, until = day_bounds(day)
            bounds = self._days[day] = (since.isoformat(), until.isoformat())
        return bounds

    def logs(self, start: date, end: date, **filters) -> str:
        if not self.changelist or TAG in filters or TAG in self.query:
            return ""
        narrowed = {DIMENSIONS[name]: value for name, value in self.query.items() if name in DIMENSIONS}
        query = {"start_time__gte": self._bounds(start)[0], "start_time__lt": self._bounds(end)[1]}
        # The log list's filters take an empty value for "any": calls with no key, user, customer or team are asked
        # for by an explicit lookup instead.
        fields = {
            (f"{field}__exact" if value == "" else field): value for field, value in {**narrowed, **filters}.items()
        }
        return f"{self.changelist}?{urlencode({**query, **fields})}"

    def overview(self, **changes) -> str:
        return "?" + urlencode({**self.query, **changes})


def _change(current: Decimal, previous: Decimal) -> str:
    if not previous:
        return "new" if current else "–"
    return f"{(current - previous) / previous * 100:+.1f}%"


def overview(request):
    team_ids = team_scope(request.user)
    form = OverviewForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}  # a bad range is shown as a field error, over the default
    end = data.get("end") or local_day(timezone.now())
    start = data.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
    stack = data.get("stack") or "team"
    narrowed = {name: data[name] for name in DIMENSIONS if data.get(name)}
    query = {"start": start.isoformat(), "end": end.isoformat(), "stack": stack, **narrowed}
    links = _Links(query, logs_shown=team_ids is None)
    length = (end - start).days + 1
    previous_start, previous_end = start - timedelta(days=length), start - timedelta(days=1)
    filters = scoped_filters(
        {DIMENSIONS[name]: value for name, value in narrowed.items() if name != TAG}, narrowed, team_ids
    )
    column = DIMENSIONS[stack]

    def read(spend) -> tuple:
        tagged = TaggedSpend(previous_start, end, filters, narrowed.get(TAG, "")) if TAG in narrowed else None
        source = tagged or spend
        by_stack = source.totals(["day", column], since=start, integers=["requests"]) if column != TAG else None
        if by_stack is None:
            by_stack = (tagged or TaggedSpend(start, end, filters)).totals(["day", TAG], since=start)
        return (
            source.totals(["day"], integers=["requests"]),  # this range's and the previous one's, in one read
            by_stack,
            {name: source.top(DIMENSIONS[name], TOP, since=start) for name in TOP_TABLES},
            [] if tagged else [row for row in spend.totals(["model_group", "provider"], since=start,
                                                           integers=["unpriced_requests"]) if row["unpriced_requests"]],
        )  # fmt: skip

    (both_ranges, by_stack, top_rows, unpriced_rows), spend = read_current_spend(previous_start, end, read, filters)
    names = entity_names(column, [row[column] for row in by_stack])
    table = _table(by_stack, column, stack, names, start, end, links)
    if request.GET.get("format") == "csv":
        return _csv(by_stack, column, stack, names, start, end)

    current = [row for row in both_ranges if row["day"] >= start]
    previous = [row for row in both_ranges if row["day"] < start]
    cost, previous_cost = (sum((row["cost"] for row in rows), Decimal(0)) for rows in (current, previous))
    calls, previous_calls = (sum(row["requests"] for row in rows) for rows in (current, previous))
    top = {
        name: _rows(rows, DIMENSIONS[name], name, entity_names(DIMENSIONS[name], [r[DIMENSIONS[name]] for r in rows]),
                    start, end, links)
        for name, rows in top_rows.items()
    }  # fmt: skip
    today = local_day(timezone.now())
    context = {
        **admin.site.each_context(request),
        "title": "Spend overview",
        "form": form if form.errors else OverviewForm(initial=query),  # the range shown, even when not given
        "start": start,
        "end": end,
        "stack": stack,
        "stacks": [(name, links.overview(stack=name)) for name in DIMENSIONS],
        "narrowed": [(name, _narrowed_name(name, value), _without(query, name)) for name, value in narrowed.items()],
        "totals": {
            "cost": usd(cost),
            "exact_cost": cost,
            "requests": calls,
            "previous_cost": usd(previous_cost),
            "exact_previous_cost": previous_cost,
            "previous_requests": previous_calls,
            "cost_change": _change(cost, previous_cost),
            "requests_change": _change(Decimal(calls), Decimal(previous_calls)),
        },
        "urls": {
            "range": links.logs(start, end),
            "previous": links.logs(previous_start, previous_end),
            "csv": links.overview(format="csv"),
        },
        "previous_start": previous_start,
        "previous_end": previous_end,
        "chart": _chart(by_stack, stack, start, end, names, links),
        "table": table,
        "top": top,
        "budgets": _team_budgets(today, links, team_ids) if not narrowed else [],
        "tag_budgets": _tag_budgets(links) if not narrowed and team_ids is None else [],
        "forecast_method": FORECAST_METHOD,
        "unpriced": [
            {**row, "url": links.logs(start, end, model_group=row["model_group"], pricing_source="unpriced")}
            for row in sorted(unpriced_rows, key=lambda row: (row["model_group"], row["provider"]))
        ],
        "as_of": spend.as_of,
        "rolled_up_at": spend.rolled_up_at,
    }
    return TemplateResponse(request, "spend/dashboard.html", context)


def _narrowed_name(name: str, value: str) -> str:
    column = DIMENSIONS[name]
    return value if column == TAG else entity_names(column, [value])[value]


def _without(query: dict[str, str], name: str) -> str:
    return "?" + urlencode({key: value for key, value in query.items() if key != name})


def _rows(rows, column, stack, names, start, end, links: _Links) -> list[Row]:
    return [
        Row(names.get(row[column], row[column]), row["cost"], row["requests"], links.overview(**{stack: row[column]}),
            links.logs(start, end, **{column: row[column]}))
        for row in rows
    ]  # fmt: skip


def _per_value(by_stack: list[dict], column: str) -> list[dict]:
    """The range's total per value of the stacked column, the most costly first."""
    totals: dict[str, dict] = {}
    for row in by_stack:
        total = totals.setdefault(row[column], {column: row[column], "cost": Decimal(0), "requests": 0})
        total["cost"] += row["cost"]
        total["requests"] += row["requests"]
    return sorted(totals.values(), key=lambda row: (-row["cost"], str(row[column])))


def _table(by_stack, column, stack, names, start, end, links) -> list[Row]:
    return _rows(_per_value(by_stack, column)[:TABLE_ROWS], column, stack, names, start, end, links)


def _csv(by_stack: list[dict], column: str, stack: str, names: dict[str, str], start: date, end: date):
    """The stacked numbers on the page, per day and name, with every digit of the money."""
    rows = sorted(by_stack, key=lambda row: (row["day"], -row["cost"], names.get(row[column], "")))
    lines = (
        (row["day"].isoformat(), names.get(row[column], row[column]), row["cost"], row["requests"]) for row in rows
    )
    return csv_response(f"spend_by_{stack}_{start}_{end}.csv", ["day", stack, "cost_usd", "calls"], lines)


def _chart(by_stack: list[dict], stack: str, start: date, end: date, names: dict[str, str], links: _Links):
    column = DIMENSIONS[stack]
    leaders = [row[column] for row in _per_value(by_stack, column)[:CHART_SERIES]]
    other = "other"
    values: dict[tuple[date, str], Decimal] = {}
    for row in by_stack:
        series = names[row[column]] if row[column] in leaders else other
        values[(row["day"], series)] = values.get((row["day"], series), Decimal(0)) + row["cost"]
    series = list(dict.fromkeys(names[value] for value in leaders))
    if any(name == other for _, name in values):
        series.append(other)
    by_name = {names[value]: value for value in leaders}

    def url_for(day: date, name: str) -> str:
        """The day's spend logs of the segment's key, user, team or model; the overview of the day, narrowed to it,
        where the log list cannot show them (a tag)."""
        narrowed = {stack: by_name[name]} if name in by_name else {}
        logs = links.logs(day, day, **({column: by_name[name]} if name in by_name else {}))
        return logs or links.overview(start=day.isoformat(), end=day.isoformat(), **narrowed)

    days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
    return stacked_chart(days, series, values, url_for)


def _used(spend: Decimal, max_budget: Decimal | None) -> dict:
    """A budget's use as the overview's tables show it: the spend, the budget, the share used and its bar."""
    share = spend / max_budget * 100 if max_budget else None
    return {
        "spend": spend,
        "max_budget": max_budget,
        "percent": f"{share:.1f}" if share is not None else None,
        "bar": min(float(share), 100.0) if share is not None else 0,
        "over": share is not None and share >= 100,
    }


def _tag_budgets(links: _Links) -> list[dict]:
    """Every tag with a budget (a call carrying it counts against it whatever its team: shown to unscoped logins)."""
    return [
        {"name": tag.name, **_used(tag.spend, tag.max_budget), "reset_at": tag.budget_reset_at,
         "url": links.overview(tag=tag.name)}
        for tag in tag_budgets()
    ]  # fmt: skip


def _team_budgets(today: date, links: _Links, team_ids: list[str] | None) -> list[dict]:
    budgets = []
    for month in team_months(today, team_ids):
        budgets.append(
            {
                "name": month.name,
                **_used(month.period_spend, month.max_budget),
                "month_to_date": month.month_to_date,
                "forecast": month.forecast,
                "forecast_over": month.max_budget is not None and month.forecast > month.max_budget,
                "burn_down": burn_down(len(month.month_days), month.cumulative, month.forecast, month.max_budget),
                "reset_at": month.reset_at,
                "url": links.overview(team=month.team_id),
            }
        )
    return budgets
