"""The circuit breaker on exact virtual times."""

from __future__ import annotations

import random

import pytest

from lasso.core.breaker import (
    _TRANSITIONS,
    Admission,
    BreakerError,
    BreakerPolicy,
    BreakerStatistics,
    CircuitBreaker,
    CircuitState,
    FailureKind,
    Verdict,
    _Event,
)

T0 = 1000.0
CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class FixedRandom(random.Random):
    """A Random whose ``random()`` always returns ``value``: jitter becomes exact."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def make(value: float = 0.0, **policy: int) -> CircuitBreaker:
    return CircuitBreaker(BreakerPolicy(**policy), FixedRandom(value))


def fail(b: CircuitBreaker, now: float, kind: FailureKind = FailureKind.SERVER) -> None:
    b.record_failure(now, b.admit(now), kind)


def trip(b: CircuitBreaker, now: float = T0) -> None:
    for _ in range(5):
        fail(b, now)
    assert b.state(now) is OPEN


def to_half_open(b: CircuitBreaker) -> float:
    """Trip at T0 and return the first instant the breaker is half-open."""
    trip(b)
    deadline = b.statistics(T0).recovery_deadline
    assert deadline is not None
    return deadline


def test_policy_defaults() -> None:
    assert BreakerPolicy() == BreakerPolicy(
        failure_threshold=5,
        recovery_timeout_ms=60_000,
        success_threshold=2,
        timeout_threshold=2,
        network_threshold=3,
        max_recovery_timeout_ms=600_000,
        jitter_ratio=0.05,
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"failure_threshold": 0},
        {"success_threshold": 0},
        {"timeout_threshold": 0},
        {"network_threshold": 0},
        {"recovery_timeout_ms": 0},
        {"recovery_timeout_ms": 700_000},
        {"jitter_ratio": -0.01},
        {"jitter_ratio": 1.0},
    ],
)
def test_policy_rejects_nonsense(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(**fields)  # type: ignore[arg-type]


def test_new_breaker_is_closed_and_admits() -> None:
    b = make()
    admission = b.admit(T0)
    assert admission == Admission(Verdict.ADMITTED, 0, 0)
    assert admission.admitted and not admission.is_probe
    assert b.statistics(T0) == BreakerStatistics(
        state=CLOSED,
        consecutive_failures=0,
        half_open_successes=0,
        probe_in_flight=False,
        opened_at=None,
        recovery_deadline=None,
        recovery_timeout_ms=60_000,
        reopen_count=0,
        total_opens=0,
        last_failure_kind=None,
        forced=False,
    )


@pytest.mark.parametrize(
    ("kind", "threshold"),
    [
        (FailureKind.TIMEOUT, 2),
        (FailureKind.NETWORK, 3),
        (FailureKind.SERVER, 5),
        (FailureKind.PROTOCOL, 5),
    ],
)
def test_opens_after_threshold_consecutive_failures_of_a_kind(
    kind: FailureKind, threshold: int
) -> None:
    b = make()
    for i in range(threshold - 1):
        fail(b, T0 + i, kind)
    assert b.state(T0 + threshold) is CLOSED
    assert b.statistics(T0 + threshold).consecutive_failures == threshold - 1
    fail(b, T0 + threshold, kind)
    stats = b.statistics(T0 + threshold)
    assert stats.state is OPEN
    assert stats.opened_at == T0 + threshold
    assert stats.recovery_deadline == T0 + threshold + 60.0
    assert stats.total_opens == 1
    assert stats.last_failure_kind is kind


@pytest.mark.parametrize(
    ("kinds", "state"),
    [
        # The streak counts every kind; the failure just seen picks the threshold.
        ([FailureKind.SERVER] * 4 + [FailureKind.TIMEOUT], OPEN),
        ([FailureKind.SERVER, FailureKind.TIMEOUT], OPEN),
        ([FailureKind.TIMEOUT, FailureKind.SERVER], CLOSED),
        ([FailureKind.SERVER, FailureKind.SERVER, FailureKind.NETWORK], OPEN),
        ([FailureKind.NETWORK, FailureKind.NETWORK, FailureKind.PROTOCOL], CLOSED),
        ([FailureKind.NETWORK] * 2 + [FailureKind.PROTOCOL] * 3, OPEN),
    ],
)
def test_mixed_failure_kinds(kinds: list[FailureKind], state: CircuitState) -> None:
    b = make()
    for kind in kinds:
        fail(b, T0, kind)
    assert b.state(T0) is state


def test_success_resets_the_streak() -> None:
    b = make()
    for _ in range(4):
        fail(b, T0)
    b.record_success(T0, b.admit(T0))
    assert b.statistics(T0).consecutive_failures == 0
    for _ in range(4):
        fail(b, T0)
    assert b.state(T0) is CLOSED
    fail(b, T0)
    assert b.state(T0) is OPEN


def test_open_rejects_until_the_deadline_then_admits_one_probe() -> None:
    b = make()
    deadline = to_half_open(b)
    assert deadline == T0 + 60.0
    assert b.admit(deadline - 0.001) == Admission(Verdict.REJECTED_OPEN)
    assert b.state(deadline - 0.001) is OPEN
    probe = b.admit(deadline)
    assert probe.admitted and probe.is_probe
    assert b.state(deadline) is HALF_OPEN
    assert b.admit(deadline) == Admission(Verdict.REJECTED_HALF_OPEN_BUSY)
    assert b.admit(deadline + 30) == Admission(Verdict.REJECTED_HALF_OPEN_BUSY)
    assert b.statistics(deadline).probe_in_flight is True


def test_state_query_alone_moves_open_to_half_open() -> None:
    b = make()
    deadline = to_half_open(b)
    assert b.state(deadline) is HALF_OPEN
    assert b.statistics(deadline).probe_in_flight is False


def test_cancelled_probe_frees_the_lease_and_counts_for_nothing() -> None:
    b = make()
    t = to_half_open(b)
    first = b.admit(t)
    b.record_success(t, first)
    second = b.admit(t + 1)
    b.record_cancelled(t + 1, second)
    stats = b.statistics(t + 1)
    assert stats.state is HALF_OPEN
    assert stats.probe_in_flight is False
    assert stats.half_open_successes == 1
    third = b.admit(t + 2)
    assert third.is_probe
    assert third.lease == second.lease + 1
    b.record_success(t + 2, third)
    assert b.state(t + 2) is CLOSED


def test_closes_after_success_threshold_probe_successes() -> None:
    b = make()
    t = to_half_open(b)
    b.record_success(t, b.admit(t))
    assert b.state(t) is HALF_OPEN
    assert b.statistics(t).half_open_successes == 1
    b.record_success(t + 1, b.admit(t + 1))
    assert b.statistics(t + 1) == BreakerStatistics(
        state=CLOSED,
        consecutive_failures=0,
        half_open_successes=0,
        probe_in_flight=False,
        opened_at=None,
        recovery_deadline=None,
        recovery_timeout_ms=60_000,
        reopen_count=0,
        total_opens=1,
        last_failure_kind=FailureKind.SERVER,
        forced=False,
    )
    assert b.admit(t + 1) == Admission(Verdict.ADMITTED, 3, 0)


def test_success_threshold_is_configurable() -> None:
    b = make(success_threshold=3)
    t = to_half_open(b)
    for i in range(2):
        b.record_success(t + i, b.admit(t + i))
    assert b.state(t + 2) is HALF_OPEN
    b.record_success(t + 2, b.admit(t + 2))
    assert b.state(t + 2) is CLOSED


def test_each_half_open_failure_doubles_the_timeout_up_to_the_cap() -> None:
    b = make()
    t = to_half_open(b)
    expected = [120_000, 240_000, 480_000, 600_000, 600_000]
    for reopens, timeout_ms in enumerate(expected, start=1):
        b.record_failure(t, b.admit(t), FailureKind.TIMEOUT)
        stats = b.statistics(t)
        assert stats.state is OPEN
        assert stats.reopen_count == reopens
        assert stats.recovery_timeout_ms == timeout_ms
        assert stats.opened_at == t
        assert stats.recovery_deadline == t + timeout_ms / 1000
        assert b.admit(t + timeout_ms / 1000 - 0.001).verdict is Verdict.REJECTED_OPEN
        t += timeout_ms / 1000
    assert b.statistics(t).total_opens == 6


def test_closing_forgets_the_reopens() -> None:
    b = make()
    t = to_half_open(b)
    b.record_failure(t, b.admit(t), FailureKind.SERVER)
    t += 120
    b.record_success(t, b.admit(t))
    b.record_success(t, b.admit(t))
    assert b.state(t) is CLOSED
    trip(b, t)
    stats = b.statistics(t)
    assert stats.reopen_count == 0
    assert stats.recovery_deadline == t + 60.0


@pytest.mark.parametrize(
    ("value", "delay_s"),
    [(0.0, 60.0), (0.5, 61.5), (0.999_999, 62.999_997)],
)
def test_jitter_adds_up_to_five_percent(value: float, delay_s: float) -> None:
    b = make(value)
    trip(b)
    deadline = b.statistics(T0).recovery_deadline
    assert deadline is not None
    assert deadline - T0 == pytest.approx(delay_s, abs=1e-9)


def test_jitter_never_pushes_past_the_cap() -> None:
    b = make(0.999_999, recovery_timeout_ms=600_000)
    trip(b)
    assert b.statistics(T0).recovery_deadline == T0 + 600.0


def test_retry_after_s() -> None:
    b = make()
    assert b.retry_after_s(T0) == 0.0
    trip(b)
    assert b.retry_after_s(T0) == 60.0
    assert b.retry_after_s(T0 + 45) == 15.0
    assert b.retry_after_s(T0 + 60) == 0.0
    assert b.state(T0 + 60) is HALF_OPEN


def test_late_outcomes_from_before_the_trip_are_ignored() -> None:
    b = make()
    early = [b.admit(T0) for _ in range(3)]
    trip(b)
    before = b.statistics(T0 + 1)
    b.record_failure(T0 + 1, early[0], FailureKind.TIMEOUT)
    b.record_success(T0 + 1, early[1])
    assert b.statistics(T0 + 1) == before  # a straggler never extends the deadline
    t = before.recovery_deadline
    assert t is not None
    probe = b.admit(t)
    b.record_success(t, early[2])  # not the probe: does not count towards closing
    assert b.statistics(t).half_open_successes == 0
    assert b.statistics(t).probe_in_flight is True
    b.record_success(t, probe)
    assert b.statistics(t).half_open_successes == 1


def test_outcome_of_a_rejected_admission_is_a_bug() -> None:
    b = make()
    trip(b)
    rejected = b.admit(T0)
    with pytest.raises(BreakerError, match="rejected admission"):
        b.record_success(T0, rejected)


def test_reporting_a_probe_twice_is_a_bug() -> None:
    b = make()
    t = to_half_open(b)
    probe = b.admit(t)
    b.record_cancelled(t, probe)
    with pytest.raises(BreakerError, match="reported twice"):
        b.record_failure(t, probe, FailureKind.SERVER)


def test_external_failures_trip_a_closed_breaker_only() -> None:
    b = make()
    for _ in range(3):
        b.record_external_failure(T0, FailureKind.NETWORK)
    stats = b.statistics(T0)
    assert stats.state is OPEN
    assert stats.last_failure_kind is FailureKind.NETWORK
    b.record_external_failure(T0 + 1, FailureKind.TIMEOUT)
    assert b.statistics(T0 + 1) == stats
    b.record_external_failure(T0 + 60, FailureKind.TIMEOUT)
    assert b.state(T0 + 60) is HALF_OPEN
    assert b.statistics(T0 + 60).last_failure_kind is FailureKind.NETWORK


def test_force_open_from_closed_closes_after_one_probe_success() -> None:
    b = make()
    b.force_open(T0, 5_000)
    stats = b.statistics(T0)
    assert (stats.state, stats.forced, stats.total_opens) == (OPEN, True, 1)
    assert stats.recovery_deadline == T0 + 5.0
    assert stats.recovery_timeout_ms == 5_000
    assert b.admit(T0 + 4.999).verdict is Verdict.REJECTED_OPEN
    b.record_success(T0 + 5, b.admit(T0 + 5))
    assert b.state(T0 + 5) is CLOSED
    assert b.statistics(T0 + 5).forced is False


def test_force_open_on_an_open_breaker_keeps_the_later_deadline() -> None:
    b = make()
    trip(b)
    b.force_open(T0 + 1, 10_000)
    stats = b.statistics(T0 + 1)
    assert stats.recovery_deadline == T0 + 60.0
    assert (stats.forced, stats.total_opens, stats.opened_at) == (False, 1, T0)
    b.force_open(T0 + 2, 120_000)
    stats = b.statistics(T0 + 2)
    assert stats.recovery_deadline == T0 + 122.0
    assert stats.recovery_timeout_ms == 120_000
    assert stats.forced is False  # still opened by failures: two successes to close


def test_force_open_during_half_open_orphans_the_probe() -> None:
    b = make()
    t = to_half_open(b)
    probe = b.admit(t)
    b.force_open(t, 1_000)
    stats = b.statistics(t)
    assert (stats.state, stats.probe_in_flight, stats.total_opens) == (OPEN, False, 2)
    b.record_failure(t, probe, FailureKind.SERVER)
    assert b.statistics(t) == stats
    assert b.admit(t + 1).is_probe


@pytest.mark.parametrize(("retry_after_ms", "delay_s"), [(-5, 0.0), (0, 0.0), (3_600_000, 600.0)])
def test_force_open_clamps_retry_after(retry_after_ms: int, delay_s: float) -> None:
    b = make()
    b.force_open(T0, retry_after_ms)
    assert b.statistics(T0).recovery_deadline == T0 + delay_s


ALL_PAIRS = [(state, event) for state in CircuitState for event in _Event]


@pytest.mark.parametrize(
    ("state", "event"), [pair for pair in ALL_PAIRS if pair not in _TRANSITIONS]
)
def test_illegal_transitions_raise(state: CircuitState, event: _Event) -> None:
    b = make()
    b._state = state
    with pytest.raises(BreakerError, match="illegal breaker transition"):
        b._transition(event, 0.0)
    assert b._state is state


def test_transition_table() -> None:
    assert _TRANSITIONS == {
        (CLOSED, _Event.TRIP): OPEN,
        (CLOSED, _Event.FORCE_OPEN): OPEN,
        (OPEN, _Event.RECOVERY_DUE): HALF_OPEN,
        (OPEN, _Event.FORCE_OPEN): OPEN,
        (OPEN, _Event.EXPEDITE): HALF_OPEN,
        (HALF_OPEN, _Event.RECOVERED): CLOSED,
        (HALF_OPEN, _Event.PROBE_FAILED): OPEN,
        (HALF_OPEN, _Event.FORCE_OPEN): OPEN,
    }


# -- expedite: a recovery probe ahead of the deadline --------------------------------


def test_expedite_admits_one_probe_now_and_one_success_closes() -> None:
    b = make()
    trip(b)
    now = T0 + 0.25
    assert b.admit(now).verdict is Verdict.REJECTED_OPEN
    assert b.expedite(now) is True
    assert b.state(now) is HALF_OPEN and b.statistics(now).expedited
    probe = b.admit(now)
    assert probe.is_probe
    assert b.admit(now).verdict is Verdict.REJECTED_HALF_OPEN_BUSY
    b.record_success(now, probe)  # success_threshold is 2, but nothing else can serve
    assert b.state(now) is CLOSED
    assert b.statistics(now).expedited is False


def test_a_failed_expedited_probe_leaves_the_breaker_as_it_was() -> None:
    b = make()
    trip(b)
    before = b.statistics(T0)
    for step in range(1, 200):  # every 300 ms for a minute: the backoff never grows
        now = T0 + 0.3 * step
        if now >= (before.recovery_deadline or 0):
            break
        assert b.expedite(now)
        b.record_failure(now, b.admit(now), FailureKind.SERVER)
        assert b.statistics(now) == before
    assert b.retry_after_s(T0 + 1) == pytest.approx(59.0)


def test_expedite_is_a_no_op_unless_open() -> None:
    b = make()
    assert b.expedite(T0) is False
    assert b.state(T0) is CLOSED
    half_open_at = to_half_open(b)
    assert b.expedite(half_open_at) is False
    assert b.statistics(half_open_at).expedited is False


def test_a_forced_open_is_never_expedited() -> None:
    b = make()
    b.force_open(T0, 30_000)  # the provider said: stay away 30 s
    assert b.expedite(T0 + 1) is False
    assert b.admit(T0 + 1).verdict is Verdict.REJECTED_OPEN
    assert b.statistics(T0 + 1).recovery_deadline == T0 + 30


def test_force_open_during_an_expedited_probe_is_a_new_opening() -> None:
    b = make()
    trip(b)
    assert b.expedite(T0 + 1)
    probe = b.admit(T0 + 1)
    b.force_open(T0 + 2, 5_000)
    b.record_failure(T0 + 2, probe, FailureKind.SERVER)  # stale: ignored
    stats = b.statistics(T0 + 2)
    assert (stats.state, stats.forced, stats.total_opens) == (OPEN, True, 2)
    assert stats.recovery_deadline == T0 + 7
    assert stats.expedited is False
