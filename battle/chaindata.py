"""The real chain data the harness creates on a lockstep devnet, for strategies to draw from.

The chain itself is the transparency corpus's (:func:`lasso.corpus.seed_chain`):
two transfers, a legacy and an access-list transaction, a log-emitting and a
reverting contract deployed with raw init bytecode, two logs and one transaction
reverted on chain. :class:`ChainData` is the frozen view of it the strategies use.
"""

from __future__ import annotations

import msgspec

from lasso.corpus import ChainFacts, seed_chain
from lasso.corpus.contracts import EMITTER_TOPIC
from lasso.devnet import DEV_ACCOUNTS, Devnet

#: Addresses no transaction has touched: no balance, no code, nonce 0.
EMPTY_ADDRESSES: tuple[str, ...] = (
    "0x" + "00" * 19 + "ee",
    "0x" + "5a" * 20,
    "0x000000000000000000000000000000000000dead",
)


class ChainData(msgspec.Struct, frozen=True):
    """What the seeded chain holds: every value here is valid on every node."""

    block_hashes: tuple[str, ...]  # index = block number; the last one is the head
    tx_hashes: tuple[str, ...]
    tx_blocks: tuple[int, ...]  # the block of each transaction, same order
    emitter: str
    reverter: str
    topic: str
    log_block: int
    funded: tuple[str, ...]
    empty: tuple[str, ...]

    @property
    def head(self) -> int:
        return len(self.block_hashes) - 1

    @property
    def addresses(self) -> tuple[str, ...]:
        return (*self.funded, *self.empty, self.emitter, self.reverter)

    @classmethod
    def from_facts(cls, facts: ChainFacts) -> ChainData:
        return cls(
            block_hashes=facts.block_hashes,
            tx_hashes=tuple(t.hash for t in facts.txs),
            tx_blocks=tuple(t.block_number for t in facts.txs),
            emitter=facts.emitter,
            reverter=facts.reverter,
            topic=EMITTER_TOPIC,
            log_block=facts.log_block,
            funded=tuple(a.lower() for a in DEV_ACCOUNTS[:4]),
            empty=EMPTY_ADDRESSES,
        )


async def create_chain_data(devnet: Devnet) -> ChainData:
    """Mine the harness's chain on ``devnet`` (every node alike) and describe it."""
    return ChainData.from_facts(await seed_chain(devnet))
