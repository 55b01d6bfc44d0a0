"""When a pg_cron schedule ticks next (jobledger.server.cron): the
next_tick column of jobledger.schedules."""

from __future__ import annotations

import datetime

import pytest

from jobledger.server import cron

UTC = datetime.timezone.utc
# A Thursday.
NOW = datetime.datetime(2026, 11, 5, 10, 17, 30, tzinfo=UTC)


@pytest.mark.parametrize(("schedule", "expected"), [
    ("* * * * *", datetime.datetime(2026, 11, 5, 10, 18, tzinfo=UTC)),
    ("0 3 * * *", datetime.datetime(2026, 11, 6, 3, 0, tzinfo=UTC)),
    ("*/15 * * * *", datetime.datetime(2026, 11, 5, 10, 30, tzinfo=UTC)),
    ("0 0 1 * *", datetime.datetime(2026, 12, 1, tzinfo=UTC)),
    ("0 9 * * mon", datetime.datetime(2026, 11, 9, 9, 0, tzinfo=UTC)),
    ("0 0 * * 7", datetime.datetime(2026, 11, 8, tzinfo=UTC)),
    ("0 0 $ * *", datetime.datetime(2026, 11, 30, tzinfo=UTC)),
    ("0 9 13 * fri", datetime.datetime(2026, 11, 6, 9, 0, tzinfo=UTC)),  # either day field
    ("30 2 * jan,feb *", datetime.datetime(2027, 1, 1, 2, 30, tzinfo=UTC)),
    ("@hourly", datetime.datetime(2026, 11, 5, 11, 0, tzinfo=UTC)),
    ("5 seconds", datetime.datetime(2026, 11, 5, 10, 17, 35, tzinfo=UTC)),
    ("0 0 31 2 *", None),
    ("61 * * * *", None),
    ("every day", None),
    ("@reboot", None),
])
def test_next_tick(schedule: str, expected: datetime.datetime | None) -> None:
    assert cron.next_tick(schedule, NOW, "GMT") == expected


def test_next_tick_reads_the_schedule_in_its_time_zone() -> None:
    assert cron.next_tick("0 3 * * *", NOW, "Europe/Berlin") == datetime.datetime(2026, 11, 6, 2, 0, tzinfo=UTC)
    assert cron.next_tick("0 3 * * *", NOW, "No/Such_Zone") is None
