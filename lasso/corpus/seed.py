"""Build the corpus's chain on a lockstep devnet and record what it holds.

Everything here talks to the nodes directly through :class:`lasso.devnet.Devnet`
(one node signs, :meth:`Devnet.send_raw_transaction` gives every node the same
transaction, :meth:`Devnet.mine` seals the same block everywhere), never through
Lasso, which refuses signing methods on purpose.

The chain, block by block:

1. empty
2. an EIP-1559 transfer and a legacy (gasPrice) transfer
3. the emitter and the reverter deployed
4. two calls to the emitter (two logs) and one call to the reverter that
   reverts on chain (receipt status 0x0)
5. one access-list (type 1) transfer
6. empty
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lasso.corpus.contracts import EMITTER_INIT, REVERTER_INIT
from lasso.devnet import DEV_ACCOUNTS, Devnet

GWEI = 10**9


@dataclass(frozen=True)
class Tx:
    """One mined transaction: its hash, raw bytes, block and index in it."""

    hash: str
    raw: str
    block_number: int
    block_hash: str
    index: int
    kind: str


@dataclass(frozen=True)
class ChainFacts:
    """What the seeded chain holds, for :func:`lasso.corpus.build_corpus`."""

    block_hashes: tuple[str, ...]  # index = block number; the last one is the head
    txs: tuple[Tx, ...]
    emitter: str
    reverter: str
    deploy_block: int
    log_block: int
    underpriced_raw: str  # signed, never sent: its max fee is below the base fee
    #: Signed, never sent: a 1559 and a legacy transfer reusing a nonce another
    #: transaction of the same sender was mined with ("nonce too low", and unknown).
    used_nonce_raws: tuple[str, str]

    @property
    def head(self) -> int:
        return len(self.block_hashes) - 1

    def tx(self, kind: str) -> Tx:
        return next(t for t in self.txs if t.kind == kind)


async def seed_chain(devnet: Devnet) -> ChainFacts:
    """Mine the chain described in the module docstring; return its facts."""
    sent: list[tuple[str, str, str]] = []  # (kind, hash, raw)

    async def send(kind: str, fields: dict[str, Any]) -> None:
        raw = str(await devnet.request(0, "eth_signTransaction", [fields]))
        sent.append((kind, await devnet.send_raw_transaction(raw), raw))

    a = DEV_ACCOUNTS
    await devnet.mine()
    await send("transfer", {"from": a[0], "to": a[1], "value": hex(10**18)})
    await send("legacy", {"from": a[2], "to": a[3], "value": hex(12345), "gasPrice": hex(3 * GWEI)})
    await devnet.mine()
    await send("deploy_emitter", {"from": a[0], "data": EMITTER_INIT})
    await send("deploy_reverter", {"from": a[0], "data": REVERTER_INIT})
    await devnet.mine()
    receipts = {
        kind: await devnet.request(0, "eth_getTransactionReceipt", [tx_hash])
        for kind, tx_hash, _ in sent
    }
    emitter = str(receipts["deploy_emitter"]["contractAddress"])
    reverter = str(receipts["deploy_reverter"]["contractAddress"])
    await send("log", {"from": a[1], "to": emitter, "data": "0x" + "ab" * 5})
    await send("log2", {"from": a[0], "to": emitter, "data": "0x" + "cd" * 40})
    await send("reverted", {"from": a[2], "to": reverter, "gas": hex(100_000)})
    await devnet.mine()
    await send(
        "access_list",
        {
            "from": a[3],
            "to": emitter,
            "data": "0x01",
            "gasPrice": hex(2 * GWEI),
            "accessList": [{"address": emitter, "storageKeys": ["0x" + "00" * 32]}],
        },
    )
    await devnet.mine()
    head = await devnet.mine()
    underpriced = {"from": a[4], "to": a[5], "value": "0x1", "maxFeePerGas": "0x1"}
    underpriced |= {"maxPriorityFeePerGas": "0x1", "gas": hex(21_000)}
    underpriced_raw = str(await devnet.request(0, "eth_signTransaction", [underpriced]))
    used_nonce = {"to": a[6], "value": "0x2", "nonce": "0x0", "gas": hex(21_000)}
    used_nonce_raws = (
        str(await devnet.request(0, "eth_signTransaction", [used_nonce | {"from": a[0]}])),
        str(
            await devnet.request(
                0, "eth_signTransaction", [used_nonce | {"from": a[2], "gasPrice": hex(3 * GWEI)}]
            )
        ),
    )
    blocks = [
        await devnet.request(0, "eth_getBlockByNumber", [hex(n), False]) for n in range(head + 1)
    ]
    return ChainFacts(
        block_hashes=tuple(str(b["hash"]) for b in blocks),
        txs=tuple([await _locate(devnet, kind, tx_hash, raw) for kind, tx_hash, raw in sent]),
        emitter=emitter,
        reverter=reverter,
        deploy_block=3,
        log_block=4,
        underpriced_raw=underpriced_raw,
        used_nonce_raws=used_nonce_raws,
    )


async def _locate(devnet: Devnet, kind: str, tx_hash: str, raw: str) -> Tx:
    tx = await devnet.request(0, "eth_getTransactionByHash", [tx_hash])
    return Tx(
        hash=tx_hash,
        raw=raw,
        block_number=int(tx["blockNumber"], 16),
        block_hash=str(tx["blockHash"]),
        index=int(tx["transactionIndex"], 16),
        kind=kind,
    )
