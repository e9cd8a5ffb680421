"""Inbound rate limits: a token bucket per client key, in a table of bounded size.

Theory of operation. A bucket holds up to ``burst`` tokens and refills at
``rate`` tokens per second; a call takes one token, a batch one per call (at
most ``burst``, so a batch larger than the burst can still pass on a full
bucket). A bucket with too few tokens refuses and says how long until it
would admit: that is the client's ``Retry-After``. A refused request takes
nothing, so a client that keeps retrying too early is never pushed further
back than the refill time.

Rate and burst are passed on every take, not stored: a reload that changes a
limit applies at the bucket's next use, which first refills at the old rate up
to now, then clamps to the new burst. A bucket remembers whether it is limited
(its last take was refused) so the caller can report each transition into the
limited state once, not each refusal.

The table is an LRU of at most ``max_buckets`` buckets. A client spraying keys
(addresses, API key guesses) only ever pushes out the least recently used
ones; a bucket idle long enough to be full again is the same as no bucket, so
eviction mostly drops state that carried no information. Pure: time is an
argument (``now``, seconds on any monotonic clock).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable

import msgspec

__all__ = ["BucketTable", "BucketTableStatistics", "Take", "TokenBucket", "default_burst"]

#: Float slack: 0.1 s at 10/s must refill exactly one token.
_EPSILON = 1e-9


def default_burst(rate: float) -> int:
    """The burst when none is configured: one second's worth, at least one token."""
    return max(1, math.ceil(rate))


class Take(msgspec.Struct, frozen=True):
    """The outcome of one take: admitted, or refused with the wait until it would pass.

    ``entered_limited`` is true for the refusal that moved the bucket from
    admitting to refusing (the one to report).
    """

    admitted: bool
    retry_after_s: float = 0.0
    entered_limited: bool = False

    @property
    def retry_after_ms(self) -> int:
        return max(1, math.ceil(self.retry_after_s * 1000))

    @property
    def retry_after_header(self) -> int:
        """``Retry-After`` in whole seconds, rounded up (RFC 9110: delay-seconds)."""
        return max(1, math.ceil(self.retry_after_s - _EPSILON))


_ADMITTED = Take(True)


class TokenBucket:
    """One client's bucket; starts full."""

    __slots__ = ("limited", "stamp", "tokens")

    def __init__(self, burst: int, now: float) -> None:
        self.tokens = float(burst)
        self.stamp = now
        self.limited = False

    def take(self, rate: float, burst: int, cost: int, now: float) -> Take:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(float(burst), self.tokens + elapsed * rate)
        self.stamp = max(self.stamp, now)
        cost = max(1, min(cost, burst))
        if self.tokens + _EPSILON >= cost:
            self.tokens = max(0.0, self.tokens - cost)
            self.limited = False
            return _ADMITTED
        entered = not self.limited
        self.limited = True
        return Take(False, (cost - self.tokens) / rate, entered)


class BucketTableStatistics(msgspec.Struct, frozen=True):
    buckets: int
    max_buckets: int
    limited: int
    admitted: int
    refused: int
    evicted: int


class BucketTable:
    """Buckets by key, least recently used evicted past ``max_buckets``."""

    def __init__(self, max_buckets: int) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be >= 1")
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()
        self.admitted = 0
        self.refused = 0
        self.evicted = 0
        self._limited = 0  # buckets whose last take was refused

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._buckets

    def take(self, key: Hashable, rate: float, burst: int, cost: int, now: float) -> Take:
        """Take ``cost`` tokens from ``key``'s bucket (made full if it has none)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(burst, now)
            self._shrink_to(self.max_buckets)
        else:
            self._buckets.move_to_end(key)
        was_limited = bucket.limited
        outcome = bucket.take(rate, burst, cost, now)
        self._limited += bucket.limited - was_limited
        if outcome.admitted:
            self.admitted += 1
        else:
            self.refused += 1
        return outcome

    def resize(self, max_buckets: int) -> None:
        """A new bound (a reload): the least recently used go if it shrank."""
        if max_buckets < 1:
            raise ValueError("max_buckets must be >= 1")
        self.max_buckets = max_buckets
        self._shrink_to(max_buckets)

    def forget(self, drop_if: Callable[[Hashable], bool]) -> int:
        """Drop every bucket whose key ``drop_if`` is true for; returns how many."""
        doomed = [key for key in self._buckets if drop_if(key)]
        for key in doomed:
            self._limited -= self._buckets.pop(key).limited
        return len(doomed)

    def _shrink_to(self, size: int) -> None:
        while len(self._buckets) > size:
            _, bucket = self._buckets.popitem(last=False)
            self._limited -= bucket.limited
            self.evicted += 1

    def statistics(self) -> BucketTableStatistics:
        return BucketTableStatistics(
            buckets=len(self._buckets),
            max_buckets=self.max_buckets,
            limited=self._limited,
            admitted=self.admitted,
            refused=self.refused,
            evicted=self.evicted,
        )
