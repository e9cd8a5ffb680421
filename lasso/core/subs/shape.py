"""Backfilled heads shaped exactly like the live ``newHeads`` notifications of a chain.

Live newHeads payloads differ per node implementation, and ``eth_getBlockByNumber(n,
false)`` (what a backfill fetches) differs again: it adds ``size``, ``uncles``,
``transactions`` and ``withdrawals``, and geth orders its keys alphabetically. A client
must not be able to tell a backfilled head from a live one, so :class:`HeadShape`
learns the field list (names and order) from the chain's live heads and
:meth:`HeadShape.project` reduces a block to exactly those fields, in that order:

* a field the live heads carry but the block lacks is omitted, unless the live heads
  carry it as ``null`` (geth and erigon print pre-fork fields such as
  ``withdrawalsRoot: null``), in which case it is ``null``;
* ``transactions``, when the live heads carry it (anvil does), is always a list of
  hashes: full transaction objects become their ``hash``.

Until a live head has been seen the shape is geth's newHeads header (its ``Header``
JSON: :data:`GETH_HEAD_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["GETH_HEAD_FIELDS", "HeadShape"]

# geth's newHeads payload (core/types Header.MarshalJSON): header fields, hash last.
GETH_HEAD_FIELDS: Final = (
    "parentHash",
    "sha3Uncles",
    "miner",
    "stateRoot",
    "transactionsRoot",
    "receiptsRoot",
    "logsBloom",
    "difficulty",
    "number",
    "gasLimit",
    "gasUsed",
    "timestamp",
    "extraData",
    "mixHash",
    "nonce",
    "baseFeePerGas",
    "withdrawalsRoot",
    "blobGasUsed",
    "excessBlobGas",
    "parentBeaconBlockRoot",
    "requestsHash",
    "hash",
)


class HeadShape:
    """The field list of one chain's live newHeads payloads."""

    def __init__(self) -> None:
        self._fields: tuple[str, ...] = GETH_HEAD_FIELDS
        self._nulls: frozenset[str] = frozenset()
        self._learned = False

    @property
    def fields(self) -> tuple[str, ...]:
        return self._fields

    @property
    def learned(self) -> bool:
        """Whether a live head has been seen (otherwise the geth default applies)."""
        return self._learned

    def learn(self, live_head: Mapping[str, Any]) -> None:
        """Adopt the field list of a live head (the latest one wins: forks add fields)."""
        fields = tuple(live_head)
        if fields != self._fields:
            self._fields = fields
        self._nulls = frozenset(k for k, v in live_head.items() if v is None)
        self._learned = True

    def project(self, block: Mapping[str, Any]) -> dict[str, Any]:
        """``block`` reduced to the live fields, in the live order."""
        out: dict[str, Any] = {}
        for field in self._fields:
            if field in block:
                value = block[field]
                out[field] = _tx_hashes(value) if field == "transactions" else value
            elif field in self._nulls:
                out[field] = None
        return out


def _tx_hashes(value: object) -> object:
    if not isinstance(value, list):
        return value
    return [tx.get("hash") if isinstance(tx, dict) else tx for tx in value]
