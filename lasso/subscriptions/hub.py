"""The subscription hub: every shared upstream subscription, and who gets what.

One :class:`Stream` per (chain, pinned provider, canonical key), reference
counted by its client subscriptions. Per chain, two consumer tasks read the
event bus: ``ws:subs:<chain>`` notifications are routed by (provider,
upstream subscription id) to the stream that owns them, and ``ws:conn:<chain>``
disconnects become failovers for the streams that provider served. A full
bus buffer (the ``Overflow`` marker) makes every stream of the chain
resynchronise from its tip. Streams live in the hub's nursery, not in a client
connection's: they outlive their clients by the teardown grace period, within each
chain's :class:`~lasso.core.subs.budget.UpstreamBudget` (``[subscriptions]``
``max_upstream_per_chain``, ``max_idle_upstream_per_chain``,
``max_idle_upstream_per_client``): a stream the budget evicts is torn down at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import trio

from lasso.chain import ChainRuntime
from lasso.config import SubscriptionConfig
from lasso.core.subs import SubscriptionRequest
from lasso.core.subs.budget import BudgetStatistics, Refused, UpstreamBudget
from lasso.errors import LocalCapacity
from lasso.gateway import Gateway, Target, bus_key
from lasso.pubsub import (
    Notification,
    Overflow,
    WsClosed,
    WsDisconnected,
    conn_topic,
    subs_topic,
)
from lasso.subscriptions.events import Live, Lost, Resync
from lasso.subscriptions.fanout import Subscriber
from lasso.subscriptions.serving import Serving
from lasso.subscriptions.stream import Stream

log = logging.getLogger("lasso.subscriptions")

StreamKey = tuple[str, str | None, str]  # (bus key of the chain, pinned provider, request key)


class HubStatistics(msgspec.Struct, frozen=True):
    """Gauges for /metrics: upstream subscriptions per (chain, provider, kind), clients per
    (chain, kind)."""

    upstream: dict[tuple[str, str, str], int]
    clients: dict[tuple[str, str], int]
    failovers: int
    budgets: dict[str, BudgetStatistics] = {}
    #: Blocks fetched to fill gaps, per (chain, kind), since the hub started.
    backfilled: dict[tuple[str, str], int] = {}


class SubscriptionHub:
    def __init__(self, gateway: Gateway, nursery: trio.Nursery) -> None:
        self.gateway = gateway
        self._nursery = nursery
        self._streams: dict[StreamKey, Stream] = {}
        # (chain, provider id, upstream id) -> the stream's own Serving record; see
        # lasso.subscriptions.serving: entered and removed only by _reroute
        self._routes: dict[tuple[str, str, str], Serving] = {}
        self._chains: dict[ChainRuntime, str] = {}
        self._consumers: dict[str, trio.CancelScope] = {}  # bus key -> its consumers' scope
        self._budgets: dict[str, UpstreamBudget[Stream]] = {}
        self._backfilled: dict[tuple[str, str], int] = {}  # (chain, kind) -> blocks

    # -- streams ---------------------------------------------------------------

    async def acquire(
        self,
        target: Target,
        request: SubscriptionRequest,
        subscriber: Subscriber,
        *,
        client: object | None = None,
    ) -> Stream:
        """The stream for this request, established upstream, with ``subscriber`` in it.

        The subscriber joins before the stream can see itself empty, so a slow
        subscribe never lets a new stream tear itself down under its first client.
        ``client`` (the session) is charged for the streams its leaving leaves idle.
        """
        chain = self._chains[target.chain]
        key: StreamKey = (chain, target.provider, request.key)
        stream = self._streams.get(key)
        if stream is not None and not stream.closed:
            await stream.ready.wait()
            if not stream.closed:
                stream.add(subscriber)
                self._budget(chain).busy(stream)
                return stream
        stream = Stream(
            target.chain,
            request,
            self.gateway.settings.subscriptions,
            pinned=target.provider,
            router=self._reroute,
            orphaned=self._orphaned,
            emptied=self._emptied,
            spawn=self._nursery.start_soon,
            backfilled=self._count_backfill,
        )
        try:
            evicted = self._budget(chain).admit(stream)
        except Refused:
            raise LocalCapacity("Subscription capacity unavailable") from None
        self._expire(evicted)
        self._streams[key] = stream
        stream.add(subscriber)
        try:
            await self._nursery.start(self._run_stream, key, stream)
        except BaseException:
            stream.remove(subscriber.sub_id)
            if self._streams.get(key) is stream:
                del self._streams[key]
            raise
        return stream

    async def _run_stream(
        self, key: StreamKey, stream: Stream, *, task_status: trio.TaskStatus[None]
    ) -> None:
        try:
            await stream.run(task_status=task_status)
        except Exception:
            if not stream.started:
                raise  # never started: the subscriber gets the error
            log.exception("subscription stream %s crashed", key)
            for subscriber in list(stream.subscribers.values()):  # never a silent end
                subscriber.end(-32603, "Internal error: subscription lost; subscribe again")
        finally:
            self._budget(key[0]).gone(stream)
            if self._streams.get(key) is stream:
                del self._streams[key]

    def _budget(self, chain: str) -> UpstreamBudget[Stream]:
        budget = self._budgets.get(chain)
        if budget is None:
            policy = self.gateway.settings.subscriptions
            budget = self._budgets[chain] = UpstreamBudget(
                max_live=policy.max_upstream_per_chain,
                max_idle=policy.max_idle_upstream_per_chain,
                max_idle_per_client=policy.max_idle_upstream_per_client,
            )
        return budget

    def retune_budgets(self, policy: SubscriptionConfig) -> None:
        """A reload's new per-chain bounds, read at each budget's next decision (streams
        already live or idle stay; a lowered bound is met as they end or are evicted)."""
        for budget in self._budgets.values():
            budget.max_live = policy.max_upstream_per_chain
            budget.max_idle = policy.max_idle_upstream_per_chain
            budget.max_idle_per_client = policy.max_idle_upstream_per_client

    def _emptied(self, stream: Stream, client: object | None) -> None:
        """``stream``'s last subscriber left: it idles, within the chain's budget."""
        self._expire(self._budget(self._chains[stream.chain]).idle(stream, client))

    def _count_backfill(self, stream: Stream, blocks: int) -> None:
        key = (self._chains.get(stream.chain, stream.chain.name), stream.kind.value)
        self._backfilled[key] = self._backfilled.get(key, 0) + blocks

    def _expire(self, streams: list[Stream]) -> None:
        for stream in streams:
            key: StreamKey = (self._chains[stream.chain], stream.pinned, stream.request.key)
            if self._streams.get(key) is stream:
                del self._streams[key]
            stream.expire()

    def _reroute(self, stream: Stream, old: Serving | None, new: Serving | None) -> None:
        """``stream`` changed its Serving record from ``old`` to ``new``: index the new one."""
        chain = self._chains[stream.chain]
        if old is not None:
            route = (chain, *old.route)
            if self._routes.get(route) is old:  # never another stream's record
                del self._routes[route]
        if new is not None:
            self._routes[(chain, *new.route)] = new

    def _orphaned(self, source: Stream, hashes: tuple[str, ...], fork: int | None) -> None:
        for stream in self._streams.values():
            if stream.chain is source.chain and stream is not source:
                stream.apply_orphans(hashes, fork)

    # -- the bus ---------------------------------------------------------------

    async def run_chain(
        self, chain: ChainRuntime, key: str, *, task_status: trio.TaskStatus[None]
    ) -> None:
        """Route one chain's WebSocket events to its streams."""
        self._chains[chain] = key
        bus = self.gateway.bus
        with (
            bus.subscribe(subs_topic(key), max_buffer=65_536) as notifications,
            bus.subscribe(conn_topic(key), max_buffer=4096) as connection_events,
        ):
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._route_notifications, key, notifications)
                nursery.start_soon(self._watch_connections, chain, connection_events)

    async def _route_notifications(
        self, key: str, events: trio.MemoryReceiveChannel[object]
    ) -> None:
        async for event in events:
            if isinstance(event, Notification):
                serving = self._routes.get((key, event.provider_id, event.upstream_id))
                if serving is not None:
                    serving.deliver(Live(serving, event.payload))
            elif isinstance(event, Overflow):
                for stream in self._streams_of(key):
                    stream.post(Resync(f"{event.dropped} notifications dropped"))

    async def _watch_connections(
        self, chain: ChainRuntime, events: trio.MemoryReceiveChannel[object]
    ) -> None:
        key = self._chains[chain]
        async for event in events:
            if isinstance(event, WsDisconnected | WsClosed):
                reason = getattr(event, "reason", "") or "connection lost"
                for stream in self._streams_of(key):
                    if not _serves_elsewhere(stream, chain, event.provider_id):
                        stream.post(Lost(event.provider_id, reason))

    async def add_chain(self, chain: ChainRuntime, key: str) -> None:
        """Start ``chain``'s consumers (a reload added it), replacing any under ``key``."""
        self.remove_chain(key)
        self._consumers[key] = await self._nursery.start(self._scoped_chain, chain, key)

    def remove_chain(self, key: str) -> None:
        """Stop the consumers under ``key`` (a reload removed or replaced its chain)."""
        scope = self._consumers.pop(key, None)
        if scope is not None:
            scope.cancel(reason=f"chain {key} removed")

    async def _scoped_chain(
        self, chain: ChainRuntime, key: str, *, task_status: trio.TaskStatus[trio.CancelScope]
    ) -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.run_chain, chain, key)
                task_status.started(scope)

    def _streams_of(self, key: str) -> list[Stream]:
        return [s for (chain, _, _), s in self._streams.items() if chain == key]

    # -- observability ---------------------------------------------------------

    def statistics(self) -> HubStatistics:
        upstream: dict[tuple[str, str, str], int] = {}
        clients: dict[tuple[str, str], int] = {}
        failovers = 0
        for (chain, _, _), stream in self._streams.items():
            kind = stream.kind.value
            failovers += stream.failovers
            if stream.serving is not None:
                label = (chain, stream.serving.provider_id, kind)
                upstream[label] = upstream.get(label, 0) + 1
            clients[(chain, kind)] = clients.get((chain, kind), 0) + len(stream.subscribers)
        budgets = {chain: budget.statistics() for chain, budget in self._budgets.items()}
        return HubStatistics(upstream, clients, failovers, budgets, dict(self._backfilled))


def _serves_elsewhere(stream: Stream, chain: ChainRuntime, provider_id: str) -> bool:
    """``stream`` is served by a provider of this id in the chain over a live connection
    that is not the one that ended: a reload replaced the provider (same id, new object)
    and the old one's connection closed at the end of its drain. Not this stream's loss."""
    serving = stream.serving
    return (
        serving is not None
        and serving.provider_id == provider_id
        and serving.alive()
        and serving.lost(chain, trio.current_time()) is None
    )


@asynccontextmanager
async def open_subscription_hub(gateway: Gateway) -> AsyncIterator[SubscriptionHub]:
    """A hub whose chain consumers and streams run until the block exits."""
    async with trio.open_nursery() as nursery:
        hub = SubscriptionHub(gateway, nursery)
        for slug, chain in gateway.chains():
            await hub.add_chain(chain, bus_key(slug, chain.name))
        try:
            yield hub
        finally:
            nursery.cancel_scope.cancel(reason="subscription hub closing")
