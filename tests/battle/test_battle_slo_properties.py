"""Properties of the battle SLOs over generated event sequences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from battle.events import Outcome, SubscriptionEvent, SubscriptionKind
from battle.slo import compute, head_regressions, is_success, percentile, success_rate
from battle.subs import stream_stats
from tests.battle.builders import hd, req, seen
from tests.battle.strategies import recordings


def _stream(items: list[tuple[int, str]]) -> list[SubscriptionEvent]:
    """Heads at times 0, 1, 2 ... with numbers and hashes drawn from small sets (reorgs too)."""
    return [hd(n, float(t), hash=h) for t, (n, h) in enumerate(items)]


head_items = st.lists(st.tuples(st.integers(0, 12), st.sampled_from("abcd")), max_size=25)


def _counts(stream: list[SubscriptionEvent]) -> tuple[int, int, int]:
    stats = stream_stats("c", "s1", stream)
    return stats.gaps, stats.duplicates, stats.reorgs


@given(head_items, st.data())
def test_redelivering_a_head_adds_exactly_one_duplicate(items, data):
    stream = _stream(items)
    if not stream:
        return
    i = data.draw(st.integers(0, len(stream) - 1))
    with_copy = [*stream[: i + 1], stream[i], *stream[i + 1 :]]
    gaps, duplicates, reorgs = _counts(stream)
    assert _counts(with_copy) == (gaps, duplicates + 1, reorgs)


@given(st.integers(0, 1000), st.integers(1, 40), st.data())
def test_dropping_one_head_from_a_gap_free_run(first, length, data):
    stream = [hd(n) for n in range(first, first + length)]
    assert _counts(stream) == (0, 0, 0)
    i = data.draw(st.integers(0, length - 1))
    dropped = stream[:i] + stream[i + 1 :]
    interior = 0 < i < length - 1
    # A missing head between two received ones is one gap; a missing first or last head is
    # not visible as a gap (nothing was received on its other side).
    assert _counts(dropped) == (1 if interior else 0, 0, 0)


@given(head_items)
def test_a_stream_without_repeats_or_reorgs_has_gaps_equal_to_the_holes(items):
    numbers = sorted({n for n, _ in items})
    stream = [hd(n) for n in numbers]
    holes = (numbers[-1] - numbers[0] + 1 - len(numbers)) if numbers else 0
    assert _counts(stream) == (holes, 0, 0)


@given(st.lists(st.sampled_from(Outcome), max_size=30), st.lists(st.booleans(), max_size=30))
def test_success_rate_is_a_fraction_and_one_only_when_all_succeed(outcomes, expected):
    requests = [
        req(outcome=o, error_expected=e)
        for o, e in zip(outcomes, expected + [False] * 30, strict=False)
    ]
    rate = success_rate(requests)
    if not requests:
        assert rate is None
        return
    assert rate is not None
    assert 0.0 <= rate <= 1.0
    assert (rate == 1.0) == all(is_success(r) for r in requests)
    assert (rate == 0.0) == (not any(is_success(r) for r in requests))


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50))
def test_percentiles_are_monotone_and_within_the_samples(samples):
    p50, p95, p99 = (percentile(samples, p) for p in (50, 95, 99))
    assert p50 is not None and p95 is not None and p99 is not None
    assert min(samples) <= p50 <= p95 <= p99 <= max(samples)
    assert {p50, p95, p99} <= set(samples)


@given(st.lists(st.integers(0, 100), max_size=30), st.integers(0, 100))
def test_a_lower_head_after_a_monotone_run_is_one_regression(numbers, last):
    heads = [seen(n, float(t)) for t, n in enumerate(sorted(numbers))]
    assert head_regressions(heads) == (0 if heads else None)
    after = [*heads, seen(last, float(len(heads)))]
    lower = bool(numbers) and last < max(numbers)
    assert head_regressions(after) == (1 if lower else 0)


@pytest.mark.slow
@given(recordings)
def test_any_recording_gives_sane_slos(recording):
    slos = compute(recording)
    assert slos.requests == len(recording.requests)
    if slos.success_rate is not None:
        assert 0.0 <= slos.success_rate <= 1.0
    else:
        assert not recording.requests
    percentiles = [slos.latency_p50_s, slos.latency_p95_s, slos.latency_p99_s]
    if slos.latency_p50_s is not None:
        assert slos.latency_p50_s <= slos.latency_p95_s <= slos.latency_p99_s  # type: ignore[operator]
    else:
        assert percentiles == [None, None, None]
    for count in (slos.gaps, slos.duplicates, slos.head_regressions, slos.non_json):
        assert count is None or count >= 0
    if slos.failover_latency_s is not None:
        assert slos.failover_latency_s >= 0
    if slos.backfill_s is not None:
        assert slos.backfill_s >= 0
    logs_only = all(s.kind is SubscriptionKind.LOGS for s in recording.subscriptions)
    if logs_only:
        assert not slos.gaps
