"""One start/stop protocol for every component, and the ordered list that starts them.

A component subscribes to the bus in `start()` and nowhere else. The bus dispatches each event
to its handlers in subscription order, so the order of the list is the dispatch order: on a
book update, risk sees the new book before the paper venue matches against it, the features
update before the portfolio marks, and the strategies, last, read all of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


class Component(Protocol):
    """What the app starts and stops."""

    def start(self) -> None:
        """Subscribe to the bus and arm timers: from now on the component acts."""

    def stop(self) -> None:
        """Disarm timers and release what it holds (idempotent)."""


class Lifecycle:
    """Start named components in their order (in stages), stop them in reverse."""

    def __init__(self, components: Sequence[tuple[str, Component]]) -> None:
        names = [name for name, _ in components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names repeat: {names}")
        self._components = list(components)
        self._started: list[tuple[str, Component]] = []

    @property
    def order(self) -> list[str]:
        """Return the component names in start (and dispatch) order."""
        return [name for name, _ in self._components]

    @property
    def started(self) -> list[str]:
        """Return the names of the components started so far, in order."""
        return [name for name, _ in self._started]

    def start(self, through: str | None = None) -> None:
        """Start the components not yet started, in order, up to and including `through`.

        The daemon starts in two stages: everything but the strategies once state is
        recovered, the strategies once the books are synced.
        """
        if through is not None and through not in self.order:
            raise ValueError(f"no component {through!r} (known: {', '.join(self.order)})")
        for name, component in self._components[len(self._started):]:
            component.start()
            self._started.append((name, component))
            log.debug("component_started", component=name)
            if name == through:
                return

    def stop(self) -> None:
        """Stop the started components in reverse order (idempotent)."""
        while self._started:
            name, component = self._started.pop()
            component.stop()
            log.debug("component_stopped", component=name)
