"""The client WebSocket endpoint: ``/ws/rpc/...``, on raw ASGI.

Theory of operation. The handshake resolves the route like HTTP does; an
unknown chain, profile or provider is rejected before the socket is accepted
(with a JSON-RPC error body where the server supports ASGI's
``websocket.http.response``). Once open, each text or binary frame carries
one JSON-RPC request or a batch, under the HTTP rules: a parse error answers
-32700 and keeps the socket open. Frames are answered concurrently, each in
its own task, up to ``ws_max_in_flight``; over that a frame is answered with
-32008 at once. Everything the client receives goes through one bounded send
queue and one writer task, so answers and subscription notifications never
interleave inside a frame. A subscriber that falls ``ws_send_queue`` messages
behind is disconnected (close 1013): a gap must never be silent. A socket
with no frames and no subscriptions for ``ws_idle_timeout_ms`` is closed
(1001). The server sends keepalive pings (hypercorn's
``websocket_ping_interval``). On disconnect the connection releases every
subscription it held.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import trio

from lasso.config import ServerConfig
from lasso.core import jsonrpc
from lasso.core.jsonrpc import BadItem, Call, Item
from lasso.errors import InvalidRequest, LassoError, LocalCapacity
from lasso.gateway import Answer, Gateway, Session, Target
from lasso.web.params import resolve_scope

log = logging.getLogger("lasso.ws")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Makes a subscription session for one client socket (None: subscriptions unsupported).
SessionFactory = Callable[[Target, "ClientSocket"], "ClosableSession"]

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013


class ClosableSession(Session, Protocol):
    def open_frame(self) -> Any:
        """Called by the task answering one frame, before it starts."""

    def answered(self, frame: Any) -> None:
        """That frame's answer was queued: subscriptions it confirmed may now notify."""

    def active(self) -> int: ...

    async def aclose(self) -> None: ...


class ClientSocket:
    """One accepted client WebSocket."""

    def __init__(self, gateway: Gateway, target: Target, limits: ServerConfig) -> None:
        self.gateway = gateway
        self.target = target
        self.limits = limits
        self.session: ClosableSession | None = None
        self._outbox, self._outbox_reader = trio.open_memory_channel[str](limits.ws_send_queue)
        self._in_flight = 0
        self._last_frame = trio.current_time()
        self._closing: tuple[int, str] | None = None
        self._scope = trio.CancelScope()
        self._client_left = False

    # -- what the subscription pool calls -------------------------------------

    def notify(self, message: str) -> None:
        """Queue a text frame; a client too slow for gap-free delivery is dropped.

        Text, not bytes: a subscription payload is decoded once per upstream event
        and shared by every subscriber; only the subscription id differs.
        """
        try:
            self._outbox.send_nowait(message)
        except trio.WouldBlock:
            self.close(CLOSE_TRY_AGAIN, "client too slow for its subscriptions")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def close(self, code: int, reason: str) -> None:
        """Stop now: no more reading, answering or sending; then a close frame."""
        if self._closing is None:
            self._closing = (code, reason)
            self._outbox.close()
            self._scope.cancel(reason=reason)

    # -- the connection -------------------------------------------------------

    async def serve(self, receive: Receive, send: Send) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write, send)
                    if self.limits.ws_idle_timeout_ms:
                        nursery.start_soon(self._watch_idle)
                    await self._read(receive, nursery)
                    nursery.cancel_scope.cancel()
            if self._closing is not None and not self._client_left:
                code, reason = self._closing
                with trio.move_on_after(2):  # a client that reads nothing gets no wait
                    await send({"type": "websocket.close", "code": code, "reason": reason})
        finally:
            if self.session is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self.session.aclose()

    async def _read(self, receive: Receive, nursery: trio.Nursery) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self._client_left = True
                return
            if message["type"] != "websocket.receive":
                continue
            self._last_frame = trio.current_time()
            text = message.get("text")
            self._accept_frame(
                text.encode() if text is not None else message.get("bytes") or b"", nursery
            )

    def _accept_frame(self, frame: bytes, nursery: trio.Nursery) -> None:
        if len(frame) > self.limits.ws_max_frame_bytes:
            limit = self.limits.ws_max_frame_bytes
            self._queue(
                Answer.error(InvalidRequest(f"Invalid Request: frame over {limit} bytes")).body()
            )
            return
        try:  # parse_body refuses invalid UTF-8 too, answering with the readable id
            parsed = self.gateway.parse(frame)
        except LassoError as exc:
            self._queue(Answer.error(exc).body())
            return
        if self._in_flight >= self.limits.ws_max_in_flight:
            refusal = _refuse_all(parsed, LocalCapacity("Local request capacity unavailable"))
            if refusal is not None:
                self._queue(refusal)
            return
        self._in_flight += 1
        nursery.start_soon(self._answer, parsed)

    async def _answer(self, parsed: Call | list[Item]) -> None:
        frame = None if self.session is None else self.session.open_frame()
        try:
            answer = await self.gateway.answer_parsed(self.target, parsed, self.session)
        except Exception:
            log.exception("internal error answering a WebSocket frame")
            answer = Answer.error(LassoError("Internal error"))
        finally:
            self._in_flight -= 1
        if answer.parts:
            self._queue(answer.body())
        if self.session is not None:
            self.session.answered(frame)

    def _queue(self, message: bytes) -> None:
        # Upstream results are passed through as bytes; invalid UTF-8 in one must not
        # break the socket. Answers are bounded by ws_max_in_flight.
        self.notify(message.decode("utf-8", "replace"))

    async def _write(self, send: Send) -> None:
        async for message in self._outbox_reader:
            await send({"type": "websocket.send", "text": message})
        self.close(CLOSE_GOING_AWAY, "closing")

    async def _watch_idle(self) -> None:
        idle_s = self.limits.ws_idle_timeout_ms / 1000
        while True:
            await trio.sleep_until(self._last_frame + idle_s)
            busy = self._in_flight > 0 or (self.session is not None and self.session.active() > 0)
            if trio.current_time() >= self._last_frame + idle_s and not busy:
                self.close(CLOSE_GOING_AWAY, "idle timeout")
                return
            if busy:
                self._last_frame = trio.current_time()


def _refuse_all(parsed: Call | list[Item], error: LassoError) -> bytes | None:
    """-32008 for every request of the frame; notifications get no answer."""
    if isinstance(parsed, Call):
        return None if parsed.id is None else jsonrpc.lasso_error_body(parsed.id, error)
    answers = [
        jsonrpc.lasso_error_body(item.id, item.error)
        if isinstance(item, BadItem)
        else jsonrpc.lasso_error_body(item.id, error)
        for item in parsed
        if isinstance(item, BadItem) or item.id is not None
    ]
    return jsonrpc.batch_body(answers) if answers else None


async def serve_websocket(
    gateway: Gateway,
    scope: MutableMapping[str, Any],
    receive: Receive,
    send: Send,
    sessions: SessionFactory | None,
) -> None:
    """Handle one ``/ws/rpc/...`` connection from handshake to close."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    try:
        target = resolve_scope(gateway, scope, dict(scope["headers"]), "/ws/rpc/")
    except LassoError as exc:
        await _reject(scope, send, exc)
        return
    await send({"type": "websocket.accept"})
    socket = ClientSocket(gateway, target, gateway.settings.server)
    if sessions is not None:
        socket.session = sessions(target, socket)
    await socket.serve(receive, send)


async def _reject(scope: MutableMapping[str, Any], send: Send, exc: LassoError) -> None:
    """Refuse the handshake: with a JSON-RPC error body where the server allows it."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = Answer.error(exc).body()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send(
            {"type": "websocket.http.response.start", "status": exc.status(), "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": CLOSE_POLICY, "reason": exc.message[:120]})
