"""In-process publish/subscribe with synchronous dispatch and per-topic counters."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

E = TypeVar("E")
Handler = Callable[[Any], None]


class Bus:
    """Dispatch each published event to the handlers subscribed to its type, in order.

    Dispatch is synchronous on the caller's thread: the hot path (frame → book → strategy →
    risk → venue) has no queue hop. A handler's exception propagates to the publisher; code
    that must survive user errors (strategies) wraps itself.
    """

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._counts: dict[type, int] = defaultdict(int)
        self.published = 0

    def subscribe(self, topic: type[E], handler: Callable[[E], None]) -> None:
        """Call `handler` with every event whose type is `topic`."""
        self._handlers[topic].append(handler)

    def handlers(self, topic: type) -> list[Handler]:
        """Return the handlers of `topic` in dispatch order (a copy)."""
        return list(self._handlers.get(topic, ()))

    def wants(self, topic: type) -> bool:
        """Return True when `topic` has subscribers (producers may skip building the event)."""
        return topic in self._handlers

    def publish(self, event: object) -> None:
        """Deliver `event` to its subscribers now."""
        topic = type(event)
        self._counts[topic] += 1
        self.published += 1
        for handler in self._handlers.get(topic, ()):
            handler(event)

    def counts(self) -> dict[str, int]:
        """Return the number of events published per topic name."""
        return {topic.__name__: n for topic, n in self._counts.items()}


class BusCollector(Collector):
    """Scrape-time view of the bus counters (cheaper than a counter increment per event)."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def collect(self) -> Any:
        family = CounterMetricFamily(
            "tradebot_bus_events", "Events published on the bus, per topic", labels=["topic"]
        )
        for topic, count in sorted(self._bus.counts().items()):
            family.add_metric([topic], count)
        yield family


def register_bus_metrics(bus: Bus) -> Callable[[], None]:
    """Expose the bus counters on /metrics; return a function that removes them again."""
    collector = BusCollector(bus)
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)
