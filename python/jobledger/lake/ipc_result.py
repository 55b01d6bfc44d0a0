"""A run's result kept with the run: Arrow IPC stream bytes, and their JSON rendering.

Pure functions, no database: the runner encodes the batches ``arrow_batches``
streams and stores the bytes as the run's output; readers decode them back to
a ``pyarrow.Table`` or render them as JSON (for ``result_json(run)``).

The size cap bounds what a run can put into the ledger.  It is checked after
every batch, so at most the cap plus one batch is ever held, and a result over
it raises ``result_too_large`` and returns nothing (the caller keeps nothing).
"""

from __future__ import annotations

import collections.abc
import datetime
import json
import math
import uuid
from typing import Any

import pyarrow
import pyarrow.ipc

from jobledger.core import errors

DEFAULT_MAX_BYTES = 64 * 2**20


def encode(
    schema: pyarrow.Schema,
    batches: collections.abc.Iterable[pyarrow.RecordBatch],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> bytes:
    """The Arrow IPC stream of ``batches``; ``result_too_large`` once it passes ``max_bytes``."""
    sink = pyarrow.BufferOutputStream()
    rows = 0
    with pyarrow.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
            if sink.tell() > max_bytes:
                raise errors.JobledgerError(
                    "result_too_large",
                    f"the result passed the size cap of {max_bytes} bytes after {rows} rows; "
                    "nothing was kept",
                    hint="Raise the cap, narrow the query, or write to a parquet: destination.",
                )
    data = sink.getvalue().to_pybytes()
    if len(data) > max_bytes:  # the end-of-stream marker
        raise errors.JobledgerError(
            "result_too_large", f"the result passed the size cap of {max_bytes} bytes; nothing was kept")
    return data


def decode(data: bytes) -> pyarrow.Table:
    """The table an IPC stream holds."""
    with pyarrow.ipc.open_stream(pyarrow.py_buffer(data)) as reader:
        return reader.read_all()


# --- JSON ---------------------------------------------------------------------


def to_json(table: pyarrow.Table) -> str:
    """The table as a JSON array of objects, one per row, keys in column order.

    Exact: decimals are JSON numbers with every digit (never through float),
    int64 stays integral, timestamps are ISO 8601 (``Z`` for UTC, none for
    timestamps without time zone), dates ``YYYY-MM-DD``, uuids canonical text,
    json columns are embedded as JSON, bytea is ``\\x`` hex as PostgreSQL
    writes it.  Floats NaN and ±Infinity become the strings ``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``, as PostgreSQL's to_json writes them.
    Times are ``HH:MM:SS[.ffffff]``; intervals are ISO 8601 durations exactly
    as PostgreSQL writes them with ``IntervalStyle = iso_8601``
    (``P1Y2M-3DT4H5M6.5S``, ``PT0S``), each field with its own sign.
    """
    keys = [json.dumps(name, ensure_ascii=False) for name in table.column_names]
    parts = ["{" + ", ".join(f"{key}: {value}" for key, value in zip(keys, row)) + "}"
             for row in rendered_rows(table)]
    return "[" + ", ".join(parts) + "]"


def rendered_rows(table: pyarrow.Table) -> collections.abc.Iterator[list[str]]:
    """Each row of ``table`` as the JSON text of each of its values, in column
    order: the renderings ``to_json`` writes (``null`` for NULL)."""
    renderers = [_renderer(field.type) for field in table.schema]
    for batch in table.to_batches(max_chunksize=10_000):
        columns = [_values(batch.column(i)) for i in range(batch.num_columns)]
        for row in range(batch.num_rows):
            yield [render(column[row]) for render, column in zip(renderers, columns)]


def _values(array: pyarrow.Array) -> list[Any]:
    """Python values, with timestamps and dates as their integer counts (any year)."""
    if pyarrow.types.is_timestamp(array.type):
        return array.view(pyarrow.int64()).to_pylist()
    if pyarrow.types.is_date32(array.type):
        return array.view(pyarrow.int32()).to_pylist()
    if pyarrow.types.is_time64(array.type):
        return array.view(pyarrow.int64()).to_pylist()
    if isinstance(array.type, pyarrow.ListType):
        offsets = array.offsets.to_pylist()
        flat = _values(array.values)
        valid = array.is_valid().to_pylist()
        return [flat[offsets[i]:offsets[i + 1]] if valid[i] else None for i in range(len(array))]
    if isinstance(array.type, pyarrow.BaseExtensionType):
        return array.storage.to_pylist()
    return array.to_pylist()


def _renderer(data: pyarrow.DataType) -> collections.abc.Callable[[Any], str]:
    def nullable(render: collections.abc.Callable[[Any], str]) -> collections.abc.Callable[[Any], str]:
        return lambda value: "null" if value is None else render(value)

    if isinstance(data, pyarrow.ListType):
        element = _renderer(data.value_type)
        return nullable(lambda values: "[" + ", ".join(element(v) for v in values) + "]")
    if pyarrow.types.is_timestamp(data):
        return nullable(lambda micros: json.dumps(_iso_timestamp(micros, data.tz is not None)))
    if pyarrow.types.is_date32(data):
        return nullable(lambda days: json.dumps(_iso_date(days)))
    if pyarrow.types.is_time64(data):
        return nullable(lambda micros: json.dumps(_clock(micros)))
    if data == pyarrow.month_day_nano_interval():
        return nullable(lambda value: json.dumps(iso_interval(value.months, value.days, value.nanoseconds)))
    if pyarrow.types.is_decimal(data):
        return nullable(lambda value: format(value, "f"))
    if pyarrow.types.is_floating(data):
        return nullable(_float)
    if pyarrow.types.is_boolean(data):
        return nullable(lambda value: "true" if value else "false")
    if pyarrow.types.is_integer(data):
        return nullable(str)
    if data == pyarrow.uuid():
        return nullable(lambda raw: json.dumps(str(uuid.UUID(bytes=raw))))
    if data == pyarrow.json_():
        return nullable(lambda text: text)
    if pyarrow.types.is_binary(data):
        return nullable(lambda raw: json.dumps("\\x" + raw.hex()))
    if pyarrow.types.is_string(data):
        return nullable(lambda text: json.dumps(text, ensure_ascii=False))
    return nullable(lambda value: json.dumps(str(value), ensure_ascii=False))


def _float(value: float) -> str:
    if math.isnan(value):
        return '"NaN"'
    if math.isinf(value):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    return repr(value)


_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()


def _iso_date(days: int) -> str:
    """ISO 8601 for a day count from 1970, also before year 1 and after 9999 (astronomical years)."""
    ordinal = _EPOCH_DAY + days
    if 1 <= ordinal <= datetime.date.max.toordinal():
        return datetime.date.fromordinal(ordinal).isoformat()
    # Outside Python's dates: the proleptic Gregorian calendar by hand.
    year, month, day = _civil_from_days(days)
    sign = "-" if year < 0 else "+"
    return f"{sign}{abs(year):06d}-{month:02d}-{day:02d}"


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count from 1970-01-01 (Howard Hinnant's algorithm)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def _iso_timestamp(micros: int, utc: bool) -> str:
    days, rest = divmod(micros, 86_400_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if fraction:
        clock += f".{fraction:06d}"
    return f"{_iso_date(days)}T{clock}{'Z' if utc else ''}"


def _clock(micros: int) -> str:
    """A time of day as PostgreSQL writes it: ``HH:MM:SS``, then the fraction without trailing zeros."""
    seconds, fraction = divmod(micros, 1_000_000)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return clock + (f".{fraction:06d}".rstrip("0") if fraction else "")


def _trunc_div(a: int, b: int) -> int:
    """C's integer division (towards zero), as PostgreSQL splits an interval."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def iso_interval(months: int, days: int, nanoseconds: int) -> str:
    """PostgreSQL's ``IntervalStyle = iso_8601`` text of an interval (EncodeInterval):
    years and months from the months, then days, then hours, minutes and
    seconds of the time part, each with its own sign; zero is ``PT0S``."""
    years, months = _trunc_div(months, 12), months - 12 * _trunc_div(months, 12)
    hours = _trunc_div(nanoseconds, 3_600_000_000_000)
    rest = nanoseconds - hours * 3_600_000_000_000
    minutes = _trunc_div(rest, 60_000_000_000)
    rest -= minutes * 60_000_000_000
    seconds = _trunc_div(rest, 1_000_000_000)
    fraction = rest - seconds * 1_000_000_000
    if not (years or months or days or hours or minutes or seconds or fraction):
        return "PT0S"
    text = "P" + "".join(f"{v}{unit}" for v, unit in ((years, "Y"), (months, "M"), (days, "D")) if v)
    if hours or minutes or seconds or fraction:
        text += "T" + "".join(f"{v}{unit}" for v, unit in ((hours, "H"), (minutes, "M")) if v)
    if seconds or fraction:
        digits = f"{abs(fraction):09d}"
        digits = (digits[:6] if digits.endswith("000") else digits).rstrip("0")
        text += ("-" if seconds < 0 or fraction < 0 else "") + str(abs(seconds))
        text += (f".{digits}" if digits else "") + "S"
    return text

