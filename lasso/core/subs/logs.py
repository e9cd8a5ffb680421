"""logs: one filter's delivered logs, duplicate-free, complete across failover and reorgs.

One :class:`LogStream` per (chain, canonical filter key) sits behind the upstream logs
subscription. The shell feeds it every live log (:meth:`LogStream.offer`) and every
``eth_getLogs`` result it fetched for the stream (:meth:`LogStream.accept_backfill`),
and fans out the returned deliveries in order.

Theory of operation
-------------------
* Dedupe is by ``(blockHash, logIndex)`` over a window of recent blocks (``window``
  block numbers below the highest seen; older logs are dropped as stale, since they
  could no longer be recognised as duplicates).
* Order: live logs go out as they arrive (a node emits them in ``(blockNumber,
  logIndex)`` order); a backfill batch is sorted by ``(blockNumber, logIndex)``.
* Completeness: ``last_complete`` is the last block whose logs have all been delivered.
  ``anchor(n)`` sets it when the upstream subscription starts (subscribe first, then
  read the provider's head n, so nothing falls between); a new live log of block n
  makes it n-1: every block below n is complete (a node emits blocks in order), block n
  may have more logs to come, and blocks above n that were counted complete were counted
  on another branch (the log's block replaced them) or while n's logs were still in
  flight; a backfill completes its range. On failover :meth:`backfill_range` names the
  blocks the new provider must supply (``last_complete+1 ..`` its head, at most
  ``max_backfill``, else :class:`TooFar`). The shell runs the backfill before it offers
  live logs from the new subscription (a serial consumer does this naturally);
  duplicates are dropped.
* Completeness is by block number, but a number names a block only on one branch. A
  block whose logs were delivered is known by hash: its replacement is announced (see
  Reorgs). A block completed without logs (by a backfill, :meth:`advance` or a later
  block's log) is known by number only, and a reorg that replaces only such blocks sends
  no removals at all. So the failover backfill also re-reads the completed blocks above
  the highest delivered block (never below the first covered block or the window, and
  never making the range longer than ``max_backfill``; only the blocks after
  ``last_complete`` count towards :class:`TooFar`). Re-reading is safe: duplicates are
  dropped, and the re-read blocks hold no delivered logs that the answer could remove.
* Reorgs: a block can only be un-delivered by re-sending its delivered logs with
  ``removed: true``, once, in ``(blockNumber, logIndex)`` order. That happens when

  - the heads stream reports orphaned hashes: :meth:`orphan` (then backfill from the
    fork point: :meth:`orphan` rewinds ``last_complete`` so :meth:`backfill_range`
    covers the new branch);
  - upstream sends a ``removed: true`` log: every delivered log of that block is removed
    (later upstream removals of the same block are duplicates);
  - a log arrives for a block number at which another block's logs were delivered: a
    number has one canonical block, so the older one is removed first;
  - a backfill (the complete ``eth_getLogs`` answer for its range) lacks a block whose
    logs were delivered inside that range: that block is no longer canonical.

  A removed block whose logs arrive again (the chain switched back) is delivered afresh.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import msgspec

from lasso.core.subs.filters import LogFilter, log_matches
from lasso.core.subs.items import (
    DEFAULT_MAX_BACKFILL,
    DEFAULT_WINDOW,
    Delivery,
    TooFar,
    backfill_window,
    parse_quantity,
)
from lasso.core.subs.resume import ResumePlan, ResumeRejected

__all__ = ["LogDecision", "LogStream", "LogStreamStatistics", "LogVerdict"]


class LogVerdict(enum.Enum):
    DELIVER = "deliver"  # new logs
    REMOVED = "removed"  # `deliver` starts with removed: true re-sends (then any new logs)
    DUPLICATE = "duplicate"  # already delivered (or already removed)
    STALE = "stale"  # dropped: malformed, not matching, older than the window, unknown


class LogDecision(msgspec.Struct, frozen=True):
    verdict: LogVerdict
    deliver: tuple[Delivery, ...] = ()  # send now, in this order
    reason: str = ""


class LogStreamStatistics(msgspec.Struct, frozen=True):
    last_complete: int | None
    blocks: int
    delivered: int
    removed: int
    duplicates: int
    stale: int


class _Log(NamedTuple):
    block_hash: str
    number: int
    log_index: int
    removed: bool
    payload: dict[str, Any]
    raw: bytes | None


class _Block:
    __slots__ = ("logs", "number", "removed")

    def __init__(self, number: int) -> None:
        self.number = number
        self.logs: dict[int, Delivery] = {}
        self.removed = False


class LogStream:
    """The delivered logs of one filter; see the module docstring."""

    def __init__(
        self,
        log_filter: LogFilter | None = None,
        *,
        window: int = DEFAULT_WINDOW,
        max_backfill: int = DEFAULT_MAX_BACKFILL,
    ) -> None:
        self._filter = log_filter
        self._window = window
        self._max_backfill = max_backfill
        self._blocks: dict[str, _Block] = {}
        self._by_number: dict[int, list[str]] = {}
        self._highest: int | None = None
        self._floor = -1  # blocks at or below are forgotten
        self._last_complete: int | None = None
        self._covered_from: int | None = None  # every log from here on went through us
        self._stats = dict.fromkeys(("delivered", "removed", "duplicates", "stale"), 0)

    # -- queries ---------------------------------------------------------------------

    @property
    def last_complete(self) -> int | None:
        return self._last_complete

    @property
    def cached_range(self) -> range:
        """Blocks whose logs are all in the window (for resume plans)."""
        if self._last_complete is None or self._covered_from is None:
            return range(0)
        return range(max(self._covered_from, self._floor + 1), self._last_complete + 1)

    def delivered_between(self, numbers: range) -> tuple[Delivery, ...]:
        """The delivered (not removed) logs of these blocks, in order."""
        found = [
            (block.number, index, delivery)
            for block in self._blocks.values()
            if block.number in numbers and not block.removed
            for index, delivery in block.logs.items()
        ]
        return tuple(d for _, _, d in sorted(found, key=lambda t: (t[0], t[1])))

    def backfill_range(self, provider_head: int, max_backfill: int | None = None) -> range | TooFar:
        """The ``eth_getLogs`` range a newly chosen provider must supply."""
        limit = self._max_backfill if max_backfill is None else max_backfill
        reread = self._known_by_number_from()  # blocks completed by number alone
        return backfill_window(self._last_complete, provider_head, limit, reread_from=reread)

    def statistics(self) -> LogStreamStatistics:
        return LogStreamStatistics(self._last_complete, len(self._blocks), **self._stats)

    # -- input -----------------------------------------------------------------------

    def anchor(self, block: int) -> None:
        """Every log at or below ``block`` is accounted for (the upstream head at start)."""
        self._last_complete = block if self._last_complete is None else self._last_complete
        self._covered_from = block + 1 if self._covered_from is None else self._covered_from

    def advance(self, block: int) -> None:
        """Every log at or below ``block`` is accounted for, though none may have matched.

        The shell calls it while the upstream subscription is live and healthy (with a
        block of margin), so that a quiet filter's completeness keeps up with the chain,
        and after a too-far gap was reported, to start counting again from the head.
        """
        if self._last_complete is None:
            self.anchor(block)
        else:
            self._complete(block)

    @property
    def highest_delivered(self) -> int | None:
        """The highest block any delivered log came from (its logs may still be arriving)."""
        return self._highest

    def offer(self, log: dict[str, Any], raw: bytes | None = None) -> LogDecision:
        """A live log (``raw``: its bytes, delivered unchanged)."""
        parsed = self._parse(log, raw)
        if isinstance(parsed, str):
            return self._stale(parsed)
        if parsed.removed:
            return self._upstream_removal(parsed)
        out: list[Delivery] = []
        verdict = self._add(parsed, out)
        if verdict is LogVerdict.DUPLICATE or verdict is LogVerdict.STALE:
            return self._dropped(verdict)
        if self._last_complete is None:
            self._covered_from = parsed.number + 1
        self._last_complete = parsed.number - 1
        return LogDecision(verdict, tuple(out))

    def accept_backfill(self, blocks: range, logs: Iterable[dict[str, Any]]) -> LogDecision:
        """The complete ``eth_getLogs`` answer for ``blocks`` with this stream's filter."""
        if not blocks:
            return LogDecision(LogVerdict.DUPLICATE, reason="an empty backfill range")
        batch = [p for log in logs if not isinstance(p := self._parse(log, None), str)]
        batch = sorted(
            (p for p in batch if p.number in blocks and not p.removed),
            key=lambda p: (p.number, p.log_index),
        )
        out: list[Delivery] = []
        canonical = {p.block_hash for p in batch}
        gone = [h for h, b in self._blocks.items() if b.number in blocks and h not in canonical]
        removed = self._remove(gone, out)
        verdicts = {self._add(p, out) for p in batch}
        if self._covered_from is None and blocks:
            self._covered_from = blocks.start
        self._complete(blocks.stop - 1)
        if removed or LogVerdict.REMOVED in verdicts:
            return LogDecision(LogVerdict.REMOVED, tuple(out))
        if out:
            return LogDecision(LogVerdict.DELIVER, tuple(out))
        return LogDecision(LogVerdict.DUPLICATE, reason="nothing new in the backfill")

    def orphan(
        self, block_hashes: Iterable[str], fork_point: int | None = None
    ) -> tuple[Delivery, ...]:
        """``removed: true`` re-sends for the delivered logs of these now-orphaned blocks.

        ``fork_point`` (the heads stream's) rewinds ``last_complete`` so that
        :meth:`backfill_range` covers the new branch.
        """
        out: list[Delivery] = []
        hashes = [h.lower() for h in block_hashes]
        numbers = [self._blocks[h].number for h in hashes if h in self._blocks]
        self._remove(hashes, out)
        lowest = fork_point if fork_point is not None else min(numbers, default=None)
        if lowest is not None and self._last_complete is not None:
            self._last_complete = min(self._last_complete, lowest - 1)
        return tuple(out)

    def replay(
        self, plan: ResumePlan, fetched: Sequence[dict[str, Any]]
    ) -> list[Delivery] | ResumeRejected:
        """A resuming client's replay: ``fetched`` (``eth_getLogs`` over ``plan.fetch``),
        then the window's logs for ``plan.cached``. A stream that has delivered nothing
        yet records the fetched logs, so a later reorg removes them too."""
        if plan.cached and self.cached_range.start > plan.cached.start:
            return ResumeRejected("the replay window moved on; resubscribe to retry")
        batch = [p for log in fetched if not isinstance(p := self._parse(log, None), str)]
        batch = sorted(
            (p for p in batch if p.number in plan.fetch and not p.removed),
            key=lambda p: (p.number, p.log_index),
        )
        if self._stats["delivered"] == 0:
            ignored: list[Delivery] = []
            for p in batch:
                self._add(p, ignored)
        replayed = [Delivery(p.payload) for p in batch]
        return replayed + list(self.delivered_between(plan.cached))

    # -- bookkeeping -----------------------------------------------------------------

    def _parse(self, log: dict[str, Any], raw: bytes | None) -> _Log | str:
        block_hash = log.get("blockHash")
        number = parse_quantity(log.get("blockNumber"))
        index = parse_quantity(log.get("logIndex"))
        if not isinstance(block_hash, str) or number is None or index is None:
            return "malformed log: it needs blockHash, blockNumber and logIndex"
        if self._filter is not None and not log_matches(self._filter, log):
            return "the log does not match the subscription's filter"
        removed = log.get("removed") is True
        return _Log(block_hash.lower(), number, index, removed, log, raw)

    def _add(self, log: _Log, out: list[Delivery]) -> LogVerdict:
        if log.number <= self._floor:
            self._stats["stale"] += 1
            return LogVerdict.STALE
        block = self._blocks.get(log.block_hash)
        if block is not None and not block.removed and log.log_index in block.logs:
            self._stats["duplicates"] += 1
            return LogVerdict.DUPLICATE
        rivals = [h for h in self._by_number.get(log.number, ()) if h != log.block_hash]
        removed = self._remove(rivals, out)
        if block is None:
            block = self._blocks[log.block_hash] = _Block(log.number)
            self._by_number.setdefault(log.number, []).append(log.block_hash)
        elif block.removed:  # the chain switched back to this block: deliver it afresh
            block.removed = False
        delivery = Delivery(log.payload, log.raw)
        block.logs[log.log_index] = delivery
        out.append(delivery)
        self._stats["delivered"] += 1
        self._raise_highest(log.number)
        return LogVerdict.REMOVED if removed else LogVerdict.DELIVER

    def _remove(self, block_hashes: Iterable[str], out: list[Delivery]) -> int:
        blocks = [
            b for h in dict.fromkeys(block_hashes) if (b := self._blocks.get(h)) and not b.removed
        ]
        count = 0
        for block in sorted(blocks, key=lambda b: b.number):
            for index in sorted(block.logs):
                payload = dict(block.logs[index].payload)
                payload["removed"] = True
                out.append(Delivery(payload))
                count += 1
            block.logs.clear()
            block.removed = True
        self._stats["removed"] += count
        return count

    def _upstream_removal(self, log: _Log) -> LogDecision:
        block = self._blocks.get(log.block_hash)
        if block is None:
            return self._stale("removal of a log that was never delivered")
        if block.removed:
            self._stats["duplicates"] += 1
            return self._dropped(LogVerdict.DUPLICATE)
        out: list[Delivery] = []
        self._remove([log.block_hash], out)
        if self._last_complete is not None:
            self._last_complete = min(self._last_complete, log.number - 1)
        return LogDecision(LogVerdict.REMOVED, tuple(out))

    def _known_by_number_from(self) -> int:
        """The lowest block whose completeness rests on its number alone: the first
        above the highest delivered (not removed) block that is covered and remembered."""
        delivered = (b.number for b in self._blocks.values() if not b.removed)
        after = max(delivered, default=-1) + 1
        return max(after, self._covered_from or 0, self._floor + 1)

    def _complete(self, number: int) -> None:
        if self._last_complete is None or number > self._last_complete:
            self._last_complete = number

    def _raise_highest(self, number: int) -> None:
        if self._highest is not None and number <= self._highest:
            return
        self._highest = number
        floor = number - self._window
        if floor <= self._floor:
            return
        if floor - self._floor > len(self._by_number):
            doomed = [n for n in self._by_number if n <= floor]
        else:
            doomed = [n for n in range(self._floor + 1, floor + 1) if n in self._by_number]
        for n in doomed:
            for block_hash in self._by_number.pop(n):
                del self._blocks[block_hash]
        self._floor = floor

    def _dropped(self, verdict: LogVerdict) -> LogDecision:
        reason = "already delivered" if verdict is LogVerdict.DUPLICATE else "older than window"
        return LogDecision(verdict, reason=reason)

    def _stale(self, reason: str) -> LogDecision:
        self._stats["stale"] += 1
        return LogDecision(LogVerdict.STALE, reason=reason)
