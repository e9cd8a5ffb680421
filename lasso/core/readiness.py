"""Readiness: can every configured chain be served now? Pure: time is an argument.

Theory of operation. ``GET /health`` is liveness: the process answers. A load
balancer needs more: whether a request sent now can reach an upstream. The
shell gathers, per profile and chain, each provider's channel states (a
:class:`ChannelState` per transport) and :func:`decide` answers ready or not,
naming every chain that cannot serve and why.

A provider is able to serve when one of its channels can take a request now:

    http   its breaker is not open (closed, or half-open: a trial is allowed)
           and its service is not quarantined (restarting too often);
    ws     the same, and the WebSocket is connected and used for requests. A
           WebSocket's breaker stays closed while it is down, so a socket stuck
           reconnecting must never count: ``connected`` decides.

A rate-limited channel still counts: routing demotes it, it does not exclude
it. A chain is ready when at least one of its providers is able to serve; the
gateway is ready when every chain of every profile is.
"""

from __future__ import annotations

import msgspec

from lasso.core.breaker import CircuitState

__all__ = [
    "ChainReadiness",
    "ChainState",
    "ChannelState",
    "ProviderState",
    "Readiness",
    "decide",
]


class ChannelState(msgspec.Struct, frozen=True, kw_only=True):
    """One provider channel as the shell saw it at ``now``."""

    transport: str  # "http" or "ws"
    circuit: CircuitState
    quarantined: bool = False
    recovery_deadline: float | None = None  # when an open breaker lets a probe through
    #: WebSocket only: a live link, and whether routing sends requests over it.
    connected: bool = True
    routed: bool = True
    ws_state: str | None = None  # the WebSocket's life-cycle state, for the reason


class ProviderState(msgspec.Struct, frozen=True):
    id: str
    channels: tuple[ChannelState, ...]


class ChainState(msgspec.Struct, frozen=True):
    profile: str
    chain: str
    providers: tuple[ProviderState, ...]


class ChainReadiness(msgspec.Struct, frozen=True):
    """One chain's verdict: the providers able to serve, and why each other cannot."""

    profile: str
    chain: str
    ready: bool
    available: tuple[str, ...]
    #: provider id -> one reason per channel, for each provider not able to serve
    unavailable: dict[str, tuple[str, ...]]


class Readiness(msgspec.Struct, frozen=True):
    ready: bool
    chains: tuple[ChainReadiness, ...]

    @property
    def not_ready(self) -> tuple[ChainReadiness, ...]:
        return tuple(c for c in self.chains if not c.ready)


def channel_problem(channel: ChannelState, now: float) -> str | None:
    """Why ``channel`` cannot take a request now, or None when it can."""
    name = channel.transport
    if channel.transport == "ws" and not channel.connected:
        state = channel.ws_state or "down"
        return f"{name}: not connected ({state})"
    if channel.transport == "ws" and not channel.routed:
        return f"{name}: connected but not used for requests (websocket.route_unary = false)"
    if channel.circuit is CircuitState.OPEN:
        if channel.recovery_deadline is None:
            return f"{name}: breaker open"
        wait_s = max(channel.recovery_deadline - now, 0.0)
        return f"{name}: breaker open (probe in {wait_s:.1f} s)"
    if channel.quarantined:
        return f"{name}: quarantined (restarting too often)"
    return None


def _chain(state: ChainState, now: float) -> ChainReadiness:
    available: list[str] = []
    unavailable: dict[str, tuple[str, ...]] = {}
    for provider in state.providers:
        problems = [channel_problem(c, now) for c in provider.channels]
        if any(p is None for p in problems) and provider.channels:
            available.append(provider.id)
        else:
            reasons = tuple(p for p in problems if p is not None)
            unavailable[provider.id] = reasons or ("no channel configured",)
    return ChainReadiness(
        profile=state.profile,
        chain=state.chain,
        ready=bool(available),
        available=tuple(available),
        unavailable=unavailable,
    )


def decide(chains: tuple[ChainState, ...] | list[ChainState], now: float) -> Readiness:
    """Ready when every chain has a provider able to serve at ``now``."""
    verdicts = tuple(_chain(c, now) for c in chains)
    return Readiness(ready=all(v.ready for v in verdicts), chains=verdicts)
