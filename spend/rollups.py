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

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from pricing.money import grouped_totals
from pricing.resolve import SOURCE_UNPRICED
from spend.models import DailySpend, RollupState, SpendLog
from spend.periods import day_bounds, local_day, local_zone, retention_horizon

DIMENSIONS = ("team_id", "key_hash", "user_id", "model_group", "provider")
TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens")
COUNTS = {
    "failed_requests": ~Q(status=SpendLog.Status.SUCCESS),
    "unpriced_requests": Q(pricing_source=SOURCE_UNPRICED),
}


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


def _add_to_day(day: date, new_logs: QuerySet) -> None:
    start, end = day_bounds(day)
    for row in _totals(new_logs.filter(start_time__gte=start, start_time__lt=end)):
        key = {name: row.pop(name) for name in DIMENSIONS}
        existing = DailySpend.objects.filter(day=day, **key).first()
        if existing is None:
            DailySpend.objects.create(day=day, **key, **row)
            continue
        for name, value in row.items():
            setattr(existing, name, getattr(existing, name) + value)
        existing.save(update_fields=list(row))


def _totals(logs: QuerySet) -> list[dict]:
    return grouped_totals(logs, DIMENSIONS, money=["cost"], integers=TOKENS, counts=COUNTS)
