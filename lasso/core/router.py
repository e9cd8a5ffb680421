"""Routing decisions: which providers to try for one call, in which order.

The router is pure: the shell hands it a snapshot of every provider channel
(provider × transport) with its health and latency, and it returns a
:class:`RoutePlan`. The dispatcher then carries the plan out. Decide
synchronously, then act.

Health tiers come first in every strategy, and the strategy orders channels
inside a tier:

    tier 0  breaker closed, not rate-limited
    tier 1  breaker half-open (admits one probe at a time)
    tier 2  rate-limited (demoted until its Retry-After passes)
    --      breaker open: never planned (kept in ``excluded_open`` for Retry-After)

The strategies (orderings in :mod:`lasso.core.strategies`):

    priority          (priority, config position) ascending
    round-robin       config position, rotated one place per round-robin plan
                      (each tier rotates by the same shared cursor)
    load-balanced     uniform random permutation
    latency-weighted  random permutation weighted by (best / latency)^lw_beta
    fastest           lowest latency for this method first (exact ties keep
                      snapshot order); then, with probability exploration_share,
                      one of the top tier's other channels, chosen uniformly,
                      moves to the front and the rest keep their order
                      (``RoutePlan.explored``). That trickle of traffic keeps
                      re-measuring the others, so a provider that was slow at
                      start can win later.

A channel counts as measured for ``fastest`` and ``latency-weighted`` once it
has ``min_samples`` samples of this method; until then it is treated as having
the method's median latency: ``method_median_ms`` if the caller passes one,
otherwise the median over the measured channels of this snapshot (open ones
included, since their latency is still evidence of what the method costs).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from enum import Enum
from itertools import chain

import msgspec

from lasso.core import strategies
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
    """What routing sees of one provider channel at decision time.

    ``latency_ms`` is the channel's latency estimate (EWMA) for the method being
    routed, ``samples`` how many latency samples it rests on.
    """

    provider_id: str
    transport: str
    priority: int
    order: int
    tier: Tier
    latency_ms: float | None = None
    samples: int = 0
    retry_after_s: float | None = None


class RoutePlan(msgspec.Struct, frozen=True):
    """The ordered channels to try, and the budget for trying them.

    ``explored`` is true when ``fastest`` put a runner-up first to re-measure it.
    """

    strategy: Strategy
    channels: tuple[ChannelView, ...]
    max_attempts: int
    deadline_s: float
    replay_safe: bool
    failover: bool
    excluded_open: tuple[ChannelView, ...] = ()
    explored: bool = False

    def candidate_names(self) -> list[str]:
        return [f"{c.provider_id}:{c.transport}" for c in self.channels]

    def retry_after_ms(self) -> int | None:
        """When every channel is open: how long until the first may recover."""
        waits = [c.retry_after_s for c in self.excluded_open if c.retry_after_s is not None]
        return round(min(waits) * 1000) if waits and not self.channels else None


class RouterState:
    """The little state a strategy keeps between calls (round-robin cursor)."""

    __slots__ = ("_cursor",)

    def __init__(self) -> None:
        self._cursor = 0

    def next_cursor(self) -> int:
        """This call's cursor (0 on the first call), advancing it for the next."""
        cursor = self._cursor
        self._cursor = cursor + 1
        return cursor


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
    exploration_share: float = 0.05,
    lw_beta: float = 3.0,
    method_median_ms: float | None = None,
    min_samples: int = 3,
) -> RoutePlan:
    """Order ``views`` for one call. ``pinned`` means a provider override: no failover.

    ``exploration_share`` applies to ``fastest`` and ``lw_beta`` to
    ``latency-weighted``; ``method_median_ms`` (None: computed from ``views``) and
    ``min_samples`` to both. ``rng`` is drawn from only by the random strategies
    and by ``fastest``'s exploration; ``state`` only by round-robin.
    """
    if not 0.0 <= exploration_share <= 1.0:
        raise ValueError("exploration_share must be in [0, 1]")
    if lw_beta < 0.0:
        raise ValueError("lw_beta must be >= 0")
    tiers, excluded = _tiers(views)

    explored = False
    if strategy is Strategy.PRIORITY:
        ranked = [strategies.by_priority(t) for t in tiers]
    elif strategy is Strategy.ROUND_ROBIN:
        cursor = state.next_cursor()
        ranked = [strategies.rotated(t, cursor) for t in tiers]
    elif strategy is Strategy.LOAD_BALANCED:
        ranked = [strategies.shuffled(t, rng) for t in tiers]
    elif strategy is Strategy.FASTEST:
        median = strategies.MedianLatency(views, min_samples, method_median_ms)
        ranked = [strategies.by_latency(t, min_samples=min_samples, median=median) for t in tiers]
        explored = bool(ranked) and strategies.explore(ranked[0], rng, exploration_share)
    else:
        median = strategies.MedianLatency(views, min_samples, method_median_ms)
        ranked = [
            strategies.latency_race(t, rng, beta=lw_beta, min_samples=min_samples, median=median)
            for t in tiers
        ]

    channels = tuple(ranked[0]) if len(ranked) == 1 else tuple(chain.from_iterable(ranked))
    replay_safe = is_replay_safe(method)
    return RoutePlan(
        strategy=strategy,
        channels=channels,
        max_attempts=1 if pinned or not replay_safe else max_attempts,
        deadline_s=deadline_ms(method, deadline_overrides) / 1000,
        replay_safe=replay_safe,
        failover=not pinned,
        excluded_open=excluded,
        explored=explored,
    )


def _tiers(
    views: Sequence[ChannelView],
) -> tuple[list[list[ChannelView]], tuple[ChannelView, ...]]:
    """The non-empty health tiers, best first, each in snapshot order; and the open ones."""
    # Enum member lookups cost ~70 ns each on CPython 3.11: bind them once.
    healthy_, half_open_, limited_ = Tier.HEALTHY, Tier.HALF_OPEN, Tier.RATE_LIMITED
    healthy: list[ChannelView] = []
    half_open: list[ChannelView] = []
    limited: list[ChannelView] = []
    excluded: list[ChannelView] = []
    for v in views:
        tier = v.tier
        if tier is healthy_:
            healthy.append(v)
        elif tier is half_open_:
            half_open.append(v)
        elif tier is limited_:
            limited.append(v)
        else:
            excluded.append(v)
    return [t for t in (healthy, half_open, limited) if t], tuple(excluded)
