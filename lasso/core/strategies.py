"""How each routing strategy orders the channels of one health tier.

The router (:mod:`lasso.core.router`) splits the channels into health tiers and
calls one of these on each tier, so nothing here knows about health. Every
function is pure: randomness comes from the injected ``random.Random`` and
nothing is remembered between calls (the round-robin cursor lives in
``RouterState``). Each returns a new list or reorders the list it is given,
and never drops or duplicates a channel.

Latency estimates. A channel is *measured* once it has ``min_samples`` latency
samples for the method; until then it is estimated at the method's median
latency (the median of the measured channels, or whatever the caller passes),
so a newcomer is tried roughly as often as a typical provider rather than
never or always. With nothing measured at all every channel is alike.

Latency-weighted order. Channel ``i`` has weight ``w_i = (best / latency_i)^β``
and the permutation is an exponential race: each channel draws
``T_i = E_i / w_i`` with ``E_i ~ Exp(1)`` and the channels run in ascending
``T_i``. Then ``P(i first) = w_i / Σw``, and so on down the order (the runner-up
is a weighted pick among the rest). The keys are compared in log space,
``ln E_i + β·ln latency_i`` (the constant ``β·ln best`` drops out), so no weight
can underflow to zero however large β or the latency spread.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Iterable
from operator import attrgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lasso.core.router import ChannelView

#: Latencies are floored here (1 µs, the latency book's resolution) so a 0 ms
#: sample cannot take a logarithm of zero.
MIN_LATENCY_MS = 0.001
#: The smallest uniform draw the race uses: ``rng.random()`` may return 0.0.
_MIN_UNIFORM = 2.0**-53

_PRIORITY_KEY = attrgetter("priority")
_ORDER_KEY = attrgetter("order")
_LATENCY = attrgetter("latency_ms")


def by_priority(views: list[ChannelView]) -> list[ChannelView]:
    """Configured order: priority ascending, then position in the config."""
    # Two stable sorts on int keys beat one sort on (priority, order) tuples 2:1.
    views.sort(key=_ORDER_KEY)
    views.sort(key=_PRIORITY_KEY)
    return views


def rotated(views: list[ChannelView], cursor: int) -> list[ChannelView]:
    """Config-file order, rotated to start ``cursor`` places along."""
    views.sort(key=_ORDER_KEY)
    start = cursor % len(views)
    return views[start:] + views[:start] if start else views


def shuffled(views: list[ChannelView], rng: random.Random) -> list[ChannelView]:
    """A uniformly random permutation.

    Sorting by independent uniform keys is uniform (ties have probability ~n²/2⁵⁴)
    and, with the keys drawn in C's sort loop, faster than ``rng.shuffle``.
    """
    if len(views) > 1:
        draw = rng.random
        views.sort(key=lambda _: draw())
    return views


class MedianLatency:
    """The method's median latency, worked out on first use and then kept.

    Most plans never ask (every channel is measured), so the median over the
    snapshot is only computed when an unmeasured channel needs an estimate. A
    ``known`` value (from the caller) is used as is.
    """

    __slots__ = ("_min_samples", "_ms", "_pending", "_views")

    def __init__(
        self, views: Iterable[ChannelView], min_samples: int, known: float | None = None
    ) -> None:
        self._views = views
        self._min_samples = min_samples
        self._ms = known
        self._pending = known is None

    def __call__(self) -> float | None:
        if self._pending:
            self._ms = median_latency_ms(self._views, self._min_samples)
            self._pending = False
        return self._ms


def median_latency_ms(views: Iterable[ChannelView], min_samples: int) -> float | None:
    """Median latency of the measured channels among ``views``; None if none is."""
    known = sorted(
        v.latency_ms for v in views if v.latency_ms is not None and v.samples >= min_samples
    )
    n = len(known)
    if not n:
        return None
    mid = n // 2
    return known[mid] if n % 2 else (known[mid - 1] + known[mid]) / 2


def by_latency(
    views: list[ChannelView], *, min_samples: int, median: MedianLatency
) -> list[ChannelView]:
    """Fastest first; unmeasured channels sit where the median latency would.

    Measured channels sort by latency; exact ties keep snapshot order (the shell
    builds snapshots in config order). Unmeasured ones go in (priority, config
    position) order just before any measured channel whose latency equals the
    median exactly: a tie goes to the channel we know less about, so it gets
    measured. With no median (nothing measured) they are simply in config order.
    """
    measured: list[ChannelView] = []
    unmeasured: list[ChannelView] = []
    for v in views:
        if v.latency_ms is None or v.samples < min_samples:
            unmeasured.append(v)
        else:
            measured.append(v)
    measured.sort(key=_LATENCY)
    if not unmeasured:
        return measured
    by_priority(unmeasured)
    median_ms = median()
    at = len(measured) if median_ms is None else bisect_left(measured, median_ms, key=_LATENCY)
    measured[at:at] = unmeasured
    return measured


def latency_race(
    views: list[ChannelView],
    rng: random.Random,
    *,
    beta: float,
    min_samples: int,
    median: MedianLatency,
) -> list[ChannelView]:
    """A permutation weighted by ``(best / latency)^β`` (see the module docstring).

    Unmeasured channels race with the median's latency, hence the median's
    weight; with nothing measured (no median) every channel weighs the same.
    """
    if len(views) < 2:
        return views
    log = math.log
    draw = rng.random
    unmeasured: float | None = None  # β·ln(median), once needed
    keys: list[float] = []
    for v in views:
        latency = v.latency_ms
        if latency is None or v.samples < min_samples:
            if unmeasured is None:
                median_ms = median()
                unmeasured = (
                    0.0 if median_ms is None else beta * log(max(median_ms, MIN_LATENCY_MS))
                )
            weight_log = unmeasured
        else:
            weight_log = beta * log(latency if latency > MIN_LATENCY_MS else MIN_LATENCY_MS)
        keys.append(log(-log(draw() or _MIN_UNIFORM)) + weight_log)
    return [views[i] for i in sorted(range(len(views)), key=keys.__getitem__)]


def explore(views: list[ChannelView], rng: random.Random, share: float) -> bool:
    """With probability ``share``, move a uniformly chosen runner-up to the front.

    The rest keep their order, so the usual best becomes the first fallback.
    Returns whether it did. Draws from ``rng`` only when there is a choice.
    """
    n = len(views)
    if n < 2 or share <= 0.0 or rng.random() >= share:
        return False
    views.insert(0, views.pop(rng.randrange(1, n)))
    return True
