"""The control surface of a running devnet: mine, pause, resume, send, sign.

Every operation that changes chain state holds one lock, so a transaction and
a block are never interleaved differently on different nodes; the bookkeeping
behind that is :mod:`lasso.devnet.ledger`. Every lockstep call has a per-node
deadline: a node that misses it is hung (:mod:`lasso.devnet.health`), left
behind while the others go on, and caught up by :meth:`Devnet.tend` once it
answers again. Starting, restarting and stopping the nodes is
:mod:`lasso.devnet.lifecycle` and :mod:`lasso.devnet.keeper`.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import msgspec
import trio

from lasso.devnet.anvil import signal_group
from lasso.devnet.control import ControlClient
from lasso.devnet.errors import DevnetError, DevnetRpcError
from lasso.devnet.health import NodeHealth, transition
from lasso.devnet.ledger import BlockRecord, Ledger

T = TypeVar("T")
log = logging.getLogger("lasso.devnet")

#: How often a hung node is probed.
PROBE_INTERVAL_S = 0.2
#: A catching-up node replays without the devnet lock (mining goes on) until
#: it is this many blocks from its target, then takes the lock for the rest.
UNLOCKED_REPLAY_MARGIN = 4
#: anvil's answer to a transaction its mempool already holds.
ALREADY_IMPORTED = "transaction already imported"

# The accounts of anvil's default mnemonic ("test test ... junk"), unlocked on
# every node; each starts with 10,000 ether.
DEV_ACCOUNTS: tuple[str, ...] = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
    "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
    "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
    "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
)


@dataclass(frozen=True)
class DevnetNode:
    index: int
    port: int
    http_url: str
    ws_url: str
    pruned: int | None


class DevnetStatistics(msgspec.Struct, frozen=True):
    heads: tuple[int, ...]
    paused: frozenset[int]
    blocks_mined: int
    pending_transactions: int
    pids: tuple[int, ...]
    health: tuple[str, ...]
    restarts: tuple[int, ...]


class Devnet:
    """Control surface of a running devnet; get one from :func:`open_devnet`.

    Each node has a :class:`NodeHealth`. Every lockstep call to a node has the
    ``node_deadline_s`` deadline; a node that misses it is hung and skipped,
    the others keep mining, and the node's keeper (:mod:`lasso.devnet.keeper`)
    runs :meth:`tend` to catch it up once it answers again.
    """

    def __init__(self, control: ControlClient, ledger: Ledger, *, node_deadline_s: float) -> None:
        count = len(ledger.heads)
        self.nodes: list[DevnetNode] = []
        self._pids = [0] * count
        self._health = [NodeHealth.UP] * count
        self._restarts = [0] * count
        self._control = control
        self._ledger = ledger
        self._node_deadline_s = node_deadline_s
        self._lock = trio.Lock()
        self._mined_height = 0
        self._block_mined = trio.Event()
        self._health_changed = trio.Event()
        self._started = trio.Event()

    # --- chain control ------------------------------------------------------

    async def mine(self) -> int:
        """Mine the next block now on every unpaused, up node in sync; return its number.

        A node that misses the deadline is marked hung and caught up later;
        the block counts as mined on the others.
        """
        async with self._lock:
            miners = [i for i in self._ledger.miners() if self._health[i] is NodeHealth.UP]
            block = self._ledger.seal()
            outcomes = await gather([partial(self._mine_node, i, block) for i in miners])
            for index, outcome in zip(miners, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    self._lost(index, f"mining block {block.number}", outcome)
            self._announce_block(block.number)
            return block.number

    def pause(self, index: int) -> None:
        """Stop mining on one node from the next block on; it lags like a slow provider."""
        self._ledger.pause(index)

    async def resume(self, index: int) -> None:
        """Unpause a node and catch it up: replay every block it missed.

        Returns once it is back at the tip, or, if it hangs or dies meanwhile,
        once it is no longer catching up (it then catches up when it returns).
        """
        self._ledger.check_index(index)
        self._ledger.unpause(index)
        if self._health[index] is NodeHealth.UP and index not in self._ledger.in_sync():
            self._set_health(index, NodeHealth.CATCHING_UP)
        while self._health[index] is NodeHealth.CATCHING_UP:
            await self._next_health_change()

    async def send_raw_transaction(self, raw: str) -> str:
        """Send one signed transaction to every node before the next block; return its hash.

        Nodes that are behind get it when they replay the block it lands in.
        """
        async with self._lock:
            receivers = self._up_in_sync()
            if not receivers:
                raise DevnetError("no node is up and in sync to take a transaction; resume one")
            sends = [partial(self._call, i, "eth_sendRawTransaction", [raw]) for i in receivers]
            outcomes = await gather(sends)
            answered = {}
            rpc_errors = []
            for index, outcome in zip(receivers, outcomes, strict=True):
                if isinstance(outcome, DevnetRpcError):
                    rpc_errors.append(outcome)
                elif isinstance(outcome, Exception):
                    self._lost(index, "taking a transaction", outcome)
                else:
                    answered[index] = outcome
            if rpc_errors and not answered:
                raise rpc_errors[0]
            if rpc_errors or len(set(answered.values())) != 1:
                raise DevnetError(f"nodes disagreed on a transaction: {outcomes!r}")
            self._ledger.accept_transaction(raw, sorted(answered))
            return str(answered.popitem()[1])

    async def sign_transfer(
        self,
        *,
        to: str,
        value_wei: int,
        sender: str = DEV_ACCOUNTS[0],
        nonce: int | None = None,
        gas: int | None = None,
        max_fee_per_gas_wei: int | None = None,
        max_priority_fee_per_gas_wei: int | None = None,
    ) -> str:
        """Have a node sign a transfer from an unlocked dev account; return the raw tx.

        Nothing is sent. Fields left as None are filled by the node; the nonce
        is then the sender's pending nonce, so callers that sign several
        transactions before sending them must pass ``nonce`` themselves.
        """
        request: dict[str, str] = {"from": sender, "to": to, "value": hex(value_wei)}
        optional = {
            "nonce": nonce,
            "gas": gas,
            "maxFeePerGas": max_fee_per_gas_wei,
            "maxPriorityFeePerGas": max_priority_fee_per_gas_wei,
        }
        request |= {key: hex(value) for key, value in optional.items() if value is not None}
        async with self._lock:
            for index in self._up_in_sync():
                try:
                    return str(await self._call(index, "eth_signTransaction", [request]))
                except DevnetRpcError:
                    raise
                except (DevnetError, trio.TooSlowError) as exc:
                    self._lost(index, "signing", exc)
        raise DevnetError("no node is up and in sync to sign with; resume one")

    async def request(self, index: int, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call to one node; a JSON-RPC error raises DevnetRpcError."""
        self._ledger.check_index(index)
        return await self._control.call(self.nodes[index].http_url, method, list(params))

    async def wait_for_block(self, number: int) -> None:
        """Return once block ``number`` is mined on every node mining it (for the timer)."""
        while self._mined_height < number:
            await self._block_mined.wait()

    # --- health and fault injection -----------------------------------------

    def health(self, index: int) -> NodeHealth:
        self._ledger.check_index(index)
        return self._health[index]

    async def wait_for_health(self, index: int, *states: NodeHealth) -> None:
        """Return once node ``index`` is in one of ``states``."""
        self._ledger.check_index(index)
        while self._health[index] not in states:
            await self._next_health_change()

    def freeze(self, index: int) -> None:
        """SIGSTOP node ``index``: a hung provider (it holds its sockets, answers nothing)."""
        signal_group(self._pid(index), signal.SIGSTOP)

    def thaw(self, index: int) -> None:
        """SIGCONT node ``index`` after :meth:`freeze`."""
        signal_group(self._pid(index), signal.SIGCONT)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``: a crashed provider; the devnet restarts it."""
        signal_group(self._pid(index), signal.SIGKILL)

    def statistics(self) -> DevnetStatistics:
        ledger = self._ledger
        return DevnetStatistics(
            heads=tuple(ledger.heads),
            paused=frozenset(ledger.paused),
            blocks_mined=ledger.height,
            pending_transactions=len(ledger.pending),
            pids=tuple(self._pids),
            health=tuple(h.value for h in self._health),
            restarts=tuple(self._restarts),
        )

    # --- the miner task ------------------------------------------------------

    async def mine_every(
        self, block_time_s: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Mine a block every ``block_time_s`` on deadlines, so the schedule never drifts.

        A block that took longer than the interval is not made up with a burst:
        the next deadline is never in the past.
        """
        deadline = trio.current_time() + block_time_s
        task_status.started()
        while True:
            await trio.sleep_until(deadline)
            await self.mine()
            deadline = max(deadline + block_time_s, trio.current_time())

    # --- what the node keepers report (lasso.devnet.keeper) ------------------

    def started(self, nodes: list[DevnetNode]) -> None:
        """Every node answered once; ``nodes`` says where. Recovery may begin."""
        self.nodes = nodes
        self._started.set()

    def node_started(self, index: int, pid: int, *, restarted: bool) -> None:
        """Node ``index`` answers as process ``pid``; a restarted one is at genesis."""
        self._pids[index] = pid
        if restarted:
            self._restarts[index] += 1
            self._ledger.reset(index)
            self._set_health(index, NodeHealth.CATCHING_UP)

    def node_exited(self, index: int, why: str) -> None:
        log.warning("devnet node %d exited: %s", index, why)
        if self._health[index] is not NodeHealth.DEAD:
            self._set_health(index, NodeHealth.DEAD)

    async def tend(self, index: int) -> None:
        """For one life of node ``index``'s process: probe it while hung, catch it up."""
        await self._started.wait()
        while True:
            health = self._health[index]
            if health is NodeHealth.HUNG:
                await self._probe(index)
            elif health is NodeHealth.CATCHING_UP:
                await self._recover(index)
            else:
                await self._next_health_change()

    # --- recovery ------------------------------------------------------------

    async def _probe(self, index: int) -> None:
        try:
            await self._call(index, "eth_blockNumber", [])
        except (DevnetError, trio.TooSlowError):
            await trio.sleep(PROBE_INTERVAL_S)
            return
        log.info("devnet node %d answers again", index)
        self._set_health(index, NodeHealth.CATCHING_UP)

    async def _recover(self, index: int) -> None:
        try:
            await self._catch_up(index)
        except _DivergedError as exc:
            # Replaying cannot fix a node whose chain differs: start it afresh.
            log.warning("devnet node %d diverged (%s): restarting it", index, exc)
            self.kill(index)
            await trio.sleep_forever()  # the keeper cancels this life
        except DevnetRpcError as exc:
            log.warning("devnet node %d refused its replay (%s): restarting it", index, exc)
            self.kill(index)
            await trio.sleep_forever()
        except (DevnetError, trio.TooSlowError) as exc:
            self._lost(index, "catching up", exc)

    async def _catch_up(self, index: int) -> None:
        """Replay missed blocks, mostly without the lock, the last stretch under it."""
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
            self._set_health(index, NodeHealth.UP)

    async def _reconcile(self, index: int) -> None:
        """Align the ledger with the node's real head (a stale mine may have run late)."""
        actual = int(await self._call(index, "eth_blockNumber", []), 16)
        head = self._ledger.heads[index]
        if actual == head:
            return
        if not head < actual <= self._ledger.height:
            raise _DivergedError(f"at block {actual}, expected {head}")
        await self._verify(index, actual)
        for number in range(head + 1, actual + 1):
            self._ledger.node_mined(index, number)

    async def _replay_next(self, index: int) -> None:
        block = self._ledger.next_replay(index)
        assert block is not None
        for raw in block.raw_transactions:
            await self._deliver(index, raw)
        await self._mine_node(index, block)

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
            for i, health in enumerate(self._health)
            if i != index and health is NodeHealth.UP and self._ledger.heads[i] >= number
        ]
        if not peers:
            return
        ours, theirs = [
            await self._call(i, "eth_getBlockByNumber", [hex(number), False])
            for i in (index, peers[0])
        ]
        if (ours or {}).get("hash") != (theirs or {}).get("hash"):
            raise _DivergedError(f"block {number} differs from node {peers[0]}'s")

    # --- helpers -------------------------------------------------------------

    async def _call(self, index: int, method: str, params: list[Any]) -> Any:
        """A lockstep call: it has the per-node deadline."""
        with trio.fail_after(self._node_deadline_s):
            return await self.request(index, method, params)

    def _up_in_sync(self) -> list[int]:
        return [i for i in self._ledger.in_sync() if self._health[i] is NodeHealth.UP]

    def _pid(self, index: int) -> int:
        self._ledger.check_index(index)
        return self._pids[index]

    def _set_health(self, index: int, new: NodeHealth) -> None:
        old = self._health[index]
        self._health[index] = transition(old, new)
        log.log(
            logging.INFO if new is NodeHealth.UP else logging.WARNING,
            "devnet node %d: %s -> %s (head %d of %d)",
            index,
            old.value,
            new.value,
            self._ledger.heads[index],
            self._ledger.height,
        )
        self._health_changed.set()
        self._health_changed = trio.Event()

    async def _next_health_change(self) -> None:
        await self._health_changed.wait()

    def _lost(self, index: int, doing: str, error: BaseException) -> None:
        """Node ``index`` failed a lockstep call: it is hung (unless already dead)."""
        log.warning("devnet node %d failed %s: %s", index, doing, _describe(error))
        if self._health[index] in (NodeHealth.UP, NodeHealth.CATCHING_UP):
            self._set_health(index, NodeHealth.HUNG)

    def _announce_block(self, number: int) -> None:
        self._mined_height = number
        self._block_mined.set()
        self._block_mined = trio.Event()

    async def _mine_node(self, index: int, block: BlockRecord) -> None:
        await self._call(index, "evm_mine", [block.timestamp])
        self._ledger.node_mined(index, block.number)


class _DivergedError(DevnetError):
    """A node's chain differs from the others'; only a restart from genesis fixes it."""


def _describe(error: BaseException) -> str:
    if isinstance(error, trio.TooSlowError):
        return "no answer within the node deadline"
    return str(error) or type(error).__name__


async def gather(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T | Exception]:
    """Run calls concurrently; each slot holds its result or the Exception it raised."""
    outcomes: list[T | Exception] = [DevnetError("not run")] * len(calls)

    async def run(slot: int, call: Callable[[], Awaitable[T]]) -> None:
        try:
            outcomes[slot] = await call()
        except Exception as exc:
            outcomes[slot] = exc

    async with trio.open_nursery() as nursery:
        for slot, call in enumerate(calls):
            nursery.start_soon(run, slot, call)
    return outcomes
