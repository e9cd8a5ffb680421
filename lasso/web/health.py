"""What ``GET /health``, ``GET /health/ready`` and ``GET /api/chains`` report, built
from statistics().

``/health`` is liveness plus the full state (HTTP 200 while the process answers);
``/health/ready`` (or ``/health?ready``) is readiness for a load balancer: the
channel states gathered here, the verdict from :func:`lasso.core.readiness.decide`.

Provider URLs are always masked: credentials, key-like path segments and
query values never leave the process.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import trio

import lasso
from lasso.chain import ChainRuntime
from lasso.config import DEFAULT_PROFILE
from lasso.core.chainstate import ProviderHeadStatistics
from lasso.core.channel import Channel, ChannelStatistics
from lasso.core.readiness import ChainState, ChannelState, ProviderState, Readiness, decide
from lasso.gateway import Gateway
from lasso.reload import ReloadState
from lasso.upstream.provider import WS, Provider, ProviderStatistics


def health(gateway: Gateway, reloads: ReloadState | None = None) -> dict[str, Any]:
    now = trio.current_time()
    profiles = {
        slug: {name: _chain(chain, now) for name, chain in chains.items()}
        for slug, chains in gateway.profiles.items()
    }
    chains = profiles.pop(DEFAULT_PROFILE, {})
    serving = all(
        c["available_providers"] > 0 for p in [chains, *profiles.values()] for c in p.values()
    )
    report: dict[str, Any] = {
        "status": "healthy" if serving else "degraded",
        "version": lasso.__version__,
        "uptime_seconds": round(time.monotonic() - lasso.STARTED_MONOTONIC, 3),
        "chains": chains,
    }
    if profiles:
        report["profiles"] = {slug: {"chains": c} for slug, c in profiles.items()}
    if reloads is not None:
        report["config"] = config_section(reloads)
    return report


def readiness(gateway: Gateway) -> tuple[int, dict[str, Any]]:
    """``GET /health/ready``: 200 when every chain of every profile has a provider able
    to serve now, else 503 naming each chain that cannot and why."""
    now = trio.current_time()
    verdict = decide(
        [
            ChainState(slug, name, tuple(_provider_state(p, now) for p in chain.providers.values()))
            for slug, chains in gateway.profiles.items()
            for name, chain in chains.items()
        ],
        now,
    )
    return (200 if verdict.ready else 503), _readiness_body(verdict)


def _readiness_body(verdict: Readiness) -> dict[str, Any]:
    if verdict.ready:
        return {"status": "ready", "chains": len(verdict.chains)}
    return {
        "status": "not_ready",
        "chains": len(verdict.chains),
        "unavailable": [
            {
                "profile": c.profile,
                "chain": c.chain,
                "reason": "no provider able to serve" if c.unavailable else "no providers",
                "providers": {pid: list(reasons) for pid, reasons in c.unavailable.items()},
            }
            for c in verdict.not_ready
        ],
    }


def _provider_state(provider: Provider, now: float) -> ProviderState:
    routed = provider.transports  # WS only while connected and used for requests
    ws = provider.ws
    return ProviderState(
        provider.id,
        tuple(
            _channel_state(
                c,
                now,
                connected=c.transport != WS or (ws is not None and ws.connected),
                routed=c.transport in routed or c.transport != WS,
                ws_state=None if c.transport != WS or ws is None else ws.state.value,
            )
            for c in provider.channels.values()
        ),
    )


def _channel_state(
    channel: Channel, now: float, *, connected: bool, routed: bool, ws_state: str | None
) -> ChannelState:
    breaker = channel.breaker.statistics(now)
    return ChannelState(
        transport=channel.transport,
        circuit=breaker.state,
        quarantined=channel.quarantined(now),
        recovery_deadline=breaker.recovery_deadline,
        connected=connected,
        routed=routed,
        ws_state=ws_state,
    )


def config_section(reloads: ReloadState) -> dict[str, Any]:
    """The config's generation, its file, the last reload and what waits for a restart."""
    stats = reloads.statistics()
    last = stats.last_reload
    return {
        "generation": stats.generation,
        "source": stats.source,
        "last_reload": None
        if last is None
        else {
            "outcome": last.outcome,
            "at": last.at,
            "problems": [{"path": p.path, "message": p.message} for p in last.problems],
            "summary": last.summary,
        },
        "needs_restart": list(stats.needs_restart),
    }


def _chain(chain: ChainRuntime, now: float) -> dict[str, Any]:
    stats = chain.statistics(now)
    state = chain.state.statistics(now)
    heads = {p.provider_id: p for p in state.providers}
    # Available as routing sees it: a channel neither open nor quarantined, and a
    # WebSocket only while connected (its breaker stays closed while it is down).
    available = stats.available_providers
    if available == len(stats.providers):
        status = "healthy"
    else:
        status = "unavailable" if available == 0 else "degraded"
    return {
        "chain_id": stats.chain_id,
        "default_strategy": stats.default_strategy,
        "status": status,
        "recovering": available == 0,
        "available_providers": available,
        "consensus_head": state.consensus_head,
        "served_head": chain.floor.value,  # the highest head answered or delivered: the floor
        "block_time_ms": round(state.block_time_ms, 1),
        "block_time_measured": state.measured_block_time,
        "providers": [_provider(p, heads.get(p.id)) for p in stats.providers],
        # requests that lost two providers mid-request, refused for a while (lasso.core.poison)
        "poisoned_requests": msgspec.to_builtins(chain.poison.statistics(now)),
    }


def _provider(stats: ProviderStatistics, head: ProviderHeadStatistics | None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "id": stats.id,
        "url": stats.url,  # masked by the provider: no secret leaves the process
        "ws_url": stats.ws_url,
        "priority": stats.priority,
        "archival": stats.archival,
        # head tracking (never seen yet: all null): lag is height - consensus_head
        "height": None if head is None else head.height,
        "lag": None if head is None else head.lag,
        "forked": None if head is None else head.forked,
        "live": None if head is None else head.live,
        "capabilities": msgspec.to_builtins(stats.capabilities),
        "http": _channel(stats.http, stats.http_transport),
        "ws": None,
        "supervisor": msgspec.to_builtins(stats.supervisor),
    }
    if stats.ws is not None:
        report["ws"] = _channel(stats.ws, stats.ws_transport)
        if stats.ws_transport is not None:
            report["ws"]["connected"] = stats.ws_connected
    if stats.ws_supervisor is not None:
        report["ws_supervisor"] = msgspec.to_builtins(stats.ws_supervisor)
    return report


def _channel(stats: ChannelStatistics, transport: object | None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "circuit": stats.circuit,
        "breaker": msgspec.to_builtins(stats.breaker),
        "rate_limited": stats.rate_limited,
        "tier": stats.tier,
        "quarantined": stats.quarantined,
    }
    if transport is not None:
        report["transport"] = msgspec.to_builtins(transport)
    return report


def chain_list(gateway: Gateway) -> dict[str, Any]:
    chains = [
        {
            "profile": slug,
            "name": name,
            "chain_id": chain.config.chain_id,
            "aliases": list(chain.config.aliases),
            "block_time_ms": chain.config.block_time_ms,
            "providers": len(chain.providers),
        }
        for slug, chains in gateway.profiles.items()
        for name, chain in chains.items()
    ]
    return {"chains": chains}


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


def chain_metrics(gateway: Gateway, chain: ChainRuntime, profile: str) -> dict[str, Any]:
    """``GET /api/metrics/{chain}``: passive latency statistics per provider and method."""
    now = trio.current_time()
    book = chain.latency.statistics()
    by_provider: dict[str, list[dict[str, Any]]] = {p: [] for p in chain.providers}
    for entry in book.entries:
        stats = entry.stats
        by_provider.setdefault(entry.provider_id, []).append(
            {
                "method": entry.method,
                "transport": entry.transport,
                "samples": stats.samples,
                "failures": stats.failures,
                "success_rate": stats.success_rate,
                "ewma_ms": _ms(stats.ewma_us),
                "p50_ms": _ms(stats.p50_us),
                "p90_ms": _ms(stats.p90_us),
                "p99_ms": _ms(stats.p99_us),
                "last_seen_s_ago": None
                if stats.last_seen is None
                else round(now - stats.last_seen, 3),
            }
        )
    return {
        "chain": chain.name,
        "profile": profile,
        "chain_id": chain.config.chain_id,
        "providers": [{"id": p, "methods": methods} for p, methods in by_provider.items()],
        "dropped_records": book.dropped_records,
    }
