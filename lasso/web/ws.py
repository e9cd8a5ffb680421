"""The client WebSocket endpoint: ``/ws/rpc/...``, on raw ASGI.

Theory of operation. The handshake resolves the route like HTTP does; an
unknown chain, profile or provider is rejected before the socket is accepted
(with a JSON-RPC error body where the server supports ASGI's
``websocket.http.response``). Once open, each text or binary frame carries
one JSON-RPC request or a batch, under the HTTP rules: a parse error answers
-32700 and keeps the socket open. Frames are answered concurrently, each in
its own task, up to ``ws_max_in_flight``; over that a frame is answered with
-32008 at once. Everything the client receives is one ordered stream of
messages, so answers and subscription notifications never interleave inside a
frame. On a connection without extensions each message is framed here and,
when nothing waits before it, written straight to the socket by the task that
made it (a fan-out to 10,000 clients is then 10,000 ``write()`` calls, with no
task switch and no wsproto: :class:`DirectWire`); what the socket does not
take at once waits in one bounded queue for a writer task that runs only while
there is something to send (a deflate client's messages all take that queue
and hypercorn's ``websocket.send``). A client that falls ``ws_send_queue``
messages behind is disconnected (close 1013, with a reason saying whether it
fell behind its subscriptions or sent requests faster than it read the answers):
a gap must never be silent. Each write has a deadline (``ws_send_timeout_ms``,
enforced by :mod:`lasso.web.server`): a client that reads nothing is dropped.
A socket with no frames and no subscriptions for ``ws_idle_timeout_ms`` is
closed (1001); that timer and the drain are kept for every socket by one
shared task (:mod:`lasso.web.ws_watch`), not by tasks of each socket. When
the daemon drains, the socket refuses new frames (-32008), finishes those in
flight and closes (1001). An exception in answering one
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
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import trio
from hypercorn.protocol.ws_stream import WSStream
from wsproto.connection import ConnectionState as WsState

from lasso import reqid
from lasso.config import ServerConfig
from lasso.core import jsonrpc
from lasso.core.jsonrpc import BadItem, Call, Item
from lasso.core.wsframe import text_frame
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
from lasso.web.server import Connection, current_connection
from lasso.web.ws_watch import watch_for

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


class DirectWire:
    """The raw write path of one client WebSocket: pre-framed bytes straight to its socket.

    Only for a connection hypercorn upgraded over HTTP/1.1 with no extension
    negotiated (a permessage-deflate client's frames are compressed by wsproto, so it
    keeps the ASGI path), found through :func:`lasso.web.server.current_connection`.
    Nothing is written once a close frame went out either way (wsproto's state).
    """

    __slots__ = ("_ws", "connection")

    def __init__(self, connection: Connection, ws: WSStream) -> None:
        self.connection = connection
        self._ws = ws

    @classmethod
    def of_current(cls, scope: MutableMapping[str, Any]) -> DirectWire | None:
        connection = current_connection()
        if connection is None:
            return None
        if any(name.lower() == b"sec-websocket-extensions" for name, _ in scope["headers"]):
            return None  # hypercorn offers permessage-deflate: let wsproto frame these
        ws = getattr(getattr(connection, "protocol", None), "protocol", None)
        ws = getattr(ws, "stream", None)
        return cls(connection, ws) if isinstance(ws, WSStream) else None

    def open(self) -> bool:
        """No close frame sent or received, the ASGI stream not closed."""
        ws = self._ws
        return not ws.closed and ws.connection.state is WsState.OPEN

    def write_now(self, frame: bytes) -> int:
        """Bytes of ``frame`` the socket took now, or -1 (see ``Connection.write_now``)."""
        ws = self._ws  # open(), inline: once per client per notification
        if ws.closed or ws.connection.state is not WsState.OPEN:
            return -1
        return self.connection.write_now(frame)


class ClientSocket:
    """One accepted client WebSocket.

    Everything it sends is one ordered stream of messages. With a :class:`DirectWire`
    a message is framed here and, when nothing is queued before it, written to the
    socket at once by the task producing it (a fan-out, an answer): no task switch,
    no wsproto. Whatever the socket does not take at once (the rest of a frame is
    owed to the connection, which sends it before any other byte) and every later
    message wait in ``_out`` for the writer task, started only while there is
    something to write. Without a wire (a deflate client) every message goes through
    ``_out`` and hypercorn's ``websocket.send``.
    """

    def __init__(
        self,
        gateway: Gateway,
        target: Target,
        limits: ServerConfig,
        draining: trio.Event | None = None,
        gate: tuple[Gate, Identity] | None = None,
        wire: DirectWire | None = None,
    ) -> None:
        self.gateway = gateway
        self.gate = gate
        self.draining = draining
        self.target = target
        self.limits = limits
        self.session: ClosableSession | None = None
        self._wire = wire
        #: Waiting for the writer: pre-framed bytes (with a wire) or text (without);
        #: made on first use (an empty deque is 600 bytes, and most sockets never queue).
        self._out: deque[bytes | str] | None = None
        self._writing = False  # the writer task runs (it may hold a message being sent)
        self._tasks: trio.Nursery | None = None
        self._send: Send | None = None
        self._in_flight = 0
        self._draining = False  # told to drain: close once no frame is in flight
        self.last_frame = trio.current_time()  # the idle timer's (lasso.web.ws_watch)
        self.idle_s = limits.ws_idle_timeout_ms / 1000  # 0: none
        self._closing: tuple[int, str] | None = None
        self._scope = trio.CancelScope()
        self._client_left = False

    # -- what the subscription pool calls -------------------------------------

    def notify(self, message: bytes) -> None:
        """Send a text frame (``message`` is UTF-8); a client too slow for gap-free
        delivery is dropped. Bytes: a notification is one shared tail per upstream
        event behind this subscription's own head (lasso.subscriptions.fanout)."""
        self._push(message, "client too slow for its subscriptions")

    def _push(self, message: bytes, overflow_reason: str) -> None:
        if self._closing is not None:
            return
        wire = self._wire
        item: bytes | str
        if wire is None:
            item = message.decode()
        else:
            item = text_frame(message)
            if not self._out and not self._writing:
                written = wire.write_now(item)
                if written == len(item):
                    return
                if written > 0:  # the rest goes out before any other byte on this socket
                    wire.connection.owe(memoryview(item)[written:])
                    item = b""  # the writer only has the owed bytes to flush
        if self._out is None:
            self._out = deque()
        elif len(self._out) >= self.limits.ws_send_queue:
            limit = self.limits.ws_send_queue
            self.close(CLOSE_TRY_AGAIN, f"{overflow_reason}: {limit} messages unsent")
            return
        self._out.append(item)
        if not self._writing and self._tasks is not None:
            self._writing = True
            self._tasks.start_soon(self._write)

    def close(self, code: int, reason: str) -> None:
        """Stop now: no more reading, answering or sending; then a close frame."""
        if self._closing is None:
            self._closing = (code, reason)
            self._out = None
            self._scope.cancel(reason=reason)

    # -- what the shared watcher calls (lasso.web.ws_watch) --------------------

    def busy(self) -> bool:
        """A frame in flight or a subscription open: not idle, however quiet."""
        return self._in_flight > 0 or (self.session is not None and self.session.active() > 0)

    def idle_close(self) -> None:
        self.close(CLOSE_GOING_AWAY, "idle timeout")

    def drain(self) -> None:
        """The daemon is shutting down: close once the frames in flight are answered."""
        self._draining = True
        if self._in_flight == 0:
            self.close(CLOSE_GOING_AWAY, "server shutting down")

    # -- the connection -------------------------------------------------------

    async def serve(self, receive: Receive, send: Send) -> None:
        self._send = send
        watch = watch_for(self.draining)
        try:
            with self._scope:
                watch.add(self)  # idle timeout and drain: one task for every socket
                async with trio.open_nursery() as nursery:
                    self._tasks = nursery
                    try:
                        if self._out and not self._writing:
                            self._writing = True
                            nursery.start_soon(self._write)
                        await self._read(receive, nursery)
                    finally:
                        # The nursery takes no new task once this block is left, while
                        # it still waits for its children: a notification must not start
                        # a writer then (RuntimeError into the fan-out of every client).
                        self._tasks = None
                    nursery.cancel_scope.cancel()
            closing, self._closing = self._closing, self._closing or (CLOSE_GOING_AWAY, "gone")
            if closing is not None and not self._client_left:
                code, reason = closing
                with trio.move_on_after(2):  # a client that reads nothing gets no wait
                    await send({"type": "websocket.close", "code": code, "reason": reason})
        finally:
            watch.discard(self)
            self._tasks = None
            self._closing = self._closing or (CLOSE_GOING_AWAY, "gone")
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
            self.last_frame = trio.current_time()
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
            if self._in_flight == 0 and self._draining:
                self.close(CLOSE_GOING_AWAY, "server shutting down")

    def _queue(self, message: bytes) -> None:
        # Upstream results are passed through as bytes; invalid UTF-8 in one must not
        # break the socket. Answers are bounded by ws_max_in_flight, but refusals are
        # not: a client that sends faster than it reads fills the queue with them.
        try:
            message.decode()
        except UnicodeDecodeError:
            message = message.decode("utf-8", "replace").encode()
        self._push(message, "client sends faster than it reads")

    def _queue_refusal(self, frame: bytes, error: LassoError) -> None:
        try:
            parsed = jsonrpc.parse_body(frame, max_batch=self.gateway.settings.server.max_batch)
        except Exception:
            return  # a frame we would refuse anyway needs no parse error now
        refusal = _refuse_all(parsed, error)
        if refusal is not None:
            self._queue(refusal)

    async def _write(self) -> None:
        """Send what waits in ``_out``, in order; ends when it is empty."""
        try:
            send, wire = self._send, self._wire
            assert send is not None
            while self._out:  # None once closing
                item = self._out.popleft()
                if isinstance(item, str):
                    await send({"type": "websocket.send", "text": item})
                elif wire is not None and wire.open():  # never after a close frame
                    await wire.connection.send_raw(item)  # owed bytes first, then item
        finally:
            self._writing = False


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
            wire = DirectWire.of_current(scope)
            await _serve_accepted(
                gateway, target, send, receive, sessions, draining, (gate, who), wire
            )
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
    wire: DirectWire | None = None,
) -> None:
    request_id = reqid.peek()  # the client's X-Request-Id names the connection's lines
    accept = [] if request_id is None else [(b"x-request-id", request_id.encode())]
    await send({"type": "websocket.accept", "headers": accept})
    socket = ClientSocket(gateway, target, gateway.settings.server, draining, gate, wire)
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
