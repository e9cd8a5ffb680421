"""One shared upstream subscription and the stream behind it.

Theory of operation. A :class:`Stream` serves one (chain, canonical key): one
upstream ``eth_subscribe`` on one provider, shared by every client that asked
for the same thing. Its task is the stream's only consumer, so everything
that changes the stream happens in order:

    live event        the pure stream (HeadStream / LogStream) decides what to
                      deliver, what to fetch (gaps, reorgs) and what was orphaned;
                      fetches run here, before the next event is looked at
    provider lost     disconnect, close, a stale head or an open breaker:
                      re-subscribe on the next provider whose head is at or above
                      the last delivered head, then backfill over HTTP from the
                      stream's tip to its head (at most max_backfill blocks; past
                      that the clients get an error notification, never a silent
                      gap). A provider behind the delivered head is never used
                      while the stream has a head: the clients' head never goes back
    stale head        nothing *delivered* for stale_after_blocks block times, whatever
                      else arrives (heads the stream cannot place, duplicates): fail
                      over. If every reachable provider is behind the delivered head
                      (the chain was reset: all nodes restarted empty), the clients get
                      an error notification and their subscriptions end (they
                      re-subscribe); the stream starts afresh at the provider's head
    last client left  after teardown_grace the upstream subscription is dropped, or at
                      once when the chain's idle budget (lasso.core.subs.budget) says so
    upstream subscribe runs in the hub's nursery, so an eth_subscribe this stream gave
                      up on (timed out, or its client left) that the upstream confirms
                      later is unsubscribed then, never leaked

Streams pinned to one provider (``/ws/rpc/provider/{id}/...``) never move to
another provider; they re-subscribe on the same one when it comes back.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import trio

from lasso.chain import ChainRuntime
from lasso.config import SubscriptionConfig
from lasso.core.breaker import CircuitState
from lasso.core.jsonrpc import encode_json
from lasso.core.subs import (
    Delivery,
    HeadDecision,
    HeadStream,
    HeadVerdict,
    LogStream,
    ResumePlan,
    ResumeRejected,
    StreamState,
    SubscriptionKind,
    SubscriptionRequest,
    TooFar,
    plan_resume,
    upstream_params,
)
from lasso.errors import InvalidParams, LassoError, NoProviderAvailable, UpstreamProtocolError
from lasso.subscriptions.events import Event, Live, Lost, Orphaned, Resync, Serving
from lasso.subscriptions.fanout import Subscriber, fan_out
from lasso.subscriptions.reads import ChainReads
from lasso.upstream.provider import WS, Provider
from lasso.upstream.ws import WsConnection

log = logging.getLogger("lasso.subscriptions")

_decode = msgspec.json.decode
SUBSCRIBE_TIMEOUT_S = 10.0
LATE_CONFIRM_S = 120.0  # how long an abandoned eth_subscribe still waits for its answer
GAP_ERROR = -32000
_TICK_S = 1.0
_LOGS_PROGRESS_S = 30.0


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
        spawn: Callable[..., object] | None = None,
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
        self._orphaned = orphaned
        self._emptied = emptied
        self._spawn = spawn
        self._loop_scope = trio.CancelScope()
        self.reads = ChainReads(chain, pinned)
        self._inbox, self._events = trio.open_memory_channel[Event](65_536)
        self.heads = HeadStream(max_backfill=policy.max_backfill_blocks)
        self.logs = (
            LogStream(request.log_filter, max_backfill=policy.max_backfill_blocks)
            if request.kind is SubscriptionKind.LOGS
            else None
        )
        self._seen_pending: deque[str] = deque(maxlen=4096)
        self._delivered_at = trio.current_time()  # the last head delivered (or a fresh start)
        self._empty_since: float | None = None  # set when the last subscriber leaves
        self._behind = False  # a catch-up could not finish; retried on every tick
        self._deferred: deque[Live] = deque()  # live events held while behind
        self._progress_at = trio.current_time()
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
        self._empty_since = None

    def remove(self, sub_id: str, client: object | None = None) -> bool:
        """``client`` (the session leaving, if known) is charged for the idle stream."""
        removed = self.subscribers.pop(sub_id, None) is not None
        if not self.subscribers and self._empty_since is None:
            self._empty_since = trio.current_time()
            self._emptied(self, client)
        return removed

    def expire(self) -> None:
        """Tear down now (the idle budget says so): unsubscribe upstream and end."""
        self.closed = True  # nobody joins it any more
        self._loop_scope.cancel()

    async def prepare_resume(self, subscriber: Subscriber, resume_from: int) -> None:
        """Compute a resuming subscriber's replay (it is added, held, beforehand)."""
        head = self._tip()
        if self.logs is not None and self.logs.highest_delivered is not None:
            # Block n may be half delivered (its last_complete is n-1): replay it whole.
            head = max(head or 0, self.logs.highest_delivered)
        if head is None:
            head = await self.reads.head(self._serving_id())
        cached = self.logs.cached_range if self.logs is not None else self.heads.cached_range
        plan = plan_resume(
            resume_from, head=head, cached=cached, max_replay=self.policy.max_replay_blocks
        )
        if isinstance(plan, ResumeRejected):
            raise InvalidParams(plan.message)
        replay = await self._replay(plan)
        if isinstance(replay, ResumeRejected):
            raise InvalidParams(replay.message)
        subscriber.set_replay(replay)

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
                    await self._unsubscribe(self.serving)

    async def _consume(self) -> None:
        # The health check runs every tick however busy the inbox is: a stream flooded
        # with events it cannot deliver (heads of a reset chain) is still found stale.
        # Only the wait is bounded by the tick: handling an event is never cut short.
        check_at = trio.current_time() + _TICK_S
        while not self._finished():
            event: Event | None = None
            with trio.move_on_at(check_at):
                event = await self._events.receive()
            if event is None:
                await self._check_health()
                check_at = trio.current_time() + _TICK_S
            elif isinstance(event, Live) and (self._behind or self._deferred):
                self._deferred.append(event)  # nothing live overtakes a catch-up
            else:
                await self._handle(event)

    def _finished(self) -> bool:
        grace_s = self.policy.teardown_grace_ms / 1000
        return self._empty_since is not None and trio.current_time() >= self._empty_since + grace_s

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
            if serving is None or (event.provider_id, event.upstream_id) != (
                serving.provider_id,
                serving.upstream_id,
            ):
                return  # from a subscription this stream no longer uses
            await self._on_live(event.payload)
        elif isinstance(event, Lost):
            if serving is None or event.provider_id == serving.provider_id:
                await self._failover(f"{event.provider_id or 'stream'}: {event.reason}")
        elif isinstance(event, Orphaned):
            if self.logs is not None:
                self._send(self.logs.orphan(event.hashes, event.fork_point))
                await self._catch_up(self.serving)
        else:
            await self._catch_up(self.serving)

    async def _check_health(self) -> None:
        serving = self.serving
        if serving is None:
            await self._handle(Lost("", "no upstream subscription"))
            return
        if self._behind or self._deferred:
            await self._recover()
            return
        provider = self.chain.providers[serving.provider_id]
        if provider.breakers[WS].state(trio.current_time()) is CircuitState.OPEN:
            await self._handle(Lost(serving.provider_id, "circuit breaker open"))
        elif self.kind is SubscriptionKind.NEW_HEADS and self._stale():
            reason = f"no head delivered for {self._stale_s():.0f}s"
            await self._handle(Lost(serving.provider_id, reason))
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
        """A quiet filter still moves forward: what the live subscription has seen is done."""
        now = trio.current_time()
        if self.logs is None or self.serving is None or now < self._progress_at:
            return
        self._progress_at = now + _LOGS_PROGRESS_S
        head = await self.reads.head(self.serving.provider_id)
        self.logs.advance(head - 1)  # a block of margin for logs still in flight

    def _stale_s(self) -> float:
        block_s = self.chain.config.block_time_ms / 1000
        return max(self.policy.stale_after_blocks * block_s, self.policy.min_stale_ms / 1000)

    def _stale(self) -> bool:
        """Nothing delivered for the stale window: what arrives undelivered does not count."""
        return trio.current_time() - self._delivered_at > self._stale_s()

    # -- live events -----------------------------------------------------------

    async def _on_live(self, payload: bytes) -> None:
        try:
            decoded = _decode(payload)
        except msgspec.DecodeError:
            log.warning("stream %s: undecodable notification dropped", self.request.key)
            return
        if self.kind is SubscriptionKind.NEW_HEADS:
            await self._apply_heads(self.heads.offer(decoded, payload), live=(decoded, payload))
        elif self.logs is not None:
            self._send(self.logs.offer(decoded, payload).deliver)
        else:
            key = payload.decode()
            if key not in self._seen_pending:
                self._seen_pending.append(key)
                self._send([Delivery(decoded, payload)])

    async def _apply_heads(
        self, decision: HeadDecision, *, live: tuple[dict[str, Any], bytes] | None = None
    ) -> None:
        """Carry a decision out: deliver, report orphans, fetch and offer back."""
        while True:
            self._send(decision.deliver)
            if decision.orphaned:
                self._orphaned(self, decision.orphaned, decision.fork_point)
            if decision.too_far is not None:
                self._gap_error(decision.too_far)
                self.heads.reset()
                if live is None:
                    return
                decision, live = self.heads.offer(*live), None  # the head starts afresh
                continue
            if decision.fetch is None or decision.verdict is HeadVerdict.STALE:
                return
            blocks = await self.reads.blocks(decision.fetch, self._serving_id())
            decision = self.heads.offer_backfill(blocks)

    def apply_orphans(self, hashes: tuple[str, ...], fork_point: int | None) -> None:
        """The chain's heads stream saw a reorg: this stream's own consumer un-delivers
        its orphaned logs and fetches the new branch's."""
        if self.logs is not None:
            self.post(Orphaned(hashes, fork_point))

    def _send(self, items: Sequence[Delivery]) -> None:
        if items:
            self._delivered_at = trio.current_time()
        if items and self.subscribers:
            fan_out(list(self.subscribers.values()), tuple(items))

    def _gap_error(self, too_far: TooFar) -> None:
        log.warning("stream %s: %s", self.request.key, too_far.message)
        for subscriber in list(self.subscribers.values()):
            subscriber.error(GAP_ERROR, too_far.message)

    # -- failover and backfill --------------------------------------------------

    async def _failover(self, reason: str) -> None:
        old = self.serving
        log.warning("stream %s: failing over (%s)", self.request.key, reason)
        self.failovers += 1
        self._route(self, old, None)
        self.serving = None
        if old is not None:
            await self._unsubscribe(old)
        exclude = set() if self.pinned or old is None else {old.provider_id}
        behind = self._behind_providers()
        try:
            await self._subscribe(exclude, behind=behind)
        except NoProviderAvailable as exc:
            log.warning("stream %s: %s; retrying", self.request.key, exc.message)
            if behind and self._stale():
                await self._restart(behind)
            return  # the next health check tries again
        await self._catch_up(self.serving)

    def _behind_providers(self) -> dict[str, int] | None:
        """Filled by :meth:`_subscribe` with each reachable provider found behind the
        delivered head (None: no head delivered yet, any provider will do)."""
        if self.kind is not SubscriptionKind.NEW_HEADS or self.heads.tip is None:
            return None
        return {}

    async def _restart(self, behind: dict[str, int]) -> None:
        """Every reachable provider is behind the delivered head and nothing was delivered
        for the stale window: the chain went back (its nodes were reset). The clients'
        head must never go backwards, so their subscriptions end with an error (they
        subscribe again); the stream starts afresh at a provider's head for new clients."""
        tip = self.heads.tip
        seen = ", ".join(f"{p} at {n}" for p, n in sorted(behind.items()))
        message = (
            f"subscription ended: every provider is behind the last delivered head {tip} "
            f"({seen}); the chain was reset or rolled back; subscribe again"
        )
        log.warning("stream %s: %s", self.request.key, message)
        for sub_id, subscriber in list(self.subscribers.items()):
            subscriber.end(GAP_ERROR, message)
            self.remove(sub_id)
        self.heads.reset()
        self._delivered_at = trio.current_time()
        with contextlib.suppress(NoProviderAvailable):  # else the next health check
            await self._subscribe(set())

    async def _catch_up(self, serving: Serving | None) -> None:
        if serving is None or self._tip() is None:
            return
        prefer = serving.provider_id
        head = await self.reads.head(prefer)  # the new provider has what the old one never sent
        if self.logs is not None:
            await self._backfill_logs(self.logs.backfill_range(head), prefer)
            return
        if self.kind is SubscriptionKind.NEW_HEADS:
            wanted = self.heads.backfill_range(head)
            if isinstance(wanted, TooFar):
                self._gap_error(wanted)
                self.heads.reset()
            elif wanted:
                blocks = await self.reads.blocks(wanted, prefer)
                await self._apply_heads(self.heads.offer_backfill(blocks))

    async def _backfill_logs(self, wanted: range | TooFar, prefer: str | None) -> None:
        assert self.logs is not None
        assert self.request.log_filter is not None
        if isinstance(wanted, TooFar):
            self._gap_error(wanted)
            self.logs.advance(wanted.last)  # reported: count again from the head
            return
        if not wanted:
            return
        logs = await self.reads.logs(self.request.log_filter, wanted, prefer)
        self._send(self.logs.accept_backfill(wanted, logs).deliver)

    def _serving_id(self) -> str | None:
        return None if self.serving is None else self.serving.provider_id

    def _tip(self) -> int | None:
        return self.logs.last_complete if self.logs is not None else self.heads.tip

    async def _subscribe(self, exclude: set[str], *, behind: dict[str, int] | None = None) -> None:
        """Subscribe upstream on the first usable provider, in priority order.

        With ``behind`` (a newHeads stream that has delivered a head), only a provider at
        or above the delivered head is used; the others are recorded in ``behind``.
        """
        errors: list[str] = []
        params = encode_json(upstream_params(self.request))
        for provider in self._candidates(exclude):
            assert provider.ws is not None
            try:
                if behind is not None and await self._is_behind(provider, behind):
                    errors.append(f"{provider.id}: behind the delivered head {self._tip()}")
                    continue
                upstream_id = await self._upstream_subscribe(provider.ws, params)
            except (LassoError, trio.TooSlowError, msgspec.DecodeError, ValueError) as exc:
                errors.append(f"{provider.id}: {exc}")
                continue
            self.serving = Serving(provider.id, upstream_id, provider.ws.connection_id)
            self._delivered_at = trio.current_time()  # a fresh stale window on a usable provider
            self._route(self, None, self.serving)
            await self._anchor(provider.id)
            return
        detail = "; ".join(errors) or "no provider with a connected WebSocket"
        raise NoProviderAvailable(f"Could not subscribe upstream: {detail}")

    async def _anchor(self, provider_id: str) -> None:
        """Pin an empty stream to the chain as it is now, so that even the first heads
        after subscribing are checked for gaps (the anchor itself is not delivered)."""
        if self.logs is not None and self.logs.last_complete is None:
            self.logs.anchor(await self.reads.head(provider_id))
        elif self.kind is SubscriptionKind.NEW_HEADS and self.heads.state is StreamState.EMPTY:
            try:
                block = await self.reads.latest_block(provider_id)
            except LassoError:
                return  # the first live head anchors instead
            if isinstance(block, dict):
                self.heads.anchor([block])

    async def _is_behind(self, provider: Provider, behind: dict[str, int]) -> bool:
        """Whether ``provider`` is behind the delivered head, asked on the WebSocket the
        stream would subscribe on (that provider's own head, nobody else's)."""
        assert provider.ws is not None
        with trio.fail_after(SUBSCRIBE_TIMEOUT_S):
            result, _ = await provider.ws.request("eth_blockNumber", b"[]")
        head = int(_decode(result, type=str), 16)
        tip = self.heads.tip
        if tip is not None and head < tip:
            behind[provider.id] = head
            return True
        return False

    async def _upstream_subscribe(self, ws: WsConnection, params: bytes) -> str:
        """``eth_subscribe`` on ``ws`` within SUBSCRIBE_TIMEOUT_S.

        The call itself runs in the hub's nursery: if this stream gives up on it (the
        timeout, or its client left) and the upstream confirms it later anyway, the
        upstream subscription is unsubscribed then instead of leaking.
        """
        if self._spawn is None:
            with trio.fail_after(SUBSCRIBE_TIMEOUT_S):
                return await ws.subscribe(params)
        attempt = _Attempt()
        self._spawn(_subscribe_detached, ws, params, attempt)
        try:
            with trio.fail_after(SUBSCRIBE_TIMEOUT_S):
                await attempt.done.wait()
        except BaseException:
            attempt.abandoned = True
            if attempt.upstream_id is not None:  # confirmed just as this stream gave up
                self._spawn(_unsubscribe_late, ws, attempt.upstream_id)
            raise
        if attempt.error is not None:
            raise attempt.error
        if attempt.upstream_id is None:
            raise UpstreamProtocolError("eth_subscribe was not answered")
        return attempt.upstream_id

    def _candidates(self, exclude: set[str]) -> list[Provider]:
        now = trio.current_time()
        providers = sorted(
            self.chain.providers.values(), key=lambda p: (p.config.priority, p.order)
        )
        if self.pinned is not None:
            providers = [self.chain.providers[self.pinned]]
        usable = [
            p
            for p in providers
            if p.ws is not None
            and p.ws.connected
            and p.breakers[WS].state(now) is not CircuitState.OPEN
        ]
        preferred = [p for p in usable if p.id not in exclude]
        return preferred + [p for p in usable if p.id in exclude]

    async def _unsubscribe(self, serving: Serving) -> None:
        provider = self.chain.providers[serving.provider_id]
        if provider.ws is None or not provider.ws.connected:
            return
        if provider.ws.connection_id != serving.connection_id:
            return  # died with its connection
        with trio.move_on_after(5):
            with contextlib.suppress(LassoError):
                await provider.ws.unsubscribe(serving.upstream_id)

    async def _replay(self, plan: ResumePlan) -> list[Delivery] | ResumeRejected:
        if self.logs is not None:
            assert self.request.log_filter is not None
            fetched: list[Any] = []
            if plan.fetch:
                fetched = await self.reads.logs(self.request.log_filter, plan.fetch, None)
            return self.logs.replay(plan, fetched)
        return self.heads.replay(plan, await self.reads.blocks(plan.fetch))


class _Attempt:
    """One upstream ``eth_subscribe`` made on a stream's behalf."""

    __slots__ = ("abandoned", "done", "error", "upstream_id")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.upstream_id: str | None = None
        self.error: BaseException | None = None
        self.abandoned = False  # the stream stopped waiting: a late id is unsubscribed


async def _subscribe_detached(ws: WsConnection, params: bytes, attempt: _Attempt) -> None:
    """The upstream ``eth_subscribe`` of ``attempt``; an id nobody waits for any more is
    unsubscribed. Bounded by LATE_CONFIRM_S (a link that dies fails it at once)."""
    try:
        with trio.move_on_after(LATE_CONFIRM_S):
            upstream_id = await ws.subscribe(params)
            if attempt.abandoned:
                await _unsubscribe_late(ws, upstream_id)
            else:
                attempt.upstream_id = upstream_id
    except Exception as exc:  # handed to the stream: never crash the hub's nursery
        attempt.error = exc
    finally:
        attempt.done.set()


async def _unsubscribe_late(ws: WsConnection, upstream_id: str) -> None:
    log.info("unsubscribing %s: its eth_subscribe was confirmed too late", upstream_id)
    with trio.move_on_after(5), contextlib.suppress(LassoError):
        await ws.unsubscribe(upstream_id)
