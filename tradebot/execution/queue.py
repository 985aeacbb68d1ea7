"""Queue position of a resting order, in size units of the venue's displayed queue ahead.

At arrival the order joins the back of its price level: `ahead` is the displayed size there.
Trades at the order's price advance it (`on_trade`). When the displayed size at the price
changes for other reasons (`on_level_change`), a model decides how much of a decrease was
ahead of the order:

- conservative: cancels are assumed to be behind the order; a decrease only caps `ahead` at the
  new displayed size (what is ahead can never exceed what is shown);
- power (hftbacktest's probabilistic queue model): the part of a decrease not explained by
  trades is split between ahead and behind, the share ahead being f(ahead) / (f(ahead) +
  f(behind)) with f(x) = x**exponent (3 by default), so cancels come mostly from the longer
  side of the queue.
"""

from __future__ import annotations

from typing import Protocol


class QueueModel(Protocol):
    """How a change of the displayed size at an order's price moves the order."""

    name: str

    def on_level_change(self, ahead: int, old: int, new: int, traded: int) -> int:
        """Return the new queue ahead; `traded` is the volume traded at the price since `old`."""


class ConservativeQueue:
    """Only trades advance the order; a decrease of the level only caps what is ahead."""

    name = "conservative"

    def on_level_change(self, ahead: int, old: int, new: int, traded: int) -> int:
        return min(ahead, new)


class PowerQueue:
    """Split unexplained decreases between ahead and behind with a power-law probability."""

    name = "power"

    def __init__(self, exponent: float = 3.0) -> None:
        self.exponent = exponent

    def share_ahead(self, ahead: int, behind: int) -> float:
        """Return the probability that a cancel at the level was ahead of the order."""
        fa = float(ahead) ** self.exponent
        fb = float(behind) ** self.exponent
        total = fa + fb
        return fa / total if total > 0 else 0.0

    def on_level_change(self, ahead: int, old: int, new: int, traded: int) -> int:
        decrease = old - new - traded
        if decrease <= 0:
            return max(0, min(ahead, new))
        behind = max(0, old - ahead)
        p = self.share_ahead(ahead, behind)
        from_ahead = round(p * decrease)
        from_behind = decrease - from_ahead
        # A decrease larger than what is behind must have come from ahead too.
        estimate = ahead - from_ahead + min(0, behind - from_behind)
        return max(0, min(estimate, new))


def trade_fill(ahead: int, volume: int, consumed: int, remaining: int) -> tuple[int, int]:
    """Advance an order by a trade at its price; return (new ahead, quantity it fills).

    `consumed` is what the same trade already filled of our earlier orders at this price
    (they are ahead of this one), so one print never fills more than its own volume.
    """
    reach = volume - ahead - consumed
    fill = max(0, min(remaining, reach))
    return max(0, ahead - volume), fill


def build_queue_model(name: str, exponent: float) -> QueueModel:
    """Return the model configured as `paper.queue_model`."""
    if name == "power":
        return PowerQueue(exponent)
    return ConservativeQueue()
