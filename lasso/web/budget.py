"""One budget for the request-body bytes all clients together have buffered.

Each request holds what it has read until its answer is sent; a chunk that
would take the total over ``server.max_inflight_body_bytes`` is refused with
:class:`~lasso.errors.ServerBusy` (HTTP 503, -32005, ``Retry-After``). Only
bytes actually received count, so a slow client holds little.

Large bodies may fill only ``LARGE_SHARE`` of the budget: the rest is kept for
bodies of at most ``SMALL_BODY_BYTES``, so ordinary calls still get through
while many clients upload megabytes at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import msgspec

from lasso.errors import ServerBusy

SMALL_BODY_BYTES = 64 * 1024
LARGE_SHARE = 0.875


class BudgetStatistics(msgspec.Struct, frozen=True):
    limit: int
    in_use: int
    peak: int
    refused: int


class BodyBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self.refused = 0

    @contextmanager
    def hold(self) -> Iterator[Hold]:
        """A request's share; everything it took is given back on exit."""
        held = Hold(self)
        try:
            yield held
        finally:
            self.in_use -= held.size

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(self.limit, self.in_use, self.peak, self.refused)


class Hold:
    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.size = 0

    def take(self, size: int) -> None:
        budget = self.budget
        small = self.size + size <= SMALL_BODY_BYTES
        room = budget.limit if small else int(budget.limit * LARGE_SHARE)
        if budget.in_use + size > room:
            budget.refused += 1
            raise ServerBusy("Server busy: too many request bytes in flight")
        budget.in_use += size
        budget.peak = max(budget.peak, budget.in_use)
        self.size += size
