"""The control surface of a running devnet: mine, pause, resume, send, sign.

Every operation that changes chain state holds one lock, so a transaction and
a block are never interleaved differently on different nodes; the bookkeeping
behind that is :mod:`lasso.devnet.ledger`. Starting and stopping the nodes is
:mod:`lasso.devnet.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import msgspec
import trio

from lasso.devnet.control import ControlClient
from lasso.devnet.errors import DevnetError
from lasso.devnet.ledger import BlockRecord, Ledger

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


class Devnet:
    """Control surface of a running devnet; get one from :func:`open_devnet`."""

    def __init__(
        self, nodes: list[DevnetNode], pids: list[int], control: ControlClient, ledger: Ledger
    ) -> None:
        self.nodes = nodes
        self._pids = tuple(pids)
        self._control = control
        self._ledger = ledger
        self._lock = trio.Lock()
        self._mined_height = 0
        self._block_mined = trio.Event()

    # --- chain control ------------------------------------------------------

    async def mine(self) -> int:
        """Mine the next block now on every unpaused node in sync; return its number."""
        async with self._lock:
            miners = self._ledger.miners()
            block = self._ledger.seal()
            mines = [partial(self._mine_node, i, block) for i in miners]
            await _all_or_raise(f"mining block {block.number}", mines)
            self._announce_block(block.number)
            return block.number

    def pause(self, index: int) -> None:
        """Stop mining on one node from the next block on; it lags like a slow provider."""
        self._ledger.pause(index)

    async def resume(self, index: int) -> None:
        """Replay every block node ``index`` missed, then mine it with the others again."""
        self._ledger.check_index(index)
        async with self._lock:
            while (block := self._ledger.next_replay(index)) is not None:
                await self._deliver(index, block.raw_transactions)
                await self._mine_node(index, block)
            await self._deliver(index, self._ledger.undelivered_pending(index))
            self._ledger.unpause(index)

    async def send_raw_transaction(self, raw: str) -> str:
        """Send one signed transaction to every node before the next block; return its hash.

        Nodes that are behind get it when they replay the block it lands in.
        """
        async with self._lock:
            receivers = self._ledger.in_sync()
            if not receivers:
                raise DevnetError("no node is in sync to take a transaction; resume one first")
            calls = [partial(self.request, i, "eth_sendRawTransaction", [raw]) for i in receivers]
            outcomes = await gather(calls)
            hashes = {h for h in outcomes if not isinstance(h, Exception)}
            errors = [e for e in outcomes if isinstance(e, Exception)]
            if errors and not hashes:
                raise errors[0]
            if errors or len(hashes) != 1:
                raise DevnetError(f"nodes disagreed on a transaction: {outcomes!r}")
            self._ledger.accept_transaction(raw, receivers)
            return str(hashes.pop())

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
            signers = self._ledger.in_sync()
            if not signers:
                raise DevnetError("no node is in sync to sign with; resume one first")
            raw = await self.request(signers[0], "eth_signTransaction", [request])
        return str(raw)

    async def request(self, index: int, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call to one node; a JSON-RPC error raises DevnetRpcError."""
        self._ledger.check_index(index)
        return await self._control.call(self.nodes[index].http_url, method, list(params))

    async def wait_for_block(self, number: int) -> None:
        """Return once block ``number`` is mined on every node mining it (for the timer)."""
        while self._mined_height < number:
            await self._block_mined.wait()

    def statistics(self) -> DevnetStatistics:
        ledger = self._ledger
        return DevnetStatistics(
            heads=tuple(ledger.heads),
            paused=frozenset(ledger.paused),
            blocks_mined=ledger.height,
            pending_transactions=len(ledger.pending),
            pids=self._pids,
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

    # --- helpers -------------------------------------------------------------

    def _announce_block(self, number: int) -> None:
        self._mined_height = number
        self._block_mined.set()
        self._block_mined = trio.Event()

    async def _mine_node(self, index: int, block: BlockRecord) -> None:
        await self.request(index, "evm_mine", [block.timestamp])
        self._ledger.node_mined(index, block.number)

    async def _deliver(self, index: int, raw_transactions: Sequence[str]) -> None:
        """Send transactions to one node in order, recording each one it accepts."""
        for raw in raw_transactions:
            await self.request(index, "eth_sendRawTransaction", [raw])
            self._ledger.transaction_delivered(index)


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


async def _all_or_raise(what: str, calls: Sequence[Callable[[], Awaitable[None]]]) -> None:
    errors = [e for e in await gather(calls) if isinstance(e, Exception)]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise DevnetError(f"{what}: {len(errors)} nodes failed: {errors!r}")
