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
2. The message, matched case-insensitively against the ordered rules in ``MESSAGE_RULES``.
   Execution and transaction errors come first, so "gas required exceeds allowance" or a
   contract reverting with "rate limit exceeded" stay deterministic; the catch-all
   "exceeded"/"limit reached" rate-limit rule comes last, after the capability rules, so
   "Log response size exceeded" is a capability limit.
3. The code, from ``CODE_RULES``, then the server-error range -32099..-32000.
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

The categories, reasons and rule tables are data, in :mod:`lasso.core.error_rules`
(re-exported here); this module applies them.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from lasso.core.error_rules import (
    CODE_RULES,
    COMPILED_RULES,
    HTTP_4XX,
    ErrorCategory,
    Reason,
    category_of,
)
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


class Classification(msgspec.Struct, frozen=True):
    category: ErrorCategory
    reason: Reason
    retry_after_ms: int | None = None


#: What a -32602 message may turn it into. Invalid params is the node's verdict on the
#: request, so it is answered after one call, unless the message says this node lacks
#: the data (a block it has not seen, pruned state, a range limit) or the method: those
#: may differ between a lagging node and the others, so they fail over. A rate-limit or
#: failure word inside an invalid-params message is not believed.
_PARAMS_MAY_MEAN: Final = frozenset({ErrorCategory.DETERMINISTIC, ErrorCategory.CAPABILITY})
_REVERT_SELECTORS: Final = ("0x08c379a0", "0x4e487b71")  # Error(string), Panic(uint256)
_WITH_RETRY_AFTER: Final = frozenset({ErrorCategory.RATE_LIMIT, ErrorCategory.PROVIDER_FAILURE})


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
    reason = HTTP_4XX.get(status, Reason.HTTP_CLIENT_ERROR if status >= 400 else None)
    if reason is None:
        return Classification(ErrorCategory.PROVIDER_FAILURE, Reason.UNEXPECTED_STATUS)
    return Classification(category_of(reason), reason)


def _reason_from_message(text: str) -> Reason | None:
    if not text:
        return None
    for reason, pattern in COMPILED_RULES:
        if pattern.search(text):
            return reason
    return None


def _reason_from_code(code: int) -> Reason:
    reason = CODE_RULES.get(code)
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
