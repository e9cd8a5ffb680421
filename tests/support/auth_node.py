"""A loopback JSON-RPC node that wants credentials, over HTTP and WebSocket.

Real sockets on 127.0.0.1 (port 0): HTTP/1.1 keep-alive served with h11, and a
WebSocket endpoint served by trio-websocket. Every HTTP request and every
WebSocket handshake has its ``Authorization`` header recorded in ``seen_http`` /
``seen_ws`` (None when absent; ``handshake`` is set at the first handshake). One
that does not carry exactly ``expected`` is answered ``401`` (HTTP) or has its
handshake rejected with 401 (WebSocket); the rest are answered by a
:class:`~tests.support.fakes.FakeNode`.

    async with open_auth_node("Basic dXNlcjpwYXNz") as node:
        node.http_port, node.ws_port, node.seen_http, node.seen_ws
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import h11
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from tests.support.fakes import FakeNode

__all__ = ["AuthNode", "open_auth_node"]

HOST = "127.0.0.1"
_MAX_BODY = 1 << 20
_UNAUTHORIZED = b'{"error":"unauthorized"}'


class AuthNode:
    def __init__(self, expected: str, node: FakeNode) -> None:
        self.expected = expected
        self.node = node
        self.seen_http: list[str | None] = []
        self.seen_ws: list[str | None] = []
        self.handshake = trio.Event()  # set once a WebSocket handshake has arrived
        self.http_port = 0
        self.ws_port = 0

    # --- HTTP ------------------------------------------------------------------

    async def serve_http(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while await self._one_exchange(stream, conn):
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    async def _one_exchange(self, stream: trio.SocketStream, conn: h11.Connection) -> bool:
        request = await _next(stream, conn)
        if not isinstance(request, h11.Request):
            return False
        body = b""
        while isinstance(event := await _next(stream, conn), h11.Data):
            body += event.data
            if len(body) > _MAX_BODY:
                return False
        auth = _header(request.headers, b"authorization")
        self.seen_http.append(auth)
        if auth == self.expected:
            answer = await self.node.handle(body)
            status, content = answer.status, bytes(answer.body)
        else:
            status, content = 401, _UNAUTHORIZED
        headers = [("content-type", "application/json"), ("content-length", str(len(content)))]
        if status == 401:
            headers.append(("www-authenticate", 'Basic realm="node"'))
        await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        await stream.send_all(conn.send(h11.Data(data=content)) or b"")
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    # --- WebSocket -------------------------------------------------------------

    async def serve_ws(self, request: WebSocketRequest) -> None:
        auth = _header(request.headers, b"authorization")
        self.seen_ws.append(auth)
        self.handshake.set()
        if auth != self.expected:
            await request.reject(401, body=_UNAUTHORIZED)
            return
        ws = await request.accept()
        try:
            while True:
                message = await ws.get_message()
                body = message.encode() if isinstance(message, str) else message
                answer = await self.node.handle(body)
                await ws.send_message(answer.body.decode())
        except ConnectionClosed:
            pass


async def _next(stream: trio.SocketStream, conn: h11.Connection) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(65536))


def _header(headers: object, name: bytes) -> str | None:
    for key, value in headers:  # type: ignore[attr-defined]
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None


@asynccontextmanager
async def open_auth_node(expected: str, node: FakeNode | None = None) -> AsyncIterator[AuthNode]:
    """Serve an :class:`AuthNode` on two loopback ports until the block exits."""
    auth = AuthNode(expected, node or FakeNode())
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, auth.serve_http, 0, host=HOST))
        auth.http_port = listeners[0].socket.getsockname()[1]
        server = await nursery.start(partial(serve_websocket, auth.serve_ws, HOST, 0, None))
        auth.ws_port = server.port
        yield auth
        nursery.cancel_scope.cancel()
