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
interleave inside a frame. A client that falls ``ws_send_queue`` messages
behind is disconnected (close 1013, with a reason saying whether it fell
behind its subscriptions or sent requests faster than it read the answers):
a gap must never be silent. Each write has a deadline (``ws_send_timeout_ms``,
enforced by :mod:`lasso.web.server`): a client that reads nothing is dropped.
A socket with no frames and no subscriptions for ``ws_idle_timeout_ms`` is
closed (1001). When the daemon drains, the socket refuses new frames (-32008),
finishes those in flight and closes (1001). An exception in answering one
frame answers that frame -32603 with one log line; the socket stays open. The
server sends keepalive pings (hypercorn's ``websocket_ping_interval``). On
disconnect the connection releases every subscription it held.

The gate (:mod:`lasso.web.gate`) runs at the handshake: a missing or wrong API
key is refused 401, a client key at its ``max_ws_per_client`` 429, both before
the socket is accepted. Once open, each frame's calls are charged to the same
token bucket as the client's HTTP calls; a frame over the limit is answered
-32005 (``data.retry_after_ms``, each call's own id) and the socket stays open.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import trio

from lasso import reqid
from lasso.config import ServerConfig
from lasso.core import jsonrpc
from lasso.core.jsonrpc import BadItem, Call, Item
from lasso.errors import (
    ClientRateLimited,
    InternalError,
    InvalidRequest,
    LassoError,
    LocalCapacity,
    ServerBusy,
)
from lasso.gateway import Answer, Gateway, Session, Target
from lasso.web.failures import log_internal
from lasso.web.gate import Gate, Identity, calls_in, ws_refusal
from lasso.web.params import resolve_route

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

    def __init__(
        self,
        gateway: Gateway,
        target: Target,
        limits: ServerConfig,
        draining: trio.Event | None = None,
        gate: tuple[Gate, Identity] | None = None,
    ) -> None:
        self.gateway = gateway
        self.gate = gate
        self.draining = draining
        self.target = target
        self.limits = limits
        self.session: ClosableSession | None = None
        self._outbox, self._outbox_reader = trio.open_memory_channel[str](limits.ws_send_queue)
        self._in_flight = 0
        self._none_in_flight = trio.Event()
        self._none_in_flight.set()
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
        self._push(message, "client too slow for its subscriptions")

    def _push(self, message: str, overflow_reason: str) -> None:
        try:
            self._outbox.send_nowait(message)
        except trio.WouldBlock:
            limit = self.limits.ws_send_queue
            self.close(CLOSE_TRY_AGAIN, f"{overflow_reason}: {limit} messages unsent")
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
                    if self.draining is not None:
                        nursery.start_soon(self._watch_draining, self.draining)
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
            frame = text.encode() if text is not None else message.get("bytes") or b""
            if self.draining is not None and self.draining.is_set():
                self._queue_refusal(frame, LocalCapacity("Server shutting down"))
                continue
            try:
                await self._accept_frame(frame, nursery)
            except Exception as exc:  # our bug: this frame gets -32603, the socket lives on
                log_internal(log, "reading a WebSocket frame", exc)
                self._queue(Answer.error(InternalError("Internal error")).body())

    async def _accept_frame(self, frame: bytes, nursery: trio.Nursery) -> None:
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
        if self.gate is not None:
            gate, who = self.gate
            refused = await gate.rate_refusal_shared(who, self.target, calls_in(parsed))
            if refused is not None:
                refusal = ws_refusal(parsed, refused)
                if refusal is not None:
                    self._queue(refusal)
                return
        if self._in_flight >= self.limits.ws_max_in_flight:
            refusal = _refuse_all(parsed, LocalCapacity("Local request capacity unavailable"))
            if refusal is not None:
                self._queue(refusal)
            return
        self._in_flight += 1
        self._none_in_flight = trio.Event()
        nursery.start_soon(self._answer, parsed)

    async def _answer(self, parsed: Call | list[Item]) -> None:
        try:
            frame = None if self.session is None else self.session.open_frame()
            try:
                answer = await self.gateway.answer_parsed(self.target, parsed, self.session)
            except Exception as exc:
                log_internal(log, "answering a WebSocket frame", exc)
                answer = Answer.error(InternalError("Internal error"))
            if answer.parts:
                self._queue(answer.body())
            if self.session is not None:
                self.session.answered(frame)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._none_in_flight.set()

    def _queue(self, message: bytes) -> None:
        # Upstream results are passed through as bytes; invalid UTF-8 in one must not
        # break the socket. Answers are bounded by ws_max_in_flight, but refusals are
        # not: a client that sends faster than it reads fills the queue with them.
        self._push(message.decode("utf-8", "replace"), "client sends faster than it reads")

    def _queue_refusal(self, frame: bytes, error: LassoError) -> None:
        try:
            parsed = jsonrpc.parse_body(frame, max_batch=self.gateway.settings.server.max_batch)
        except Exception:
            return  # a frame we would refuse anyway needs no parse error now
        refusal = _refuse_all(parsed, error)
        if refusal is not None:
            self._queue(refusal)

    async def _write(self, send: Send) -> None:
        async for message in self._outbox_reader:
            await send({"type": "websocket.send", "text": message})
        self.close(CLOSE_GOING_AWAY, "closing")

    async def _watch_draining(self, draining: trio.Event) -> None:
        await draining.wait()
        await self._none_in_flight.wait()
        self.close(CLOSE_GOING_AWAY, "server shutting down")

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
    *,
    draining: trio.Event | None = None,
    gate: Gate | None = None,
) -> None:
    """Handle one ``/ws/rpc/...`` connection from handshake to close."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    gate = gate or Gate(gateway)
    try:
        who = gate.identify(scope, "/ws/rpc/")
        target = resolve_route(gateway, scope, dict(scope["headers"]), who)
        with gate.ws_slot(who, target):
            await _serve_accepted(gateway, target, send, receive, sessions, draining, (gate, who))
    except LassoError as exc:  # raised only before the socket is accepted
        await reject_handshake(scope, send, exc)


async def _serve_accepted(
    gateway: Gateway,
    target: Target,
    send: Send,
    receive: Receive,
    sessions: SessionFactory | None,
    draining: trio.Event | None,
    gate: tuple[Gate, Identity],
) -> None:
    request_id = reqid.peek()  # the client's X-Request-Id names the connection's lines
    accept = [] if request_id is None else [(b"x-request-id", request_id.encode())]
    await send({"type": "websocket.accept", "headers": accept})
    socket = ClientSocket(gateway, target, gateway.settings.server, draining, gate)
    gateway.activity.websockets += 1  # open until the finally below (lasso.activity)
    try:
        if sessions is not None:
            socket.session = sessions(target, socket)
        await socket.serve(receive, send)
    except Exception as exc:  # last resort: our bug ends this socket politely, never 1011
        log_internal(log, f"on WebSocket {target.path}", exc)
        with trio.move_on_after(1):
            try:
                body = Answer.error(InternalError("Internal error")).body().decode()
                await send({"type": "websocket.send", "text": body})
                await send({"type": "websocket.close", "code": CLOSE_GOING_AWAY})
            except Exception as inner:
                log.debug("could not close the WebSocket politely: %r", inner)
    finally:
        gateway.activity.websockets -= 1


def retry_after_headers(exc: LassoError) -> list[tuple[bytes, bytes]]:
    """``Retry-After`` for the refusals that say when to come back (HTTP answers and
    refused WebSocket handshakes alike)."""
    if isinstance(exc, ClientRateLimited):
        return [(b"retry-after", b"%d" % exc.retry_after_s)]
    return [(b"retry-after", b"1")] if isinstance(exc, ServerBusy) else []


async def reject_handshake(scope: MutableMapping[str, Any], send: Send, exc: LassoError) -> None:
    """Refuse the handshake: with a JSON-RPC error body where the server allows it."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = Answer.error(exc).body()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        headers += retry_after_headers(exc)
        await send(
            {"type": "websocket.http.response.start", "status": exc.status(), "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": CLOSE_POLICY, "reason": exc.message[:120]})
