"""Bringing a node back: probe it while hung, replay what it missed, check its hash.

A catching-up node first has its ledger head aligned with what it really
mined (a mine sent just before it hung may have run late), then replays
each missed block: the transactions it does not hold yet, then ``evm_mine``
with the block's timestamp. Far from its target it replays without the
devnet lock, so the others keep mining; the last stretch, the pending
transactions and the final hash check against an up peer run under the
lock, so it is in sync the moment it is up. A node whose chain differs, or
that refuses a replayed transaction, cannot be fixed by replaying: it is
killed and its keeper restarts it from genesis.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from lasso.devnet.anvil import signal_group
from lasso.devnet.board import NodeBoard
from lasso.devnet.errors import DevnetError, DevnetRpcError
from lasso.devnet.health import NodeHealth
from lasso.devnet.ledger import BlockRecord, Ledger

log = logging.getLogger("lasso.devnet")

#: How often a hung node is probed.
PROBE_INTERVAL_S = 0.2
#: A catching-up node replays without the devnet lock until it is this many
#: blocks from its target, then takes the lock for the rest.
UNLOCKED_REPLAY_MARGIN = 4
#: anvil's answer to a transaction its mempool already holds.
ALREADY_IMPORTED = "transaction already imported"

#: One lockstep call to one node, under the per-node deadline.
Call = Callable[[int, str, list[Any]], Awaitable[Any]]


class DivergedError(DevnetError):
    """A node's chain differs from the others'; only a restart from genesis fixes it."""


class Recovery:
    def __init__(self, ledger: Ledger, board: NodeBoard, lock: trio.Lock, call: Call) -> None:
        self._ledger = ledger
        self._board = board
        self._lock = lock
        self._call = call

    async def tend(self, index: int) -> None:
        """For one life of node ``index``'s process: probe it while hung, catch it up."""
        while True:
            health = self._board.health[index]
            if health is NodeHealth.HUNG:
                await self._probe(index)
            elif health is NodeHealth.CATCHING_UP:
                await self._recover(index)
            else:
                await self._board.next_change()

    async def mine_node(self, index: int, block: BlockRecord) -> None:
        await self._call(index, "evm_mine", [block.timestamp])
        self._ledger.node_mined(index, block.number)

    async def _probe(self, index: int) -> None:
        try:
            await self._call(index, "eth_blockNumber", [])
        except (DevnetError, trio.TooSlowError):
            await trio.sleep(PROBE_INTERVAL_S)
            return
        log.info("devnet node %d answers again", index)
        self._board.set(index, NodeHealth.CATCHING_UP)

    async def _recover(self, index: int) -> None:
        try:
            await self._catch_up(index)
        except (DivergedError, DevnetRpcError) as exc:
            log.warning("devnet node %d cannot be replayed into (%s): restarting it", index, exc)
            signal_group(self._board.pid(index), signal.SIGKILL)
            await trio.sleep_forever()  # the keeper ends this life
        except (DevnetError, trio.TooSlowError) as exc:
            self._board.lost(index, "catching up", exc)

    async def _catch_up(self, index: int) -> None:
        ledger = self._ledger
        await self._reconcile(index)
        while ledger.target(index) - ledger.heads[index] > UNLOCKED_REPLAY_MARGIN:
            await self._replay_next(index)
        async with self._lock:
            while ledger.heads[index] < ledger.target(index):
                await self._replay_next(index)
            if index not in ledger.paused:
                for raw in ledger.undelivered_pending(index):
                    await self._deliver(index, raw)
            await self._verify(index, ledger.heads[index])
            self._board.set(index, NodeHealth.UP)

    async def _reconcile(self, index: int) -> None:
        """Align the ledger with the node's real head."""
        actual = int(await self._call(index, "eth_blockNumber", []), 16)
        head = self._ledger.heads[index]
        if actual == head:
            return
        if not head < actual <= self._ledger.height:
            raise DivergedError(f"at block {actual}, expected {head}")
        await self._verify(index, actual)
        for number in range(head + 1, actual + 1):
            self._ledger.node_mined(index, number)

    async def _replay_next(self, index: int) -> None:
        block = self._ledger.next_replay(index)
        assert block is not None
        for raw in block.raw_transactions:
            await self._deliver(index, raw)
        await self.mine_node(index, block)

    async def _deliver(self, index: int, raw: str) -> None:
        """Send one transaction of its next block to a node and record it."""
        try:
            await self._call(index, "eth_sendRawTransaction", [raw])
        except DevnetRpcError as exc:
            # It may hold it already: a send that timed out while it hung.
            if exc.message != ALREADY_IMPORTED:
                raise
        self._ledger.transaction_delivered(index)

    async def _verify(self, index: int, number: int) -> None:
        """Compare block ``number`` with an up node that has it; raise if they differ."""
        peers = [
            i
            for i in range(len(self._ledger.heads))
            if i != index and self._board.is_up(i) and self._ledger.heads[i] >= number
        ]
        if not peers:
            return
        ours, theirs = [
            await self._call(i, "eth_getBlockByNumber", [hex(number), False])
            for i in (index, peers[0])
        ]
        if (ours or {}).get("hash") != (theirs or {}).get("hash"):
            raise DivergedError(f"block {number} differs from node {peers[0]}'s")
