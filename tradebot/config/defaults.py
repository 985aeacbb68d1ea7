"""The built-in default config's venue data: Binance instruments, fee rates and venue names.

The schema (`schema.py`) says which keys exist and their rules; this module holds the values of
the default run (paper trading on Binance spot and its USD-M and COIN-M perpetuals), which are
market data rather than schema. `config/tradebot.toml` lists the same values, and
tests/unit/test_config.py keeps the file equal to the built-in defaults. Plain data only, so the
schema can build its dataclasses from it without an import cycle.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# The venues of the default run: they get the default latency model.
VENUES = ("binance", "binance_usdm", "binance_coinm")

# Binance VIP 0 rates (maker, taker).
FEE_RATES = {
    "binance": (Decimal("0.001"), Decimal("0.001")),
    "binance_usdm": (Decimal("0.0002"), Decimal("0.0005")),
    "binance_coinm": (Decimal("0.0002"), Decimal("0.0005")),
}


def _spot(symbol: str, venue_symbol: str, tick: str, lot: str, min_notional: str) -> dict[str, Any]:
    base, quote = symbol.split("-")[:2]
    return {
        "venue": "binance", "symbol": symbol, "venue_symbol": venue_symbol, "kind": "spot",
        "base": base, "quote": quote, "tick_size": Decimal(tick), "lot_size": Decimal(lot),
        "min_notional": Decimal(min_notional), "size_precision": 8,
    }


def _perp(venue: str, symbol: str, venue_symbol: str, kind: str, tick: str, lot: str,
          min_notional: str, contract: str = "1") -> dict[str, Any]:
    base, quote = symbol.split("-")[:2]
    return {
        "venue": venue, "symbol": symbol, "venue_symbol": venue_symbol, "kind": kind,
        "base": base, "quote": quote, "tick_size": Decimal(tick), "lot_size": Decimal(lot),
        "min_notional": Decimal(min_notional), "contract_size": Decimal(contract),
    }


# Binance exchangeInfo values (PRICE_FILTER, LOT_SIZE, NOTIONAL) as of the 2024 recordings;
# each row is the keyword arguments of one `InstrumentConfig`.
INSTRUMENTS: tuple[dict[str, Any], ...] = (
    _spot("BTC-USDT", "BTCUSDT", "0.01", "0.00001", "5"),
    _spot("ETH-USDT", "ETHUSDT", "0.01", "0.0001", "5"),
    _perp("binance_usdm", "BTC-USDT-PERP", "BTCUSDT", "linear_perp", "0.1", "0.001", "100"),
    _perp("binance_usdm", "ETH-USDT-PERP", "ETHUSDT", "linear_perp", "0.01", "0.001", "20"),
    _perp("binance_coinm", "BTC-USD-PERP", "BTCUSD_PERP", "inverse_perp", "0.1", "1", "0", "100"),
    _perp("binance_coinm", "ETH-USD-PERP", "ETHUSD_PERP", "inverse_perp", "0.01", "1", "0", "10"),
)
