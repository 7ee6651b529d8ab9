"""Durations and aligned budget periods."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from keys.budgets import InvalidDuration, next_reset_at, parse_duration

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "added"),
    [
        ("30s", timedelta(seconds=30)),
        ("20m", timedelta(minutes=20)),
        ("30min", timedelta(minutes=30)),
        ("30h", timedelta(hours=30)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_durations_add_their_length(text, added):
    start = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert start + parse_duration(text) == start + added


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2026, 1, 15, 9, 30, tzinfo=UTC), "1mo", datetime(2026, 2, 15, 9, 30, tzinfo=UTC)),
        (datetime(2026, 1, 31, 9, 30, tzinfo=UTC), "1mo", datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
        (datetime(2026, 11, 30, 0, 0, tzinfo=UTC), "3mo", datetime(2027, 2, 28, 0, 0, tzinfo=UTC)),
    ],
)
def test_months_keep_the_day_clamped_to_the_month(start, months, expected):
    assert start + parse_duration(months) == expected


@pytest.mark.parametrize("text", ["", "30", "m", "0d", "-1d", "1y", "30 days", "1.5h", "thirty", None])
def test_bad_durations_are_refused(text):
    with pytest.raises(InvalidDuration):
        parse_duration(text)


# now (UTC) -> next boundary (local Berlin time); 2026-01-31 is a Saturday.
NOW = datetime(2026, 1, 31, 14, 7, 3, tzinfo=UTC)  # 15:07:03 in Berlin


@pytest.mark.parametrize(
    ("duration", "expected_local"),
    [
        ("30s", datetime(2026, 1, 31, 15, 7, 30)),
        ("20m", datetime(2026, 1, 31, 15, 20)),
        ("30min", datetime(2026, 1, 31, 15, 30)),
        ("1h", datetime(2026, 1, 31, 16, 0)),
        ("6h", datetime(2026, 1, 31, 18, 0)),
        ("5h", datetime(2026, 1, 31, 20, 0)),
        ("30h", datetime(2026, 2, 1, 6, 0)),
        ("1d", datetime(2026, 2, 1, 0, 0)),
        ("30d", datetime(2026, 3, 2, 0, 0)),
        ("1w", datetime(2026, 2, 2, 0, 0)),
        ("2w", datetime(2026, 2, 9, 0, 0)),
        ("1mo", datetime(2026, 2, 1, 0, 0)),
        ("3mo", datetime(2026, 4, 1, 0, 0)),
    ],
)
def test_next_reset_is_the_next_aligned_boundary_in_the_time_zone(duration, expected_local):
    assert next_reset_at(NOW, duration, "Europe/Berlin") == expected_local.replace(tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("now", "duration", "expected"),
    [
        # Exactly on a boundary: the period that starts now ends at the next one.
        (datetime(2026, 2, 1, 0, 0, tzinfo=UTC), "1d", datetime(2026, 2, 2, 0, 0, tzinfo=UTC)),
        (datetime(2026, 2, 1, 0, 0, tzinfo=UTC), "1mo", datetime(2026, 3, 1, 0, 0, tzinfo=UTC)),
        # A second before midnight in UTC, the daily budget still resets at midnight.
        (datetime(2026, 2, 1, 23, 59, 59, tzinfo=UTC), "1d", datetime(2026, 2, 2, 0, 0, tzinfo=UTC)),
        # December rolls into the next year.
        (datetime(2026, 12, 31, 12, 0, tzinfo=UTC), "1mo", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        # 7h does not divide the day: the last period ends at midnight.
        (datetime(2026, 2, 1, 22, 0, tzinfo=UTC), "7h", datetime(2026, 2, 2, 0, 0, tzinfo=UTC)),
    ],
)
def test_next_reset_edges(now, duration, expected):
    assert next_reset_at(now, duration, UTC) == expected


def test_daily_reset_is_local_midnight_across_a_dst_change():
    # The night Berlin moves to summer time: the day is 23 hours long, the reset is still at local midnight.
    now = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    reset = next_reset_at(now, "1d", BERLIN)
    assert reset == datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN)
    assert reset.astimezone(UTC) == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="aware"):
        next_reset_at(datetime(2026, 1, 1), "1d", UTC)
