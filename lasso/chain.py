"""A chain at run time: its providers, their shared latency book, its router.

``views(method, now, providers, with_latency=...)`` is the snapshot the pure
router decides on: one :class:`~lasso.core.router.ChannelView` per provider and
transport, with latency looked up only for strategies that read it.
``plan(method, now, strategy=..., provider=..., transport=...)`` asks the router
for an ordered plan on that snapshot; a requested transport's channels go first.
Both are synchronous and cheap: they run once per request.

The chain is also the service its providers run under: :meth:`start` opens one
cancel scope per provider (:meth:`open_provider`), so a reload can add one
(:meth:`add_provider`) or drain and stop one (:meth:`remove_provider`) without
touching the others; :meth:`retune` and :meth:`reconfigure` change an unchanged
provider's or the chain's live keys in place, keeping every channel's state.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence

import msgspec
import trio

from lasso.config import ChainConfig, ProviderConfig, RoutingConfig
from lasso.core.block_target import block_target
from lasso.core.chainstate import ChainState
from lasso.core.channel import Channel
from lasso.core.consistency import HeadFloor
from lasso.core.eligibility import Eligibility, block_first, wanted_block
from lasso.core.latency import LatencyBook, LatencyKey
from lasso.core.poison import PoisonGuard
from lasso.core.recovery import RecoveryPolicy
from lasso.core.router import ChannelView, RoutePlan, RouterState, Strategy, plan
from lasso.opsevents import OpsEvents
from lasso.opspublish import watch_channel, watch_websocket
from lasso.upstream.heads import track_heads
from lasso.upstream.http import PostTransport
from lasso.upstream.provider import Provider, ProviderStatistics, breaker_policy
from lasso.upstream.recovery import RecoveryWatch
from lasso.upstream.ws import WsConnection

log = logging.getLogger("lasso.chain")

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
        profile: str = "",
        events: OpsEvents | None = None,
    ) -> None:
        self.name = name
        self.profile = profile
        #: Where this chain's operator events go (breaker, provider up/down, failover...).
        self.events = events if events is not None else OpsEvents()
        self.config = config
        self.routing = routing
        self.rng = rng
        self.default_strategy = Strategy(config.default_strategy)
        self.recovery = RecoveryWatch(self.available, recovery or RecoveryPolicy(), rng)
        self.latency = LatencyBook()
        #: Every provider's head reports: consensus head, lag, forks, block time.
        self.state = ChainState(config.block_time_ms)
        #: The highest head answered or delivered to clients (lasso.headfloor).
        self.floor = HeadFloor()
        #: Requests that crash nodes, refused for a while (lasso.core.poison, lasso.dispatch).
        self.poison = PoisonGuard()
        self._head_moved = trio.Event()
        #: Called with every head report (number, hash, parent hash): the response
        #: cache's reorg ledger (``lasso.cache``, set by the gateway).
        self.head_listeners: list[Callable[[int, str, str | None], None]] = []
        self._reconfigured = trio.Event()
        self._transports = transports
        self._websockets = websockets
        self._route_ws = route_ws
        self._label = label or name
        self.providers = {p.id: self._build(p, i) for i, p in enumerate(config.providers)}
        self._scopes: dict[Provider, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self.router_state = RouterState()
        #: Which providers a request may go to (cached chain facts, compiled method rules).
        self.eligibility = Eligibility()
        self.chain_id_hex = b'"0x%x"' % config.chain_id

    def _build(self, p: ProviderConfig, order: int) -> Provider:
        provider = Provider(
            p,
            order=order,
            breaker=self.config.circuit_breaker,
            rng=self.rng,
            chain_id=self.config.chain_id,
            http=None if self._transports is None else self._transports(self.name, p),
            ws=None
            if self._websockets is None or p.ws_url is None
            else self._websockets(self.name, p),
            route_ws=self._route_ws,
            recovery=self.recovery,
            latency=self.latency,
            label=f"{self._label}/{p.id}",
        )
        for channel in provider.channels.values():  # operator events: lasso.opspublish
            watch_channel(self, channel)
        if provider.ws is not None:
            provider.ws.on_link = watch_websocket(self, p.id)
        return provider

    # -- the providers as scoped services ----------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        """Run every provider's services in ``nursery``, each under its own cancel scope."""
        self._nursery = nursery
        for provider in self.providers.values():
            await self.open_provider(provider)

    async def open_provider(self, provider: Provider) -> None:
        """Start ``provider``'s services under a cancel scope of its own."""
        if self._nursery is None:
            raise RuntimeError(f"chain {self._label} is not started")
        self._scopes[provider] = await self._nursery.start(self._run_provider, provider)

    async def _run_provider(
        self, provider: Provider, *, task_status: trio.TaskStatus[trio.CancelScope]
    ) -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                await provider.start(nursery)
                nursery.start_soon(track_heads, self, provider, self.rng)
                task_status.started(scope)
                await trio.sleep_forever()

    async def add_provider(self, config: ProviderConfig) -> Provider:
        """A new provider: started first, then in routing (at its place in the config)."""
        order = next(
            (i for i, p in enumerate(self.config.providers) if p.id == config.id),
            len(self.providers),
        )
        provider = self._build(config, order)
        await self.open_provider(provider)
        self.providers[config.id] = provider
        log.info("%s: provider %s started", self._label, config.id)
        return provider

    def remove_provider(self, provider_id: str, drain_s: float) -> Provider | None:
        """Take the provider out of routing now; stop its services after ``drain_s``.

        Requests in flight hold its objects (dispatch resolved them before awaiting)
        and finish on it within the drain; subscription streams it served see it gone
        at their next health check and fail over with backfill.
        """
        provider = self.providers.pop(provider_id, None)
        if provider is None:
            return None
        self.state.forget(provider_id)
        scope = self._scopes.pop(provider, None)
        if scope is not None and self._nursery is not None:
            self._nursery.start_soon(self._drain, provider, scope, drain_s)
        log.info("%s: provider %s removed (draining %.1f s)", self._label, provider_id, drain_s)
        return provider

    async def _drain(self, provider: Provider, scope: trio.CancelScope, drain_s: float) -> None:
        await trio.sleep(drain_s)
        scope.cancel(reason=f"provider {provider.id} removed")
        log.info("%s: provider %s stopped after its drain", self._label, provider.id)

    def stop(self, drain_s: float) -> None:
        """The chain is removed: every provider drains, then stops."""
        for provider_id in list(self.providers):
            self.remove_provider(provider_id, drain_s)

    def retune(self, config: ProviderConfig) -> None:
        """An unchanged provider's live keys (priority, archival), its state kept."""
        provider = self.providers.get(config.id)
        if provider is None:
            return
        provider.config = config
        provider.capabilities.retune(config)
        for channel in provider.channels.values():
            channel.priority = config.priority

    def reconfigure(self, config: ChainConfig, routing: RoutingConfig) -> None:
        """The chain's live keys: routing, hedging, strategy, order and breaker
        thresholds (applied to every breaker, keeping its state)."""
        self.config = config
        self.routing = routing
        self.default_strategy = Strategy(config.default_strategy)
        self.state.set_configured_block_time_ms(config.block_time_ms)
        policy = breaker_policy(config.circuit_breaker)
        orders = {p.id: i for i, p in enumerate(config.providers)}
        for provider in self.providers.values():
            provider.order = orders.get(provider.id, provider.order)
            for channel in provider.channels.values():
                channel.order = provider.order
                channel.breaker.set_policy(policy)
        woken, self._reconfigured = self._reconfigured, trio.Event()
        woken.set()

    async def reconfigured(self) -> None:
        """Return at the next :meth:`reconfigure` (a head poller re-reads its interval)."""
        await self._reconfigured.wait()

    # -- chain state ------------------------------------------------------------------

    def observe_head(
        self,
        provider_id: str,
        number: int,
        block_hash: str,
        parent_hash: str | None,
        now: float,
    ) -> None:
        """One head report for a provider (a newHeads notification or a head poll).

        It goes into :attr:`state` (the one record of every provider's height) and
        wakes every :meth:`head_changed` waiter.
        """
        self.state.observe(provider_id, number, block_hash, parent_hash, now)
        for listener in self.head_listeners:
            listener(number, block_hash, parent_hash)
        moved, self._head_moved = self._head_moved, trio.Event()
        moved.set()

    def head_lost(self, provider_id: str) -> None:
        """``provider_id``'s connection was lost: its height is unknown until it reports
        again (a restarted node starts from genesis; its old height would say it has
        blocks it no longer has)."""
        self.state.forget(provider_id)

    async def head_changed(self) -> None:
        """Return at the next head report of any provider (wait in a deadline scope)."""
        await self._head_moved.wait()

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
        params: bytes,
    ) -> RoutePlan:
        """Ask the router; ``transport`` (http or ws) puts that transport's channels first.

        Unless a provider is pinned, the router plans only on the providers the
        request's block target (read from ``params``) and their capabilities allow
        (:mod:`lasso.core.eligibility`), and ones known to have a named block go first.

        The plan names channels by (provider id, transport); :func:`lasso.dispatch.dispatch`
        resolves them to this chain's objects once, before its first await.
        """
        if provider is None:
            providers: Iterable[Provider] = self.providers.values()
        else:  # a provider no longer in the chain has nothing to plan (no KeyError)
            providers = [self.providers[provider]] if provider in self.providers else []
        strategy = strategy or self.default_strategy
        with_latency = strategy in _LATENCY_STRATEGIES
        views: Sequence[ChannelView] = self.views(method, now, providers, with_latency=with_latency)
        block = facts = None
        if provider is None:
            target = block_target(method, params)
            views, facts = self.eligibility.narrow(
                views,
                method=method,
                target=target,
                now=now,
                state=self.state,
                providers=self.providers,
                config=self.config,
            )
            block = wanted_block(target)
        decided = plan(
            views,
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
        if block is not None and facts is not None and facts.heights:
            ordered = block_first(decided.channels, block, facts.heights)
            if ordered is not decided.channels:
                decided = msgspec.structs.replace(decided, channels=ordered)
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
