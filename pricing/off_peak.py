"""When a cost-map entry's ``off_peak_pricing`` block is open: its windows of UTC hours, every day or on given
weekdays read on a calendar of the entry's choosing. Pure Python, used by the calculator."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WEEKDAY_NAMES = (
    "mon monday",
    "tue tues tuesday",
    "wed wednesday",
    "thu thur thurs thursday",
    "fri friday",
    "sat saturday",
    "sun sunday",
)
_WEEKDAYS = {name: number for number, names in enumerate(_WEEKDAY_NAMES, start=1) for name in names.split()}


def open_off_peak_block(price: Mapping[str, Any], billed_at: datetime | None) -> Mapping[str, Any] | None:
    """The entry's ``off_peak_pricing`` block when ``billed_at`` falls in one of its windows: ``hours_utc``
    ("HH:MM-HH:MM" in UTC, start inclusive, end exclusive, wrapping past midnight; equal ends mean all day)
    every day, or a ``windows`` rule's hours on its ``weekdays`` (read on ``weekday_timezone``'s calendar)."""
    block = price.get("off_peak_pricing")
    if billed_at is None or not isinstance(block, Mapping):
        return None
    moment = billed_at.astimezone(UTC)
    if _in_any_window(_window_strings(block.get("hours_utc")), moment.time()):
        return block
    rules = block.get("windows")
    if isinstance(rules, str) or not isinstance(rules, Sequence):
        return None
    calendar = _calendar(block.get("weekday_timezone"))
    for rule in rules:
        if not isinstance(rule, Mapping):
            continue
        if _on_weekday(moment, rule.get("weekdays"), calendar) and _in_any_window(
            _window_strings(rule.get("hours_utc")), moment.time()
        ):
            return block
    return None


def _in_any_window(windows: tuple[str, ...], now: time) -> bool:
    for window in windows:
        try:
            start_text, end_text = window.split("-")
            start = datetime.strptime(start_text.strip(), "%H:%M").time()
            end = datetime.strptime(end_text.strip(), "%H:%M").time()
        except ValueError:
            continue
        if (start <= now < end) if start < end else (now >= start or now < end):
            return True
    return False


def _window_strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(entry for entry in value if isinstance(entry, str))
    return ()


def _calendar(name: object) -> tzinfo:
    if isinstance(name, str) and name.strip():
        try:
            return ZoneInfo(name.strip())
        except (ValueError, ZoneInfoNotFoundError):
            pass
    return UTC


def _on_weekday(moment: datetime, weekdays: object, calendar: tzinfo) -> bool:
    if weekdays is None:
        return True
    if isinstance(weekdays, str) or not isinstance(weekdays, Sequence):
        return False
    allowed = {_weekday_number(day) for day in weekdays}
    return moment.astimezone(calendar).isoweekday() in allowed


def _weekday_number(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1 <= value <= 7 else None
    return _WEEKDAYS.get(value.strip().lower()) if isinstance(value, str) else None
