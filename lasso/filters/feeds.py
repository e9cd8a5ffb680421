"""What feeds the gateway's filters: the hub's gap-free streams, joined as a subscriber.

Theory of operation. Filters with the same feed key (chain, pinned provider if the route
names one, canonical subscription key: ``newHeads``, one ``logs`` address/topics set,
``newPendingTransactions``) share one
:class:`FeedSubscriber` on one hub :class:`~lasso.subscriptions.stream.Stream`, the
same stream WebSocket clients share. The stream already makes what it delivers
gap-free and duplicate-free across a provider failover (it backfills over HTTP) and
un-delivers a reorg's orphaned logs with ``removed: true``; each delivery becomes a
:class:`~lasso.core.filter_table.Change` handed to ``deliver``. A stream that cannot
stay gap-free (an error notification: a gap too long to fill, a lost subscription)
calls ``broke``: its filters are dropped, so their next poll is "filter not found",
never a silent gap.

:class:`Feeds` starts a feed when its first filter is installed (concurrent installs
wait for the one start) and leaves the stream when its last filter goes: the stream
then idles out within the hub's upstream budget, as a WebSocket client's would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

import msgspec
import trio

from lasso.chain import ChainRuntime
from lasso.core.filter_table import Change
from lasso.core.subs import Delivery, SubscriptionKind, SubscriptionRequest
from lasso.core.subs.items import parse_quantity
from lasso.errors import LassoError
from lasso.gateway import Target
from lasso.subscriptions.fanout import Subscriber
from lasso.subscriptions.hub import SubscriptionHub
from lasso.subscriptions.stream import Stream

log = logging.getLogger("lasso.filters")

FeedKey = tuple[ChainRuntime, str | None, str]  # (chain, pinned provider, subscription key)
_encode = msgspec.json.Encoder().encode


class _NoClient:
    def notify(self, message: bytes) -> None:  # never called: deliver and error are ours
        raise AssertionError("a filter feed sends nothing to a client")


def to_change(kind: SubscriptionKind, item: Delivery) -> Change | None:
    """A stream delivery as a filter change (None: nothing a filter can use)."""
    payload: Any = item.payload
    if kind is SubscriptionKind.NEW_HEADS:
        block_hash = payload.get("hash") if isinstance(payload, dict) else None
        if not isinstance(block_hash, str):
            return None
        return Change(block_hash, _encode(block_hash), parse_quantity(payload.get("number")))
    raw = item.raw if item.raw is not None else _encode(payload)
    if kind is SubscriptionKind.NEW_PENDING_TRANSACTIONS:
        key = payload.get("hash") if isinstance(payload, dict) else payload
        return Change(key if isinstance(key, str) else raw, raw)
    if not isinstance(payload, dict):
        return None
    key = (payload.get("blockHash"), payload.get("logIndex"))
    number = parse_quantity(payload.get("blockNumber"))
    return Change(key, raw, number, state=payload.get("removed") is True)


class FeedSubscriber(Subscriber):
    """The filters' one subscriber on a stream: deliveries become changes."""

    def __init__(
        self,
        key: FeedKey,
        kind: SubscriptionKind,
        deliver: Callable[[FeedKey, list[Change]], None],
        broke: Callable[[FeedKey, str], None],
    ) -> None:
        super().__init__(f"filters:{id(self):x}", _NoClient(), kind.value, None)
        self.release()  # nothing to wait for: no eth_subscribe answer goes out
        self._key = key
        self._kind = kind
        self._deliver = deliver
        self._broke = broke

    def deliver(self, item: Delivery, tail: bytes) -> None:
        change = to_change(self._kind, item)
        if change is not None:
            self._deliver(self._key, [change])

    def error(self, code: int, message: str) -> None:
        self._broke(self._key, message)


class _Handle:
    __slots__ = ("client", "error", "ready", "stream", "subscriber")

    def __init__(self, subscriber: FeedSubscriber, client: Hashable) -> None:
        self.subscriber = subscriber
        self.client = client
        self.ready = trio.Event()
        self.stream: Stream | None = None
        self.error: LassoError | None = None


class Feeds:
    """The feeds the filters hold, one hub stream each; see the module docstring."""

    def __init__(
        self,
        hub: SubscriptionHub,
        deliver: Callable[[FeedKey, list[Change]], None],
        broke: Callable[[FeedKey, str], None],
        in_use: Callable[[FeedKey], bool],
    ) -> None:
        self._hub = hub
        self._deliver = deliver
        self._broke = broke
        self._in_use = in_use
        self._handles: dict[FeedKey, _Handle] = {}

    def __len__(self) -> int:
        return len(self._handles)

    async def ensure(
        self, key: FeedKey, target: Target, request: SubscriptionRequest, client: Hashable
    ) -> None:
        """The feed runs (started here if new); raises the start's ``LassoError``."""
        while (handle := self._handles.get(key)) is not None:
            await handle.ready.wait()
            if handle.stream is not None:
                return
            if handle.error is not None:
                raise handle.error
            # its start was cancelled: start it here
        subscriber = FeedSubscriber(key, request.kind, self._deliver, self._broke)
        handle = self._handles[key] = _Handle(subscriber, client)
        try:
            handle.stream = await self._hub.acquire(target, request, subscriber, client=client)
        except LassoError as exc:
            handle.error = exc
            raise
        finally:
            handle.ready.set()
            if handle.stream is None and self._handles.get(key) is handle:
                del self._handles[key]
        if not self._in_use(key):  # its filters went while it started
            self.release(key)

    def release(self, key: FeedKey) -> None:
        """No filter reads ``key`` any more: leave its stream."""
        handle = self._handles.get(key)
        if handle is None or handle.stream is None:
            return  # not started yet: ensure() releases it when it has
        del self._handles[key]
        handle.stream.remove(handle.subscriber.sub_id, handle.client)

    def release_all(self) -> None:
        for key in list(self._handles):
            self.release(key)
