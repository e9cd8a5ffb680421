"""Requests waiting for their reply on one WebSocket link.

One :class:`PendingTable` per link: a request opens a :class:`Waiter` under its
private id, the link's reader resolves it with the reply frame, and when the
link dies every waiter is failed at once. A waiter leaves the table when it is
resolved, failed, or discarded by its cancelled caller, so a cancelled request
leaves nothing behind and a late reply to it finds no one (an unmatched reply).
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from lasso.errors import LocalCapacity

__all__ = ["PendingTable", "Waiter"]


class Waiter:
    """One request in flight. ``sent`` turns true once its frame was fully written."""

    __slots__ = ("done", "error", "received_at", "reply", "sent", "subscribe_params")

    def __init__(self, subscribe_params: bytes | None) -> None:
        self.done = trio.Event()
        self.reply = b""
        self.received_at = 0.0
        self.error: Exception | None = None
        self.sent = False
        self.subscribe_params = subscribe_params


class PendingTable:
    __slots__ = ("_limit", "_waiting", "describe")

    def __init__(self, limit: int, describe: str) -> None:
        self._limit = limit
        self._waiting: dict[int, Waiter] = {}
        self.describe = describe

    def __len__(self) -> int:
        return len(self._waiting)

    def open(self, rid: int, *, subscribe_params: bytes | None = None) -> Waiter:
        if len(self._waiting) >= self._limit:
            raise LocalCapacity(
                f"too many requests in flight on {self.describe} (limit {self._limit})"
            )
        waiter = self._waiting[rid] = Waiter(subscribe_params)
        return waiter

    def get(self, rid: int) -> Waiter | None:
        return self._waiting.get(rid)

    def resolve(self, rid: int, reply: bytes, now: float) -> Waiter | None:
        """Hand ``reply`` to the waiter of ``rid``; None if nobody waits for it."""
        waiter = self._waiting.pop(rid, None)
        if waiter is not None:
            waiter.reply = reply
            waiter.received_at = now
            waiter.done.set()
        return waiter

    def discard(self, rid: int) -> None:
        self._waiting.pop(rid, None)

    def fail_all(self, error_for: Callable[[Waiter], Exception]) -> int:
        """Fail every waiter now, each with its own exception; return how many."""
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            waiter.error = error_for(waiter)
            waiter.done.set()
        return len(waiting)
