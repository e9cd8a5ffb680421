"""Empty is not an answer from a node that is behind: the dispatcher's check.

One :class:`EmptyCheck` per dispatch (:func:`lasso.dispatch.dispatch`). After
each successful attempt :meth:`EmptyCheck.accepts` asks the pure rule
(:func:`lasso.core.consistency.needed_block`) whether an empty answer (``null``
block, transaction or receipt, ``[]`` logs) came from a provider that has not
reached the block: if so the answer is held, the attempt is noted in the
outcome (category ``behind``; the provider worked, so no breaker penalty), and
the dispatcher goes on to the next planned channel, skipping those known to be
below the block (:meth:`EmptyCheck.defers`). When the plan runs out,
:meth:`EmptyCheck.settle` waits for head reports (``chain.head_changed()``)
until the dispatch deadline, trying each planned channel as soon as its
provider reaches the block. A provider at the block answers for good, even with
``null``, except for a block that exists (at or below the consensus head or the
floor, see :func:`~lasso.core.consistency.needed_block`): a provider recorded at
or above it that says "no such block" has lost it since its last report (a
restarted node replaying from genesis), so it is *stale* for the rest of the
dispatch, never asked again, and the block is asked of the others. At the
deadline, or at once when every planned provider is stale (a route pinned to
one, or a chain every node of which lost the block), the held answer, a node's
own, is returned as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio

from lasso.chain import ChainRuntime
from lasso.core.block_target import BlockTarget, block_target
from lasso.core.consistency import EMPTY_CHECKED, is_empty, needed_block
from lasso.core.jsonrpc import Call
from lasso.core.router import ChannelView
from lasso.outcome import Outcome, attempt_record

__all__ = ["BEHIND", "EmptyCheck"]

BEHIND = "behind"

#: One more attempt on a channel: its result, or None if it failed (recorded by the caller).
Retry = Callable[[ChannelView], Awaitable[bytes | None]]


class EmptyCheck:
    """One dispatch's empty-answer check; see the module docstring."""

    __slots__ = ("_call", "_chain", "_stale", "_target", "held", "need")

    def __init__(self, chain: ChainRuntime, call: Call) -> None:
        self._chain = chain
        self._call = call
        self._target: BlockTarget | None = None
        self.held: bytes | None = None  # the first empty answer from a provider behind
        self.need: int | None = None  # the block a provider must have reached
        self._stale: set[str] = set()  # providers at the block by their record, yet without it

    def accepts(self, view: ChannelView, result: bytes, outcome: Outcome) -> bool:
        """Whether ``result`` is the answer; False holds it and notes the attempt."""
        method = self._call.method
        if method not in EMPTY_CHECKED or not is_empty(method, result):
            return True
        if self._target is None:
            self._target = block_target(method, self._call.params)
        state, now = self._chain.state, trio.current_time()
        heights = [state.height(pid) for pid in self._chain.providers]
        height = state.height(view.provider_id)
        need = needed_block(
            method,
            self._target,
            height=height,
            consensus_head=state.consensus_head(now),
            floor=self._chain.floor.value,
            highest_known=max((h for h in heights if h is not None), default=None),
        )
        if need is None:
            return True
        if self.held is None:
            self.held = result
        self.need = need if self.need is None else max(self.need, need)
        message = f"empty answer from a provider below block {need}"
        if height is not None and height >= need:
            self._stale.add(view.provider_id)
            message = f"no block {need} from a provider last reported at {height}: stale"
        outcome.attempts.append(attempt_record(view, BEHIND, message))
        return False

    def defers(self, view: ChannelView) -> bool:
        """Skip a channel whose provider is not known to have reached the block yet."""
        return self.need is not None and not self._reached(view)

    def _reached(self, view: ChannelView) -> bool:
        if self.need is None:
            return True
        height = self._chain.state.height(view.provider_id)
        return height is not None and height >= self.need and view.provider_id not in self._stale

    async def settle(
        self, channels: Sequence[ChannelView], retry: Retry, outcome: Outcome, deadline: float
    ) -> bytes | None:
        """After the plan: the answer of a provider at the block, else the held one.

        None when nothing was held (the dispatcher then answers as it would have).
        """
        if self.held is None:
            return None
        tried: set[tuple[str, str]] = set()
        with trio.move_on_at(deadline):
            while True:
                ready = [
                    v
                    for v in channels
                    if (v.provider_id, v.transport) not in tried and self._reached(v)
                ]
                if not ready:
                    if all(v.provider_id in self._stale for v in channels):
                        break  # every planned provider lost the block: no report will help
                    await self._chain.head_changed()
                    continue
                view = ready[0]
                tried.add((view.provider_id, view.transport))
                result = await retry(view)
                if result is not None and self.accepts(view, result, outcome):
                    return result
        return self.held
