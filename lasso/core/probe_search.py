"""The searches behind ``lasso probe``: archival depth and the ``eth_getLogs`` range limit.

Theory of operation
-------------------
Each search is a small sans-IO state machine: the shell asks :meth:`next_probe` which
value to try, does the one call it names, and reports the outcome with :meth:`record`,
until :meth:`next_probe` returns None and the answer is read off. Nothing here awaits,
so every step of a search is a plain unit test.

Both searches rest on :class:`Bisect`, a binary search for the boundary of a monotone
predicate: the first ``x`` in ``(low, high]`` where it holds, given that it does not at
``low`` and does at ``high``.

- :class:`ArchivalSearch` finds the earliest block whose state a node serves. It tries
  the head first (a node that cannot serve its own head's state is not probed further),
  then block 1 (block 0 when the head is 0): served means "full" (archival). Otherwise
  it bisects ``(1, head]``. A pruned node keeps a window behind the head, so "served at
  ``b``" is monotone in ``b``.
- :class:`RangeLimitSearch` finds the widest ``eth_getLogs`` span (in blocks) a node
  accepts, up to ``bound``. It tries ``bound`` first: accepted means no limit up to the
  bound. A refusal that names its limit (``learned_range_limit``) is checked directly:
  a span of exactly that many blocks accepted settles it. Otherwise it bisects for the
  first refused span; the limit is one less.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ArchivalSearch", "Bisect", "RangeLimitSearch"]


class Bisect:
    """The first ``x`` in ``(low, high]`` where a monotone predicate holds.

    Known: it does not hold at ``low`` and does at ``high``. Each :meth:`record`
    halves the interval; :attr:`answer` is ``high`` once the two are adjacent.
    """

    def __init__(self, low: int, high: int) -> None:
        if high <= low:
            raise ValueError(f"empty search interval ({low}, {high}]")
        self.low = low
        self.high = high

    def next_probe(self) -> int | None:
        if self.high - self.low <= 1:
            return None
        return self.low + (self.high - self.low) // 2

    def record(self, x: int, holds: bool) -> None:
        if not self.low < x < self.high:
            raise ValueError(f"{x} is outside the open interval ({self.low}, {self.high})")
        if holds:
            self.high = x
        else:
            self.low = x

    @property
    def answer(self) -> int | None:
        return self.high if self.high - self.low <= 1 else None


class ArchivalSearch:
    """The earliest block whose state a node serves, for a node whose head is ``head``.

    Outcome: :attr:`full` (block 1, or 0 at head 0, is served), :attr:`earliest`
    (the earliest block served), or :attr:`no_state` (not even the head's state).
    """

    def __init__(self, head: int) -> None:
        if head < 0:
            raise ValueError(f"head must not be negative, not {head}")
        self.head = head
        self.first = 1 if head >= 1 else 0
        self.probes = 0
        self.no_state = False
        self.full = False
        self._head_served: bool | None = None
        self._first_served: bool | None = None
        self._bisect: Bisect | None = None

    def next_probe(self) -> int | None:
        if self.no_state or self.full:
            return None
        if self._head_served is None:
            return self.head
        if self._first_served is None:
            return self.first
        assert self._bisect is not None
        return self._bisect.next_probe()

    def record(self, block: int, served: bool) -> None:
        self.probes += 1
        if self._head_served is None:
            self._expect(block, self.head)
            self._head_served = served
            self.no_state = not served
            if served and self.first == self.head:
                self._first_served = self.full = True
            return
        if self._first_served is None:
            self._expect(block, self.first)
            self._first_served = served
            self.full = served
            if not served:
                self._bisect = Bisect(self.first, self.head)
            return
        assert self._bisect is not None
        self._bisect.record(block, served)

    @property
    def earliest(self) -> int | None:
        """The earliest block served: ``first`` when full, None while unknown or no state."""
        if self.full:
            return self.first
        return None if self._bisect is None else self._bisect.answer

    @property
    def done(self) -> bool:
        return self.next_probe() is None

    @staticmethod
    def _expect(block: int, wanted: int) -> None:
        if block != wanted:
            raise ValueError(f"recorded block {block}, but the probe asked for {wanted}")


#: A search that has to bisect from a refused bound of 100,000 takes 17 probes.
DEFAULT_LOGS_BOUND: Final = 100_000


class RangeLimitSearch:
    """The widest ``eth_getLogs`` span (blocks, inclusive) a node accepts, up to ``bound``.

    Outcome, once :attr:`done`: :attr:`limit` None with :attr:`unlimited` (``bound``
    accepted); a number (the widest accepted span; :attr:`named` when the node's
    refusal stated it); or :attr:`refuses_all` (even one block refused).
    """

    def __init__(self, bound: int = DEFAULT_LOGS_BOUND) -> None:
        if bound < 1:
            raise ValueError(f"bound must be at least 1, not {bound}")
        self.bound = bound
        self.probes = 0
        self.unlimited = False
        self.refuses_all = False
        self.named = False
        self._limit: int | None = None
        self._hint: int | None = None
        self._accepted = 0  # widest span known accepted (0: none yet)
        self._refused = bound + 1  # narrowest span known refused
        self._bisect: Bisect | None = None

    def next_probe(self) -> int | None:
        if self.done:
            return None
        if self.probes == 0:
            return self.bound
        if self._hint is not None:
            return self._hint
        if self._accepted == 0 and self._refused > 1 and self._bisect is None:
            return 1  # a single block first: a node refusing it has no usable limit
        assert self._bisect is not None
        return self._bisect.next_probe()

    def record(self, span: int, accepted: bool, named_limit: int | None = None) -> None:
        """One probe's outcome; ``named_limit`` is the limit a refusal stated, if any."""
        self.probes += 1
        if self._hint is not None and span == self._hint:
            self._hint = None
            if accepted:
                self._limit, self.named = span, True
                return
        if accepted:
            self._accepted = max(self._accepted, span)
            if span >= self.bound:
                self.unlimited = True
                return
        else:
            self._refused = min(self._refused, span)
            if span == 1:
                self.refuses_all = True
                return
            if named_limit is not None and self._accepted < named_limit < self._refused:
                self._hint = named_limit
        if self._bisect is not None:
            if self._bisect.low < span < self._bisect.high:
                self._bisect.record(span, not accepted)
        elif self._hint is None and self._accepted >= 1:
            self._bisect = Bisect(self._accepted, self._refused)

    @property
    def done(self) -> bool:
        if self.unlimited or self.refuses_all or self._limit is not None:
            return True
        return self._bisect is not None and self._bisect.answer is not None

    @property
    def limit(self) -> int | None:
        """The widest accepted span; None when unlimited up to the bound, or unknown."""
        if self._limit is not None:
            return self._limit
        if self._bisect is not None and self._bisect.answer is not None:
            return self._bisect.answer - 1
        return None
