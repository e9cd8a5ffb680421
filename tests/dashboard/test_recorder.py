"""The dashboard's request observer keeps a bounded ring of calls and failovers per chain."""

from __future__ import annotations

from lasso.callmeta import CallMeta
from lasso.core.router import RoutePlan, Strategy
from lasso.dashboard.recorder import MAX_CHAINS, MAX_METHOD, Recorder
from lasso.outcome import AttemptRecord, Outcome


def meta(chain: str, method: str, *, failed: bool = False, profile: str = "default") -> CallMeta:
    record = CallMeta(chain, method, 10.0, profile=profile)
    plan = RoutePlan(Strategy.PRIORITY, (), 3, 1.0, True, True)
    outcome = Outcome(provider="b", transport="http", upstream_latency_us=500)
    if failed:
        outcome.attempts.append(AttemptRecord("a", "http", "provider_failure", "refused"))
    record.planned(plan, outcome)
    record._ended = 10.25
    return record


def test_calls_and_failovers_newest_first_and_bounded() -> None:
    recorder = Recorder(keep=3)
    for i in range(5):
        recorder.observe(meta("c", f"m{i}", failed=i == 1))
    assert [r.method for r in recorder.calls("default", "c")] == ["m4", "m3", "m2"]
    (failover,) = recorder.failovers("default", "c")
    assert (failover.method, failover.provider, failover.failed) == (
        "m1",
        "b",
        (("a", "http", "provider_failure"),),
    )
    assert failover.latency_us == 250_000 and failover.strategy == "priority"
    assert recorder.calls("default", "other") == [] and recorder.observed == 5


def test_a_failed_call_with_no_provider_is_no_failover() -> None:
    recorder = Recorder()
    record = meta("c", "m", failed=True)
    assert record.outcome is not None
    record.outcome.provider = None
    recorder.observe(record)
    assert recorder.failovers("default", "c") == [] and len(recorder.calls("default", "c")) == 1


def test_method_names_are_cut_and_chains_are_capped() -> None:
    recorder = Recorder()
    recorder.observe(meta("c", "x" * 10_000))
    assert recorder.calls("default", "c")[0].method == "x" * MAX_METHOD
    for i in range(MAX_CHAINS + 10):
        recorder.observe(meta(f"chain{i}", "m"))
    assert len(recorder._calls) == MAX_CHAINS
    assert recorder.calls("default", f"chain{MAX_CHAINS + 5}") == []
