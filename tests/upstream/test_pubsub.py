"""EventBus: fan-out, the slow-consumer Overflow marker, unsubscribe."""

from __future__ import annotations

import pytest
import trio

from lasso.pubsub import (
    EventBus,
    Overflow,
    TopicStatistics,
    WsStable,
    conn_topic,
    subs_topic,
)


def drain(channel: trio.MemoryReceiveChannel[object]) -> list[object]:
    events = []
    while True:
        try:
            events.append(channel.receive_nowait())
        except trio.WouldBlock:
            return events


def test_topic_names() -> None:
    assert conn_topic("mainnet") == "ws:conn:mainnet"
    assert subs_topic("base") == "ws:subs:base"


def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    with bus.subscribe("t") as a, bus.subscribe("t") as b, bus.subscribe("other") as c:
        for n in range(5):
            bus.publish("t", n)
        assert drain(a) == drain(b) == [0, 1, 2, 3, 4]
        assert drain(c) == []
        assert bus.statistics().topics["t"] == TopicStatistics(
            subscribers=2, published=5, dropped=0
        )


def test_publish_without_subscribers_is_counted_and_harmless() -> None:
    bus = EventBus()
    bus.publish("nobody", WsStable("p1"))
    assert bus.statistics().topics["nobody"] == TopicStatistics(0, 1, 0)


def test_slow_consumer_gets_an_overflow_marker_and_does_not_slow_others() -> None:
    bus = EventBus()
    with bus.subscribe("t", max_buffer=3) as slow, bus.subscribe("t", max_buffer=100) as fast:
        for n in range(10):
            bus.publish("t", n)  # never blocks
        assert drain(fast) == list(range(10))
        assert drain(slow) == [0, 1, 2]  # events 3..9 did not fit
        bus.publish("t", 10)
        bus.publish("t", 11)
        assert drain(slow) == [Overflow(dropped=7), 10, 11]
        assert drain(fast) == [10, 11]
        assert bus.statistics().topics["t"].dropped == 7


def test_overflow_marker_has_a_reserved_slot() -> None:
    bus = EventBus()
    with bus.subscribe("t", max_buffer=2) as slow:
        for n in range(3):
            bus.publish("t", n)  # 2 does not fit
        assert slow.receive_nowait() == 0  # one slot free again
        bus.publish("t", 3)  # the marker and the event both fit
        assert drain(slow) == [1, Overflow(dropped=1), 3]


def test_gap_counts_only_since_the_last_marker() -> None:
    bus = EventBus()
    with bus.subscribe("t", max_buffer=1) as slow:
        for round_ in range(3):
            bus.publish("t", f"kept-{round_}")
            bus.publish("t", "lost")
            bus.publish("t", "lost")
            kept = drain(slow)
            assert kept == ([f"kept-{round_}"] if round_ == 0 else [Overflow(2), f"kept-{round_}"])


def test_unsubscribe_on_exit() -> None:
    bus = EventBus()
    with bus.subscribe("t") as channel:
        assert bus.statistics().topics["t"].subscribers == 1
    assert bus.statistics().topics["t"].subscribers == 0
    bus.publish("t", "after")
    with pytest.raises(trio.ClosedResourceError):
        channel.receive_nowait()


def test_unsubscribe_on_error_too() -> None:
    bus = EventBus()
    with pytest.raises(ZeroDivisionError), bus.subscribe("t"):
        1 / 0  # noqa: B018
    assert bus.statistics().topics["t"].subscribers == 0


def test_a_consumer_that_closed_its_channel_does_not_break_publishing() -> None:
    bus = EventBus()
    with bus.subscribe("t") as gone, bus.subscribe("t") as alive:
        gone.close()
        bus.publish("t", 1)
        assert drain(alive) == [1]


def test_max_buffer_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_buffer"), EventBus().subscribe("t", max_buffer=0):
        pass


async def test_a_waiting_consumer_is_woken_by_publish() -> None:
    bus = EventBus()
    got: list[object] = []
    with bus.subscribe("t") as channel:
        async with trio.open_nursery() as nursery:

            async def consume() -> None:
                got.append(await channel.receive())

            nursery.start_soon(consume)
            await trio.testing.wait_all_tasks_blocked()
            bus.publish("t", "wake")
    assert got == ["wake"]
