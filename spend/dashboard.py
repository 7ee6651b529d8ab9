"""The spend overview in the admin: totals against the previous range, daily chart, top spenders, team budgets,
unpriced calls. Every committed call counts at once: the daily rollups (a few GROUP BYs over them) plus the logs
not yet rolled up (spend.selectors.CurrentSpend), never a scan of all the raw logs."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.apps import apps
from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from pricing.money import usd
from spend.chart import stacked_chart
from spend.periods import day_bounds, local_day
from spend.selectors import CurrentSpend, read_current_spend, team_names

TOP = 10
CHART_SERIES = 8
STACKS = {"team": "team_id", "model": "model_group"}


class RangeForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    stack = forms.ChoiceField(choices=[("team", "team"), ("model", "model")], required=False)


@dataclass(frozen=True, slots=True)
class Ranked:
    label: str
    cost: Decimal
    requests: int
    url: str


class _LogLinks:
    """Links to the spend-log admin, filtered to some days (local, both included) and fields. The changelist's
    address is reversed once per page, each day's bounds computed once: the chart links hundreds of bars."""

    def __init__(self):
        self.changelist = reverse("admin:spend_spendlog_changelist")
        self._days: dict[date, tuple[str, str]] = {}

    def _bounds(self, day: date) -> tuple[str, str]:
        bounds = self._days.get(day)
        if bounds is None:
            since, until = day_bounds(day)
            bounds = self._days[day] = (since.isoformat(), until.isoformat())
        return bounds

    def __call__(self, start: date, end: date, **filters) -> str:
        query = {"start_time__gte": self._bounds(start)[0], "start_time__lt": self._bounds(end)[1], **filters}
        return f"{self.changelist}?{urlencode(query)}"


def _change(current: Decimal, previous: Decimal) -> str:
    if not previous:
        return "new" if current else "–"
    return f"{(current - previous) / previous * 100:+.1f}%"


def overview(request):
    form = RangeForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    end = data.get("end") or local_day(timezone.now())
    start = data.get("start") or end - timedelta(days=29)
    start, end = min(start, end), max(start, end)
    stack = data.get("stack") or "team"
    length = (end - start).days + 1
    previous_start, previous_end = start - timedelta(days=length), start - timedelta(days=1)

    links = _LogLinks()
    column = STACKS[stack]

    def read(spend: CurrentSpend) -> tuple:
        calls = ["requests"]  # only what the page shows
        return (
            spend.totals(["day", column], integers=calls),  # this range's and the previous one's, in one read
            {name: (field, spend.top(field, TOP, since=start)) for name, field in
             (("teams", "team_id"), ("keys", "key_hash"), ("users", "user_id"), ("models", "model_group"))},
            [row for row in spend.totals(["model_group", "provider"], since=start, integers=["unpriced_requests"]) if row["unpriced_requests"]],
        )  # fmt: skip

    (both_ranges, top_rows, unpriced_rows), spend = read_current_spend(previous_start, end, read)
    by_day = [row for row in both_ranges if row["day"] >= start]
    previous = [row for row in both_ranges if row["day"] < start]
    totals = {
        "cost": sum((row["cost"] for row in by_day), Decimal(0)),
        "requests": sum(row["requests"] for row in by_day),
        "previous_cost": sum((row["cost"] for row in previous), Decimal(0)),
        "previous_requests": sum(row["requests"] for row in previous),
    }
    top = {name: _ranked(rows, field, start, end, links) for name, (field, rows) in top_rows.items()}
    names = team_names([ranked.label for ranked in top["teams"]] + [row[column] for row in by_day if stack == "team"])
    top["teams"] = [Ranked(names.get(r.label, r.label or "(no team)"), r.cost, r.requests, r.url) for r in top["teams"]]

    chart = _chart(by_day, column, start, end, names if stack == "team" else {}, links)
    unpriced = [
        {**row, "url": links(start, end, model_group=row["model_group"], pricing_source="unpriced")}
        for row in sorted(unpriced_rows, key=lambda row: (row["model_group"], row["provider"]))
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Spend overview",
        "form": form if form.is_bound else RangeForm(initial={"start": start, "end": end, "stack": stack}),
        "start": start,
        "end": end,
        "stack": stack,
        "totals": {
            "cost": usd(totals["cost"]),
            "requests": totals["requests"],
            "previous_cost": usd(totals["previous_cost"]),
            "previous_requests": totals["previous_requests"],
            "cost_change": _change(totals["cost"], totals["previous_cost"]),
            "requests_change": _change(Decimal(totals["requests"]), Decimal(totals["previous_requests"])),
            "exact_cost": totals["cost"],
        },
        "urls": {"range": links(start, end), "previous": links(previous_start, previous_end)},
        "previous_start": previous_start,
        "previous_end": previous_end,
        "chart": chart,
        "top": top,
        "budgets": _team_budgets(start, end, links),
        "unpriced": unpriced,
        "as_of": spend.as_of,
        "rolled_up_at": spend.rolled_up_at,
    }
    return TemplateResponse(request, "spend/dashboard.html", context)


def _ranked(rows: list[dict], field: str, start: date, end: date, links: _LogLinks) -> list[Ranked]:
    return [Ranked(row[field], row["cost"], row["requests"], links(start, end, **{field: row[field]})) for row in rows]


def _chart(by_day: list[dict], column: str, start: date, end: date, names: dict[str, str], links: _LogLinks):
    ranking: dict[str, Decimal] = {}
    for row in by_day:
        ranking[row[column]] = ranking.get(row[column], Decimal(0)) + row["cost"]
    leaders = sorted(ranking, key=ranking.get, reverse=True)[:CHART_SERIES]
    other = "other"
    values: dict[tuple[date, str], Decimal] = {}
    for row in by_day:
        series = names.get(row[column], row[column] or "(none)") if row[column] in leaders else other
        values[(row["day"], series)] = values.get((row["day"], series), Decimal(0)) + row["cost"]
    series = [names.get(value, value or "(none)") for value in leaders]
    if any(name == other for _, name in values):
        series.append(other)
    by_label = {names.get(value, value or "(none)"): value for value in leaders}
    field = column

    def url_for(day: date, label: str) -> str:
        if label in by_label:
            return links(day, day, **{field: by_label[label]})
        return links(day, day)

    days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
    return stacked_chart(days, series, values, url_for)


def _team_budgets(start: date, end: date, links: _LogLinks) -> list[dict]:
    team_model = apps.get_model("keys", "Team")
    budgets = []
    for team in team_model.objects.order_by("team_alias", "team_id").only(
        "team_id", "team_alias", "spend", "max_budget", "budget_reset_at"
    ):
        share = (team.spend / team.max_budget * 100) if team.max_budget else None
        budgets.append(
            {
                "name": team.team_alias or team.team_id,
                "spend": usd(team.spend),
                "max_budget": usd(team.max_budget) if team.max_budget is not None else "no budget",
                "percent": f"{share:.1f}" if share is not None else None,
                "bar": min(float(share), 100.0) if share is not None else 0,
                "over": share is not None and share >= 100,
                "reset_at": team.budget_reset_at,
                "url": links(start, end, team_id=team.team_id),
            }
        )
    return budgets
