"""Days and horizons in the installation's time zone (settings.TIME_ZONE): what "a day" of spend means."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone


def local_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a local day, as aware datetimes (23 or 25 hours long across a DST change)."""
    zone = local_zone()
    return datetime.combine(day, time(), zone), datetime.combine(day + timedelta(days=1), time(), zone)


def local_day(moment: datetime) -> date:
    return timezone.localtime(moment, local_zone()).date()


def retention_horizon(now: datetime) -> date | None:
    """The first day whose raw logs are kept (settings.SPEND_LOG_RETENTION_DAYS), or None to keep them all."""
    days = settings.SPEND_LOG_RETENTION_DAYS
    if not days:
        return None
    return local_day(now) - timedelta(days=days)
