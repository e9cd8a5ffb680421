"""Counters of operator events (:mod:`lasso.opsevents`): transitions, failovers, limits.

:class:`EventMetrics` listens on ``gateway.events``; events are rare (a breaker
opening, a reload), so each one may look its labels up afresh. Every label value
is bounded: a chain or provider the gateway does not have configured (say an
event from a provider a reload just removed) is counted under ``other``, a
client key is never a label, and short words (a limit's kind, a reload's result)
go through :class:`~lasso.metrics.labels.WordLabels`.

:meth:`EventMetrics.inbound_limited` is also callable directly, for an inbound
gate that counts its refusals without publishing an event for each.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from lasso.config import DEFAULT_PROFILE
from lasso.gateway import Gateway, bus_key
from lasso.metrics.labels import OTHER, WordLabels
from lasso.opsevents import (
    BreakerChanged,
    ClientLimited,
    Failover,
    OpsEvent,
    ProviderDown,
    ProviderUp,
    Quarantined,
    Reloaded,
    UpstreamRateLimited,
)

_BREAKER_STATES = ("closed", "half_open", "open")
_TRANSPORTS = ("http", "ws")
_LIMITS = ("rate", "inflight", "ws")  # the limits lasso.web.gate names
_RELOAD_RESULTS = ("applied", "rejected", "unchanged")


class EventMetrics:
    """The counters operator events increment; ``on_event`` is the listener."""

    def __init__(self, registry: CollectorRegistry, gateway: Gateway) -> None:
        self._gateway = gateway
        self.breaker_transitions = Counter(
            "lasso_breaker_transitions",
            "Circuit breaker transitions, by chain, provider, transport and the state entered"
            " (closed, half_open, open).",
            ("chain", "provider", "transport", "state"),
            registry=registry,
        )
        self.provider_changes = Counter(
            "lasso_provider_changes",
            "A provider channel becoming usable (up) or not (down), by chain, provider and"
            " transport.",
            ("chain", "provider", "transport", "state"),
            registry=registry,
        )
        self.failovers = Counter(
            "lasso_failovers",
            "Calls that failed on a provider and were served by another, by chain and the"
            " provider failed over from.",
            ("chain", "provider"),
            registry=registry,
        )
        self.upstream_rate_limited = Counter(
            "lasso_upstream_rate_limited",
            "Upstream rate-limit answers (HTTP 429 or a rate-limit error), by chain, provider"
            " and transport.",
            ("chain", "provider", "transport"),
            registry=registry,
        )
        self.inbound_limited_total = Counter(
            "lasso_inbound_limited",
            "Client keys going over an inbound limit, by the limit (rate, inflight, ws): one per"
            " transition into limited (refusals: lasso_inbound_refused_total).",
            ("limit",),
            registry=registry,
        )
        self.quarantines = Counter(
            "lasso_quarantines",
            "Request shapes quarantined after crashing providers (lasso.core.poison), by chain.",
            ("chain",),
            registry=registry,
        )
        self.reloads = Counter(
            "lasso_reloads",
            "Configuration reloads (SIGHUP), by result (applied, rejected, unchanged).",
            ("result",),
            registry=registry,
        )
        self._states = WordLabels(_BREAKER_STATES, max_words=len(_BREAKER_STATES))
        self._transports = WordLabels(_TRANSPORTS, max_words=len(_TRANSPORTS))
        self._limits = WordLabels(_LIMITS)
        self._results = WordLabels(_RELOAD_RESULTS, max_words=8)

    def inbound_limited(self, limit: str, count: int = 1) -> None:
        """``count`` inbound refusals by the limit named ``limit``."""
        self.inbound_limited_total.labels(self._limits(limit)).inc(count)

    def on_event(self, event: OpsEvent) -> None:
        """The ``gateway.events`` listener."""
        match event:
            case BreakerChanged():
                chain, provider = self._where(event)
                self.breaker_transitions.labels(
                    chain, provider, self._transports(event.transport), self._states(event.new)
                ).inc()
            case ProviderUp() | ProviderDown():
                chain, provider = self._where(event)
                state = "up" if isinstance(event, ProviderUp) else "down"
                transport = self._transports(event.transport)
                self.provider_changes.labels(chain, provider, transport, state).inc()
            case Failover():
                self.failovers.labels(*self._where(event)).inc()
            case UpstreamRateLimited():
                chain, provider = self._where(event)
                transport = self._transports(event.transport)
                self.upstream_rate_limited.labels(chain, provider, transport).inc()
            case ClientLimited():
                self.inbound_limited(event.limit)  # the client key is never a label
            case Quarantined():
                self.quarantines.labels(self._where(event)[0]).inc()
            case Reloaded():
                self.reloads.labels(self._results(event.result)).inc()
            case _:
                pass

    def _where(self, event: OpsEvent) -> tuple[str, str]:
        """The ``chain`` and ``provider`` labels: configured names, else ``other``."""
        profile = event.profile or DEFAULT_PROFILE
        chain = self._gateway.profiles.get(profile, {}).get(event.chain)
        if chain is None:
            return OTHER, OTHER
        provider = event.provider if event.provider in chain.providers else OTHER
        return bus_key(profile, event.chain), provider
