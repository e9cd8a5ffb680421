"""Classify upstream errors by what the gateway should do next.

Four categories, one action each:

    DETERMINISTIC     the request itself is at fault (revert, bad params, nonce too low):
                      every provider would say the same, so answer the client now.
    CAPABILITY        this provider cannot serve this request (pruned history, block not
                      synced yet, range limit, method missing): try another provider; the
                      breaker is not touched.
    RATE_LIMIT        this provider is throttling us: demote it for ``retry_after_ms``
                      (or a default) and try another; the breaker is not touched.
    PROVIDER_FAILURE  the provider is unwell (internal error, 5xx, timeout, bad auth):
                      try another if the method is replay-safe, and count a breaker failure.

Real providers do not keep to the JSON-RPC codes, so an error is classified in this order,
first match wins:

1. Revert data in ``data`` (an ``Error(string)`` or ``Panic(uint256)`` selector).
2. The message, matched case-insensitively against the ordered rules in ``_MESSAGE_RULES``.
   Execution and transaction errors come first, so "gas required exceeds allowance" or a
   contract reverting with "rate limit exceeded" stay deterministic; the catch-all
   "exceeded"/"limit reached" rate-limit rule comes last, after the capability rules, so
   "Log response size exceeded" is a capability limit.
3. The code, from ``_CODE_RULES``, then the server-error range -32099..-32000.
   For -32602 (invalid params) the code also wins over a message that would make it a
   rate limit or a provider failure: the node has judged the request.

A bare -32000 with a message no rule knows is CAPABILITY (reason
``unclassified_server_error``). Geth and its forks put nearly every application error
under -32000, and the common deterministic ones (reverts, nonce, funds, gas, underpriced)
are already caught by message in step 2, so what is left is an unknown. The reference
returns it to the client as deterministic, which lets one provider's odd error reach the
client although another might have answered. Treating it as PROVIDER_FAILURE would let a
client trip every breaker by sending a request that all providers reject. CAPABILITY
gives it the bounded failover of the dispatch limit (one dispatch for methods that are not
replay-safe, so a transaction is never broadcast twice), never penalises a provider, and
if every provider says the same the client gets that error.

Deliberate departures from the reference's code table: -32004 is EIP-1474's "method not
supported" and so CAPABILITY (the reference calls it a network error); HTTP 413 is
CAPABILITY, since a request too large for one provider says nothing about its health.
-32010/-32015/-32016 mean a revert on Parity, Nethermind and Besu but "backend offline",
"gateway timeout" and "over rate limit" on op-stack proxyd; the messages settle it.
"""

from __future__ import annotations

import enum
import re
from typing import Any, Final

import msgspec

from lasso.core.retry_after import (
    MAX_TEXT_CHARS,
    parse_retry_after_header,
    retry_after_from_data,
    retry_after_from_text,
)

__all__ = [
    "Classification",
    "ErrorCategory",
    "Reason",
    "category_of",
    "classify_http_status",
    "classify_rpc_error",
    "parse_retry_after_header",
]


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


class Classification(msgspec.Struct, frozen=True):
    category: ErrorCategory
    reason: Reason
    retry_after_ms: int | None = None


# Ordered: the first group with a matching pattern decides. Patterns are regular
# expressions over the lower-cased message; most are plain phrases.
_MESSAGE_RULES: Final[tuple[tuple[Reason, tuple[str, ...]], ...]] = (
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

_COMPILED_RULES: Final = tuple(
    (reason, re.compile("|".join(patterns))) for reason, patterns in _MESSAGE_RULES
)

_CODE_RULES: Final[dict[int, Reason]] = {
    3: Reason.EXECUTION_REVERTED,  # geth: EVM revert
    -32700: Reason.PARSE_ERROR,
    -32600: Reason.INVALID_REQUEST,
    -32601: Reason.METHOD_NOT_FOUND,
    -32602: Reason.INVALID_PARAMS,
    -32603: Reason.INTERNAL_ERROR,
    -32000: Reason.UNCLASSIFIED_SERVER_ERROR,  # see module docstring
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

#: What a -32602 message may turn it into. Invalid params is the node's verdict on the
#: request, so it is answered after one call, unless the message says this node lacks
#: the data (a block it has not seen, pruned state, a range limit) or the method: those
#: may differ between a lagging node and the others, so they fail over. A rate-limit or
#: failure word inside an invalid-params message is not believed.
_PARAMS_MAY_MEAN: Final = frozenset({ErrorCategory.DETERMINISTIC, ErrorCategory.CAPABILITY})
_REVERT_SELECTORS: Final = ("0x08c379a0", "0x4e487b71")  # Error(string), Panic(uint256)
_WITH_RETRY_AFTER: Final = frozenset({ErrorCategory.RATE_LIMIT, ErrorCategory.PROVIDER_FAILURE})
_HTTP_4XX: Final[dict[int, Reason]] = {
    401: Reason.AUTH_ERROR,
    403: Reason.AUTH_ERROR,
    408: Reason.TIMEOUT,
    413: Reason.REQUEST_TOO_LARGE,
}


def classify_rpc_error(code: int, message: str, data: bytes | None) -> Classification:
    """Classify one upstream JSON-RPC error object.

    ``data`` is the raw JSON of the error's ``data`` member, if it had one.
    ``retry_after_ms`` is filled in for RATE_LIMIT and PROVIDER_FAILURE when ``data``
    (``retry_after``/``backoff_seconds`` in seconds, ``retry_after_ms``) or the message
    ("try again in 5 seconds") says how long to wait; ``data`` wins.
    """
    decoded = _decode(data)
    if _has_revert_selector(decoded):
        return Classification(ErrorCategory.DETERMINISTIC, Reason.EXECUTION_REVERTED)
    text = message[:MAX_TEXT_CHARS].lower()
    reason = _reason_from_message(text)
    if reason is None or (code == -32602 and category_of(reason) not in _PARAMS_MAY_MEAN):
        reason = _reason_from_code(code)
    category = category_of(reason)
    retry_after_ms = None
    if category in _WITH_RETRY_AFTER:
        retry_after_ms = retry_after_from_data(decoded)
        if retry_after_ms is None:
            retry_after_ms = retry_after_from_text(text)
    return Classification(category, reason, retry_after_ms)


def classify_http_status(
    status: int, retry_after_header: str | None, *, wall_now_s: float | None = None
) -> Classification | None:
    """Classify a non-2xx HTTP answer; ``None`` for 2xx (read the body instead).

    429, 408 and 5xx are decided by the status whatever the body says. For other 4xx a
    caller holding a well-formed JSON-RPC error in the body should classify that with
    :func:`classify_rpc_error` and use this only when the body is not one (HTML, text).
    ``wall_now_s`` (Unix time) is needed to turn an HTTP-date ``Retry-After`` into a
    delay; without it only a delay in seconds is understood.
    """
    if 200 <= status < 300:
        return None
    if status == 429:
        retry_after = parse_retry_after_header(retry_after_header, wall_now_s)
        return Classification(ErrorCategory.RATE_LIMIT, Reason.RATE_LIMIT, retry_after)
    if status >= 500:
        retry_after = parse_retry_after_header(retry_after_header, wall_now_s)
        return Classification(ErrorCategory.PROVIDER_FAILURE, Reason.SERVER_ERROR, retry_after)
    reason = _HTTP_4XX.get(status, Reason.HTTP_CLIENT_ERROR if status >= 400 else None)
    if reason is None:
        return Classification(ErrorCategory.PROVIDER_FAILURE, Reason.UNEXPECTED_STATUS)
    return Classification(category_of(reason), reason)


def _reason_from_message(text: str) -> Reason | None:
    if not text:
        return None
    for reason, pattern in _COMPILED_RULES:
        if pattern.search(text):
            return reason
    return None


def _reason_from_code(code: int) -> Reason:
    reason = _CODE_RULES.get(code)
    if reason is not None:
        return reason
    if -32099 <= code <= -32000:
        return Reason.SERVER_ERROR
    return Reason.UNKNOWN_ERROR


def _decode(data: bytes | None) -> Any:
    if not data:
        return None
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data.decode("utf-8", "replace")


def _has_revert_selector(decoded: Any) -> bool:
    if isinstance(decoded, dict):
        decoded = decoded.get("data")
    return isinstance(decoded, str) and decoded[:10].lower().startswith(_REVERT_SELECTORS)
