"""What ``GET /health`` and ``GET /api/chains`` report, built from statistics().

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
from lasso.config import DEFAULT_PROFILE, mask_url
from lasso.gateway import Gateway
from lasso.upstream.provider import Provider


def health(gateway: Gateway) -> dict[str, Any]:
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
    return report


def _chain(chain: ChainRuntime, now: float) -> dict[str, Any]:
    # Available as routing sees it: a channel neither open nor quarantined, and a
    # WebSocket only while connected (its breaker stays closed while it is down).
    available = chain.available_providers(now)
    if available == len(chain.providers):
        status = "healthy"
    else:
        status = "unavailable" if available == 0 else "degraded"
    return {
        "chain_id": chain.config.chain_id,
        "default_strategy": chain.default_strategy.value,
        "status": status,
        "recovering": available == 0,
        "available_providers": available,
        "providers": [_provider(p, now) for p in chain.providers.values()],
    }


def _provider(provider: Provider, now: float) -> dict[str, Any]:
    config = provider.config
    report: dict[str, Any] = {
        "id": provider.id,
        "url": mask_url(config.url),
        "ws_url": None if config.ws_url is None else mask_url(config.ws_url),
        "priority": config.priority,
        "archival": config.archival,
    }
    for transport, breaker in provider.breakers.items():
        stats = breaker.statistics(now)
        report[transport] = {
            "circuit": breaker.state(now).value,
            "breaker": msgspec.to_builtins(stats),
            "rate_limited": provider.rate_limits[transport].is_limited(now),
        }
    report["http"]["transport"] = msgspec.to_builtins(provider.http.statistics())
    if provider.ws is not None:
        report["ws"]["transport"] = msgspec.to_builtins(provider.ws.statistics())
        report["ws"]["connected"] = provider.ws.connected
    report.setdefault("ws", None)
    for key, supervisor in (
        ("supervisor", provider.supervisor),
        ("ws_supervisor", provider.ws_supervisor),
    ):
        if supervisor is not None:
            report[key] = msgspec.to_builtins(supervisor.statistics())
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
