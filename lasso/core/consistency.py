"""Consistency decisions: the head floor, and "empty is not an answer from a node that is behind".

Pure: the shells (:mod:`lasso.headfloor`, :mod:`lasso.emptycheck`) pass in the
chain state they read and act on the answer.

Theory of operation
-------------------
**Monotonic head.** Every chain keeps a :class:`HeadFloor`: the highest head
the gateway has answered (an ``eth_blockNumber`` result, the number of a
``latest`` block) or delivered (a ``newHeads`` notification sent to a client).
It only goes up. An ``eth_blockNumber`` answer below it is answered with the
floor instead, written as a node writes a quantity (``"0x…"``, minimal lowercase
hex); a ``latest`` block below it is fetched again by number (the shell does
that: a block is never invented). The consensus head itself may go down (see
:mod:`lasso.core.chainstate`); what the clients were told does not.

**Empty answers.** :func:`needed_block` looks at an answer that says "nothing":
``null`` for a block, a header, a transaction, a receipt or a count, ``[]`` for
``eth_getLogs``. It returns the block the answering provider must have reached
for the answer to stand, or ``None`` when it stands as it is:

    no chain state (no consensus head)          stands: nothing to judge by
    a block by number at or below the           needs that block, whatever the
    consensus head or the floor ("no such       provider's recorded height: the block
    block" methods only)                        exists (someone announced it), so a
                                                node saying it does not is not at it
                                                (a restarted node replaying from
                                                genesis still recorded at its old head)
    by number / range, provider at the block    stands (a genuine null)
    by number / range, the block past every     stands: nobody is known to have it
    known head and the floor                    (a block not mined yet)
    by number / range, provider below the block needs that block
    by hash (block, transaction, receipt),      stands
    provider at the consensus head and floor
    by hash, provider behind them               needs max(consensus head, floor)

A provider never seen (``height is None``) is not known to have any block. The
"no such block" methods are those whose ``null`` can only mean the block is
unknown (a block, a header, its receipts, a count): an index past the end
(``eth_getTransactionByBlockNumberAndIndex``) or a range without logs is a
genuine empty answer from a node at the block. Only
the highest *numbered* end of a range counts: a tag is the answering node's own
head, which it has by definition.
"""

from __future__ import annotations

import re

import msgspec

from lasso.core.block_target import BlockTarget, TargetKind

__all__ = [
    "EMPTY_CHECKED",
    "HeadFloor",
    "block_number_of",
    "is_empty",
    "needed_block",
    "quantity",
]

#: Methods whose ``null`` means "no such block / transaction / receipt".
_NULL_MEANS_UNKNOWN = frozenset(
    {
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getBlockReceipts",
        "eth_getHeaderByNumber",
        "eth_getHeaderByHash",
        "eth_getBlockTransactionCountByNumber",
        "eth_getBlockTransactionCountByHash",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getUncleCountByBlockNumber",
        "eth_getUncleCountByBlockHash",
        "eth_getUncleByBlockNumberAndIndex",
        "eth_getUncleByBlockHashAndIndex",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
    }
)
#: By-number methods whose ``null`` can only mean "no such block" (never "nothing in it").
_NULL_MEANS_NO_BLOCK = frozenset(
    {
        "eth_getBlockByNumber",
        "eth_getBlockReceipts",
        "eth_getHeaderByNumber",
        "eth_getBlockTransactionCountByNumber",
        "eth_getUncleCountByBlockNumber",
    }
)
#: Lookups by transaction hash: the block is unknown from the request.
_BY_TX_HASH = frozenset({"eth_getTransactionByHash", "eth_getTransactionReceipt"})
#: Every method :func:`needed_block` may judge.
EMPTY_CHECKED = _NULL_MEANS_UNKNOWN | {"eth_getLogs"}

_QUANTITY = re.compile(rb'\s*"0x([0-9a-fA-F]{1,64})"\s*')


class _Numbered(msgspec.Struct):
    number: str | None = None


_decode_numbered = msgspec.json.Decoder(_Numbered | None).decode


def quantity(raw: bytes) -> int | None:
    """The integer in a JSON quantity result (``"0x1a"``), or None if it is not one."""
    match = _QUANTITY.fullmatch(raw)
    return None if match is None else int(match.group(1), 16)


def block_number_of(raw: bytes) -> int | None:
    """The ``number`` of a block result, or None (``null``, pending without a number, junk)."""
    try:
        block = _decode_numbered(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if block is None or block.number is None:
        return None
    return quantity(b'"%s"' % block.number.encode())


def is_empty(method: str, raw: bytes) -> bool:
    """Whether ``raw`` is the "nothing" answer of ``method`` (``null``, or ``[]`` for logs)."""
    if len(raw) > 16:
        return False
    stripped = raw.strip()
    if method == "eth_getLogs":
        return stripped.startswith(b"[") and stripped.endswith(b"]") and not stripped[1:-1].strip()
    return stripped == b"null" and method in _NULL_MEANS_UNKNOWN


def needed_block(
    method: str,
    target: BlockTarget,
    *,
    height: int | None,
    consensus_head: int | None,
    floor: int | None,
    highest_known: int | None,
) -> int | None:
    """The block the provider that gave an empty answer must have reached; see the module doc.

    ``height`` is that provider's, ``highest_known`` the highest any provider reported.
    Call it only for an answer :func:`is_empty` says is empty.
    """
    if consensus_head is None:
        return None
    if target.kind in (TargetKind.NUMBER, TargetKind.TAG, TargetKind.RANGE):
        numbers = [ref for ref in target.refs() if isinstance(ref, int)]
        if not numbers:
            return None
        need = max(numbers)
        known = max(consensus_head, floor or 0, highest_known or 0)
        if need > known:
            return None
        if method in _NULL_MEANS_NO_BLOCK and need <= max(consensus_head, floor or 0):
            return need  # the block exists: "no such block" is never genuine
        if height is not None and height >= need:
            return None
        return need
    if target.kind is TargetKind.HASH or method in _BY_TX_HASH:
        need = max(consensus_head, floor or 0)
        if height is not None and height >= need:
            return None
        return need
    return None


class HeadFloor:
    """The highest head this gateway has answered or delivered for one chain."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: int | None = None

    def raise_to(self, number: int) -> None:
        if self.value is None or number > self.value:
            self.value = number

    def block_number(self, raw: bytes) -> bytes:
        """An ``eth_blockNumber`` answer, raised to the floor if below it (the floor follows)."""
        number = quantity(raw)
        if number is None:
            return raw
        if self.value is not None and number < self.value:
            return b'"0x%x"' % self.value
        self.raise_to(number)
        return raw

    def below(self, number: int) -> int | None:
        """The floor if ``number`` (a ``latest`` block's) is below it; else raise to it, None."""
        if self.value is not None and number < self.value:
            return self.value
        self.raise_to(number)
        return None

    def delivered(self, head: object) -> None:
        """A ``newHeads`` payload (decoded) sent to clients raises the floor to its number."""
        if isinstance(head, dict):
            number = head.get("number")
            if isinstance(number, str):
                value = quantity(b'"%s"' % number.encode())
                if value is not None:
                    self.raise_to(value)
