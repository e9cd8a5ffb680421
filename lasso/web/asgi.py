"""The HTTP front door: a raw ASGI fast path for JSON-RPC, Quart for the rest.

``POST /rpc/...`` is answered here, without Quart's request and response
objects, context locals and per-request nursery: measured with
``make bench``, Quart's machinery costs more than our whole gateway logic.
Everything else (health, metrics, chain list, WebSockets, 404s) goes to the
quart-trio app, wrapped as ASGI middleware the way Quart documents.

A client that hangs up cancels its upstream call: while the gateway works, a
sibling task waits for ``http.disconnect`` and cancels the handler's scope.

Bodies are bounded three ways: one body by ``max_body_bytes`` (413), all
bodies buffered at once by ``max_inflight_body_bytes`` (503 -32005 with
``Retry-After``, see :mod:`lasso.web.budget`), and the time to receive one by
``body_timeout_ms`` (408 -32600).

Before the body is read, the gate (:mod:`lasso.web.gate`) checks the API key
(401), the route and the client's in-flight cap (429); once the body is
parsed, its calls are charged to the client's token bucket (429 with
``Retry-After`` and -32005 for each call, ids kept). With ``[auth]
protect_observability``, ``/metrics``, ``/api/*`` and ``/dashboard`` need a key too.

Nothing a request does can reach the client as a traceback or HTML: any
exception out of the handling of an ``/rpc`` or ``/ws/rpc`` request is one log
line (the traceback only at DEBUG) and a JSON-RPC -32603 answer, or for a
WebSocket already open, a -32603 frame and close 1001. The connection-level
limits (connections, request heads, send deadlines) are in
:mod:`lasso.web.server`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import trio

from lasso import reqid
from lasso.core import jsonrpc
from lasso.core.jsonrpc import Call, Item
from lasso.errors import (
    BodyTimeout,
    BodyTooLarge,
    InternalError,
    InvalidRequest,
    LassoError,
)
from lasso.gateway import Answer, Gateway, Target
from lasso.web.budget import BodyBudget, Hold
from lasso.web.failures import log_internal
from lasso.web.gate import Gate, Identity, calls_in, is_observability, refusal_body
from lasso.web.meta import META_MODES, encode_header, new_request_id
from lasso.web.params import query_value, resolve_route
from lasso.web.rawhttp import DISCONNECT_EXTENSION
from lasso.web.ws import SessionFactory, reject_handshake, retry_after_headers, serve_websocket

log = logging.getLogger("lasso.web")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

_JSON = (b"content-type", b"application/json")


class LassoASGI:
    """The ASGI application hypercorn serves.

    ``draining`` is set when the daemon starts to shut down: open WebSockets
    then finish their in-flight frames and close with 1001.
    """

    def __init__(
        self,
        gateway: Gateway,
        fallback: ASGIApp,
        sessions: SessionFactory | None = None,
        *,
        draining: trio.Event | None = None,
        gate: Gate | None = None,
    ) -> None:
        server = gateway.settings.server
        self.gateway = gateway
        #: API keys, rate limits and per-client caps; ``gate.statistics()`` for metrics.
        self.gate = gate or Gate(gateway)
        self.fallback = fallback
        self.sessions = sessions
        self.draining = draining
        self.bodies = BodyBudget(server.max_inflight_body_bytes)
        self._budget_setting = server.max_inflight_body_bytes

    # The limits are read from the gateway's current settings for each request, so a
    # reload (SIGHUP) applies them to the next one.
    @property
    def max_body(self) -> int:
        return self.gateway.settings.server.max_body_bytes

    @property
    def max_meta_header(self) -> int:
        return self.gateway.settings.server.max_meta_header_bytes

    @property
    def body_timeout_s(self) -> float:
        return self.gateway.settings.server.body_timeout_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/rpc/"):
            guarded = _Guarded(send)
            token = reqid.begin()  # every line about it carries the id (X-Request-Id: _rpc)
            try:
                await self._rpc(scope, receive, guarded.send)
            except Exception as exc:
                log_internal(log, f"on {self.gate.shown_path(scope['path'], '/rpc/')}", exc)
                await guarded.last_resort()
            finally:
                reqid.end(token)
        elif scope["type"] == "websocket" and scope["path"].startswith("/ws/rpc/"):
            token = reqid.begin(_request_id(scope))  # the handshake's id: the connection's
            try:
                await serve_websocket(
                    self.gateway,
                    scope,
                    receive,
                    send,
                    self.sessions,
                    draining=self.draining,
                    gate=self.gate,
                )
            finally:
                reqid.end(token)
        elif is_observability(scope.get("path", "")) and (
            denied := self.gate.allow_observability(scope)
        ):
            await _deny(scope, receive, send, denied)
        else:
            await self.fallback(scope, receive, send)

    async def _rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        reqid.honour(headers.get(b"x-request-id"))
        budget = self.gateway.settings.server.max_inflight_body_bytes
        if budget != self._budget_setting:  # a reload resized it; bodies held stay counted
            self.bodies.limit = self._budget_setting = budget
        with self.bodies.hold() as held:
            try:
                if scope["method"] != "POST":
                    raise InvalidRequest("Invalid Request: JSON-RPC requests must use POST")
                who = self.gate.identify(scope, "/rpc/")
                target = resolve_route(self.gateway, scope, headers, who)
                if _no_cache(headers.get(b"cache-control")):
                    target = msgspec.structs.replace(target, no_cache=True)
                with self.gate.http_slot(who, target):
                    await self._admitted(scope, receive, send, headers, held, who, target)
            except LassoError as exc:
                await _respond(
                    send, exc.status(), Answer.error(exc).body(), retry_after_headers(exc)
                )

    async def _admitted(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        held: Hold,
        who: Identity,
        target: Target,
    ) -> None:
        """A request past the key and the in-flight cap; raises ``LassoError`` before any send."""
        body = await self._read_body(receive, headers, held)
        if body is None:
            return  # the client left while sending
        try:
            parsed: Call | list[Item] = self.gateway.parse(body)
        except LassoError as exc:
            await _respond(send, exc.status(), Answer.error(exc).body(), [])
            return
        refused = await self.gate.rate_refusal_shared(who, target, calls_in(parsed))
        if refused is not None:
            await _respond(send, 429, refusal_body(parsed, refused), retry_after_headers(refused))
            return
        answer: Answer | None = None
        if DISCONNECT_EXTENSION in scope["extensions"]:  # the server cancels us if they leave
            answer = await self._answer(target, parsed)
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
                answer = await self._answer(target, parsed)
                nursery.cancel_scope.cancel()
        if answer is not None:
            mode = _meta_mode(scope, headers)
            await self._send_answer(send, answer, mode)

    async def _read_body(
        self, receive: Receive, headers: dict[bytes, bytes], held: Hold
    ) -> bytes | None:
        with trio.move_on_after(self.body_timeout_s):
            return await _read_body(receive, headers, self.max_body, held)
        ms = round(self.body_timeout_s * 1000)
        raise BodyTimeout(f"Invalid Request: request body not received within {ms} ms")

    async def _answer(self, target: Target, parsed: Call | list[Item]) -> Answer:
        try:
            return await self.gateway.answer_parsed(target, parsed)
        except Exception as exc:
            log_internal(log, f"on {target.path}", exc)
            return Answer.error(InternalError("Internal error"))

    async def _send_answer(self, send: Send, answer: Answer, mode: str | None) -> None:
        cached = _cache_header(answer)
        if mode is None or not answer.parts:
            await _respond(send, answer.status, answer.body(), cached)
            return
        request_id = reqid.current() or new_request_id()  # the X-Request-Id, or one made now
        metas = [None if m is None else m.to_dict(request_id) for m in answer.metas]
        extra = [(b"x-lasso-request-id", request_id.encode()), *cached]
        if mode == "body":
            parts = [
                p if m is None else jsonrpc.with_member(p, "lasso_meta", m)
                for p, m in zip(answer.parts, metas, strict=True)
            ]
            answer = Answer(answer.status, parts, answer.metas, answer.batch)
        else:
            present = [m for m in metas if m is not None]
            encoded = encode_header(present if answer.batch else present[0]) if present else b""
            if encoded and len(encoded) <= self.max_meta_header:
                extra.append((b"x-lasso-meta", encoded))
        await _respond(send, answer.status, answer.body(), extra)


def _no_cache(value: bytes | None) -> bool:
    """Whether a ``Cache-Control`` header asks to bypass the response cache."""
    if not value:
        return False
    directives = {d.strip().split(b"=", 1)[0].lower() for d in value.split(b",")}
    return bool(directives & {b"no-cache", b"no-store"})


def _cache_header(answer: Answer) -> list[tuple[bytes, bytes]]:
    """``x-lasso-cache``: ``hit`` when every call was answered from the response cache,
    ``bypass`` when none consulted it, else ``miss``; absent when no call is cacheable."""
    seen = {None if m is None else m.cache for m in answer.metas}
    if seen <= {None}:
        return []
    if len(seen) == 1:
        return [(b"x-lasso-cache", str(seen.pop()).encode())]
    return [(b"x-lasso-cache", b"miss")]


def _request_id(scope: Scope) -> bytes | None:
    """The request's ``X-Request-Id`` header, unchecked (``lasso.reqid`` checks it)."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return bytes(value)
    return None


async def _deny(scope: Scope, receive: Receive, send: Send, exc: LassoError) -> None:
    """401 for ``/metrics``, ``/api/*`` or ``/dashboard`` without a key (HTTP or WebSocket)."""
    if scope["type"] == "websocket":
        if (await receive())["type"] == "websocket.connect":
            await reject_handshake(scope, send, exc)
        return
    if scope["type"] == "http":
        await _respond(send, exc.status(), Answer.error(exc).body(), [])


def _meta_mode(scope: Scope, headers: dict[bytes, bytes]) -> str | None:
    mode = query_value(scope.get("query_string", b""), b"include_meta")
    if mode is None:
        mode = headers.get(b"x-lasso-include-meta", b"").decode("latin-1")
    mode = mode.lower()
    return mode if mode in META_MODES else None


async def _read_body(
    receive: Receive, headers: dict[bytes, bytes], limit: int, held: Hold
) -> bytes | None:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge("Invalid Request: request body too large")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge("Invalid Request: request body too large")
        held.take(len(chunk))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _respond(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    # RFC 9110: a 204 carries no Content-Length.
    length = [] if status == 204 else [_JSON, (b"content-length", b"%d" % len(body))]
    headers = [*length, *extra]
    request_id = reqid.peek()  # the client's, or one made for a line about the request
    if request_id is not None:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Guarded:
    """A ``send`` that remembers whether the response has started, for the last resort."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def send(self, message: Message) -> None:
        self.started = True
        await self._send(message)

    async def last_resort(self) -> None:
        """-32603 if nothing was sent yet; otherwise the response is cut short."""
        if self.started:
            return
        body = Answer.error(InternalError("Internal error")).body()
        try:
            await _respond(self._send, 500, body, [])
        except Exception as exc:
            log.debug("could not send the last-resort answer: %r", exc)
