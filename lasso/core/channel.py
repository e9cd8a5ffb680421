"""One provider channel (provider × transport): the state routing, dispatch and health read.

Theory of operation. A :class:`Channel` owns everything known about one way of
reaching one provider:

    breaker        its :class:`~lasso.core.breaker.CircuitBreaker`
    rate limit     its :class:`~lasso.core.ratelimit.RateLimitState` (demotion, not exclusion)
    quarantine     the :class:`~lasso.core.backoff.RestartTracker` its transport's
                   supervisor counts restarts into: too many lately routes around it
    latency        a handle on the chain's :class:`~lasso.core.latency.LatencyBook`
                   entries for (this provider, this transport); the book stays the
                   chain's, so per-method medians still see every provider

What the provider can serve (configured and learned) is per provider, not per
channel: :class:`~lasso.core.capabilities.CapabilityBook`, on the provider.

Nobody else holds those parts. The router decides on :meth:`Channel.view`; the
dispatcher asks :meth:`Channel.admit` and reports each attempt's outcome with
``record_success`` / ``record_failure`` / ``record_cancelled`` / ``mark_limited``;
``/health``, ``/metrics`` and the dashboard render :meth:`Channel.statistics`.
Everything here is synchronous and pure: time is an argument. Each breaker
transition is handed, once, to the channel's ``observer`` (the shell's: it
publishes the operator event, see :mod:`lasso.opspublish`) right after the
channel call that made it; a transition a bare ``breaker`` question made lazily
(open -> half_open at the deadline) goes out with the channel's next call (the
prober asks every second). A channel is a
plain object with no tasks, so it is created with its provider and dropped with
it; a request that planned with it keeps it alive until the request is done.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from lasso.core.backoff import RestartStatistics, RestartTracker
from lasso.core.breaker import (
    Admission,
    BreakerStatistics,
    BreakerTransition,
    CircuitBreaker,
    CircuitState,
    FailureKind,
)
from lasso.core.latency import LatencyBook, LatencyKey, LatencyStats
from lasso.core.ratelimit import RateLimitState, RateLimitStatistics
from lasso.core.router import ChannelView, Tier

__all__ = ["STALE_AFTER_S", "Channel", "ChannelStatistics", "TransitionObserver"]

#: Latency evidence older than this is ignored by routing (the provider is re-measured).
STALE_AFTER_S = 600.0


class ChannelStatistics(msgspec.Struct, frozen=True):
    """One channel as health, metrics and the dashboard see it at ``now``."""

    provider_id: str
    transport: str
    tier: str
    circuit: str
    breaker: BreakerStatistics
    rate_limited: bool
    rate_limit: RateLimitStatistics
    quarantined: bool
    restarts: RestartStatistics


class Channel:
    """One provider × transport; see the module docstring."""

    __slots__ = (
        "_latency",
        "breaker",
        "observer",
        "order",
        "priority",
        "provider_id",
        "rate_limit",
        "restarts",
        "transport",
    )

    def __init__(
        self,
        provider_id: str,
        transport: str,
        *,
        priority: int,
        order: int,
        breaker: CircuitBreaker,
        restarts: RestartTracker,
        latency: LatencyBook,
        rate_limit: RateLimitState | None = None,
    ) -> None:
        self.provider_id = provider_id
        self.transport = transport
        self.priority = priority
        self.order = order
        self.breaker = breaker
        self.rate_limit = rate_limit or RateLimitState()
        self.restarts = restarts
        self._latency = latency
        #: Told each breaker transition once, after the call that made it (None: dropped).
        self.observer: TransitionObserver | None = None

    def _flush(self) -> None:
        if self.breaker.pending:
            transitions = self.breaker.drain_transitions()
            if self.observer is not None:
                for transition in transitions:
                    self.observer(self, transition)

    def circuit(self, now: float) -> CircuitState:
        """The breaker's state at ``now`` (a lazy half-open is reported here)."""
        state = self.breaker.state(now)
        self._flush()
        return state

    # -- routing -----------------------------------------------------------------

    def quarantined(self, now: float) -> bool:
        """Its service restarted too often lately: route around it."""
        return self.restarts.exceeded(now)

    def tier(self, now: float) -> Tier:
        state = self.circuit(now)
        if state is CircuitState.OPEN or self.restarts.exceeded(now):
            return Tier.OPEN
        if self.rate_limit.is_limited(now):
            return Tier.RATE_LIMITED
        if state is CircuitState.HALF_OPEN:
            return Tier.HALF_OPEN
        return Tier.HEALTHY

    def available(self, now: float) -> bool:
        """It can take a request: neither open nor quarantined."""
        return self.tier(now) is not Tier.OPEN

    def view(self, now: float, *, method: str | None = None) -> ChannelView:
        """What the router sees; latency for ``method`` only when one is given."""
        tier = self.tier(now)
        latency_ms, samples = None, 0
        if method is not None:
            stats = self._latency.get(LatencyKey(self.provider_id, method, self.transport))
            fresh = (
                stats is not None
                and stats.last_seen is not None
                and now - stats.last_seen <= STALE_AFTER_S  # old evidence ranks like none
            )
            if fresh and stats is not None and stats.ewma_us is not None:
                latency_ms, samples = stats.ewma_us / 1000, stats.samples
        return ChannelView(
            self.provider_id,
            self.transport,
            self.priority,
            self.order,
            tier,
            latency_ms,
            samples,
            self.breaker.retry_after_s(now) if tier is Tier.OPEN else None,
        )

    def latency(self, method: str) -> LatencyStats | None:
        return self._latency.get(self._key(method))

    # -- outcomes (the dispatcher's and the prober's) ----------------------------

    def admit(self, now: float) -> Admission:
        admission = self.breaker.admit(now)
        self._flush()
        return admission

    def record_success(
        self,
        now: float,
        admission: Admission,
        *,
        method: str | None = None,
        latency_us: int | None = None,
    ) -> None:
        """The provider worked; a latency sample only with ``method`` and ``latency_us``."""
        self.breaker.record_success(now, admission)
        self._flush()
        if method is not None and latency_us is not None:
            self._latency.record_success(self._key(method), now, latency_us)

    def record_failure(
        self, now: float, admission: Admission, kind: FailureKind, *, method: str | None = None
    ) -> None:
        """The provider failed; with ``method`` the failure counts in its latency record."""
        self.breaker.record_failure(now, admission, kind)
        self._flush()
        if method is not None:
            self._latency.record_failure(self._key(method), now)

    def record_cancelled(self, now: float, admission: Admission) -> None:
        """Not the provider's doing (the client left, or a capability miss)."""
        self.breaker.record_cancelled(now, admission)

    def mark_limited(self, now: float, admission: Admission, retry_after_ms: int | None) -> bool:
        """It said "slow down": demote it until Retry-After; not a breaker failure.

        True when this starts a limited period (it was not limited before): the
        transition an operator event reports, once, however many 429s follow.
        """
        self.breaker.record_cancelled(now, admission)
        started = not self.rate_limit.is_limited(now)
        self.rate_limit.mark_limited(now, retry_after_ms)
        return started

    def expedite(self, now: float) -> bool:
        """The chain is recovering: half-open now rather than at the breaker's deadline."""
        expedited = self.breaker.expedite(now)
        self._flush()
        return expedited

    # -- observability -------------------------------------------------------------

    def statistics(self, now: float) -> ChannelStatistics:
        return ChannelStatistics(
            provider_id=self.provider_id,
            transport=self.transport,
            tier=self.tier(now).name.lower(),
            circuit=self.circuit(now).value,
            breaker=self.breaker.statistics(now),
            rate_limited=self.rate_limit.is_limited(now),
            rate_limit=self.rate_limit.statistics(now),
            quarantined=self.quarantined(now),
            restarts=self.restarts.statistics(now),
        )

    def _key(self, method: str) -> LatencyKey:
        return LatencyKey(self.provider_id, method, self.transport)


#: The shell's hook for breaker transitions: (the channel, the transition).
TransitionObserver = Callable[[Channel, BreakerTransition], None]
