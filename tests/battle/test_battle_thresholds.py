"""Scenario thresholds: parsing, breaches, "no data" breaches, and a broken gateway failing."""

from __future__ import annotations

import pytest

from battle.events import HeadObservation, Outcome, Recording, RequestEvent, ResourceSample
from battle.slo import compute
from battle.thresholds import (
    Threshold,
    evaluate,
    parse_threshold,
    summary,
    thresholds,
)
from tests.battle.builders import fault, hd, req

SCENARIO = thresholds(
    "success_rate >= 0.999",
    "latency_p99_s <= 2",
    "failover_latency_s <= 1",
    "failover_missed == 0",
    "gaps == 0",
    "duplicates == 0",
    "backfill_incomplete == 0",
    "head_regressions == 0",
    "read_your_head_misses == 0",
    "non_json == 0",
    "http_5xx == 0",
    "html == 0",
    "id_mismatches == 0",
    "peak_rss_bytes <= 500e6",
    "dropped_events == 0",
)


def test_parse_threshold():
    assert parse_threshold("success_rate >= 0.999") == Threshold("success_rate", ">=", 0.999)
    assert str(parse_threshold("gaps == 0")) == "gaps == 0"
    for bad in ("success_rate", "success_rate => 1", "gaps == zero", "uptime >= 1"):
        with pytest.raises(ValueError):
            parse_threshold(bad)


def test_an_unknown_slo_cannot_be_declared():
    with pytest.raises(ValueError, match="unknown SLO 'subscription_uptime'"):
        Threshold("subscription_uptime", ">=", 1.0)


def test_a_breach_names_the_slo_its_value_and_the_threshold():
    slos = compute(Recording(requests=(req(), req(outcome=Outcome.NON_JSON))))
    [breach] = evaluate(slos, thresholds("success_rate >= 0.999", "latency_p99_s <= 2"))
    assert breach.actual == 0.5
    assert breach.message == "success_rate = 0.5 breaches 'success_rate >= 0.999'"
    assert evaluate(slos, thresholds("success_rate >= 0.5")) == []


def test_no_data_breaches_a_threshold_that_needs_it():
    slos = compute(Recording())
    [breach] = evaluate(slos, thresholds("gaps == 0"))
    assert breach.actual is None
    assert "gaps: no data" in breach.message
    assert summary([breach]).startswith("BREACH gaps: no data")
    assert summary([]) == "all SLO thresholds met"


# --- a recorded run of a good gateway and of one that does not fail over -------------------

FAULT_START, FAULT_END, RUN_S = 20.0, 40.0, 60


def _request(t: float, provider: str, ok: bool, latency: float = 0.02) -> RequestEvent:
    # Twice a second the request reads the block the client was told of last (read-your-head).
    block = int(t) if t >= 1 and round(t * 10) % 5 == 0 else None
    if ok:
        return req(t, latency, provider=provider, block=block)
    return req(t, None, Outcome.TIMEOUT, provider=None, block=block)  # a hang on dead p1


def recorded_run(*, failover: bool) -> Recording:
    """Ten requests a second on priority routing (p1 first) and a newHeads stream, while p1 is
    killed from 20 s to 40 s. The good gateway moves to p2 within 0.25 s and its subscription
    resubscribes and backfills; the broken one keeps sending to p1 and its subscription stays
    silent until p1 comes back, then resumes at the current head."""
    requests = []
    for tick in range(RUN_S * 10):
        t = tick / 10
        faulted = FAULT_START <= t < FAULT_END
        if not faulted:
            requests.append(_request(t, "p1", ok=True))
        elif failover:
            switching = t < FAULT_START + 0.25
            requests.append(_request(t, "p2", ok=True, latency=0.3 if switching else 0.02))
        else:
            requests.append(_request(t, "p1", ok=False))
    heads = []
    for n in range(1, RUN_S):
        silenced = FAULT_START <= n <= FAULT_END + 1
        if silenced and not failover:
            continue
        heads.append(hd(n, n + 0.05))
    observed = tuple(HeadObservation("c", n, float(n)) for n in range(1, RUN_S))
    return Recording(
        requests=tuple(requests),
        subscriptions=tuple(heads),
        chaos=(fault("p1", FAULT_START, FAULT_END),),
        heads=observed,
        resources=(ResourceSample(80_000_000, 0.0), ResourceSample(95_000_000, 30.0)),
    )


def test_a_gateway_that_fails_over_passes_its_thresholds():
    slos = compute(recorded_run(failover=True))
    assert evaluate(slos, SCENARIO) == []
    assert slos.success_rate == 1.0
    assert slos.failover_latency_s == pytest.approx(0.3)
    assert slos.backfill_s == pytest.approx(0.05)


def test_a_gateway_without_failover_breaches_its_thresholds():
    slos = compute(recorded_run(failover=False))
    breaches = evaluate(slos, SCENARIO)
    assert {b.threshold.slo for b in breaches} == {
        "success_rate",  # every request during the fault hung: 200 of 600
        "failover_latency_s",  # no data: no other provider ever answered
        "failover_missed",
        "gaps",  # heads 20..41 never arrived
        "backfill_incomplete",
    }
    assert slos.success_rate == pytest.approx(400 / 600)
    assert slos.timeouts == 200
    assert (slos.failover_missed, slos.gaps, slos.backfill_incomplete) == (1, 22, 1)
