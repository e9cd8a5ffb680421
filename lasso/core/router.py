"""Routing decisions: which providers to try for one call, in which order.

The router is pure: the shell hands it a snapshot of every provider channel
(provider × transport) with its health and latency, and it returns a
:class:`RoutePlan`. The dispatcher then carries the plan out. Decide
synchronously, then act.

Health tiers come first in every strategy, and the strategy orders providers
inside a tier:

    tier 0  breaker closed, not rate-limited
    tier 1  breaker half-open (admits one probe at a time)
    tier 2  rate-limited (demoted until its Retry-After passes)
    --      breaker open: never planned
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from enum import Enum

import msgspec

from lasso.core.methods import deadline_ms, is_replay_safe


class Strategy(Enum):
    FASTEST = "fastest"
    LOAD_BALANCED = "load-balanced"
    LATENCY_WEIGHTED = "latency-weighted"
    ROUND_ROBIN = "round-robin"
    PRIORITY = "priority"


STRATEGY_NAMES = frozenset(s.value for s in Strategy)


class Tier(Enum):
    HEALTHY = 0
    HALF_OPEN = 1
    RATE_LIMITED = 2
    OPEN = 3


class ChannelView(msgspec.Struct, frozen=True):
    """What routing sees of one provider channel at decision time."""

    provider_id: str
    transport: str
    priority: int
    order: int
    tier: Tier
    latency_ms: float | None = None
    samples: int = 0
    retry_after_s: float | None = None


class RoutePlan(msgspec.Struct, frozen=True):
    """The ordered channels to try, and the budget for trying them."""

    strategy: Strategy
    channels: tuple[ChannelView, ...]
    max_attempts: int
    deadline_s: float
    replay_safe: bool
    failover: bool
    excluded_open: tuple[ChannelView, ...] = ()

    def candidate_names(self) -> list[str]:
        return [f"{c.provider_id}:{c.transport}" for c in self.channels]

    def retry_after_ms(self) -> int | None:
        """When every channel is open: how long until the first may recover."""
        waits = [c.retry_after_s for c in self.excluded_open if c.retry_after_s is not None]
        return round(min(waits) * 1000) if waits and not self.channels else None


class RouterState:
    """The little state a strategy keeps between calls (round-robin cursor)."""

    def __init__(self) -> None:
        self._cursor = 0

    def next_cursor(self) -> int:
        self._cursor += 1
        return self._cursor


def plan(
    views: Sequence[ChannelView],
    *,
    method: str,
    strategy: Strategy,
    state: RouterState,
    rng: random.Random,
    max_attempts: int = 3,
    deadline_overrides: dict[str, int] | None = None,
    pinned: bool = False,
) -> RoutePlan:
    """Order ``views`` for one call. ``pinned`` means a provider override: no failover."""
    usable = [v for v in views if v.tier is not Tier.OPEN]
    ordered = _rank(usable, strategy, state, rng)
    ordered.sort(key=lambda v: v.tier.value)  # stable: strategy order kept inside a tier
    replay_safe = is_replay_safe(method)
    return RoutePlan(
        strategy=strategy,
        channels=tuple(ordered),
        max_attempts=(max_attempts if replay_safe else 1) if not pinned else 1,
        deadline_s=deadline_ms(method, deadline_overrides) / 1000,
        replay_safe=replay_safe,
        failover=not pinned,
        excluded_open=tuple(v for v in views if v.tier is Tier.OPEN),
    )


def _rank(
    views: list[ChannelView], strategy: Strategy, state: RouterState, rng: random.Random
) -> list[ChannelView]:
    if strategy is Strategy.PRIORITY:
        return sorted(views, key=lambda v: (v.priority, v.order))
    if strategy is Strategy.ROUND_ROBIN:
        if not views:
            return []
        start = state.next_cursor() % len(views)
        by_order = sorted(views, key=lambda v: v.order)
        return by_order[start:] + by_order[:start]
    if strategy is Strategy.FASTEST:
        return sorted(views, key=lambda v: (v.latency_ms is None, v.latency_ms or 0.0, v.order))
    shuffled = list(views)
    rng.shuffle(shuffled)
    return shuffled
