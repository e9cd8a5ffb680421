"""A chain at run time: its providers, their shared latency book, its router.

``views(method, now, providers, with_latency=...)`` is the snapshot the pure
router decides on: one :class:`~lasso.core.router.ChannelView` per provider and
transport, with latency looked up only for strategies that read it.
``plan(method, now, strategy=..., provider=..., transport=...)`` asks the router
for an ordered plan on that snapshot; a requested transport's channels go first.
Both are synchronous and cheap: they run once per request.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import msgspec

from lasso.config import ChainConfig, ProviderConfig, RoutingConfig
from lasso.core.channel import Channel
from lasso.core.latency import LatencyBook, LatencyKey
from lasso.core.recovery import RecoveryPolicy
from lasso.core.router import ChannelView, RoutePlan, RouterState, Strategy, plan
from lasso.upstream.http import PostTransport
from lasso.upstream.provider import Provider, ProviderStatistics
from lasso.upstream.recovery import RecoveryWatch
from lasso.upstream.ws import WsConnection

_ADAPTIVE_MIN_SAMPLES = 20
_LATENCY_STRATEGIES = frozenset({Strategy.FASTEST, Strategy.LATENCY_WEIGHTED})

#: Builds the HTTP transport for (chain name, provider); tests inject fakes here.
TransportFactory = Callable[[str, ProviderConfig], PostTransport]
#: Builds the WebSocket connection for (chain name, provider with a ws_url).
WsFactory = Callable[[str, ProviderConfig], WsConnection]


class ChainStatistics(msgspec.Struct, frozen=True):
    """One chain as health and metrics render it."""

    name: str
    chain_id: int
    default_strategy: str
    available_providers: int
    providers: tuple[ProviderStatistics, ...]


class ChainRuntime:
    """Everything the gateway keeps per (profile, chain)."""

    def __init__(
        self,
        name: str,
        config: ChainConfig,
        *,
        routing: RoutingConfig,
        rng: random.Random,
        transports: TransportFactory | None = None,
        websockets: WsFactory | None = None,
        route_ws: bool = True,
        recovery: RecoveryPolicy | None = None,
        label: str | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.routing = routing
        self.rng = rng
        self.default_strategy = Strategy(config.default_strategy)
        self.recovery = RecoveryWatch(self.available, recovery or RecoveryPolicy(), rng)
        self.latency = LatencyBook()
        self.providers = {
            p.id: Provider(
                p,
                order=i,
                breaker=config.circuit_breaker,
                rng=rng,
                chain_id=config.chain_id,
                http=None if transports is None else transports(name, p),
                ws=None if websockets is None or p.ws_url is None else websockets(name, p),
                route_ws=route_ws,
                recovery=self.recovery,
                latency=self.latency,
                label=f"{label or name}/{p.id}",
            )
            for i, p in enumerate(config.providers)
        }
        self.router_state = RouterState()
        self.chain_id_hex = b'"0x%x"' % config.chain_id

    def views(
        self,
        method: str,
        now: float,
        providers: Iterable[Provider],
        *,
        with_latency: bool = True,
    ) -> list[ChannelView]:
        """The routing snapshot, one view per routable channel, built by the channels.
        Latency is looked up only for strategies that read it."""
        wanted = method if with_latency else None
        return [c.view(now, method=wanted) for p in providers for c in p.routable()]

    def resolve(self, provider_id: str, transport: str) -> tuple[Provider, Channel] | None:
        """The provider and channel a plan names, if the chain still has them."""
        provider = self.providers.get(provider_id)
        if provider is None or transport not in provider.channels:
            return None
        return provider, provider.channel(transport)

    def statistics(self, now: float) -> ChainStatistics:
        providers = tuple(p.statistics(now) for p in self.providers.values())
        return ChainStatistics(
            name=self.name,
            chain_id=self.config.chain_id,
            default_strategy=self.default_strategy.value,
            available_providers=sum(p.available for p in providers),
            providers=providers,
        )

    def available(self, now: float) -> bool:
        """Some channel of some provider can take a request (not open, not quarantined)."""
        return any(p.available(now) for p in self.providers.values())

    def available_providers(self, now: float) -> int:
        return sum(p.available(now) for p in self.providers.values())

    def hedge_delay_s(self, method: str, plan: RoutePlan) -> float | None:
        """How long to wait before racing a second provider; None means no hedging.

        Fixed (``after_ms``), or adaptive: the first planned provider's p95 for this
        method once it has enough samples, never below ``after_ms`` when both are set.
        """
        hedge = self.config.hedge
        if not hedge.enabled or not plan.replay_safe or len(plan.channels) < 2:
            return None
        if hedge.methods and method not in hedge.methods:
            return None
        fixed_s = None if hedge.after_ms is None else hedge.after_ms / 1000
        if hedge.adaptive:
            first = plan.channels[0]
            stats = self.latency.get(LatencyKey(first.provider_id, method, first.transport))
            p95_us = (
                None
                if stats is None or stats.samples < _ADAPTIVE_MIN_SAMPLES
                else (stats.percentile(0.95))
            )
            if p95_us is not None:
                return max(p95_us / 1_000_000, fixed_s or 0.0)
        return fixed_s

    def plan(
        self,
        method: str,
        now: float,
        *,
        strategy: Strategy | None,
        provider: str | None,
        transport: str | None = None,
    ) -> RoutePlan:
        """Ask the router; ``transport`` (http or ws) puts that transport's channels first.

        The plan names channels by (provider id, transport); :func:`lasso.dispatch.dispatch`
        resolves them to this chain's objects once, before its first await.
        """
        if provider is None:
            providers: Iterable[Provider] = self.providers.values()
        else:  # a provider no longer in the chain has nothing to plan (no KeyError)
            providers = [self.providers[provider]] if provider in self.providers else []
        strategy = strategy or self.default_strategy
        with_latency = strategy in _LATENCY_STRATEGIES
        decided = plan(
            self.views(method, now, providers, with_latency=with_latency),
            method=method,
            strategy=strategy,
            state=self.router_state,
            rng=self.rng,
            max_attempts=self.routing.max_attempts,
            deadline_overrides=self.routing.method_deadlines_ms,
            pinned=provider is not None,
            exploration_share=self.routing.exploration_share,
            lw_beta=self.routing.lw_beta,
        )
        if not decided.channels and decided.excluded_open:
            decided = self._recovering(decided, now)
        if transport is None or all(c.transport == transport for c in decided.channels):
            return decided
        preferred = [c for c in decided.channels if c.transport == transport]
        others = [c for c in decided.channels if c.transport != transport]
        return msgspec.structs.replace(decided, channels=(*preferred, *others))

    def _recovering(self, decided: RoutePlan, now: float) -> RoutePlan:
        """Nothing to try. If the whole chain is down, probe now and say retry soon."""
        if not self.recovery.active(now):
            return decided  # pinned to a provider that is down while others serve
        self.recovery.alarm(now)
        policy = self.recovery.policy
        excluded = tuple(
            msgspec.structs.replace(c, retry_after_s=policy.retry_after_s(c.retry_after_s or None))
            for c in decided.excluded_open
        )
        return msgspec.structs.replace(decided, excluded_open=excluded)
