"""Fan-out: one upstream event, formatted once, sent to every client subscription.

A payload is turned into the tail of a notification once per event (the
provider's own bytes when it was delivered unchanged, checked once to be UTF-8:
it goes out as a text frame), as bytes; each subscriber only puts its own
constant head (the envelope up to its subscription id) in front of it: one
concatenation per client, no per-client encoding. A subscriber starts *held*:
nothing reaches its client until the client has been sent the answer to its
``eth_subscribe`` (and, for a resume, the replay).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from lasso.core.subs import Delivery, ResumeSeam

_PREFIX = b'{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"'
_encode = msgspec.json.Encoder().encode


class Client(Protocol):
    """Where a subscriber's notifications go: a client socket's send queue."""

    def notify(self, message: bytes) -> None:
        """One whole JSON-RPC notification, UTF-8 (sent as a text frame)."""


def payload_tail(item: Delivery) -> bytes:
    """``<payload>}}``: what follows ``"result":`` in every subscriber's notification.

    The provider's own bytes when it delivered them unchanged; those are checked to
    be UTF-8 once here (a text frame must be), raising ``UnicodeDecodeError`` (a
    ``ValueError``: the stream treats it as bad upstream data) as decoding did.
    """
    if item.raw is None:
        return _encode(item.payload) + b"}}"
    item.raw.decode()
    return item.raw + b"}}"


class Subscriber:
    """One client subscription: its id, its client, and what it still holds back."""

    __slots__ = ("_head", "_held", "_replay", "client", "ended", "kind", "seam", "sub_id")

    def __init__(self, sub_id: str, client: Client, kind: str, seam: ResumeSeam | None) -> None:
        self.sub_id = sub_id
        self.client = client
        self.kind = kind
        self.seam = seam
        #: The envelope up to ``"result":``: the same for every notification of this id.
        self._head = b'%b%b","result":' % (_PREFIX, sub_id.encode())
        self._held: list[tuple[Delivery | None, bytes]] | None = []  # None: send as is
        self._replay: list[Delivery] = []
        self.ended = False  # ended by the gateway with an error notification

    def deliver(self, item: Delivery, tail: bytes) -> None:
        """``tail``: :func:`payload_tail` of ``item``, made once for every subscriber."""
        if self._held is not None:
            self._held.append((item, tail))
        elif self.seam is None or self.seam.admit(item):
            self.client.notify(self._head + tail)

    def set_replay(self, items: list[Delivery]) -> None:
        """What a resuming client is sent first, before any live item."""
        self._replay = items

    def release(self) -> None:
        """The answer has gone out: send the replay, then what was held, in order."""
        held: list[tuple[Delivery | None, bytes]] | None = self._held
        self._held = None
        if held is None:
            return
        if self.seam is not None:
            for replayed in self.seam.replay(self._replay):
                self.client.notify(self._head + payload_tail(replayed))
        self._replay = []
        for item, message in held:
            if item is None:
                self.client.notify(message)
            else:
                self.deliver(item, message)

    def error(self, code: int, message: str) -> None:
        """An in-band error notification: a gap the gateway could not fill, say."""
        error = _encode({"code": code, "message": message})
        text = b'%b%b","error":%b}}' % (_PREFIX, self.sub_id.encode(), error)
        if self._held is not None:
            self._held.append((None, text))  # in order, after the eth_subscribe answer
        else:
            self.client.notify(text)

    def end(self, code: int, message: str) -> None:
        """A last error notification: this subscription delivers nothing more."""
        self.error(code, message)
        self.ended = True


def fan_out(subscribers: list[Subscriber], items: tuple[Delivery, ...] | list[Delivery]) -> int:
    """Send ``items``, in order, to every subscriber; returns messages sent."""
    for item in items:
        tail = payload_tail(item)
        for subscriber in subscribers:
            subscriber.deliver(item, tail)
    return len(items) * len(subscribers)
