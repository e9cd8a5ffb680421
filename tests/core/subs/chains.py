"""Toy chains for the subscription tests: heads, branches and their logs.

Heads are named in the tables as ``"a101"`` (block 101 of branch a, parent a100) or
``"b101/a"`` (block 101 of branch b whose parent is a100); branches are one letter a-f.
A hash spells its branch and number, so a failing assertion is readable: ``0xa0…065``.
"""

from __future__ import annotations

import hashlib
from typing import Any

ADDRESS_A = "0x" + "aa" * 20
ADDRESS_B = "0x" + "bb" * 20
TOPIC_X = "0x" + "11" * 32
TOPIC_Y = "0x" + "22" * 32


def hash_of(branch: str, number: int) -> str:
    """Branches are one letter a-f (a hex digit), so the hash is valid hex."""
    return "0x" + branch + format(number, "063x")


def head(spec: str) -> dict[str, Any]:
    """``"a101"`` or ``"b101/a"`` as a newHeads payload."""
    name, _, parent_branch = spec.partition("/")
    branch = name.rstrip("0123456789")
    number = int(name[len(branch) :])
    return {
        "number": hex(number),
        "hash": hash_of(branch, number),
        "parentHash": hash_of(parent_branch or branch, number - 1),
        "timestamp": hex(1_700_000_000 + 12 * number),
    }


def heads(specs: str) -> list[dict[str, Any]]:
    return [head(s) for s in specs.split()]


def name_of(payload: dict[str, Any]) -> str:
    """``"a101"`` for a head payload made by :func:`head`."""
    return f"{payload['hash'][2]}{int(payload['number'], 16)}"


def log(block_hash: str, number: int, index: int, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": ADDRESS_A,
        "topics": [TOPIC_X],
        "data": "0x",
        "blockNumber": hex(number),
        "transactionHash": "0x" + hashlib.sha256(f"{block_hash}{index}".encode()).hexdigest(),
        "transactionIndex": hex(index),
        "blockHash": block_hash,
        "logIndex": hex(index),
        "removed": False,
    }
    out.update(extra)
    return out


class World:
    """A chain that grows and reorganises; hashes are unique per (salt, number, parent)."""

    def __init__(self, base: int, length: int) -> None:
        self.base = base
        self.salt = 0
        self.chain: list[dict[str, Any]] = []
        parent = "0x" + "00" * 32
        for n in range(base, base + length):
            parent = self._append(n, parent)["hash"]

    @property
    def tip(self) -> int:
        return self.base + len(self.chain) - 1

    def block(self, number: int) -> dict[str, Any]:
        return self.chain[number - self.base]

    def has(self, number: int) -> bool:
        return self.base <= number <= self.tip

    def grow(self) -> dict[str, Any]:
        return self._append(self.tip + 1, self.chain[-1]["hash"])

    def reorg(
        self, fork: int, new_length: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Replace blocks from ``fork`` up with ``new_length`` new ones: (orphaned, new)."""
        self.salt += 1
        orphaned = self.chain[fork - self.base :]
        del self.chain[fork - self.base :]
        new = []
        for n in range(fork, fork + new_length):
            new.append(self._append(n, self.chain[-1]["hash"]))
        return orphaned, new

    def logs_of(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        count = int(block["hash"][2:4], 16) % 4  # 0..3 logs per block
        number = int(block["number"], 16)
        return [log(block["hash"], number, i) for i in range(count)]

    def logs_between(self, numbers: range) -> list[dict[str, Any]]:
        return [lg for n in numbers if self.has(n) for lg in self.logs_of(self.block(n))]

    def _append(self, number: int, parent: str) -> dict[str, Any]:
        digest = hashlib.sha256(f"{self.salt}:{number}:{parent}".encode()).hexdigest()
        block = {"number": hex(number), "hash": "0x" + digest, "parentHash": parent}
        self.chain.append(block)
        return block
