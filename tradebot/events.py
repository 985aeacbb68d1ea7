"""Every message on the bus: immutable facts with venue and local timestamps (int64 ns).

`ts_event` is the venue's time, `ts_init` the time this process received or created the fact.
Book levels travel as integer units (see `Instrument.price_from_units`), never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from tradebot.domain import InstrumentId, Liquidity, Side, TradingState
from tradebot.domain import TimeInForce as TimeInForce  # re-exported for existing importers
from tradebot.domain import TriggerType as TriggerType
from tradebot.order import OrderSpec, OrderState

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """A public trade printed by the venue."""

    instrument: InstrumentId
    price: float
    size: float
    aggressor: Side
    trade_id: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """A completed time bar built from public trades; `ts_event` is when it closed (ns).

    `vwap` is NaN when the bar's volume is zero; `buy_volume`/`sell_volume` count the trades
    whose aggressor the venue told.
    """

    instrument: InstrumentId
    interval_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trades: int
    buy_volume: float
    sell_volume: float
    ts_open: int
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """The venue's best bid and offer message (Binance `bookTicker`)."""

    instrument: InstrumentId
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkPrice:
    """A perpetual's mark price, and its index price where the venue sends one."""

    instrument: InstrumentId
    mark_price: float
    index_price: float | None
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingRate:
    """A perpetual's current funding rate (a fraction per funding interval).

    `next_funding_ns` is when that rate is next charged, None when the venue does not say.
    """

    instrument: InstrumentId
    rate: float
    next_funding_ns: int | None
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BookSnapshot:
    """A full L2 book image: `bids`/`asks` are (n, 2) int64 arrays of (price units, size units)."""

    instrument: InstrumentId
    bids: IntArray
    asks: IntArray
    sequence: int
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BookDelta:
    """An incremental L2 update.

    `levels` is an (n, 3) int64 array of (side, price units, size units), side 1 bid / -1 ask,
    size 0 deleting the level. `first_seq`/`last_seq` are the venue's update id range and
    `prev_seq` the last id of the previous update where the venue sends it (else -1).
    """

    instrument: InstrumentId
    levels: IntArray
    first_seq: int
    last_seq: int
    prev_seq: int
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BookUpdated:
    """The local book of an instrument changed and is valid; prices as floats for features."""

    instrument: InstrumentId
    best_bid: float
    best_bid_size: float
    best_ask: float
    best_ask_size: float
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BookInvalidated:
    """The local book can no longer be trusted (gap, crossed, stale, disconnect) until resynced."""

    instrument: InstrumentId
    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedStatus:
    """A feed connection changed state (connecting, connected, disconnected)."""

    venue: str
    state: str
    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent:
    """A wish to trade (`spec`); risk and execution decide what happens to it."""

    intent_id: str
    spec: OrderSpec
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderDenied:
    """Risk refused an intent; `rule` is from a bounded set, `reason` explains the numbers."""

    intent: OrderIntent
    rule: str
    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitOrder:
    """Risk approved an intent: the execution client must submit this order."""

    order_id: str
    intent: OrderIntent
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrder:
    """A strategy asks the venue to cancel the rest of one of its open orders."""

    order_id: str
    strategy: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AmendOrder:
    """A strategy asks the venue to change an open order's quantity and/or limit price.

    A new price or a larger quantity loses the order's queue priority; a smaller one keeps it.
    """

    order_id: str
    strategy: str
    quantity: Decimal | None
    limit_price: Decimal | None
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdated:
    """An order changed state in the execution engine's state machine; `state` is the new one."""

    state: OrderState
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """An execution: `price` is the average over the `levels` walked (price, size) pairs."""

    fill_id: str
    order_id: str
    strategy: str
    instrument: InstrumentId
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    levels: tuple[tuple[Decimal, Decimal], ...]
    slippage_bps: float
    ts_event: int
    ts_init: int
    # Why the simulator filled it (execution/paper.py): `model` is how the fill happened
    # (taker walk, queue, trade_through, cross, liquidation) and the queue model used;
    # queue sizes are in base units/contracts ahead of the order, None for taker fills.
    model: str = ""
    queue_ahead_entry: Decimal | None = None
    queue_ahead_fill: Decimal | None = None
    entry_latency_ns: int = 0
    response_latency_ns: int = 0
    arrival_mid: Decimal | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class FillFlagged:
    """A fill was found likely toxic after the fact (an adverse move within the window)."""

    fill_id: str
    flag: str
    detail: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingPayment:
    """Funding settled on a perpetual position; `amount` > 0 was paid, < 0 was received."""

    instrument: InstrumentId
    position: Decimal
    mark_price: Decimal
    rate: Decimal
    amount: Decimal
    currency: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EquitySnapshot:
    """A point on the equity curve, in the account currency, with the marks it used."""

    currency: str
    equity: Decimal
    cash: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    ts_event: int
    ts_init: int
    # The mark of each open position, stored so a restart values positions as before the stop
    # until the first book arrives.
    marks: tuple[tuple[InstrumentId, Decimal], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingStateChanged:
    """The risk engine moved between ACTIVE, REDUCING and HALTED."""

    state: TradingState
    reason: str
    ts_event: int
    ts_init: int
