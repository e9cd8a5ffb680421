"""The node board: each node's health, process id and restart count.

One owner (the :class:`Devnet`) keeps it; the miner, the keepers and the
recovery read and change it only through these methods, so every change is
checked against the transition table (:mod:`lasso.devnet.health`), logged,
and wakes whoever waits for a change.
"""

from __future__ import annotations

import logging

import trio

from lasso.devnet.errors import DevnetError
from lasso.devnet.health import NodeHealth, transition
from lasso.devnet.ledger import Ledger

log = logging.getLogger("lasso.devnet")


class NodeBoard:
    def __init__(self, ledger: Ledger) -> None:
        count = len(ledger.heads)
        self._ledger = ledger
        self.health = [NodeHealth.UP] * count
        #: The running process of each node; 0 while it has none.
        self.pids = [0] * count
        self.restarts = [0] * count
        self._changed = trio.Event()

    def is_up(self, index: int) -> bool:
        return self.health[index] is NodeHealth.UP

    def pid(self, index: int) -> int:
        """The node's running process; a dead node has none to signal."""
        self._ledger.check_index(index)
        if not self.pids[index]:
            raise DevnetError(f"devnet node {index} has no running process")
        return self.pids[index]

    def set(self, index: int, new: NodeHealth) -> None:
        old = self.health[index]
        self.health[index] = transition(old, new)
        log.log(
            logging.INFO if new is NodeHealth.UP else logging.WARNING,
            "devnet node %d: %s -> %s (head %d of %d)",
            index,
            old.value,
            new.value,
            self._ledger.heads[index],
            self._ledger.height,
        )
        self._changed.set()
        self._changed = trio.Event()

    def lost(self, index: int, doing: str, error: BaseException) -> None:
        """Node ``index`` failed a lockstep call: it is hung (unless already dead)."""
        log.warning("devnet node %d failed %s: %s", index, doing, _describe(error))
        if self.health[index] in (NodeHealth.UP, NodeHealth.CATCHING_UP):
            self.set(index, NodeHealth.HUNG)

    def started(self, index: int, pid: int, *, restarted: bool) -> None:
        self.pids[index] = pid
        if restarted:
            self.restarts[index] += 1
            self._ledger.reset(index)
            self.set(index, NodeHealth.CATCHING_UP)

    def exited(self, index: int, why: str) -> None:
        log.warning("devnet node %d exited: %s", index, why)
        self.pids[index] = 0
        if self.health[index] is not NodeHealth.DEAD:
            self.set(index, NodeHealth.DEAD)

    async def next_change(self) -> None:
        await self._changed.wait()

    async def wait_for(self, index: int, *states: NodeHealth) -> None:
        while self.health[index] not in states:
            await self.next_change()


def _describe(error: BaseException) -> str:
    if isinstance(error, trio.TooSlowError):
        return "no answer within the node deadline"
    return str(error) or type(error).__name__
