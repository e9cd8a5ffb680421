"""The pure side of breaker events: each transition is kept once, drained once, never lost.

The breaker keeps its transitions (with the ``now`` they happened at) until its
channel drains them to its observer; a lazy open -> half_open made by a bare
question goes out with the channel's next call.
"""

from __future__ import annotations

import random

from lasso.core.backoff import RestartTracker
from lasso.core.breaker import (
    PENDING_TRANSITIONS,
    BreakerPolicy,
    BreakerTransition,
    CircuitBreaker,
    CircuitState,
    FailureKind,
)
from lasso.core.channel import Channel
from lasso.core.latency import LatencyBook
from lasso.core.linethrottle import LineThrottle

OPEN, HALF_OPEN, CLOSED = CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED
POLICY = BreakerPolicy(
    failure_threshold=2, recovery_timeout_ms=1000, success_threshold=1, jitter_ratio=0.0
)


def channel() -> tuple[Channel, list[BreakerTransition]]:
    seen: list[BreakerTransition] = []
    ch = Channel(
        "p1",
        "http",
        priority=1,
        order=0,
        breaker=CircuitBreaker(POLICY, random.Random(1)),
        restarts=RestartTracker(5, 60.0),
        latency=LatencyBook(),
    )
    ch.observer = lambda _channel, transition: seen.append(transition)
    return ch, seen


def fail(ch: Channel, now: float, kind: FailureKind = FailureKind.SERVER) -> None:
    ch.record_failure(now, ch.admit(now), kind)


def test_each_transition_reaches_the_observer_once_with_its_time() -> None:
    ch, seen = channel()
    fail(ch, 0.0)
    fail(ch, 0.5)
    assert [(t.at, t.old, t.new) for t in seen] == [(0.5, CLOSED, OPEN)]
    assert seen[0].reason == "2 consecutive failures (last: server)"
    assert ch.admit(1.0).admitted is False  # still open: nothing new
    probe = ch.admit(1.5)  # the deadline passed: half-open, lazily, at 1.5
    ch.record_success(1.6, probe)
    assert [(t.at, t.old, t.new) for t in seen[1:]] == [
        (1.5, OPEN, HALF_OPEN),
        (1.6, HALF_OPEN, CLOSED),
    ]
    assert ch.breaker.drain_transitions() == []  # drained once, by the channel


def test_a_lazy_half_open_from_a_bare_question_goes_out_at_the_next_channel_call() -> None:
    ch, seen = channel()
    fail(ch, 0.0)
    fail(ch, 0.0)
    assert ch.breaker.statistics(2.0).state is HALF_OPEN  # /health asked the breaker itself
    assert [t.new for t in seen] == [OPEN]
    ch.view(2.5)  # the next routing snapshot (or the prober's tick)
    assert [(t.at, t.new) for t in seen] == [(0.0, OPEN), (2.0, HALF_OPEN)]
    ch.view(3.0)
    assert len(seen) == 2  # never twice


def test_a_forced_open_of_an_open_breaker_is_no_transition() -> None:
    ch, seen = channel()
    fail(ch, 0.0)
    fail(ch, 0.0)
    ch.breaker.force_open(0.1, 5000)
    ch.circuit(0.2)
    assert [t.new for t in seen] == [OPEN]


def test_recovery_probes_are_marked_and_a_real_recovery_is_not() -> None:
    ch, seen = channel()
    fail(ch, 0.0)
    fail(ch, 0.0)
    assert ch.expedite(0.1)
    fail(ch, 0.2)  # the recovery probe failed: back to open, deadline kept
    assert ch.expedite(0.3)
    ch.record_success(0.4, ch.admit(0.4))
    moves = [(t.old, t.new, t.recovery_probe) for t in seen]
    assert moves == [
        (CLOSED, OPEN, False),
        (OPEN, HALF_OPEN, True),
        (HALF_OPEN, OPEN, True),
        (OPEN, HALF_OPEN, True),
        (HALF_OPEN, CLOSED, False),  # recovered: an operator wants this line
    ]


def test_a_bare_breaker_keeps_a_bounded_number() -> None:
    breaker = CircuitBreaker(POLICY, random.Random(1))
    now = 0.0
    for _ in range(PENDING_TRANSITIONS):  # open, half-open, closed... never drained
        for _ in range(2):
            breaker.record_failure(now, breaker.admit(now), FailureKind.SERVER)
        now += 1.0
        breaker.record_success(now, breaker.admit(now))
    assert len(breaker.pending) == PENDING_TRANSITIONS


def test_a_storm_gets_its_first_line_then_one_summary_per_window() -> None:
    throttle: LineThrottle[str] = LineThrottle(window_s=10.0, max_keys=2)
    assert throttle.offer("a", 0.0) is True
    assert [throttle.offer("a", t) for t in (1.0, 2.0, 9.9)] == [False] * 3
    assert throttle.due(5.0) == []
    assert throttle.due(10.0) == [("a", 3)]
    assert throttle.due(20.0) == []  # a quiet window forgets the key
    assert throttle.offer("a", 21.0) is True  # so the next is news again
    assert throttle.offer("b", 21.0) is True
    assert throttle.offer("c", 21.0) is False  # past max_keys: counted, not logged
    assert throttle.due(31.0) == [(None, 1)]
