"""The risk engine: turn intents into orders or denials, and own the trading state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

import structlog
from prometheus_client import Counter, Gauge

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.config import RiskConfig
from tradebot.domain import Instrument, InstrumentId, PortfolioView, Side, TradingState
from tradebot.events import (
    BookInvalidated,
    BookUpdated,
    OrderDenied,
    OrderIntent,
    SubmitOrder,
    TradingStateChanged,
)
from tradebot.order import IdGenerator
from tradebot.risk.rules import (
    BookRule,
    CheckContext,
    LotSizeRule,
    MaxOrderNotionalRule,
    MaxPositionRule,
    MinNotionalRule,
    Rule,
    SpotBalanceRule,
    SupportedRule,
    TradingStateRule,
)

log = structlog.get_logger(__name__)

RISK_DENIALS = Counter("tradebot_risk_denials_total", "Intents denied, by rule", ["rule"])
RISK_APPROVALS = Counter("tradebot_risk_approvals_total", "Intents approved")
TRADING_STATE = Gauge("tradebot_trading_state", "1 for the current trading state", ["state"])

# The taker fee rate an order on an instrument would pay (a fraction; 0 where none is known).
FeeLookup = Callable[[InstrumentId], Decimal]


class RiskEngine:
    """Check each OrderIntent against the rules; publish SubmitOrder or OrderDenied."""

    def __init__(self, bus: Bus, clock: Clock, portfolio: PortfolioView,
                 instruments: Mapping[InstrumentId, Instrument], config: RiskConfig,
                 account_currency: str, taker_fee: FeeLookup) -> None:
        self._bus = bus
        self._clock = clock
        self._portfolio = portfolio
        self._instruments = instruments
        self._taker_fee = taker_fee
        self.state = TradingState.ACTIVE
        self._books: dict[InstrumentId, BookUpdated] = {}
        self._ids = IdGenerator("O")
        self.rules: list[Rule] = [
            TradingStateRule(), SupportedRule(account_currency),
            BookRule(config.max_book_age_s), LotSizeRule(), MinNotionalRule(),
            MaxOrderNotionalRule(config.max_order_notional),
            MaxPositionRule(config.max_position_notional), SpotBalanceRule(),
        ]
        self._denials = {rule.name: RISK_DENIALS.labels(rule.name) for rule in self.rules}
        self._denials["unknown_instrument"] = RISK_DENIALS.labels("unknown_instrument")
        self._show_state()

    def start(self) -> None:
        """Check every intent from now on; follow the books it prices orders with."""
        self._bus.subscribe(OrderIntent, self.on_intent)
        self._bus.subscribe(BookUpdated, self._on_book)
        self._bus.subscribe(BookInvalidated, self._on_invalid)

    def stop(self) -> None:
        """Nothing to release: the state stays readable."""

    def continue_ids(self, stored_orders: int) -> None:
        """Number new orders after the `stored_orders` the store holds (IdGenerator says why)."""
        self._ids.continue_after(stored_orders)

    def _on_book(self, event: BookUpdated) -> None:
        self._books[event.instrument] = event

    def _on_invalid(self, event: BookInvalidated) -> None:
        self._books.pop(event.instrument, None)

    def set_state(self, state: TradingState, reason: str) -> None:
        """Move to a trading state (ACTIVE, REDUCING, HALTED) and publish the change."""
        if state is self.state:
            return
        log.warning("trading_state_changed", old=self.state.value, new=state.value, reason=reason)
        self.state = state
        self._show_state()
        now = self._clock.now_ns()
        self._bus.publish(TradingStateChanged(state=state, reason=reason, ts_event=now,
                                              ts_init=now))

    def _show_state(self) -> None:
        for state in TradingState:
            TRADING_STATE.labels(state.value).set(1 if state is self.state else 0)

    def on_intent(self, intent: OrderIntent) -> None:
        """Approve or deny one intent.

        An internal intent (the system reducing its own exposure: flatten, stop-loss) needs
        only a configured instrument; no rule, not even a halt, may stop it.
        """
        spec = intent.spec
        inst = self._instruments.get(spec.instrument)
        now = self._clock.now_ns()
        if inst is None:
            self._deny(intent, "unknown_instrument", f"{spec.instrument} is not configured", now)
            return
        if not spec.internal:
            ctx = self._context(intent, inst, now)
            for rule in self.rules:
                reason = rule.check(ctx)
                if reason is not None:
                    self._deny(intent, rule.name, reason, now)
                    return
        RISK_APPROVALS.inc()
        self._bus.publish(SubmitOrder(order_id=self._ids.next(now), intent=intent, ts_event=now,
                                      ts_init=now))

    def _context(self, intent: OrderIntent, inst: Instrument, now: int) -> CheckContext:
        spec = intent.spec
        book = self._books.get(spec.instrument)
        price: Decimal | None = None
        age = 0.0
        if book is not None:
            raw = book.best_ask if spec.side is Side.BUY else book.best_bid
            price = Decimal(repr(raw)) if raw > 0 else None
            age = (now - book.ts_init) / 1e9
        return CheckContext(
            spec=spec, instrument=inst, price=price, book_valid=book is not None,
            book_age_s=age, position=self._portfolio.position(spec.instrument),
            cash=self._portfolio.cash(), taker_fee=self._taker_fee(spec.instrument),
            state=self.state,
        )

    def _deny(self, intent: OrderIntent, rule: str, reason: str, now: int) -> None:
        self._denials[rule].inc()
        log.info("order_denied", intent_id=intent.intent_id, strategy=intent.spec.strategy,
                 instrument=str(intent.spec.instrument), rule=rule, reason=reason)
        self._bus.publish(OrderDenied(intent=intent, rule=rule, reason=reason, ts_event=now,
                                      ts_init=now))
