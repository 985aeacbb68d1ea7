"""Compiled helpers shared by the rolling-window kernels.

State blocks are slices of one float64 array: a kernel receives the array `s` and the offset `o`
of its block, so the same step function serves a standalone state and the packed state of the
fused kernels. Counters and ring positions are stored as float64 (exact below 2**53).

Rolling means and sums of squared deviations (m2) slide as shifted running sums
s1 = sum(x - K) and s2 = sum((x - K)^2), with the shift K at the window mean of the last
two-pass computation: mean = K + s1/n and m2 = s2 - s1^2/n are computed off the loop-carried
chain, which is one add per sum (Welford's sliding update chains mean into m2, about 16
cycles a value). Two passes over the window start the sums once it is full and recompute
them, re-anchoring K, every `RECOMPUTE_EVERY` slides and sooner once m2 falls far below the
largest s2 since the last recompute: the rounding error of s2, and the cancellation in
s2 - s1^2/n, are proportional to that peak.
Rolling sums come in two kinds, chosen for their rounding behaviour:
- non-negative values (volume, squared returns): the sum is carried forward and re-summed from
  the window whenever the value leaving it exceeds `RESUM_RATIO` times what remains, so a spike
  leaving the window never leaves its rounding error (or a negative sum) behind;
- signed values: re-summed each time the ring wraps, which bounds the accumulated error to one
  window's worth of rounding.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

RESUM_RATIO = 1e3
RECOMPUTE_EVERY = 256  # slides between two-pass recomputes of rolling moments
RECOMPUTE_MASK = RECOMPUTE_EVERY - 1  # RECOMPUTE_EVERY is a power of two
FLAT_RATIO = 1e-12  # a standard deviation below this fraction of the mean is rounding noise
NAN = math.nan


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def idx(x: float) -> int:
    """Convert a stored length, position or offset to an index known to be non-negative."""
    # Unsigned, so the compiler drops numpy's negative-index wraparound from every access.
    return np.uint32(x)  # type: ignore[return-value]


def nan_heads(count: int, size: int, head: int) -> tuple[np.ndarray, ...]:
    """Return `count` float64 arrays of `size` whose first `head` values are NaN, from numpy.

    For batch kernels with several large outputs (`*_into`): numpy asks for transparent huge
    pages on arrays of 4 MiB and more, which fault in about 2.5x faster than numba's runtime
    allocations; several 8 MB outputs also exceed glibc's mmap threshold and are returned to
    the OS and faulted in again on every call.
    """
    outs = tuple(np.empty(size) for _ in range(count))
    for out in outs:
        out[: min(head, size)] = NAN
    return outs


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def nan_head(size: int, head: int) -> np.ndarray:
    """Return an uninitialised float64 array whose first `head` values are NaN."""
    out = np.empty(size)
    out[: min(head, size)] = NAN
    return out


def check_period(n: int, least: int = 1) -> None:
    """Raise ValueError unless the window length `n` is at least `least`."""
    if n < least:
        raise ValueError(f"period must be >= {least}, got {n}")


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def ring_push(s: np.ndarray, ring: int, n: int, pos_at: int, x: float) -> float:
    """Write `x` over the oldest slot of the ring at `s[ring:ring+n]`, return the value it replaced.

    `s[pos_at]` holds the index of the oldest slot and is advanced.
    """
    pos = idx(s[pos_at])
    old = s[ring + pos]
    s[ring + pos] = x
    pos += 1
    if pos == n:
        pos = 0
    s[pos_at] = pos
    return old


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def ring_sum(s: np.ndarray, ring: int, n: int, pos: int) -> float:
    """Sum the ring oldest first (the order a batch loop over the window uses)."""
    total = 0.0
    for j in range(n):
        k = pos + j
        if k >= n:
            k -= n
        total += s[ring + k]
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def array_sum(x: np.ndarray, start: int, stop: int) -> float:
    """Sum `x[start:stop]` left to right."""
    total = 0.0
    for i in range(start, stop):
        total += x[i]
    return total


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def ring_push_max(s: np.ndarray, ring: int, n: int, pos: int, x: float) -> float:
    """Write `x` over ring slot `pos`; return the largest value in the ring afterwards."""
    # Scan before the store: loads after a store to an unknown slot stall the pipeline.
    best = x
    for j in range(pos):
        best = max(best, s[ring + j])
    for j in range(pos + 1, n):
        best = max(best, s[ring + j])
    s[ring + pos] = x
    return best


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def ring_push_min(s: np.ndarray, ring: int, n: int, pos: int, x: float) -> float:
    """Write `x` over ring slot `pos`; return the smallest value in the ring afterwards."""
    best = x
    for j in range(pos):
        best = min(best, s[ring + j])
    for j in range(pos + 1, n):
        best = min(best, s[ring + j])
    s[ring + pos] = x
    return best


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def needs_resum(remaining: float, leaving: float) -> bool:
    """Tell whether a non-negative running sum lost too much precision to a leaving value."""
    return leaving > RESUM_RATIO * remaining


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def wilder(prev: float, x: float, keep: float, inv_n: float) -> float:
    """Apply Wilder's smoothing (prev (n-1) + x) / n as prev keep + x inv_n.

    keep = (n-1)/n and inv_n = 1/n: TA-Lib's division sits on the loop-carried chain, this
    form leaves one multiply and one add there (results move by an ulp or so).
    """
    return prev * keep + x * inv_n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def true_range(high: float, low: float, prev_close: float) -> float:
    """Return Wilder's true range, in TA-Lib's comparison order."""
    greatest = high - low
    v = abs(prev_close - high)
    if v > greatest:
        greatest = v
    v = abs(low - prev_close)
    if v > greatest:
        greatest = v
    return greatest


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def shifted_ring(s: np.ndarray, ring: int, n: int, pos: int) -> tuple[float, float, float]:
    """Return the ring's mean K, sum(x - K) and sum((x - K)^2), oldest first."""
    shift = ring_sum(s, ring, n, pos) / n
    s1 = 0.0
    s2 = 0.0
    for j in range(n):
        k = pos + j
        if k >= n:
            k -= n
        d = s[ring + k] - shift
        s1 += d
        s2 += d * d
    return shift, s1, s2


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def shifted_array(x: np.ndarray, start: int, stop: int) -> tuple[float, float, float]:
    """Return the mean K of `x[start:stop]`, sum(x - K) and sum((x - K)^2) over it."""
    shift = array_sum(x, start, stop) / (stop - start)
    s1 = 0.0
    s2 = 0.0
    for i in range(start, stop):
        d = x[i] - shift
        s1 += d
        s2 += d * d
    return shift, s1, s2


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def shifted_moments(shift: float, s1: float, s2: float, inv_n: float) -> tuple[float, float]:
    """Return mean and sum of squared deviations of 1/`inv_n` values from their shifted sums."""
    t = s1 * inv_n
    return shift + t, s2 - s1 * t


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def two_pass_array(x: np.ndarray, start: int, stop: int) -> tuple[float, float]:
    """Return mean and sum of squared deviations of `x[start:stop]`."""
    mean, _, m2 = shifted_array(x, start, stop)
    return mean, m2


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def is_flat(m2: float, n: float, mean: float) -> bool:
    """Tell whether a sum of squared deviations over `n` values is only rounding noise."""
    return m2 <= n * (FLAT_RATIO * mean) ** 2


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def m2_lost_precision(m2_peak: float, m2_after: float) -> bool:
    """Tell whether sliding updates cancelled most of the sum of squared deviations.

    Rounding error builds up in proportion to the largest sum carried since the last two-pass
    recompute (`m2_peak`: m2 itself, or s2 >= m2 for shifted sums); once m2 falls far below
    that, its relative error has grown.
    """
    return m2_after <= 0.0 or m2_peak > RESUM_RATIO * m2_after


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def is_due(slides: int) -> bool:
    """Tell whether `slides` (counted since the window filled) calls for a two-pass recompute."""
    return (slides & RECOMPUTE_MASK) == 0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def window_sum_nonneg(s: np.ndarray, at: int, ring: int, n: int, count: float, x: float) -> float:
    """Push a non-negative `x` into the window at `ring` (its position at `at+1`); return the sum.

    `s[at]` carries the sum. `count` counts values pushed, this one included.
    """
    old = ring_push(s, ring, n, at + 1, x)
    if count <= n:
        total = s[at] + x
    else:
        remaining = s[at] - old
        if needs_resum(remaining, old):
            total = ring_sum(s, ring, n, idx(s[at + 1]))
        else:
            total = remaining + x
    s[at] = total
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_sum_nonneg(x: np.ndarray, n: int) -> np.ndarray:
    """Return the sum of each window of `n` non-negative values (NaN before the first full one)."""
    # Warm-up and steady state in separate loops: one loop with both runs several times slower.
    out = nan_head(x.size, n - 1)
    total = 0.0
    for i in range(min(n, x.size)):
        total += x[i]
    if x.size >= n:
        out[n - 1] = total
    for i in range(n, x.size):
        remaining = total - x[i - n]
        if needs_resum(remaining, x[i - n]):
            total = array_sum(x, i - n + 1, i + 1)
        else:
            total = remaining + x[i]
        out[i] = total
    return out


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def window_sum_signed(s: np.ndarray, at: int, ring: int, n: int, count: float, x: float) -> float:
    """Push a signed `x` into the window at `ring` (its position at `at+1`); return the sum."""
    old = ring_push(s, ring, n, at + 1, x)
    if count <= n:
        total = s[at] + x
    elif s[at + 1] == 0.0:
        total = ring_sum(s, ring, n, 0)
    else:
        total = s[at] - old + x
    s[at] = total
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_sum_signed(x: np.ndarray, n: int) -> np.ndarray:
    """Return the sum of each window of `n` signed values (NaN before the first full one)."""
    out = nan_head(x.size, n - 1)
    total = 0.0
    for i in range(min(n, x.size)):
        total += x[i]
    if x.size >= n:
        out[n - 1] = total
    lap = (n + 1) % n  # (i + 1) % n, counted
    for i in range(n, x.size):
        total = array_sum(x, i - n + 1, i + 1) if lap == 0 else total - x[i - n] + x[i]
        lap = lap + 1 if lap + 1 < n else 0
        out[i] = total
    return out


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def window_moments_read(s: np.ndarray, at: int) -> tuple[float, float]:
    """Return mean and sum of squared deviations of the moments block at `at`."""
    return shifted_moments(s[at + 5], s[at], s[at + 1], s[at + 3])


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def window_moments(
    s: np.ndarray, at: int, ring: int, n: int, count: float, x: float
) -> tuple[float, float]:
    """Push `x` into the window at `ring`; return its mean and sum of squared deviations.

    NaN until the window is full. `count` counts values pushed, this one included. `s[at]`,
    `s[at+1]` carry s1 = sum(x - K) and s2 = sum((x - K)^2) over the full window, `s[at+2]`
    the ring position, `s[at+3]` holds 1/n, `s[at+4]` the largest s2 since the last two-pass
    recompute, `s[at+5]` the shift K.
    """
    old = ring_push(s, ring, n, at + 2, x)
    inv_n = s[at + 3]
    if count < n:
        return NAN, NAN
    if count == n:
        shift, s1, s2 = shifted_ring(s, ring, n, idx(s[at + 2]))
        peak = s2
    else:
        shift = s[at + 5]
        s1, s2, peak, redo = moments_slide(s[at], s[at + 1], s[at + 4], shift, x, old, inv_n,
                                           is_due(int(count) - n))
        if redo:
            shift, s1, s2 = shifted_ring(s, ring, n, idx(s[at + 2]))
            peak = s2
    s[at] = s1
    s[at + 1] = s2
    s[at + 4] = peak
    s[at + 5] = shift
    return shifted_moments(shift, s1, s2, inv_n)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def moments_slide(
    s1: float, s2: float, peak: float, shift: float, x: float, old: float, inv_n: float,
    due: bool,
) -> tuple[float, float, float, bool]:
    """Slide the shifted sums of a full window from holding `old` to holding `x` instead.

    Return s1, s2, the peak s2, and whether the caller must recompute now (two passes over
    the window, then peak = s2): when `due` (every RECOMPUTE_EVERY slides since the window
    filled) or when m2 lost precision. Scalars only: helpers that take arrays slow hot loops
    down (reference counting).
    """
    a = x - shift
    b = old - shift
    d = a - b
    s1 += d
    s2 += d * (a + b)  # (x - K)^2 - (old - K)^2, computed off the carried chain
    peak = max(peak, s2)
    m2 = shifted_moments(shift, s1, s2, inv_n)[1]
    return s1, s2, peak, due or m2_lost_precision(peak, m2)


@njit(cache=True, nogil=True, error_model="numpy")
def moments_into(x: np.ndarray, n: int, means: np.ndarray, m2s: np.ndarray) -> None:
    """Write mean and sum of squared deviations of each full window of `n` values of `x`.

    Values from index n - 1 on; those before are left as they are.
    """
    if x.size < n:
        return
    shift, s1, s2 = shifted_array(x, 0, n)
    peak = s2
    inv_n = 1.0 / n
    means[n - 1], m2s[n - 1] = shifted_moments(shift, s1, s2, inv_n)
    for i in range(n, x.size):
        s1, s2, peak, redo = moments_slide(s1, s2, peak, shift, x[i], x[i - n], inv_n,
                                           is_due(i - n + 1))
        if redo:
            shift, s1, s2 = shifted_array(x, i - n + 1, i + 1)
            peak = s2
        means[i], m2s[i] = shifted_moments(shift, s1, s2, inv_n)


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_moments(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return mean and sum of squared deviations of each window of `n` values."""
    means = nan_head(x.size, n - 1)
    m2s = nan_head(x.size, n - 1)
    moments_into(x, n, means, m2s)
    return means, m2s


def warmup() -> None:
    """Compile every helper of this module with production types."""
    s = np.zeros(8)
    x = np.arange(4.0)
    ring_push(s, 2, 4, 0, 1.0)
    ring_sum(s, 2, 4, 0)
    array_sum(x, 0, 4)
    ring_push_max(s, 2, 4, 0, 1.0)
    ring_push_min(s, 2, 4, 0, 1.0)
    needs_resum(1.0, 2.0)
    wilder(1.0, 2.0, 13.0 / 14, 1.0 / 14)
    true_range(2.0, 1.0, 1.5)
    shifted_ring(s, 2, 4, 0)
    shifted_array(x, 0, 4)
    shifted_moments(1.0, 0.5, 2.0, 0.25)
    two_pass_array(x, 0, 4)
    m2_lost_precision(1.0, 0.5)
    is_flat(1.0, 4.0, 1.0)
    window_sum_nonneg(s, 0, 2, 4, 1.0, 1.0)
    window_sum_signed(s, 0, 2, 4, 1.0, 1.0)
    window_moments(np.zeros(11), 0, 6, 4, 1.0, 1.0)
    window_moments_read(np.zeros(11), 0)
    moments_slide(0.0, 1.0, 1.0, 1.0, 2.0, 1.0, 0.25, False)
    is_due(256)
    rolling_sum_nonneg(x, 2)
    rolling_sum_signed(x, 2)
    moments_into(x, 2, np.empty(4), np.empty(4))
    rolling_moments(x, 2)
