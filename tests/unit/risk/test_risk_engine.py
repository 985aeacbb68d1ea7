from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import PaperConfig, RiskConfig, load_config
from tradebot.domain import Instrument, InstrumentId, MarketKind, OrderType, Side, TradingState
from tradebot.events import BookInvalidated, BookUpdated, OrderDenied, OrderIntent, SubmitOrder
from tradebot.execution.fees import FeeSchedule
from tradebot.order import OrderSpec
from tradebot.risk.engine import RiskEngine

ETHBTC = Instrument(id=InstrumentId("ETH-BTC", "binance"), venue_symbol="ETHBTC",
                    kind=MarketKind.SPOT, base="ETH", quote="BTC", tick_size=Decimal("0.00001"),
                    lot_size=Decimal("0.0001"), min_notional=Decimal("0.0001"))
INSTRUMENTS = {**load_config(environ={}).instrument_map(), ETHBTC.id: ETHBTC}
BTC = InstrumentId("BTC-USDT", "binance")
PERP = InstrumentId("BTC-USDT-PERP", "binance_usdm")
INVERSE = InstrumentId("BTC-USD-PERP", "binance_coinm")


class FakePortfolio:
    def __init__(self) -> None:
        self.positions: dict[InstrumentId, Decimal] = {}
        self.cash_value = Decimal(10_000)

    def position(self, instrument: InstrumentId) -> Decimal:
        return self.positions.get(instrument, Decimal(0))

    def cash(self) -> Decimal:
        return self.cash_value

    def equity(self) -> Decimal:
        return self.cash_value


@pytest.fixture
def setup() -> tuple[Bus, SimClock, FakePortfolio, RiskEngine, list[object]]:
    bus, clock, portfolio = Bus(), SimClock(1_000_000_000), FakePortfolio()
    engine = RiskEngine(bus, clock, portfolio, INSTRUMENTS,
                        RiskConfig(max_position_notional=Decimal(1000),
                                   max_order_notional=Decimal(500), max_book_age_s=5.0),
                        "USDT", FeeSchedule(PaperConfig().fees).taker_rate)
    engine.start()
    out: list[object] = []
    bus.subscribe(OrderDenied, out.append)
    bus.subscribe(SubmitOrder, out.append)
    for iid in (BTC, PERP, INVERSE):
        bus.publish(BookUpdated(instrument=iid, best_bid=60000.0, best_bid_size=1.0,
                                best_ask=60000.1, best_ask_size=1.0, ts_event=1,
                                ts_init=clock.now_ns()))
    return bus, clock, portfolio, engine, out


def intent(iid: InstrumentId, side: Side, qty: str, *, reduce_only: bool = False,
           order_type: OrderType = OrderType.MARKET) -> OrderIntent:
    spec = OrderSpec(strategy="s", instrument=iid, side=side, quantity=Decimal(qty),
                     order_type=order_type, reduce_only=reduce_only)
    return OrderIntent(intent_id="i", spec=spec, ts_event=0, ts_init=0)


@pytest.mark.parametrize(("iid", "side", "qty", "rule"), [
    (BTC, Side.BUY, "0.00005", "min_notional"),      # 3 USDT < 5
    (BTC, Side.BUY, "0.000015", "lot_size"),
    (BTC, Side.BUY, "0.01", "max_order_notional"),   # 600 > 500
    (BTC, Side.SELL, "0.001", "balance"),            # spot: nothing to sell
    (INVERSE, Side.BUY, "1", "unsupported"),
    (ETHBTC.id, Side.BUY, "1", "unsupported"),  # quoted in BTC: the account holds USDT
    (InstrumentId("X", "binance"), Side.BUY, "1", "unknown_instrument"),
])
def test_each_rule_denies_with_a_reason(setup, iid, side, qty, rule) -> None:  # type: ignore[no-untyped-def]
    bus, _, _, _, out = setup
    bus.publish(intent(iid, side, qty))
    assert len(out) == 1 and isinstance(out[0], OrderDenied)
    assert out[0].rule == rule and out[0].reason


def test_max_position_counts_the_existing_position(setup) -> None:  # type: ignore[no-untyped-def]
    bus, _, portfolio, _, out = setup
    portfolio.positions[PERP] = Decimal("0.015")  # 900 notional
    bus.publish(intent(PERP, Side.BUY, "0.002"))  # 1020 after
    assert isinstance(out[-1], OrderDenied) and out[-1].rule == "max_position"
    bus.publish(intent(PERP, Side.SELL, "0.010", reduce_only=True))  # reducing is allowed
    assert isinstance(out[-1], SubmitOrder)


def test_an_invalid_or_old_book_denies(setup) -> None:  # type: ignore[no-untyped-def]
    bus, clock, _, _, out = setup
    clock.advance_to(clock.now_ns() + 6_000_000_000)
    bus.publish(intent(PERP, Side.BUY, "0.002"))
    assert out[-1].rule == "book" and "old" in out[-1].reason
    bus.publish(BookInvalidated(instrument=BTC, reason="gap", ts_event=0, ts_init=0))
    bus.publish(intent(BTC, Side.BUY, "0.001"))
    assert out[-1].rule == "book" and "no valid book" in out[-1].reason


def test_approved_intent_becomes_a_submit_order_and_halted_denies(setup) -> None:  # type: ignore[no-untyped-def]
    bus, _, _, engine, out = setup
    bus.publish(intent(BTC, Side.BUY, "0.001"))
    assert isinstance(out[-1], SubmitOrder) and out[-1].order_id.startswith("O-")
    engine.set_state(TradingState.HALTED, "test")
    bus.publish(intent(BTC, Side.BUY, "0.001"))
    assert out[-1].rule == "trading_state"
    engine.set_state(TradingState.REDUCING, "test")
    bus.publish(intent(BTC, Side.BUY, "0.001"))
    assert out[-1].rule == "trading_state"


def test_an_internal_intent_passes_every_rule_but_needs_a_known_instrument(setup) -> None:  # type: ignore[no-untyped-def]
    bus, _, _, engine, out = setup
    engine.set_state(TradingState.HALTED, "test")
    spec = OrderSpec(strategy="flatten", instrument=BTC, side=Side.SELL, quantity=Decimal(5),
                     reduce_only=True, internal=True)  # nothing held, far above the limits
    bus.publish(OrderIntent(intent_id="f", spec=spec, ts_event=0, ts_init=0))
    assert isinstance(out[-1], SubmitOrder) and out[-1].intent.spec is spec
    unknown = OrderSpec(strategy="flatten", instrument=InstrumentId("X", "binance"),
                        side=Side.SELL, quantity=Decimal(1), internal=True)
    bus.publish(OrderIntent(intent_id="g", spec=unknown, ts_event=0, ts_init=0))
    assert isinstance(out[-1], OrderDenied) and out[-1].rule == "unknown_instrument"


def test_the_fee_lookup_prices_a_spot_buy_against_cash() -> None:
    fees = {BTC: Decimal("0.05")}
    bus, clock, portfolio = Bus(), SimClock(1_000_000_000), FakePortfolio()
    portfolio.cash_value = Decimal(100)
    RiskEngine(bus, clock, portfolio, INSTRUMENTS, RiskConfig(), "USDT",
               lambda iid: fees.get(iid, Decimal(0))).start()
    out: list[object] = []
    bus.subscribe(OrderDenied, out.append)
    bus.subscribe(SubmitOrder, out.append)
    bus.publish(BookUpdated(instrument=BTC, best_bid=60000.0, best_bid_size=1.0,
                            best_ask=60000.0, best_ask_size=1.0, ts_event=1,
                            ts_init=clock.now_ns()))
    bus.publish(intent(BTC, Side.BUY, "0.0016"))  # 96 USDT, 100.80 with the 5% fee
    assert isinstance(out[-1], OrderDenied) and out[-1].rule == "balance"
    fees.clear()
    bus.publish(intent(BTC, Side.BUY, "0.0016"))
    assert isinstance(out[-1], SubmitOrder)


def test_order_ids_continue_after_the_stored_orders(setup) -> None:  # type: ignore[no-untyped-def]
    bus, clock, _, engine, out = setup
    engine.continue_ids(41)
    bus.publish(intent(BTC, Side.BUY, "0.001"))
    assert out[-1].order_id == f"O-{clock.now_ns():x}-42"


def test_risk_knows_nothing_of_the_paper_venue() -> None:
    package = Path(__file__).resolve().parents[3] / "tradebot" / "risk"
    assert (package / "engine.py").exists()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("tradebot.execution"), path
                assert "PaperConfig" not in {a.name for a in node.names}, path
