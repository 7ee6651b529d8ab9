"""Daily spend rollups: derived from the logs, so running them twice or on two workers at once counts nothing twice.

A run holds the RollupState row lock for its whole transaction (two workers take turns) and finds the days that
got logs since the last run (ids above its watermark). A day whose raw logs are all still kept is recomputed
whole from them, so a late log corrects its day and a repeated run rewrites the same rows. Today and yesterday
are always recomputed too: a call whose log was given a lower id but committed after the last run saw higher ones
(concurrent ledger transactions) started at most a call's duration ago. A day older than the retention horizon
has lost raw logs, so a late log there is added to its rows instead.

The rollups hold exactly the logs up to RollupState.last_log_id (a day is recomputed from those only), so a reader
adds the logs above it and sees every committed call (spend.selectors.CurrentSpend).
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Max, Q, QuerySet, TextField
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from pricing.money import ZERO, grouped_totals
from pricing.resolve import SOURCE_UNPRICED
from spend.models import ROLLUP_DIMENSIONS, DailySpend, DailyTaggedSpend, DailyTagSpend, RollupState, SpendLog
from spend.periods import day_bounds, local_day, local_zone, retention_horizon

DIMENSIONS = ROLLUP_DIMENSIONS
TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens")
COUNTS = {
    "failed_requests": ~Q(status=SpendLog.Status.SUCCESS),
    "unpriced_requests": Q(pricing_source=SOURCE_UNPRICED),
}
UNTAGGED = "(untagged)"  # the tag a call with none is rolled up (and shown in the spend overview) under


@dataclass
class RollupRun:
    """What one run did."""

    last_log_id: int
    recomputed_days: list[date] = field(default_factory=list)
    added_days: list[date] = field(default_factory=list)


def rollup_state() -> RollupState:
    state, _ = RollupState.objects.get_or_create(pk=1)
    return state


def rollup_spend(now: datetime | None = None) -> RollupRun:
    now = now or timezone.now()
    rollup_state()
    with transaction.atomic():
        state = RollupState.objects.select_for_update().get(pk=1)
        last_log_id = SpendLog.objects.aggregate(last=Max("id"))["last"] or 0
        new_logs = SpendLog.objects.filter(id__gt=state.last_log_id, id__lte=last_log_id)
        days = set(
            new_logs.annotate(day=TruncDate("start_time", tzinfo=local_zone()))
            .order_by()
            .values_list("day", flat=True)
            .distinct()
        )
        today = local_day(now)
        days |= {today, today - timedelta(days=1)}
        horizon = retention_horizon(now)
        run = RollupRun(last_log_id=last_log_id)
        for day in sorted(days):
            if horizon is None or day >= horizon:
                recompute_day(day, last_log_id)
                run.recomputed_days.append(day)
            else:
                _add_to_day(day, new_logs)
                run.added_days.append(day)
        state.last_log_id = last_log_id
        state.updated_at = now
        state.save(update_fields=["last_log_id", "updated_at"])
    return run


def recompute_day(day: date, last_log_id: int) -> None:
    """Replace a day's rollup rows with totals of its logs up to the run's watermark (call inside the rollup's
    transaction). A log above it that commits while the run works is left out: readers add the logs above the
    watermark to the rollups (spend.selectors.CurrentSpend), so counting it here too would count it twice."""
    start, end = day_bounds(day)
    rows = _totals(SpendLog.objects.filter(start_time__gte=start, start_time__lt=end, id__lte=last_log_id))
    DailySpend.objects.filter(day=day).delete()
    DailySpend.objects.bulk_create([DailySpend(day=day, **row) for row in rows], batch_size=1000)
    tagged = tag_totals(SpendLog.objects.filter(start_time__gte=start, start_time__lt=end, id__lte=last_log_id))
    DailyTagSpend.objects.filter(day=day).delete()
    DailyTagSpend.objects.bulk_create([DailyTagSpend(**row) for row in tagged], batch_size=1000)
    rows = tagged_totals(SpendLog.objects.filter(start_time__gte=start, start_time__lt=end, id__lte=last_log_id))
    DailyTaggedSpend.objects.filter(day=day).delete()
    DailyTaggedSpend.objects.bulk_create([DailyTaggedSpend(day=day, **row) for row in rows], batch_size=1000)


def _add_to_day(day: date, new_logs: QuerySet) -> None:
    start, end = day_bounds(day)
    logs = new_logs.filter(start_time__gte=start, start_time__lt=end)
    for row in _totals(logs):
        _add_row(DailySpend, {"day": day, **{name: row.pop(name) for name in DIMENSIONS}}, row)
    for row in tag_totals(logs):
        _add_row(DailyTagSpend, {name: row.pop(name) for name in TAG_DIMENSIONS}, row)
    for row in tagged_totals(logs):
        _add_row(DailyTaggedSpend, {"day": day, **{name: row.pop(name) for name in ("tag", *DIMENSIONS)}}, row)


def _add_row(model, key: dict, sums: dict) -> None:
    existing = model.objects.filter(**key).first()
    if existing is None:
        model.objects.create(**key, **sums)
        return
    for name, value in sums.items():
        setattr(existing, name, getattr(existing, name) + value)
    existing.save(update_fields=list(sums))


def _totals(logs: QuerySet) -> list[dict]:
    return grouped_totals(logs, DIMENSIONS, money=["cost"], integers=TOKENS, counts=COUNTS)


def tagged_totals(logs: QuerySet, group_by: Iterable[str] = DIMENSIONS, tag: str = "") -> list[dict]:
    """The logs' totals per tag and ``group_by`` (DailyTaggedSpend's rows, or a day's tail), exact, with DailySpend's
    sums; only ``tag``'s, if given. Tags are a JSON list per log, which SQL cannot group portably: the logs are
    grouped in the database by ``group_by`` and the tag list (as text), and each group is split by tag here. A call
    counts once under each tag it carries, a call with none under UNTAGGED."""
    columns = [*group_by, "tags"]
    grouped = grouped_totals(
        logs.annotate(tags=Cast("request_tags", TextField())), columns, money=["cost"], integers=TOKENS, counts=COUNTS
    )
    totals: dict[tuple, dict] = {}
    for row in grouped:
        tags = json.loads(row.pop("tags") or "[]")
        for name in dict.fromkeys(map(str, tags if isinstance(tags, list) else [])) or [UNTAGGED]:
            if tag and name != tag:
                continue
            key = (name, *(row[column] for column in group_by))
            total = totals.get(key)
            if total is None:
                totals[key] = {**row, "tag": name}
                continue
            for field_name in ("cost", "requests", *TOKENS, *COUNTS):
                total[field_name] += row[field_name]
    return list(totals.values())


TAG_DIMENSIONS = ("day", "tag", "model_group")
TAG_SUMS = ("requests", "failed_requests", "prompt_tokens", "completion_tokens")


def tag_totals(logs: QuerySet) -> list[dict]:
    """The tagged logs' totals per local day, tag and model group (DailyTagSpend's rows). Tags are a JSON list per
    log, which SQL cannot group portably (PostgreSQL unnests jsonb, SQLite needs json_each): the tagged logs are
    summed here, exactly, in Decimal. A tag repeated in one call counts once."""
    totals: dict[tuple, dict] = {}
    tagged = logs.exclude(request_tags=[]).annotate(day=TruncDate("start_time", tzinfo=local_zone()))
    columns = ("day", "request_tags", "model_group", "status", "cost", "prompt_tokens", "completion_tokens")
    for day, tags, model_group, status, cost, prompt, completion in tagged.values_list(*columns).iterator(2000):
        for tag in dict.fromkeys(tags if isinstance(tags, list) else []):
            row = totals.get((day, tag, model_group))
            if row is None:
                row = totals[day, tag, model_group] = {
                    "day": day, "tag": str(tag), "model_group": model_group, "cost": ZERO, **dict.fromkeys(TAG_SUMS, 0)
                }  # fmt: skip
            row["cost"] += cost
            row["requests"] += 1
            row["failed_requests"] += status != SpendLog.Status.SUCCESS
            row["prompt_tokens"] += prompt
            row["completion_tokens"] += completion
    return list(totals.values())


def sum_rows(sources: Iterable[Iterable[dict]], group_by: Iterable[str], integers: Iterable[str]) -> list[dict]:
    """Rows from several sources (rollups and the tail) summed per group: exact cost and the ``integers``."""
    group_by, integers = list(group_by), list(integers)
    groups: dict[tuple, dict] = {}
    for rows in sources:
        for row in rows:
            key = tuple(row[name] for name in group_by)
            total = groups.get(key)
            if total is None:
                total = groups[key] = {
                    **dict(zip(group_by, key, strict=True)),
                    "cost": ZERO,
                    **dict.fromkeys(integers, 0),
                }
            total["cost"] += row["cost"]
            for name in integers:
                total[name] += row[name]
    return list(groups.values())
