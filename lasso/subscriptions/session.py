"""One client WebSocket's subscriptions.

``eth_subscribe`` is answered only once the upstream subscription is
confirmed (the stream is established before ``acquire`` returns). The new
subscriber starts held: its notifications (and a resume replay) reach the
client right after the ``eth_subscribe`` answer, never before it.
Subscription ids are the gateway's own (``0x`` + 32 hex digits); upstream ids
never reach a client. Closing the socket releases every subscription it held.
"""

from __future__ import annotations

import os
from contextvars import ContextVar

import msgspec

from lasso.core.jsonrpc import Call
from lasso.core.subs import (
    InvalidSubscription,
    ResumeSeam,
    SubscriptionKind,
    parse_subscribe_params,
)
from lasso.core.subs.bounds import log_filter_size_error
from lasso.errors import InvalidParams, LocalCapacity
from lasso.gateway import Target
from lasso.subscriptions.fanout import Client, Subscriber
from lasso.subscriptions.hub import SubscriptionHub
from lasso.subscriptions.stream import Stream

_decode = msgspec.json.decode
#: The subscribers created while answering the current frame (one task per frame;
#: a batch's items inherit it), released after that frame's answer goes out.
_FRAME: ContextVar[list[Subscriber] | None] = ContextVar("lasso_frame_subscribers")


class ClientSession:
    """Implements the WebSocket endpoint's session protocol for one socket."""

    def __init__(self, hub: SubscriptionHub, target: Target, client: Client) -> None:
        self.hub = hub
        self.target = target
        self.client = client
        self.limit = hub.gateway.settings.server.ws_max_subscriptions
        self._subs: dict[str, tuple[Stream, Subscriber]] = {}
        self._reserved = 0

    async def handle(self, call: Call) -> bytes:
        if call.method == "eth_unsubscribe":
            return self._unsubscribe(call.params)
        if call.id is None:
            return b"null"  # a notification: the client could never learn the id
        self._reserved += 1  # counted before the await, so concurrent frames obey the limit
        try:
            return await self._subscribe(call.params)
        finally:
            self._reserved -= 1

    async def _subscribe(self, params: bytes) -> bytes:
        for sub_id in [k for k, (_, sub) in self._subs.items() if sub.ended]:
            del self._subs[sub_id]  # ended by the gateway (an error notification said so)
        if len(self._subs) + self._reserved > self.limit:
            raise LocalCapacity("Subscription capacity unavailable")
        try:
            decoded = _decode(params)
            self._bound_filter(decoded)
            request = parse_subscribe_params(decoded)
        except (InvalidSubscription, msgspec.DecodeError) as exc:
            raise InvalidParams(f"Invalid subscription parameters: {exc}") from None
        sub_id = "0x" + os.urandom(16).hex()
        seam = None
        resumable = request.kind is not SubscriptionKind.NEW_PENDING_TRANSACTIONS
        if request.resume_from is not None and resumable:
            seam = ResumeSeam(request.kind, request.resume_from)
        subscriber = Subscriber(sub_id, self.client, request.kind.value, seam)
        stream = await self.hub.acquire(self.target, request, subscriber, client=self)
        self._subs[sub_id] = (stream, subscriber)
        try:
            if request.resume_from is not None:
                await stream.prepare_resume(subscriber, request.resume_from)
        except BaseException:
            self._drop(sub_id)
            raise
        frame = _FRAME.get(None)
        if frame is None:
            subscriber.release()  # not inside a frame: nothing to wait for
        else:
            frame.append(subscriber)  # released once this frame's answer is queued
        return b'"%b"' % sub_id.encode()

    def _bound_filter(self, params: object) -> None:
        """A logs filter names at most [server] max_filter_addresses / max_filter_topics."""
        if isinstance(params, list) and len(params) > 1 and params[0] == "logs":
            server = self.hub.gateway.settings.server
            error = log_filter_size_error(
                params[1],
                max_addresses=server.max_filter_addresses,
                max_topics=server.max_filter_topics,
            )
            if error is not None:
                raise InvalidSubscription(error)

    def _unsubscribe(self, params: bytes) -> bytes:
        try:
            args = _decode(params)
        except msgspec.DecodeError:
            args = None
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], str):
            raise InvalidParams('eth_unsubscribe takes one subscription id: ["0x..."]')
        return b"true" if self._drop(args[0]) else b"false"

    def _drop(self, sub_id: str) -> bool:
        entry = self._subs.pop(sub_id, None)
        if entry is None:
            return False
        stream, _ = entry
        return stream.remove(sub_id, self)

    def open_frame(self) -> list[Subscriber]:
        """Called in the task answering one frame: subscriptions it creates wait for it."""
        frame: list[Subscriber] = []
        _FRAME.set(frame)
        return frame

    def answered(self, frame: list[Subscriber]) -> None:
        """That frame's answer is queued: its new subscriptions may notify now."""
        for subscriber in frame:
            subscriber.release()
        frame.clear()

    def active(self) -> int:
        return len(self._subs)

    async def aclose(self) -> None:
        for sub_id in list(self._subs):
            self._drop(sub_id)
