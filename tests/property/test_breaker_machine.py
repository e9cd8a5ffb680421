"""The circuit breaker as a state machine over virtual time.

Hypothesis drives admissions, outcomes (in any order, including late ones from before a
transition), external failures, forced opens and jumps of the clock, and checks:

* OPEN never admits before its recovery deadline;
* HALF_OPEN never has more than one live probe lease;
* every recovery delay lies in [timeout, timeout · 1.05], never above the 10-minute cap,
  where timeout is 60 s · 2^reopens (capped) or a forced retry-after;
* the breaker closes exactly when success_threshold consecutive probes have succeeded
  (one after a forced open or an expedite), and never otherwise;
* an expedited (early) probe that fails leaves the breaker open exactly as it was: same
  deadline, same reopen count, same number of opens; a forced open is never expedited.

An admission is "live" while no transition has happened since it was issued. Every
transition out of CLOSED or HALF_OPEN into OPEN increments ``total_opens``, and closing
is caused by the live probe's own report, so the ``total_opens`` value at issue time
tells whether an outstanding admission is still live. (An expedite and an expedited
probe's failure do not count as opens, but neither can strand a live admission: the
first happens while open, when none is outstanding, the second is the probe's own.)
"""

from __future__ import annotations

import random

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from lasso.core.breaker import (
    Admission,
    BreakerPolicy,
    BreakerStatistics,
    CircuitBreaker,
    CircuitState,
    FailureKind,
    Verdict,
)

pytestmark = pytest.mark.slow

POLICY = BreakerPolicy()
CAP_MS = POLICY.max_recovery_timeout_ms
EPS = 1e-6
CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

kinds = st.sampled_from(FailureKind)
# Mostly short steps, sometimes past a recovery deadline.
steps_ms = st.one_of(st.integers(0, 5_000), st.integers(55_000, 700_000))


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000.0
        self.breaker = CircuitBreaker(POLICY, random.Random(0))
        self.outstanding: list[tuple[Admission, int]] = []  # (admission, total_opens at issue)
        self.streak = 0  # the model's consecutive failures while closed
        self.reopens = 0
        self.probe_successes = 0
        self.close_after = POLICY.success_threshold
        self.expedited: BreakerStatistics | None = None  # the open breaker before expedite

    @initialize(rng=st.randoms(use_true_random=False))
    def start(self, rng: random.Random) -> None:
        self.breaker = CircuitBreaker(POLICY, rng)

    def stats(self) -> BreakerStatistics:
        return self.breaker.statistics(self.now)

    def check_opened(self, stats: BreakerStatistics, timeout_ms: int) -> None:
        """The breaker has just opened at ``now`` with ``timeout_ms`` before jitter."""
        assert stats.state is OPEN
        assert stats.opened_at == self.now
        assert stats.recovery_timeout_ms == timeout_ms <= CAP_MS
        self.check_deadline(stats, timeout_ms)
        self.probe_successes = 0

    def check_deadline(self, stats: BreakerStatistics, timeout_ms: int) -> None:
        assert stats.recovery_deadline is not None
        delay_ms = (stats.recovery_deadline - self.now) * 1000
        assert timeout_ms - EPS <= delay_ms <= min(timeout_ms * 1.05, CAP_MS) + EPS
        assert delay_ms <= CAP_MS + EPS

    def count_failure(self, before: BreakerStatistics, kind: FailureKind) -> None:
        """A live failure in CLOSED has just been reported."""
        self.streak += 1
        after = self.stats()
        assert after.consecutive_failures == self.streak
        if self.streak >= POLICY.threshold_for(kind):
            assert self.reopens == 0
            self.check_opened(after, POLICY.recovery_timeout_ms)
            assert after.total_opens == before.total_opens + 1
            self.close_after = POLICY.success_threshold
        else:
            assert after.state is CLOSED

    # -- rules -------------------------------------------------------------------------

    @rule(ms=steps_ms)
    def advance(self, ms: int) -> None:
        self.now += ms / 1000

    @rule()
    def admit(self) -> None:
        before = self.stats()  # already lazily half-open if the deadline has passed
        admission = self.breaker.admit(self.now)
        if before.state is OPEN:
            assert before.recovery_deadline is not None
            assert self.now < before.recovery_deadline
            assert admission.verdict is Verdict.REJECTED_OPEN
        elif before.state is HALF_OPEN:
            assert before.recovery_deadline is not None
            assert before.expedited or self.now >= before.recovery_deadline
            if before.probe_in_flight:
                assert admission.verdict is Verdict.REJECTED_HALF_OPEN_BUSY
            else:
                assert admission.admitted and admission.is_probe
        else:
            assert admission.admitted and not admission.is_probe
        if admission.admitted:
            self.outstanding.append((admission, before.total_opens))

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data())
    def succeed(self, data: st.DataObject) -> None:
        admission, tag = self.take(data)
        before = self.stats()
        self.breaker.record_success(self.now, admission)
        after = self.stats()
        if tag != before.total_opens:
            assert after == before
        elif admission.is_probe:
            self.probe_successes += 1
            assert self.probe_successes <= self.close_after
            if self.probe_successes == self.close_after:
                assert after.state is CLOSED
                assert (after.consecutive_failures, after.reopen_count) == (0, 0)
                assert after.expedited is False
                self.streak = self.reopens = self.probe_successes = 0
                self.expedited = None
            else:
                assert after.state is HALF_OPEN
                assert after.half_open_successes == self.probe_successes
        else:
            assert after.state is CLOSED
            self.streak = 0
            assert after.consecutive_failures == 0

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data(), kind=kinds)
    def fail(self, data: st.DataObject, kind: FailureKind) -> None:
        admission, tag = self.take(data)
        before = self.stats()
        self.breaker.record_failure(self.now, admission, kind)
        after = self.stats()
        if tag != before.total_opens:
            assert after == before
        elif admission.is_probe and self.expedited is not None:
            was = self.expedited
            self.expedited = None
            assert after.expedited is False
            assert after.state is (OPEN if self.now < (was.recovery_deadline or 0) else HALF_OPEN)
            assert (after.recovery_deadline, after.recovery_timeout_ms) == (
                was.recovery_deadline,
                was.recovery_timeout_ms,
            )
            assert (after.reopen_count, after.total_opens) == (was.reopen_count, was.total_opens)
            assert after.opened_at == was.opened_at and not after.forced
            self.probe_successes = 0
            self.close_after = POLICY.success_threshold
        elif admission.is_probe:
            self.reopens += 1
            self.check_opened(after, min(POLICY.recovery_timeout_ms * 2**self.reopens, CAP_MS))
            assert after.total_opens == before.total_opens + 1
            assert after.reopen_count == self.reopens
            self.close_after = POLICY.success_threshold
        else:
            self.count_failure(before, kind)

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        admission, tag = self.take(data)
        before = self.stats()
        self.breaker.record_cancelled(self.now, admission)
        after = self.stats()
        if tag == before.total_opens and admission.is_probe:
            assert after.state is HALF_OPEN
            assert after.probe_in_flight is False
            assert after.half_open_successes == before.half_open_successes
        else:
            assert after == before

    @rule(kind=kinds)
    def external_failure(self, kind: FailureKind) -> None:
        before = self.stats()
        self.breaker.record_external_failure(self.now, kind)
        if before.state is CLOSED:
            self.count_failure(before, kind)
        else:
            after = self.stats()
            assert after == before

    @rule()
    def expedite(self) -> None:
        before = self.stats()
        expedited = self.breaker.expedite(self.now)
        after = self.stats()
        if before.state is not OPEN or before.forced:
            assert not expedited
            assert after == before
            return
        assert expedited
        assert after.state is HALF_OPEN and after.expedited and not after.probe_in_flight
        assert (after.recovery_deadline, after.reopen_count, after.total_opens) == (
            before.recovery_deadline,
            before.reopen_count,
            before.total_opens,
        )
        self.expedited = before
        self.probe_successes = 0
        self.close_after = 1

    @rule(retry_after_ms=st.integers(-1_000, 2_000_000))
    def force_open(self, retry_after_ms: int) -> None:
        before = self.stats()
        self.breaker.force_open(self.now, retry_after_ms)
        self.expedited = None
        after = self.stats()
        timeout_ms = min(max(retry_after_ms, 0), CAP_MS)
        if before.state is OPEN:
            assert before.recovery_deadline is not None
            assert after.recovery_deadline is not None
            assert after.recovery_deadline >= before.recovery_deadline
            if after.recovery_deadline != before.recovery_deadline:
                self.check_deadline(after, timeout_ms)
            assert after.total_opens == before.total_opens
            assert after.forced == before.forced
        elif timeout_ms == 0 and after.state is HALF_OPEN:
            # Opened with no delay at all: already due by the time we look.
            assert after.total_opens == before.total_opens + 1
            self.probe_successes = 0
            self.close_after = 1
        else:
            self.check_opened(after, timeout_ms)
            assert after.forced is True
            assert after.total_opens == before.total_opens + 1
            self.close_after = 1

    def take(self, data: st.DataObject) -> tuple[Admission, int]:
        index = data.draw(st.integers(0, len(self.outstanding) - 1))
        return self.outstanding.pop(index)

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def at_most_one_live_probe(self) -> None:
        stats = self.stats()
        live_probes = [a for a, tag in self.outstanding if a.is_probe and tag == stats.total_opens]
        assert len(live_probes) <= 1
        if stats.state is HALF_OPEN:
            assert stats.probe_in_flight == (len(live_probes) == 1)
        else:
            assert live_probes == []
            assert stats.probe_in_flight is False

    @invariant()
    def open_means_before_the_deadline(self) -> None:
        stats = self.stats()
        if stats.state is OPEN:
            assert stats.recovery_deadline is not None
            assert self.now < stats.recovery_deadline
            assert self.breaker.retry_after_s(self.now) == stats.recovery_deadline - self.now
        else:
            assert self.breaker.retry_after_s(self.now) == 0.0

    @invariant()
    def closed_streak_matches(self) -> None:
        stats = self.stats()
        if stats.state is CLOSED:
            assert stats.consecutive_failures == self.streak
            assert stats.reopen_count == 0
        if stats.state is HALF_OPEN:
            assert stats.half_open_successes == self.probe_successes


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
test_breaker_machine = BreakerMachine.TestCase
