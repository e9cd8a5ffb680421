"""newHeads: one chain's delivered heads, in order, gap-free, duplicate-free, reorg-aware.

A :class:`HeadStream` sits behind one shared upstream newHeads subscription. The
subscription hub keeps one per newHeads stream: one per chain for the clients that
let Lasso choose the provider, and one more per provider that clients pin (a provider
override). The shell feeds it every live head
(:meth:`HeadStream.offer`) and every block it fetched on the stream's behalf
(:meth:`HeadStream.offer_backfill`, raw ``eth_getBlockByNumber(n, false)`` results:
the stream shapes them like the live heads), and carries out each
:class:`HeadDecision`: fan ``deliver`` out in order, pass ``orphaned`` to the chain's
log streams, and if ``fetch`` is set, fetch those block numbers and offer them back.
Run that loop serially (finish a fetch before offering the next live head) and a
stream never asks for the same blocks twice.

How a reorg is presented: the replacement heads of the new branch are delivered in
order, from the fork point up, each as an ordinary newHeads notification. A client sees
the old branch's heads followed by heads whose numbers go back down to the fork point
(so a number can appear twice, with different hashes), exactly as geth presents a
reorg; the decision's ``orphaned`` lists the replaced hashes (for ``removed: true`` logs).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any, Final, NamedTuple

from lasso.core.subs.head_decisions import (
    HeadDecision,
    HeadStreamStatistics,
    HeadVerdict,
    Outcome,
    StreamState,
)
from lasso.core.subs.items import (
    DEFAULT_MAX_BACKFILL,
    DEFAULT_WINDOW,
    Delivery,
    TooFar,
    backfill_window,
    hex_quantity,
    parse_quantity,
)
from lasso.core.subs.resume import ResumePlan, ResumeRejected
from lasso.core.subs.shape import HeadShape

__all__ = [
    "HeadDecision",
    "HeadStream",
    "HeadStreamError",
    "HeadStreamStatistics",
    "HeadVerdict",
    "StreamState",
]

REORG_PROBE: Final = 4  # blocks fetched per step while looking for a fork point
ORPHAN_MEMORY: Final = 1024  # recently orphaned hashes whose live echoes are dropped
MAX_FRUITLESS_FETCHES: Final = 3  # fetches in a row that bring nothing before giving up


class _Event(enum.Enum):
    ANCHOR = enum.auto()  # the first head (or a resume replay) starts the delivered chain
    HOLD = enum.auto()  # a head cannot be delivered yet: held
    LINK = enum.auto()  # held heads link to the delivered chain and are delivered
    DROP = enum.auto()  # the last held heads are dropped (too far, too deep, off-chain)
    RESET = enum.auto()  # forget everything


# Theory of operation
# -------------------
# The stream remembers the delivered chain: the tip and a window of the last `window`
# delivered heads (number -> head, contiguous up to the tip). A new head that is not
# already delivered is HELD (keyed by hash) and the stream tries to link the highest held
# head to the delivered chain by walking down its parent hashes through the held heads:
#   * the walk reaches the tip (parent == tip hash): the path is delivered (LINK). A head
#     one above the tip links at once, so an ordinary head is held and delivered in the
#     same call;
#   * it reaches a delivered head below the tip: a reorg with that fork point: the
#     delivered heads above it are orphaned and the path is delivered (LINK);
#   * it stops at a missing number above the tip: a GAP; fetch tip+1..that number;
#   * it stops at a number at or below the tip whose delivered hash is not the parent:
#     the fork is lower; fetch a few blocks below (REORG) and walk again.
# A fetched block for the very number the walk stopped at that still does not link means
# the held branch is not the provider's chain: it is dropped and the next highest held
# head is walked instead. Held heads are also dropped (DROP, nothing lost: a later head
# asks again) after MAX_FRUITLESS_FETCHES fetches in a row that bring nothing (a provider
# announcing blocks it cannot serve yet) and when more than window + max_backfill pile up.
# A gap over `max_backfill` blocks or a fork below the window gives up (DROP) with
# TOO_FAR: the shell tells the clients, `reset()`s and offers the head again.
# While the window has never been trimmed its lowest head may itself be replaced (nothing
# below it was ever delivered), so a young stream survives a reorg of its first head.
# Live echoes of heads this stream orphaned are dropped as stale, so a lagging provider
# cannot flip the clients back to a branch they have already seen replaced.
# A client's head never goes backwards: held heads all below the tip (a shorter branch, or
# a provider far behind or reset to genesis) are neither delivered nor fetched for; they
# wait until their branch reaches the tip (then the reorg is delivered, ending at or above
# the old tip) or are dropped with the other held heads. A reorg's replacement run may
# start below the tip (geth's presentation, from the fork point up) but never ends below it.
_TRANSITIONS: Final[dict[tuple[StreamState, _Event], StreamState]] = {
    (StreamState.EMPTY, _Event.ANCHOR): StreamState.LIVE,
    (StreamState.LIVE, _Event.HOLD): StreamState.FILLING,
    (StreamState.FILLING, _Event.HOLD): StreamState.FILLING,
    (StreamState.FILLING, _Event.LINK): StreamState.LIVE,
    (StreamState.FILLING, _Event.DROP): StreamState.LIVE,
    (StreamState.EMPTY, _Event.RESET): StreamState.EMPTY,
    (StreamState.LIVE, _Event.RESET): StreamState.EMPTY,
    (StreamState.FILLING, _Event.RESET): StreamState.EMPTY,
}


class HeadStreamError(RuntimeError):
    """Our own bug: an illegal transition or a misuse of the stream."""


class _Head(NamedTuple):
    number: int
    hash: str
    parent: str
    delivery: Delivery


class HeadStream:
    """The delivered newHeads chain of one chain; see the module docstring."""

    def __init__(
        self,
        *,
        window: int = DEFAULT_WINDOW,
        max_backfill: int = DEFAULT_MAX_BACKFILL,
        shape: HeadShape | None = None,
    ) -> None:
        if window < 2 or max_backfill < 1:
            raise ValueError("window must be at least 2 and max_backfill at least 1")
        self._window_size = window
        self._max_backfill = max_backfill
        self.shape = shape if shape is not None else HeadShape()
        self._state = StreamState.EMPTY
        self._window: dict[int, _Head] = {}
        self._oldest = self._tip = self._start = 0
        self._held: dict[str, _Head] = {}
        self._orphans: dict[str, None] = {}  # recently orphaned hashes, oldest first
        self._fruitless = 0
        self._stats = dict.fromkeys(
            ("delivered", "duplicates", "stale", "gaps", "reorgs", "orphaned", "too_far"), 0
        )

    # -- queries ---------------------------------------------------------------------

    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def tip(self) -> int | None:
        """The number of the last delivered head."""
        return None if self._state is StreamState.EMPTY else self._tip

    @property
    def cached_range(self) -> range:
        """Numbers whose delivered heads the window still holds (for resume plans)."""
        if self._state is StreamState.EMPTY:
            return range(0)
        return range(self._oldest, self._tip + 1)

    def delivered_between(self, numbers: range) -> tuple[Delivery, ...]:
        """The delivered heads at these numbers that the window still holds, in order."""
        return tuple(self._window[n].delivery for n in numbers if n in self._window)

    def backfill_range(self, provider_head: int, max_backfill: int | None = None) -> range | TooFar:
        """What a newly chosen provider (head ``provider_head``) must supply: tip+1.."""
        limit = self._max_backfill if max_backfill is None else max_backfill
        return backfill_window(self.tip, provider_head, limit)

    def statistics(self) -> HeadStreamStatistics:
        tip = self.tip
        return HeadStreamStatistics(
            state=self._state,
            tip=tip,
            oldest=None if tip is None else self._oldest,
            held=len(self._held),
            **self._stats,
        )

    # -- input -----------------------------------------------------------------------

    def offer(self, head: dict[str, Any], raw: bytes | None = None) -> HeadDecision:
        """A live newHeads payload (``raw``: its bytes, delivered unchanged)."""
        parsed = _parse(head, Delivery(head, raw))
        if parsed is None:
            return self._malformed()
        self.shape.learn(head)
        return self._accept([parsed], live=True)

    def offer_backfill(self, blocks: Iterable[Mapping[str, Any]]) -> HeadDecision:
        """Blocks fetched for this stream (``eth_getBlockByNumber(n, false)`` results).

        Leave out blocks the provider did not have (``null``); the decision asks again.
        """
        heads: list[_Head] = []
        malformed = False
        for block in blocks:
            parsed = _parse(block, Delivery(self.shape.project(block)))
            malformed = malformed or parsed is None
            if parsed is not None:
                heads.append(parsed)
        if not heads and malformed:
            return self._malformed()
        return self._accept(heads, live=False)

    def anchor(self, blocks: Sequence[Mapping[str, Any]]) -> None:
        """Start an empty stream's delivered chain at these (already sent) blocks.

        Used after a resume replay. Only the linked run ending at the highest block is
        kept.
        """
        self._anchor([h for b in blocks if (h := _parse(b, Delivery(self.shape.project(b))))])

    def _anchor(self, heads: list[_Head]) -> None:
        if self._state is not StreamState.EMPTY:
            raise HeadStreamError(f"anchor() needs an empty stream, not {self._state.value}")
        if not heads:
            return
        run = [max(heads, key=lambda h: h.number)]
        by_hash = {h.hash: h for h in heads}
        while (below := by_hash.get(run[-1].parent)) is not None and (
            below.number == run[-1].number - 1
        ):
            run.append(below)
        self._window = {h.number: h for h in reversed(run)}
        self._start = self._oldest = run[-1].number
        self._tip = run[0].number
        self._evict()
        self._fire(_Event.ANCHOR)

    def replay(
        self, plan: ResumePlan, fetched: Sequence[Mapping[str, Any]]
    ) -> list[Delivery] | ResumeRejected:
        """A resuming client's replay: ``fetched`` (the blocks of ``plan.fetch``), then the
        window's heads for ``plan.cached``. An empty stream adopts the fetched blocks."""
        heads = sorted(
            (h for b in fetched if (h := _parse(b, Delivery(self.shape.project(b))))),
            key=lambda h: h.number,
        )
        if [h.number for h in heads] != list(plan.fetch):
            return ResumeRejected("the provider could not supply every block to replay")
        cached = [self._window[n] for n in plan.cached if n in self._window]
        if len(cached) != len(plan.cached):
            return ResumeRejected("the replay window moved on; resubscribe to retry")
        run = heads + cached
        if any(b.parent != a.hash for a, b in pairwise(run)):
            return ResumeRejected("the chain reorganised during the replay; resubscribe")
        if heads and not cached:
            if self._state is StreamState.EMPTY:
                self._anchor(heads)
            elif self._oldest > heads[-1].number + 1:
                return ResumeRejected("the live stream started past the replay; resubscribe")
        return [h.delivery for h in run]

    def reset(self) -> None:
        """Forget the delivered chain; the next head offered starts it again."""
        self._window.clear()
        self._held.clear()
        self._fruitless = 0
        self._fire(_Event.RESET)

    # -- the walk --------------------------------------------------------------------

    def _accept(self, heads: list[_Head], *, live: bool) -> HeadDecision:
        out = Outcome()
        out.live = live
        fetched: set[int] = set()
        for head in sorted(heads, key=lambda h: h.number):
            if not live:
                fetched.add(head.number)
            self._admit(head, live, out)
        self._settle(fetched, out)
        if not live:
            self._count_fruitless(out)
        return out.decision()

    def _count_fruitless(self, out: Outcome) -> None:
        # A provider that cannot serve the blocks it announced (a load-balanced backend a
        # block behind) must not keep the shell fetching forever: after a few fetches in a
        # row that bring nothing, the held heads are dropped. A later head asks again.
        if out.fetch is None or out.held or out.deliver:
            self._fruitless = 0
            return
        self._fruitless += 1
        if self._fruitless >= MAX_FRUITLESS_FETCHES:
            self._fruitless = 0
            self._held.clear()
            self._fire(_Event.DROP)
            out.reasons.append(f"the provider did not supply blocks {_span(out.fetch)}")
            out.fetch = None
            self._stats["stale"] += 1

    def _admit(self, head: _Head, live: bool, out: Outcome) -> None:
        if self._state is StreamState.EMPTY:
            self._window = {head.number: head}
            self._start = self._oldest = self._tip = head.number
            self._fire(_Event.ANCHOR)
            self._delivered([head], out)
            return
        known = self._window.get(head.number)
        if (known is not None and known.hash == head.hash) or head.hash in self._held:
            out.duplicates += 1
            self._stats["duplicates"] += 1
        elif live and head.hash in self._orphans:
            self._stale(out, "the head was orphaned by a reorg")
        elif head.number < self._lowest_replaceable():
            self._stale(out, f"the head is older than the {self._window_size}-block window")
        elif len(self._held) >= self._window_size + self._max_backfill:
            self._held.clear()
            self._fire(_Event.DROP)
            self._stale(out, "too many heads held; they were dropped")
        else:
            self._held[head.hash] = head
            out.held += 1
            self._fire(_Event.HOLD)

    def _settle(self, fetched: set[int], out: Outcome) -> None:
        while self._held:
            top = max(self._held.values(), key=lambda h: h.number)
            if top.number < self._tip:
                # A client's head never goes backwards: a branch below the delivered head
                # (a far-behind or reset provider, a shorter fork) waits until it passes it.
                self._stale(out, f"held below the delivered head {self._tip}")
                return
            path = [top]
            while True:
                cur = path[-1]
                below = cur.number - 1
                known = self._window.get(below)
                if below < self._oldest or (known is not None and known.hash == cur.parent):
                    self._link(path, out)
                    return
                parent = self._held.get(cur.parent)
                if parent is None or parent.number != below:
                    break
                path.append(parent)
            if below in fetched:  # the provider's block `below` is not this branch's parent
                for head in path:
                    del self._held[head.hash]
                self._stale(out, "held heads are not on the provider's chain")
                continue
            self._need(top, below, known, out)
            return
        if self._state is StreamState.FILLING:
            self._fire(_Event.DROP)

    def _need(self, top: _Head, below: int, known: _Head | None, out: Outcome) -> None:
        if known is None:  # `below` is above the tip: a gap
            if top.number - 1 - self._tip > self._max_backfill:
                self._give_up(TooFar(self._tip + 1, top.number - 1, self._max_backfill), out)
                return
            if below <= self._tip:
                raise HeadStreamError(f"empty gap fetch below {below}, tip {self._tip}")
            out.fetch, out.fetch_verdict = range(self._tip + 1, below + 1), HeadVerdict.GAP
            self._stats["gaps"] += 1
            return
        lowest = self._lowest_replaceable()
        if below < lowest:  # the fork is below the window: nothing left to compare with
            self._give_up(TooFar(below, self._tip, self._window_size, reorg=True), out)
            return
        out.fetch = range(max(lowest, below - REORG_PROBE + 1), below + 1)
        out.fetch_verdict = HeadVerdict.REORG

    def _link(self, path: list[_Head], out: Outcome) -> None:
        fork = path[-1].number
        replaced = [self._window.pop(n) for n in range(fork, self._tip + 1)]
        for head in reversed(path):
            self._window[head.number] = head
        self._tip = path[0].number
        self._held.clear()
        self._fire(_Event.LINK)
        if replaced:
            out.orphaned.extend(h.hash for h in replaced)
            out.fork_point = fork
            self._stats["reorgs"] += 1
            self._stats["orphaned"] += len(replaced)
            self._remember_orphans(replaced)
        self._delivered(reversed(path), out)
        self._evict()

    def _give_up(self, too_far: TooFar, out: Outcome) -> None:
        self._held.clear()
        self._fire(_Event.DROP)
        out.too_far = too_far
        self._stats["too_far"] += 1

    # -- bookkeeping -----------------------------------------------------------------

    def _lowest_replaceable(self) -> int:
        # Below the oldest delivered head nothing can be checked. The oldest itself may
        # be replaced only while the window was never trimmed (nothing older was sent).
        return self._oldest if self._oldest == self._start else self._oldest + 1

    def _delivered(self, heads: Iterable[_Head], out: Outcome) -> None:
        for head in heads:
            out.deliver.append(head.delivery)
            self._stats["delivered"] += 1

    def _evict(self) -> None:
        while self._tip - self._oldest + 1 > self._window_size:
            del self._window[self._oldest]
            self._oldest += 1

    def _remember_orphans(self, heads: list[_Head]) -> None:
        for head in heads:
            self._orphans[head.hash] = None
        while len(self._orphans) > ORPHAN_MEMORY:
            del self._orphans[next(iter(self._orphans))]

    def _stale(self, out: Outcome, reason: str) -> None:
        out.reasons.append(reason)
        self._stats["stale"] += 1

    def _malformed(self) -> HeadDecision:
        self._stats["stale"] += 1
        reason = "malformed head: it needs number, hash and parentHash"
        return HeadDecision(HeadVerdict.STALE, reason=reason)

    def _fire(self, event: _Event) -> None:
        try:
            self._state = _TRANSITIONS[(self._state, event)]
        except KeyError:
            message = f"no transition from {self._state.value} on {event.name}"
            raise HeadStreamError(message) from None


def _span(numbers: range) -> str:
    return f"{hex_quantity(numbers.start)}..{hex_quantity(numbers.stop - 1)}"


def _parse(payload: Mapping[str, Any], delivery: Delivery) -> _Head | None:
    number = parse_quantity(payload.get("number"))
    block_hash, parent = payload.get("hash"), payload.get("parentHash")
    if number is None or not isinstance(block_hash, str) or not isinstance(parent, str):
        return None
    return _Head(number, block_hash.lower(), parent.lower(), delivery)
