"""The vocabulary of upstream errors and the tables that map them to it.

``ErrorCategory`` is what the gateway does next, ``Reason`` why (each reason
belongs to exactly one category, :func:`category_of`). ``MESSAGE_RULES`` (in
order, first match wins), ``CODE_RULES`` and ``HTTP_4XX`` are the data
:mod:`lasso.core.classify` applies; its docstring says in what order and why
the tables are shaped as they are.
"""

from __future__ import annotations

import enum
import re
from typing import Final


class ErrorCategory(enum.Enum):
    DETERMINISTIC = "deterministic"
    CAPABILITY = "capability"
    RATE_LIMIT = "rate_limit"
    PROVIDER_FAILURE = "provider_failure"


class Reason(enum.StrEnum):
    # DETERMINISTIC
    EXECUTION_REVERTED = "execution_reverted"
    TRANSACTION_REJECTED = "transaction_rejected"
    INVALID_PARAMS = "invalid_params"
    INVALID_REQUEST = "invalid_request"
    PARSE_ERROR = "parse_error"
    # CAPABILITY
    METHOD_NOT_FOUND = "method_not_found"
    BLOCK_NOT_AVAILABLE = "block_not_available"
    HISTORY_UNAVAILABLE = "history_unavailable"
    RANGE_TOO_LARGE = "range_too_large"
    RESULT_TOO_LARGE = "result_too_large"
    REQUEST_TOO_LARGE = "request_too_large"
    EXECUTION_TIMEOUT = "execution_timeout"
    UNSUPPORTED = "unsupported"
    RESOURCE_NOT_FOUND = "resource_not_found"
    UNCLASSIFIED_SERVER_ERROR = "unclassified_server_error"
    #: A null-id "could not read the request" that may be another request's (upstream.ws.pending).
    UNATTRIBUTED = "unattributed"
    # RATE_LIMIT
    RATE_LIMIT = "rate_limit"
    # PROVIDER_FAILURE
    INTERNAL_ERROR = "internal_error"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    AUTH_ERROR = "auth_error"
    HTTP_CLIENT_ERROR = "http_client_error"
    UNEXPECTED_STATUS = "unexpected_status"
    UNKNOWN_ERROR = "unknown_error"


_DETERMINISTIC = frozenset(
    {
        Reason.EXECUTION_REVERTED,
        Reason.TRANSACTION_REJECTED,
        Reason.INVALID_PARAMS,
        Reason.INVALID_REQUEST,
        Reason.PARSE_ERROR,
    }
)
_CAPABILITY = frozenset(
    {
        Reason.METHOD_NOT_FOUND,
        Reason.BLOCK_NOT_AVAILABLE,
        Reason.HISTORY_UNAVAILABLE,
        Reason.RANGE_TOO_LARGE,
        Reason.RESULT_TOO_LARGE,
        Reason.REQUEST_TOO_LARGE,
        Reason.EXECUTION_TIMEOUT,
        Reason.UNSUPPORTED,
        Reason.RESOURCE_NOT_FOUND,
        Reason.UNCLASSIFIED_SERVER_ERROR,
        Reason.UNATTRIBUTED,
    }
)


def category_of(reason: Reason) -> ErrorCategory:
    """The category a reason belongs to; each reason belongs to exactly one."""
    if reason in _DETERMINISTIC:
        return ErrorCategory.DETERMINISTIC
    if reason in _CAPABILITY:
        return ErrorCategory.CAPABILITY
    if reason is Reason.RATE_LIMIT:
        return ErrorCategory.RATE_LIMIT
    return ErrorCategory.PROVIDER_FAILURE


# Ordered: the first group with a matching pattern decides. Patterns are regular
# expressions over the lower-cased message; most are plain phrases.
MESSAGE_RULES: Final[tuple[tuple[Reason, tuple[str, ...]], ...]] = (
    (
        Reason.EXECUTION_REVERTED,
        (
            "revert",
            "vm exception",
            "out of gas",
            "gas required exceeds allowance",
            "gas uint64 overflow",
            "invalid opcode",
            "invalid jump",
            "stack underflow",
            "stack overflow",
            "stack limit reached",
            "max code size exceeded",
            "max initcode size exceeded",
            "evm error",
        ),
    ),
    (
        Reason.TRANSACTION_REJECTED,
        (
            "nonce too low",
            "nonce too high",
            "does not match sender account nonce",
            "insufficient funds",
            "intrinsic gas too low",
            "gas limit below intrinsic gas",
            "gas limit reached",
            "exceeds block gas limit",
            "already known",
            "known transaction",  # older geth
            "already imported",
            "alreadyknown",  # Nethermind
            "already_exists",  # Erigon
            "already in pool",
            "already in mempool",
            "transaction underpriced",
            "max fee per gas",
            "max priority fee per gas",
            "max fee per blob gas",
            "fee cap less than block base fee",
            "exceeds the configured cap",
            "upfront cost exceeds",
            "invalid sender",
            "transaction type not supported",
            "only replay-protected",
            "too many blobs",
        ),
    ),
    (
        Reason.INVALID_PARAMS,
        (
            "invalid block range",
            "invalid argument",
            "cannot unmarshal",
            "unable to decode",
            "invalid hex",
            "odd length",
            "hex string without 0x prefix",
            "hex number with leading zero",
            "wrong number of arguments",
            "missing value for required argument",
            "invalid address",
        ),
    ),
    (
        Reason.RATE_LIMIT,
        (
            r"rate[ -]?limit",
            "rate exceeded",
            "too many requests",
            "throttl",
            "quota",
            "compute units",
            "credits limited",
            "request limit",
            "requests per second",
            "rps limit",
            "request count exceeded",
            "capacity limit",
            "over capacity",
            "timeout on the free tier",
        ),
    ),
    (
        Reason.AUTH_ERROR,
        (
            "unauthorized",
            "authenticat",
            "api key",
            "invalid project id",
        ),
    ),
    (
        Reason.BLOCK_NOT_AVAILABLE,
        (
            "header not found",
            "block not found",
            r"unknown block\b",
            "blockoutofrange",
            "block is out of range",
            "block height is",
            "greater than current head",
            "node is syncing",
        ),
    ),
    (
        Reason.HISTORY_UNAVAILABLE,
        (
            "missing trie node",
            "pruned",
            "pruning",
            "archive",
            "historical state",
            "state not available",
            "state is not available",
            "state unavailable",  # Besu "World state unavailable for block"
            "state histor",  # geth "state histories haven't been fully indexed yet"
            "fully indexed",
        ),
    ),
    (
        Reason.RESULT_TOO_LARGE,
        (
            "query returned more than",
            "too many results",
            "result set too large",
            "result limit exceeded",
            "too many logs",
            "response size",
            "response too large",
        ),
    ),
    (
        Reason.RANGE_TOO_LARGE,
        (
            "block range",
            "range is too large",
            "range too large",
            "too wide",
            "ranges over",
            "is limited to",
            "maximum block range",
            "max block range",
        ),
    ),
    (
        Reason.METHOD_NOT_FOUND,
        (
            "method not found",
            "does not exist",
            "not whitelisted",
            "unsupported method",
            "method not supported",
            "method not available",
            # anvil over WebSocket, for a method it does not know (HTTP says -32601)
            "did not match any variant of untagged enum ethrpccall",
        ),
    ),
    (
        Reason.REQUEST_TOO_LARGE,
        ("batch", "request body too large", "request too large", "payload too large"),
    ),
    (Reason.EXECUTION_TIMEOUT, ("execution aborted",)),
    (
        Reason.UNAVAILABLE,
        (
            "please retry",
            "try again",
            "temporarily unavailable",
            "service unavailable",
            "backend offline",
            "no backend",
            "not healthy",
            "overloaded",
            "connection",
        ),
    ),
    (Reason.TIMEOUT, ("timeout", "timed out")),
    (Reason.INTERNAL_ERROR, ("internal error", "internal server error")),
    (
        Reason.UNSUPPORTED,
        (
            "not supported",
            "unsupported",
            "does not support",
            "not available",
            "not enabled",
            "specify an address",
            "dedicated full node",
        ),
    ),
    (Reason.RATE_LIMIT, ("exceeded", "limit reached")),
)

COMPILED_RULES: Final = tuple(
    (reason, re.compile("|".join(patterns))) for reason, patterns in MESSAGE_RULES
)

CODE_RULES: Final[dict[int, Reason]] = {
    3: Reason.EXECUTION_REVERTED,  # geth: EVM revert
    -32700: Reason.PARSE_ERROR,
    -32600: Reason.INVALID_REQUEST,
    -32601: Reason.METHOD_NOT_FOUND,
    -32602: Reason.INVALID_PARAMS,
    -32603: Reason.INTERNAL_ERROR,
    -32000: Reason.UNCLASSIFIED_SERVER_ERROR,  # see lasso.core.classify
    -32001: Reason.RESOURCE_NOT_FOUND,  # EIP-1474 resource not found
    -32002: Reason.UNAVAILABLE,  # EIP-1474 resource unavailable
    -32003: Reason.TRANSACTION_REJECTED,  # EIP-1474 transaction rejected
    -32004: Reason.METHOD_NOT_FOUND,  # EIP-1474 method not supported
    -32005: Reason.RATE_LIMIT,  # EIP-1474 limit exceeded
    -32007: Reason.RATE_LIMIT,  # QuickNode "N/second request limit reached"
    -32010: Reason.EXECUTION_REVERTED,  # Parity transaction error
    -32015: Reason.EXECUTION_REVERTED,  # Parity/Nethermind "VM execution error."
    -32016: Reason.EXECUTION_REVERTED,  # Besu
    -32046: Reason.RATE_LIMIT,
    -32614: Reason.RANGE_TOO_LARGE,  # QuickNode eth_getLogs range limit
    -32701: Reason.UNSUPPORTED,  # PublicNode request restrictions
    -31001: Reason.SERVER_ERROR,  # Pocket
    -31002: Reason.SERVER_ERROR,  # Pocket
    14: Reason.SERVER_ERROR,  # dRPC
    23: Reason.SERVER_ERROR,  # dRPC unsupported subscription
    26: Reason.BLOCK_NOT_AVAILABLE,  # dRPC "Unknown block"
    30: Reason.RATE_LIMIT,  # dRPC "timeout on the free tier"
    35: Reason.RANGE_TOO_LARGE,  # dRPC "ranges over N blocks are not supported on freetier"
    429: Reason.RATE_LIMIT,  # Alchemy puts the HTTP status in the JSON-RPC code
}

#: The 4xx statuses that say more than "client error" (429 is decided before this table).
HTTP_4XX: Final[dict[int, Reason]] = {
    401: Reason.AUTH_ERROR,
    403: Reason.AUTH_ERROR,
    408: Reason.TIMEOUT,
    413: Reason.REQUEST_TOO_LARGE,
}
