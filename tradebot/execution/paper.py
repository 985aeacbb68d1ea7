"""The simulated venue: latency, venue rules, book walk, queue position, partial fills, fees.

An order reaches the venue `entry latency` after submission (a clock timer), meets the book
as it is then, and its acknowledgement and immediate fills come back `response latency` after
that. Fills caused later by market data (trades at or through a resting order's price, a book
crossing it, a trigger) happen when that data arrives and are reported without extra delay,
but never ahead of an earlier report of the same order. Cancels and amends travel the same
way: the order may fill while a cancel is in flight. Matching rules are in matching.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal

import structlog
from prometheus_client import Counter

from tradebot.book import BookView
from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.config import PaperConfig
from tradebot.domain import Instrument, InstrumentId, Liquidity, MarketKind, OrderType
from tradebot.events import BookUpdated, Trade
from tradebot.execution.account import AccountView, VenueAccount
from tradebot.execution.base import ExecutionReports, FillInfo, Order
from tradebot.execution.checks import funds_reason, reduce_only_reason, static_reason
from tradebot.execution.fees import FeeSchedule
from tradebot.execution.latency import LatencyModel
from tradebot.execution.matching import Levels, Matcher
from tradebot.execution.orders import SimOrder
from tradebot.execution.outbox import Outbox
from tradebot.execution.queue import build_queue_model

log = structlog.get_logger(__name__)

PAPER_REJECTS = Counter("tradebot_paper_rejects_total", "Orders the simulated venue rejected",
                        ["venue", "reason"])
PAPER_FILLS = Counter("tradebot_paper_fills_total", "Simulated fills, by how they happened",
                      ["venue", "model"])
PAPER_REQUEST_FAILS = Counter("tradebot_paper_request_failures_total",
                              "Cancels and amends the simulated venue refused",
                              ["venue", "request"])

ZERO = Decimal(0)


class PaperVenue:
    """An ExecutionClient that simulates the venue against the local books and trades."""

    def __init__(self, reports: ExecutionReports, clock: Clock, bus: Bus,
                 books: Mapping[InstrumentId, BookView],
                 instruments: Mapping[InstrumentId, Instrument], config: PaperConfig,
                 account: AccountView) -> None:
        self._reports = reports
        self._clock = clock
        self._books = books
        self._instruments = instruments
        self._config = config
        self.fees = FeeSchedule(config.fees)
        self.account = VenueAccount(account, instruments, config.leverage,
                                    config.maintenance_margin)
        self.queue = build_queue_model(config.queue_model, config.queue_exponent)
        self.matcher = Matcher(books, self.queue, self)
        self._latency: dict[str, LatencyModel] = {}
        self.outbox = Outbox(clock)
        self.orders: dict[str, SimOrder] = {}
        self._scale = {iid: (10 ** i.price_decimals, 10 ** i.size_decimals)
                       for iid, i in instruments.items()}
        self._bus = bus

    def start(self) -> None:
        """Match resting orders against every trade and book update from now on."""
        self._bus.subscribe(Trade, self.on_trade)
        self._bus.subscribe(BookUpdated, self.on_book)

    def stop(self) -> None:
        """Nothing to release: resting orders stay for the store (see App shutdown)."""

    def latency(self, venue: str) -> LatencyModel:
        """Return the latency model of a venue."""
        model = self._latency.get(venue)
        if model is None:
            model = self._latency[venue] = LatencyModel(self._config.latency.get(venue),
                                                        self._config.seed, venue)
        return model

    # --- ExecutionClient ------------------------------------------------------------------

    def submit(self, order: Order) -> None:
        """Send an order: it reaches the venue after the venue's entry latency."""
        now = self._clock.now_ns()
        spec = order.spec
        inst = self._instruments.get(spec.instrument)
        if inst is None or spec.instrument not in self._books:
            self._reject_now(order, "unknown_instrument", now)
            return
        lat = self.latency(inst.id.venue)
        internal = spec.internal
        entry = 0 if internal else lat.entry_ns()
        response = 0 if internal else lat.response_ns()
        o = SimOrder(order=order, inst=inst, qty=0, limit=0, trigger=0, entry_latency_ns=entry,
                     response_latency_ns=response)
        self.orders[order.order_id] = o
        if entry == 0:
            self._arrive(o)
        else:
            self._clock.call_at(now + entry, lambda: self._arrive(o))

    def cancel(self, order_id: str) -> None:
        """Ask the venue to cancel an order; the request travels the entry latency."""
        self._request(order_id, "cancel", lambda o, now: self._cancel_at_venue(o, now))

    def amend(self, order_id: str, quantity: Decimal | None, limit_price: Decimal | None) -> None:
        """Ask the venue to change an order; the request travels the entry latency."""
        self._request(order_id, "amend",
                      lambda o, now: self._amend_at_venue(o, quantity, limit_price, now))

    def restore(self, order: Order, filled: Decimal, triggered: bool) -> None:
        """Take back an order open before a restart; its queue is recomputed from the book.

        A conditional order waits for its trigger again unless the trigger had traded; a
        triggered limit rests. An order that executes at once (market, or a triggered stop
        market) and is still open was stopped between its execution and the report of it:
        that outcome is lost, so it is cancelled with a reason rather than executed again
        against a later book.
        """
        spec = order.spec
        inst = self._instruments[spec.instrument]
        o = SimOrder(order=order, inst=inst, qty=inst.size_to_units(spec.quantity),
                     limit=self._price_units(inst, spec.limit_price),
                     trigger=self._price_units(inst, spec.trigger_price),
                     entry_latency_ns=0, response_latency_ns=0,
                     filled=inst.size_to_units(filled), arrived=True, triggered=triggered)
        self.orders[order.order_id] = o
        log.info("paper_order_restored", order_id=order.order_id, instrument=str(inst.id),
                 remaining=str(spec.quantity - filled), triggered=triggered)
        if spec.trigger is not None and not triggered:
            self.matcher.wait(o)
        elif o.is_market:
            self.close(o, "execution_lost_at_restart", self._clock.now_ns(), 0)
        else:
            self.matcher.rest(o, None)

    # --- arrival --------------------------------------------------------------------------

    def _arrive(self, o: SimOrder) -> None:
        now = self._clock.now_ns()
        if o.closed:
            return
        order, inst = o.order, o.inst
        book = self._books[inst.id]
        if not book.valid:
            self._reject(o, "book_invalid", now)
            return
        o.arrived = True
        o.arrival_mid = book.mid_price()
        reason = self._check(o)
        if reason is not None:
            self._reject(o, reason, now)
            return
        self._post(o, now, lambda: self._reports.accepted(order.order_id, now))
        if order.spec.trigger is not None:
            self.matcher.wait(o)
            return
        self.matcher.execute(o, book, now, o.response_latency_ns)

    def _check(self, o: SimOrder) -> str | None:
        order, inst = o.order.spec, o.inst  # what the venue checks is the spec
        src = self._books[inst.id]
        touch_units = src.ask_units if order.side > 0 else src.bid_units
        touch = inst.price_from_units(touch_units) if touch_units > 0 else None
        reason = static_reason(order, inst, touch)
        if reason is not None:
            return reason
        o.qty = inst.size_to_units(order.quantity)
        o.limit = self._price_units(inst, order.limit_price)
        o.trigger = self._price_units(inst, order.trigger_price)
        if order.trigger is not None:
            last = (self.matcher.orders_of(inst.id).last_trade
                    or (src.bid_units + src.ask_units) // 2)
            if o.fires(last):
                return f"would_trigger_immediately: last price {inst.price_from_units(last)}"
        elif order.post_only and self.matcher.marketable(o, src):
            return "post_only_would_cross: the limit price would take liquidity"
        if order.internal:
            return None
        reason = reduce_only_reason(order, self.account.position(inst.id))
        if reason is not None:
            return reason
        price = self._estimate_price(o, touch)
        if price is None:
            return "no_price: the book has no liquidity on the side this order takes"
        return self._funds(o, price)

    def _estimate_price(self, o: SimOrder, touch: Decimal | None) -> Decimal | None:
        order = o.order.spec
        if order.order_type is OrderType.LIMIT and order.limit_price is not None:
            return order.limit_price
        if order.trigger_price is not None:
            return order.trigger_price
        return touch

    def _funds(self, o: SimOrder, price: Decimal) -> str | None:
        inst, order = o.inst, o.order.spec
        reserved_cash = reserved_qty = open_margin = ZERO
        rate = self.fees.max_rate(inst.id.venue)
        for other in self.orders.values():
            if other is o or other.closed or not other.arrived:
                continue
            oi = other.inst
            left = oi.size_from_units(other.remaining)
            px = oi.price_from_units(other.limit or other.trigger) if (other.limit or
                                                                        other.trigger) else price
            if oi.kind is MarketKind.SPOT:
                if other.side > 0:
                    reserved_cash += oi.notional(left, px) * (1 + rate)
                elif oi.id == inst.id:
                    reserved_qty += left
            elif not other.order.spec.reduce_only:
                open_margin += self.account.initial_margin(oi.id, left * oi.contract_size, px)
        remaining = inst.size_from_units(o.qty - o.filled)
        return funds_reason(order, inst, self.account, price, remaining, reserved_cash,
                            reserved_qty, open_margin, rate)

    # --- cancel and amend -----------------------------------------------------------------

    def _request(self, order_id: str, kind: str,
                 act: Callable[[SimOrder, int], str | None]) -> None:
        o = self.orders.get(order_id)
        venue = o.inst.id.venue if o is not None else ""
        lat = self.latency(venue)
        now = self._clock.now_ns()
        response = lat.response_ns()

        def at_venue() -> None:
            at = self._clock.now_ns()
            order = self.orders.get(order_id)
            reason = "unknown_or_closed_order" if order is None or not order.arrived else (
                "order_closed" if order.closed else act(order, at))
            if reason is not None:
                PAPER_REQUEST_FAILS.labels(venue, kind).inc()
                self.outbox.post(order_id, at + response,
                                 lambda: self._reports.request_failed(order_id, kind, reason, at))

        entry = lat.entry_ns()
        if entry == 0:
            at_venue()
        else:
            self._clock.call_at(now + entry, at_venue)

    def _cancel_at_venue(self, o: SimOrder, now: int) -> str | None:
        self.close(o, "canceled", now, self.latency(o.inst.id.venue).response_ns())
        return None

    def _amend_at_venue(self, o: SimOrder, quantity: Decimal | None,
                        limit_price: Decimal | None, now: int) -> str | None:
        inst, order = o.inst, o.order
        if order.spec.order_type is not OrderType.LIMIT or (order.spec.trigger is not None
                                                             and not o.triggered):
            return "amend_unsupported: only resting limit orders can be amended"
        new = order.amended(quantity, limit_price)
        spec = new.spec
        reason = static_reason(spec, inst, None)
        if reason is not None:
            return reason
        qty = inst.size_to_units(spec.quantity)
        if qty <= o.filled:
            return f"amend_below_filled: {spec.quantity} is not above the filled quantity"
        limit = self._price_units(inst, spec.limit_price)
        book = self._books[inst.id]
        if not book.valid:
            return "book_invalid"
        probe = replace(o, limit=limit)
        if spec.post_only and self.matcher.marketable(probe, book):
            return "post_only_would_cross: the new price would take liquidity"
        response = self.latency(inst.id.venue).response_ns()
        self._post(o, now, lambda: self._reports.amended(order.order_id, spec.quantity,
                                                         spec.limit_price, now), response)
        keeps_priority = limit == o.limit and qty <= o.qty
        o.order, o.qty = new, qty
        if keeps_priority:
            return None
        self.matcher.remove(o)
        o.limit = limit
        self.matcher.execute(o, book, now, response)
        return None

    # --- market data ----------------------------------------------------------------------

    def on_book(self, event: BookUpdated) -> None:
        """Let the matcher look at the new book of an instrument with working orders."""
        self.matcher.on_book(event.instrument, event.ts_init)

    def on_trade(self, event: Trade) -> None:
        """Let the matcher advance queues and fire triggers with a public trade."""
        scale = self._scale.get(event.instrument)
        if scale is None:
            return
        self.matcher.on_trade(event.instrument, round(event.price * scale[0]),
                              round(event.size * scale[1]), int(event.aggressor), event.ts_init)

    # --- FillSink -------------------------------------------------------------------------

    def fill(self, order: SimOrder, units: int, price: Decimal, liquidity: Liquidity,
             levels: Levels, model: str, ahead: int | None, ts_event: int,
             delay_ns: int) -> None:
        """Turn a match into a fill report (fee, explanation) and deliver it after `delay_ns`."""
        o, inst = order, order.inst
        units = min(units, self._reducible(o))
        if units <= 0:
            self.close(o, "reduce_only_position_closed", ts_event, delay_ns)
            return
        qty = inst.size_from_units(units)
        venue = inst.id.venue
        rate = self.fees.rate(venue, liquidity, self.account.traded_notional(venue))
        notional = inst.notional(qty, price)
        fee = notional * rate
        o.filled += units
        signed = qty * o.side
        cash = -(signed * price * inst.contract_size) - fee if inst.kind is MarketKind.SPOT \
            else -fee
        self.account.add_pending(inst, signed, cash, notional)
        mid = o.arrival_mid
        slippage = float((price - mid) / mid * 10_000 * o.side) if mid else 0.0
        deep = o.ahead_entry > self._config.toxic_queue_position * o.qty
        flags: tuple[str, ...] = ("deep_queue",) if liquidity is Liquidity.MAKER and deep else ()
        size = inst.size_from_units
        info = FillInfo(
            model=f"{model}/{self.queue.name}" if liquidity is Liquidity.MAKER else model,
            queue_ahead_entry=size(o.ahead_entry) if o.ahead_entry >= 0 and
            liquidity is Liquidity.MAKER else None,
            queue_ahead_fill=size(ahead) if ahead is not None else None,
            entry_latency_ns=o.entry_latency_ns, response_latency_ns=delay_ns,
            arrival_mid=mid, flags=flags,
        )
        dec_levels = tuple((inst.price_from_units(p), size(u)) for p, u in levels)
        PAPER_FILLS.labels(venue, model).inc()
        order_id = o.order.order_id

        def deliver() -> None:
            self.account.add_pending(inst, -signed, -cash, -notional)
            self._reports.filled(order_id, quantity=qty, price=price, fee=fee,
                                 fee_currency=inst.quote, liquidity=liquidity,
                                 levels=dec_levels, slippage_bps=slippage, ts_event=ts_event,
                                 info=info)

        self._post(o, ts_event, deliver, delay_ns)
        if o.remaining == 0:
            self._finish(o)

    def triggered(self, order: SimOrder, ts_event: int) -> None:
        """Report a trigger without extra delay, ahead of the fills it leads to."""
        order_id = order.order.order_id
        self._post(order, ts_event, lambda: self._reports.triggered(order_id, ts_event), 0)

    def close(self, order: SimOrder, reason: str, ts_event: int, delay_ns: int) -> None:
        """Cancel the rest of an order and report it after `delay_ns`."""
        if order.closed:
            return
        order_id = order.order.order_id
        self._finish(order)
        self._post(order, ts_event, lambda: self._reports.canceled(order_id, reason, ts_event),
                   delay_ns)

    # --- helpers --------------------------------------------------------------------------

    def _reducible(self, o: SimOrder) -> int:
        if not o.order.spec.reduce_only:
            return o.remaining
        position = self.account.position(o.inst.id)
        if position == 0 or (position > 0) == (o.side > 0):
            return 0
        return min(o.remaining, o.inst.size_to_units(abs(position)))

    def _finish(self, o: SimOrder) -> None:
        o.closed = True
        self.matcher.remove(o)
        self.orders.pop(o.order.order_id, None)

    def _post(self, o: SimOrder, now: int, deliver: Callable[[], None],
              delay_ns: int | None = None) -> None:
        delay = o.response_latency_ns if delay_ns is None else delay_ns
        self.outbox.post(o.order.order_id, now + delay, deliver)

    def _reject(self, o: SimOrder, reason: str, now: int) -> None:
        o.closed = True
        self.orders.pop(o.order.order_id, None)
        code = reason.partition(":")[0]
        PAPER_REJECTS.labels(o.inst.id.venue, code).inc()
        order_id = o.order.order_id
        self._post(o, now, lambda: self._reports.rejected(order_id, reason, now))

    def _reject_now(self, order: Order, reason: str, now: int) -> None:
        PAPER_REJECTS.labels(order.spec.instrument.venue, reason).inc()
        self._reports.rejected(order.order_id, reason, now)

    @staticmethod
    def _price_units(inst: Instrument, price: Decimal | None) -> int:
        return 0 if price is None else int(price.scaleb(inst.price_decimals))
