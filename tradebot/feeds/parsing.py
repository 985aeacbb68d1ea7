"""Small helpers every venue module's pure parsers share."""

from __future__ import annotations

import math

import orjson

from tradebot.errors import DataError


def decode(frame: bytes) -> dict:
    """Decode a JSON frame (orjson); DataError when it is not an object."""
    result = orjson.loads(frame)
    if not isinstance(result, dict):
        raise DataError("frame is not a JSON object")
    return result


def finite(value: object, low: float | None = 0.0) -> float:
    """Return a venue number as a float; DataError for NaN, infinities and values below `low`.

    Venue numbers become floats only here, so malformed input is rejected before any strategy
    or the paper venue could see it.
    """
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or (low is not None and number < low):
        raise DataError(f"number {value!r} out of range")
    return number
