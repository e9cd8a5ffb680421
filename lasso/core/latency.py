"""Passive latency statistics per (provider, method, transport).

Every finished attempt feeds one ``LatencyStats``:

* a usable success (a result the client can use) is a latency sample: it moves the
  EWMA, enters the window of recent samples and counts as a success;
* a failure (timeout, transport error, provider failure, rate limit) counts against the
  success rate only; it is not a latency sample, since a fast error says nothing about
  fast answers;
* a cancelled attempt (the client went away, or a hedged twin won) must not be recorded
  at all: it says nothing about the provider. Nor should deterministic or capability
  errors, which are about the request, not the provider.

Latency EWMA: ``ewma += alpha · (sample - ewma)``, seeded by the first sample.
Success rate: an EWMA too, of 1 for a success and 0 for a failure, with the same alpha,
starting from 1.0 (an unobserved provider is presumed healthy), so it forgets old
outages at the same pace the latency does. ``None`` until the first outcome. The raw
success and failure counts are kept alongside for display.

Percentiles use the nearest-rank method over the window: the p-th percentile of ``n``
sorted samples is ``sorted[ceil(n·p) - 1]``. Recording is O(1); the window is sorted
lazily on the first percentile read after a change and the sorted copy is cached.
"""

from __future__ import annotations

import math
import statistics as _stats
from collections import deque
from typing import NamedTuple

import msgspec

__all__ = [
    "LatencyBook",
    "LatencyBookStatistics",
    "LatencyEntry",
    "LatencyKey",
    "LatencyPolicy",
    "LatencySnapshot",
    "LatencyStats",
]


class LatencyPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ewma_alpha: float = 0.125
    window: int = 100
    max_keys: int = 10_000  # client-chosen method names must not grow the book forever

    def __post_init__(self) -> None:
        if not 0 < self.ewma_alpha <= 1:
            raise ValueError("ewma_alpha must be in (0, 1]")
        if self.window < 1:
            raise ValueError("window must be >= 1")
        if self.max_keys < 1:
            raise ValueError("max_keys must be >= 1")


class LatencySnapshot(msgspec.Struct, frozen=True):
    samples: int
    failures: int
    ewma_us: float | None
    p50_us: int | None
    p90_us: int | None
    p99_us: int | None
    success_rate: float | None
    last_seen: float | None


class LatencyStats:
    """Latency and success statistics for one (provider, method, transport)."""

    __slots__ = (
        "_alpha",
        "_ewma_us",
        "_failures",
        "_last_seen",
        "_samples",
        "_sorted",
        "_success_rate",
        "_window",
    )

    def __init__(self, policy: LatencyPolicy | None = None) -> None:
        policy = policy or LatencyPolicy()
        self._alpha = policy.ewma_alpha
        self._window: deque[int] = deque(maxlen=policy.window)
        self._sorted: list[int] | None = None
        self._ewma_us: float | None = None
        self._success_rate: float | None = None
        self._samples = 0
        self._failures = 0
        self._last_seen: float | None = None

    def record_success(self, now: float, latency_us: int) -> None:
        if latency_us < 0:
            raise ValueError("latency_us must be >= 0")
        ewma = self._ewma_us
        self._ewma_us = (
            float(latency_us) if ewma is None else ewma + self._alpha * (latency_us - ewma)
        )
        self._window.append(latency_us)
        self._sorted = None
        self._samples += 1
        self._observe(now, 1.0)

    def record_failure(self, now: float) -> None:
        self._failures += 1
        self._observe(now, 0.0)

    def _observe(self, now: float, outcome: float) -> None:
        rate = 1.0 if self._success_rate is None else self._success_rate
        self._success_rate = rate + self._alpha * (outcome - rate)
        self._last_seen = now

    @property
    def ewma_us(self) -> float | None:
        return self._ewma_us

    @property
    def success_rate(self) -> float | None:
        return self._success_rate

    @property
    def samples(self) -> int:
        return self._samples

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def last_seen(self) -> float | None:
        return self._last_seen

    def percentile(self, p: float) -> int | None:
        """Nearest-rank percentile of the recent window, ``p`` in (0, 1]; None if empty."""
        if not 0 < p <= 1:
            raise ValueError("p must be in (0, 1]")
        if not self._window:
            return None
        if self._sorted is None:
            self._sorted = sorted(self._window)
        rank = math.ceil(len(self._sorted) * p - 1e-9)  # tolerate 100 * 0.07 = 7.000000000000001
        return self._sorted[max(rank, 1) - 1]

    def statistics(self) -> LatencySnapshot:
        return LatencySnapshot(
            samples=self._samples,
            failures=self._failures,
            ewma_us=self._ewma_us,
            p50_us=self.percentile(0.5),
            p90_us=self.percentile(0.9),
            p99_us=self.percentile(0.99),
            success_rate=self._success_rate,
            last_seen=self._last_seen,
        )


class LatencyKey(NamedTuple):
    provider_id: str
    method: str
    transport: str


class LatencyEntry(msgspec.Struct, frozen=True):
    provider_id: str
    method: str
    transport: str
    stats: LatencySnapshot


class LatencyBookStatistics(msgspec.Struct, frozen=True):
    entries: tuple[LatencyEntry, ...]
    dropped_records: int


class LatencyBook:
    """All ``LatencyStats`` of one chain, keyed by ``LatencyKey``.

    Once ``max_keys`` keys exist, records for new keys are dropped (and counted), so
    clients sending made-up method names cannot grow it without bound.
    """

    __slots__ = ("_by_route", "_dropped", "_policy", "_stats")

    def __init__(self, policy: LatencyPolicy | None = None) -> None:
        self._policy = policy or LatencyPolicy()
        self._stats: dict[LatencyKey, LatencyStats] = {}
        self._by_route: dict[tuple[str, str], list[LatencyStats]] = {}
        self._dropped = 0

    def get(self, key: LatencyKey) -> LatencyStats | None:
        return self._stats.get(key)

    def record_success(self, key: LatencyKey, now: float, latency_us: int) -> None:
        stats = self._stats_for(key)
        if stats is not None:
            stats.record_success(now, latency_us)

    def record_failure(self, key: LatencyKey, now: float) -> None:
        stats = self._stats_for(key)
        if stats is not None:
            stats.record_failure(now)

    def method_median(self, method: str, transport: str) -> float | None:
        """Median of the providers' latency EWMAs for this method and transport.

        Used as the estimate for a provider with no samples of its own yet.
        """
        ewmas = [s.ewma_us for s in self._by_route.get((method, transport), ())]
        known = [e for e in ewmas if e is not None]
        return _stats.median(known) if known else None

    def statistics(self) -> LatencyBookStatistics:
        entries = tuple(
            LatencyEntry(key.provider_id, key.method, key.transport, stats.statistics())
            for key, stats in sorted(self._stats.items())
        )
        return LatencyBookStatistics(entries=entries, dropped_records=self._dropped)

    def _stats_for(self, key: LatencyKey) -> LatencyStats | None:
        stats = self._stats.get(key)
        if stats is not None:
            return stats
        if len(self._stats) >= self._policy.max_keys:
            self._dropped += 1
            return None
        stats = self._stats[key] = LatencyStats(self._policy)
        self._by_route.setdefault((key.method, key.transport), []).append(stats)
        return stats
