"""Market microstructure features from the book and the trades.

A book snapshot is a float64 array `book[4, depth]`: rows bid price, bid size, ask price, ask
size, best level first. Trades carry price, size and the aggressor side (+1 buy, -1 sell).

Definitions:
- spread = ask - bid; mid = (bid + ask) / 2; micro-price = size-weighted mid
  (bid * ask_size + ask * bid_size) / (bid_size + ask_size) (Gatheral and Oomen, "Zero-
  intelligence realized variance estimation", Finance and Stochastics 2010);
- depth imbalance over the top `depth` levels = (bid volume - ask volume) / (bid + ask volume);
- order-flow imbalance, per book event (Cont, Kukanov and Stoikov, "The price impact of order
  book events", J. Financial Econometrics 2014, eq. 2):
  e = 1{Pb >= Pb'} qb - 1{Pb <= Pb'} qb' - 1{Pa <= Pa'} qa + 1{Pa >= Pa'} qa' (primes: the
  previous event), summed over the last `window` events;
- trade-flow imbalance over the last `window` trades = (buy volume - sell volume) / volume;
- VPIN (Easley, Lopez de Prado and O'Hara, "Flow toxicity and liquidity in a high-frequency
  world", Review of Financial Studies 2012): trades fill equal volume buckets of size V
  (a trade spanning buckets is split), each classified by its aggressor side;
  VPIN = sum over the last n buckets of |buy - sell| / (n V). A trade of unknown side (0)
  counts half to each side;
- Kyle's lambda (Kyle 1985; estimator as in Lopez de Prado, "Advances in Financial Machine
  Learning", 2018, sec. 19.3.1): the OLS slope of trade-price change on signed volume
  (side * size) over the last `window` trades.

Features of one snapshot have no state: their "incremental form" is the per-snapshot kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tradebot.core.rolling import (
    NAN,
    check_period,
    idx,
    rolling_sum_nonneg,
    rolling_sum_signed,
    window_sum_nonneg,
    window_sum_signed,
)

BID_PX, BID_SZ, ASK_PX, ASK_SZ = 0, 1, 2, 3


# --- one snapshot ----------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def microprice_one(bid: float, bid_size: float, ask: float, ask_size: float) -> float:
    """Return the size-weighted mid of one top of book (NaN with no size on either side)."""
    total = bid_size + ask_size
    if not total > 0.0:
        return NAN
    return (bid * ask_size + ask * bid_size) / total


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def depth_imbalance_one(book: np.ndarray, depth: int) -> float:
    """Return (bid - ask volume) / (bid + ask volume) over the top `depth` levels of `book`."""
    bid = 0.0
    ask = 0.0
    for j in range(min(depth, book.shape[1])):
        bid += book[BID_SZ, j]
        ask += book[ASK_SZ, j]
    total = bid + ask
    if not total > 0.0:
        return NAN
    return (bid - ask) / total


@njit(cache=True, nogil=True, error_model="numpy")
def top_of_book(
    bid: np.ndarray, bid_size: np.ndarray, ask: np.ndarray, ask_size: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return spread, mid and micro-price for each top of book."""
    n = bid.size
    spread = np.empty(n)
    mid = np.empty(n)
    micro = np.empty(n)
    for i in range(n):
        spread[i] = ask[i] - bid[i]
        mid[i] = (bid[i] + ask[i]) / 2.0
        micro[i] = microprice_one(bid[i], bid_size[i], ask[i], ask_size[i])
    return spread, mid, micro


@njit(cache=True, nogil=True, error_model="numpy")
def depth_imbalance(bid_sizes: np.ndarray, ask_sizes: np.ndarray, depth: int) -> np.ndarray:
    """Return the top-`depth` imbalance for each row of (events, levels) size arrays."""
    n = bid_sizes.shape[0]
    out = np.empty(n)
    book = np.zeros((4, bid_sizes.shape[1]))
    for i in range(n):
        book[BID_SZ] = bid_sizes[i]
        book[ASK_SZ] = ask_sizes[i]
        out[i] = depth_imbalance_one(book, depth)
    return out


# --- order-flow imbalance: block [w, count, bid, bid size, ask, ask size, sum, pos, ring(w)] -


def ofi_size(window: int) -> int:
    """Return the state block length of OFI over `window` book events."""
    return 8 + window


def ofi_init(s: np.ndarray, o: int, window: int) -> None:
    """Write a fresh OFI block at `s[o:]`."""
    check_period(window)
    s[o : o + ofi_size(window)] = 0.0
    s[o] = window


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def ofi_event(
    prev: tuple[float, float, float, float], bid: float, bid_size: float, ask: float,
    ask_size: float,
) -> float:
    """Return one event's order-flow contribution e (Cont, Kukanov and Stoikov, eq. 2)."""
    pb, qb, pa, qa = prev
    e = 0.0
    if bid >= pb:
        e += bid_size
    if bid <= pb:
        e -= qb
    if ask <= pa:
        e -= ask_size
    if ask >= pa:
        e += qa
    return e


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def ofi_step(
    s: np.ndarray, o: int, bid: float, bid_size: float, ask: float, ask_size: float,
    out: np.ndarray, k: int,
) -> None:
    """Feed one top of book to the OFI block at `o`; write e and its window sum to `out[k:]`."""
    w = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    prev = (s[o + 2], s[o + 3], s[o + 4], s[o + 5])
    s[o + 2] = bid
    s[o + 3] = bid_size
    s[o + 4] = ask
    s[o + 5] = ask_size
    if count == 1.0:
        out[k] = NAN
        out[k + 1] = NAN
        return
    e = ofi_event(prev, bid, bid_size, ask, ask_size)
    total = window_sum_signed(s, o + 6, o + 8, w, count - 1.0, e)
    out[k] = e
    out[k + 1] = total if count > w else NAN


@njit(cache=True, nogil=True, error_model="numpy")
def ofi(
    bid: np.ndarray, bid_size: np.ndarray, ask: np.ndarray, ask_size: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return each event's OFI contribution and its sum over the last `window` events."""
    if window < 1:
        raise ValueError("window must be >= 1")
    n = bid.size
    e = np.full(n, NAN)
    total = np.full(n, NAN)
    for i in range(1, n):
        prev = (bid[i - 1], bid_size[i - 1], ask[i - 1], ask_size[i - 1])
        e[i] = ofi_event(prev, bid[i], bid_size[i], ask[i], ask_size[i])
    if n > 1:
        total[1:] = rolling_sum_signed(e[1:], window)
    return e, total


def ofi_state(window: int) -> np.ndarray:
    """Return a fresh state for `ofi_update`."""
    s = np.zeros(ofi_size(window))
    ofi_init(s, 0, window)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def ofi_update(
    state: np.ndarray, bid: float, bid_size: float, ask: float, ask_size: float, out: np.ndarray
) -> None:
    """Feed one top of book; write e and the window OFI to `out[0:2]`."""
    ofi_step(state, 0, bid, bid_size, ask, ask_size, out, 0)


# --- trade-flow imbalance: block [w, count, signed sum, pos, sum, pos, rings(w, w)] ----------


def trade_imbalance_size(window: int) -> int:
    """Return the state block length of trade-flow imbalance over `window` trades."""
    return 6 + 2 * window


def trade_imbalance_init(s: np.ndarray, o: int, window: int) -> None:
    """Write a fresh trade-flow imbalance block at `s[o:]`."""
    check_period(window)
    s[o : o + trade_imbalance_size(window)] = 0.0
    s[o] = window


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _imbalance(signed: float, total: float) -> float:
    return signed / total if total > 0.0 else NAN


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def trade_imbalance_step(s: np.ndarray, o: int, size: float, side: float) -> float:
    """Feed one trade to the block at `o`; return (buy - sell) / total volume over the window."""
    w = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    signed = window_sum_signed(s, o + 2, o + 6, w, count, side * size)
    total = window_sum_nonneg(s, o + 4, o + 6 + w, w, count, size)
    if count < w:
        return NAN
    return _imbalance(signed, total)


@njit(cache=True, nogil=True, error_model="numpy")
def trade_imbalance(size: np.ndarray, side: np.ndarray, window: int) -> np.ndarray:
    """Return trade-flow imbalance over the last `window` trades."""
    if window < 1:
        raise ValueError("window must be >= 1")
    signed = rolling_sum_signed(side * size, window)
    total = rolling_sum_nonneg(size, window)
    out = np.full(size.size, NAN)
    for i in range(window - 1, size.size):
        out[i] = _imbalance(signed[i], total[i])
    return out


def trade_imbalance_state(window: int) -> np.ndarray:
    """Return a fresh state for `trade_imbalance_update`."""
    s = np.zeros(trade_imbalance_size(window))
    trade_imbalance_init(s, 0, window)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def trade_imbalance_update(state: np.ndarray, size: float, side: float) -> float:
    """Feed one trade; return the trade-flow imbalance or NaN."""
    return trade_imbalance_step(state, 0, size, side)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    n = 8
    bid = np.linspace(1.0, 1.1, n)
    size = np.ones(n)
    side = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    book = np.array([[1.0, 0.9], [2.0, 1.0], [1.1, 1.2], [1.0, 3.0]])
    top_of_book(bid, size, bid + 0.01, size)
    depth_imbalance(np.ones((n, 2)), np.ones((n, 2)), 2)
    depth_imbalance_one(book, 2)
    microprice_one(1.0, 2.0, 1.1, 1.0)
    ofi(bid, size, bid + 0.01, size, 3)
    ofi_update(ofi_state(3), 1.0, 1.0, 1.1, 1.0, np.empty(2))
    trade_imbalance(size, side, 3)
    trade_imbalance_update(trade_imbalance_state(3), 1.0, 1.0)
