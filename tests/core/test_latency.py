"""Passive latency statistics."""

from __future__ import annotations

import pytest

from lasso.core.latency import (
    LatencyBook,
    LatencyBookStatistics,
    LatencyEntry,
    LatencyKey,
    LatencyPolicy,
    LatencySnapshot,
    LatencyStats,
)

T0 = 500.0


def test_empty_stats() -> None:
    assert LatencyStats().statistics() == LatencySnapshot(
        samples=0,
        failures=0,
        ewma_us=None,
        p50_us=None,
        p90_us=None,
        p99_us=None,
        success_rate=None,
        last_seen=None,
    )


def test_first_sample_seeds_the_ewma_then_it_moves_by_alpha() -> None:
    s = LatencyStats()
    s.record_success(T0, 800)
    assert s.ewma_us == 800.0
    s.record_success(T0 + 1, 1600)
    assert s.ewma_us == 900.0  # 800 + (1600 - 800) / 8
    s.record_success(T0 + 2, 100)
    assert s.ewma_us == 800.0  # 900 + (100 - 900) / 8


def test_alpha_is_configurable() -> None:
    s = LatencyStats(LatencyPolicy(ewma_alpha=0.5))
    s.record_success(T0, 100)
    s.record_success(T0, 300)
    assert s.ewma_us == 200.0


def test_success_rate_is_an_ewma_from_an_optimistic_start() -> None:
    s = LatencyStats(LatencyPolicy(ewma_alpha=0.5))
    s.record_failure(T0)
    assert s.success_rate == 0.5
    s.record_failure(T0)
    assert s.success_rate == 0.25
    s.record_success(T0, 10)
    assert s.success_rate == 0.625
    assert (s.samples, s.failures) == (1, 2)


def test_failures_are_not_latency_samples() -> None:
    s = LatencyStats()
    s.record_success(T0, 1000)
    s.record_failure(T0 + 5)
    assert s.ewma_us == 1000.0
    assert s.percentile(0.5) == 1000
    assert s.samples == 1
    assert s.last_seen == T0 + 5


@pytest.mark.parametrize(
    ("samples", "p50", "p90", "p99"),
    [
        ([7], 7, 7, 7),
        ([30, 10, 20], 20, 30, 30),
        ([40, 10, 30, 20], 20, 40, 40),
        (list(range(100, 0, -1)), 50, 90, 99),
        (list(range(1, 11)), 5, 9, 10),
    ],
)
def test_nearest_rank_percentiles(samples: list[int], p50: int, p90: int, p99: int) -> None:
    s = LatencyStats()
    for us in samples:
        s.record_success(T0, us)
    snap = s.statistics()
    assert (snap.p50_us, snap.p90_us, snap.p99_us) == (p50, p90, p99)


def test_percentile_rank_is_not_fooled_by_float_rounding() -> None:
    s = LatencyStats()
    for us in range(1, 101):
        s.record_success(T0, us)
    assert 100 * 0.07 > 7
    assert s.percentile(0.07) == 7
    assert s.percentile(0.001) == 1


def test_window_keeps_only_the_most_recent_samples() -> None:
    s = LatencyStats(LatencyPolicy(window=3))
    for us in (1000, 1, 2, 3):
        s.record_success(T0, us)
    assert s.percentile(1.0) == 3
    assert s.percentile(0.01) == 1
    assert s.samples == 4


def sorted_cache(s: LatencyStats) -> list[int] | None:
    return s._sorted


def test_sorted_window_is_cached_until_the_next_sample() -> None:
    s = LatencyStats()
    s.record_success(T0, 5)
    s.record_success(T0, 1)
    assert sorted_cache(s) is None  # recording never sorts
    assert s.percentile(0.5) == 1
    cached = sorted_cache(s)
    assert cached == [1, 5]
    assert s.percentile(1.0) == 5
    assert sorted_cache(s) is cached
    s.record_success(T0, 3)
    assert sorted_cache(s) is None
    assert s.percentile(0.5) == 3


@pytest.mark.parametrize("p", [0.0, -0.1, 1.01])
def test_percentile_rejects_out_of_range(p: float) -> None:
    with pytest.raises(ValueError):
        LatencyStats().percentile(p)


def test_negative_latency_is_a_bug() -> None:
    with pytest.raises(ValueError):
        LatencyStats().record_success(T0, -1)


@pytest.mark.parametrize(
    "fields", [{"ewma_alpha": 0.0}, {"ewma_alpha": 1.5}, {"window": 0}, {"max_keys": 0}]
)
def test_policy_rejects_nonsense(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LatencyPolicy(**fields)  # type: ignore[arg-type]


A_CALL = LatencyKey("alchemy", "eth_call", "http")
B_CALL = LatencyKey("infura", "eth_call", "http")
C_CALL = LatencyKey("drpc", "eth_call", "http")
A_CALL_WS = LatencyKey("alchemy", "eth_call", "ws")
A_LOGS = LatencyKey("alchemy", "eth_getLogs", "http")


def test_book_keeps_keys_apart() -> None:
    book = LatencyBook()
    assert book.get(A_CALL) is None
    book.record_success(A_CALL, T0, 100)
    book.record_success(A_CALL_WS, T0, 50)
    book.record_failure(A_LOGS, T0 + 1)
    a_call, a_ws, a_logs = book.get(A_CALL), book.get(A_CALL_WS), book.get(A_LOGS)
    assert a_call is not None and a_ws is not None and a_logs is not None
    assert (a_call.ewma_us, a_ws.ewma_us, a_logs.ewma_us) == (100.0, 50.0, None)
    assert a_logs.failures == 1


def test_method_median_over_providers() -> None:
    book = LatencyBook()
    assert book.method_median("eth_call", "http") is None
    book.record_success(A_CALL, T0, 300)
    assert book.method_median("eth_call", "http") == 300.0
    book.record_success(B_CALL, T0, 100)
    assert book.method_median("eth_call", "http") == 200.0
    book.record_success(C_CALL, T0, 1000)
    assert book.method_median("eth_call", "http") == 300.0
    book.record_success(A_CALL_WS, T0, 7)
    assert book.method_median("eth_call", "ws") == 7.0
    assert book.method_median("eth_getLogs", "http") is None


def test_method_median_skips_providers_with_only_failures() -> None:
    book = LatencyBook()
    book.record_failure(A_CALL, T0)
    assert book.method_median("eth_call", "http") is None
    book.record_success(B_CALL, T0, 40)
    assert book.method_median("eth_call", "http") == 40.0


def test_book_drops_new_keys_beyond_max_keys() -> None:
    book = LatencyBook(LatencyPolicy(max_keys=2))
    book.record_success(A_CALL, T0, 1)
    book.record_success(B_CALL, T0, 2)
    book.record_success(C_CALL, T0, 3)
    book.record_failure(A_LOGS, T0)
    book.record_success(A_CALL, T0, 9)  # existing keys keep recording
    assert book.get(C_CALL) is None
    assert book.get(A_LOGS) is None
    stats = book.get(A_CALL)
    assert stats is not None and stats.samples == 2
    assert book.statistics().dropped_records == 2


def test_book_statistics_snapshot_is_sorted_by_key() -> None:
    book = LatencyBook()
    book.record_success(B_CALL, T0, 100)
    book.record_failure(A_CALL, T0 + 1)
    assert book.statistics() == LatencyBookStatistics(
        entries=(
            LatencyEntry(
                "alchemy",
                "eth_call",
                "http",
                LatencySnapshot(0, 1, None, None, None, None, 0.875, T0 + 1),
            ),
            LatencyEntry(
                "infura",
                "eth_call",
                "http",
                LatencySnapshot(1, 0, 100.0, 100, 100, 100, 1.0, T0),
            ),
        ),
        dropped_records=0,
    )
