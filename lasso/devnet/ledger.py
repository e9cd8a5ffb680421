"""The lockstep ledger: which block each node has mined and what it still needs.

Theory of operation
-------------------
The devnet is one logical chain mined onto N anvil nodes. anvil is
deterministic, so two nodes that start from the same genesis and mine the same
transactions, sent in the same order, into blocks with the same timestamps
produce the same block hashes. The ledger records exactly those inputs:

* ``height`` is the logical chain head: the number of blocks sealed so far.
* Each sealed block keeps its timestamp and the raw transactions that were
  sent while it was the next block, in send order.
* ``pending`` holds the raw transactions sent since the last block was sealed.
* Per node: ``head`` (the last block it mined) and ``delivered`` (how many of
  the transactions of block ``head + 1`` are already in its mempool).

A node is *in sync* when ``head == height`` and it holds every pending
transaction. Only nodes in sync receive a new transaction as it is sent,
because that transaction belongs to block ``height + 1``, which is exactly
their next block; and only unpaused nodes in sync mine. A node that is behind (it
was paused, hung or restarted) receives nothing; on catch-up it replays each missed block in
order: the not-yet-delivered transactions of that block, then one mine with
that block's timestamp. Its mempool at each mine therefore matches what the
other nodes had, and its hashes match theirs.

A node whose process died is restarted as a fresh anvil at genesis
(:meth:`Ledger.reset`) and replays the whole chain the same way, so the log
keeps every block (a timestamp and the raw transactions: a day at one block a
second is 86,400 small records). A paused node replays only up to the head it
had when it was paused (:meth:`Ledger.target`).

This module is pure bookkeeping: it never awaits. ``lasso.devnet.network``
does the I/O and reports back which node mined or received what.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlockRecord:
    """The inputs that determine one block: its timestamp and its transactions."""

    number: int
    timestamp: int
    raw_transactions: tuple[str, ...]


class Ledger:
    """Per-node progress along one logical chain; see the module docstring."""

    def __init__(self, node_count: int, *, genesis_timestamp: int, interval_s: int) -> None:
        if node_count < 1:
            raise ValueError("a devnet needs at least one node")
        if interval_s < 1:
            raise ValueError("block timestamps must advance by at least one second")
        self.height = 0
        self.pending: list[str] = []
        self.heads = [0] * node_count
        self.delivered = [0] * node_count
        #: Paused nodes and the head each had when paused.
        self.paused: dict[int, int] = {}
        self._genesis_timestamp = genesis_timestamp
        self._interval_s = interval_s
        self._log: list[BlockRecord] = []

    # --- queries ----------------------------------------------------------

    def check_index(self, index: int) -> None:
        if not 0 <= index < len(self.heads):
            raise IndexError(f"no devnet node {index}; nodes are 0..{len(self.heads) - 1}")

    def in_sync(self) -> list[int]:
        """Nodes at the chain head holding every pending transaction (paused or not)."""
        return [
            i
            for i, head in enumerate(self.heads)
            if head == self.height and self.delivered[i] == len(self.pending)
        ]

    def miners(self) -> list[int]:
        """Nodes that mine the next block: in sync and not paused."""
        return [i for i in self.in_sync() if i not in self.paused]

    def timestamp_of(self, number: int) -> int:
        return self._genesis_timestamp + number * self._interval_s

    def next_replay(self, index: int) -> BlockRecord | None:
        """The next missed block ``index`` must replay, or None at the tip.

        Only the transactions the node does not already hold are included.
        """
        head = self.heads[index]
        if head == self.height:
            return None
        block = self._log[head]  # block n is at n - 1
        undelivered = block.raw_transactions[self.delivered[index] :]
        return BlockRecord(block.number, block.timestamp, undelivered)

    def target(self, index: int) -> int:
        """The block a catching-up node replays to: the tip, or its head when paused."""
        return self.paused.get(index, self.height)

    def undelivered_pending(self, index: int) -> list[str]:
        """Transactions for the next block that a node at the tip still lacks."""
        if self.heads[index] != self.height:
            raise RuntimeError(f"node {index} is behind; replay its missed blocks first")
        return self.pending[self.delivered[index] :]

    # --- transitions --------------------------------------------------------

    def pause(self, index: int) -> None:
        self.check_index(index)
        self.paused.setdefault(index, self.heads[index])

    def unpause(self, index: int) -> None:
        self.paused.pop(index, None)

    def reset(self, index: int) -> None:
        """Node ``index`` is a fresh anvil at genesis (its process was restarted)."""
        self.heads[index] = 0
        self.delivered[index] = 0

    def mempool_emptied(self, index: int) -> None:
        """Node ``index`` holds none of its next block's transactions any more."""
        self.delivered[index] = 0

    def accept_transaction(self, raw: str, receivers: list[int]) -> None:
        """Record a transaction that every node in ``receivers`` accepted.

        Nodes in sync that are not among them (they did not answer) are behind
        from now on: they get it when they catch up.
        """
        if not set(receivers) <= set(self.in_sync()):
            raise RuntimeError("a new transaction can only go to nodes in sync")
        self.pending.append(raw)
        for index in receivers:
            self.delivered[index] += 1

    def transaction_delivered(self, index: int) -> None:
        """One more transaction of node ``index``'s next block reached its mempool."""
        self.delivered[index] += 1

    def seal(self) -> BlockRecord:
        """Close the next block: its transactions are everything pending."""
        self.height += 1
        block = BlockRecord(self.height, self.timestamp_of(self.height), tuple(self.pending))
        self._log.append(block)
        self.pending = []
        return block

    def node_mined(self, index: int, number: int) -> None:
        if number != self.heads[index] + 1 or number > self.height:
            raise RuntimeError(f"node {index} at {self.heads[index]} cannot mine block {number}")
        self.heads[index] = number
        # Whatever it held for this block is mined now. Back at the head, it
        # lacks the transactions sent since the seal (its next block's).
        self.delivered[index] = 0

    @property
    def logged_blocks(self) -> int:
        return len(self._log)
