"""One shared upstream subscription and the stream behind it.

Theory of operation. A :class:`Stream` serves one (chain, canonical key): one
upstream ``eth_subscribe`` on one provider, shared by every client that asked
for the same thing. Its task is the stream's only consumer, so everything
that changes the stream happens in order:

    live event        the feed (lasso.subscriptions.feed) offers it to the pure
                      stream (HeadStream / LogStream), which decides what to deliver,
                      what to fetch (gaps, reorgs) and what was orphaned; fetches run
                      before the next event is looked at
    provider lost     disconnect, close, a stale head, an open breaker or the
                      provider removed from the chain:
                      re-subscribe on the next provider whose head is at or above
                      the last delivered head, then the feed backfills over HTTP from the
                      stream's tip to its head (at most max_backfill blocks; past
                      that the clients get an error notification, never a silent
                      gap). A provider behind the delivered head is never used
                      while the stream has a head: the clients' head never goes back
    health tick       at least every second (lasso.subscriptions.health): no
                      upstream subscription, an open breaker or a stale head (nothing
                      *delivered* for the stale window) is a lost provider; a failed
                      read is caught up. If every reachable provider is behind the
                      delivered head (the chain was reset: all nodes restarted empty)
                      and the head is stale, the clients get an error notification and
                      their subscriptions end (they re-subscribe); the stream starts
                      afresh at the provider's head
    last client left  after teardown_grace the upstream subscription is dropped, or at
                      once when the chain's idle budget (lasso.core.subs.budget) says so

Which provider serves the stream is :mod:`lasso.subscriptions.targets`' choice (a
stream pinned to one provider, ``/ws/rpc/provider/{id}/...``, never moves to another;
it re-subscribes on the same one when it comes back). The upstream ``eth_subscribe``
runs in the hub's nursery (:mod:`lasso.subscriptions.subscribing`), so one this
stream gave up on that the upstream confirms later is unsubscribed, never leaked.
The stream owns its subscribers, its clock (:class:`~lasso.subscriptions.health.Liveness`)
and the one record of who serves it: ``serving``, a
:class:`~lasso.subscriptions.serving.Serving` (the provider and WebSocket channel
objects, the connection and the upstream id). The hub's routing of upstream
notifications is an index of these records, changed only through the ``router``
callback when ``serving`` changes; a health tick asks the record whether it is
lost (its provider left the chain, its breaker opened). After an await the
stream never looks a provider up by id: it acts on the objects its record holds,
so a provider removed from the chain is a failover, never a ``KeyError``. Its
:class:`Feed` delivers.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable

import trio

from lasso.chain import ChainRuntime
from lasso.config import SubscriptionConfig
from lasso.core.jsonrpc import encode_json
from lasso.core.subs import SubscriptionKind, SubscriptionRequest, upstream_params
from lasso.errors import LassoError, NoProviderAvailable
from lasso.subscriptions import health
from lasso.subscriptions.events import Event, Live, Lost, Orphaned, Resync
from lasso.subscriptions.fanout import Subscriber
from lasso.subscriptions.feed import GAP_ERROR, Feed
from lasso.subscriptions.health import Liveness
from lasso.subscriptions.reads import ChainReads
from lasso.subscriptions.serving import Serving
from lasso.subscriptions.subscribing import Spawn
from lasso.subscriptions.targets import subscribe_first
from lasso.upstream.heads import report_heads

log = logging.getLogger("lasso.subscriptions")


class Stream:
    """A shared upstream subscription for one (chain, key); see the module docstring."""

    def __init__(
        self,
        chain: ChainRuntime,
        request: SubscriptionRequest,
        policy: SubscriptionConfig,
        *,
        pinned: str | None,
        router: Callable[[Stream, Serving | None, Serving | None], None],
        orphaned: Callable[[Stream, tuple[str, ...], int | None], None],
        emptied: Callable[[Stream, object | None], None] = lambda stream, client: None,
        spawn: Spawn | None = None,
        backfilled: Callable[[Stream, int], None] = lambda stream, blocks: None,
    ) -> None:
        self.chain = chain
        self.request = request
        self.policy = policy
        self.pinned = pinned
        self.subscribers: dict[str, Subscriber] = {}
        self.serving: Serving | None = None
        self.ready = trio.Event()
        self.closed = False
        self._route = router
        self._emptied = emptied
        self._spawn = spawn
        self._loop_scope = trio.CancelScope()
        self._inbox, self._events = trio.open_memory_channel[Event](65_536)
        self._health = Liveness(policy, chain.config.block_time_ms, trio.current_time())
        self.feed = Feed(
            request,
            policy,
            ChainReads(chain, pinned),
            self.subscribers,
            self._health,
            orphaned=lambda hashes, fork_point: orphaned(self, hashes, fork_point),
            heads_seen=lambda provider_id, blocks: report_heads(chain, provider_id, blocks),
            backfilled=lambda blocks: backfilled(self, blocks),
        )
        self._behind = False  # a catch-up could not finish; retried on every tick
        self._deferred: deque[Live] = deque()  # live events held while behind
        self.started = False
        self.failovers = 0

    @property
    def kind(self) -> SubscriptionKind:
        return self.request.kind

    # -- what the hub and sessions call ---------------------------------------

    def post(self, event: Event) -> None:
        try:
            self._inbox.send_nowait(event)
        except trio.WouldBlock:
            log.warning("stream %s: inbox full; will resynchronise", self.request.key)
            self._behind = True

    def add(self, subscriber: Subscriber) -> None:
        self.subscribers[subscriber.sub_id] = subscriber
        self._health.joined()

    def remove(self, sub_id: str, client: object | None = None) -> bool:
        """``client`` (the session leaving, if known) is charged for the idle stream."""
        removed = self.subscribers.pop(sub_id, None) is not None
        if not self.subscribers and self._health.emptied(trio.current_time()):
            self._emptied(self, client)
        return removed

    def expire(self) -> None:
        """Tear down now (the idle budget says so): unsubscribe upstream and end."""
        self.closed = True  # nobody joins it any more
        self._loop_scope.cancel()

    async def prepare_resume(self, subscriber: Subscriber, resume_from: int) -> None:
        """Compute a resuming subscriber's replay (it is added, held, beforehand)."""
        await self.feed.prepare_resume(subscriber, resume_from, self._serving_id())

    def apply_orphans(self, hashes: tuple[str, ...], fork_point: int | None) -> None:
        """The chain's heads stream saw a reorg: this stream's own consumer un-delivers
        its orphaned logs and fetches the new branch's."""
        if self.feed.logs is not None:
            self.post(Orphaned(hashes, fork_point))

    # -- the task -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._subscribe(exclude=set())
            self.started = True
            self.ready.set()
            task_status.started()
            with self._loop_scope:
                await self._consume()
        finally:
            self.closed = True
            self.ready.set()
            self._route(self, self.serving, None)
            if self.serving is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self.serving.unsubscribe()

    async def _consume(self) -> None:
        # The health check runs every tick however busy the inbox is: a stream flooded
        # with events it cannot deliver (heads of a reset chain) is still found stale.
        # Only the wait is bounded by the tick: handling an event is never cut short.
        check_at = trio.current_time() + health.TICK_S
        while not self._health.finished(trio.current_time()):
            event: Event | None = None
            with trio.move_on_at(check_at):
                event = await self._events.receive()
            if event is None:
                await self._check_health()
                check_at = trio.current_time() + health.TICK_S
            elif isinstance(event, Live) and (self._behind or self._deferred):
                self._deferred.append(event)  # nothing live overtakes a catch-up
            else:
                await self._handle(event)

    async def _handle(self, event: Event) -> None:
        """One event; a read that fails (no provider could answer) is retried later."""
        try:
            await self._dispatch_event(event)
        except (LassoError, ValueError, TypeError, KeyError, AttributeError) as exc:
            message = exc.message if isinstance(exc, LassoError) else f"bad upstream data: {exc}"
            log.warning("stream %s: %s; will catch up", self.request.key, message)
            self._behind = True

    async def _dispatch_event(self, event: Event) -> None:
        serving = self.serving
        if isinstance(event, Live):
            if serving is None or event.serving is not serving:
                return  # from a subscription this stream no longer uses
            await self.feed.on_live(event.payload, serving.provider_id)
        elif isinstance(event, Lost):
            if serving is None or event.provider_id == serving.provider_id:
                await self._failover(f"{event.provider_id or 'stream'}: {event.reason}")
        elif isinstance(event, Orphaned):
            if self.feed.logs is not None:
                self.feed.orphan(event.hashes, event.fork_point)
                await self._catch_up()
        else:
            await self._catch_up()

    async def _check_health(self) -> None:
        """One tick; see :mod:`lasso.subscriptions.health`."""
        if self.serving is not None and (self._behind or self._deferred):
            await self._recover()
            return
        heads = self.kind is SubscriptionKind.NEW_HEADS
        now = trio.current_time()
        lost = health.loss(self.chain, self.serving, self._health, heads=heads, now=now)
        if lost is not None:
            await self._handle(lost)
        else:
            with contextlib.suppress(LassoError):  # tried again next time
                await self._keep_logs_complete()

    async def _recover(self) -> None:
        """Catch up after a failed read, then replay the live events held meanwhile."""
        self._behind = False
        await self._handle(Resync("catching up after a failed read"))
        while self._deferred and not self._behind:
            await self._handle(self._deferred.popleft())

    async def _keep_logs_complete(self) -> None:
        if self.feed.logs is None or self.serving is None:
            return
        if self._health.logs_progress_due(trio.current_time()):
            await self.feed.keep_logs_complete(self.serving.provider_id)

    async def _catch_up(self) -> None:
        if self.serving is not None:
            await self.feed.catch_up(self.serving.provider_id)

    # -- failover ---------------------------------------------------------------

    async def _failover(self, reason: str) -> None:
        old = self.serving
        log.warning("stream %s: failing over (%s)", self.request.key, reason)
        self.failovers += 1
        self._route(self, old, None)
        self.serving = None
        if old is not None:
            await old.unsubscribe()
        exclude = set() if self.pinned or old is None else {old.provider_id}
        behind = self._behind_providers()
        try:
            await self._subscribe(exclude, behind=behind)
        except NoProviderAvailable as exc:
            log.warning("stream %s: %s; retrying", self.request.key, exc.message)
            if behind and self._health.stale(trio.current_time()):
                await self._restart(behind)
            return  # the next health check tries again
        await self._catch_up()

    def _behind_providers(self) -> dict[str, int] | None:
        """Filled by :meth:`_subscribe` with each reachable provider found behind the
        delivered head (None: no head delivered yet, any provider will do)."""
        if self.kind is not SubscriptionKind.NEW_HEADS or self.feed.heads.tip is None:
            return None
        return {}

    async def _restart(self, behind: dict[str, int]) -> None:
        """Every reachable provider is behind the delivered head and nothing was delivered
        for the stale window: the chain went back (its nodes were reset). The clients'
        head must never go backwards, so their subscriptions end with an error (they
        subscribe again); the stream starts afresh at a provider's head for new clients."""
        tip = self.feed.heads.tip
        seen = ", ".join(f"{p} at {n}" for p, n in sorted(behind.items()))
        message = (
            f"subscription ended: every provider is behind the last delivered head {tip} "
            f"({seen}); the chain was reset or rolled back; subscribe again"
        )
        log.warning("stream %s: %s", self.request.key, message)
        for sub_id, subscriber in list(self.subscribers.items()):
            subscriber.end(GAP_ERROR, message)
            self.remove(sub_id)
        self.feed.heads.reset()
        self._health.delivered(trio.current_time())
        with contextlib.suppress(NoProviderAvailable):  # else the next health check
            await self._subscribe(set())

    async def _subscribe(self, exclude: set[str], *, behind: dict[str, int] | None = None) -> None:
        """Subscribe upstream on the first usable provider (see
        :mod:`lasso.subscriptions.targets`), then anchor the stream there."""
        provider, upstream_id = await subscribe_first(
            self.chain,
            encode_json(upstream_params(self.request)),
            exclude,
            pinned=self.pinned,
            spawn=self._spawn,
            tip=self.feed.heads.tip,
            behind=behind,
        )
        self.serving = Serving(provider, upstream_id, self.post)
        self._health.delivered(trio.current_time())  # a fresh window on a usable provider
        self._route(self, None, self.serving)
        await self.feed.anchor(provider.id)

    def _serving_id(self) -> str | None:
        return None if self.serving is None else self.serving.provider_id
