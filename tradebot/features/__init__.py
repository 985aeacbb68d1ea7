"""The feature engine: per-instrument features kept by compiled kernels, read by strategies.

`engine` holds `FeatureEngine` (state per instrument, updated from the bus, completed bars
published) and `FeatureView` (name -> value, NaN until warm).
"""

from tradebot.features.engine import FEATURE_REJECTED, FeatureEngine, FeatureView

__all__ = ["FEATURE_REJECTED", "FeatureEngine", "FeatureView"]
