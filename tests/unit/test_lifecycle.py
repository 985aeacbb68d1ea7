from __future__ import annotations

import pytest

from tradebot.lifecycle import Lifecycle


class Recorder:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def start(self) -> None:
        self.calls.append(f"start {self.name}")

    def stop(self) -> None:
        self.calls.append(f"stop {self.name}")


def test_components_start_in_stages_in_order_and_stop_in_reverse() -> None:
    calls: list[str] = []
    life = Lifecycle([(n, Recorder(n, calls)) for n in ("a", "b", "c")])
    life.start(through="b")
    assert calls == ["start a", "start b"] and life.started == ["a", "b"]
    life.start()
    life.start()  # nothing left to start
    assert calls == ["start a", "start b", "start c"]
    life.stop()
    life.stop()  # idempotent
    assert calls[3:] == ["stop c", "stop b", "stop a"] and life.started == []


def test_an_unknown_stage_or_a_repeated_name_is_refused() -> None:
    calls: list[str] = []
    with pytest.raises(ValueError, match="repeat"):
        Lifecycle([("a", Recorder("a", calls)), ("a", Recorder("a", calls))])
    life = Lifecycle([("a", Recorder("a", calls))])
    with pytest.raises(ValueError, match="no component 'x'"):
        life.start(through="x")
    assert calls == []
