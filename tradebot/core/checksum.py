"""Venue book checksums (CRC32 over the top levels) and depth truncation, over integer units.

The books (core/book.py layout) hold integer price and size units; a venue's checksum is a CRC32
of the level strings it sent. Those strings are rebuilt here from the units, exactly, in the
two string forms venues use:

- FIXED (Kraken): a fixed number of decimals per pair; the checksum removes the '.' and strips
  leading zeros, which is the decimal digits of the integer in units of `10**-wire_decimals`.
  Units held at `d` decimals become wire units by `* 10**(wire - d)` (or `//` when negative):
  exact whenever every string of the pair has `wire` decimals (the venue's fixed format).
- CANONICAL (OKX): the shortest decimal string (no trailing zeros, no '.' for integers).

Where a venue breaks its own string form the CRC will not match and the book resyncs: the
failure is loud, never a silently wrong book.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _crc_table() -> np.ndarray:
    table = np.zeros(256, np.int64)
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else (c >> 1)
        table[n] = c
    return table


CRC_TABLE = _crc_table()
_MASK = 0xFFFFFFFF


@njit(cache=True, nogil=True)
def _crc_byte(table: np.ndarray, crc: int, byte: int) -> int:
    return table[(crc ^ byte) & 0xFF] ^ (crc >> 8)


@njit(cache=True, nogil=True)
def _crc_uint(table: np.ndarray, crc: int, value: int, width: int) -> int:
    # Decimal digits of `value`, left-padded with zeros to `width` digits (width 0: no padding).
    digits = 1
    scale = 1
    while scale * 10 <= value:
        scale *= 10
        digits += 1
    if value == 0:
        digits = 0
    for _ in range(width - digits):
        crc = _crc_byte(table, crc, 48)
    while scale > 0 and digits > 0:
        crc = _crc_byte(table, crc, 48 + (value // scale) % 10)
        scale //= 10
        digits -= 1
    return crc


@njit(cache=True, nogil=True)
def _crc_fixed(table: np.ndarray, crc: int, units: int, shift: int) -> int:
    # FIXED form: '.' removed, leading zeros stripped == digits of the wire-unit integer.
    if shift >= 0:
        for _ in range(shift):
            units *= 10
    else:
        for _ in range(-shift):
            units //= 10
    return _crc_uint(table, crc, units, 0)


@njit(cache=True, nogil=True)
def _crc_canonical(table: np.ndarray, crc: int, units: int, decimals: int) -> int:
    scale = 1
    for _ in range(decimals):
        scale *= 10
    whole = units // scale
    frac = units % scale
    crc = _crc_byte(table, crc, 48) if whole == 0 else _crc_uint(table, crc, whole, 0)
    if frac != 0:
        width = decimals
        while frac % 10 == 0:
            frac //= 10
            width -= 1
        crc = _crc_byte(table, crc, 46)
        crc = _crc_uint(table, crc, frac, width)
    return crc


@njit(cache=True, nogil=True)
def _level(keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray, row: int,
           j: int) -> tuple[int, int]:
    # The j-th best level of a side (row 0 bids, 1 asks): (price units, size units).
    idx = counts[row] - 1 - j
    price = keys[row, idx]
    return (-price if row == 1 else price), sizes[row, idx]


@njit(cache=True, nogil=True)
def crc_fixed_top(table: np.ndarray, keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray,
                  depth: int, px_shift: int, sz_shift: int) -> int:
    """Return the unsigned CRC32 of the best `depth` asks then bids, FIXED strings (Kraken)."""
    crc = _MASK
    for row in (1, 0):
        for j in range(min(depth, counts[row])):
            price, size = _level(keys, sizes, counts, row, j)
            crc = _crc_fixed(table, crc, price, px_shift)
            crc = _crc_fixed(table, crc, size, sz_shift)
    return crc ^ _MASK


@njit(cache=True, nogil=True)
def crc_canonical_interleaved(table: np.ndarray, keys: np.ndarray, sizes: np.ndarray,
                              counts: np.ndarray, depth: int, px_decimals: int,
                              sz_decimals: int) -> int:
    """Return the signed CRC32 of `bid:size:ask:size:...` over the best `depth` levels (OKX)."""
    crc = _MASK
    first = True
    for j in range(depth):
        for row in (0, 1):
            if j >= counts[row]:
                continue
            price, size = _level(keys, sizes, counts, row, j)
            if not first:
                crc = _crc_byte(table, crc, 58)
            first = False
            crc = _crc_canonical(table, crc, price, px_decimals)
            crc = _crc_byte(table, crc, 58)
            crc = _crc_canonical(table, crc, size, sz_decimals)
    crc ^= _MASK
    return crc - (1 << 32) if crc >= (1 << 31) else crc


@njit(cache=True, nogil=True)
def book_truncate(keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray, depth: int) -> None:
    """Keep only the best `depth` levels of each side (the worst sit at the low indices)."""
    for row in range(2):
        n = counts[row]
        if n <= depth:
            continue
        drop = n - depth
        for i in range(depth):
            keys[row, i] = keys[row, i + drop]
            sizes[row, i] = sizes[row, i + drop]
        counts[row] = depth


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    keys = np.array([[100, 101], [-103, -102]], np.int64)
    sizes = np.array([[5, 6], [7, 8]], np.int64)
    counts = np.array([2, 2], np.int64)
    crc_fixed_top(CRC_TABLE, keys, sizes, counts, 10, 1, -1)
    crc_canonical_interleaved(CRC_TABLE, keys, sizes, counts, 25, 1, 0)
    book_truncate(keys, sizes, counts, 1)
