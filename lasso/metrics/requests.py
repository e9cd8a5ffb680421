"""Per-call metrics: one :meth:`RequestMetrics.observe` per finished call.

The gateway calls its request observers (``gateway.events.request_observers``)
with every finished call's :class:`~lasso.callmeta.CallMeta`, on the request's
own task, so this is on the hot path. What it costs there: two dict lookups
that fold the method and the error code (:mod:`lasso.metrics.labels`), one
tuple, one dict lookup of the pre-resolved label children for that tuple
(``.labels(...)`` runs once per distinct label set, never per call), a counter
increment and one or two histogram observations. The cache key holds folded
values only, so it is bounded like the series themselves: a client sending
10,000 made-up method names adds no entry past the first ``other``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

from lasso.config import DEFAULT_PROFILE
from lasso.gateway import bus_key
from lasso.metrics.labels import NONE, OTHER, code_labels, method_labels

if TYPE_CHECKING:
    from prometheus_client.metrics import Counter as CounterChild
    from prometheus_client.metrics import Histogram as HistogramChild

    from lasso.callmeta import CallMeta

#: Latency buckets in milliseconds, for RPC: a cached answer to a 30 s trace.
DEFAULT_BUCKETS_MS: tuple[float, ...] = (
    1,
    2.5,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
)

_Children = tuple["CounterChild", "HistogramChild", "HistogramChild | None"]


def chain_key(profile: str, chain: str) -> str:
    """The ``chain`` label: the chain's name, ``profile/chain`` outside the default profile."""
    return bus_key(profile or DEFAULT_PROFILE, chain)


class RequestMetrics:
    """Counters and histograms of finished calls, on ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        buckets_ms: Sequence[float] = DEFAULT_BUCKETS_MS,
        extra_methods: Iterable[str] = (),
    ) -> None:
        buckets = tuple(ms / 1000 for ms in buckets_ms)
        self.requests = Counter(
            "lasso_requests",
            "Finished JSON-RPC calls (each batch item counts), by chain, method (unknown ones:"
            " other), strategy, serving provider and its transport, the client's transport,"
            " result (ok, node_error, error, internal) and JSON-RPC error code.",
            (
                "chain",
                "method",
                "strategy",
                "provider",
                "transport",
                "client_transport",
                "result",
                "code",
            ),
            registry=registry,
        )
        self.duration = Histogram(
            "lasso_request_duration_seconds",
            "End-to-end call latency inside Lasso (parse to answer), by chain, method and the"
            " client's transport.",
            ("chain", "method", "client_transport"),
            buckets=buckets,
            registry=registry,
        )
        self.upstream = Histogram(
            "lasso_upstream_duration_seconds",
            "Latency of the upstream attempt that answered, by chain, provider, transport and"
            " method.",
            ("chain", "provider", "transport", "method"),
            buckets=buckets,
            registry=registry,
        )
        self.failed_attempts = Counter(
            "lasso_upstream_failed_attempts",
            "Upstream attempts that failed (then retried elsewhere, or the call failed), by"
            " chain, provider, transport and error category.",
            ("chain", "provider", "transport", "category"),
            registry=registry,
        )
        self._methods = method_labels(extra_methods)
        self._codes = code_labels()
        self._children: dict[tuple[object, ...], _Children] = {}
        self._failed: dict[tuple[str, str, str, str, str], CounterChild] = {}

    def observe(self, meta: CallMeta) -> None:
        """One finished call (a request observer; see the module docstring)."""
        method = self._methods.get(meta.method, OTHER)
        outcome = meta.outcome
        plan = meta.plan
        provider = transport = None
        latency_us = None
        if outcome is not None:
            provider, transport, latency_us = (
                outcome.provider,
                outcome.transport,
                outcome.upstream_latency_us,
            )
            if outcome.attempts:
                self._count_failures(meta)
        key = (
            meta.profile,
            meta.chain,
            method,
            None if plan is None else plan.strategy,
            provider,
            transport,
            meta.transport,
            meta.result,
            self._codes.get(meta.code, OTHER),
        )
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._resolve(key)
        count, duration, upstream = children
        count.inc()
        ended = meta.ended
        if ended is not None:
            duration.observe(ended - meta.started)
        if upstream is not None and latency_us is not None:
            upstream.observe(latency_us / 1e6)

    def _resolve(self, key: tuple[object, ...]) -> _Children:
        """The label children for one label set (once per distinct set)."""
        profile, chain, method, strategy, provider, transport, client, result, code = key
        chain_label = chain_key(str(profile), str(chain))
        strategy_label = NONE if strategy is None else str(getattr(strategy, "value", strategy))
        provider_label = NONE if provider is None else str(provider)
        transport_label = NONE if transport is None else str(transport)
        count = self.requests.labels(
            chain_label,
            str(method),
            strategy_label,
            provider_label,
            transport_label,
            str(client),
            str(result),
            str(code),
        )
        duration = self.duration.labels(chain_label, str(method), str(client))
        upstream = None
        if provider is not None:
            upstream = self.upstream.labels(
                chain_label, provider_label, transport_label, str(method)
            )
        return count, duration, upstream

    def _count_failures(self, meta: CallMeta) -> None:
        assert meta.outcome is not None
        for attempt in meta.outcome.attempts:
            key = (meta.profile, meta.chain, attempt.provider, attempt.transport, attempt.category)
            child = self._failed.get(key)
            if child is None:
                chain = chain_key(meta.profile, meta.chain)
                child = self._failed[key] = self.failed_attempts.labels(
                    chain, attempt.provider, attempt.transport, attempt.category
                )
            child.inc()
