"""The control surface of a running devnet: mine, pause, resume, fork, heal, send, sign.

Every operation that changes chain state holds one lock, so a transaction and
a block are never interleaved differently on different nodes; the bookkeeping
behind that is :mod:`lasso.devnet.ledger`. Every lockstep call has a per-node
deadline: a node that misses it is hung (:mod:`lasso.devnet.health`), left
behind while the others go on, and caught up (:mod:`lasso.devnet.recovery`)
once it answers again. Starting, restarting and stopping the nodes is
:mod:`lasso.devnet.lifecycle` and :mod:`lasso.devnet.keeper`.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import msgspec
import trio

from lasso.devnet.anvil import signal_group
from lasso.devnet.board import NodeBoard
from lasso.devnet.control import ControlClient
from lasso.devnet.errors import DevnetError, DevnetRpcError
from lasso.devnet.health import NodeHealth
from lasso.devnet.ledger import Ledger
from lasso.devnet.recovery import Recovery

T = TypeVar("T")

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

#: The sender of the transaction only a forked node has (see :meth:`Devnet.fork`).
FORK_SENDER = DEV_ACCOUNTS[9]


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
    forked: frozenset[int] = frozenset()


class Devnet:
    """Control surface of a running devnet; get one from :func:`open_devnet`.

    Each node has a :class:`NodeHealth`. Every lockstep call to a node has the
    ``node_deadline_s`` deadline; a node that misses it is hung and skipped,
    the others keep mining, and the node's keeper (:mod:`lasso.devnet.keeper`)
    runs :meth:`tend` to catch it up once it answers again.
    """

    def __init__(self, control: ControlClient, ledger: Ledger, *, node_deadline_s: float) -> None:
        self.nodes: list[DevnetNode] = []
        self._control = control
        self._ledger = ledger
        self._node_deadline_s = node_deadline_s
        self._lock = trio.Lock()
        self._board = NodeBoard(ledger)
        self._recovery = Recovery(ledger, self._board, self._lock, self._call)
        self._mined_height = 0
        self._block_mined = trio.Event()
        self._started = trio.Event()
        # forked node -> (its evm_snapshot from before the fork, its next base fee then)
        self._forks: dict[int, tuple[str, str]] = {}

    # --- chain control ------------------------------------------------------

    async def mine(self) -> int:
        """Mine the next block now on every unpaused, up node in sync; return its number.

        A node that misses the deadline is marked hung and caught up later;
        the block counts as mined on the others.
        """
        async with self._lock:
            miners = [i for i in self._ledger.miners() if self._board.is_up(i)]
            block = self._ledger.seal()
            mine = self._recovery.mine_node
            outcomes = await gather([partial(mine, i, block) for i in miners])
            for index, outcome in zip(miners, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    self._board.lost(index, f"mining block {block.number}", outcome)
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
        if self._board.is_up(index) and index not in self._ledger.in_sync():
            self._board.set(index, NodeHealth.CATCHING_UP)
        while self._board.health[index] is NodeHealth.CATCHING_UP:
            await self._board.next_change()

    async def fork(self, index: int) -> str:
        """Fork node ``index`` off the chain; return the hash of its own next block.

        The node leaves lockstep mining (it is paused); an ``evm_snapshot`` is taken; then
        it alone mines the next block, with the next lockstep timestamp and a transaction
        only it has (a transfer from :data:`FORK_SENDER`), on top of what it holds for that
        block. So when the others mine that height, its block hash really differs from
        theirs, while its parent is the common chain. Undo it with :meth:`heal`.
        """
        self._ledger.check_index(index)
        async with self._lock:
            if index in self._forks:
                raise DevnetError(f"node {index} is already forked; heal it first")
            if index in self._ledger.paused or index not in self._up_in_sync():
                raise DevnetError(f"node {index} must be up, in sync and mining to fork it")
            self._ledger.pause(index)
            pending = await self._call(index, "eth_getBlockByNumber", ["pending", False])
            snapshot = str(await self._call(index, "evm_snapshot", []))
            self._forks[index] = (snapshot, str(pending["baseFeePerGas"]))
            own = {"from": FORK_SENDER, "to": FORK_SENDER, "value": "0x1"}
            await self._call(index, "eth_sendTransaction", [own])
            number = self._ledger.height + 1
            await self._call(index, "evm_mine", [self._ledger.timestamp_of(number)])
            block = await self._call(index, "eth_getBlockByNumber", [hex(number), False])
            return str(block["hash"])

    async def heal(self, index: int) -> None:
        """Undo :meth:`fork`: revert node ``index`` to its snapshot and resume lockstep.

        ``evm_revert`` drops its own block; its mempool is emptied
        (``anvil_dropAllTransactions``), its next base fee restored (anvil's revert keeps
        the one its own block set) and it replays every block mined since with the
        common transactions and timestamps, so its hashes are the others' again (checked
        against an up peer). Returns once it is back at the tip, as :meth:`resume` does.
        """
        self._ledger.check_index(index)
        async with self._lock:
            fork = self._forks.get(index)
            if fork is None:
                raise DevnetError(f"node {index} is not forked")
            snapshot, base_fee = fork
            if await self._call(index, "evm_revert", [snapshot]) is not True:
                raise DevnetError(f"node {index} refused to revert to snapshot {snapshot}")
            await self._call(index, "anvil_dropAllTransactions", [])
            # anvil 1.7.1's evm_revert keeps the next base fee its own block set
            await self._call(index, "anvil_setNextBlockBaseFeePerGas", [base_fee])
            del self._forks[index]
            self._ledger.mempool_emptied(index)
        await self.resume(index)

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
            answered: dict[int, Any] = {}
            rpc_errors: list[DevnetRpcError] = []
            for index, outcome in zip(receivers, outcomes, strict=True):
                if isinstance(outcome, DevnetRpcError):
                    rpc_errors.append(outcome)
                elif isinstance(outcome, Exception):
                    self._board.lost(index, "taking a transaction", outcome)
                else:
                    answered[index] = outcome
            if rpc_errors and not answered:
                raise rpc_errors[0]
            if not answered:
                raise DevnetError("no node took the transaction within the node deadline")
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
                    self._board.lost(index, "signing", exc)
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
        return self._board.health[index]

    async def wait_for_health(self, index: int, *states: NodeHealth) -> None:
        """Return once node ``index`` is in one of ``states``."""
        self._ledger.check_index(index)
        await self._board.wait_for(index, *states)

    def freeze(self, index: int) -> None:
        """SIGSTOP node ``index``: a hung provider (it holds its sockets, answers nothing)."""
        signal_group(self._board.pid(index), signal.SIGSTOP)

    def thaw(self, index: int) -> None:
        """SIGCONT node ``index`` after :meth:`freeze`."""
        signal_group(self._board.pid(index), signal.SIGCONT)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``: a crashed provider; the devnet restarts it."""
        signal_group(self._board.pid(index), signal.SIGKILL)

    def statistics(self) -> DevnetStatistics:
        ledger = self._ledger
        return DevnetStatistics(
            heads=tuple(ledger.heads),
            paused=frozenset(ledger.paused),
            blocks_mined=ledger.height,
            pending_transactions=len(ledger.pending),
            pids=tuple(self._board.pids),
            health=tuple(h.value for h in self._board.health),
            restarts=tuple(self._board.restarts),
            forked=frozenset(self._forks),
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
        self._board.started(index, pid, restarted=restarted)

    def node_exited(self, index: int, why: str) -> None:
        self._board.exited(index, why)

    async def tend(self, index: int) -> None:
        """For one life of node ``index``'s process: probe it while hung, catch it up."""
        await self._started.wait()
        await self._recovery.tend(index)

    # --- helpers -------------------------------------------------------------

    async def _call(self, index: int, method: str, params: list[Any]) -> Any:
        """A lockstep call: it has the per-node deadline."""
        with trio.fail_after(self._node_deadline_s):
            return await self.request(index, method, params)

    def _up_in_sync(self) -> list[int]:
        """Nodes that take new transactions: up, in sync and on the common chain."""
        return [i for i in self._ledger.in_sync() if self._board.is_up(i) and i not in self._forks]

    def _announce_block(self, number: int) -> None:
        self._mined_height = number
        self._block_mined.set()
        self._block_mined = trio.Event()


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
