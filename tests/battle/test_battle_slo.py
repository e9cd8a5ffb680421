"""Each battle SLO, from hand-built event sequences: what counts and what does not."""

from __future__ import annotations

import pytest

from battle.events import Outcome, Recording, ResourceSample
from battle.slo import compute, failover, head_regressions, percentile, recovery, success_rate
from battle.subs import backfill, subscription_stats
from tests.battle.builders import fault, hd, log, req, seen

# --- no data is no data -------------------------------------------------------------------


def test_an_empty_recording_has_no_data_for_any_slo():
    slos = compute(Recording())
    assert slos.requests == 0
    assert slos.dropped_events == 0
    for name in slos.__struct_fields__:
        if name not in ("requests", "dropped_events", "subscriptions"):
            assert getattr(slos, name) is None, name


# --- success rate -------------------------------------------------------------------------


def test_success_rate_counts_results_and_expected_errors_only():
    requests = [
        req(),
        req(outcome=Outcome.JSONRPC_ERROR, error_expected=True),  # the oracle agrees
        req(outcome=Outcome.JSONRPC_ERROR),  # the gateway failed it
        req(outcome=Outcome.NON_JSON),
    ]
    assert success_rate(requests) == 0.5


def test_a_hang_is_a_failure_and_has_no_latency():
    slos = compute(Recording(requests=(req(latency=0.1), req(outcome=Outcome.TIMEOUT))))
    assert slos.success_rate == 0.5
    assert slos.timeouts == 1
    assert slos.latency_p99_s == pytest.approx(0.1)


# --- latency ------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank():
    samples = [float(n) for n in range(1, 101)]  # 1..100
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 95) == 95.0
    assert percentile(samples, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 0)


# --- failover -----------------------------------------------------------------------------


def test_failover_latency_is_the_first_success_from_another_provider():
    chaos = fault("p1", start=10.0)
    requests = [
        req(9.0, provider="p2"),  # before the fault: does not count
        req(10.1, 0.05, provider="p1"),  # the faulted provider itself
        req(10.2, 0.1, Outcome.JSONRPC_ERROR, provider="p2"),  # another, but a failure
        req(10.5, 0.9, provider="p2"),  # answered at 11.4
        req(10.6, 0.2, provider="p3"),  # answered at 10.8: the first
    ]
    latency, missed = failover(chaos, requests)
    assert latency == pytest.approx(0.8)
    assert missed is False


def test_failover_missed_when_no_other_provider_ever_answers():
    requests = [req(11.0, None, Outcome.TIMEOUT), req(12.0, 0.1, provider="p1")]
    assert failover(fault("p1", 10.0), requests) == (None, True)
    slos = compute(Recording(requests=tuple(requests), chaos=(fault("p1", 10.0),)))
    assert slos.failover_missed == 1
    assert slos.failover_latency_s is None


def test_failover_has_no_data_without_a_target_or_without_traffic():
    assert failover(fault(None, 10.0), [req(11.0, provider="p2")]) == (None, None)
    assert failover(fault("p1", 10.0), [req(1.0, provider="p2")]) == (None, None)


# --- subscriptions: gaps, duplicates, reorgs ----------------------------------------------


def test_gaps_are_missing_numbers_between_received_heads():
    [stats] = subscription_stats([hd(1), hd(2), hd(5), hd(6)])
    assert (stats.gaps, stats.duplicates, stats.reorgs) == (2, 0, 0)


def test_a_duplicate_is_the_same_hash_twice():
    [stats] = subscription_stats([hd(1), hd(2), hd(2, at=2.5), hd(3)])
    assert (stats.gaps, stats.duplicates) == (0, 1)


def test_a_reorg_is_neither_gap_nor_duplicate():
    # 1 2 3a 4a, then the chain reorgs at 3: 3b 4b 5b, then back to the a branch: 4a 5a.
    stream = [
        hd(1),
        hd(2),
        hd(3, hash="3a"),
        hd(4, hash="4a"),
        hd(3, 5.0, hash="3b"),
        hd(4, 6.0, hash="4b"),
        hd(5, 7.0, hash="5b"),
        hd(4, 8.0, hash="4a"),  # 4a again, after it was replaced: not a duplicate
        hd(5, 9.0, hash="5a"),
    ]
    [stats] = subscription_stats(stream)
    assert (stats.gaps, stats.duplicates, stats.reorgs) == (0, 0, 2)


def test_removed_logs_are_reorgs_and_the_same_log_may_come_again():
    stream = [
        log(5, 0, 1.0),
        log(5, 1, 1.0),  # a second log of the same block: not a duplicate
        log(5, 0, 2.0, removed=True),
        log(5, 0, 3.0),  # re-included after the reorg
        log(5, 1, 4.0),  # never removed: a duplicate
        log(9, 0, 5.0),  # logs skip blocks: no gaps on logs
    ]
    [stats] = subscription_stats(stream)
    assert (stats.gaps, stats.duplicates, stats.reorgs, stats.received) == (0, 1, 1, 6)


def test_streams_are_counted_per_client_and_subscription():
    events = [hd(1), hd(3), hd(1, client="d"), hd(2, client="d"), hd(2, client="d")]
    stats = subscription_stats(events)
    assert [(s.client, s.gaps, s.duplicates) for s in stats] == [("c", 1, 0), ("d", 0, 1)]
    slos = compute(Recording(subscriptions=tuple(events)))
    assert (slos.gaps, slos.duplicates) == (1, 1)


# --- backfill -----------------------------------------------------------------------------


def test_backfill_completes_when_every_block_up_to_the_head_at_recovery_arrived():
    # The client had 1..3; the WS is cut at 3.5 and restored at 6.5. Another client saw 6
    # by then. Blocks 4..6 arrive late, out of order, the last one (5) at 8.0.
    events = [hd(1), hd(2), hd(3), hd(6, 6.0, client="other")]
    events += [hd(4, 7.0), hd(6, 7.5), hd(5, 8.0), hd(7, 9.0)]
    assert backfill(fault("p1", 3.5, 6.5), events, []) == [pytest.approx(1.5)]


def test_backfill_is_zero_when_the_client_never_lacked_a_block_at_recovery():
    events = [hd(1), hd(2), hd(3), hd(4), hd(5)]  # heads kept coming through the fault
    assert backfill(fault("p1", 2.5, 4.5), events, []) == [0.0]


def test_backfill_never_completing_is_incomplete():
    events = [hd(1), hd(2), hd(5, 4.0, client="other"), hd(3, 7.0)]
    assert backfill(fault("p1", 2.5, 6.0), events, [seen(5, 4.0)]) == [None]
    slos = compute(Recording(subscriptions=tuple(events), chaos=(fault("p1", 2.5, 6.0),)))
    # "other" had no head before the fault, so it had nothing to backfill: one stream only.
    assert slos.backfill_incomplete == 1
    assert slos.backfill_s is None


def test_backfill_has_no_sample_when_nothing_was_missing():
    events = [hd(1), hd(2), hd(3, 9.0)]
    assert backfill(fault("p1", 2.5, 2.6), events, []) == []


# --- consistency --------------------------------------------------------------------------


def test_head_regressions_are_counted_per_client_against_its_highest():
    heads = [seen(10, 1.0), seen(12, 2.0), seen(11, 3.0), seen(12, 4.0), seen(9, 5.0)]
    heads += [seen(5, 2.5, client="other")]  # another client's lower head is not a regression
    assert head_regressions(heads) == 2


def test_read_your_head_miss_needs_a_block_the_client_was_told_of():
    recording = Recording(
        requests=(
            req(5.0, block=12, empty=True),  # told of 12 at 4.0: a miss
            req(5.0, block=13, empty=True),  # never told of 13: a lagging read, not a miss
            req(3.0, block=12, empty=True),  # sent before it was told: not a miss
            req(5.0, block=12, empty=True, client="other"),  # another client: not a miss
            req(5.0, block=11),  # answered with data
        ),
        heads=(seen(12, 4.0),),
    )
    assert compute(recording).read_your_head_misses == 1


def test_a_subscription_head_also_tells_a_client_a_block_exists():
    recording = Recording(requests=(req(5.0, block=4, empty=True),), subscriptions=(hd(4),))
    assert compute(recording).read_your_head_misses == 1


# --- answers, ids, resources --------------------------------------------------------------


def test_bad_answers_and_id_mismatches_are_counted():
    recording = Recording(
        requests=(
            req(outcome=Outcome.NON_JSON),
            req(outcome=Outcome.HTML, status=502),
            req(outcome=Outcome.HTTP_5XX, status=500),
            req(outcome=Outcome.JSONRPC_ERROR, status=503),  # a JSON body, but still a 5xx
            req(sent_id=7, received_id=8),
            req(sent_id="a", received_id=None),
            req(),
        ),
        resources=(ResourceSample(100, 0.0), ResourceSample(300, 1.0), ResourceSample(200, 2.0)),
    )
    slos = compute(recording)
    assert (slos.non_json, slos.html, slos.http_5xx) == (1, 1, 3)
    assert slos.id_mismatches == 2
    assert slos.peak_rss_bytes == 300


# --- recovery -----------------------------------------------------------------------------


def test_recovery_is_the_first_provider_served_success_sent_after_the_fault_ended():
    chaos = fault("p1", start=10.0, end=14.0)
    requests = [
        req(13.9, 0.05, provider="p2"),  # sent before the end: proves nothing about recovery
        req(14.0, 0.01, provider=None),  # answered by the gateway itself (eth_chainId)
        req(14.1, 0.1, Outcome.JSONRPC_ERROR, provider="p2"),  # still failing
        req(14.5, 0.2, provider="p3"),  # answered at 14.7: recovered 0.7 s after the end
        req(14.6, 0.05, provider="p1"),  # answered at 14.65: the first
    ]
    latency, missed = recovery(chaos, requests)
    assert latency == pytest.approx(0.65)
    assert missed is False
    slos = compute(Recording(requests=tuple(requests), chaos=(chaos,)))
    assert slos.recovery_s == pytest.approx(0.65)
    assert slos.recovery_missed == 0


def test_recovery_missed_when_nothing_succeeds_after_the_end():
    chaos = fault("p1", start=10.0, end=14.0)
    requests = [
        req(15.0, 0.1, Outcome.JSONRPC_ERROR, provider="p2"),
        req(16.0, None, Outcome.TIMEOUT),
    ]
    assert recovery(chaos, requests) == (None, True)
    assert compute(Recording(requests=tuple(requests), chaos=(chaos,))).recovery_missed == 1


def test_recovery_has_no_sample_for_a_fault_that_never_ended_or_had_no_traffic_after():
    assert recovery(fault("p1", start=10.0), [req(11.0)]) == (None, None)
    assert recovery(fault("p1", start=10.0, end=12.0), [req(11.0)]) == (None, None)
