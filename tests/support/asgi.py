"""Drive the ASGI front end in-process, no sockets: for tests and properties.

``hang_up_after_s`` simulates a client that disconnects mid-request: its
``receive()`` answers ``http.disconnect`` after that much (virtual) time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import trio

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class AsgiResponse(msgspec.Struct):
    status: int | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


async def asgi_request(
    app: ASGI,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    headers: Iterable[tuple[str, str]] = (),
    query: str = "",
    hang_up_after_s: float | None = None,
) -> AsgiResponse:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers]
        + [(b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 4000),
        "extensions": {},
        "state": {},
    }
    sent_body = False
    response = AsgiResponse()

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        if hang_up_after_s is None:
            await trio.sleep_forever()
        await trio.sleep(hang_up_after_s)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")

    await app(scope, receive, send)
    return response


class AsgiWebSocket:
    """A client end of an in-process ASGI WebSocket (see :func:`open_asgi_websocket`)."""

    def __init__(self) -> None:
        self._to_app, self._app_inbox = trio.open_memory_channel[dict[str, Any]](1024)
        self._from_app, self.received = trio.open_memory_channel[dict[str, Any]](100_000)
        self.accepted = trio.Event()
        self.rejection: dict[str, Any] | None = None
        self.close_code: int | None = None

    async def send_text(self, text: str) -> None:
        await self._to_app.send({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self._to_app.send({"type": "websocket.receive", "bytes": data})

    async def receive_text(self) -> str:
        """The next text frame; raises ``EOFError`` when the server closed instead."""
        try:
            message = await self.received.receive()
        except trio.EndOfChannel:
            raise EOFError("the application ended the connection") from None
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            raise EOFError(f"closed with {self.close_code}: {message.get('reason', '')}")
        return str(message["text"])

    async def receive_json(self) -> Any:
        return msgspec.json.decode(await self.receive_text())

    async def disconnect(self, code: int = 1000) -> None:
        await self._to_app.send({"type": "websocket.disconnect", "code": code})


async def _run_websocket(
    app: ASGI, path: str, ws: AsgiWebSocket, headers: Iterable[tuple[str, str]]
) -> None:
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("127.0.0.1", 50001),
        "server": ("127.0.0.1", 4000),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
        "state": {},
    }
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        try:
            return await ws._app_inbox.receive()
        except trio.EndOfChannel:
            return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            ws.accepted.set()
        elif kind.startswith("websocket.http.response"):
            ws.rejection = (ws.rejection or {}) | message
        else:
            await ws._from_app.send(message)

    await app(scope, receive, send)
    ws._from_app.close()


@asynccontextmanager
async def open_asgi_websocket(
    app: ASGI, path: str, *, headers: Iterable[tuple[str, str]] = ()
) -> AsyncIterator[AsgiWebSocket]:
    """Connect to ``path`` on ``app``; the app runs until the block exits."""
    ws = AsgiWebSocket()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run_websocket, app, path, ws, headers)
        yield ws
        await ws.disconnect()
        ws._to_app.close()
