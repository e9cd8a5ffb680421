"""How many upstream subscriptions one chain may hold, and how many of them may sit idle.

Theory of operation. Every shared upstream subscription (a *stream*) of one chain is
either in use (some client subscription reads it) or idle (its last client left and it
waits out the teardown grace, so a reconnecting client can reuse it). Idle streams cost
the provider as much as busy ones, and a client that subscribes and unsubscribes distinct
filters in a loop would otherwise pile up one idle stream per filter. So:

* at most ``max_live`` streams per chain, busy or idle. A new stream past that first
  evicts the oldest idle one; with none idle it is refused (the client gets -32008);
* at most ``max_idle`` idle streams per chain: past that the oldest idle is torn down;
* at most ``max_idle_per_client`` idle streams per client, counted against the client
  whose leaving made them idle: past that that client's oldest idle is torn down.

:class:`UpstreamBudget` only decides; the shell tears down what it returns, at once.
Streams and clients are any hashable objects (the shell uses its own objects).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

import msgspec

__all__ = ["BudgetStatistics", "Refused", "UpstreamBudget"]

S = TypeVar("S", bound=Hashable)


class Refused(Exception):
    """Every stream of the chain is in use and the chain is at ``max_live``."""


class BudgetStatistics(msgspec.Struct, frozen=True):
    live: int
    idle: int
    evicted: int
    refused: int


class UpstreamBudget(Generic[S]):
    """One chain's streams; see the module docstring."""

    def __init__(self, *, max_live: int, max_idle: int, max_idle_per_client: int) -> None:
        if max_live < 1 or max_idle < 0 or max_idle_per_client < 0:
            raise ValueError("max_live must be positive, the idle bounds non-negative")
        self.max_live = max_live
        self.max_idle = max_idle
        self.max_idle_per_client = max_idle_per_client
        self._live: set[S] = set()
        self._idle: dict[S, Hashable | None] = {}  # stream -> the client that left it; oldest first
        self._evicted = 0
        self._refused = 0

    def admit(self, stream: S) -> list[S]:
        """A new stream: the idle streams to tear down first. Raises :class:`Refused`."""
        evict: list[S] = []
        if len(self._live) >= self.max_live:
            if not self._idle:
                self._refused += 1
                raise Refused(f"at most {self.max_live} upstream subscriptions per chain")
            evict.append(self._evict_oldest())
        self._live.add(stream)
        return evict

    def idle(self, stream: S, client: Hashable | None) -> list[S]:
        """``stream``'s last client (``client``, if known) left: what to tear down now."""
        if stream not in self._live:
            return []  # already gone
        self._idle.pop(stream, None)
        self._idle[stream] = client
        evict: list[S] = []
        if client is not None:
            mine = [s for s, c in self._idle.items() if c == client]
            evict += mine[: max(0, len(mine) - self.max_idle_per_client)]
            for s in evict:
                self._drop(s)
            self._evicted += len(evict)
        while len(self._idle) > self.max_idle:
            evict.append(self._evict_oldest())
        return evict

    def busy(self, stream: S) -> None:
        """A client joined ``stream``: it is no longer idle."""
        self._idle.pop(stream, None)

    def gone(self, stream: S) -> None:
        """``stream`` ended (grace over, eviction, or failure). Idempotent."""
        self._drop(stream)

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(len(self._live), len(self._idle), self._evicted, self._refused)

    def _evict_oldest(self) -> S:
        oldest = next(iter(self._idle))
        self._drop(oldest)
        self._evicted += 1
        return oldest

    def _drop(self, stream: S) -> None:
        self._live.discard(stream)
        self._idle.pop(stream, None)
