"""What the newHeads stream answers: a verdict, what to deliver, what to fetch.

The stream's states and their transitions are in :mod:`lasso.core.subs.heads`.

:class:`Outcome` collects what one call to the stream did (several heads may arrive in
one backfill batch) and folds it into one :class:`HeadDecision`.
"""

from __future__ import annotations

import enum

import msgspec

from lasso.core.subs.items import Delivery, TooFar

__all__ = ["HeadDecision", "HeadStreamStatistics", "HeadVerdict", "Outcome", "StreamState"]


class StreamState(enum.Enum):
    EMPTY = "empty"  # nothing delivered yet
    LIVE = "live"  # the delivered chain ends at the tip; nothing held
    FILLING = "filling"  # heads held until the blocks linking them to the tip are fetched


class HeadVerdict(enum.Enum):
    DELIVER = "deliver"  # `deliver` extends the chain
    DUPLICATE = "duplicate"  # already delivered (or already held)
    STALE = "stale"  # dropped: malformed, older than the window, orphaned, off-chain
    GAP = "gap"  # heads are missing below the held head: fetch `fetch`
    REORG = "reorg"  # delivered heads were replaced (`orphaned`), or fetch to find the fork
    TOO_FAR = "too_far"  # cannot be filled: `too_far` says what; tell clients and reset()


class HeadDecision(msgspec.Struct, frozen=True):
    verdict: HeadVerdict
    deliver: tuple[Delivery, ...] = ()  # send now, in this order
    fetch: range | None = None  # fetch these numbers (getBlockByNumber, false); offer_backfill
    orphaned: tuple[str, ...] = ()  # delivered hashes no longer canonical, ascending
    fork_point: int | None = None  # lowest replaced number, once a reorg is resolved
    too_far: TooFar | None = None
    reason: str = ""


class HeadStreamStatistics(msgspec.Struct, frozen=True):
    state: StreamState
    tip: int | None
    oldest: int | None
    held: int
    delivered: int
    duplicates: int
    stale: int
    gaps: int
    reorgs: int
    orphaned: int
    too_far: int


class Outcome:
    """What one call did, folded into one decision."""

    def __init__(self) -> None:
        self.deliver: list[Delivery] = []
        self.orphaned: list[str] = []
        self.fork_point: int | None = None
        self.fetch: range | None = None
        self.fetch_verdict = HeadVerdict.GAP
        self.too_far: TooFar | None = None
        self.duplicates = 0
        self.held = 0
        self.live = True
        self.reasons: list[str] = []

    def decision(self) -> HeadDecision:
        reason = "; ".join(dict.fromkeys(self.reasons))
        if self.too_far is not None:
            verdict = HeadVerdict.TOO_FAR
            reason = reason or self.too_far.message
        elif self.orphaned:
            verdict = HeadVerdict.REORG
        elif self.deliver:
            verdict = HeadVerdict.DELIVER
        elif self.fetch is not None and (self.held or not self.live):
            verdict = self.fetch_verdict
        elif self.duplicates and not self.reasons:
            verdict = HeadVerdict.DUPLICATE
        else:
            verdict = HeadVerdict.STALE
            reason = reason or "nothing to deliver"
        return HeadDecision(
            verdict,
            tuple(self.deliver),
            self.fetch,
            tuple(self.orphaned),
            self.fork_point,
            self.too_far,
            reason,
        )
