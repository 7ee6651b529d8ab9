"""What a key's or a team's admin page shows of its spend: the last 30 days as a chart (stacked by model group),
its last 20 calls, the calls and tokens of the last minute (what its rpm and tpm limits count, as far as the logs
know: calls still in flight are not logged yet), and links to all its logs.

Days come from the daily rollups plus the logs not yet rolled up (spend.selectors.read_current_spend), so a call
shows the moment its log commits. Only the entity's own rows are read.
"""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.db.models import Count, F, Sum
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from spend.admin_names import COLUMNS
from spend.chart import stacked_chart
from spend.models import SpendLog
from spend.periods import day_bounds, local_day
from spend.routers import reporting_db
from spend.selectors import read_current_spend

DAYS = 30
RECENT = 20


def current_rows(column: str, value: str, start, end) -> list[dict]:
    """Cost and calls per (day, model group) of every committed call whose ``column`` is ``value``, between two
    local days (spend.selectors.read_current_spend: the rollups plus the tail, read again if a rollup moved it)."""
    rows, _ = read_current_spend(
        start, end, lambda spend: spend.totals(["day", "model_group"], integers=["requests"]), {column: value}
    )
    return rows


def daily_spend(column: str, value: str, start, end) -> dict[tuple, Decimal]:
    """(day, model group) -> cost, as the chart stacks it."""
    values: dict[tuple, Decimal] = {}
    for row in current_rows(column, value, start, end):
        key = (row["day"], row["model_group"] or "—")
        values[key] = values.get(key, Decimal(0)) + row["cost"]
    return values


def recent_volume(column: str, value: str, days: int = 7) -> tuple[Decimal, int]:
    """Spend and calls over the last ``days`` local days (today included)."""
    end = local_day(timezone.now())
    rows = current_rows(column, value, end - timedelta(days=days - 1), end)
    return sum((row["cost"] for row in rows), Decimal(0)), sum(row["requests"] for row in rows)


def entity_activity(kind: str, entity_id: str) -> SafeString:
    """The spend panel of a key's, team's or user's admin page."""
    column = COLUMNS[kind]
    end = local_day(timezone.now())
    start = end - timedelta(days=DAYS - 1)
    values = daily_spend(column, entity_id, start, end)
    totals: dict[str, Decimal] = {}
    for (_, group), cost in values.items():
        totals[group] = totals.get(group, Decimal(0)) + cost
    series = sorted(totals, key=lambda group: (-totals[group], group))
    changelist = reverse("admin:spend_spendlog_changelist")

    def logs_url(first, last, **filters) -> str:
        query = {column: entity_id, "start_time__gte": day_bounds(first)[0].isoformat(),
                 "start_time__lt": day_bounds(last)[1].isoformat(), **filters}  # fmt: skip
        return f"{changelist}?{urlencode(query)}"

    days = [start + timedelta(days=offset) for offset in range(DAYS)]
    chart = stacked_chart(days, series, values, lambda day, group: logs_url(day, day, model_group=group))
    logs = SpendLog.objects.using(reporting_db())
    recent = list(logs.filter(**{column: entity_id}).order_by("-start_time", "-id")[:RECENT])  # its payer index
    minute = logs.filter(start_time__gte=timezone.now() - timedelta(minutes=1), **{column: entity_id})
    last_minute = minute.aggregate(calls=Count("id"), tokens=Sum(F("prompt_tokens") + F("completion_tokens")))
    context = {
        "chart": chart,
        "days": DAYS,
        "recent": recent,
        "last_minute": {"calls": last_minute["calls"], "tokens": last_minute["tokens"] or 0},
        "all_logs_url": f"{changelist}?{urlencode({column: entity_id})}",
        "period_logs_url": logs_url(start, end),
    }
    return SafeString(render_to_string("admin/spend/activity.html", context))
