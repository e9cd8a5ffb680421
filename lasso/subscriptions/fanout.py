"""Fan-out: one upstream event, formatted once, sent to every client subscription.

A payload is turned into JSON text once per event (the provider's own bytes when
it was delivered unchanged); each subscriber only splices in its subscription
id. A subscriber starts *held*: nothing reaches its client until the client has
been sent the answer to its ``eth_subscribe`` (and, for a resume, the replay).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from lasso.core.subs import Delivery, ResumeSeam

_PREFIX = '{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"'
_encode = msgspec.json.Encoder().encode


class Client(Protocol):
    """Where a subscriber's notifications go: a client socket's send queue."""

    def notify(self, message: str) -> None: ...


def payload_text(item: Delivery) -> str:
    return (item.raw if item.raw is not None else _encode(item.payload)).decode()


class Subscriber:
    """One client subscription: its id, its client, and what it still holds back."""

    __slots__ = ("_held", "_replay", "client", "ended", "kind", "seam", "sub_id")

    def __init__(self, sub_id: str, client: Client, kind: str, seam: ResumeSeam | None) -> None:
        self.sub_id = sub_id
        self.client = client
        self.kind = kind
        self.seam = seam
        self._held: list[tuple[Delivery | None, str]] | None = []  # None: send as is
        self._replay: list[Delivery] = []
        self.ended = False  # ended by the gateway with an error notification

    def deliver(self, item: Delivery, text: str) -> None:
        if self._held is not None:
            self._held.append((item, text))
        elif self.seam is None or self.seam.admit(item):
            self.client.notify(self._message(text))

    def set_replay(self, items: list[Delivery]) -> None:
        """What a resuming client is sent first, before any live item."""
        self._replay = items

    def release(self) -> None:
        """The answer has gone out: send the replay, then what was held, in order."""
        held: list[tuple[Delivery | None, str]] | None = self._held
        self._held = None
        if held is None:
            return
        if self.seam is not None:
            for replayed in self.seam.replay(self._replay):
                self.client.notify(self._message(payload_text(replayed)))
        self._replay = []
        for item, text in held:
            if item is None:
                self.client.notify(text)
            else:
                self.deliver(item, text)

    def error(self, code: int, message: str) -> None:
        """An in-band error notification: a gap the gateway could not fill, say."""
        error = _encode({"code": code, "message": message}).decode()
        text = f'{_PREFIX}{self.sub_id}","error":{error}}}}}'
        if self._held is not None:
            self._held.append((None, text))  # in order, after the eth_subscribe answer
        else:
            self.client.notify(text)

    def end(self, code: int, message: str) -> None:
        """A last error notification: this subscription delivers nothing more."""
        self.error(code, message)
        self.ended = True

    def _message(self, text: str) -> str:
        return f'{_PREFIX}{self.sub_id}","result":{text}}}}}'


def fan_out(subscribers: list[Subscriber], items: tuple[Delivery, ...] | list[Delivery]) -> int:
    """Send ``items``, in order, to every subscriber; returns messages sent."""
    for item in items:
        text = payload_text(item)
        for subscriber in subscribers:
            subscriber.deliver(item, text)
    return len(items) * len(subscribers)
