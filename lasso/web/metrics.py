"""``GET /metrics``: Prometheus text exposition, rendered from statistics().

A minimal set for now (the operations work completes it): subscription gauges,
breaker states and uptime.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

import lasso
from lasso.core.breaker import CircuitState
from lasso.core.filter_table import FilterTableStatistics
from lasso.gateway import Gateway, bus_key
from lasso.subscriptions.hub import SubscriptionHub

_CIRCUIT = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(gateway: Gateway, hub: SubscriptionHub | None) -> str:
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))

    family("lasso_uptime_seconds", "gauge", "Seconds since the process started.")
    lines.append(f"lasso_uptime_seconds {time.monotonic() - lasso.STARTED_MONOTONIC:.3f}")
    family(
        "lasso_upstream_subscriptions",
        "gauge",
        "Upstream subscriptions held, per chain, provider and kind.",
    )
    family_clients = []
    if hub is not None:
        stats = hub.statistics()
        for (chain, provider, kind), count in sorted(stats.upstream.items()):
            labels = _labels(chain=chain, provider=provider, kind=kind)
            lines.append(f"lasso_upstream_subscriptions{labels} {count}")
        family_clients = sorted(stats.clients.items())
    family("lasso_client_subscriptions", "gauge", "Client subscriptions, per chain and kind.")
    for (chain, kind), count in family_clients:
        lines.append(f"lasso_client_subscriptions{_labels(chain=chain, kind=kind)} {count}")
    family(
        "lasso_circuit_state",
        "gauge",
        "Circuit breaker per provider and transport: 0 closed, 1 half-open, 2 open.",
    )
    now = trio.current_time()
    for slug, runtime in gateway.chains():
        key = bus_key(slug, runtime.name)
        for upstream in runtime.statistics(now).providers:
            for channel in (upstream.http, upstream.ws):
                if channel is None:
                    continue
                labels = _labels(chain=key, provider=upstream.id, transport=channel.transport)
                lines.append(f"lasso_circuit_state{labels} {_CIRCUIT[channel.breaker.state]}")
    family(
        "lasso_poisoned_requests_total",
        "counter",
        "Requests that lost the connection to two providers mid-request (lasso.core.poison):"
        " stopped and quarantined, refused while quarantined, or exempted (answered lately).",
    )
    for slug, runtime in gateway.chains():
        poison = runtime.poison.statistics(now)
        key = bus_key(slug, runtime.name)
        for outcome in ("stopped", "refused", "exempted"):
            labels = _labels(chain=key, outcome=outcome)
            lines.append(f"lasso_poisoned_requests_total{labels} {getattr(poison, outcome)}")
    if gateway.filters is not None:
        _filters(gateway.filters.statistics(), family, lines)
    return "\n".join(lines) + "\n"


def _filters(
    stats: FilterTableStatistics, family: Callable[[str, str, str], None], lines: list[str]
) -> None:
    family("lasso_filters", "gauge", "Filters the gateway serves (eth_newFilter and kin).")
    lines.append(f"lasso_filters {stats.filters}")
    family("lasso_filter_clients", "gauge", "Remote addresses holding filters.")
    lines.append(f"lasso_filter_clients {stats.clients}")
    family("lasso_filters_removed_total", "counter", "Filters removed by the gateway, by reason.")
    lines.append(f'lasso_filters_removed_total{{reason="expired"}} {stats.expired}')
    lines.append(f'lasso_filters_removed_total{{reason="overflowed"}} {stats.overflowed}')
    family("lasso_filters_refused_total", "counter", "New filters refused at a [filters] bound.")
    lines.append(f"lasso_filters_refused_total {stats.refused}")
