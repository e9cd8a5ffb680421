"""Drive the ASGI front end in-process, no sockets: for tests and properties.

``hang_up_after_s`` simulates a client that disconnects mid-request: its
``receive()`` answers ``http.disconnect`` after that much (virtual) time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
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
