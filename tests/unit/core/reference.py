"""Plain-Python references for the kernels TA-Lib has no equivalent for.

Each is written from the published definition, not from the kernels: plain loops over lists,
sums with `math.fsum` (exactly rounded), no running sums. NaN marks "not defined yet".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np

NAN = math.nan
F = Sequence[float]


def wilder_atr(high: F, low: F, close: F, n: int) -> list[float]:
    """Wilder (1978), "New Concepts in Technical Trading Systems": ATR, SMA-seeded."""
    tr = [NAN] + [max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
                  for i in range(1, len(close))]
    out = [NAN] * len(close)
    if len(close) <= n:
        return out
    atr = math.fsum(tr[1 : n + 1]) / n
    out[n] = atr
    for i in range(n + 1, len(close)):
        atr = (atr * (n - 1) + tr[i]) / n
        out[i] = atr
    return out


def supertrend(high: F, low: F, close: F, n: int, mult: float) -> tuple[list[float], list[float]]:
    """SuperTrend (O. Seban) as TradingView's `ta.supertrend` reference script computes it.

    Returns the line and the direction, +1 when the close is above the line (TradingView
    reports that as -1).
    """
    atr = wilder_atr(high, low, close, n)
    line = [NAN] * len(close)
    direction = [NAN] * len(close)
    prev_upper = prev_lower = 0.0
    prev_line = NAN
    for i in range(len(close)):
        if math.isnan(atr[i]):
            continue
        hl2 = (high[i] + low[i]) / 2
        upper = hl2 + mult * atr[i]
        lower = hl2 - mult * atr[i]
        lower = lower if lower > prev_lower or close[i - 1] < prev_lower else prev_lower
        upper = upper if upper < prev_upper or close[i - 1] > prev_upper else prev_upper
        if math.isnan(prev_line):
            tv_dir = 1  # TradingView: na(atr[1]) starts in a down trend
        elif prev_line == prev_upper:
            tv_dir = -1 if close[i] > upper else 1
        else:
            tv_dir = 1 if close[i] < lower else -1
        line[i] = lower if tv_dir == -1 else upper
        direction[i] = -float(tv_dir)
        prev_upper, prev_lower, prev_line = upper, lower, line[i]
    return line, direction


def _window(x: F, i: int, n: int) -> list[float]:
    return list(x[i - n + 1 : i + 1])


def mean_pstd(w: F) -> tuple[float, float]:
    """Return mean and population standard deviation (two pass, exactly rounded sums)."""
    m = math.fsum(w) / len(w)
    return m, math.sqrt(math.fsum((v - m) ** 2 for v in w) / len(w))


def bollinger(x: F, n: int, k: float) -> list[tuple[float, ...]]:
    """Bollinger (2001): SMA +/- k population std; %b and bandwidth from the same bands."""
    out: list[tuple[float, ...]] = [(NAN,) * 5] * len(x)
    for i in range(n - 1, len(x)):
        m, sd = mean_pstd(_window(x, i, n))
        up, lo = m + k * sd, m - k * sd
        pctb = (x[i] - lo) / (up - lo) if sd > 0 else NAN
        out[i] = (up, m, lo, pctb, (up - lo) / m)
    return out


def zscore(x: F, n: int) -> list[float]:
    """(x - mean) / population std over the last n values."""
    out = [NAN] * len(x)
    for i in range(n - 1, len(x)):
        m, sd = mean_pstd(_window(x, i, n))
        out[i] = (x[i] - m) / sd if sd > 0 else NAN
    return out


def realized_vol(close: F, n: int) -> list[float]:
    """Andersen and Bollerslev (1998): sqrt of the sum of the last n squared log returns."""
    r = [NAN] + [math.log(close[i] / close[i - 1]) for i in range(1, len(close))]
    return [math.sqrt(math.fsum(v * v for v in r[i - n + 1 : i + 1])) if i >= n else NAN
            for i in range(len(close))]


def rolling_vwap(high: F, low: F, close: F, volume: F, n: int) -> tuple[list[float], list[float]]:
    """Rolling VWAP over n bars from the typical price, and close / vwap - 1."""
    tp = [(h + lo + c) / 3 for h, lo, c in zip(high, low, close, strict=True)]
    vwap = [NAN] * len(close)
    dev = [NAN] * len(close)
    for i in range(n - 1, len(close)):
        v = math.fsum(volume[i - n + 1 : i + 1])
        if v > 0:
            vwap[i] = math.fsum(p * q for p, q in zip(tp[i - n + 1 : i + 1],
                                                      volume[i - n + 1 : i + 1], strict=True)) / v
            dev[i] = close[i] / vwap[i] - 1
    return vwap, dev


# --- microstructure ---------------------------------------------------------------------------


def microprice(bid: float, bid_size: float, ask: float, ask_size: float) -> float:
    """Gatheral and Oomen (2010): size-weighted mid."""
    return (bid * ask_size + ask * bid_size) / (bid_size + ask_size)


def depth_imbalance(bid_sizes: F, ask_sizes: F, depth: int) -> float:
    """(bid - ask volume) / (bid + ask volume) over the top `depth` levels."""
    b = math.fsum(bid_sizes[:depth])
    a = math.fsum(ask_sizes[:depth])
    return (b - a) / (b + a)


def ofi(bid: F, bid_size: F, ask: F, ask_size: F, window: int) -> tuple[list[float], list[float]]:
    """Cont, Kukanov and Stoikov (2014), eq. 2, per event and summed over `window` events."""
    e = [NAN]
    for i in range(1, len(bid)):
        v = 0.0
        v += bid_size[i] if bid[i] >= bid[i - 1] else 0.0
        v -= bid_size[i - 1] if bid[i] <= bid[i - 1] else 0.0
        v -= ask_size[i] if ask[i] <= ask[i - 1] else 0.0
        v += ask_size[i - 1] if ask[i] >= ask[i - 1] else 0.0
        e.append(v)
    total = [math.fsum(e[i - window + 1 : i + 1]) if i >= window else NAN for i in range(len(e))]
    return e, total


def trade_imbalance(size: F, side: F, window: int) -> list[float]:
    """(buy - sell volume) / volume over the last `window` trades."""
    out = [NAN] * len(size)
    for i in range(window - 1, len(size)):
        s = size[i - window + 1 : i + 1]
        d = side[i - window + 1 : i + 1]
        total = math.fsum(s)
        out[i] = math.fsum(q * sd for q, sd in zip(s, d, strict=True)) / total if total else NAN
    return out


def vpin(size: F, side: F, bucket: float, buckets: int) -> list[float]:
    """Easley, Lopez de Prado and O'Hara (2012): equal-volume buckets, trades split across them."""
    imbalances: list[float] = []
    buy = sell = filled = 0.0
    out = []
    for q, sd in zip(size, side, strict=True):
        fb = 1.0 if sd > 0 else 0.0 if sd < 0 else 0.5
        left = q
        while left > 0:
            room = bucket - filled
            take = min(left, room)
            buy += take * fb
            sell += take * (1 - fb)
            filled += take
            left -= take
            if take == room:
                imbalances.append(abs(buy - sell))
                buy = sell = filled = 0.0
        last = imbalances[-buckets:]
        out.append(math.fsum(last) / (buckets * bucket) if len(imbalances) >= buckets else NAN)
    return out


def kyle_lambda(price: F, size: F, side: F, window: int) -> list[float]:
    """Lopez de Prado (2018) 19.3.1: OLS slope of price change on signed volume."""
    out = [NAN] * len(price)
    q = [NAN] + [side[i] * size[i] for i in range(1, len(price))]
    dp = [NAN] + [price[i] - price[i - 1] for i in range(1, len(price))]
    for i in range(window, len(price)):
        xs, ys = q[i - window + 1 : i + 1], dp[i - window + 1 : i + 1]
        mx, my = math.fsum(xs) / window, math.fsum(ys) / window
        sxx = math.fsum((x - mx) ** 2 for x in xs)
        if sxx > 0:
            out[i] = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return out


# --- risk -------------------------------------------------------------------------------------


def quantile7(xs: F, p: float) -> float:
    """Hyndman and Fan (1996) definition 7: linear interpolation of order statistics."""
    s = sorted(xs)
    h = (len(s) - 1) * p
    lo = math.floor(h)
    return s[lo] + (h - lo) * (s[lo + 1] - s[lo]) if lo + 1 < len(s) else s[lo]


def var_es_historical(r: F, alpha: float, horizon: int) -> tuple[float, float]:
    """Historical VaR (-Q(1-alpha)) and Acerbi-Tasche (2002) ES, times sqrt(horizon)."""
    s = sorted(r)
    m = len(s) * (1 - alpha)
    whole = math.floor(m)
    tail = math.fsum(s[:whole]) + ((m - whole) * s[whole] if whole < len(s) else 0.0)
    scale = math.sqrt(horizon)
    return -quantile7(r, 1 - alpha) * scale, -tail / m * scale


def var_es_normal(mean: float, std: float, alpha: float, horizon: int) -> tuple[float, float]:
    """Normal VaR and ES (Jorion 2007) with the standard library's NormalDist."""
    nd = statistics.NormalDist()
    z = nd.inv_cdf(alpha)
    s = std * math.sqrt(horizon)
    return z * s - mean * horizon, s * nd.pdf(z) / (1 - alpha) - mean * horizon


def var_es_monte_carlo(r: F, alpha: float, horizon: int, sims: int,
                       seed: int) -> tuple[float, float]:
    """Compounded normal paths from numpy's legacy Mersenne Twister (the one numba mirrors)."""
    mean, std = statistics.fmean(r), statistics.stdev(r)
    rng = np.random.RandomState(seed)
    paths = []
    for _ in range(sims):
        growth = 1.0
        for _ in range(horizon):
            growth *= 1.0 + mean + std * float(rng.standard_normal())
        paths.append(growth - 1.0)
    return var_es_historical(paths, alpha, 1)


def sharpe_sortino(r: F, rf: float, periods: float) -> tuple[float, float]:
    """Sharpe (1994) with the sample std; Sortino and Price (1994) downside deviation."""
    mean = statistics.fmean(r)
    sd = statistics.stdev(r)
    down = math.sqrt(math.fsum(min(v - rf, 0.0) ** 2 for v in r) / len(r))
    scale = math.sqrt(periods)
    return ((mean - rf) / sd * scale if sd > 0 else NAN,
            (mean - rf) / down * scale if down > 0 else NAN)


def correlation_matrix(rows: Sequence[F]) -> list[list[float]]:
    """Pearson correlation of each pair of columns (statistics.correlation)."""
    cols = list(zip(*rows, strict=True))
    return [[statistics.correlation(a, b) for b in cols] for a in cols]


def covariance_matrix(rows: Sequence[F]) -> list[list[float]]:
    """Sample covariance of each pair of columns (statistics.covariance)."""
    cols = list(zip(*rows, strict=True))
    return [[statistics.covariance(a, b) for b in cols] for a in cols]


# --- bars -------------------------------------------------------------------------------------


def bars(ts: Sequence[int], price: F, size: F, side: F, kind: str,
         threshold: float) -> list[tuple[int, int, tuple[float, ...]]]:
    """Group valid, time-ordered trades into bars; (open time, close time, 9 values)."""
    groups: list[list[int]] = []
    last = 0
    reached = 0.0
    key = None
    for i in range(len(ts)):
        if not (price[i] > 0 and math.isfinite(price[i]) and size[i] >= 0
                and math.isfinite(size[i]) and side[i] in (-1.0, 0.0, 1.0) and ts[i] >= last):
            continue
        last = ts[i]
        start = ts[i] // int(threshold) * int(threshold) if kind == "time" else None
        closed = start != key if kind == "time" else reached >= threshold
        if not groups or closed:
            groups.append([])
            reached = 0.0
            key = start
        groups[-1].append(i)
        reached += size[i] if kind == "volume" else price[i] * size[i]
    out = []
    for g in groups:
        vol = math.fsum(size[i] for i in g)
        values = (price[g[0]], max(price[i] for i in g), min(price[i] for i in g), price[g[-1]],
                  vol, math.fsum(price[i] * size[i] for i in g) / vol if vol > 0 else NAN,
                  float(len(g)), math.fsum(size[i] for i in g if side[i] > 0),
                  math.fsum(size[i] for i in g if side[i] < 0))
        if kind == "time":
            t0 = ts[g[0]] // int(threshold) * int(threshold)
            out.append((t0, t0 + int(threshold), values))
        else:
            out.append((ts[g[0]], ts[g[-1]], values))
    return out
