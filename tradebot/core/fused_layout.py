"""Layout of the packed feature state that the fused kernels in `fused.py` update.

Built once in Python per parameter set: feature names (`<indicator>_<params>`, lower case, as
the `features` command writes them), the inputs each feature needs before it is defined, and
the offsets of every indicator's state block. The offsets are written into the head of each
fresh state array, so a kernel call needs nothing but the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tradebot.core import indicators as ind
from tradebot.core import indicators_adx as adx
from tradebot.core import indicators_stats as stats
from tradebot.core import indicators_stoch as stoch
from tradebot.core import indicators_trend as trend
from tradebot.core import indicators_volume as vol
from tradebot.core import microstructure as micro
from tradebot.core import microstructure_flow as flow

# Block order in the bar state head; `fused.update_bar` reads offsets by these indices. The
# last head slot holds the state's length, which the kernels check before touching anything.
SMA, EMA, WMA, RSI, MACD, ATR, BB, ST, STOCH, ADX, OBV, VWAP, RV, Z, ROC, BAR_SIZE = range(16)
BAR_HEAD = 16
BAR_OUT = 26
# Micro state head: [depth, block offsets, length].
M_DEPTH, M_OFI, M_TFI, M_VPIN, M_KYLE, M_SIZE = range(6)
MICRO_HEAD = 6
MICRO_OUT = 9

BAR_INPUT = ("open", "high", "low", "close", "volume")


def _p(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True, slots=True)
class BarFeatureParams:
    """Parameters of the per-bar feature set (the defaults are the `features` command's)."""

    sma: int = 20
    ema: int = 20
    wma: int = 20
    rsi: int = 14
    macd: tuple[int, int, int] = (12, 26, 9)
    atr: int = 14
    bollinger: tuple[int, float] = (20, 2.0)
    supertrend: tuple[int, float] = (10, 3.0)
    stoch: tuple[int, int, int] = (14, 3, 3)
    adx: int = 14
    vwap: int = 20
    realized_vol: int = 20
    zscore: int = 20
    roc: int = 10


@dataclass(frozen=True, slots=True)
class MicroFeatureParams:
    """Parameters of the per-event microstructure feature set."""

    depth: int = 5
    ofi_window: int = 100
    trade_window: int = 100
    vpin_bucket_volume: float = 1.0
    vpin_buckets: int = 50
    kyle_window: int = 100


@dataclass(frozen=True, slots=True, eq=False)
class FeatureLayout:
    """Names, warm-up lengths and state layout of one fused kernel's feature set.

    `warmup[i]` is how many inputs of kind `inputs[i]` ("bar", "book" or "trade") the feature
    needs before it can be defined (for VPIN a lower bound: it waits for full buckets).
    """

    names: tuple[str, ...]
    warmup: tuple[int, ...]
    inputs: tuple[str, ...]
    blocks: tuple[tuple[str, int, int], ...]  # (name, offset, length)
    template: np.ndarray = field(repr=False)

    @property
    def state_size(self) -> int:
        """Return the length of a state array."""
        return int(self.template.size)

    def new_state(self) -> np.ndarray:
        """Return a fresh state array (no inputs seen)."""
        return self.template.copy()

    def new_out(self) -> np.ndarray:
        """Return an output array of NaN, one slot per feature."""
        return np.full(len(self.names), np.nan)

    def index(self, name: str) -> int:
        """Return the output slot of feature `name`."""
        return self.names.index(name)


def _pack(
    head: list[float], specs: list[tuple[str, int, object]]
) -> tuple[np.ndarray, tuple[tuple[str, int, int], ...]]:
    # specs: (block name, length, init(s, offset)); offsets follow the head in order.
    offset = len(head)
    blocks = []
    for name, size, _ in specs:
        blocks.append((name, offset, size))
        offset += size
    s = np.zeros(offset)
    s[: len(head)] = head
    for (_, off, _), (_, _, init) in zip(blocks, specs, strict=True):
        init(s, off)  # type: ignore[operator]
    return s, tuple(blocks)


def _bar_specs(p: BarFeatureParams) -> list[tuple[str, int, object]]:
    f, sl, sg = p.macd
    bn, bk = p.bollinger
    tn, tk = p.supertrend
    k, ks, d = p.stoch
    return [
        ("sma", ind.sma_size(p.sma), lambda s, o: ind.sma_init(s, o, p.sma)),
        ("ema", ind.ema_size(p.ema), lambda s, o: ind.ema_init(s, o, p.ema)),
        ("wma", ind.wma_size(p.wma), lambda s, o: ind.wma_init(s, o, p.wma)),
        ("rsi", ind.rsi_size(p.rsi), lambda s, o: ind.rsi_init(s, o, p.rsi)),
        ("macd", trend.macd_size(f, sl, sg), lambda s, o: trend.macd_init(s, o, f, sl, sg)),
        ("atr", trend.atr_size(p.atr), lambda s, o: trend.atr_init(s, o, p.atr)),
        ("bb", stats.bollinger_size(bn, bk), lambda s, o: stats.bollinger_init(s, o, bn, bk)),
        ("st", trend.supertrend_size(tn, tk), lambda s, o: trend.supertrend_init(s, o, tn, tk)),
        ("stoch", stoch.stoch_size(k, ks, d), lambda s, o: stoch.stoch_init(s, o, k, ks, d)),
        ("adx", adx.adx_size(p.adx), lambda s, o: adx.adx_init(s, o, p.adx)),
        ("obv", vol.obv_size(), lambda s, o: vol.obv_init(s, o)),
        ("vwap", vol.vwap_size(p.vwap), lambda s, o: vol.vwap_init(s, o, p.vwap)),
        ("rv", stats.realized_vol_size(p.realized_vol),
         lambda s, o: stats.realized_vol_init(s, o, p.realized_vol)),
        ("zscore", stats.zscore_size(p.zscore), lambda s, o: stats.zscore_init(s, o, p.zscore)),
        ("roc", stats.roc_size(p.roc), lambda s, o: stats.roc_init(s, o, p.roc)),
    ]


def _shares_window(p: BarFeatureParams) -> bool:
    # The z-score reads the Bollinger block's mean and m2 when both use the same window.
    return p.zscore == p.bollinger[0]


def _bar_features(p: BarFeatureParams) -> list[tuple[str, int]]:
    f, sl, sg = p.macd
    macd = f"{f}_{sl}_{sg}"
    bb = f"{p.bollinger[0]}_{_p(p.bollinger[1])}"
    st = f"{p.supertrend[0]}_{_p(p.supertrend[1])}"
    k, ks, d = p.stoch
    sto = f"{k}_{ks}_{d}"
    return [
        (f"sma_{p.sma}", p.sma), (f"ema_{p.ema}", p.ema), (f"wma_{p.wma}", p.wma),
        (f"rsi_{p.rsi}", p.rsi + 1),
        (f"macd_{macd}", sl), (f"macd_signal_{macd}", sl + sg - 1),
        (f"macd_hist_{macd}", sl + sg - 1),
        (f"atr_{p.atr}", p.atr + 1),
        *[(f"bb_{part}_{bb}", p.bollinger[0])
          for part in ("upper", "middle", "lower", "pctb", "width")],
        (f"supertrend_{st}", p.supertrend[0] + 1), (f"supertrend_dir_{st}", p.supertrend[0] + 1),
        (f"stoch_k_{sto}", k + ks - 1), (f"stoch_d_{sto}", k + ks + d - 2),
        (f"adx_{p.adx}", 2 * p.adx), (f"plus_di_{p.adx}", p.adx + 1),
        (f"minus_di_{p.adx}", p.adx + 1),
        ("obv", 1),
        (f"vwap_{p.vwap}", p.vwap), (f"vwap_dev_{p.vwap}", p.vwap),
        (f"rv_{p.realized_vol}", p.realized_vol + 1),
        (f"zscore_{p.zscore}", p.zscore),
        (f"roc_{p.roc}", p.roc + 1),
    ]


def bar_layout(params: BarFeatureParams | None = None) -> FeatureLayout:
    """Return the layout of the per-bar feature set for `params` (defaults if None)."""
    p = params or BarFeatureParams()
    features = _bar_features(p)
    specs = _bar_specs(p)
    if _shares_window(p):
        specs[Z] = ("zscore", 0, lambda s, o: None)
    template, blocks = _pack([0.0] * BAR_HEAD, specs)
    for i, (_, off, _) in enumerate(blocks):
        template[i] = off
    if _shares_window(p):
        template[Z] = -1.0
        blocks = tuple(b for b in blocks if b[2] > 0)
    template[BAR_SIZE] = template.size
    return FeatureLayout(
        names=tuple(n for n, _ in features),
        warmup=tuple(w for _, w in features),
        inputs=("bar",) * len(features),
        blocks=blocks,
        template=template,
    )


def micro_layout(params: MicroFeatureParams | None = None) -> FeatureLayout:
    """Return the layout of the per-event microstructure feature set (defaults if None)."""
    p = params or MicroFeatureParams()
    if p.depth < 1:
        raise ValueError(f"depth must be >= 1, got {p.depth}")
    specs: list[tuple[str, int, object]] = [
        ("ofi", micro.ofi_size(p.ofi_window), lambda s, o: micro.ofi_init(s, o, p.ofi_window)),
        ("trade_imbalance", micro.trade_imbalance_size(p.trade_window),
         lambda s, o: micro.trade_imbalance_init(s, o, p.trade_window)),
        ("vpin", flow.vpin_size(p.vpin_bucket_volume, p.vpin_buckets),
         lambda s, o: flow.vpin_init(s, o, p.vpin_bucket_volume, p.vpin_buckets)),
        ("kyle", flow.kyle_lambda_size(p.kyle_window),
         lambda s, o: flow.kyle_lambda_init(s, o, p.kyle_window)),
    ]
    template, blocks = _pack([float(p.depth)] + [0.0] * (MICRO_HEAD - 1), specs)
    for i, (_, off, _) in enumerate(blocks):
        template[M_OFI + i] = off
    template[M_SIZE] = template.size
    vpin = f"vpin_{_p(p.vpin_bucket_volume)}_{p.vpin_buckets}"
    features = [
        ("spread", 1, "book"), ("mid", 1, "book"), ("microprice", 1, "book"),
        (f"depth_imbalance_{p.depth}", 1, "book"),
        ("ofi", 2, "book"), (f"ofi_{p.ofi_window}", p.ofi_window + 1, "book"),
        (f"trade_imbalance_{p.trade_window}", p.trade_window, "trade"),
        (vpin, 1, "trade"),
        (f"kyle_lambda_{p.kyle_window}", p.kyle_window + 1, "trade"),
    ]
    return FeatureLayout(
        names=tuple(n for n, _, _ in features),
        warmup=tuple(w for _, w, _ in features),
        inputs=tuple(k for _, _, k in features),
        blocks=blocks,
        template=template,
    )
