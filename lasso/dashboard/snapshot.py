"""One dashboard snapshot: the JSON the page renders, built from statistics().

The provider rows come from what ``/health`` reports (:func:`lasso.web.health.health`:
breaker state per channel, height, lag, fork state) and the latency percentiles from
what ``/api/metrics/<chain>`` reports (:func:`lasso.web.health.chain_metrics`: the
chain's :class:`lasso.core.latency.LatencyBook`, p50/p99 per provider, method and
transport over its recent window). Recent calls and failovers come from the
dashboard's :class:`~lasso.dashboard.recorder.Recorder`, operator events from
``gateway.events.recent``, subscription counts from the hub's statistics, the reload
history from :attr:`lasso.reload.ReloadState.history`.

No secret leaves: providers are named by id only (the masked URLs ``/health`` carries
are dropped here too), a rejected reload shows the paths of its problems, not their
messages, a failed attempt its category, not its error text, and an inbound-limit
event not the client's key (it may be an API key).

Sizes are bounded whatever the traffic: at most ``MAX_METHODS`` methods per provider
(the most sampled), ``SHOW_CALLS`` calls and failovers per chain, ``SHOW_EVENTS``
events.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec
import trio

import lasso
from lasso.config import DEFAULT_PROFILE
from lasso.gateway import Gateway, bus_key
from lasso.web.health import chain_metrics, health

if TYPE_CHECKING:
    from lasso.dashboard.recorder import Recorder, Row
    from lasso.opsevents import OpsEvent
    from lasso.reload import ReloadState
    from lasso.subscriptions.hub import HubStatistics, SubscriptionHub

__all__ = ["MAX_METHODS", "SHOW_CALLS", "SHOW_EVENTS", "build_snapshot"]

MAX_METHODS = 12
SHOW_CALLS = 20
SHOW_EVENTS = 40
_EVENT_COMMON = frozenset({"kind", "at", "wall", "profile", "chain", "provider"})
#: Event fields never shown: an inbound client's key may be its API key.
_EVENT_HIDDEN = frozenset({"client"})


def build_snapshot(
    gateway: Gateway,
    hub: SubscriptionHub | None,
    reloads: ReloadState | None,
    recorder: Recorder,
    streams: dict[str, int],
) -> dict[str, Any]:
    """Everything the page shows, now."""
    now, wall = trio.current_time(), time.time()
    report = health(gateway, reloads)
    by_profile = {DEFAULT_PROFILE: report["chains"]}
    by_profile.update({slug: p["chains"] for slug, p in report.get("profiles", {}).items()})
    subs = hub.statistics() if hub is not None else None
    chains = [
        _chain(gateway, slug, name, stats, subs, recorder, now, wall)
        for slug, reported in by_profile.items()
        for name, stats in reported.items()
    ]
    return {
        "version": lasso.__version__,
        "status": report["status"],
        "uptime_s": report["uptime_seconds"],
        "generated_at": wall,
        "chains": chains,
        "subscription_failovers": None if subs is None else subs.failovers,
        "events": [_event(e) for e in reversed(gateway.events.recent)][:SHOW_EVENTS],
        "config": None if reloads is None else _config(reloads),
        "streams": streams,
        "calls_observed": recorder.observed,
    }


def _chain(
    gateway: Gateway,
    slug: str,
    name: str,
    stats: dict[str, Any],
    subs: HubStatistics | None,
    recorder: Recorder,
    now: float,
    wall: float,
) -> dict[str, Any]:
    key = bus_key(slug, name)
    runtime = gateway.profiles[slug][name]
    methods = {p["id"]: p["methods"] for p in chain_metrics(gateway, runtime, slug)["providers"]}
    return {
        "key": key,
        "profile": slug,
        "chain": name,
        "chain_id": stats["chain_id"],
        "status": stats["status"],
        "strategy": stats["default_strategy"],
        "available_providers": stats["available_providers"],
        "consensus_head": stats["consensus_head"],
        "served_head": stats["served_head"],
        "block_time_ms": stats["block_time_ms"],
        "providers": [_provider(p, methods.get(p["id"], [])) for p in stats["providers"]],
        "subscriptions": _subscriptions(subs, key),
        "calls": [_row(r, now, wall) for r in recorder.calls(slug, name)[:SHOW_CALLS]],
        "failovers": [_row(r, now, wall) for r in recorder.failovers(slug, name)[:SHOW_CALLS]],
    }


def _provider(report: dict[str, Any], methods: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = sorted(methods, key=lambda m: (-m["samples"], m["method"], m["transport"]))
    return {
        "id": report["id"],
        "priority": report["priority"],
        "height": report["height"],
        "lag": report["lag"],
        "forked": report["forked"],
        "live": report["live"],
        "http": _channel(report["http"]),
        "ws": None if report["ws"] is None else _channel(report["ws"]),
        "methods": [
            {
                "method": m["method"],
                "transport": m["transport"],
                "samples": m["samples"],
                "failures": m["failures"],
                "p50_ms": m["p50_ms"],
                "p99_ms": m["p99_ms"],
            }
            for m in ranked[:MAX_METHODS]
        ],
        "methods_hidden": max(0, len(ranked) - MAX_METHODS),
    }


def _channel(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "circuit": report["circuit"],
        "quarantined": report["quarantined"],
        "rate_limited": report["rate_limited"],
        "connected": report.get("connected"),  # WebSocket only
    }


def _subscriptions(subs: HubStatistics | None, key: str) -> dict[str, Any]:
    if subs is None:
        return {"clients": {}, "upstream": []}
    clients = {kind: n for (chain, kind), n in sorted(subs.clients.items()) if chain == key}
    upstream = [
        {"provider": provider, "kind": kind, "count": n}
        for (chain, provider, kind), n in sorted(subs.upstream.items())
        if chain == key
    ]
    return {"clients": clients, "upstream": upstream}


def _row(row: Row, now: float, wall: float) -> dict[str, Any]:
    return {
        "wall": round(wall - (now - row.ended), 3),
        "method": row.method,
        "strategy": row.strategy,
        "provider": row.provider,
        "transport": row.transport,
        "client_transport": row.client_transport,
        "result": row.result,
        "code": row.code,
        "latency_ms": round(row.latency_us / 1000, 3),
        "failed": [{"provider": p, "transport": t, "category": c} for p, t, c in row.failed],
    }


def _event(event: OpsEvent) -> dict[str, Any]:
    fields = msgspec.to_builtins(event)
    return {
        "kind": fields["kind"],
        "wall": event.wall,
        "profile": event.profile,
        "chain": event.chain,
        "provider": event.provider,
        "detail": {k: v for k, v in fields.items() if k not in _EVENT_COMMON | _EVENT_HIDDEN},
    }


def _config(reloads: ReloadState) -> dict[str, Any]:
    return {
        "generation": reloads.generation,
        "needs_restart": list(reloads.needs_restart),
        "history": [
            {
                "generation": r.generation,
                "outcome": r.outcome,
                "at": r.at,
                "summary": r.summary,
                "problems": [p.path for p in r.problems],
            }
            for r in reversed(reloads.history)
        ],
    }
