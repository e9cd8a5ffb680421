"""The recent block hashes of one chain, as head reports name them: new blocks and reorgs.

Pure. Fed every head report of every provider (``number``, ``hash``, ``parent_hash``),
it remembers the last hash reported at each of the most recent ``window`` heights.

* A report naming a hash not yet recorded at its height (or its parent's) is a **new
  block**: ``HEAD``-tier cache entries (answers about ``latest``) are stale from then on.
* A report whose hash (or parent hash) differs from the one recorded at that height is
  a **reorg**: every block recorded from that height up was replaced. The report's
  :class:`Reorg` names the lowest height known replaced (``fork``) and the replaced
  hashes; the records from it up are dropped (they belonged to the old branch). It is
  ``confirmed`` when the report's parent agrees with the record (the fork is exactly the
  report's height); when the parent already differs, blocks below may be replaced too,
  and the caller assumes the reorg reaches down as far as its reorg-safe depth.

Two providers on different branches make every alternate report a "reorg": the cache
then evicts more than it must, never less (an eviction only costs a refetch).
"""

from __future__ import annotations

import msgspec

__all__ = ["Reorg", "ReorgLedger"]


class Reorg(msgspec.Struct, frozen=True):
    fork: int  # the lowest block number known replaced
    replaced: tuple[str, ...]  # the hashes no longer on the chain
    confirmed: bool = True  # False: blocks below ``fork`` may be replaced too

    def lowest(self, safe_depth: int) -> int:
        """The lowest block number to treat as replaced, reorgs deeper than
        ``safe_depth`` being ruled out."""
        return self.fork if self.confirmed else max(0, self.fork - safe_depth)


class ReorgLedger:
    __slots__ = ("_hashes", "_window", "new_blocks", "reorgs")

    def __init__(self, window: int = 256) -> None:
        if window < 2:
            raise ValueError("window must be >= 2")
        self._window = window
        self._hashes: dict[int, str] = {}
        #: Counters (bumped on each new block / reorg): a cache entry made while they
        #: were at one value is only stored if they still are (``lasso.cache``).
        self.new_blocks = 0
        self.reorgs = 0

    def observe(self, number: int, block_hash: str, parent_hash: str | None) -> Reorg | None:
        """Record one head report; a :class:`Reorg` if it replaced recorded blocks."""
        reports = [(number, block_hash.lower())]
        if parent_hash is not None and number > 0:
            reports.insert(0, (number - 1, parent_hash.lower()))
        fork: int | None = None
        new = False
        for height, seen in reports:
            old = self._hashes.get(height)
            if old is None:
                new = True
            elif old != seen and fork is None:
                fork = height
        reorg = None
        if fork is not None:
            # the parent's record agreeing pins the fork; a differing parent does not
            confirmed = fork == number and len(reports) == 2 and reports[0][0] in self._hashes
            reorg = self._replace(fork, confirmed)
        for height, seen in reports:
            self._hashes[height] = seen
        self._trim(number)
        if reorg is not None:
            self.reorgs += 1
            self.new_blocks += 1
        elif new:
            self.new_blocks += 1
        return reorg

    def _replace(self, fork: int, confirmed: bool) -> Reorg:
        replaced = tuple(h for n, h in sorted(self._hashes.items()) if n >= fork)
        for height in [n for n in self._hashes if n >= fork]:
            del self._hashes[height]
        return Reorg(fork=fork, replaced=replaced, confirmed=confirmed)

    def _trim(self, number: int) -> None:
        top = max(number, max(self._hashes, default=number))
        floor = top - self._window
        for height in [n for n in self._hashes if n <= floor]:
            del self._hashes[height]
