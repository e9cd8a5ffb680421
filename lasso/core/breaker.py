"""Circuit breaker for one provider × transport. Pure: time and randomness are passed in.

Use::

    admission = breaker.admit(now)
    if not admission.admitted:
        ...  # skip this provider; it is not an attempt
    # carry out the attempt, then report exactly one outcome with the same admission:
    breaker.record_success(now, admission)
    breaker.record_failure(now, admission, FailureKind.TIMEOUT)
    breaker.record_cancelled(now, admission)  # the caller went away: counts for nothing

Only provider failures are failures. An answer that shows the provider working (a
deterministic error such as a revert) may be reported as a success; an answer that says
nothing about its health (a capability limit, a rate limit) is best reported with
``record_cancelled``, which frees a probe's lease and counts for nothing. A provider that
must be left alone for a known time can be opened with ``force_open``. When nothing
else can serve, the shell may ``expedite`` an open breaker: probe it now instead of at
its recovery deadline.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from typing import Final

import msgspec

__all__ = [
    "Admission",
    "BreakerError",
    "BreakerPolicy",
    "BreakerStatistics",
    "BreakerTransition",
    "CircuitBreaker",
    "CircuitState",
    "FailureKind",
    "Verdict",
]


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class FailureKind(enum.Enum):
    TIMEOUT = "timeout"
    NETWORK = "network"
    SERVER = "server"
    PROTOCOL = "protocol"


class _Event(enum.Enum):
    TRIP = enum.auto()  # enough consecutive failures while closed
    RECOVERY_DUE = enum.auto()  # the recovery deadline has passed
    PROBE_FAILED = enum.auto()  # a half-open probe failed
    RECOVERED = enum.auto()  # enough half-open probes succeeded
    FORCE_OPEN = enum.auto()  # told to stay away, e.g. "retry after N s"
    EXPEDITE = enum.auto()  # probe now: no other provider of the chain is available


# Theory of operation
# -------------------
# CLOSED: everything is admitted. Failures extend a streak of consecutive failures and a
#   success ends it. When the streak reaches the threshold for the kind of the failure
#   just seen (timeout 2, network 3, anything else 5) the breaker TRIPs: a short streak of
#   timeouts opens it quickly, and a timeout after four server errors opens it too.
# OPEN: nothing is admitted. The recovery deadline is fixed on opening as
#   now + min(timeout · (1 + U[0, jitter_ratio)), max_recovery_timeout), where timeout is
#   recovery_timeout · 2^reopens (reopens counted since the breaker last closed) or, for a
#   forced open, the given retry-after. Outcomes of attempts admitted before it opened
#   change nothing; in particular they never extend the deadline.
# HALF_OPEN: entered lazily (RECOVERY_DUE), when admit()/state() is first asked at or
#   after the deadline; no timer is needed. One probe at a time holds the lease; others
#   are told the breaker is busy. A cancelled probe frees the lease and counts for
#   nothing. success_threshold probe successes in a row (1 after a forced open) close it
#   (RECOVERED); one probe failure reopens it with the timeout doubled (PROBE_FAILED).
# FORCE_OPEN is allowed from every state; when already open the later deadline wins.
# EXPEDITE (asked by the shell when no provider of the chain is available) moves OPEN to
#   HALF_OPEN before the deadline, unless the open was forced (the provider said how long
#   to stay away). Such a recovery probe is cheap to fail: one failure
#   puts the breaker back to OPEN with the deadline, timeout and reopen count it had, so
#   probing every few hundred ms during an outage never inflates the backoff; one success
#   closes it, since nothing else of the chain can serve meanwhile. FORCE_OPEN during a
#   recovery probe is a new opening, as from any HALF_OPEN.
#
# Each transition starts a new epoch, and every admission carries the epoch it was issued
# in, so the late outcome of an attempt admitted before a transition is recognised and
# ignored instead of being mistaken for the probe's.
#
# Each transition is also kept as a BreakerTransition in a small bounded list until the
# owner drains it (``drain_transitions``): the channel hands them to the shell, which
# publishes one operator event per transition (lasso.opspublish). A transition made
# lazily by a question (state, admit, statistics at or after the deadline) is kept the
# same way, with the ``now`` it was asked at.
_TRANSITIONS: Final[dict[tuple[CircuitState, _Event], CircuitState]] = {
    (CircuitState.CLOSED, _Event.TRIP): CircuitState.OPEN,
    (CircuitState.CLOSED, _Event.FORCE_OPEN): CircuitState.OPEN,
    (CircuitState.OPEN, _Event.RECOVERY_DUE): CircuitState.HALF_OPEN,
    (CircuitState.OPEN, _Event.FORCE_OPEN): CircuitState.OPEN,
    (CircuitState.OPEN, _Event.EXPEDITE): CircuitState.HALF_OPEN,
    (CircuitState.HALF_OPEN, _Event.RECOVERED): CircuitState.CLOSED,
    (CircuitState.HALF_OPEN, _Event.PROBE_FAILED): CircuitState.OPEN,
    (CircuitState.HALF_OPEN, _Event.FORCE_OPEN): CircuitState.OPEN,
}


#: Transitions kept until drained; the oldest go first if nobody drains (a bare breaker).
PENDING_TRANSITIONS: Final = 64

_REASONS: Final[dict[_Event, str]] = {
    _Event.RECOVERY_DUE: "recovery deadline reached: one probe may go",
    _Event.EXPEDITE: "no provider of the chain available: probing now",
}


class BreakerTransition(msgspec.Struct, frozen=True):
    """One state change, for the operator event. ``at`` is the ``now`` it happened at.

    ``recovery_probe`` marks the moves of an expedited probe (open -> half_open and,
    when it fails, back to open with the same deadline): routine during an outage, so
    the log shows them only at DEBUG.
    """

    at: float
    old: CircuitState
    new: CircuitState
    reason: str
    recovery_probe: bool = False


class BreakerError(RuntimeError):
    """Our own bug: an illegal transition, or an admission's outcome reported twice."""


class Verdict(enum.Enum):
    ADMITTED = "admitted"
    REJECTED_OPEN = "rejected_open"
    REJECTED_HALF_OPEN_BUSY = "rejected_half_open_busy"


class Admission(msgspec.Struct, frozen=True):
    """The answer to ``admit``; an admitted one is handed back with the outcome.

    ``lease`` is non-zero when this admission is the half-open probe.
    """

    verdict: Verdict
    epoch: int = -1
    lease: int = 0

    @property
    def admitted(self) -> bool:
        return self.verdict is Verdict.ADMITTED

    @property
    def is_probe(self) -> bool:
        return self.lease != 0


_REJECTED_OPEN: Final = Admission(Verdict.REJECTED_OPEN)
_REJECTED_BUSY: Final = Admission(Verdict.REJECTED_HALF_OPEN_BUSY)


class BreakerPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    failure_threshold: int = 5
    recovery_timeout_ms: int = 60_000
    success_threshold: int = 2
    timeout_threshold: int = 2
    network_threshold: int = 3
    max_recovery_timeout_ms: int = 600_000
    jitter_ratio: float = 0.05

    def __post_init__(self) -> None:
        thresholds = (
            self.failure_threshold,
            self.success_threshold,
            self.timeout_threshold,
            self.network_threshold,
        )
        if min(thresholds) < 1:
            raise ValueError("every threshold must be >= 1")
        if not 0 < self.recovery_timeout_ms <= self.max_recovery_timeout_ms:
            raise ValueError("need 0 < recovery_timeout_ms <= max_recovery_timeout_ms")
        if not 0 <= self.jitter_ratio < 1:
            raise ValueError("jitter_ratio must be in [0, 1)")

    def threshold_for(self, kind: FailureKind) -> int:
        if kind is FailureKind.TIMEOUT:
            return self.timeout_threshold
        if kind is FailureKind.NETWORK:
            return self.network_threshold
        return self.failure_threshold

    def reopen_timeout_ms(self, reopens: int) -> int:
        """The recovery timeout before jitter after ``reopens`` half-open failures."""
        return min(self.recovery_timeout_ms << min(reopens, 32), self.max_recovery_timeout_ms)


class BreakerStatistics(msgspec.Struct, frozen=True):
    state: CircuitState
    consecutive_failures: int
    half_open_successes: int
    probe_in_flight: bool
    opened_at: float | None
    recovery_deadline: float | None
    recovery_timeout_ms: int  # the current timeout before jitter
    reopen_count: int
    total_opens: int
    last_failure_kind: FailureKind | None
    forced: bool
    expedited: bool = False


class CircuitBreaker:
    """One provider channel's breaker. ``now`` is monotonic time in seconds."""

    def __init__(self, policy: BreakerPolicy, rng: random.Random) -> None:
        self._policy = policy
        self._rng = rng
        self._state = CircuitState.CLOSED
        self._epoch = 0
        self._admitted = Admission(Verdict.ADMITTED, 0)
        self._lease = 0  # the lease id of the probe in flight, 0 for none
        self._last_lease = 0
        self._consecutive_failures = 0
        self._half_open_successes = 0
        self._close_after = policy.success_threshold
        self._opened_at: float | None = None
        self._recovery_deadline: float | None = None
        self._timeout_ms = policy.recovery_timeout_ms
        self._reopen_count = 0
        self._total_opens = 0
        self._last_failure_kind: FailureKind | None = None
        self._forced = False
        self._expedited = False  # half-open ahead of the deadline (see EXPEDITE)
        #: Transitions not yet drained (see ``drain_transitions``); truthy when any.
        self.pending: deque[BreakerTransition] = deque(maxlen=PENDING_TRANSITIONS)

    def drain_transitions(self) -> list[BreakerTransition]:
        """The transitions since the last drain, oldest first; each is returned once."""
        drained = list(self.pending)
        self.pending.clear()
        return drained

    # -- questions -------------------------------------------------------------------

    def state(self, now: float) -> CircuitState:
        self._maybe_recover(now)
        return self._state

    def admit(self, now: float) -> Admission:
        if self._state is CircuitState.CLOSED:
            return self._admitted
        self._maybe_recover(now)
        if self._state is CircuitState.OPEN:
            return _REJECTED_OPEN
        if self._lease:
            return _REJECTED_BUSY
        self._last_lease += 1
        self._lease = self._last_lease
        return Admission(Verdict.ADMITTED, self._epoch, self._lease)

    def set_policy(self, policy: BreakerPolicy) -> None:
        """A reload's new thresholds, keeping the state and its counts.

        The next outcome is judged by the new values: a closed breaker with more
        consecutive failures than a lowered threshold opens at its next failure; an
        open breaker keeps the deadline it was given; a half-open one still needs
        the success count it was told, unless the new one is lower.
        """
        self._policy = policy
        if self._state is CircuitState.CLOSED:
            self._timeout_ms = policy.recovery_timeout_ms
            self._close_after = policy.success_threshold
        elif not self._forced:
            self._close_after = min(self._close_after, policy.success_threshold)

    def retry_after_s(self, now: float) -> float:
        """Seconds until this breaker lets a probe through; 0 unless it is open."""
        if self.state(now) is not CircuitState.OPEN or self._recovery_deadline is None:
            return 0.0
        return self._recovery_deadline - now

    def statistics(self, now: float) -> BreakerStatistics:
        self._maybe_recover(now)
        return BreakerStatistics(
            state=self._state,
            consecutive_failures=self._consecutive_failures,
            half_open_successes=self._half_open_successes,
            probe_in_flight=self._lease != 0,
            opened_at=self._opened_at,
            recovery_deadline=self._recovery_deadline,
            recovery_timeout_ms=self._timeout_ms,
            reopen_count=self._reopen_count,
            total_opens=self._total_opens,
            last_failure_kind=self._last_failure_kind,
            forced=self._forced,
            expedited=self._expedited,
        )

    # -- outcomes --------------------------------------------------------------------

    def record_success(self, now: float, admission: Admission) -> None:
        if not self._is_current(admission):
            return
        if not admission.is_probe:
            self._consecutive_failures = 0
            return
        self._lease = 0
        self._half_open_successes += 1
        if self._half_open_successes >= self._close_after:
            self._close(now)

    def record_failure(self, now: float, admission: Admission, kind: FailureKind) -> None:
        if not self._is_current(admission):
            return
        self._last_failure_kind = kind
        if not admission.is_probe:
            self._count_failure(now, kind)
            return
        if self._expedited:
            # back to open, deadline unchanged
            self._transition(_Event.PROBE_FAILED, now, f"recovery probe failed ({kind.value})")
            self._expedited = False
            self._close_after = self._policy.success_threshold
            return
        self._reopen_count += 1
        timeout_ms = self._policy.reopen_timeout_ms(self._reopen_count)
        self._open(now, _Event.PROBE_FAILED, timeout_ms, f"probe failed ({kind.value})")

    def record_cancelled(self, now: float, admission: Admission) -> None:
        """The attempt was abandoned: not a failure. A probe's lease is freed."""
        if self._is_current(admission) and admission.is_probe:
            self._lease = 0

    def record_external_failure(self, now: float, kind: FailureKind) -> None:
        """A failure seen outside any admitted attempt (a health probe, a WS connect).

        It counts towards tripping a closed breaker; while open or half-open only the
        deadline and the probe decide.
        """
        if self._state is CircuitState.CLOSED:
            self._last_failure_kind = kind
            self._count_failure(now, kind)

    def expedite(self, now: float) -> bool:
        """Open: go half-open now, before the deadline, so a probe can go. True if it did.

        For a chain with no provider available. A probe admitted now that fails puts the
        breaker back exactly as it was (open, same deadline); one that succeeds closes it.
        A forced open is left alone: the provider said how long to stay away.
        """
        if self.state(now) is not CircuitState.OPEN or self._forced:
            return False
        self._transition(_Event.EXPEDITE, now)
        self._half_open_successes = 0
        self._expedited = True
        self._close_after = 1
        return True

    def force_open(self, now: float, retry_after_ms: int) -> None:
        """Open now for ``retry_after_ms`` (capped, jittered); one probe success closes it."""
        capped = min(max(retry_after_ms, 0), self._policy.max_recovery_timeout_ms)
        reason = f"told to stay away for {capped} ms"
        self._open(now, _Event.FORCE_OPEN, capped, reason, forced=True)

    # -- transitions -----------------------------------------------------------------

    def _is_current(self, admission: Admission) -> bool:
        if not admission.admitted:
            raise BreakerError("an outcome was reported for a rejected admission")
        if admission.epoch != self._epoch:
            return False  # admitted before the last transition: stale
        if admission.is_probe and admission.lease != self._lease:
            raise BreakerError("a probe's outcome was reported twice")
        return True

    def _count_failure(self, now: float, kind: FailureKind) -> None:
        self._consecutive_failures += 1
        if self._consecutive_failures >= self._policy.threshold_for(kind):
            reason = f"{self._consecutive_failures} consecutive failures (last: {kind.value})"
            self._open(now, _Event.TRIP, self._policy.recovery_timeout_ms, reason)

    def _maybe_recover(self, now: float) -> None:
        if (
            self._state is CircuitState.OPEN
            and self._recovery_deadline is not None
            and now >= self._recovery_deadline
        ):
            self._transition(_Event.RECOVERY_DUE, now)
            self._half_open_successes = 0

    def _open(
        self, now: float, event: _Event, timeout_ms: int, reason: str, *, forced: bool = False
    ) -> None:
        was_open = self._state is CircuitState.OPEN
        self._expedited = False  # forced open during a recovery probe: a new opening
        self._transition(event, now, reason)
        delay_ms = timeout_ms * (1 + self._policy.jitter_ratio * self._rng.random())
        deadline = now + min(delay_ms, self._policy.max_recovery_timeout_ms) / 1000
        if was_open:
            # Only a forced open finds the breaker open: the later deadline wins, and how
            # the breaker closes again is still decided by why it opened.
            if self._recovery_deadline is None or deadline > self._recovery_deadline:
                self._recovery_deadline = deadline
                self._timeout_ms = timeout_ms
            return
        self._opened_at = now
        self._total_opens += 1
        self._recovery_deadline = deadline
        self._timeout_ms = timeout_ms
        self._forced = forced
        self._close_after = 1 if forced else self._policy.success_threshold

    def _close(self, now: float) -> None:
        successes = self._half_open_successes
        reason = f"{successes} probe{'' if successes == 1 else 's'} succeeded"
        self._transition(_Event.RECOVERED, now, reason)
        self._consecutive_failures = 0
        self._half_open_successes = 0
        self._reopen_count = 0
        self._opened_at = None
        self._recovery_deadline = None
        self._timeout_ms = self._policy.recovery_timeout_ms
        self._forced = False
        self._expedited = False
        self._close_after = self._policy.success_threshold

    def _transition(self, event: _Event, now: float, reason: str = "") -> None:
        old_state = self._state
        new_state = _TRANSITIONS.get((old_state, event))
        if new_state is None:
            raise BreakerError(f"illegal breaker transition: {event.name} in {self._state.name}")
        if new_state is not old_state:  # a forced open of an open breaker moves nothing
            probe = event is _Event.EXPEDITE or (event is _Event.PROBE_FAILED and self._expedited)
            reason = reason or _REASONS.get(event, event.name.lower())
            self.pending.append(BreakerTransition(now, old_state, new_state, reason, probe))
        self._state = new_state
        self._epoch += 1
        self._lease = 0
        self._admitted = Admission(Verdict.ADMITTED, self._epoch)
