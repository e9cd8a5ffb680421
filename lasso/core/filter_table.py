"""The gateway's stateful filters (``eth_newFilter`` and kin): ids, buffers, bounds, expiry.

Theory of operation. A node keeps a filter's changes between two polls; Lasso serves
filters itself so that a poll never lands on a node that has not heard of the filter.
:class:`FilterTable` is the whole state, pure (time and randomness are arguments):

    install     a new filter of a kind on a *feed* (a hashable key the shell picks: one
                shared upstream stream, e.g. (chain, canonical logs key)); refused with
                :class:`LimitReached` past ``max_per_client`` (per remote address) or
                ``max_total``. Says whether the feed is new (the shell must start it)
    deliver     changes from a feed, in order; each is offered once per feed (a
                :class:`Change` whose ``key`` was already delivered in the same state is
                a duplicate: the same block fed twice, or a backfill overlapping live
                items), then appended to each filter of the feed whose block span
                admits it. A filter whose buffer passes ``max_buffered`` is dropped:
                its next poll is "filter not found", never a silent gap
    poll        takes the buffered changes and restarts the idle clock
    expire      filters not polled for ``idle_s`` are dropped (as nodes do); a poll of
                an expired filter finds nothing even before a sweep ran
    uninstall   drops one filter; ``drop_feed`` drops every filter of a feed that broke

Every operation that can leave a feed without filters returns the feeds to release,
so the shell stops the upstream work nobody reads any more.
"""

from __future__ import annotations

import enum
import random
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Final

import msgspec

__all__ = [
    "Change",
    "FilterKind",
    "FilterLimits",
    "FilterTable",
    "FilterTableStatistics",
    "LimitReached",
    "Polled",
    "encode_filter_id",
]

#: Per feed: how many delivered change keys are remembered to drop duplicates.
DEDUPE_WINDOW: Final = 16_384


class FilterKind(enum.Enum):
    BLOCKS = "block"
    LOGS = "logs"
    PENDING = "pending"


class FilterLimits(msgspec.Struct, frozen=True):
    """``[filters]``, read by the shell from the current settings at each call."""

    idle_s: float = 300.0
    max_per_client: int = 64
    max_total: int = 10_000
    max_buffered: int = 10_000


class LimitReached(Exception):
    """A new filter would pass ``max_per_client`` or ``max_total``."""


class Change(msgspec.Struct, frozen=True):
    """One change a feed delivers: a block hash, a log, a transaction hash.

    ``key`` names it for dedupe (a block or transaction hash; a log's (blockHash,
    logIndex)); ``state`` tells a log from its ``removed: true`` re-send, which is a new
    change; ``number`` is the block number a filter's fromBlock/toBlock is checked
    against (None: any); ``item`` is what the poll returns.
    """

    key: Hashable
    item: Any
    number: int | None = None
    state: bool = False


class Polled(msgspec.Struct, frozen=True):
    """A poll's answer: the filter's kind and changes, or not found."""

    found: bool
    kind: FilterKind | None = None
    changes: tuple[Any, ...] = ()


class FilterTableStatistics(msgspec.Struct, frozen=True):
    filters: int
    feeds: int
    clients: int
    expired: int
    overflowed: int
    refused: int


class _Filter:
    __slots__ = (
        "changes", "client", "criteria", "feed", "fid", "first", "kind", "last", "polled_at",
    )  # fmt: skip

    def __init__(
        self,
        fid: str,
        kind: FilterKind,
        feed: Hashable,
        client: Hashable,
        now: float,
        span: tuple[int | None, int | None],
        criteria: Any,
    ) -> None:
        self.fid = fid
        self.criteria = criteria
        self.kind = kind
        self.feed = feed
        self.client = client
        self.polled_at = now
        self.first, self.last = span
        self.changes: list[Any] = []

    def admits(self, number: int | None) -> bool:
        if number is None:
            return True
        if self.first is not None and number < self.first:
            return False
        return self.last is None or number <= self.last


class _Feed:
    __slots__ = ("filters", "seen")

    def __init__(self) -> None:
        self.filters: dict[str, _Filter] = {}
        self.seen: OrderedDict[Hashable, bool] = OrderedDict()

    def fresh(self, change: Change) -> bool:
        """Not delivered before in this state (and now remembered as delivered)."""
        if self.seen.get(change.key, not change.state) is change.state:
            return False
        self.seen[change.key] = change.state
        self.seen.move_to_end(change.key)
        if len(self.seen) > DEDUPE_WINDOW:
            self.seen.popitem(last=False)
        return True


def encode_filter_id(value: int) -> str:
    """geth's ``rpc.NewID`` text for 16 random bytes: ``0x`` and the hex, leading zeros
    trimmed (``0x0`` for all zeros)."""
    return "0x" + (format(value, "032x").lstrip("0") or "0")


class FilterTable:
    """Every filter the gateway serves; see the module docstring."""

    def __init__(self) -> None:
        self._filters: OrderedDict[str, _Filter] = OrderedDict()  # least recently polled first
        self._feeds: dict[Hashable, _Feed] = {}
        self._per_client: dict[Hashable, int] = {}
        self._expired = 0
        self._overflowed = 0
        self._refused = 0

    def __len__(self) -> int:
        return len(self._filters)

    def install(
        self,
        kind: FilterKind,
        feed: Hashable,
        client: Hashable,
        now: float,
        limits: FilterLimits,
        rng: random.Random,
        span: tuple[int | None, int | None] = (None, None),
        criteria: Any = None,
    ) -> tuple[str, bool]:
        """A new filter's id, and whether its feed is new. Raises :class:`LimitReached`.

        ``span``: the (fromBlock, toBlock) numbers its changes must lie in (None: no
        bound); ``criteria``: what :meth:`criteria` gives back (a log filter's query)."""
        if len(self._filters) >= limits.max_total:
            self._refused += 1
            raise LimitReached(f"filter limit reached: at most {limits.max_total} filters")
        if self._per_client.get(client, 0) >= limits.max_per_client:
            self._refused += 1
            raise LimitReached(
                f"filter limit reached: at most {limits.max_per_client} filters per client"
            )
        fid = encode_filter_id(rng.getrandbits(128))
        while fid in self._filters:
            fid = encode_filter_id(rng.getrandbits(128))
        entry = _Filter(fid, kind, feed, client, now, span, criteria)
        self._filters[fid] = entry
        self._per_client[client] = self._per_client.get(client, 0) + 1
        state = self._feeds.get(feed)
        new = state is None
        if state is None:
            state = self._feeds[feed] = _Feed()
        state.filters[fid] = entry
        return fid, new

    def feed_of(self, fid: str, now: float, idle_s: float) -> Hashable | None:
        """A live filter's feed (None: no such filter)."""
        entry = self._filters.get(fid)
        if entry is None or now - entry.polled_at >= idle_s:
            return None
        return entry.feed

    def criteria(self, fid: str, now: float, idle_s: float) -> Any:
        """A live log filter's criteria (None: no such log filter). As in geth, this is
        not a poll: the idle clock keeps running."""
        entry = self._filters.get(fid)
        if entry is None or entry.kind is not FilterKind.LOGS or now - entry.polled_at >= idle_s:
            return None
        return entry.criteria

    def poll(self, fid: str, now: float, idle_s: float) -> Polled:
        """Take ``fid``'s buffered changes and restart its idle clock."""
        entry = self._filters.get(fid)
        if entry is None or now - entry.polled_at >= idle_s:
            return Polled(found=False)
        changes = tuple(entry.changes)
        entry.changes.clear()
        entry.polled_at = now
        self._filters.move_to_end(fid)
        return Polled(found=True, kind=entry.kind, changes=changes)

    def uninstall(self, fid: str) -> tuple[bool, list[Hashable]]:
        """Whether ``fid`` existed, and the feeds left without filters."""
        entry = self._filters.get(fid)
        if entry is None:
            return False, []
        return True, self._remove(entry)

    def expire(self, now: float, idle_s: float) -> list[Hashable]:
        """Drop the filters not polled for ``idle_s``; the feeds left without filters."""
        released: list[Hashable] = []
        while self._filters:
            entry = next(iter(self._filters.values()))
            if now - entry.polled_at < idle_s:
                break
            self._expired += 1
            released += self._remove(entry)
        return released

    def deliver(
        self, feed: Hashable, changes: Iterable[Change], max_buffered: int
    ) -> list[Hashable]:
        """Buffer ``changes`` for ``feed``'s filters; the feeds left without filters (a
        filter that passed ``max_buffered`` is dropped)."""
        state = self._feeds.get(feed)
        if state is None:
            return []
        fresh = [c for c in changes if state.fresh(c)]
        overflowed: list[_Filter] = []
        for entry in state.filters.values():
            entry.changes += [c.item for c in fresh if entry.admits(c.number)]
            if len(entry.changes) > max_buffered:
                overflowed.append(entry)
        released: list[Hashable] = []
        for entry in overflowed:
            self._overflowed += 1
            released += self._remove(entry)
        return released

    def drop_feed(self, feed: Hashable) -> list[Hashable]:
        """``feed`` broke (it could not stay gap-free): every filter on it is dropped."""
        state = self._feeds.get(feed)
        if state is None:
            return []
        released: list[Hashable] = []
        for entry in list(state.filters.values()):
            released += self._remove(entry)
        return released

    def feeds(self) -> Sequence[Hashable]:
        return list(self._feeds)

    def filters_of(self, feed: Hashable) -> int:
        state = self._feeds.get(feed)
        return 0 if state is None else len(state.filters)

    def statistics(self) -> FilterTableStatistics:
        return FilterTableStatistics(
            filters=len(self._filters),
            feeds=len(self._feeds),
            clients=len(self._per_client),
            expired=self._expired,
            overflowed=self._overflowed,
            refused=self._refused,
        )

    def _remove(self, entry: _Filter) -> list[Hashable]:
        del self._filters[entry.fid]
        count = self._per_client[entry.client] - 1
        if count:
            self._per_client[entry.client] = count
        else:
            del self._per_client[entry.client]
        state = self._feeds[entry.feed]
        del state.filters[entry.fid]
        if state.filters:
            return []
        del self._feeds[entry.feed]
        return [entry.feed]
