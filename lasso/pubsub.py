"""In-process publish/subscribe on Trio memory channels, and the events it carries.

:class:`EventBus` fans each published event out to every subscriber of its
topic. ``publish`` is synchronous and never blocks: it ``send_nowait``\\ s into
each subscriber's own bounded channel.

**Slow-consumer policy.** Publishers are never slowed by a consumer. When a
subscriber's buffer is full (``max_buffer`` events waiting), the event is not
delivered to it and its ``dropped`` count goes up. The next event it *does*
receive is preceded by an :class:`Overflow` marker carrying how many events it
missed since its last delivery. A consumer that must be gap-free (the
subscription hub, :mod:`lasso.subscriptions.hub`) treats ``Overflow`` as
"resynchronise now": every stream of that chain catches up from its tip. One that
only wants the latest state can ignore it. The marker never costs an event: each
channel has one slot beyond ``max_buffer`` reserved for it.

Topics used by Lasso (build names with :func:`conn_topic` / :func:`subs_topic`):

    ws:conn:<chain>   upstream WebSocket lifecycle: WsConnected, WsStable,
                      WsReconnecting, WsDisconnected, WsClosed, WsError
    ws:subs:<chain>   upstream subscriptions: SubscriptionConfirmed, Notification

On ``ws:subs:<chain>`` a provider's ``SubscriptionConfirmed`` for an upstream id
is always published before any ``Notification`` for that id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import trio

__all__ = [
    "BusStatistics",
    "EventBus",
    "Notification",
    "Overflow",
    "SubscriptionConfirmed",
    "TopicStatistics",
    "WsClosed",
    "WsConnected",
    "WsDisconnected",
    "WsError",
    "WsReconnecting",
    "WsStable",
    "conn_topic",
    "subs_topic",
]


def conn_topic(chain: str) -> str:
    return f"ws:conn:{chain}"


def subs_topic(chain: str) -> str:
    return f"ws:subs:{chain}"


# --- events on ws:conn:<chain> ----------------------------------------------


class WsConnected(msgspec.Struct, frozen=True):
    provider_id: str
    connection_id: str


class WsStable(msgspec.Struct, frozen=True):
    """The connection has stayed up for ``stable_after_s``; reconnect backoff is reset."""

    provider_id: str


class WsReconnecting(msgspec.Struct, frozen=True):
    """Published before sleeping ``delay_s``; ``attempt`` counts from 1 after a stable link."""

    provider_id: str
    attempt: int
    delay_s: float


class WsDisconnected(msgspec.Struct, frozen=True):
    """The link was lost without a close handshake (TCP drop, heartbeat timeout, crash)."""

    provider_id: str
    reason: str


class WsClosed(msgspec.Struct, frozen=True):
    """The link ended with a WebSocket close code (sent by the peer, or 1009 by us)."""

    provider_id: str
    code: int
    reason: str


class WsError(msgspec.Struct, frozen=True):
    """A connect attempt failed, or the upstream sent a connection-level error."""

    provider_id: str
    message: str


# --- events on ws:subs:<chain> ----------------------------------------------


class SubscriptionConfirmed(msgspec.Struct, frozen=True):
    provider_id: str
    upstream_id: str
    params: bytes


class Notification(msgspec.Struct, frozen=True):
    """One ``eth_subscription`` push; ``payload`` is the upstream's ``params.result`` bytes."""

    provider_id: str
    upstream_id: str
    payload: bytes
    received_at: float


# --- the bus ----------------------------------------------------------------


class Overflow(msgspec.Struct, frozen=True):
    """Marker: ``dropped`` events were not delivered to this subscriber just before the next."""

    dropped: int


class TopicStatistics(msgspec.Struct, frozen=True):
    subscribers: int
    published: int
    dropped: int


class BusStatistics(msgspec.Struct, frozen=True):
    topics: dict[str, TopicStatistics]


class _Subscriber:
    __slots__ = ("gap", "max_buffer", "send")

    def __init__(self, send: trio.MemorySendChannel[object], max_buffer: int) -> None:
        self.send = send
        self.max_buffer = max_buffer
        self.gap = 0  # events missed since the last delivery


class _Topic:
    __slots__ = ("dropped", "published", "subscribers")

    def __init__(self) -> None:
        self.subscribers: list[_Subscriber] = []
        self.published = 0
        self.dropped = 0


class EventBus:
    """Topics of subscribers, each with its own bounded buffer. See the module docstring."""

    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}

    @contextmanager
    def subscribe(
        self, topic: str, *, max_buffer: int = 1024
    ) -> Iterator[trio.MemoryReceiveChannel[object]]:
        """Receive every event published on ``topic`` from now until the block exits."""
        if max_buffer < 1:
            raise ValueError("max_buffer must be >= 1")
        send, receive = trio.open_memory_channel[object](max_buffer + 1)
        subscriber = _Subscriber(send, max_buffer)
        entry = self._topics.setdefault(topic, _Topic())
        entry.subscribers.append(subscriber)
        try:
            yield receive
        finally:
            entry.subscribers.remove(subscriber)
            send.close()
            receive.close()

    def publish(self, topic: str, event: object) -> None:
        """Offer ``event`` to every subscriber of ``topic``; never blocks."""
        entry = self._topics.get(topic)
        if entry is None:
            self._topics[topic] = entry = _Topic()
        entry.published += 1
        for subscriber in entry.subscribers:
            if not _deliver(subscriber, event):
                entry.dropped += 1

    def statistics(self) -> BusStatistics:
        return BusStatistics(
            topics={
                name: TopicStatistics(len(t.subscribers), t.published, t.dropped)
                for name, t in self._topics.items()
            }
        )


def _deliver(subscriber: _Subscriber, event: object) -> bool:
    """Deliver one event (after an Overflow marker if there is a gap); False if dropped."""
    send = subscriber.send
    if send.statistics().current_buffer_used >= subscriber.max_buffer:
        subscriber.gap += 1
        return False
    try:
        if subscriber.gap:
            send.send_nowait(Overflow(subscriber.gap))  # uses the reserved slot
            subscriber.gap = 0
        send.send_nowait(event)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return True  # the consumer closed its end; it leaves when its block exits
    return True
