"""The response cache's entries: one byte-bounded LRU for the process, keyed per chain.

Synchronous and I/O-free (the trio shell is :mod:`lasso.cache.service`). A key is
``(chain, canonical request bytes)``; a value is the raw ``result`` bytes, never
re-encoded. An entry's size is its key and value lengths plus :data:`OVERHEAD` (the
dict slot, the entry object), so ``max_bytes`` bounds the memory held, roughly.

Validity is checked at lookup: a ``TTL`` entry past its expiry, and a ``HEAD`` entry
made before the chain's latest new block (its ``epoch``), are evicted there. A new
block also evicts the chain's ``HEAD`` entries at once (:meth:`CacheStore.new_block`),
and a reorg every entry about a replaced block (:meth:`CacheStore.reorg`).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable

import msgspec

from lasso.core.cache_policy import Keep, Tier
from lasso.core.reorg_ledger import Reorg

__all__ = ["OVERHEAD", "CacheStatistics", "CacheStore", "Entry", "MethodCounts"]

#: Bytes counted per entry beyond its key and value.
OVERHEAD = 200


class Entry:
    __slots__ = ("epoch", "expires", "keep", "method", "size", "value")

    def __init__(
        self, method: str, value: bytes, keep: Keep, epoch: int, expires: float | None, size: int
    ) -> None:
        self.method = method
        self.value = value
        self.keep = keep
        self.epoch = epoch  # the chain's new-block count when made (HEAD tier)
        self.expires = expires  # TTL tier
        self.size = size

    def about(self, reorg: Reorg, lowest: int) -> bool:
        keep = self.keep
        if keep.tier is Tier.HEAD:
            return True
        if keep.high is not None and keep.high >= lowest:
            return True
        return any(h in reorg.replaced for h in keep.hashes)


class MethodCounts(msgspec.Struct, frozen=True):
    chain: str
    method: str
    hits: int
    misses: int
    coalesced: int
    shared_hits: int
    stored: int
    evictions: int
    entries: int
    bytes: int


class CacheStatistics(msgspec.Struct, frozen=True):
    max_bytes: int
    bytes: int
    entries: int
    methods: tuple[MethodCounts, ...]


_COUNTERS = ("hits", "misses", "coalesced", "shared_hits", "stored", "evictions")

Key = tuple[str, bytes]


class CacheStore:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._counts: defaultdict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(_COUNTERS, 0)
        )
        self._held: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])

    def count(self, chain: str, method: str, what: str) -> None:
        self._counts[chain, method][what] += 1

    def get(self, key: Key, now: float, epoch: int) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if (entry.expires is not None and now >= entry.expires) or (
            entry.keep.tier is Tier.HEAD and entry.epoch != epoch
        ):
            self._drop(key, entry)
            return None
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: Key, method: str, value: bytes, keep: Keep, epoch: int, now: float) -> None:
        size = len(key[0]) + len(key[1]) + len(value) + OVERHEAD
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._forget(key[0], old)
        expires = None if keep.ttl_ms is None else now + keep.ttl_ms / 1000
        entry = Entry(method, value, keep, epoch, expires, size)
        self._entries[key] = entry
        self.bytes += size
        held = self._held[key[0], method]
        held[0] += 1
        held[1] += size
        self.count(key[0], method, "stored")
        self.resize(self.max_bytes)

    def resize(self, max_bytes: int) -> None:
        """Apply a (reloaded) bound: the least recently used entries go first."""
        self.max_bytes = max_bytes
        while self.bytes > self.max_bytes and self._entries:
            key, entry = next(iter(self._entries.items()))
            self._drop(key, entry)

    def new_block(self, chain: str) -> int:
        """The chain saw a new block: its ``HEAD`` entries are stale."""
        return self._evict(chain, lambda e: e.keep.tier is Tier.HEAD)

    def reorg(self, chain: str, reorg: Reorg, safe_depth: int) -> int:
        """Evict the chain's entries about the replaced blocks (and its ``HEAD`` ones)."""
        lowest = reorg.lowest(safe_depth)
        return self._evict(chain, lambda e: e.about(reorg, lowest))

    def _evict(self, chain: str, doomed: Callable[[Entry], bool]) -> int:
        gone = [(k, e) for k, e in self._entries.items() if k[0] == chain and doomed(e)]
        for key, entry in gone:
            self._drop(key, entry)
        return len(gone)

    def _drop(self, key: Key, entry: Entry) -> None:
        del self._entries[key]
        self._forget(key[0], entry)
        self.count(key[0], entry.method, "evictions")

    def _forget(self, chain: str, entry: Entry) -> None:
        self.bytes -= entry.size
        held = self._held[chain, entry.method]
        held[0] -= 1
        held[1] -= entry.size

    def statistics(self) -> CacheStatistics:
        keys = sorted(set(self._counts) | set(self._held))
        return CacheStatistics(
            max_bytes=self.max_bytes,
            bytes=self.bytes,
            entries=len(self._entries),
            methods=tuple(
                MethodCounts(
                    chain=chain,
                    method=method,
                    entries=self._held[chain, method][0] if (chain, method) in self._held else 0,
                    bytes=self._held[chain, method][1] if (chain, method) in self._held else 0,
                    **self._counts.get((chain, method), dict.fromkeys(_COUNTERS, 0)),
                )
                for chain, method in keys
            ),
        )
