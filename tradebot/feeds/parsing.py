"""Small helpers every venue module's pure parsers share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
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


@dataclass(slots=True)
class Scratch:
    """Reusable arrays a venue scans book frames into, so the hot path allocates nothing:
    `header` for the frame's integer fields, `levels` for (side, price units, size units)."""

    header: np.ndarray
    levels: np.ndarray

    @classmethod
    def new(cls, header_size: int, max_levels: int = 20_000) -> Scratch:
        """Allocate a header of `header_size` fields and room for `max_levels` levels."""
        return cls(np.empty(header_size, np.int64), np.empty((max_levels, 3), np.int64))
