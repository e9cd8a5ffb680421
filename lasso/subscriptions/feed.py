"""What a stream's clients are sent: live items, backfills and replays, gap-free.

Theory of operation. A :class:`Feed` is the delivering half of a
:class:`~lasso.subscriptions.stream.Stream`: it holds the pure stream
(:class:`~lasso.core.subs.HeadStream` or :class:`~lasso.core.subs.LogStream`;
pending transactions are only deduplicated), carries out its decisions with HTTP
reads (:mod:`lasso.subscriptions.reads`, preferring the provider that serves the
stream) and fans what it may deliver out to the stream's subscribers, in order:

    live item     offered to the pure stream; a newHeads gap or reorg is fetched
                  and offered back before the next item is looked at
    catch-up      after a failover (or a failed read), what the serving provider
                  has past the stream's tip is fetched and offered
    too far       more than max_backfill blocks to fetch: the clients get an error
                  notification (GAP_ERROR), never a silent gap; the stream counts
                  again from the head
    orphans       a reorg on the chain's heads stream un-delivers this stream's
                  logs of the orphaned blocks; the new branch's are caught up
    resume        a client's ``lasso_resume_from`` replay, from the cache or fetched

Every delivery tells the stream's :class:`~lasso.subscriptions.health.Liveness`:
staleness counts only what was delivered.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import trio

from lasso.config import SubscriptionConfig
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
)
from lasso.errors import InvalidParams, LassoError
from lasso.subscriptions.fanout import Subscriber, fan_out
from lasso.subscriptions.health import Liveness
from lasso.subscriptions.reads import ChainReads

log = logging.getLogger("lasso.subscriptions")

_decode = msgspec.json.decode
GAP_ERROR = -32000


class Feed:
    """One stream's deliveries to its subscribers; see the module docstring."""

    def __init__(
        self,
        request: SubscriptionRequest,
        policy: SubscriptionConfig,
        reads: ChainReads,
        subscribers: dict[str, Subscriber],
        liveness: Liveness,
        orphaned: Callable[[tuple[str, ...], int | None], None],
        heads_seen: Callable[[str | None, list[Any]], None] = lambda provider_id, blocks: None,
        backfilled: Callable[[int], None] = lambda blocks: None,
    ) -> None:
        self.request = request
        self.policy = policy
        self.reads = reads
        self.subscribers = subscribers  # the stream's: it adds and removes them
        self._liveness = liveness
        self._orphaned = orphaned
        self._heads_seen = heads_seen  # told before clients are sent heads (read-your-head)
        self._backfilled = backfilled  # told how many blocks each gap fill fetched (/metrics)
        self.heads = HeadStream(max_backfill=policy.max_backfill_blocks)
        self.logs = (
            LogStream(request.log_filter, max_backfill=policy.max_backfill_blocks)
            if request.kind is SubscriptionKind.LOGS
            else None
        )
        self._seen_pending: deque[str] = deque(maxlen=4096)

    @property
    def tip(self) -> int | None:
        """The last block delivered in full (None: nothing yet)."""
        return self.logs.last_complete if self.logs is not None else self.heads.tip

    # -- live items ------------------------------------------------------------

    async def on_live(self, payload: bytes, prefer: str | None) -> None:
        try:
            decoded = _decode(payload)
        except msgspec.DecodeError:
            log.warning("stream %s: undecodable notification dropped", self.request.key)
            return
        if self.request.kind is SubscriptionKind.NEW_HEADS:
            decision = self.heads.offer(decoded, payload)
            await self._apply_heads(decision, prefer, live=(decoded, payload))
        elif self.logs is not None:
            self.send(self.logs.offer(decoded, payload).deliver)
        else:
            key = payload.decode()
            if key not in self._seen_pending:
                self._seen_pending.append(key)
                self.send([Delivery(decoded, payload)])

    async def _apply_heads(
        self,
        decision: HeadDecision,
        prefer: str | None,
        *,
        live: tuple[dict[str, Any], bytes] | None = None,
    ) -> None:
        """Carry a decision out: deliver, report orphans, fetch and offer back."""
        while True:
            if decision.deliver:
                self._heads_seen(prefer, [item.payload for item in decision.deliver])
            self.send(decision.deliver)
            if decision.orphaned:
                self._orphaned(decision.orphaned, decision.fork_point)
            if decision.too_far is not None:
                self.gap_error(decision.too_far)
                self.heads.reset()
                if live is None:
                    return
                decision, live = self.heads.offer(*live), None  # the head starts afresh
                continue
            if decision.fetch is None or decision.verdict is HeadVerdict.STALE:
                return
            blocks = await self.reads.blocks(decision.fetch, prefer)
            self._backfilled(len(decision.fetch))
            decision = self.heads.offer_backfill(blocks)

    def orphan(self, hashes: tuple[str, ...], fork_point: int | None) -> None:
        """Un-deliver the logs of blocks a reorg orphaned (a logs feed only)."""
        if self.logs is not None:
            self.send(self.logs.orphan(hashes, fork_point))

    def send(self, items: Sequence[Delivery]) -> None:
        if items:
            self._liveness.delivered(trio.current_time())
        if self.request.kind is SubscriptionKind.NEW_HEADS and self.reads.pinned is None:
            for item in items:  # the chain's head floor (lasso.headfloor)
                self.reads.chain.floor.delivered(item.payload)
        if items and self.subscribers:
            fan_out(list(self.subscribers.values()), tuple(items))

    def gap_error(self, too_far: TooFar) -> None:
        log.warning("stream %s: %s", self.request.key, too_far.message)
        for subscriber in list(self.subscribers.values()):
            subscriber.error(GAP_ERROR, too_far.message)

    # -- anchoring and catching up ---------------------------------------------

    async def anchor(self, provider_id: str) -> None:
        """Pin an empty stream to the chain as it is now, so that even the first heads
        after subscribing are checked for gaps (the anchor itself is not delivered)."""
        if self.logs is not None and self.logs.last_complete is None:
            self.logs.anchor(await self.reads.head(provider_id))
        elif (
            self.request.kind is SubscriptionKind.NEW_HEADS
            and self.heads.state is StreamState.EMPTY
        ):
            try:
                block = await self.reads.latest_block(provider_id)
            except LassoError:
                return  # the first live head anchors instead
            if isinstance(block, dict):
                self.heads.anchor([block])

    async def catch_up(self, prefer: str) -> None:
        """Deliver what ``prefer`` (the serving provider) has past the tip."""
        if self.tip is None:
            return
        head = await self.reads.head(prefer)  # the new provider has what the old one never sent
        if self.logs is not None:
            await self._backfill_logs(self.logs.backfill_range(head), prefer)
            return
        if self.request.kind is SubscriptionKind.NEW_HEADS:
            wanted = self.heads.backfill_range(head)
            if isinstance(wanted, TooFar):
                self.gap_error(wanted)
                self.heads.reset()
            elif wanted:
                blocks = await self.reads.blocks(wanted, prefer)
                self._backfilled(len(wanted))
                await self._apply_heads(self.heads.offer_backfill(blocks), prefer)

    async def _backfill_logs(self, wanted: range | TooFar, prefer: str | None) -> None:
        assert self.logs is not None
        assert self.request.log_filter is not None
        if isinstance(wanted, TooFar):
            self.gap_error(wanted)
            self.logs.advance(wanted.last)  # reported: count again from the head
            return
        if not wanted:
            return
        logs = await self.reads.logs(self.request.log_filter, wanted, prefer)
        self._backfilled(len(wanted))
        self.send(self.logs.accept_backfill(wanted, logs).deliver)

    async def keep_logs_complete(self, prefer: str) -> None:
        """A quiet filter still moves forward: what the live subscription has seen is done."""
        if self.logs is not None:
            head = await self.reads.head(prefer)
            self.logs.advance(head - 1)  # a block of margin for logs still in flight

    # -- resuming --------------------------------------------------------------

    async def prepare_resume(
        self, subscriber: Subscriber, resume_from: int, prefer: str | None
    ) -> None:
        """Compute a resuming subscriber's replay (it is added, held, beforehand)."""
        head = self.tip
        if self.logs is not None and self.logs.highest_delivered is not None:
            # Block n may be half delivered (its last_complete is n-1): replay it whole.
            head = max(head or 0, self.logs.highest_delivered)
        if head is None:
            head = await self.reads.head(prefer)
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

    async def _replay(self, plan: ResumePlan) -> list[Delivery] | ResumeRejected:
        if self.logs is not None:
            assert self.request.log_filter is not None
            fetched: list[Any] = []
            if plan.fetch:
                fetched = await self.reads.logs(self.request.log_filter, plan.fetch, None)
            return self.logs.replay(plan, fetched)
        return self.heads.replay(plan, await self.reads.blocks(plan.fetch))
