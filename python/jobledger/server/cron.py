"""When a pg_cron schedule ticks next: for the ``next_tick`` column of
``jobledger.schedules``.

pg_cron fires the ticks; this only tells psql users when the next one is
due.  It reads pg_cron's syntax: five fields (minute, hour, day of month,
month, day of week; ``*``, lists, ranges, ``/`` steps, month and day names,
``$`` for the last day of the month), the ``@hourly``-style macros, and
``N seconds``.  Anything else has no next tick (None); pg_cron itself
checked the text when the schedule was made.
"""

from __future__ import annotations

import calendar
import datetime
import re
import zoneinfo

_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_NAMES = {name: i for i, name in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                             "nov", "dec"], start=1)}
_DAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_SECONDS = re.compile(r"\s*([0-9]{1,2})\s+seconds?\s*", re.I)
_LAST_DAY = 32  # "$" in the day-of-month field


class _Unreadable(ValueError):
    pass


def _number(text: str, names: dict[str, int]) -> int:
    if text.isdigit():
        return int(text)
    if text.lower() in names:
        return names[text.lower()]
    raise _Unreadable(text)


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise _Unreadable(part)
        if base == "*":
            first, last = low, high
        elif base == "$" and high == 31:
            first = last = _LAST_DAY
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, names or {}), _number(b, names or {})
        else:
            first = _number(base, names or {})
            last = high if step else first
        if not (low <= first <= high or first == _LAST_DAY) or not (low <= last <= high or last == _LAST_DAY):
            raise _Unreadable(part)
        values.update(range(first, last + 1, step or 1))
    return frozenset(values)


def next_tick(schedule: str, after: datetime.datetime, time_zone: str) -> datetime.datetime | None:
    """The first tick of ``schedule`` strictly after ``after`` (aware), or None."""
    seconds = _SECONDS.fullmatch(schedule)
    if seconds:
        n = int(seconds.group(1))
        if not 1 <= n <= 59:
            return None
        epoch = int(after.timestamp()) // n * n + n
        return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    text = _MACROS.get(schedule.strip().lower(), schedule)
    fields = text.split()
    if len(fields) != 5:
        return None
    try:
        zone = zoneinfo.ZoneInfo(time_zone)
        minutes = _field(fields[0], 0, 59)
        hours = _field(fields[1], 0, 23)
        days = _field(fields[2], 1, 31)
        months = _field(fields[3], 1, 12, _NAMES)
        weekdays = frozenset(d % 7 for d in _field(fields[4], 0, 7, _DAYS))
    except (_Unreadable, ValueError, zoneinfo.ZoneInfoNotFoundError):
        return None
    # Vixie cron: with both day fields restricted, either may match.
    any_day, any_weekday = fields[2].startswith("*"), fields[4].startswith("*")
    local = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) + datetime.timedelta(minutes=1)
    for _ in range(5 * 366 * 24):  # a few years of hours at most
        if local.month not in months:
            year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
            local = datetime.datetime(year, month, 1)
            continue
        last_day = calendar.monthrange(local.year, local.month)[1]
        day_ok = local.day in days or (_LAST_DAY in days and local.day == last_day)
        weekday_ok = (local.weekday() + 1) % 7 in weekdays
        if not (day_ok and weekday_ok if any_day or any_weekday else day_ok or weekday_ok):
            local = datetime.datetime(local.year, local.month, local.day) + datetime.timedelta(days=1)
            continue
        if local.hour not in hours:
            local = local.replace(minute=0) + datetime.timedelta(hours=1)
            continue
        later = [m for m in sorted(minutes) if m >= local.minute]
        if not later:
            local = local.replace(minute=0) + datetime.timedelta(hours=1)
            continue
        return local.replace(minute=later[0]).replace(tzinfo=zone).astimezone(datetime.timezone.utc)
    return None
