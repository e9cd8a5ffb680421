"""One live upstream WebSocket: requests in flight, subscriptions, and the tasks serving it.

A :class:`Link` lives from a completed handshake to the first thing that ends
it; :class:`lasso.upstream.ws.WsConnection` makes a new one per reconnect.
Three tasks run in the nursery of the connection's session:

    reader     routes each frame: a reply to its waiting request, an
               ``eth_subscription`` push to ``ws:subs:<chain>`` as raw bytes
    writer     sends queued requests one frame at a time, so a cancelled
               caller never cuts a frame in half, and a request whose frame
               never left can be failed as ``never_sent``
    heartbeat  a ping every ``ping_interval_s``; no pong within
               ``pong_timeout_s`` declares the link dead

:meth:`Link.end` is the one way out and is idempotent: it fails every pending
request at once, publishes ``WsClosed`` or ``WsDisconnected`` and cancels the
session. At most ``max_pending`` requests wait for replies; the outbox itself
is unbounded because a request abandoned while the writer is stalled leaves
its frame queued (to be skipped, never sent) until the writer moves on or the
heartbeat ends the link.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable

import msgspec
import trio
from trio_websocket import CloseReason, ConnectionClosed

from lasso import redact
from lasso.core.classify import ErrorCategory, Reason
from lasso.core.jsonrpc import UNREADABLE_REQUEST_CODES, encode_upstream
from lasso.core.methods import is_replay_safe
from lasso.core.reply import interpret
from lasso.errors import UpstreamNetworkError, UpstreamRpcError
from lasso.pubsub import (
    EventBus,
    Notification,
    SubscriptionConfirmed,
    WsClosed,
    WsDisconnected,
    WsError,
)
from lasso.upstream.ws.dial import Dialed
from lasso.upstream.ws.frames import Push, Reply, StrayError, close_code_name, parse_frame
from lasso.upstream.ws.pending import PendingTable, Waiter

__all__ = ["Link", "Tally", "decode_str"]

log = logging.getLogger("lasso.ws")

decode_str = msgspec.json.Decoder(str).decode

Ending = WsDisconnected | WsClosed


class Tally:
    """Counters that outlive links, owned by the connection."""

    __slots__ = ("notifications", "requests", "unmatched")

    def __init__(self) -> None:
        self.requests = self.notifications = self.unmatched = 0


class Link:
    def __init__(
        self,
        dialed: Dialed,
        *,
        connection_id: str,
        provider_id: str,
        max_pending: int,
        bus: EventBus,
        topics: tuple[str, str],
        scope: trio.CancelScope,
        tally: Tally,
        on_end: Callable[[Link, Ending], None],
    ) -> None:
        self.ws, self.stream = dialed
        self.connection_id = connection_id
        self.provider_id = provider_id
        self.pending = PendingTable(max_pending, f"the WebSocket to {provider_id}")
        self.subscriptions: set[str] = set()
        self.ended = False
        self._bus = bus
        self._conn_topic, self._subs_topic = topics
        self._scope = scope
        self._tally = tally
        self._on_end = on_end
        self._ids = itertools.count(1)
        self._outbox, self._outbox_out = trio.open_memory_channel[tuple[int, str]](math.inf)

    def start(self, nursery: trio.Nursery, ping_interval_s: float, pong_timeout_s: float) -> None:
        nursery.start_soon(self._read)
        nursery.start_soon(self._write)
        nursery.start_soon(self._heartbeat, ping_interval_s, pong_timeout_s)

    async def call(
        self, method: str, params: bytes, subscribe_params: bytes | None
    ) -> tuple[bytes, int]:
        """One correlated request: the raw result and the latency in µs, or a classified error."""
        rid = next(self._ids)
        waiter = self.pending.open(
            rid, subscribe_params=subscribe_params, replay_safe=is_replay_safe(method)
        )
        self._tally.requests += 1
        started = trio.current_time()
        self._outbox.send_nowait((rid, encode_upstream(method, params, rid).decode()))
        try:
            await waiter.done.wait()
        finally:
            self.pending.discard(rid)
        if waiter.error is not None:
            raise waiter.error
        latency_us = round((waiter.received_at - started) * 1_000_000)
        return interpret(waiter.reply, rid, provider_id=self.provider_id), latency_us

    def end(self, event: Ending) -> None:
        """The link is gone: fail its requests, announce it, cancel its tasks. Idempotent."""
        if self.ended:
            return
        self.ended = True
        message = f"WebSocket to {self.provider_id} lost: {describe_ending(event)}"

        def error_for(waiter: Waiter) -> Exception:
            sent = waiter.sent
            return UpstreamNetworkError(message, provider_id=self.provider_id, never_sent=not sent)

        self.pending.fail_all(error_for)
        self._outbox.close()
        self._on_end(self, event)
        self._bus.publish(self._conn_topic, event)
        self._scope.cancel()

    # --- tasks ------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            try:
                message = await self.ws.get_message()
            except ConnectionClosed as closed:
                self.end(ending_for(self.provider_id, closed.reason))
                return
            self._route(message.encode() if isinstance(message, str) else message)

    async def _write(self) -> None:
        async for rid, body in self._outbox_out:
            waiter = self.pending.get(rid)
            if waiter is None:
                continue  # cancelled before it was sent: it never will be
            waiter.sent = True  # from here on it may have left: never_sent is False
            try:
                await self.ws.send_message(body)
            except ConnectionClosed:
                return  # the reader reports the loss

    async def _heartbeat(self, interval_s: float, timeout_s: float) -> None:
        for number in itertools.count(1):
            await trio.sleep(interval_s)
            with trio.move_on_after(timeout_s):
                try:
                    await self.ws.ping(b"lasso-%d" % number)
                except ConnectionClosed:
                    return  # the reader reports the loss
                continue
            self.end(WsDisconnected(self.provider_id, f"no pong within {timeout_s:g} s"))
            return

    # --- routing ----------------------------------------------------------------

    def _route(self, data: bytes) -> None:
        frame = parse_frame(data)
        if isinstance(frame, Reply):
            waiter = self.pending.resolve(frame.id, data, trio.current_time())
            if waiter is None:
                self._tally.unmatched += 1  # a cancelled request's reply, or a wrong id
            elif waiter.subscribe_params is not None and frame.result:
                self._confirm(frame.result, waiter.subscribe_params)
        elif isinstance(frame, Push):
            self._tally.notifications += 1
            event = Notification(
                self.provider_id, frame.subscription, frame.payload, trio.current_time()
            )
            self._bus.publish(self._subs_topic, event)
        elif isinstance(frame, StrayError) and frame.code in UNREADABLE_REQUEST_CODES:
            self._unreadable(data, frame)
        else:
            self._tally.unmatched += 1
            if isinstance(frame, StrayError):
                self._complain(frame)
            else:
                log.debug("WebSocket to %s: %s", self.provider_id, frame.reason)

    def _unreadable(self, data: bytes, frame: StrayError) -> None:
        """A null-id -32700/-32600: a request of ours the node could not read (see pending.py)."""
        owner, suspects, orphan = self.pending.blame_unreadable()
        if owner is not None:
            self.pending.resolve(owner, data, trio.current_time())
            return
        self._tally.unmatched += 1
        if not suspects:
            if not orphan:  # an abandoned request's late answer is no news
                self._complain(frame)
            return
        message = f"the node rejected one of {len(suspects)} requests in flight without an id"

        def error_for(_rid: int) -> Exception:
            return UpstreamRpcError(
                message,
                provider_id=self.provider_id,
                rpc_code=frame.code or 0,
                raw_error=frame.error,
                category=ErrorCategory.CAPABILITY.value,
                reason=Reason.UNATTRIBUTED,
            )

        self.pending.fail_suspects(suspects, error_for)

    def _complain(self, frame: StrayError) -> None:
        text = frame.error[:200].decode(errors="replace")
        complaint = WsError(self.provider_id, f"upstream error without an id: {text}")
        self._bus.publish(self._conn_topic, complaint)

    def _confirm(self, result: bytes, params: bytes) -> None:
        try:
            upstream_id = decode_str(result)
        except msgspec.DecodeError:
            return  # WsConnection.subscribe raises the protocol error
        self.subscriptions.add(upstream_id)
        self._bus.publish(
            self._subs_topic, SubscriptionConfirmed(self.provider_id, upstream_id, params)
        )


def ending_for(provider_id: str, reason: CloseReason | None) -> Ending:
    """The event for a connection trio-websocket reports closed with ``reason``."""
    if reason is None or reason.code == 1006:
        return WsDisconnected(provider_id, "connection lost (1006 abnormal closure)")
    return WsClosed(provider_id, reason.code, reason.reason or close_code_name(reason.code))


def describe_ending(event: Ending) -> str:
    """One line for how a link ended; a provider's close reason may quote our key."""
    if isinstance(event, WsClosed):
        return redact.scrub(f"closed {event.code} ({event.reason})")
    return redact.scrub(event.reason)
