"""Every message on the bus: immutable facts with venue and local timestamps (int64 ns).

`ts_event` is the venue's time, `ts_init` the time this process received or created the fact.
Book levels travel as integer units (see `Instrument.price_from_units`), never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from tradebot.domain import InstrumentId, Liquidity, OrderStatus, OrderType, Side, TradingState

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
    """A strategy's wish to trade; risk and execution decide what happens to it."""

    intent_id: str
    strategy: str
    instrument: InstrumentId
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    reduce_only: bool
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
class OrderUpdated:
    """An order changed state in the execution engine's state machine."""

    order_id: str
    strategy: str
    instrument: InstrumentId
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    status: OrderStatus
    filled_quantity: Decimal
    average_price: Decimal | None
    reason: str
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


@dataclass(frozen=True, slots=True, kw_only=True)
class EquitySnapshot:
    """A point on the equity curve, in the account currency."""

    currency: str
    equity: Decimal
    cash: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingStateChanged:
    """The risk engine moved between ACTIVE, REDUCING and HALTED."""

    state: TradingState
    reason: str
    ts_event: int
    ts_init: int
