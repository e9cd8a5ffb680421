"""Every error Lasso can answer with, as one tree.

The tree is split by whose fault it is and whether a retry elsewhere can help::

    LassoError                      code      HTTP  retry elsewhere?
    ├── ClientError                                  never: the request itself is wrong
    │   ├── ParseError              -32700    400
    │   ├── InvalidRequest          -32600    400
    │   │   ├── BodyTooLarge        -32600    413
    │   │   └── BodyTimeout         -32600    408
    │   ├── MethodNotSupported      -32601    200   (blocked, or subscription over HTTP)
    │   ├── InvalidParams           -32602    200
    │   ├── FilterError             -32000    200   (filter not found, as geth says it)
    │   ├── FilterLimit             -32005    200   (too many filters for a client / in all)
    │   ├── UnknownTarget           -32602    400   (chain or provider; 404 for a profile)
    │   ├── Unauthorized            -32001    401   (API key missing or wrong)
    │   └── ClientRateLimited       -32005    429   (over the client's limit; Retry-After)
    ├── UpstreamError                                the provider failed or refused
    │   ├── UpstreamTimeout         -32007    200   yes (replay-safe methods)
    │   ├── UpstreamNetworkError    -32004    200   yes; always when never_sent
    │   ├── UpstreamProtocolError   -32002    200   yes (5xx, HTML, bad JSON, wrong id)
    │   ├── UpstreamRateLimited     -32005    200   yes, and the provider is demoted
    │   └── UpstreamRpcError        (theirs)  200   by category: see core.classify
    ├── NoProviderAvailable         -32000    200   the attempts are in ``data``
    │   └── RequestQuarantined      -32000    200   not for a while: lost two providers mid-request
    ├── LocalCapacity               -32008    503   later
    ├── ServerBusy                  -32005    503   later (Retry-After): connections, bodies
    └── InternalError               -32603    500   our bug

Third-party exceptions are translated into this tree once, at the adapter
edge (``lasso.upstream``). The front end renders any ``LassoError`` with
:func:`lasso.core.jsonrpc.error_body` (under ``reply_id``, the client's id when
the request could be read that far); anything else that escapes is a bug and
becomes ``InternalError`` without a stack trace reaching the client.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LassoError(Exception):
    """Base of every error Lasso answers with."""

    code: ClassVar[int] = -32603
    http_status: ClassVar[int] = 500
    #: The raw JSON id the answer carries when the error is about a whole
    #: request: the client's own, if it could be read; ``None`` means ``null``.
    reply_id: bytes | None = None

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def status(self) -> int:
        return self.http_status


# --- the client's fault -----------------------------------------------------


class ClientError(LassoError):
    """The request is wrong; no provider could answer it better."""

    http_status = 400


class ParseError(ClientError):
    code = -32700


class InvalidRequest(ClientError):
    code = -32600


class BodyTooLarge(InvalidRequest):
    http_status = 413


class BodyTimeout(InvalidRequest):
    http_status = 408


class MethodNotSupported(ClientError):
    code = -32601
    http_status = 200


class InvalidParams(ClientError):
    code = -32602
    http_status = 200


class FilterError(ClientError):
    """A gateway-served filter refused, in geth's words (``filter not found``)."""

    code = -32000
    http_status = 200


class FilterLimit(ClientError):
    """A new filter would pass ``[filters]`` ``max_per_client`` or ``max_total``
    (EIP-1474's -32005, "limit exceeded")."""

    code = -32005
    http_status = 200


class UnknownTarget(ClientError):
    """An unknown chain, provider or profile named by the URL or a header."""

    code = -32602

    def __init__(self, message: str, *, http_status: int = 400, data: Any = None) -> None:
        super().__init__(message, data=data)
        self._status = http_status

    def status(self) -> int:
        return self._status


class Unauthorized(ClientError):
    """``[auth]`` is on and the request carries no valid API key (:mod:`lasso.web.gate`)."""

    code = -32001
    http_status = 401


class ClientRateLimited(ClientError):
    """The client key is over its ``[rate_limit]``: its token bucket is empty, or it has
    too many requests in flight. ``data`` carries ``retry_after_ms``; over HTTP the
    answer is 429 with ``Retry-After`` (whole seconds, rounded up)."""

    code = -32005
    http_status = 429

    def __init__(self, message: str, *, retry_after_ms: int) -> None:
        super().__init__(message, data={"retry_after_ms": retry_after_ms})
        self.retry_after_ms = retry_after_ms

    @property
    def retry_after_s(self) -> int:
        return max(1, -(-self.retry_after_ms // 1000))


# --- the provider's fault ---------------------------------------------------


class UpstreamError(LassoError):
    """One attempt at one provider failed. Carries which provider."""

    http_status = 200

    def __init__(self, message: str, *, provider_id: str = "", data: Any = None) -> None:
        super().__init__(message, data=data)
        self.provider_id = provider_id


class UpstreamTimeout(UpstreamError):
    code = -32007


class UpstreamNetworkError(UpstreamError):
    """Connect, read or write failed.

    ``never_sent`` is true when the request provably never left (connection
    refused): then even a non-replayable method may go to another provider.
    """

    code = -32004

    def __init__(
        self, message: str, *, provider_id: str = "", never_sent: bool = False, data: Any = None
    ) -> None:
        super().__init__(message, provider_id=provider_id, data=data)
        self.never_sent = never_sent


class UpstreamProtocolError(UpstreamError):
    """The provider answered, but not with a usable JSON-RPC response."""

    code = -32002


class UpstreamRateLimited(UpstreamError):
    code = -32005

    def __init__(
        self, message: str, *, provider_id: str = "", retry_after_ms: int | None = None
    ) -> None:
        super().__init__(message, provider_id=provider_id)
        self.retry_after_ms = retry_after_ms


class UpstreamRpcError(UpstreamError):
    """The provider answered with a JSON-RPC error object.

    ``raw_error`` is the provider's error object as bytes, passed to the
    client unchanged when the error is returned. ``category`` is the
    :class:`lasso.core.classify.ErrorCategory` value deciding what happens.
    """

    def __init__(
        self,
        message: str,
        *,
        provider_id: str,
        rpc_code: int,
        raw_error: bytes,
        category: str,
        reason: str = "",
    ) -> None:
        super().__init__(message, provider_id=provider_id)
        self.rpc_code = rpc_code
        self.raw_error = raw_error
        self.category = category
        self.reason = reason


# --- nobody could answer ----------------------------------------------------


class NoProviderAvailable(LassoError):
    """Every attempt failed, or no provider could be tried at all."""

    code = -32000
    http_status = 200


class RequestQuarantined(NoProviderAvailable):
    """The request lost the connection to two providers mid-request, as a request that
    crashes nodes does: it went to no other, and the same request is refused for a
    while without reaching any provider (:mod:`lasso.core.poison`)."""


class LocalCapacity(LassoError):
    code = -32008
    http_status = 503


class ServerBusy(LassoError):
    """Lasso itself is at a front-end limit (connections, buffered request bodies)."""

    code = -32005
    http_status = 503


class InternalError(LassoError):
    """Our bug. The message never carries a stack trace."""

    code = -32603
    http_status = 500
