"""The time range of a report, read from `from`, `to` and `tz`, with answers that name the
parameter at fault.

A date is a whole day in `tz`: `from=2026-11-01&to=2026-11-30` is November, the 30th included.
A timestamp is an instant; without an offset it is read in `tz`; `to` as a timestamp is
exclusive. So a day of 23 or 25 hours is still one day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.core.errors import FieldError, ValidationFailed

# Daily buckets over a longer range make a chart nobody reads and a query nobody needs.
MAX_DAILY_RANGE = timedelta(days=400)


def invalid(field: str, message: str, type_: str) -> ValidationFailed:
    return ValidationFailed(
        f"`{field}`: {message}", errors=[FieldError(field=field, message=message, type=type_)]
    )


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive
    tz: str


def time_zone(name: str) -> ZoneInfo:
    try:
        if not name or "\x00" in name or len(name) > 64:
            raise ValueError
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise invalid(
            "tz", "not a time zone of the IANA database, e.g. Europe/Lisbon", "tz_invalid"
        ) from None


def _instant(field: str, value: str, zone: ZoneInfo, *, end: bool) -> datetime:
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time(), tzinfo=zone)
        moment = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        raise invalid(
            field, "not a date (2026-11-01) or an ISO 8601 timestamp", "datetime_invalid"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def report_period(start: str, end: str, tz: str, *, daily: bool = False) -> Period:
    zone = time_zone(tz)
    period = Period(
        _instant("from", start, zone, end=False), _instant("to", end, zone, end=True), tz
    )
    if period.start >= period.end:
        raise invalid("to", "must be after `from`", "range_invalid")
    if daily and period.end - period.start > MAX_DAILY_RANGE:
        raise invalid("to", "daily buckets cover at most 400 days", "range_too_long")
    return period
