"""Rate-limit demotion for one provider × transport.

A provider that says "slow down" (a JSON-RPC rate-limit error or an HTTP 429) is demoted,
not excluded: the router moves it behind the healthy providers until the limit expires.
This state is kept apart from the circuit breaker, because a throttled provider is healthy.

The expiry only ever moves later: when several concurrent requests report a limit, the
longest one wins whatever order the reports arrive in. A provider's Retry-After is capped
(ten minutes by default) so one absurd header cannot sideline it for a day.
"""

from __future__ import annotations

import msgspec

__all__ = ["RateLimitPolicy", "RateLimitState", "RateLimitStatistics"]


class RateLimitPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    default_retry_after_ms: int = 30_000
    max_retry_after_ms: int = 600_000

    def __post_init__(self) -> None:
        if self.default_retry_after_ms < 0:
            raise ValueError("default_retry_after_ms must be >= 0")
        if self.max_retry_after_ms < self.default_retry_after_ms:
            raise ValueError("max_retry_after_ms must be >= default_retry_after_ms")


class RateLimitStatistics(msgspec.Struct, frozen=True):
    limited: bool
    limited_until: float | None
    remaining_s: float
    last_retry_after_ms: int | None
    total_marks: int


class RateLimitState:
    """Whether one provider channel is currently rate-limited. Times are monotonic seconds."""

    __slots__ = ("_last_retry_after_ms", "_limited_until", "_policy", "_total_marks")

    def __init__(self, policy: RateLimitPolicy | None = None) -> None:
        self._policy = policy or RateLimitPolicy()
        self._limited_until: float | None = None
        self._last_retry_after_ms: int | None = None
        self._total_marks = 0

    def mark_limited(self, now: float, retry_after_ms: int | None = None) -> None:
        """Record a rate-limit answer; ``None`` means the provider gave no Retry-After."""
        if retry_after_ms is None:
            retry_after_ms = self._policy.default_retry_after_ms
        retry_after_ms = min(max(retry_after_ms, 0), self._policy.max_retry_after_ms)
        until = now + retry_after_ms / 1000
        if self._limited_until is None or until > self._limited_until:
            self._limited_until = until
        self._last_retry_after_ms = retry_after_ms
        self._total_marks += 1

    def is_limited(self, now: float) -> bool:
        return self._limited_until is not None and now < self._limited_until

    def remaining_s(self, now: float) -> float:
        if self._limited_until is None:
            return 0.0
        return max(0.0, self._limited_until - now)

    def clear(self) -> None:
        """Lift the limit early (for example after an operator reset)."""
        self._limited_until = None

    def statistics(self, now: float) -> RateLimitStatistics:
        limited = self.is_limited(now)
        return RateLimitStatistics(
            limited=limited,
            limited_until=self._limited_until if limited else None,
            remaining_s=self.remaining_s(now),
            last_retry_after_ms=self._last_retry_after_ms,
            total_marks=self._total_marks,
        )
