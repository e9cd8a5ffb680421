"""``GET /metrics``: Prometheus text exposition through prometheus-client.

One :class:`Metrics` per gateway, made with it (``lasso.web.app.create_app``),
with its own ``CollectorRegistry`` (never the process-global one: a test process
builds many gateways). Three sources feed it:

- :mod:`lasso.metrics.requests`: a request observer on ``gateway.events``,
  called with every finished call (requests by chain, method, strategy, provider,
  transport and result; latency histograms; failed upstream attempts);
- :mod:`lasso.metrics.events`: a listener on ``gateway.events`` (breaker and
  provider transitions, failovers, upstream and inbound rate limits, quarantines,
  reloads);
- :mod:`lasso.metrics.collector`: the components' ``statistics()``, read at scrape
  time (breaker state, heads and lag, subscriptions, backfilled blocks, filters,
  in-flight calls, client WebSockets, config generation, uptime);

plus prometheus-client's process and platform collectors (``process_*``,
``python_info``). Every metric and label is listed in ``docs/metrics.md``; label
values are bounded (:mod:`lasso.metrics.labels`).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from lasso.gateway import Gateway
from lasso.metrics.collector import Gate, GatewayCollector
from lasso.metrics.events import EventMetrics
from lasso.metrics.requests import RequestMetrics
from lasso.subscriptions.hub import SubscriptionHub

__all__ = ["CONTENT_TYPE", "Metrics"]

#: ``text/plain; version=0.0.4; charset=utf-8``: every Prometheus reads it, and every
#: name and label here is a classic one (prometheus-client's "latest", 1.0.0, is for
#: UTF-8 names, which Lasso does not use).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class Metrics:
    """One gateway's metrics: its registry, its observers and the scrape."""

    def __init__(
        self, gateway: Gateway, hub: SubscriptionHub | None = None, gate: Gate | None = None
    ) -> None:
        config = gateway.settings.metrics
        # No ``*_created`` series next to every counter and histogram: they would double
        # the exposition and Lasso's dashboards never read them. (A process-wide switch in
        # prometheus-client; Lasso is its only user in the process.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.requests = RequestMetrics(
            buckets_ms=config.latency_buckets_ms, extra_methods=config.extra_methods
        )
        self.registry.register(self.requests)
        self.events = EventMetrics(self.registry, gateway)
        self.collector = GatewayCollector(gateway, hub, gate)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._gateway = gateway
        gateway.events.request_observers.append(self.requests.observe)
        self._unlisten = gateway.events.listen(self.events.on_event)

    def inbound_limited(self, limit: str, count: int = 1) -> None:
        """Count inbound refusals (``lasso_inbound_limited_total{limit=...}``)."""
        self.events.inbound_limited(limit, count)

    def render(self) -> bytes:
        """The exposition, in Prometheus text format 0.0.4."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Stop observing the gateway (the registry keeps what it counted)."""
        observers = self._gateway.events.request_observers
        if self.requests.observe in observers:
            observers.remove(self.requests.observe)
            self._unlisten()
