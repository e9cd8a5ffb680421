"""Rate-limit demotion state."""

from __future__ import annotations

import pytest

from lasso.core.ratelimit import RateLimitPolicy, RateLimitState, RateLimitStatistics

T0 = 100.0


def test_fresh_state_is_not_limited() -> None:
    s = RateLimitState()
    assert s.is_limited(T0) is False
    assert s.remaining_s(T0) == 0.0
    assert s.statistics(T0) == RateLimitStatistics(False, None, 0.0, None, 0)


def test_default_retry_after_is_thirty_seconds() -> None:
    s = RateLimitState()
    s.mark_limited(T0)
    assert s.is_limited(T0 + 29.999) is True
    assert s.remaining_s(T0 + 10) == 20.0
    assert s.is_limited(T0 + 30) is False
    assert s.remaining_s(T0 + 31) == 0.0


def test_explicit_retry_after() -> None:
    s = RateLimitState()
    s.mark_limited(T0, 1_500)
    assert s.statistics(T0 + 1) == RateLimitStatistics(
        limited=True,
        limited_until=T0 + 1.5,
        remaining_s=0.5,
        last_retry_after_ms=1_500,
        total_marks=1,
    )
    assert s.is_limited(T0 + 1.5) is False


def test_the_later_expiry_wins_in_any_order() -> None:
    first = RateLimitState()
    first.mark_limited(T0, 10_000)
    first.mark_limited(T0 + 1, 2_000)
    second = RateLimitState()
    second.mark_limited(T0 + 1, 2_000)
    second.mark_limited(T0, 10_000)
    assert first.remaining_s(T0 + 5) == second.remaining_s(T0 + 5) == 5.0


def test_a_new_limit_after_expiry_starts_afresh() -> None:
    s = RateLimitState()
    s.mark_limited(T0, 1_000)
    s.mark_limited(T0 + 5, 2_000)
    assert s.remaining_s(T0 + 6) == 1.0
    assert s.statistics(T0 + 6).total_marks == 2


@pytest.mark.parametrize(
    ("retry_after_ms", "remaining_s"), [(-50, 0.0), (0, 0.0), (86_400_000, 600.0)]
)
def test_retry_after_is_clamped(retry_after_ms: int, remaining_s: float) -> None:
    s = RateLimitState()
    s.mark_limited(T0, retry_after_ms)
    assert s.remaining_s(T0) == remaining_s


def test_policy_changes_default_and_cap() -> None:
    s = RateLimitState(RateLimitPolicy(default_retry_after_ms=5_000, max_retry_after_ms=8_000))
    s.mark_limited(T0)
    assert s.remaining_s(T0) == 5.0
    s.mark_limited(T0, 60_000)
    assert s.remaining_s(T0) == 8.0


def test_clear_lifts_the_limit() -> None:
    s = RateLimitState()
    s.mark_limited(T0)
    s.clear()
    assert s.is_limited(T0) is False
    assert s.statistics(T0) == RateLimitStatistics(False, None, 0.0, 30_000, 1)


@pytest.mark.parametrize(
    "fields",
    [
        {"default_retry_after_ms": -1},
        {"default_retry_after_ms": 10_000, "max_retry_after_ms": 5_000},
    ],
)
def test_policy_rejects_nonsense(fields: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        RateLimitPolicy(**fields)
