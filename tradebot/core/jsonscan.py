"""A byte-level scanner for the JSON shapes of L2 depth messages.

(The scanning functions are byte-level state machines kept in single compiled loops, hence
their complexity waivers: splitting them would add a call per byte.)

Decoding a depth frame with a general JSON parser allocates a Python string per price and size
and then needs a second pass to turn them into integers; this kernel reads the frame bytes once
and writes integer fields and (side, price units, size units) levels straight into arrays.
Prices and sizes are parsed as exact fixed-point decimals: a digit finer than the requested
precision that is not zero is an error, never rounded.

Keys are matched by a 64-bit FNV-1a code (`key_code`), so callers choose any key names.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MISSING = np.iinfo(np.int64).min

ERR_SYNTAX = -1
ERR_PRECISION = -2
ERR_CAPACITY = -3

_FNV_OFFSET = -3750763034362895579  # 0xcbf29ce484222325 as int64
_FNV_PRIME = 1099511628211


def key_code(key: str) -> int:
    """Return the int64 FNV-1a code the scanner computes for `key`."""
    h = 0xCBF29CE484222325
    for byte in key.encode():
        h ^= byte
        h = (h * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h - (1 << 64) if h >= 1 << 63 else h


@njit(cache=True, nogil=True)
def _skip_ws(buf: np.ndarray, pos: int) -> int:
    n = buf.shape[0]
    while pos < n and (buf[pos] == 32 or buf[pos] == 10 or buf[pos] == 13 or buf[pos] == 9):
        pos += 1
    return pos


@njit(cache=True, nogil=True)
def _skip_string(buf: np.ndarray, pos: int) -> int:
    # buf[pos] is the opening quote; return the index after the closing quote, -1 if unclosed.
    n = buf.shape[0]
    pos += 1
    while pos < n:
        c = buf[pos]
        if c == 92:  # backslash escapes the next byte
            pos += 2
            continue
        if c == 34:
            return pos + 1
        pos += 1
    return -1


@njit(cache=True, nogil=True)
def _skip_value(buf: np.ndarray, pos: int) -> int:  # noqa: C901
    n = buf.shape[0]
    pos = _skip_ws(buf, pos)
    if pos >= n:
        return -1
    c = buf[pos]
    if c == 34:
        return _skip_string(buf, pos)
    if c == 123 or c == 91:
        depth = 0
        while pos < n:
            c = buf[pos]
            if c == 34:
                pos = _skip_string(buf, pos)
                if pos < 0:
                    return -1
                continue
            if c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 0:
                    return pos + 1
            pos += 1
        return -1
    while pos < n and buf[pos] != 44 and buf[pos] != 125 and buf[pos] != 93:
        pos += 1
    return pos


@njit(cache=True, nogil=True)
def _parse_fixed(buf: np.ndarray, pos: int, decimals: int) -> tuple[int, int, int]:  # noqa: C901
    """Parse a number, quoted or bare, as an integer of 10**-decimals units.

    Return (value, position after it, error code or 0).
    """
    n = buf.shape[0]
    pos = _skip_ws(buf, pos)
    quoted = pos < n and buf[pos] == 34
    if quoted:
        pos += 1
    neg = pos < n and buf[pos] == 45
    if neg:
        pos += 1
    value = 0
    digits = 0
    while pos < n and 48 <= buf[pos] <= 57:
        value = value * 10 + (buf[pos] - 48)
        digits += 1
        pos += 1
    frac = 0
    if pos < n and buf[pos] == 46:
        pos += 1
        while pos < n and 48 <= buf[pos] <= 57:
            if frac < decimals:
                value = value * 10 + (buf[pos] - 48)
                frac += 1
            elif buf[pos] != 48:
                return 0, pos, ERR_PRECISION
            digits += 1
            pos += 1
    if digits == 0:
        return 0, pos, ERR_SYNTAX
    if pos < n and (buf[pos] == 101 or buf[pos] == 69):  # exponent: not a venue price format
        return 0, pos, ERR_SYNTAX
    for _ in range(frac, decimals):
        value *= 10
    if quoted:
        if pos >= n or buf[pos] != 34:
            return 0, pos, ERR_SYNTAX
        pos += 1
    return (-value if neg else value), pos, 0


@njit(cache=True, nogil=True, inline="always")
def store_level(buf: np.ndarray, pos: int, side: int, price: int, size: int,
                levels: np.ndarray, count: int) -> tuple[int, int]:
    """Store one parsed level whose element closes at `buf[pos]`; return the position of the
    next element and the new count (ERR_CAPACITY when `levels` is full)."""
    if count >= levels.shape[0]:
        return pos, ERR_CAPACITY
    levels[count, 0] = side
    levels[count, 1] = price
    levels[count, 2] = size
    pos = _skip_ws(buf, pos + 1)
    if pos < buf.shape[0] and buf[pos] == 44:
        pos = _skip_ws(buf, pos + 1)
    return pos, count + 1


@njit(cache=True, nogil=True)
def _parse_levels(buf: np.ndarray, pos: int, side: int, px_dec: int, sz_dec: int,  # noqa: C901
                  levels: np.ndarray, count: int) -> tuple[int, int]:
    """Parse `[[price, size, ...], ...]`; return (position after it, new count or error)."""
    n = buf.shape[0]
    pos = _skip_ws(buf, pos)
    if pos >= n or buf[pos] != 91:
        return pos, ERR_SYNTAX
    pos = _skip_ws(buf, pos + 1)
    while pos < n and buf[pos] != 93:
        if buf[pos] != 91:
            return pos, ERR_SYNTAX
        price, pos, err = _parse_fixed(buf, pos + 1, px_dec)
        if err != 0:
            return pos, err
        pos = _skip_ws(buf, pos)
        if pos >= n or buf[pos] != 44:
            return pos, ERR_SYNTAX
        size, pos, err = _parse_fixed(buf, pos + 1, sz_dec)
        if err != 0:
            return pos, err
        pos = _skip_ws(buf, pos)
        while pos < n and buf[pos] == 44:  # extra elements (order count, timestamp, flags)
            pos = _skip_value(buf, pos + 1)
            if pos < 0:
                return 0, ERR_SYNTAX
            pos = _skip_ws(buf, pos)
        if pos >= n or buf[pos] != 93:
            return pos, ERR_SYNTAX
        pos, count = store_level(buf, pos, side, price, size, levels, count)
        if count < 0:
            return pos, count
    if pos >= n:
        return pos, ERR_SYNTAX
    return pos + 1, count


@njit(cache=True, nogil=True)
def _read_key(buf: np.ndarray, pos: int) -> tuple[int, int]:
    # buf[pos] is a quote: hash the key, return (code, index after the ':').
    n = buf.shape[0]
    h = _FNV_OFFSET
    pos += 1
    while pos < n and buf[pos] != 34:
        h = (h ^ buf[pos]) * _FNV_PRIME
        pos += 1
    pos = _skip_ws(buf, pos + 1)
    if pos >= n or buf[pos] != 58:
        return h, -1
    return h, pos + 1


@njit(cache=True, nogil=True)
def _parse_int_value(buf: np.ndarray, pos: int) -> tuple[int, int]:
    # An integer, bare or quoted; MISSING when the value is not an integer.
    value, end, err = _parse_fixed(buf, pos, 0)
    if err != 0:
        return MISSING, _skip_value(buf, pos)
    return value, end


@njit(cache=True, nogil=True)
def scan_object(buf: np.ndarray, pos: int, key_codes: np.ndarray, values: np.ndarray,  # noqa: C901
                bid_code: int, ask_code: int, px_dec: int, sz_dec: int,
                levels: np.ndarray) -> int:
    """Scan the JSON object starting at `buf[pos]` (a `{`).

    Integer values of keys in `key_codes` go to `values` (same index; keys not present keep
    the caller's value); the level arrays under `bid_code` and `ask_code` go to `levels` as
    (1 | -1, price units, size units). Return the number of levels, or a negative error code.
    """
    n = buf.shape[0]
    pos = _skip_ws(buf, pos)
    if pos >= n or buf[pos] != 123:
        return ERR_SYNTAX
    pos = _skip_ws(buf, pos + 1)
    count = 0
    while pos < n and buf[pos] != 125:
        if buf[pos] != 34:
            return ERR_SYNTAX
        code, pos = _read_key(buf, pos)
        if pos < 0:
            return ERR_SYNTAX
        if code in (bid_code, ask_code):
            pos, count = _parse_levels(buf, pos, 1 if code == bid_code else -1, px_dec, sz_dec,
                                       levels, count)
            if count < 0:
                return count
        else:
            matched = -1
            for i in range(key_codes.shape[0]):
                if key_codes[i] == code:
                    matched = i
            if matched >= 0:
                values[matched], pos = _parse_int_value(buf, pos)
            else:
                pos = _skip_value(buf, pos)
            if pos < 0:
                return ERR_SYNTAX
        pos = _skip_ws(buf, pos)
        if pos < n and buf[pos] == 44:
            pos = _skip_ws(buf, pos + 1)
    if pos >= n:
        return ERR_SYNTAX
    return count


def warmup() -> None:
    """Compile the scanner with production types."""
    frame = b'{"U":1,"u":2,"s":"X","b":[["1.5","2"]],"a":[["1.6","3",1]]}'
    buf = np.frombuffer(frame, np.uint8)
    codes = np.array([key_code("U"), key_code("u")], np.int64)
    values = np.full(2, MISSING, np.int64)
    levels = np.zeros((4, 3), np.int64)
    scan_object(buf, 0, codes, values, key_code("b"), key_code("a"), 2, 2, levels)
