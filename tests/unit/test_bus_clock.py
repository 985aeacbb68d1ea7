from __future__ import annotations

from tradebot.bus import Bus
from tradebot.clock import SimClock


def test_bus_dispatches_by_type_in_subscription_order_and_counts() -> None:
    bus = Bus()
    seen: list[str] = []
    bus.subscribe(int, lambda e: seen.append(f"a{e}"))
    bus.subscribe(int, lambda e: seen.append(f"b{e}"))
    bus.subscribe(str, lambda e: seen.append(e))
    bus.publish(1)
    bus.publish("x")
    bus.publish(2.0)
    assert seen == ["a1", "b1", "x"]
    assert bus.counts() == {"int": 1, "str": 1, "float": 1}
    assert bus.wants(int) and not bus.wants(float)


def test_sim_clock_fires_timers_in_time_order_at_their_own_time() -> None:
    clock = SimClock(100)
    fired: list[tuple[str, int]] = []
    clock.call_at(300, lambda: fired.append(("b", clock.now_ns())))
    clock.call_at(200, lambda: fired.append(("a", clock.now_ns())))
    cancelled = clock.call_at(250, lambda: fired.append(("x", clock.now_ns())))
    cancelled.cancel()
    clock.advance_to(280)
    assert fired == [("a", 200)] and clock.now_ns() == 280
    clock.advance_to(1000)
    assert fired == [("a", 200), ("b", 300)] and clock.now_ns() == 1000
    clock.advance_to(500)
    assert clock.now_ns() == 1000  # time never goes back


def test_a_timer_scheduling_another_runs_it_within_the_same_advance() -> None:
    clock = SimClock(0)
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(clock.now_ns())
        clock.call_at(clock.now_ns() + 10, tick)

    clock.call_at(10, tick)
    clock.advance_to(35)
    assert ticks == [10, 20, 30]
