"""The strategy interface and the one wrapper through which every strategy call goes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import structlog
from prometheus_client import Counter

from tradebot.book import BookView
from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.domain import (
    Instrument,
    InstrumentId,
    OrderType,
    PortfolioView,
    Side,
    TimeInForce,
    TriggerType,
)
from tradebot.errors import InvariantError
from tradebot.events import (
    AmendOrder,
    Bar,
    BookInvalidated,
    BookUpdated,
    CancelOrder,
    Fill,
    OrderDenied,
    OrderIntent,
    OrderUpdated,
    Trade,
)
from tradebot.log import Throttle
from tradebot.order import IdGenerator, OrderSpec

log = structlog.get_logger(__name__)

STRATEGY_ERRORS = Counter(
    "tradebot_strategy_errors_total", "Exceptions raised by strategy code", ["strategy"]
)
STRATEGY_INTENTS = Counter(
    "tradebot_strategy_intents_total", "Order intents emitted", ["strategy"]
)


class StrategyError(Exception):
    """A strategy raised: the call is abandoned, the daemon continues."""


class Strategy:
    """Base of all strategies; subclasses override the `on_*` hooks they need."""

    def __init__(self, name: str, params: Mapping[str, Any]) -> None:
        self.name = name
        self.params = dict(params)
        self.ctx: StrategyContext

    def bind(self, ctx: StrategyContext) -> None:
        """Receive the context (called once by the runner)."""
        self.ctx = ctx

    def on_start(self) -> None:
        """Run once before the first event."""

    def on_stop(self) -> None:
        """Run once at shutdown."""

    def on_book(self, event: BookUpdated) -> None:
        """React to a valid book update."""

    def on_book_invalid(self, event: BookInvalidated) -> None:
        """React to a book becoming invalid."""

    def on_trade(self, event: Trade) -> None:
        """React to a public trade."""

    def on_bar(self, event: Bar) -> None:
        """React to a completed time bar (its features are already updated)."""

    def on_order(self, event: OrderUpdated) -> None:
        """React to one of this strategy's orders changing state."""

    def on_fill(self, event: Fill) -> None:
        """React to one of this strategy's fills."""

    def on_denied(self, event: OrderDenied) -> None:
        """React to one of this strategy's intents being denied by risk."""


FeaturesOf = Callable[[InstrumentId], Mapping[str, float]]


def _no_features(_instrument: InstrumentId) -> Mapping[str, float]:
    return {}


class StrategyContext:
    """What a strategy can do: read the clock, instruments, portfolio and features; emit
    intents."""

    def __init__(self, name: str, bus: Bus, clock: Clock, portfolio: PortfolioView,
                 instruments: Mapping[InstrumentId, Instrument],
                 features: FeaturesOf = _no_features,
                 books: Mapping[InstrumentId, BookView] | None = None) -> None:
        self.name = name
        self._features = features
        self._books: Mapping[InstrumentId, BookView] = books or {}
        self.clock = clock
        self.portfolio = portfolio
        self.instruments = instruments
        self._bus = bus
        self._ids = IdGenerator(name)
        self._intent_metric = STRATEGY_INTENTS.labels(name)

    def features(self, instrument: InstrumentId) -> Mapping[str, float]:
        """Return the read-only features of `instrument`: name -> value, NaN until warm."""
        return self._features(instrument)

    def book(self, instrument: InstrumentId) -> BookView | None:
        """Return the read-only L2 book of `instrument` (None when no feed follows it).

        Check `valid` before reading it: a book is valid only while its feed is synced.
        """
        return self._books.get(instrument)

    def submit(self, instrument: InstrumentId, side: Side, quantity: Decimal, *,
               order_type: OrderType = OrderType.MARKET, limit_price: Decimal | None = None,
               reduce_only: bool = False, time_in_force: TimeInForce = TimeInForce.GTC,
               post_only: bool = False, trigger: TriggerType | None = None,
               trigger_price: Decimal | None = None, intent_id: str | None = None) -> str:
        """Emit an order intent; return its id. Risk decides what happens to it."""
        now = self.clock.now_ns()
        intent_id = intent_id or self._ids.next(now)
        self._intent_metric.inc()
        spec = OrderSpec(strategy=self.name, instrument=instrument, side=side, quantity=quantity,
                         order_type=order_type, limit_price=limit_price, reduce_only=reduce_only,
                         time_in_force=time_in_force, post_only=post_only, trigger=trigger,
                         trigger_price=trigger_price)
        self._bus.publish(OrderIntent(intent_id=intent_id, spec=spec, ts_event=now, ts_init=now))
        return intent_id

    def cancel(self, order_id: str) -> None:
        """Ask the venue to cancel the rest of one of this strategy's open orders."""
        now = self.clock.now_ns()
        self._bus.publish(CancelOrder(order_id=order_id, strategy=self.name, ts_event=now,
                                      ts_init=now))

    def amend(self, order_id: str, *, quantity: Decimal | None = None,
              limit_price: Decimal | None = None) -> None:
        """Ask the venue to change an open order's quantity and/or limit price."""
        now = self.clock.now_ns()
        self._bus.publish(AmendOrder(order_id=order_id, strategy=self.name, quantity=quantity,
                                     limit_price=limit_price, ts_event=now, ts_init=now))


_MARKET_HOOKS: tuple[tuple[type, str], ...] = (
    (BookUpdated, "on_book"), (BookInvalidated, "on_book_invalid"), (Trade, "on_trade"),
    (Bar, "on_bar"))


class StrategyRunner:
    """Deliver bus events to strategies through one exception-catching wrapper."""

    def __init__(self, bus: Bus, clock: Clock, portfolio: PortfolioView,
                 instruments: Mapping[InstrumentId, Instrument],
                 features: FeaturesOf = _no_features,
                 books: Mapping[InstrumentId, BookView] | None = None) -> None:
        self._bus = bus
        self._features = features
        self._books = books
        self._clock = clock
        self._portfolio = portfolio
        self._instruments = instruments
        self._strategies: list[tuple[Strategy, frozenset[InstrumentId] | None]] = []
        # Market-data hook -> the strategies that override it (a no-op hook costs a call
        # per event otherwise); a topic no strategy handles is not subscribed at all.
        self._listeners: dict[str, list[tuple[Strategy, frozenset[InstrumentId] | None]]] = {
            hook: [] for _, hook in _MARKET_HOOKS}
        self._subscribed: set[str] = set()
        self._running = False
        self._throttle = Throttle(30.0)

    def add(self, strategy: Strategy, instruments: frozenset[InstrumentId] | None) -> None:
        """Register a strategy for `instruments` (None: all)."""
        strategy.bind(StrategyContext(strategy.name, self._bus, self._clock, self._portfolio,
                                      self._instruments, self._features, self._books))
        self._strategies.append((strategy, instruments))
        if self._running:
            self._subscribe_market()

    @property
    def strategies(self) -> list[Strategy]:
        """Return the registered strategies."""
        return [s for s, _ in self._strategies]

    def start(self) -> None:
        """Subscribe to the bus and call every strategy's `on_start`."""
        bus = self._bus
        self._subscribe_market()
        bus.subscribe(OrderUpdated,
                      lambda e: self._own(e, e.state.order.spec.strategy, "on_order"))
        bus.subscribe(Fill, lambda e: self._own(e, e.strategy, "on_fill"))
        bus.subscribe(OrderDenied, lambda e: self._own(e, e.intent.spec.strategy, "on_denied"))
        self._running = True
        for strategy, _ in self._strategies:
            self._call(strategy, strategy.on_start)

    def stop(self) -> None:
        """Stop delivering events and call every strategy's `on_stop`."""
        if not self._running:
            return
        self._running = False
        for strategy, _ in self._strategies:
            self._call(strategy, strategy.on_stop)

    def _subscribe_market(self) -> None:
        for topic, hook in _MARKET_HOOKS:
            listeners = self._listeners[hook]
            listeners[:] = [(s, wanted) for s, wanted in self._strategies
                            if getattr(type(s), hook) is not getattr(Strategy, hook)]
            if listeners and hook not in self._subscribed:
                self._subscribed.add(hook)
                self._bus.subscribe(topic, self._market_handler(hook, listeners))

    def _market_handler(self, hook: str, listeners: list[tuple[Strategy, frozenset[
            InstrumentId] | None]]) -> Callable[[Any], None]:
        return lambda event: self._market(event, hook, listeners)

    def _market(self, event: Any, hook: str,
                listeners: list[tuple[Strategy, frozenset[InstrumentId] | None]]) -> None:
        if not self._running:
            return
        for strategy, wanted in listeners:
            if wanted is None or event.instrument in wanted:
                self._call(strategy, getattr(strategy, hook), event)

    def _own(self, event: Any, name: str, hook: str) -> None:
        if not self._running:
            return
        for strategy, _ in self._strategies:
            if strategy.name == name:
                self._call(strategy, getattr(strategy, hook), event)

    def _call(self, strategy: Strategy, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except InvariantError:
            raise
        except Exception as exc:
            error = StrategyError(f"{strategy.name}.{fn.__name__}: {exc!r}")
            STRATEGY_ERRORS.labels(strategy.name).inc()
            suppressed = self._throttle.ready((strategy.name, type(exc)))
            if suppressed is not None:
                log.error("strategy_failed", strategy=strategy.name, hook=fn.__name__,
                          error=str(error), suppressed=suppressed, exc_info=exc)
