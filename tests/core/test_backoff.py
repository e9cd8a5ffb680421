"""Jittered capped backoff and the restart budget."""

from __future__ import annotations

import random

import pytest

from lasso.core.backoff import Backoff, RestartStatistics, RestartTracker


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("attempt", "raw"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (6, 10.0), (10_000, 10.0)],
)
def test_raw_delay_doubles_up_to_the_cap(attempt: int, raw: float) -> None:
    assert Backoff(base_s=0.5, cap_s=10.0).raw_delay(attempt) == raw


def test_multiplier_one_is_constant() -> None:
    b = Backoff(base_s=3.0, cap_s=30.0, multiplier=1.0)
    assert [b.raw_delay(n) for n in (0, 1, 50)] == [3.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("value", "attempt", "delay"),
    [
        (0.0, 0, 1.0),  # no jitter drawn: the raw delay
        (0.5, 0, 0.9),  # jitter 0.2 · 0.5 shortens by 10 %
        (0.5, 3, 7.2),
        (0.5, 9, 54.0),  # capped at 60, then shortened
        (0.999_999_999, 20, 48.000_000_012),
    ],
)
def test_jitter_only_shortens(value: float, attempt: int, delay: float) -> None:
    b = Backoff(base_s=1.0, cap_s=60.0)
    assert b.delay(attempt, FixedRandom(value)) == pytest.approx(delay, abs=1e-9)


def test_delays_stay_within_bounds_with_a_real_rng() -> None:
    b = Backoff(base_s=0.1, cap_s=5.0, jitter=0.3)
    rng = random.Random(7)
    for attempt in range(12):
        raw = b.raw_delay(attempt)
        for _ in range(50):
            assert raw * 0.7 <= b.delay(attempt, rng) <= raw <= 5.0


@pytest.mark.parametrize(
    "fields",
    [
        {"base_s": 0.0, "cap_s": 1.0},
        {"base_s": 2.0, "cap_s": 1.0},
        {"base_s": 1.0, "cap_s": 2.0, "multiplier": 0.5},
        {"base_s": 1.0, "cap_s": 2.0, "jitter": 1.0},
        {"base_s": 1.0, "cap_s": 2.0, "jitter": -0.1},
    ],
)
def test_backoff_rejects_nonsense(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**fields)


def test_negative_attempt_is_a_bug() -> None:
    with pytest.raises(ValueError):
        Backoff(1.0, 2.0).raw_delay(-1)


def test_restart_budget_allows_max_restarts_in_the_window() -> None:
    t = RestartTracker(max_restarts=3, window_s=60.0)
    assert [t.record_restart(now) for now in (0.0, 10.0, 20.0)] == [False, False, False]
    assert t.record_restart(30.0) is True
    assert t.exceeded(30.0) is True
    assert t.restarts_in_window(30.0) == 4


def test_restarts_age_out_of_the_window() -> None:
    t = RestartTracker(max_restarts=3, window_s=60.0)
    for now in (0.0, 10.0, 20.0, 30.0):
        t.record_restart(now)
    assert t.exceeded(59.999) is True
    assert t.exceeded(60.0) is False  # the restart at 0 is exactly window_s old: gone
    assert t.restarts_in_window(60.0) == 3
    assert t.record_restart(61.0) is True  # 10, 20, 30 and 61 all lie within 60 s
    assert t.exceeded(70.0) is False  # 10 has aged out
    assert t.restarts_in_window(70.0) == 3
    assert t.record_restart(70.5) is True


def test_zero_restarts_allowed_quarantines_on_the_first() -> None:
    t = RestartTracker(max_restarts=0, window_s=5.0)
    assert t.record_restart(1.0) is True
    assert t.exceeded(6.0) is False


def test_restart_statistics_and_reset() -> None:
    t = RestartTracker(max_restarts=1, window_s=10.0)
    assert t.statistics(0.0) == RestartStatistics(0, 0, None, False)
    t.record_restart(1.0)
    t.record_restart(2.0)
    assert t.statistics(2.0) == RestartStatistics(
        restarts_in_window=2, total_restarts=2, last_restart_at=2.0, exceeded=True
    )
    assert t.statistics(50.0) == RestartStatistics(0, 2, 2.0, False)
    t.record_restart(51.0)
    t.reset()
    assert t.statistics(51.0) == RestartStatistics(0, 3, 51.0, False)


@pytest.mark.parametrize(("max_restarts", "window_s"), [(-1, 10.0), (3, 0.0), (3, -1.0)])
def test_tracker_rejects_nonsense(max_restarts: int, window_s: float) -> None:
    with pytest.raises(ValueError):
        RestartTracker(max_restarts, window_s)
