"""CORS for the whole front door: an ASGI layer around the fast path and Quart alike.

The decisions are :class:`lasso.core.cors.CorsPolicy`'s; this layer finds the
``Origin`` header, answers preflights itself (``OPTIONS`` with
``Access-Control-Request-Method``, before any route, key check or rate limit:
a browser sends no credentials with a preflight) and adds the policy's headers
to every response's start, errors included.

The policy is rebuilt when a reload publishes a new ``[cors]`` table (the
settings object's identity is compared per request). With CORS off (no
``allow_origins``) a request costs one attribute read and a comparison here.
WebSockets pass through untouched: browsers apply no CORS to them (see
``docs/cors.md``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from lasso.config.schema import CorsConfig
from lasso.core.cors import CorsPolicy, Headers
from lasso.core.jsonrpc import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REFUSED_BODY = error_body(None, -32600, "Invalid Request: origin not allowed by CORS")
_REFUSED_HEADERS: Headers = [
    (b"content-type", b"application/json"),
    (b"content-length", b"%d" % len(_REFUSED_BODY)),
]


def policy_for(config: CorsConfig) -> CorsPolicy:
    return CorsPolicy(
        config.allow_origins,
        allow_headers=config.allow_headers,
        expose_headers=config.expose_headers,
        max_age_s=config.max_age_s,
        allow_credentials=config.allow_credentials,
    )


class CorsLayer:
    """ASGI middleware: ``current()`` gives the ``[cors]`` table now in force."""

    def __init__(self, app: ASGIApp, current: Callable[[], CorsConfig]) -> None:
        self.app = app
        self.current = current
        self._config = current()
        self.policy = policy_for(self._config)

    def _policy(self) -> CorsPolicy:
        config = self.current()
        if config is not self._config:  # a reload published a new table
            self._config, self.policy = config, policy_for(config)
        return self.policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = self._policy()
        if not policy.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = preflight = private = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = value
            elif name == b"access-control-request-private-network":
                private = value
        if origin is None:
            await self.app(scope, receive, send)
        elif preflight is not None and scope["method"] == "OPTIONS":
            answer = policy.preflight_headers(origin, private_network=private == b"true")
            await _answer_preflight(send, answer)
        else:
            await self.app(scope, receive, _adding(send, policy.response_headers(origin)))


def _adding(send: Send, extra: Headers) -> Send:
    if not extra:
        return send

    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return send_with_cors


async def _answer_preflight(send: Send, headers: Headers | None) -> None:
    if headers is None:
        status, headers, body = 403, _REFUSED_HEADERS, _REFUSED_BODY
    else:
        status, body = 204, b""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
