"""``lasso_resume_from``: replay recent blocks to one client, then join the live stream.

Theory of operation
-------------------
A client that reconnects says which block it wants to continue from:
``["newHeads", {"lasso_resume_from": "0x64"}]`` (or the same field in a logs filter).
The client gets blocks N..head replayed, then the shared live stream, with no gap and no
duplicate at the seam.

1. :func:`plan_resume` bounds the replay (at most ``max_replay`` blocks back from the head,
   default 128, else :class:`ResumeRejected` with a message for the client) and splits
   it: the part the stream still holds in its delivered window is replayed from memory
   (``cached``, exactly what live clients were sent), the older part is fetched from a
   provider (``fetch``: ``eth_getBlockByNumber`` per block, or one ``eth_getLogs``).
   ``head`` is the stream's tip (``HeadStream.tip`` / ``LogStream.last_complete``) or,
   for a stream that has delivered nothing yet, the provider's ``eth_blockNumber``.
2. The shell attaches the client to the fan-out at once but holds its live items, fetches
   ``plan.fetch``, and asks the stream for the replay (``HeadStream.replay`` /
   ``LogStream.replay``). A stream that has delivered nothing yet adopts the replayed
   blocks as its history, so its live stream continues from them gap-free; the shell
   should do that before it consumes the new upstream subscription.
3. A :class:`ResumeSeam` per client sends the replay, then admits the held and later
   live items, dropping any the replay already covered (by block hash for heads, by
   ``(blockHash, logIndex, removed)`` for logs) and, until the client has been sent
   anything, items below ``resume_from`` (the client already has those). Once a live item
   beyond the replay has passed (``joined``) the shell may drop the seam: the shared
   stream dedupes everything else itself.

A resume point past the head replays nothing; the seam then skips the live items below
it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Final

import msgspec

from lasso.core.subs.filters import SubscriptionKind
from lasso.core.subs.items import Delivery, hex_quantity, parse_quantity

__all__ = [
    "DEFAULT_MAX_REPLAY",
    "ResumePlan",
    "ResumeRejected",
    "ResumeSeam",
    "plan_resume",
]

DEFAULT_MAX_REPLAY: Final = 128


class ResumePlan(msgspec.Struct, frozen=True):
    """Replay ``fetch`` (from a provider) then ``cached`` (from the stream), in order."""

    resume_from: int
    fetch: range
    cached: range

    @property
    def blocks(self) -> range:
        """Every block number the replay covers."""
        start = self.fetch.start if self.fetch else self.cached.start
        return range(start, max(self.fetch.stop, self.cached.stop))


class ResumeRejected(msgspec.Struct, frozen=True):
    """The replay cannot be done; ``message`` is for the client."""

    message: str


def plan_resume(
    resume_from: int,
    *,
    head: int,
    cached: range = range(0),
    max_replay: int = DEFAULT_MAX_REPLAY,
) -> ResumePlan | ResumeRejected:
    """Which blocks to replay from where; ``cached`` is the stream's ``cached_range``."""
    if resume_from > head:
        nothing = range(head + 1, head + 1)
        return ResumePlan(resume_from, nothing, nothing)
    count = head - resume_from + 1
    if count > max_replay:
        oldest = hex_quantity(head - max_replay + 1)
        return ResumeRejected(
            f"lasso_resume_from {hex_quantity(resume_from)} is {count} blocks behind the head "
            f"{hex_quantity(head)}; at most {max_replay} blocks can be replayed "
            f"(the oldest allowed is {oldest})"
        )
    if cached and cached.start <= head < cached.stop:
        from_cache = range(max(resume_from, cached.start), head + 1)
        return ResumePlan(resume_from, range(resume_from, from_cache.start), from_cache)
    return ResumePlan(resume_from, range(resume_from, head + 1), range(head + 1, head + 1))


class ResumeSeam:
    """One resuming client's join between its replay and the shared live stream."""

    def __init__(self, kind: SubscriptionKind, resume_from: int) -> None:
        if kind is SubscriptionKind.NEW_HEADS:
            self._key: Callable[[Mapping[str, Any]], Hashable] = _head_key
            self._number_field = "number"
        elif kind is SubscriptionKind.LOGS:
            self._key = _log_key
            self._number_field = "blockNumber"
        else:
            raise ValueError(f"{kind.value} subscriptions cannot be resumed")
        self._resume_from = resume_from
        self._replayed: set[Hashable] = set()
        self._last_replayed = resume_from - 1
        self._started = False
        self._joined = False

    @property
    def joined(self) -> bool:
        """A live item past the replay has been admitted; the seam is no longer needed."""
        return self._joined

    def replay(self, items: Iterable[Delivery]) -> list[Delivery]:
        """The replay items to send now, in order (each once)."""
        out: list[Delivery] = []
        for item in items:
            key = self._key(item.payload)
            if key in self._replayed:
                continue
            self._replayed.add(key)
            self._last_replayed = max(self._last_replayed, self._number(item))
            out.append(item)
        self._started = self._started or bool(out)
        return out

    def admit(self, item: Delivery) -> bool:
        """Whether a live item fanned out to this client should be sent to it."""
        if self._key(item.payload) in self._replayed:
            return False
        number = self._number(item)
        if not self._started and number < self._resume_from:
            return False
        self._started = True
        self._joined = self._joined or number > self._last_replayed
        return True

    def _number(self, item: Delivery) -> int:
        number = parse_quantity(item.payload.get(self._number_field))
        return -1 if number is None else number


def _head_key(payload: Mapping[str, Any]) -> Hashable:
    return str(payload.get("hash", "")).lower()


def _log_key(payload: Mapping[str, Any]) -> Hashable:
    block = str(payload.get("blockHash", "")).lower()
    return (block, parse_quantity(payload.get("logIndex")), payload.get("removed") is True)
