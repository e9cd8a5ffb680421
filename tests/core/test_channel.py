"""The pure channel: its tier, its routing view and its statistics, on plain numbers."""

from __future__ import annotations

import random

from lasso.core.backoff import RestartTracker
from lasso.core.breaker import BreakerPolicy, CircuitBreaker, CircuitState, FailureKind
from lasso.core.channel import STALE_AFTER_S, Channel
from lasso.core.latency import LatencyBook, LatencyKey
from lasso.core.router import Tier


def make(book: LatencyBook | None = None) -> Channel:
    return Channel(
        "p1",
        "http",
        priority=2,
        order=1,
        breaker=CircuitBreaker(BreakerPolicy(failure_threshold=2), random.Random(1)),
        restarts=RestartTracker(max_restarts=1, window_s=60.0),
        latency=book or LatencyBook(),
    )


def test_a_fresh_channel_is_healthy_and_says_so() -> None:
    channel = make()
    stats = channel.statistics(0.0)
    assert (stats.provider_id, stats.transport, stats.tier, stats.circuit) == (
        "p1",
        "http",
        "healthy",
        "closed",
    )
    assert (stats.rate_limited, stats.quarantined) == (False, False)
    view = channel.view(0.0, method="eth_call")
    assert (view.priority, view.order, view.tier, view.latency_ms) == (2, 1, Tier.HEALTHY, None)


def test_outcomes_move_the_tier() -> None:
    channel = make()
    channel.mark_limited(1.0, channel.admit(1.0), 2_000)
    assert channel.tier(1.5) is Tier.RATE_LIMITED and channel.available(1.5)
    assert channel.tier(3.0) is Tier.HEALTHY  # Retry-After passed
    for _ in range(2):
        channel.record_failure(3.0, channel.admit(3.0), FailureKind.SERVER, method="eth_call")
    assert channel.breaker.state(3.0) is CircuitState.OPEN
    view = channel.view(3.0)
    assert view.tier is Tier.OPEN and view.retry_after_s is not None and view.retry_after_s > 0
    assert not channel.available(3.0)
    assert channel.statistics(3.0).breaker.consecutive_failures == 2


def test_quarantine_is_the_restart_tracker_view() -> None:
    channel = make()
    channel.restarts.record_restart(0.0)
    assert not channel.quarantined(0.0)
    channel.restarts.record_restart(1.0)
    assert channel.quarantined(1.0) and channel.tier(1.0) is Tier.OPEN
    assert channel.statistics(1.0).restarts.restarts_in_window == 2
    assert not channel.quarantined(60.0)  # the first restart aged out


def test_latency_goes_to_the_chain_book_under_its_own_key() -> None:
    book = LatencyBook()
    channel = make(book)
    channel.record_success(5.0, channel.admit(5.0), method="eth_call", latency_us=4_000)
    channel.record_success(5.0, channel.admit(5.0))  # no method: no latency sample
    stats = book.get(LatencyKey("p1", "eth_call", "http"))
    assert stats is not None and stats.samples == 1
    assert channel.latency("eth_call") is stats
    view = channel.view(5.0, method="eth_call")
    assert (view.latency_ms, view.samples) == (4.0, 1)
    stale = channel.view(5.0 + STALE_AFTER_S + 1, method="eth_call")
    assert (stale.latency_ms, stale.samples) == (None, 0)  # old evidence ranks like none
    assert channel.view(5.0).latency_ms is None  # no method asked: no lookup
