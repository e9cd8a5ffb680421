"""Turn one upstream answer into a result or a classified error.

Shared by the HTTP and WebSocket transports: given what came back (an HTTP
status when there is one, the body, the id we sent), return the raw result
bytes or raise the :mod:`lasso.errors` type that says whose fault it was and
what the dispatcher should do next.
"""

from __future__ import annotations

from lasso.core.classify import ErrorCategory, classify_http_status, classify_rpc_error
from lasso.core.jsonrpc import MalformedReply, decode_reply, error_object
from lasso.errors import UpstreamProtocolError, UpstreamRateLimited, UpstreamRpcError

_SNIPPET = 120


def interpret(
    body: bytes | bytearray,
    expected_id: int | str,
    *,
    provider_id: str,
    status: int = 200,
    retry_after: str | None = None,
    wall_now_s: float | None = None,
) -> bytes:
    """Return the raw ``result`` bytes, or raise the classified upstream error.

    ``wall_now_s`` (Unix time) lets an HTTP-date ``Retry-After`` become a delay.
    """
    if status != 200:
        _raise_for_status(body, expected_id, provider_id, status, retry_after, wall_now_s)
    try:
        reply = decode_reply(body, expected_id)
    except MalformedReply as exc:
        raise UpstreamProtocolError(
            f"Invalid JSON-RPC response: {exc}", provider_id=provider_id
        ) from None
    if reply.error is None:
        assert reply.result is not None
        return reply.result
    error = reply.error
    classification = classify_rpc_error(error.code, error.message, bytes(error.data) or None)
    if classification.category is ErrorCategory.RATE_LIMIT:
        raise UpstreamRateLimited(
            f"Rate limited by provider: {error.message}",
            provider_id=provider_id,
            retry_after_ms=classification.retry_after_ms,
        )
    raise UpstreamRpcError(
        error.message,
        provider_id=provider_id,
        rpc_code=error.code,
        raw_error=reply.raw_error,
        category=classification.category.value,
        reason=classification.reason,
    )


def _raise_for_status(
    body: bytes | bytearray,
    expected_id: int | str,
    provider_id: str,
    status: int,
    retry_after: str | None,
    wall_now_s: float | None,
) -> None:
    classification = classify_http_status(status, retry_after, wall_now_s=wall_now_s)
    if classification is None:
        return  # another 2xx: the body decides
    if classification.category is ErrorCategory.RATE_LIMIT:
        raise UpstreamRateLimited(
            f"Rate limited by provider (HTTP {status})",
            provider_id=provider_id,
            retry_after_ms=classification.retry_after_ms,
        )
    if 400 <= status < 500 and status != 408 and _is_jsonrpc(body, expected_id):
        return  # some providers send JSON-RPC errors with a 4xx status
    message = f"Provider infrastructure error (HTTP {status})"
    snippet = body[:_SNIPPET].decode("utf-8", "replace")
    if classification.category is ErrorCategory.PROVIDER_FAILURE:
        raise UpstreamProtocolError(f"{message}: {snippet}", provider_id=provider_id)
    raise UpstreamRpcError(
        message,
        provider_id=provider_id,
        rpc_code=-32002,
        raw_error=error_object(-32002, message),
        category=classification.category.value,
        reason=classification.reason,
    )


def _is_jsonrpc(body: bytes | bytearray, expected_id: int | str) -> bool:
    try:
        decode_reply(body, expected_id)
    except MalformedReply:
        return False
    return True
