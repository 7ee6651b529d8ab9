"""Durations ("30s", "20m", "30min", "30h", "30d", "2w", "1mo"), aligned budget periods, and a key's per-model
budgets as LiteLLM writes them. Pure Python.

A budget period ends on a boundary of the calendar in TIME_ZONE, not a fixed time after the key was made:
"1d" resets at the next midnight, "1mo" on the 1st, "6h" at 00:00, 06:00, 12:00 and 18:00, "15m" on the quarter
hour, "1w" on Monday at midnight. A count that does not divide the larger unit counts from the last midnight
(seconds, minutes, hours), from today (days), from this week's Monday (weeks) or from this month's 1st (months).
"""

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|w|mo)\s*$")
_UNIT = {
    "s": "seconds",
    "sec": "seconds",
    "secs": "seconds",
    "m": "minutes",
    "min": "minutes",
    "mins": "minutes",
    "h": "hours",
    "hr": "hours",
    "hrs": "hours",
    "d": "days",
    "w": "weeks",
    "mo": "months",
}


class InvalidDuration(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Duration:
    """A count of one calendar unit: months are not a fixed number of seconds, so this is not a timedelta."""

    count: int
    unit: str  # seconds, minutes, hours, days, weeks, months

    def after(self, moment: datetime) -> datetime:
        """`moment` plus this duration (a key's expiry): months keep the day of month, clamped to the month's end."""
        if self.unit == "months":
            return _add_months(moment, self.count)
        return moment + timedelta(**{self.unit: self.count})

    def __radd__(self, moment: datetime) -> datetime:
        return self.after(moment)


def parse_duration(text: str) -> Duration:
    """ "30s", "20m" / "30min" (minutes), "30h", "30d", "2w", "1mo"; anything else raises InvalidDuration."""
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) <= 0:
        raise InvalidDuration(
            f"{text!r} is not a duration: use a positive count and a unit, e.g. 30s, 20m, 30min, 30h, 30d, 2w, 1mo"
        )
    return Duration(int(match.group(1)), _UNIT[match.group(2)])


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    next_month_first = datetime(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month_first - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def period_of(reset_at: datetime | None) -> int:
    """A budget period as the counters name it: its end in epoch milliseconds (0: a budget that never resets)."""
    return int(reset_at.timestamp() * 1000) if reset_at is not None else 0


def next_reset_at(now: datetime, budget_duration: str, tz: tzinfo | str) -> datetime:
    """The first period boundary strictly after `now` (aware), in `tz`, for a budget of `budget_duration`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    duration = parse_duration(budget_duration)
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date(), time(0), tzinfo=zone)
    count = duration.count
    if duration.unit in ("seconds", "minutes", "hours"):
        step = timedelta(**{duration.unit: count})
        elapsed = local.replace(tzinfo=None) - midnight.replace(tzinfo=None)  # wall-clock time since midnight
        boundary = midnight + step * (elapsed // step + 1)
        if step > timedelta(days=1):
            return boundary
        # The last period of a day ends at midnight when the step does not divide the day.
        return min(boundary, datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone))
    if duration.unit == "days":
        return midnight + timedelta(days=count)
    if duration.unit == "weeks":
        monday = midnight - timedelta(days=local.weekday())
        return monday + timedelta(weeks=count)
    first = midnight.replace(day=1)
    return _add_months(first, count)


class InvalidModelBudget(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ModelBudget:
    """One entry of a key's `model_max_budget`: what the key may spend on that model group, and how often it resets."""

    limit: Decimal
    duration: str = ""  # "" never resets


def model_budget(entry) -> ModelBudget:
    """An entry as LiteLLM writes it, {"budget_limit": 0.5, "time_period": "1d"}, or a bare amount (0.5, "0.5").
    Raises InvalidModelBudget."""
    if isinstance(entry, dict):
        unknown = set(entry) - {"budget_limit", "time_period"}
        if unknown:
            raise InvalidModelBudget(f"unknown fields {', '.join(sorted(unknown))}: give budget_limit and time_period")
        amount, duration = entry.get("budget_limit"), entry.get("time_period") or ""
    else:
        amount, duration = entry, ""
    if isinstance(amount, bool) or not isinstance(amount, int | float | str | Decimal):
        raise InvalidModelBudget("budget_limit must be an amount in USD")
    try:
        limit = Decimal(str(amount))
    except ArithmeticError:
        raise InvalidModelBudget(f"budget_limit {amount!r} is not an amount in USD") from None
    if not limit.is_finite() or limit < 0:
        raise InvalidModelBudget(f"budget_limit {amount!r} is not an amount in USD")
    if duration:
        try:
            parse_duration(duration if isinstance(duration, str) else "")
        except InvalidDuration as exc:
            raise InvalidModelBudget(f"time_period: {exc}") from None
    return ModelBudget(limit, duration)


# A key's per-model holder is named "<64 hex digits of the key>:<model group>" in at most 200 characters.
MAX_BUDGETED_MODEL_LENGTH = 135


def check_model_budgets(budgets: dict) -> None:
    """Refuse a `model_max_budget` the proxy could not enforce (the management API's and the admin's check)."""
    for model, entry in budgets.items():
        if len(model) > MAX_BUDGETED_MODEL_LENGTH:
            raise InvalidModelBudget(f"model name {model[:40]!r}… is longer than {MAX_BUDGETED_MODEL_LENGTH}")
        try:
            model_budget(entry)
        except InvalidModelBudget as exc:
            raise InvalidModelBudget(f"{model}: {exc}") from None
