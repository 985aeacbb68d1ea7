"""The order state machine: the single owner of order state, fed by an execution client.

Legal transitions: SUBMITTED -> ACCEPTED | REJECTED; ACCEPTED | PARTIALLY_FILLED ->
PARTIALLY_FILLED | FILLED | CANCELED. A fill on a terminal order, an overfill or any other
transition is a broken invariant and raises. Cancels and amends come from strategies as
CancelOrder / AmendOrder commands; the venue answers with a state change or `request_failed`.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import structlog
from prometheus_client import Counter

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.domain import Liquidity, OrderStatus
from tradebot.errors import InvariantError
from tradebot.events import AmendOrder, CancelOrder, Fill, OrderUpdated, SubmitOrder
from tradebot.execution.base import ExecutionClient, FillInfo
from tradebot.order import Order, OrderState

log = structlog.get_logger(__name__)

ORDERS = Counter("tradebot_orders_total", "Order state changes, by status", ["status"])
REQUESTS_REFUSED = Counter("tradebot_order_requests_refused_total",
                           "Cancels and amends refused by the engine or the venue", ["request"])

_UNEXPLAINED = FillInfo(model="", queue_ahead_entry=None, queue_ahead_fill=None,
                        entry_latency_ns=0, response_latency_ns=0, arrival_mid=None, flags=())

_LEGAL = {
    OrderStatus.SUBMITTED: {OrderStatus.ACCEPTED, OrderStatus.REJECTED},
    OrderStatus.ACCEPTED: {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED,
                           OrderStatus.CANCELED},
    OrderStatus.PARTIALLY_FILLED: {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED,
                                   OrderStatus.CANCELED},
}


class ExecutionEngine:
    """Route approved orders to the execution client and track their state."""

    def __init__(self, bus: Bus, clock: Clock) -> None:
        self._bus = bus
        self._clock = clock
        self._client: ExecutionClient | None = None
        self.orders: dict[str, OrderState] = {}
        self._status_metrics = {s: ORDERS.labels(s.value) for s in OrderStatus}

    def attach(self, client: ExecutionClient) -> None:
        """Use `client` for every order."""
        self._client = client

    def start(self) -> None:
        """Take approved orders, cancels and amends from the bus."""
        self._bus.subscribe(SubmitOrder, self.on_submit)
        self._bus.subscribe(CancelOrder, self.on_cancel)
        self._bus.subscribe(AmendOrder, self.on_amend)

    def stop(self) -> None:
        """Nothing to release: open orders stay with the client (see App shutdown)."""

    def restore(self, state: OrderState) -> None:
        """Take back an order open when the process stopped and hand it to the client."""
        order = state.order
        if order.order_id in self.orders:
            raise InvariantError(f"duplicate order id {order.order_id}")
        self.orders[order.order_id] = state
        if state.status is OrderStatus.SUBMITTED:
            # It may or may not have reached the venue before the stop: it did not.
            self._move(order.order_id, OrderStatus.REJECTED, "not_acknowledged_before_restart",
                       self._clock.now_ns())
            return
        if self._client is None:
            raise InvariantError("order restored before an execution client was attached")
        self._client.restore(order, state.filled, triggered=state.ts_triggered > 0)

    def open_orders(self) -> list[OrderState]:
        """Return the orders not yet in a terminal state."""
        return [s for s in self.orders.values() if not s.status.is_terminal]

    def on_submit(self, command: SubmitOrder) -> None:
        """Record the order and hand it to the client."""
        order = Order(command.order_id, command.intent.spec, command.ts_event)
        if order.order_id in self.orders:
            raise InvariantError(f"duplicate order id {order.order_id}")
        state = OrderState(order=order, status=OrderStatus.SUBMITTED, filled=Decimal(0),
                           notional=Decimal(0))
        self.orders[order.order_id] = state
        self._publish(state, command.ts_event)
        if self._client is None:
            raise InvariantError("order submitted before an execution client was attached")
        self._client.submit(order)

    def on_cancel(self, command: CancelOrder) -> None:
        """Forward a strategy's cancel of one of its open orders to the client."""
        state = self._owned(command.order_id, command.strategy, "cancel")
        if state is not None and self._client is not None:
            self._client.cancel(command.order_id)

    def on_amend(self, command: AmendOrder) -> None:
        """Forward a strategy's amend of one of its open orders to the client."""
        state = self._owned(command.order_id, command.strategy, "amend")
        if state is not None and self._client is not None:
            self._client.amend(command.order_id, command.quantity, command.limit_price)

    def _owned(self, order_id: str, strategy: str, request: str) -> OrderState | None:
        state = self.orders.get(order_id)
        if state is None or state.order.spec.strategy != strategy or state.status.is_terminal:
            REQUESTS_REFUSED.labels(request).inc()
            log.warning("order_request_refused", order_id=order_id, request=request,
                        strategy=strategy,
                        status=state.status.value if state is not None else "unknown")
            return None
        return state

    # --- ExecutionReports ---------------------------------------------------------------

    def accepted(self, order_id: str, ts_event: int) -> None:
        """The venue accepted the order."""
        self._move(order_id, OrderStatus.ACCEPTED, "", ts_event)

    def rejected(self, order_id: str, reason: str, ts_event: int) -> None:
        """The venue rejected the order."""
        self._move(order_id, OrderStatus.REJECTED, reason, ts_event)

    def canceled(self, order_id: str, reason: str, ts_event: int) -> None:
        """The rest of the order was cancelled."""
        self._move(order_id, OrderStatus.CANCELED, reason, ts_event)

    def triggered(self, order_id: str, ts_event: int) -> None:
        """A conditional order's trigger traded: same status, recorded so a restart knows."""
        state = self._get(order_id)
        if state.status.is_terminal or state.ts_triggered:
            raise InvariantError(f"order {order_id}: trigger on {state}")
        new = replace(state, reason="triggered", ts_triggered=ts_event)
        self.orders[order_id] = new
        log.info("order_triggered", order_id=order_id,
                 trigger_price=str(state.order.spec.trigger_price))
        self._publish(new, ts_event)

    def amended(self, order_id: str, quantity: Decimal, limit_price: Decimal | None,
                ts_event: int) -> None:
        """The venue changed the order's quantity and/or limit price."""
        state = self._get(order_id)
        if state.status.is_terminal or quantity <= state.filled:
            raise InvariantError(f"order {order_id}: amend to {quantity} on {state}")
        new = replace(state, order=state.order.amended(quantity, limit_price), reason="amended")
        self.orders[order_id] = new
        log.info("order_amended", order_id=order_id, qty=str(quantity), price=str(limit_price))
        self._publish(new, ts_event)

    def request_failed(self, order_id: str, request: str, reason: str, ts_event: int) -> None:
        """The venue refused a cancel or amend; the order itself is unchanged."""
        REQUESTS_REFUSED.labels(request).inc()
        # A cancel racing a fill is normal venue behaviour, not a fault of ours.
        log.info("order_request_failed", order_id=order_id, request=request, reason=reason)

    def filled(self, order_id: str, *, quantity: Decimal, price: Decimal, fee: Decimal,
               fee_currency: str, liquidity: Liquidity,
               levels: tuple[tuple[Decimal, Decimal], ...], slippage_bps: float,
               ts_event: int, info: FillInfo | None = None) -> None:
        """Record a fill, publish it, then the order's new state."""
        state = self._get(order_id)
        spec = state.order.spec
        filled = state.filled + quantity
        if quantity <= 0 or filled > spec.quantity:
            raise InvariantError(
                f"order {order_id}: fill of {quantity} on {state.filled}/{spec.quantity} "
                f"is an overfill or empty"
            )
        status = OrderStatus.FILLED if filled == spec.quantity else OrderStatus.PARTIALLY_FILLED
        self._check(state, status)
        now = self._clock.now_ns()
        count = state.fills + 1
        why = info or _UNEXPLAINED
        fill = Fill(fill_id=f"{order_id}-F{count}", order_id=order_id,
                    strategy=spec.strategy, instrument=spec.instrument, side=spec.side,
                    quantity=quantity, price=price, fee=fee, fee_currency=fee_currency,
                    liquidity=liquidity, levels=levels, slippage_bps=slippage_bps,
                    ts_event=ts_event, ts_init=now, model=why.model,
                    queue_ahead_entry=why.queue_ahead_entry, queue_ahead_fill=why.queue_ahead_fill,
                    entry_latency_ns=why.entry_latency_ns,
                    response_latency_ns=why.response_latency_ns, arrival_mid=why.arrival_mid,
                    flags=why.flags)
        new = replace(state, status=status, filled=filled,
                      notional=state.notional + quantity * price, fills=count)
        self.orders[order_id] = new
        log.info("order_filled", order_id=order_id, instrument=str(spec.instrument),
                 side=spec.side.name, qty=str(quantity), price=str(price), fee=str(fee),
                 liquidity=liquidity.value, levels=len(levels))
        self._bus.publish(fill)
        self._publish(new, ts_event)

    def _get(self, order_id: str) -> OrderState:
        state = self.orders.get(order_id)
        if state is None:
            raise InvariantError(f"report for unknown order {order_id}")
        return state

    def _check(self, state: OrderState, status: OrderStatus) -> None:
        if status not in _LEGAL.get(state.status, ()):
            raise InvariantError(
                f"order {state.order.order_id}: illegal transition {state.status} -> {status}"
            )

    def _move(self, order_id: str, status: OrderStatus, reason: str, ts_event: int) -> None:
        state = self._get(order_id)
        self._check(state, status)
        new = replace(state, status=status, reason=reason)
        self.orders[order_id] = new
        if status in (OrderStatus.REJECTED, OrderStatus.CANCELED):
            log.info("order_closed", order_id=order_id, status=status.value, reason=reason)
        self._publish(new, ts_event)

    def _publish(self, state: OrderState, ts_event: int) -> None:
        self._status_metrics[state.status].inc()
        self._bus.publish(OrderUpdated(state=state, ts_event=ts_event,
                                       ts_init=self._clock.now_ns()))
