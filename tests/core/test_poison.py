"""The query-of-death quarantine, on plain numbers for time (lasso.core.poison)."""

from __future__ import annotations

import pytest

from lasso.core.poison import FAILING_WINDOW_S, PoisonGuard, fingerprint, lost_mid_request
from lasso.errors import UpstreamNetworkError, UpstreamProtocolError, UpstreamTimeout

QOD = ("eth_feeHistory", b'["0x400000000000000000","latest",[]]')


def stopped(guard: PoisonGuard, request: tuple[str, bytes], now: float) -> bool:
    """The request lost a first provider, then a second: does it stop?"""
    method, params = request
    assert not guard.lost(method, params, 1, now)  # the first loss always fails over
    return guard.lost(method, params, 2, now)


def test_only_a_connection_lost_after_sending_counts() -> None:
    assert lost_mid_request(UpstreamNetworkError("connection reset by peer"))
    assert not lost_mid_request(UpstreamNetworkError("connection refused", never_sent=True))
    assert not lost_mid_request(UpstreamTimeout("Request timeout after 600 ms"))
    assert not lost_mid_request(UpstreamProtocolError("HTTP 500"))


def test_the_second_provider_lost_stops_and_quarantines() -> None:
    guard = PoisonGuard(quarantine_s=600)
    assert guard.refused_for(*QOD, now=0.0) is None
    assert stopped(guard, QOD, 10.0)
    assert guard.refused_for(*QOD, now=10.0) == 600.0
    assert guard.refused_for(*QOD, now=309.5) == pytest.approx(300.5)
    stats = guard.statistics(309.5)
    assert (stats.quarantined_now, stats.stopped, stats.refused, stats.exempted) == (1, 1, 2, 0)


def test_it_is_tried_again_after_expiry() -> None:
    guard = PoisonGuard(quarantine_s=600)
    assert stopped(guard, QOD, 0.0)
    assert guard.refused_for(*QOD, now=599.999) is not None
    assert guard.refused_for(*QOD, now=600.0) is None  # expired, and dropped
    assert guard.statistics(600.0).quarantined_now == 0
    assert guard.refused_for(*QOD, now=600.0) is None


def test_spacing_and_key_order_make_no_new_request() -> None:
    guard = PoisonGuard()
    assert stopped(guard, ("eth_call", b'[{"to":"0x01","data":"0x"},"latest"]'), 0.0)
    assert guard.refused_for("eth_call", b'[ {"data": "0x", "to": "0x01"} , "latest" ]', 1.0)
    assert guard.refused_for("eth_call", b'[{"to":"0x02","data":"0x"},"latest"]', 1.0) is None
    assert (
        guard.refused_for("eth_estimateGas", b'[{"to":"0x01","data":"0x"},"latest"]', 1.0) is None
    )


def test_the_fingerprint_is_bounded_and_copes_with_numbers_past_a_double() -> None:
    huge = b"[1e400]"  # JSON, but msgspec cannot hold it: stripped spacing only
    assert fingerprint("m", huge) == fingerprint("m", b" [ 1e400 ] ")
    assert fingerprint("m", huge) != fingerprint("m", b"[1e401]")
    assert len(fingerprint("eth_call", b'["' + b"00" * 50_000 + b'"]')) == 16


def test_the_table_is_bounded_least_recently_used_out_first() -> None:
    guard = PoisonGuard(max_entries=2)
    a, b, c = (("eth_feeHistory", b'["0x%d","latest",[]]' % n) for n in range(3))
    assert stopped(guard, a, 0.0)
    assert stopped(guard, b, 1.0)
    assert guard.refused_for(*a, now=2.0)  # a is used: b is now the least recent
    assert stopped(guard, c, 3.0)
    assert guard.refused_for(*a, now=4.0)
    assert guard.refused_for(*c, now=4.0)
    assert guard.refused_for(*b, now=4.0) is None
    assert guard.statistics(4.0).quarantined_now == 2


def test_expired_entries_make_room_before_live_ones_go() -> None:
    guard = PoisonGuard(quarantine_s=10, max_entries=2)
    a, b, c = (("eth_feeHistory", b'["0x%d","latest",[]]' % n) for n in range(3))
    assert stopped(guard, a, 0.0)
    assert stopped(guard, b, 5.0)
    assert stopped(guard, c, 11.0)  # a expired at 10: b stays
    assert guard.refused_for(*b, now=12.0)
    assert guard.refused_for(*c, now=12.0)


def test_a_request_answered_lately_is_a_bystander_not_a_query_of_death() -> None:
    guard = PoisonGuard(quarantine_s=600)
    canary = ("eth_blockNumber", b"[]")
    guard.answered(*canary, now=0.0)
    assert not stopped(guard, canary, 100.0)  # it fails over as before
    assert guard.refused_for(*canary, now=100.0) is None
    assert guard.statistics(100.0).exempted == 1
    assert stopped(guard, canary, 600.0)  # not answered for the whole window


def test_the_memory_of_answers_is_bounded() -> None:
    guard = PoisonGuard(answered_entries=2)
    calls = [("eth_getBalance", b'["0x%d","latest"]' % n) for n in range(3)]
    for n, call in enumerate(calls):
        guard.answered(*call, now=float(n))
    guard.answered(*calls[1], now=3.0)  # the oldest answer is calls[0]'s
    assert stopped(guard, calls[0], 4.0)
    assert not stopped(guard, calls[1], 4.0)
    assert not stopped(guard, calls[2], 4.0)


def test_nothing_to_fingerprint_while_nothing_is_quarantined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lasso.core.poison as poison

    def boom(method: str, params: bytes) -> bytes:
        raise AssertionError("fingerprinted on the hot path")

    monkeypatch.setattr(poison, "fingerprint", boom)
    guard = PoisonGuard()
    assert guard.refused_for(*QOD, now=0.0) is None
    guard.answered(*QOD, now=0.0)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        PoisonGuard(quarantine_s=0)
    with pytest.raises(ValueError):
        PoisonGuard(max_entries=0)


# --- the outage rule: a provider already failing was not crashed by the request -----------


def test_a_provider_failing_before_the_request_reached_it_does_not_count() -> None:
    # Every provider cut at once: p2 is seen failing (its WebSocket dropped, a request lost)
    # at 10.0; a request that lost p1 then reaches p2 at 10.001 and loses it too. It cannot
    # have crashed p2: the loss does not count.
    guard = PoisonGuard()
    guard.failing("p2", 10.0)
    assert not guard.counts("p2", 10.001)
    assert guard.counts("p1", 10.001)  # nothing known about p1: it counts


def test_a_provider_that_fails_while_the_request_is_in_flight_counts() -> None:
    # A query of death: sent to a working provider at 10.0, which fails at 10.002. (The
    # shell asks ``counts`` as it sends: a failure recorded by then, even at the same
    # instant, was seen before the request left.)
    guard = PoisonGuard()
    assert guard.counts("p2", 10.0)
    guard.failing("p2", 10.002)
    assert guard.counts("p2", 10.0)
    assert not guard.counts("p2", 10.002)


def test_a_provider_answering_again_counts_again() -> None:
    guard = PoisonGuard()
    guard.failing("p2", 10.0)
    guard.working("p2", 9.0)  # an answer to a request sent before the failure: still failing
    assert not guard.counts("p2", 11.0)
    guard.working("p2", 10.5)  # answered a request sent after it: it works
    assert guard.counts("p2", 11.0)


def test_an_old_failure_counts_again() -> None:
    # A provider restarted since its last failure may be working: a loss there counts.
    guard = PoisonGuard()
    guard.failing("p2", 10.0)
    assert not guard.counts("p2", 10.0 + FAILING_WINDOW_S)
    assert guard.counts("p2", 10.0 + FAILING_WINDOW_S + 0.001)
