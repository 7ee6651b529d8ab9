"""LiteLLM's reporting family (/global/spend/*, /spend/tags, /user/daily/activity), of every committed call.

Each report reads through spend.selectors.read_current_spend: the daily rollups plus the logs not yet rolled up, so
a call is in every report the moment its log commits, with no worker running. Tag totals come from DailyTagSpend
plus the same tail's tagged logs, read in the same attempt (a rollup that commits in between repeats both).

Each report is a ``Report``: LiteLLM's JSON body, and the same rows flat for ?format=csv. Money stays Decimal.
Where LiteLLM names a key or a team by its alias, so do these (the hash or id when it has none).
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.utils import timezone

from keys.models import Team, VirtualKey
from pricing.money import ZERO
from spend.models import DailyTagSpend, SpendLog
from spend.periods import day_bounds, local_day
from spend.rollups import TAG_DIMENSIONS, TAG_SUMS, sum_rows, tag_totals
from spend.selectors import SUMMED, CurrentSpend, key_hash_of, read_current_spend

# LiteLLM's Last30d* and MonthlyGlobalSpend views: the calls that started in the last 30 days.
DEFAULT_DAYS = 30
UNASSIGNED_TEAM = "Unassigned"


@dataclass
class Report:
    """A report's JSON body, its rows as CSV (column names, then one list per row), and the moment it is as of."""

    body: object
    columns: list[str]
    rows: list[list]
    as_of: datetime


def default_window() -> tuple[date, date]:
    today = local_day(timezone.now())
    return today - timedelta(days=DEFAULT_DAYS), today


def _read(start: date, end: date, read) -> tuple[object, datetime]:
    result, spend = read_current_spend(start, end, read)
    return result, spend.as_of


def key_names(key_hashes: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Each key's (key_alias, key_name: its sk-...abcd hint) by its hash."""
    rows = VirtualKey.objects.filter(token_hash__in=set(key_hashes)).values_list("token_hash", "key_alias", "key_hint")
    return {token: (alias, hint) for token, alias, hint in rows}


def team_aliases(team_ids: Iterable[str]) -> dict[str, str]:
    rows = Team.objects.filter(team_id__in=set(team_ids)).values_list("team_id", "team_alias")
    return {team_id: alias or team_id for team_id, alias in rows}


def _ranked(spend: CurrentSpend, field: str, limit: int | None) -> list[dict]:
    if limit is not None:
        return spend.top(field, limit)
    rows = spend.totals([field], integers=["requests"])
    return sorted(rows, key=lambda row: (-row["cost"], str(row[field])))


def global_spend(start: date, end: date) -> Report:
    """LiteLLM's /global/spend: the total, and the proxy-wide max_budget (Tollgate has none: 0, LiteLLM's value
    when litellm_settings sets none)."""
    # Grouped by day and summed here: an empty group_by would make the rollups' .values() name every column.
    rows, as_of = _read(start, end, lambda spend: spend.totals(["day"], integers=["requests"]))
    total = sum((row["cost"] for row in rows), ZERO)
    return Report({"spend": total, "max_budget": 0}, ["spend", "max_budget"], [[total, 0]], as_of)


def top_keys(start: date, end: date, limit: int | None) -> Report:
    rows, as_of = _read(start, end, lambda spend: _ranked(spend, "key_hash", limit))
    names = key_names(row["key_hash"] for row in rows)
    body = [
        {
            "api_key": row["key_hash"],
            "total_spend": row["cost"],
            "key_alias": names.get(row["key_hash"], ("", ""))[0] or None,
            "key_name": names.get(row["key_hash"], ("", ""))[1] or None,
        }
        for row in rows
    ]
    columns = ["api_key", "key_alias", "key_name", "total_spend"]
    return Report(body, columns, [[item[name] for name in columns] for item in body], as_of)


def top_models(start: date, end: date, limit: int) -> Report:
    rows, as_of = _read(start, end, lambda spend: _ranked(spend, "model_group", limit))
    body = [{"model": row["model_group"], "total_spend": row["cost"]} for row in rows]
    return Report(body, ["model", "total_spend"], [[item["model"], item["total_spend"]] for item in body], as_of)


def team_spend(start: date, end: date) -> Report:
    """LiteLLM's /global/spend/teams: spend per day per team alias, the aliases, and the 10 teams that spent most."""
    rows, as_of = _read(start, end, lambda spend: spend.totals(["day", "team_id"], integers=["requests"]))
    aliases = team_aliases(row["team_id"] for row in rows)
    days: dict[date, dict] = defaultdict(dict)
    per_team: dict[str, object] = defaultdict(lambda: ZERO)
    flat = []
    for row in sorted(rows, key=lambda row: (row["day"], row["team_id"])):
        alias = aliases.get(row["team_id"], row["team_id"]) or UNASSIGNED_TEAM
        days[row["day"]][alias] = days[row["day"]].get(alias, ZERO) + row["cost"]
        per_team[alias] += row["cost"]
        flat.append([row["day"].isoformat(), row["team_id"], alias, row["cost"]])
    ranked = sorted(per_team.items(), key=lambda item: (-item[1], item[0]))[:10]
    body = {
        "daily_spend": [{"date": day.isoformat(), **teams} for day, teams in sorted(days.items())],
        "teams": sorted(per_team),
        "total_spend_per_team": [{"team_id": alias, "total_spend": cost} for alias, cost in ranked],
    }
    return Report(body, ["date", "team_id", "team_alias", "spend"], flat, as_of)


def end_user_spend(start: date, end: date, api_key: str = "") -> Report:
    """LiteLLM's /global/spend/end_users: the 100 customers that spent most, with their number of calls."""
    key_hash = key_hash_of(api_key) if api_key else ""

    def read(spend: CurrentSpend) -> list[dict]:
        if not key_hash:
            return spend.top("end_user", 100)
        return [
            row for row in spend.totals(["end_user", "key_hash"], integers=["requests"]) if row["key_hash"] == key_hash
        ]

    rows, as_of = _read(start, end, read)
    rows = sorted(rows, key=lambda row: (-row["cost"], row["end_user"]))[:100]
    body = [{"end_user": row["end_user"], "total_count": row["requests"], "total_spend": row["cost"]} for row in rows]
    columns = ["end_user", "total_count", "total_spend"]
    return Report(body, columns, [[item[name] for name in columns] for item in body], as_of)


def daily_spend(start: date, end: date, api_key: str = "") -> Report:
    """LiteLLM's /global/spend/logs: spend per day (MonthlyGlobalSpend), or one key's (MonthlyGlobalSpendPerKey)."""
    key_hash = key_hash_of(api_key) if api_key else ""
    group_by = ["day", "key_hash"] if key_hash else ["day"]
    rows, as_of = _read(start, end, lambda spend: spend.totals(group_by, integers=["requests"]))
    if key_hash:
        rows = [row for row in rows if row["key_hash"] == key_hash]
    body = [
        {"date": row["day"].isoformat(), "spend": row["cost"], **({"api_key": key_hash} if key_hash else {})}
        for row in sorted(rows, key=lambda row: row["day"])
    ]
    return Report(body, ["date", "spend"], [[item["date"], item["spend"]] for item in body], as_of)


def current_tag_totals(spend: CurrentSpend, group_by: list[str]) -> list[dict]:
    """Every committed tagged call's totals per ``group_by`` (of day, tag, model_group) over the read's days: the tag
    rollups up to the read's watermark plus the tagged logs above it."""
    rollups = (
        DailyTagSpend.objects.using(spend.db)
        .filter(day__gte=spend.start, day__lte=spend.end)
        .values(*TAG_DIMENSIONS, "cost", *TAG_SUMS)
    )
    since, until = day_bounds(spend.start)[0], day_bounds(spend.end)[1]
    logs = SpendLog.objects.using(spend.db)
    tail = tag_totals(logs.filter(id__gt=spend.last_log_id, start_time__gte=since, start_time__lt=until))
    return sum_rows([rollups, tail], group_by, TAG_SUMS)


def _tags_by_spend(start: date, end: date, tags: list[str] | None) -> tuple[list[dict], datetime]:
    rows, as_of = _read(start, end, lambda spend: current_tag_totals(spend, ["tag"]))
    if tags:
        rows = [row for row in rows if row["tag"] in tags]
    return sorted(rows, key=lambda row: (-row["cost"], row["tag"])), as_of


def spend_tags(start: date, end: date) -> Report:
    """LiteLLM's /spend/tags: each request tag's number of calls and spend."""
    rows, as_of = _tags_by_spend(start, end, None)
    body = [
        {"individual_request_tag": row["tag"], "log_count": row["requests"], "total_spend": row["cost"]} for row in rows
    ]
    columns = ["individual_request_tag", "log_count", "total_spend"]
    return Report(body, columns, [[item[name] for name in columns] for item in body], as_of)


def global_spend_tags(start: date, end: date, tags: list[str]) -> Report:
    """LiteLLM's /global/spend/tags: {"spend_per_tag": [{name, spend, log_count}]}, of some tags or ("all-tags", or
    none named) all, the most spent first."""
    rows, as_of = _tags_by_spend(start, end, None if "all-tags" in tags else tags)
    body = [{"name": row["tag"], "spend": row["cost"], "log_count": row["requests"]} for row in rows]
    columns = ["name", "spend", "log_count"]
    return Report({"spend_per_tag": body}, columns, [[item[name] for name in columns] for item in body], as_of)


METRICS = (
    ("spend", "cost"),
    ("prompt_tokens", "prompt_tokens"),
    ("completion_tokens", "completion_tokens"),
    ("cache_read_input_tokens", "cached_tokens"),
    ("cache_creation_input_tokens", "cache_creation_tokens"),
    ("api_requests", "requests"),
    ("failed_requests", "failed_requests"),
)


# What _metrics derives from METRICS besides.
DERIVED_METRICS = ("total_tokens", "successful_requests")


def total_name(metric: str) -> str:
    """The name of a metric's total over every day in daily_activity's metadata (total_tokens stays itself)."""
    return metric if metric == "total_tokens" else f"total_{metric}"


def _metrics(rows: Iterable[dict]) -> dict:
    metrics = {name: ZERO if column == "cost" else 0 for name, column in METRICS}
    for row in rows:
        for name, column in METRICS:
            metrics[name] += row[column]
    metrics["total_tokens"] = metrics["prompt_tokens"] + metrics["completion_tokens"]
    metrics["successful_requests"] = metrics["api_requests"] - metrics["failed_requests"]
    return metrics


def daily_activity(start: date, end: date, model: str, api_key: str, page: int, page_size: int) -> Report:
    """LiteLLM's /user/daily/activity: per day, its metrics and their breakdown by model, provider and key, and the
    totals (``metadata``). Days are paged, ``page_size`` a page, the latest last as LiteLLM lists them."""
    key_hash = key_hash_of(api_key) if api_key else ""
    group_by = ["day", "model_group", "provider", "key_hash", "team_id"]
    rows, as_of = _read(start, end, lambda spend: spend.totals(group_by, integers=SUMMED))
    rows = [
        row
        for row in rows
        if (not model or row["model_group"] == model) and (not key_hash or row["key_hash"] == key_hash)
    ]
    by_day: dict[date, list[dict]] = defaultdict(list)
    for row in rows:
        by_day[row["day"]].append(row)
    days = sorted(by_day)
    total_pages = max(1, -(-len(days) // page_size))
    shown = days[(page - 1) * page_size : page * page_size]
    names = key_names(row["key_hash"] for day in shown for row in by_day[day])
    results = [_day_activity(day, by_day[day], names) for day in shown]
    totals = _metrics(rows)
    metadata = {total_name(name): value for name, value in totals.items()}
    metadata.update(page=page, total_pages=total_pages)
    metadata["has_more"] = page < total_pages
    columns = ["date", "model", "provider", "api_key", "key_alias", *(name for name, _ in METRICS)]
    flat = [
        [day.isoformat(), row["model_group"], row["provider"], row["key_hash"], names.get(row["key_hash"], ("", ""))[0],
         *(row[column] for _, column in METRICS)]
        for day in shown
        for row in sorted(by_day[day], key=lambda row: (row["model_group"], row["provider"], row["key_hash"]))
    ]  # fmt: skip
    return Report({"results": results, "metadata": metadata}, columns, flat, as_of)


def _day_activity(day: date, rows: list[dict], names: dict[str, tuple[str, str]]) -> dict:
    def breakdown(column: str, metadata) -> dict:
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            groups[row[column]].append(row)
        return {
            value: {"metrics": _metrics(group), "metadata": metadata(value, group)}
            for value, group in sorted(groups.items())
        }

    return {
        "date": day.isoformat(),
        "metrics": _metrics(rows),
        "breakdown": {
            "models": breakdown("model_group", lambda value, group: {}),
            "providers": breakdown("provider", lambda value, group: {}),
            "api_keys": breakdown(
                "key_hash",
                lambda value, group: {
                    "key_alias": names.get(value, ("", ""))[0] or None,
                    "team_id": group[0]["team_id"] or None,
                },
            ),
        },
    }


# group_by values of /global/spend/report read here (the others by spend.selectors.spend_report): LiteLLM's customer
# report, and the tag report in the same shape.
DAY_GROUPS = {"customer": ("end_user", "customers"), "tag": ("tag", "tags")}


def day_group_report(start: date, end: date, group_by: str) -> Report:
    """Per day, per customer (or tag), its spend split by model: LiteLLM's group_by=customer answer."""
    column, plural = DAY_GROUPS[group_by]
    if group_by == "tag":
        rows, as_of = _read(start, end, lambda spend: current_tag_totals(spend, ["day", "tag", "model_group"]))
    else:
        rows, as_of = _read(start, end, lambda spend: spend.totals(["day", column, "model_group"]))
    days: dict[date, dict[str, dict]] = defaultdict(dict)
    flat = []
    for row in sorted(rows, key=lambda row: (row["day"], row[column], row["model_group"])):
        group = days[row["day"]].setdefault(row[column], {group_by: row[column], "total_spend": ZERO, "metadata": []})
        group["total_spend"] += row["cost"]
        tokens = row["prompt_tokens"] + row["completion_tokens"]
        group["metadata"].append(
            {"model": row["model_group"], "spend": row["cost"], "requests": row["requests"], "total_tokens": tokens}
        )
        flat.append([row["day"].isoformat(), row[column], row["model_group"], row["cost"], row["requests"],
                     row["failed_requests"], row["prompt_tokens"], row["completion_tokens"]])  # fmt: skip
    body = [{"group_by_day": day.isoformat(), plural: list(groups.values())} for day, groups in sorted(days.items())]
    columns = ["day", group_by, "model", "spend", "requests", "failed_requests", "prompt_tokens", "completion_tokens"]
    return Report(body, columns, flat, as_of)
