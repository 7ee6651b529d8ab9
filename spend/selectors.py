"""Reads of the spend ledger for the API and the dashboard: filters over logs, and totals of every committed call
(the daily rollups plus the logs not yet rolled up)."""

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from django.db import connections
from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from keys.auth import hash_key
from keys.names import known_labels
from keys.selectors import key_identity
from pricing.money import ZERO, grouped_totals
from spend.models import DailySpend, RollupState, SpendLog
from spend.periods import day_bounds, local_zone
from spend.rollups import COUNTS, DIMENSIONS, TOKENS
from spend.routers import reporting_db

_KEY_HASH = re.compile(r"^[0-9a-f]{64}$")
# The sums a rollup row keeps besides its cost.
SUMMED = (*TOKENS, "requests", *COUNTS)
# A read is repeated if a rollup committed while it ran; rollups commit once a minute, a read takes milliseconds.
_ATTEMPTS = 5
Result = TypeVar("Result")
# What a report may be grouped by, and the rollup column each one reads.
REPORT_GROUPS = {
    "team": "team_id",
    "api_key": "key_hash",
    "user": "user_id",
    "model": "model_group",
    "organization": "organization_id",
}


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which spend logs to read. Dates are local days, both ends included."""

    api_key: str = ""
    user_id: str = ""
    team_id: str = ""
    end_user: str = ""
    request_id: str = ""
    start_date: date | None = None
    end_date: date | None = None


def key_hash_of(api_key: str) -> str:
    """A key as the ledger names it: its identity (token_hash), which a stored hash is taken to be. A raw "sk-..." key
    is looked up as a key's current secret (a regenerated key is named by its first secret's hash, not this one's);
    one no key holds now is hashed, as a deleted key's first secret names its logs."""
    if _KEY_HASH.match(api_key):
        return api_key
    return key_identity(api_key) or hash_key(api_key)


def spend_logs(query: LogFilter) -> QuerySet:
    logs = SpendLog.objects.using(reporting_db())
    if query.api_key:
        logs = logs.filter(key_hash=key_hash_of(query.api_key))
    for name in ("user_id", "team_id", "end_user", "request_id"):
        if value := getattr(query, name):
            logs = logs.filter(**{name: value})
    if query.start_date:
        logs = logs.filter(start_time__gte=day_bounds(query.start_date)[0])
    if query.end_date:
        logs = logs.filter(start_time__lt=day_bounds(query.end_date)[1])
    return logs.order_by("-start_time", "-id")


def daily_log_summary(query: LogFilter) -> list[dict]:
    """LiteLLM's summarized /spend/logs: per day, the total and its split by model, user and key; from the rollups
    plus the logs not rolled up (read_current_spend), never a scan of the period's logs (LiteLLM's stops loading at
    700,000 logs, BerriAI/litellm#2171). Every filter but the request id is a rollup dimension."""
    narrowed = {"key_hash": key_hash_of(query.api_key) if query.api_key else "", "user_id": query.user_id,
                "team_id": query.team_id, "end_user": query.end_user}  # fmt: skip
    rows, _ = read_current_spend(
        query.start_date,
        query.end_date,
        lambda spend: spend.totals(["day", "model_group", "user_id", "key_hash"], integers=["requests"]),
        {column: value for column, value in narrowed.items() if value},
    )
    days: dict[date, dict] = {}
    for row in rows:
        summary = days.setdefault(
            row["day"],
            {"startTime": row["day"].isoformat(), "spend": 0, "requests": 0, "models": {}, "users": {}, "api_keys": {}},
        )
        summary["spend"] += row["cost"]
        summary["requests"] += row["requests"]
        for field, bucket in (("model_group", "models"), ("user_id", "users"), ("key_hash", "api_keys")):
            summary[bucket][row[field]] = summary[bucket].get(row[field], 0) + row["cost"]
    return [days[day] for day in sorted(days)]


class CurrentSpend:
    """Totals of every committed call between two local days (both included), as of one moment.

    The daily rollups hold exactly the logs up to RollupState.last_log_id. The logs above it (the tail: what came
    since the last rollup, a minute's worth when the rollup runs every minute, or everything when none has run) are
    read once, grouped as the rollups are (by day and every dimension), and added to each total here, so a call
    counts from the moment its log commits. Build it through ``read_current_spend``, which checks that no rollup
    moved logs from the tail into the rollups in the middle of the reads. Every read is made on ``db``, the reports'
    database (spend.routers.reporting_db: the replica when there is one): the mark, the tail and the rollups of one
    database are consistent with each other, whatever its lag behind the primary.
    """

    def __init__(self, start: date, end: date, filters: dict[str, str] | None = None):
        self.start, self.end = start, end
        self.filters = dict(filters or {})  # rollup dimensions (team_id, key_hash, ...) narrowed to one value each
        self.db = reporting_db()
        self.as_of = timezone.now()
        self._mark = rollup_mark(self.db)
        self.last_log_id, self.rolled_up_at = self._mark
        since, until = day_bounds(start)[0], day_bounds(end)[1]
        tail = SpendLog.objects.using(self.db).filter(
            id__gt=self.last_log_id, start_time__gte=since, start_time__lt=until, **self.filters
        )
        self.tail = self._tail_totals(tail.annotate(day=TruncDate("start_time", tzinfo=local_zone())))

    def _tail_totals(self, tail: QuerySet) -> list[dict]:
        """The tail's totals per day and every rollup dimension."""
        return grouped_totals(tail, ["day", *DIMENSIONS], money=["cost"], integers=TOKENS, counts=COUNTS)

    def unchanged(self) -> bool:
        """No rollup committed since this read began."""
        return rollup_mark(self.db) == self._mark

    def totals(
        self,
        group_by: list[str],
        since: date | None = None,
        until: date | None = None,
        integers: Iterable[str] = SUMMED,
    ) -> list[dict]:
        """Exact cost and the sums of ``integers`` per group, over the days from ``since`` to ``until``."""
        since, until = since or self.start, until or self.end
        integers = list(integers)
        rollups = self._rollups().filter(day__gte=since, day__lte=until)
        rows = grouped_totals(rollups, group_by, money=["cost"], integers=integers, row_count=None)
        return _add_tail(rows, self._tail_between(since, until), group_by, integers)

    def top(self, field: str, limit: int, since: date | None = None, until: date | None = None) -> list[dict]:
        """The ``limit`` values of ``field`` that cost most (cost and calls each), the most costly first.

        PostgreSQL ranks the rollups in SQL. Only a value in the tail can climb past one the rollups rank higher,
        so the rollups' first ``limit`` plus one per tail value, and the tail values' own rollup totals, hold the
        whole answer. SQLite sums inexactly (doubles), so there every group is summed in Python (small
        installations, few rows)."""
        since, until = since or self.start, until or self.end
        tail = self._tail_between(since, until)
        rollups = self._rollups().filter(day__gte=since, day__lte=until)
        if connections[rollups.db].vendor == "sqlite":
            rows = grouped_totals(rollups, [field], money=["cost"], integers=["requests"], row_count=None)
        else:
            grouped = rollups.order_by().values(field).annotate(cost=Sum("cost"), requests=Sum("requests"))
            tail_values = {row[field] for row in tail}
            leaders = limit + len(tail_values)
            rows = list(grouped.order_by("-cost", field)[:leaders])
            missing = tail_values - {row[field] for row in rows}
            if missing and len(rows) == leaders:  # fewer rows: every rolled-up value is already here
                rows += grouped.filter(**{f"{field}__in": missing})
            for row in rows:
                row["cost"], row["requests"] = row["cost"] or ZERO, int(row["requests"] or 0)
        ranked = _add_tail(rows, tail, [field], ["requests"])
        return sorted(ranked, key=lambda row: (-row["cost"], str(row[field] or "")))[:limit]

    def _rollups(self) -> QuerySet:
        """The daily rollups of this read's database, narrowed to its filters."""
        return DailySpend.objects.using(self.db).filter(**self.filters)

    def _tail_between(self, since: date, until: date) -> list[dict]:
        return [row for row in self.tail if since <= row["day"] <= until]


def read_current_spend(
    start: date, end: date, read: Callable[[CurrentSpend], Result], filters: dict[str, str] | None = None
) -> tuple[Result, CurrentSpend]:
    """``read`` applied to the totals between two days as of now, and the CurrentSpend it read (its ``as_of``).

    The rollup watermark is read before and after: a rollup that committed in between moved logs from the tail into
    the rollups, so what was read may count them twice or not at all, and the read is made again. No lock is taken
    (a reader never holds up the ledger or the rollup)."""
    for _ in range(_ATTEMPTS):
        spend = CurrentSpend(start, end, filters)
        result = read(spend)
        if spend.unchanged():
            break
    return result, spend


def rollup_mark(db: str) -> tuple[int, datetime | None]:
    return RollupState.objects.using(db).filter(pk=1).values_list("last_log_id", "updated_at").first() or (0, None)


def _add_tail(rows: list[dict], tail: list[dict], group_by: list[str], integers: list[str]) -> list[dict]:
    """Rollup totals per group plus the tail's rows (grouped finer) in the same groups."""
    groups = {tuple(row[name] for name in group_by): row for row in rows}
    for tail_row in tail:
        key = tuple(tail_row[name] for name in group_by)
        row = groups.get(key)
        if row is None:
            row = groups[key] = {**dict(zip(group_by, key, strict=True)), "cost": ZERO, **dict.fromkeys(integers, 0)}
        row["cost"] += tail_row["cost"]
        for name in integers:
            row[name] += tail_row[name]
    return list(groups.values())


def current_totals(start: date, end: date, group_by: list[str]) -> tuple[list[dict], datetime]:
    """Every committed call's totals per group between two days, and the moment they are as of."""
    rows, spend = read_current_spend(start, end, lambda spend: spend.totals(group_by))
    return rows, spend.as_of


def spend_report(start: date, end: date, group_by: str) -> tuple[list[dict], datetime]:
    """LiteLLM's /global/spend/report, of every committed call: per day, per group, split by model; and the moment
    it is as of."""
    column = REPORT_GROUPS[group_by]
    detail = "provider" if group_by == "model" else "model_group"
    # By key the report has no days: summed in the database per key and model, not read per day and summed here
    # (90 days: 90 times fewer rows; at 20 million logs the read per day took 612 ms, over the 500 ms target).
    days = [] if group_by == "api_key" else ["day"]
    rows, as_of = current_totals(start, end, [*days, column, detail])
    return _report(rows, group_by, column, detail), as_of


def _report(rows: list[dict], group_by: str, column: str, detail: str) -> list[dict]:
    if group_by == "api_key":
        return _report_by_key(rows)
    names = known_labels("team", (row["team_id"] for row in rows)) if group_by == "team" else {}
    days: dict[date, dict[str, dict]] = defaultdict(dict)
    for row in sorted(rows, key=lambda row: (row["day"], row[column], row[detail])):
        group = days[row["day"]].get(row[column])
        if group is None:
            group = days[row["day"]][row[column]] = _group_head(group_by, row[column], names)
        group["total_spend"] += row["cost"]
        group["metadata"].append(
            {
                detail.removesuffix("_group"): row[detail],
                "spend": row["cost"],
                "requests": row["requests"],
                "total_tokens": row["prompt_tokens"] + row["completion_tokens"],
            }
        )
    plural = {"team": "teams", "user": "users", "model": "models", "organization": "organizations"}[group_by]
    return [{"group_by_day": day.isoformat(), plural: list(groups.values())} for day, groups in sorted(days.items())]


def _group_head(group_by: str, value: str, names: dict[str, str]) -> dict:
    if group_by == "team":
        return {"team_name": names.get(value, value), "team_id": value, "total_spend": 0, "metadata": []}
    return {group_by: value, "total_spend": 0, "metadata": []}


def _report_by_key(rows: list[dict]) -> list[dict]:
    keys: dict[str, dict] = {}
    for row in sorted(rows, key=lambda row: (row["key_hash"], row["model_group"])):
        key = keys.setdefault(
            row["key_hash"],
            {
                "api_key": row["key_hash"],
                "total_cost": 0,
                "total_input_tokens": 0,
                "total_output_tokens": 0,
                "model_details": {},
            },
        )
        key["total_cost"] += row["cost"]
        key["total_input_tokens"] += row["prompt_tokens"]
        key["total_output_tokens"] += row["completion_tokens"]
        model = key["model_details"].setdefault(
            row["model_group"],
            {"model": row["model_group"], "total_cost": 0, "total_input_tokens": 0, "total_output_tokens": 0},
        )
        model["total_cost"] += row["cost"]
        model["total_input_tokens"] += row["prompt_tokens"]
        model["total_output_tokens"] += row["completion_tokens"]
    return [{**key, "model_details": list(key["model_details"].values())} for key in keys.values()]


def log_as_litellm(log: dict) -> dict:
    """One spend log in LiteLLM's SpendLogs shape (plus Tollgate's own fields)."""
    return {
        "request_id": log["request_id"],
        "call_type": log["call_type"],
        "api_key": log["key_hash"],
        "spend": log["cost"],
        "total_tokens": log["prompt_tokens"] + log["completion_tokens"],
        "prompt_tokens": log["prompt_tokens"],
        "completion_tokens": log["completion_tokens"],
        "cached_tokens": log["cached_tokens"],
        "cache_creation_tokens": log["cache_creation_tokens"],
        "reasoning_tokens": log["reasoning_tokens"],
        "startTime": _iso(log["start_time"]),
        "endTime": _iso(log["end_time"]),
        "model": log["requested_model"],
        "model_group": log["model_group"],
        "model_id": log["deployment_id"],
        "custom_llm_provider": log["provider"],
        "api_base": log["api_base"],
        "user": log["user_id"],
        "team_id": log["team_id"],
        "end_user": log["end_user"],
        "status": log["status"],
        "error_class": log["error_class"],
        "attempts": log["attempts"],
        "pricing_source": log["pricing_source"],
        "price_version": log["price_version"],
        "cost_breakdown": log["cost_breakdown"],
        "metadata": log["metadata"],
        "request_tags": log["request_tags"],
    }


LOG_FIELDS = (
    "request_id", "call_type", "key_hash", "cost", "prompt_tokens", "completion_tokens", "cached_tokens",
    "cache_creation_tokens", "reasoning_tokens", "start_time", "end_time", "requested_model", "model_group",
    "deployment_id", "provider", "api_base", "user_id", "team_id", "end_user", "status", "error_class", "attempts",
    "pricing_source", "price_version", "cost_breakdown", "metadata", "request_tags",
)  # fmt: skip


def _iso(moment: datetime) -> str:
    return moment.isoformat()
