"""Which block a request targets: the input of archival and head-aware routing.

Theory of operation
-------------------
``block_target(method, params)`` reads the raw JSON ``params`` bytes of one
request and says which block(s) it needs, as a frozen :class:`BlockTarget`:

* ``NONE``    the method names no block (``eth_chainId``, a transaction by hash);
* ``TAG``     a tag: ``latest``, ``pending``, ``safe``, ``finalized``, ``earliest``;
* ``NUMBER``  one block by number;
* ``RANGE``   an ``eth_getLogs`` / ``eth_newFilter`` range, each end a number or a tag;
* ``HASH``    one block by hash (its height is not known from the request);
* ``UNKNOWN`` malformed params: the analysis never raises, and routing treats
  such a request as targeting nothing in particular, so the node answers the
  malformed input with its own error (transparency).

A block parameter may be written in any form geth's ``BlockNumberOrHash``
takes: a tag, a hex quantity, a bare 32-byte block hash, or an EIP-1898 object
``{"blockNumber": q}`` / ``{"blockHash": h, "requireCanonical": b}``. An omitted
(or ``null``) optional block parameter takes the method's default, ``latest``;
an omitted required one is ``UNKNOWN``. Hex quantities are ``0x`` plus 1-64
hex digits (leading zeros tolerated, as anvil does) of at most ``2**63 - 1``
(geth's ``int64`` block number); anything else is ``UNKNOWN``. Hashes are
lower-cased. Params given by name (a JSON object) are ``UNKNOWN``.

``eth_blockNumber`` targets ``latest``. ``eth_feeHistory`` targets its
``newestBlock`` (the upper end of the blocks it reads).

Methods and the position of their block parameter (``-`` = required):

================================================  ====  ========  =========
method                                            pos   shape     default
================================================  ====  ========  =========
eth_blockNumber                                   -     head      latest
eth_getBlockByNumber                              0     block     -
eth_getBlockTransactionCountByNumber              0     block     -
eth_getTransactionByBlockNumberAndIndex           0     block     -
eth_getUncleByBlockNumberAndIndex                 0     block     -
eth_getUncleCountByBlockNumber                    0     block     -
eth_getBlockReceipts                              0     block     -
eth_getHeaderByNumber                             0     block     -
debug_traceBlockByNumber                          0     block     -
debug_getRawBlock / RawHeader / RawReceipts       0     block     -
trace_block / trace_replayBlockTransactions       0     block     -
eth_getBalance / eth_getCode                      1     block     latest
eth_getTransactionCount                           1     block     latest
eth_call / eth_estimateGas / eth_createAccessList 1     block     latest
eth_simulateV1 / debug_traceCall / trace_callMany 1     block     latest
eth_feeHistory                                    1     block     -
eth_getStorageAt / eth_getProof                   2     block     latest
trace_call                                        2     block     latest
eth_getBlockByHash                                0     hash      -
eth_getBlockTransactionCountByHash                0     hash      -
eth_getTransactionByBlockHashAndIndex             0     hash      -
eth_getUncleByBlockHashAndIndex                   0     hash      -
eth_getUncleCountByBlockHash                      0     hash      -
eth_getHeaderByHash / debug_traceBlockByHash      0     hash      -
eth_getLogs / eth_newFilter                       0     filter    latest..latest
================================================  ====  ========  =========

A filter is ``{"fromBlock", "toBlock"}`` (each defaulting to ``latest``) or
``{"blockHash"}``; both at once is ``UNKNOWN`` (geth refuses it).

The helpers are pure: ``is_head_sensitive()``, ``is_archival(head, threshold)``
and ``highest_block(head)`` take the consensus head as an argument.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

import msgspec

HEAD_TAGS = frozenset({"latest", "pending", "safe", "finalized"})
TAGS = HEAD_TAGS | {"earliest"}
MAX_BLOCK_NUMBER = 2**63 - 1

_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


class TargetKind(Enum):
    NONE = "none"
    TAG = "tag"
    NUMBER = "number"
    RANGE = "range"
    HASH = "hash"
    UNKNOWN = "unknown"


BlockRef = int | str
"""One end of a range: a block number, or a tag from :data:`TAGS`."""


class BlockTarget(msgspec.Struct, frozen=True):
    """The block(s) one request needs. Only the fields of its ``kind`` are set."""

    kind: TargetKind
    tag: str | None = None  # TAG
    number: int | None = None  # NUMBER
    low: BlockRef | None = None  # RANGE: fromBlock
    high: BlockRef | None = None  # RANGE: toBlock
    block_hash: str | None = None  # HASH, lower-case
    require_canonical: bool = False  # HASH, EIP-1898

    def refs(self) -> tuple[BlockRef, ...]:
        """The numbers and tags this target names, in order."""
        if self.kind is TargetKind.TAG and self.tag is not None:
            return (self.tag,)
        if self.kind is TargetKind.NUMBER and self.number is not None:
            return (self.number,)
        if self.kind is TargetKind.RANGE and self.low is not None and self.high is not None:
            return (self.low, self.high)
        return ()

    def is_head_sensitive(self) -> bool:
        """Whether the answer depends on the provider being at the head.

        ``latest``, ``pending``, ``safe``, ``finalized`` (so ``eth_blockNumber``,
        ``eth_call`` at latest) and a range with either end at such a tag.
        """
        return any(isinstance(ref, str) and ref in HEAD_TAGS for ref in self.refs())

    def is_archival(self, consensus_head: int, threshold: int) -> bool:
        """Whether the request needs a block more than ``threshold`` below the head.

        True for ``earliest`` and for any named number ``n`` with
        ``consensus_head - n > threshold``. A hash's height is unknown: False.
        """
        for ref in self.refs():
            if ref == "earliest":
                return True
            if isinstance(ref, int) and consensus_head - ref > threshold:
                return True
        return False

    def highest_block(self, consensus_head: int) -> int | None:
        """The highest block number the request needs, head tags read as the head.

        None when it names no block by number or tag (``NONE``, ``HASH``, ``UNKNOWN``).
        """
        numbers = [_resolve(ref, consensus_head) for ref in self.refs()]
        return max(numbers) if numbers else None


def _resolve(ref: BlockRef, consensus_head: int) -> int:
    if isinstance(ref, int):
        return ref
    return 0 if ref == "earliest" else consensus_head


NO_BLOCK = BlockTarget(TargetKind.NONE)
UNKNOWN = BlockTarget(TargetKind.UNKNOWN)
LATEST = BlockTarget(TargetKind.TAG, tag="latest")


class _Shape(Enum):
    BLOCK = "block"
    HASH = "hash"
    FILTER = "filter"


class _Rule(msgspec.Struct, frozen=True):
    position: int
    shape: _Shape
    default: BlockTarget | None  # None: the parameter is required


def _rules() -> dict[str, _Rule]:
    table: dict[str, _Rule] = {}
    required = _Rule(0, _Shape.BLOCK, None)
    for method in (
        "eth_getBlockByNumber",
        "eth_getBlockTransactionCountByNumber",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getUncleByBlockNumberAndIndex",
        "eth_getUncleCountByBlockNumber",
        "eth_getBlockReceipts",
        "eth_getHeaderByNumber",
        "debug_traceBlockByNumber",
        "debug_getRawBlock",
        "debug_getRawHeader",
        "debug_getRawReceipts",
        "trace_block",
        "trace_replayBlockTransactions",
    ):
        table[method] = required
    for method in (
        "eth_getBalance",
        "eth_getCode",
        "eth_getTransactionCount",
        "eth_call",
        "eth_estimateGas",
        "eth_createAccessList",
        "eth_simulateV1",
        "debug_traceCall",
        "trace_callMany",
    ):
        table[method] = _Rule(1, _Shape.BLOCK, LATEST)
    table["eth_feeHistory"] = _Rule(1, _Shape.BLOCK, None)
    for method in ("eth_getStorageAt", "eth_getProof", "trace_call"):
        table[method] = _Rule(2, _Shape.BLOCK, LATEST)
    for method in (
        "eth_getBlockByHash",
        "eth_getBlockTransactionCountByHash",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getUncleByBlockHashAndIndex",
        "eth_getUncleCountByBlockHash",
        "eth_getHeaderByHash",
        "debug_traceBlockByHash",
    ):
        table[method] = _Rule(0, _Shape.HASH, None)
    latest_range = BlockTarget(TargetKind.RANGE, low="latest", high="latest")
    for method in ("eth_getLogs", "eth_newFilter"):
        table[method] = _Rule(0, _Shape.FILTER, latest_range)
    return table


RULES: dict[str, _Rule] = _rules()


def block_target(method: str, params: bytes) -> BlockTarget:
    """The block(s) ``method`` with these raw JSON ``params`` targets. Never raises."""
    if method == "eth_blockNumber":
        return LATEST
    rule = RULES.get(method)
    if rule is None:
        return NO_BLOCK
    try:
        decoded: Any = msgspec.json.decode(params) if params.strip() else None
    except (msgspec.DecodeError, ValueError, RecursionError):  # ValueError: invalid UTF-8
        return UNKNOWN
    if decoded is None:
        decoded = []
    if not isinstance(decoded, list):
        return UNKNOWN
    value = decoded[rule.position] if rule.position < len(decoded) else None
    if value is None:
        return rule.default if rule.default is not None else UNKNOWN
    if rule.shape is _Shape.HASH:
        return _by_hash(value)
    if rule.shape is _Shape.FILTER:
        return _filter(value)
    return _block_param(value)


def _hash(value: object) -> str | None:
    if isinstance(value, str) and _HASH.fullmatch(value):
        return value.lower()
    return None


def _by_hash(value: object, *, require_canonical: bool = False) -> BlockTarget:
    block_hash = _hash(value)
    if block_hash is None:
        return UNKNOWN
    return BlockTarget(TargetKind.HASH, block_hash=block_hash, require_canonical=require_canonical)


def _ref(value: object) -> BlockRef | None:
    """A tag or a hex quantity, else None."""
    if not isinstance(value, str):
        return None
    if value in TAGS:
        return value
    if _QUANTITY.fullmatch(value):
        number = int(value, 16)
        return number if number <= MAX_BLOCK_NUMBER else None
    return None


def _single(ref: BlockRef | None) -> BlockTarget:
    if ref is None:
        return UNKNOWN
    if isinstance(ref, int):
        return BlockTarget(TargetKind.NUMBER, number=ref)
    return BlockTarget(TargetKind.TAG, tag=ref)


def _block_param(value: object) -> BlockTarget:
    """geth's ``BlockNumberOrHash``: tag, quantity, bare hash or EIP-1898 object."""
    if isinstance(value, dict):
        return _eip1898(value)
    if isinstance(value, str) and len(value) == 66:
        return _by_hash(value)
    return _single(_ref(value))


def _eip1898(value: dict[str, Any]) -> BlockTarget:
    number, block_hash = value.get("blockNumber"), value.get("blockHash")
    canonical = value.get("requireCanonical", False)
    if not isinstance(canonical, bool) or (number is None) == (block_hash is None):
        return UNKNOWN
    if number is not None:
        return _single(_ref(number))
    return _by_hash(block_hash, require_canonical=canonical)


def _filter(value: object) -> BlockTarget:
    if not isinstance(value, dict):
        return UNKNOWN
    low, high = value.get("fromBlock"), value.get("toBlock")
    if value.get("blockHash") is not None:
        if low is not None or high is not None:
            return UNKNOWN
        return _by_hash(value["blockHash"])
    low_ref = "latest" if low is None else _ref(low)
    high_ref = "latest" if high is None else _ref(high)
    if low_ref is None or high_ref is None:
        return UNKNOWN
    return BlockTarget(TargetKind.RANGE, low=low_ref, high=high_ref)
