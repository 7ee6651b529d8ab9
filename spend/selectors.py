"""Reads of the spend ledger for the API and the dashboard: filters over logs, totals over daily rollups."""

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from django.apps import apps
from django.db.models import QuerySet
from django.db.models.functions import TruncDate

from keys.auth import hash_key
from keys.selectors import key_identity
from spend.models import DailySpend, SpendLog
from spend.money import grouped_totals
from spend.periods import day_bounds, local_zone
from spend.rollups import COUNTS, TOKENS

_KEY_HASH = re.compile(r"^[0-9a-f]{64}$")
# What a report may be grouped by, and the rollup column each one reads.
REPORT_GROUPS = {"team": "team_id", "api_key": "key_hash", "user": "user_id", "model": "model_group"}


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which spend logs to read. Dates are local days, both ends included."""

    api_key: str = ""
    user_id: str = ""
    team_id: str = ""
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
    logs = SpendLog.objects.all()
    if query.api_key:
        logs = logs.filter(key_hash=key_hash_of(query.api_key))
    for name in ("user_id", "team_id", "request_id"):
        if value := getattr(query, name):
            logs = logs.filter(**{name: value})
    if query.start_date:
        logs = logs.filter(start_time__gte=day_bounds(query.start_date)[0])
    if query.end_date:
        logs = logs.filter(start_time__lt=day_bounds(query.end_date)[1])
    return logs.order_by("-start_time", "-id")


def daily_log_summary(logs: QuerySet) -> list[dict]:
    """LiteLLM's summarized /spend/logs: per day, the total and its split by model, user and key."""
    day = TruncDate("start_time", tzinfo=local_zone())
    rows = grouped_totals(
        logs.annotate(day=day), ["day", "model_group", "user_id", "key_hash"], money=["cost"], integers=TOKENS
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


def rollups_between(start: date, end: date) -> QuerySet:
    return DailySpend.objects.filter(day__gte=start, day__lte=end)


def rollup_totals(rollups: QuerySet, group_by: list[str]) -> list[dict]:
    """Sums of the rollup rows per group (requests, tokens by kind, failures, unpriced calls, exact cost)."""
    integers = [*TOKENS, "requests", *COUNTS]
    return grouped_totals(rollups, group_by, money=["cost"], integers=integers, row_count=None)


def team_names(team_ids) -> dict[str, str]:
    team_model = apps.get_model("keys", "Team")
    return {
        team_id: alias or team_id
        for team_id, alias in team_model.objects.filter(team_id__in=set(team_ids)).values_list("team_id", "team_alias")
    }


def spend_report(start: date, end: date, group_by: str) -> list[dict]:
    """LiteLLM's /global/spend/report, from the daily rollups: per day, per group, split by model."""
    column = REPORT_GROUPS[group_by]
    detail = "provider" if group_by == "model" else "model_group"
    rows = rollup_totals(rollups_between(start, end), ["day", column, detail])
    if group_by == "api_key":
        return _report_by_key(rows)
    names = team_names(row["team_id"] for row in rows) if group_by == "team" else {}
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
    plural = {"team": "teams", "user": "users", "model": "models"}[group_by]
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
    "deployment_id", "provider", "api_base", "user_id", "team_id", "status", "error_class", "attempts",
    "pricing_source", "price_version", "cost_breakdown", "metadata", "request_tags",
)  # fmt: skip


def _iso(moment: datetime) -> str:
    return moment.isoformat()
