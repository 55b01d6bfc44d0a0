"""Durations as operators type them: ``90``, ``90s``, ``15m``, ``2h``, ``7d``, ``1w``, ``1.5h``.

Used by the CLI for ages (``prune --succeeded 7d``) and periods
(``runner --prune-every 1h``).  A bare number is seconds.
"""

from __future__ import annotations

import datetime
import re

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|w|)\s*", re.I)


def parse(text: str) -> datetime.timedelta:
    """``text`` as a timedelta; ValueError saying what is accepted otherwise."""
    match = _DURATION.fullmatch(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a duration: a number with an optional unit s, m, h, d or w (e.g. 90s, 15m, 7d)")
    return datetime.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])


def show(delta: datetime.timedelta | None) -> str:
    """A short human form: ``1.2 ms``, ``3.4 s``, ``5m 02s``, ``2h 03m``, ``3d 04h``."""
    if delta is None:
        return ""
    seconds = delta.total_seconds()
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{sign}{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{sign}{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{sign}{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{sign}{days}d {hours:02d}h"
