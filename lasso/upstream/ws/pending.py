"""Requests waiting for their reply on one WebSocket link.

One :class:`PendingTable` per link: a request opens a :class:`Waiter` under its
private id, the link's reader resolves it with the reply frame, and when the
link dies every waiter is failed at once. A waiter leaves the table when it is
resolved, failed, or discarded by its cancelled caller, so a cancelled request
leaves nothing behind and a late reply to it finds no one (an unmatched reply).

**Replies without an id.** A node that cannot read a request at all (too deep,
not JSON to it) answers -32700 or -32600 with ``"id": null``, so the reply
cannot be matched by id. :meth:`PendingTable.blame_unreadable` decides whose it
is, soundly rather than by guess:

- exactly one request was sent and is waiting, and no sent request was
  abandoned unanswered (an *orphan*, whose answer may still be on its way):
  it is that request's answer;
- nothing is waiting but an orphan is: it was the orphan's; forget one;
- otherwise it cannot be told. Each replay-safe request waiting (sent, not a
  subscription) is failed with a CAPABILITY error, so the dispatcher tries it
  again elsewhere (over HTTP every answer is matched) and no breaker counts it;
  the culprit among them gets its own answer there. A request that is not
  replay-safe keeps waiting for its own reply: it may have been executed.
  If the culprit was one of those, its attempt ends at its deadline as a
  timeout: the one case a client can still cost a provider a breaker count
  over WebSocket, and it needs a write (``eth_sendRawTransaction``) that the
  node cannot read while other requests are in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import trio

from lasso.errors import LocalCapacity

__all__ = ["Blame", "PendingTable", "Waiter"]


class Waiter:
    """One request in flight. ``sent`` turns true once its frame was fully written."""

    __slots__ = (
        "done",
        "error",
        "received_at",
        "replay_safe",
        "reply",
        "sent",
        "subscribe_params",
    )

    def __init__(self, subscribe_params: bytes | None, replay_safe: bool) -> None:
        self.done = trio.Event()
        self.reply = b""
        self.received_at = 0.0
        self.error: Exception | None = None
        self.sent = False
        self.subscribe_params = subscribe_params
        self.replay_safe = replay_safe


class Blame(NamedTuple):
    """The verdict on a null-id "could not read the request" answer.

    ``owner``: the request it answers. ``orphan``: an abandoned request's, absorbed.
    ``suspects``: replay-safe requests to send elsewhere. None of these: nobody's.
    """

    owner: int | None = None
    suspects: tuple[int, ...] = ()
    orphan: bool = False


class PendingTable:
    __slots__ = ("_limit", "_orphans", "_waiting", "describe")

    #: Orphans remembered at most; older ones are forgotten (their answers are long overdue).
    MAX_ORPHANS = 64

    def __init__(self, limit: int, describe: str) -> None:
        self._limit = limit
        self._waiting: dict[int, Waiter] = {}
        self._orphans: deque[int] = deque(maxlen=self.MAX_ORPHANS)
        self.describe = describe

    def __len__(self) -> int:
        return len(self._waiting)

    def open(
        self, rid: int, *, subscribe_params: bytes | None = None, replay_safe: bool = False
    ) -> Waiter:
        if len(self._waiting) >= self._limit:
            raise LocalCapacity(
                f"too many requests in flight on {self.describe} (limit {self._limit})"
            )
        waiter = self._waiting[rid] = Waiter(subscribe_params, replay_safe)
        return waiter

    def get(self, rid: int) -> Waiter | None:
        return self._waiting.get(rid)

    def resolve(self, rid: int, reply: bytes, now: float) -> Waiter | None:
        """Hand ``reply`` to the waiter of ``rid``; None if nobody waits for it."""
        waiter = self._waiting.pop(rid, None)
        if waiter is None:
            if rid in self._orphans:  # an abandoned request's late answer
                self._orphans.remove(rid)
            return None
        waiter.reply = reply
        waiter.received_at = now
        waiter.done.set()
        return waiter

    def discard(self, rid: int) -> None:
        """The caller gave up (or is done). A sent request left unanswered is an orphan."""
        waiter = self._waiting.pop(rid, None)
        if waiter is not None and waiter.sent and not waiter.done.is_set():
            self._orphans.append(rid)

    def fail(self, rid: int, error: Exception) -> None:
        waiter = self._waiting.pop(rid, None)
        if waiter is not None:
            waiter.error = error
            waiter.done.set()

    def blame_unreadable(self) -> Blame:
        """Whose is a "could not read the request" error without an id? See the module doc."""
        sent = [rid for rid, waiter in self._waiting.items() if waiter.sent]
        if not sent:
            if self._orphans:
                self._orphans.popleft()
                return Blame(orphan=True)
            return Blame()
        if len(sent) == 1 and not self._orphans:
            return Blame(owner=sent[0])
        suspects = [
            rid
            for rid in sent
            if self._waiting[rid].replay_safe and self._waiting[rid].subscribe_params is None
        ]
        return Blame(suspects=tuple(suspects))

    def fail_suspects(
        self, suspects: tuple[int, ...], error_for: Callable[[int], Exception]
    ) -> None:
        """Fail the suspects of an unattributed answer; the rest of their answers are still due.

        They become orphans, less one: the answer that made them suspects was one of theirs
        (or an older orphan's, which it then stands for). So later null-id answers are
        absorbed by them and never pinned on a request sent afterwards.
        """
        for rid in suspects:
            self.fail(rid, error_for(rid))
            self._orphans.append(rid)
        if self._orphans:
            self._orphans.popleft()

    def fail_all(self, error_for: Callable[[Waiter], Exception]) -> int:
        """Fail every waiter now, each with its own exception; return how many."""
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            waiter.error = error_for(waiter)
            waiter.done.set()
        return len(waiting)
