"""Scan JSON depth objects whose levels are objects (`{"price": 1.5, "qty": 2}`), not arrays.

Kraken websocket v2 sends book levels as objects with JSON numbers; this kernel reads them
straight into (side, price units, size units) rows with the exact fixed-point parser of
`jsonscan`, and returns where the object ended so a caller can walk a list of them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tradebot.core.jsonscan import (
    ERR_SYNTAX,
    _parse_fixed,
    _parse_int_value,
    _read_key,
    _skip_value,
    _skip_ws,
    store_level,
)


@njit(cache=True, nogil=True)
def _parse_level_objects(buf: np.ndarray, pos: int, side: int, px_code: int,  # noqa: C901
                         qty_code: int, px_dec: int, sz_dec: int, levels: np.ndarray,
                         count: int) -> tuple[int, int]:
    n = buf.shape[0]
    pos = _skip_ws(buf, pos)
    if pos >= n or buf[pos] != 91:
        return pos, ERR_SYNTAX
    pos = _skip_ws(buf, pos + 1)
    while pos < n and buf[pos] != 93:
        if buf[pos] != 123:
            return pos, ERR_SYNTAX
        pos = _skip_ws(buf, pos + 1)
        price = -1
        size = -1
        while pos < n and buf[pos] != 125:
            if buf[pos] != 34:
                return pos, ERR_SYNTAX
            code, pos = _read_key(buf, pos)
            if pos < 0:
                return 0, ERR_SYNTAX
            err = 0
            if code == px_code:
                price, pos, err = _parse_fixed(buf, pos, px_dec)
            elif code == qty_code:
                size, pos, err = _parse_fixed(buf, pos, sz_dec)
            else:
                pos = _skip_value(buf, pos)
                if pos < 0:
                    return 0, ERR_SYNTAX
            if err != 0:
                return pos, err
            pos = _skip_ws(buf, pos)
            if pos < n and buf[pos] == 44:
                pos = _skip_ws(buf, pos + 1)
        if pos >= n or price < 0 or size < 0:
            return pos, ERR_SYNTAX
        pos, count = store_level(buf, pos, side, price, size, levels, count)
        if count < 0:
            return pos, count
    if pos >= n:
        return pos, ERR_SYNTAX
    return pos + 1, count


@njit(cache=True, nogil=True)
def scan_object_levels(buf: np.ndarray, pos: int, key_codes: np.ndarray,  # noqa: C901
                       values: np.ndarray, bid_code: int, ask_code: int, px_code: int,
                       qty_code: int, px_dec: int, sz_dec: int,
                       levels: np.ndarray) -> tuple[int, int]:
    """Scan the object at `buf[pos]`; return (levels written or a negative error, end).

    As `jsonscan.scan_object`, except that the arrays under `bid_code`/`ask_code` hold level
    objects whose `px_code`/`qty_code` members are the price and size.
    """
    n = buf.shape[0]
    pos = _skip_ws(buf, pos)
    if pos >= n or buf[pos] != 123:
        return ERR_SYNTAX, pos
    pos = _skip_ws(buf, pos + 1)
    count = 0
    while pos < n and buf[pos] != 125:
        if buf[pos] != 34:
            return ERR_SYNTAX, pos
        code, pos = _read_key(buf, pos)
        if pos < 0:
            return ERR_SYNTAX, 0
        if code in (bid_code, ask_code):
            pos, count = _parse_level_objects(buf, pos, 1 if code == bid_code else -1, px_code,
                                              qty_code, px_dec, sz_dec, levels, count)
            if count < 0:
                return count, pos
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
                return ERR_SYNTAX, 0
        pos = _skip_ws(buf, pos)
        if pos < n and buf[pos] == 44:
            pos = _skip_ws(buf, pos + 1)
    if pos >= n:
        return ERR_SYNTAX, pos
    return count, pos + 1


def warmup() -> None:
    """Compile the scanner with production types."""
    from tradebot.core.jsonscan import MISSING, key_code

    frame = b'{"symbol":"X","bids":[{"price":1.5,"qty":2}],"asks":[],"checksum":7}'
    values = np.full(1, MISSING, np.int64)
    levels = np.zeros((4, 3), np.int64)
    scan_object_levels(np.frombuffer(frame, np.uint8), 0,
                       np.array([key_code("checksum")], np.int64), values, key_code("bids"),
                       key_code("asks"), key_code("price"), key_code("qty"), 1, 8, levels)
