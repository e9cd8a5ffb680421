"""Scrape-time metrics: read from the components' ``statistics()`` when ``/metrics`` is asked.

Breaker states, heads, subscriptions and the like are state, not events: each
component already keeps it (and owns it), so :class:`GatewayCollector` asks for it
at scrape time and the hot path pays nothing. Counters here (breaker opens,
poisoned requests, backfilled blocks) are the components' own running totals.

Label values are configured names (chains as ``profile/chain`` outside the
default profile, provider ids) and the components' own enums.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import lasso
from lasso.chain import ChainRuntime
from lasso.core.breaker import CircuitState
from lasso.core.filter_table import FilterTableStatistics
from lasso.gateway import Gateway, bus_key
from lasso.metrics.cache import cache_families
from lasso.metrics.labels import method_labels
from lasso.subscriptions.hub import SubscriptionHub


class GateCounts(Protocol):
    """The refusal counters of ``lasso.web.gate.GateStatistics`` this module reads (the web
    ring sits outside the metrics one, so the type is named by shape)."""

    @property
    def denied_auth(self) -> int: ...
    @property
    def refused_rate(self) -> int: ...
    @property
    def refused_inflight(self) -> int: ...
    @property
    def refused_ws(self) -> int: ...


class Gate(Protocol):
    def statistics(self) -> GateCounts: ...


__all__ = ["CIRCUIT_VALUES", "GatewayCollector"]

#: ``lasso_circuit_state``'s values.
CIRCUIT_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}

_CHANNEL = ["chain", "provider", "transport"]


class GatewayCollector(Collector):
    """One gateway's (and its hub's) state, as metric families, at each scrape."""

    def __init__(
        self, gateway: Gateway, hub: SubscriptionHub | None = None, gate: Gate | None = None
    ) -> None:
        self.gateway = gateway
        self.hub = hub
        #: The front end's inbound gate (lasso.web.gate): its refusals, at scrape time.
        self.gate = gate

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names are not registered: the families depend on the config

    def collect(self) -> Iterator[Metric]:
        gateway = self.gateway
        yield GaugeMetricFamily(
            "lasso_uptime_seconds",
            "Seconds since the process started.",
            value=time.monotonic() - lasso.STARTED_MONOTONIC,
        )
        info = GaugeMetricFamily(
            "lasso_build_info", "Lasso's version (always 1).", labels=["version"]
        )
        info.add_metric([lasso.__version__], 1)
        yield info
        yield GaugeMetricFamily(
            "lasso_config_generation",
            "The configuration generation in force (1 at start, +1 per applied reload).",
            value=gateway.snapshot.generation,
        )
        activity = gateway.activity.statistics()
        yield GaugeMetricFamily(
            "lasso_inflight_requests",
            "JSON-RPC calls being answered now (each batch item counts; HTTP and WebSocket).",
            value=activity.calls,
        )
        yield GaugeMetricFamily(
            "lasso_client_websockets",
            "Client WebSocket connections open now.",
            value=activity.websockets,
        )
        tasks = live_trio_tasks()
        if tasks is not None:
            yield GaugeMetricFamily(
                "lasso_trio_tasks",
                "Trio tasks alive in this process now (a leak check: compare two quiet moments).",
                value=tasks,
            )
        chains = [(bus_key(slug, runtime.name), runtime) for slug, runtime in gateway.chains()]
        now = trio.current_time()
        yield from _channels(chains, now)
        yield from _heads(chains, now)
        yield _poison(chains, now)
        yield from _subscriptions(self.hub)
        if gateway.filters is not None:
            yield from _filters(gateway.filters.statistics())
        if self.gate is not None:
            yield _inbound(self.gate.statistics())
        methods = method_labels(gateway.settings.metrics.extra_methods)
        yield from cache_families(gateway.cache.statistics(), methods)  # lasso.cache


def live_trio_tasks() -> int | None:
    """The live tasks of the running trio loop, walked down from its root task (None
    outside trio). The scraping task counts itself."""
    try:
        root = trio.lowlevel.current_root_task()
    except RuntimeError:
        return None
    if root is None:
        return None
    count, stack = 0, [root]
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


def _inbound(stats: GateCounts) -> Metric:
    refused = CounterMetricFamily(
        "lasso_inbound_refused",
        "Client requests, WebSocket frames and handshakes refused at the gate, by reason:"
        " auth (401), rate (token bucket), inflight (per-client in-flight cap), ws (per-client"
        " WebSocket cap).",
        labels=["reason"],
    )
    refused.add_metric(["auth"], stats.denied_auth)
    refused.add_metric(["rate"], stats.refused_rate)
    refused.add_metric(["inflight"], stats.refused_inflight)
    refused.add_metric(["ws"], stats.refused_ws)
    return refused


def _channels(chains: list[tuple[str, ChainRuntime]], now: float) -> Iterator[Metric]:
    circuit = GaugeMetricFamily(
        "lasso_circuit_state",
        "Circuit breaker per provider channel: 0 closed, 1 half-open, 2 open.",
        labels=_CHANNEL,
    )
    opens = CounterMetricFamily(
        "lasso_breaker_opens",
        "Times each provider channel's breaker opened (its own running total).",
        labels=_CHANNEL,
    )
    limited = GaugeMetricFamily(
        "lasso_provider_rate_limited",
        "1 while a provider channel is backing off after an upstream rate limit, else 0.",
        labels=_CHANNEL,
    )
    available = GaugeMetricFamily(
        "lasso_provider_available",
        "1 when some channel of the provider can take a request, else 0.",
        labels=["chain", "provider"],
    )
    connected = GaugeMetricFamily(
        "lasso_upstream_ws_connected",
        "1 while the provider's upstream WebSocket is connected (providers with a ws_url).",
        labels=["chain", "provider"],
    )
    for key, runtime in chains:
        for provider in runtime.providers.values():
            for transport, channel in provider.channels.items():
                stats = channel.statistics(now)
                labels = [key, provider.id, transport]
                circuit.add_metric(labels, CIRCUIT_VALUES[stats.breaker.state])
                opens.add_metric(labels, stats.breaker.total_opens)
                limited.add_metric(labels, int(stats.rate_limited))
            available.add_metric([key, provider.id], int(provider.available(now)))
            if provider.ws is not None:
                connected.add_metric([key, provider.id], int(provider.ws.connected))
    yield from (circuit, opens, limited, available, connected)


def _heads(chains: list[tuple[str, ChainRuntime]], now: float) -> Iterator[Metric]:
    head = GaugeMetricFamily(
        "lasso_consensus_head",
        "The chain's consensus head block number (absent until providers report heads).",
        labels=["chain"],
    )
    height = GaugeMetricFamily(
        "lasso_provider_head",
        "The last head block number each provider reported.",
        labels=["chain", "provider"],
    )
    lag = GaugeMetricFamily(
        "lasso_provider_lag_blocks",
        "Blocks each provider is behind the consensus head (negative: ahead).",
        labels=["chain", "provider"],
    )
    forked = GaugeMetricFamily(
        "lasso_provider_forked",
        "1 when a provider's recent block hashes disagree with the consensus, else 0.",
        labels=["chain", "provider"],
    )
    for key, runtime in chains:
        stats = runtime.state.statistics(now)
        if stats.consensus_head is not None:
            head.add_metric([key], stats.consensus_head)
        for provider in stats.providers:
            labels = [key, provider.provider_id]
            height.add_metric(labels, provider.height)
            if provider.lag is not None:
                lag.add_metric(labels, -provider.lag)
            forked.add_metric(labels, int(provider.forked))
    yield from (head, height, lag, forked)


def _poison(chains: list[tuple[str, ChainRuntime]], now: float) -> Metric:
    family = CounterMetricFamily(
        "lasso_poisoned_requests",
        "Requests that lost the connection to two providers mid-request (lasso.core.poison):"
        " stopped and quarantined, refused while quarantined, or exempted (answered lately).",
        labels=["chain", "outcome"],
    )
    for key, runtime in chains:
        poison = runtime.poison.statistics(now)
        for outcome in ("stopped", "refused", "exempted"):
            family.add_metric([key, outcome], getattr(poison, outcome))
    return family


def _subscriptions(hub: SubscriptionHub | None) -> Iterator[Metric]:
    upstream = GaugeMetricFamily(
        "lasso_upstream_subscriptions",
        "Upstream subscriptions held, per chain, provider and kind.",
        labels=["chain", "provider", "kind"],
    )
    clients = GaugeMetricFamily(
        "lasso_client_subscriptions",
        "Client subscriptions, per chain and kind.",
        labels=["chain", "kind"],
    )
    backfilled = CounterMetricFamily(
        "lasso_backfilled_blocks",
        "Blocks fetched to fill a subscription's gap (after a failover, a reorg or a missed"
        " head), per chain and kind.",
        labels=["chain", "kind"],
    )
    if hub is not None:
        stats = hub.statistics()
        for (chain, provider, kind), count in sorted(stats.upstream.items()):
            upstream.add_metric([chain, provider, kind], count)
        for (chain, kind), count in sorted(stats.clients.items()):
            clients.add_metric([chain, kind], count)
        for (chain, kind), count in sorted(stats.backfilled.items()):
            backfilled.add_metric([chain, kind], count)
    yield from (upstream, clients, backfilled)


def _filters(stats: FilterTableStatistics) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "lasso_filters", "Filters the gateway serves (eth_newFilter and kin).", value=stats.filters
    )
    yield GaugeMetricFamily(
        "lasso_filter_clients", "Remote addresses holding filters.", value=stats.clients
    )
    removed = CounterMetricFamily(
        "lasso_filters_removed", "Filters removed by the gateway, by reason.", labels=["reason"]
    )
    removed.add_metric(["expired"], stats.expired)
    removed.add_metric(["overflowed"], stats.overflowed)
    yield removed
    yield CounterMetricFamily(
        "lasso_filters_refused", "New filters refused at a [filters] bound.", value=stats.refused
    )
