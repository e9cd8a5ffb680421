"""Per-call metrics: one :meth:`RequestMetrics.observe` per finished call.

The gateway calls its request observers (``gateway.events.request_observers``)
with every finished call's :class:`~lasso.callmeta.CallMeta`, on the request's
own task, so this is on the hot path. What it costs there: two dict lookups
that fold the method and the error code (:mod:`lasso.metrics.labels`), one
tuple, one dict lookup of the running totals already resolved for that tuple
(the label values are worked out once per distinct label set, never per call),
then integer adds: the call count, and for each latency histogram a ``bisect``
into the bucket bounds, one bucket count and the sum.

The totals are plain Python numbers rather than prometheus-client's
``Counter``/``Histogram`` children: those take a lock per increment and a
histogram observation costs several times this whole observer (``python -m bench
--only metrics``), and Lasso runs every request on one thread. The exposition
is still prometheus-client's: :meth:`RequestMetrics.collect` hands it counter
and histogram families at scrape time.

The cache key holds folded values only, so it is bounded like the series
themselves: a client sending 10,000 made-up method names adds no entry past the
first ``other``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from lasso.config import DEFAULT_PROFILE
from lasso.config.schema import DEFAULT_LATENCY_BUCKETS_MS
from lasso.gateway import bus_key
from lasso.metrics.labels import NONE, OTHER, code_labels, method_labels

if TYPE_CHECKING:
    from lasso.callmeta import CallMeta


REQUEST_LABELS = (
    "chain",
    "method",
    "strategy",
    "provider",
    "transport",
    "client_transport",
    "result",
    "code",
)
DURATION_LABELS = ("chain", "method", "client_transport")
UPSTREAM_LABELS = ("chain", "provider", "transport", "method")
FAILED_LABELS = ("chain", "provider", "transport", "category")


def chain_key(profile: str, chain: str) -> str:
    """The ``chain`` label: the chain's name, ``profile/chain`` outside the default profile."""
    return bus_key(profile or DEFAULT_PROFILE, chain)


class Histogram:
    """One label set's latency histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last one is +Inf
        self.sum = 0.0


class Series:
    """The running totals one request label set moves: its count and its histograms."""

    __slots__ = ("count", "duration", "upstream")

    def __init__(self, duration: Histogram, upstream: Histogram | None) -> None:
        self.count = 0
        self.duration = duration
        self.upstream = upstream


class RequestMetrics(Collector):
    """Counts and latency histograms of finished calls; a collector for the registry."""

    def __init__(
        self,
        *,
        buckets_ms: Sequence[float] = DEFAULT_LATENCY_BUCKETS_MS,
        extra_methods: Iterable[str] = (),
    ) -> None:
        self.bounds = tuple(sorted({ms / 1000 for ms in buckets_ms}))
        self._methods = method_labels(extra_methods)
        self._codes = code_labels()
        #: (profile, chain, method label, strategy, provider, transport, client transport,
        #: result, code label) -> its totals. Bounded: every part is configured or folded.
        self.cache: dict[tuple[object, ...], Series] = {}
        self.requests: dict[tuple[str, ...], Series] = {}
        self.durations: dict[tuple[str, ...], Histogram] = {}
        self.upstreams: dict[tuple[str, ...], Histogram] = {}
        self.failed: dict[tuple[str, ...], int] = {}

    def observe(self, meta: CallMeta) -> None:
        """One finished call (a request observer; see the module docstring)."""
        outcome = meta.outcome
        plan = meta.plan
        provider = transport = latency_us = None
        if outcome is not None:
            provider, transport = outcome.provider, outcome.transport
            latency_us = outcome.upstream_latency_us
            if outcome.attempts:
                self._count_failures(meta)
        key = (
            meta.profile,
            meta.chain,
            self._methods.get(meta.method, OTHER),
            None if plan is None else plan.strategy,
            provider,
            transport,
            meta.transport,
            meta.result,
            self._codes.get(meta.code, OTHER),
        )
        series = self.cache.get(key)
        if series is None:
            series = self.cache[key] = self._resolve(key)
        series.count += 1
        ended = meta.ended
        if ended is not None:
            seconds = ended - meta.started
            histogram = series.duration
            histogram.counts[bisect_left(self.bounds, seconds)] += 1
            histogram.sum += seconds
        upstream = series.upstream
        if upstream is not None and latency_us is not None:
            seconds = latency_us / 1e6
            upstream.counts[bisect_left(self.bounds, seconds)] += 1
            upstream.sum += seconds

    def _resolve(self, key: tuple[object, ...]) -> Series:
        """The totals for one cache key (once per distinct key)."""
        profile, chain, method, strategy, provider, transport, client, result, code = key
        chain_label = chain_key(str(profile), str(chain))
        strategy_label = NONE if strategy is None else str(getattr(strategy, "value", strategy))
        provider_label = NONE if provider is None else str(provider)
        transport_label = NONE if transport is None else str(transport)
        labels = (
            *(chain_label, str(method), strategy_label, provider_label, transport_label),
            *(str(client), str(result), str(code)),
        )
        series = self.requests.get(labels)
        if series is None:  # two keys may share labels (a provider named "none")
            buckets = len(self.bounds)
            duration_labels = (chain_label, str(method), str(client))
            duration = self.durations.setdefault(duration_labels, Histogram(buckets))
            upstream = None
            if provider is not None:
                upstream_labels = (chain_label, provider_label, transport_label, str(method))
                upstream = self.upstreams.setdefault(upstream_labels, Histogram(buckets))
            series = self.requests[labels] = Series(duration, upstream)
        return series

    def _count_failures(self, meta: CallMeta) -> None:
        assert meta.outcome is not None
        chain = chain_key(meta.profile, meta.chain)
        for attempt in meta.outcome.attempts:
            labels = (chain, attempt.provider, attempt.transport, attempt.category)
            self.failed[labels] = self.failed.get(labels, 0) + 1

    # -- the scrape ----------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "lasso_requests",
            "Finished JSON-RPC calls (each batch item counts), by chain, method (unknown ones:"
            " other), strategy, serving provider and its transport, the client's transport,"
            " result (ok, node_error, error, internal) and JSON-RPC error code.",
            labels=REQUEST_LABELS,
        )
        for labels, series in self.requests.items():
            requests.add_metric(labels, series.count)
        yield requests
        yield self._histograms(
            "lasso_request_duration_seconds",
            "End-to-end call latency inside Lasso (parse to answer), by chain, method and the"
            " client's transport.",
            DURATION_LABELS,
            self.durations,
        )
        yield self._histograms(
            "lasso_upstream_duration_seconds",
            "Latency of the upstream attempt that answered, by chain, provider, transport and"
            " method.",
            UPSTREAM_LABELS,
            self.upstreams,
        )
        failed = CounterMetricFamily(
            "lasso_upstream_failed_attempts",
            "Upstream attempts that failed (then retried elsewhere, or the call failed), by"
            " chain, provider, transport and error category.",
            labels=FAILED_LABELS,
        )
        for labels, count in self.failed.items():
            failed.add_metric(labels, count)
        yield failed

    def _histograms(
        self,
        name: str,
        help_text: str,
        label_names: Sequence[str],
        histograms: dict[tuple[str, ...], Histogram],
    ) -> Metric:
        family = HistogramMetricFamily(name, help_text, labels=label_names)
        bounds = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for labels, histogram in histograms.items():
            running, buckets = 0, []
            for bound, count in zip(bounds, histogram.counts, strict=True):
                running += count
                buckets.append((bound, float(running)))
            family.add_metric(labels, buckets, histogram.sum)
        return family
