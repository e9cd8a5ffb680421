"""What ``lasso probe`` asks a provider, and what its answers mean.

:data:`METHODS` is the catalogue of common methods probed, each with params built from
a :class:`ProbeContext`: the provider's own latest block (number, hash), an address and
a transaction seen in or near it, so every call is valid for that node. Traces use
``callTracer`` and filters a single block, so answers stay small on a busy chain.

:func:`method_verdict` turns an error answer into a verdict. A method counts as
unsupported only when the node says so: a method-not-found or "not supported"-type
error, as :mod:`lasso.core.classify` reads it (and never for a -32602 invalid-params answer,
which judges the params, not the method). Any other error means the method exists;
a rate limit, timeout or failure leaves it unknown.

Pure: no I/O; the shell sends the calls.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final

import msgspec

from lasso.core.classify import ErrorCategory, Reason, category_of

__all__ = [
    "METHODS",
    "ZERO_ADDRESS",
    "ZERO_HASH",
    "ProbeContext",
    "Verdict",
    "method_verdict",
    "state_refused",
]

ZERO_ADDRESS: Final = "0x" + "00" * 20
ZERO_HASH: Final = "0x" + "00" * 32


class ProbeContext(msgspec.Struct, frozen=True):
    """What the params are built from: the provider's latest block and what is in it.

    ``tx_hash`` is a transaction mined at or shortly before ``head`` (the zero hash
    when none was found: lookups then answer null, which still shows support);
    ``address`` is its sender, else the block's miner.
    """

    head: int
    block_hash: str
    address: str = ZERO_ADDRESS
    tx_hash: str = ZERO_HASH

    @property
    def head_hex(self) -> str:
        return hex(self.head)

    def call(self) -> dict[str, str]:
        """A plain call: a value-less message to ``address`` (valid on any node)."""
        return {"from": self.address, "to": self.address, "data": "0x"}


_Params = Callable[[ProbeContext], list[Any]]
_CALL_TRACER: Final = {"tracer": "callTracer"}


def _none(_: ProbeContext) -> list[Any]:
    return []


#: The probed methods, in the order the table lists them, with their params.
METHODS: Final[tuple[tuple[str, _Params], ...]] = (
    ("eth_chainId", _none),
    ("net_version", _none),
    ("net_listening", _none),
    ("net_peerCount", _none),
    ("web3_clientVersion", _none),
    ("web3_sha3", lambda c: ["0x68656c6c6f"]),
    ("eth_syncing", _none),
    ("eth_blockNumber", _none),
    ("eth_getBlockByNumber", lambda c: [c.head_hex, False]),
    ("eth_getBlockByHash", lambda c: [c.block_hash, False]),
    ("eth_getBlockReceipts", lambda c: [c.head_hex]),
    ("eth_getBlockTransactionCountByNumber", lambda c: [c.head_hex]),
    ("eth_getBlockTransactionCountByHash", lambda c: [c.block_hash]),
    ("eth_getUncleCountByBlockNumber", lambda c: [c.head_hex]),
    ("eth_getTransactionByHash", lambda c: [c.tx_hash]),
    ("eth_getTransactionReceipt", lambda c: [c.tx_hash]),
    ("eth_getTransactionByBlockNumberAndIndex", lambda c: [c.head_hex, "0x0"]),
    ("eth_getBalance", lambda c: [c.address, c.head_hex]),
    ("eth_getCode", lambda c: [c.address, c.head_hex]),
    ("eth_getStorageAt", lambda c: [c.address, "0x0", c.head_hex]),
    ("eth_getTransactionCount", lambda c: [c.address, c.head_hex]),
    ("eth_getProof", lambda c: [c.address, [], c.head_hex]),
    ("eth_call", lambda c: [c.call(), c.head_hex]),
    ("eth_estimateGas", lambda c: [c.call(), c.head_hex]),
    ("eth_createAccessList", lambda c: [c.call(), c.head_hex]),
    ("eth_simulateV1", lambda c: [{"blockStateCalls": [{"calls": [c.call()]}]}, c.head_hex]),
    ("eth_gasPrice", _none),
    ("eth_maxPriorityFeePerGas", _none),
    ("eth_feeHistory", lambda c: ["0x4", c.head_hex, [25, 75]]),
    ("eth_blobBaseFee", _none),
    ("eth_getLogs", lambda c: [{"fromBlock": c.head_hex, "toBlock": c.head_hex}]),
    ("debug_traceTransaction", lambda c: [c.tx_hash, _CALL_TRACER]),
    ("debug_traceCall", lambda c: [c.call(), c.head_hex, _CALL_TRACER]),
    ("debug_traceBlockByNumber", lambda c: [c.head_hex, _CALL_TRACER]),
    ("trace_block", lambda c: [c.head_hex]),
    ("trace_transaction", lambda c: [c.tx_hash]),
    (
        "trace_filter",
        lambda c: [{"fromBlock": c.head_hex, "toBlock": c.head_hex, "count": 1}],
    ),
    ("trace_call", lambda c: [c.call(), ["trace"], c.head_hex]),
    ("txpool_status", _none),
    ("txpool_content", _none),
)


class Verdict(enum.Enum):
    SUPPORTED = "yes"
    UNSUPPORTED = "no"
    UNKNOWN = "?"


_UNSUPPORTED_REASONS: Final = frozenset({Reason.METHOD_NOT_FOUND, Reason.UNSUPPORTED})
_SAYS_NOTHING: Final = frozenset({ErrorCategory.RATE_LIMIT, ErrorCategory.PROVIDER_FAILURE})


def method_verdict(code: int, reason: Reason | str) -> Verdict:
    """What a JSON-RPC error answer to a probe says about the method.

    ``reason`` is the error's classification (:func:`lasso.core.classify.classify_rpc_error`,
    which the transport already applied). Rate limits and provider failures say nothing
    about the method; the rest (a revert, a missing block, a range limit...) show the
    node ran it.
    """
    if code == -32601:
        return Verdict.UNSUPPORTED
    if code == -32602:
        return Verdict.SUPPORTED  # the node judged the params: it knows the method
    try:
        reason = Reason(reason)
    except ValueError:
        return Verdict.UNKNOWN
    if reason in _UNSUPPORTED_REASONS:
        return Verdict.UNSUPPORTED
    if category_of(reason) in _SAYS_NOTHING:
        return Verdict.UNKNOWN
    return Verdict.SUPPORTED


_PRUNED_REASONS: Final = frozenset({Reason.BLOCK_NOT_AVAILABLE, Reason.HISTORY_UNAVAILABLE})


def state_refused(reason: Reason | str) -> bool:
    """Whether an error answer to a state read at a block says the node lacks that
    block's state (pruned, or not yet there): anvil's ``BlockOutOfRangeError``, geth's
    "missing trie node" or "header not found", "state not available" and the like."""
    return reason in _PRUNED_REASONS
