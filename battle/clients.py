"""The raw transports the workload sends through: HTTP (httpx) and one WebSocket connection.

Both carry one encoded JSON-RPC request and hand back a :class:`Reply` (status, body, serving
provider, time answered), or ``None`` when no answer came: the connection failed or dropped
before it. Deadlines are the caller's cancel scopes, as everywhere in Lasso.

- :func:`open_http` is an ``httpx.AsyncClient`` (``trust_env=False``: loopback only, no proxy
  from the environment) posting to ``<http_url>?include_meta=headers``, so the
  ``x-lasso-meta`` header names the provider that served each call.
- :func:`open_ws` keeps one trio-websocket connection to the gateway, reconnecting (with a short
  capped backoff) whenever it is cut, and correlates answers to requests by id. A frame that
  matches no pending request (a wrong id, a garbage frame) is handed to the oldest pending
  request, so a mismatch shows as such instead of hiding as a hang; a late answer to a request
  already given up on (past its deadline) is dropped. Requests pending when the connection
  drops get no answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection

from battle.answers import provider_from_meta
from battle.events import JsonId
from lasso.upstream.ws.dial import close_quietly, dial

#: Reconnect backoff of the WebSocket clients: first delay, doubling up to the cap.
RECONNECT_FIRST_S = 0.05
RECONNECT_CAP_S = 1.0

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
ABANDONED_KEPT = 10_000  # ids of timed-out WebSocket requests remembered, newest kept


class WsLost(Exception):
    """The WebSocket to the gateway could not be opened, or it dropped."""


WS_ERRORS = (
    WsLost,
    ConnectionClosed,
    HandshakeError,
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


@asynccontextmanager
async def connect_ws(url: str) -> AsyncIterator[WebSocketConnection]:
    """One WebSocket connection to ``url``, its TCP stream closed on the way out however it ends.

    Lasso's own dialer is used because trio-websocket's ``open_websocket_url`` leaves the
    stream open after a peer-initiated close (a dropped gateway) or a cancelled handshake.
    Every way the connection can fail comes out as one of :data:`WS_ERRORS`.
    """
    try:
        async with trio.open_nursery() as nursery:
            ws, stream = await dial(nursery, url, [], MAX_MESSAGE_BYTES)
            try:
                yield ws
            finally:
                await close_quietly(stream)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        _, rest = group.split(WS_ERRORS)
        if rest is None:
            raise WsLost(str(group.exceptions[0])) from None
        if len(rest.exceptions) == 1 and not isinstance(rest.exceptions[0], BaseExceptionGroup):
            raise rest.exceptions[0] from None  # the caller's own error, as itself
        raise rest from None


@dataclass(frozen=True)
class Endpoint:
    """Where the workload finds the gateway, and the scenario its events are recorded under."""

    http_url: str  # http://127.0.0.1:PORT/rpc/<chain>
    ws_url: str  # ws://127.0.0.1:PORT/ws/rpc/<chain>
    scenario: str


@dataclass(frozen=True)
class Reply:
    status: int | None  # None on WebSocket
    body: bytes
    provider: str | None
    answered_at: float
    cache: str | None = None  # the x-lasso-cache header: hit, miss, bypass (lasso.cache)


def meta_url(http_url: str) -> str:
    return http_url + ("&" if "?" in http_url else "?") + "include_meta=headers"


class HttpClient:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = meta_url(url)

    async def send(self, body: bytes, sent_id: JsonId) -> Reply | None:
        headers = {"content-type": "application/json"}
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TransportError:
            return None
        return Reply(
            response.status_code,
            response.content,
            provider_from_meta(response.headers.get("x-lasso-meta")),
            trio.current_time(),
            response.headers.get("x-lasso-cache"),
        )


@asynccontextmanager
async def open_http(url: str, max_connections: int) -> AsyncIterator[HttpClient]:
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    timeout = httpx.Timeout(None)  # the caller's cancel scope is the deadline
    async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=timeout) as client:
        yield HttpClient(client, url)


def _key(value: JsonId) -> tuple[str, Any]:
    return (type(value).__name__, value)  # 1 and "1" are different ids


def _answer_key(frame: bytes) -> tuple[str, Any] | None:
    try:
        message = msgspec.json.decode(frame)
    except msgspec.DecodeError:
        return None
    if isinstance(message, dict) and isinstance(message.get("id"), int | str):
        return _key(message["id"])
    return None


class WsClient:
    """One reconnecting WebSocket connection shared by many concurrent requests."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._ws: WebSocketConnection | None = None
        self._connected = trio.Event()
        self._pending: dict[tuple[str, Any], trio.MemorySendChannel[Reply | None]] = {}
        # Ids given up on (their deadline passed) on the current connection: a late answer
        # to one is dropped, not taken for a stray frame (which would shift every answer).
        self._abandoned: dict[tuple[str, Any], None] = {}
        self.connections = 0

    async def send(self, body: bytes, sent_id: JsonId) -> Reply | None:
        send, receive = trio.open_memory_channel[Reply | None](1)
        key = _key(sent_id)
        while self._ws is None:
            await self._connected.wait()
        ws = self._ws
        self._pending[key] = send
        try:
            try:
                await ws.send_message(body.decode())
            except WS_ERRORS:
                return None
            return await receive.receive()
        finally:
            if self._pending.get(key) is send:
                del self._pending[key]
                self._abandon(key)

    def _abandon(self, key: tuple[str, Any]) -> None:
        self._abandoned[key] = None
        if len(self._abandoned) > ABANDONED_KEPT:
            del self._abandoned[next(iter(self._abandoned))]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, read, and reconnect when cut, until cancelled."""
        delay = RECONNECT_FIRST_S
        task_status.started()
        while True:
            try:
                async with connect_ws(self._url) as ws:
                    self.connections += 1
                    delay = RECONNECT_FIRST_S
                    self._ws = ws
                    self._connected.set()
                    await self._read(ws)
            except WS_ERRORS:
                pass
            finally:
                self._ws = None
                self._connected = trio.Event()
                self._fail_pending()
            await trio.sleep(delay)
            delay = min(delay * 2, RECONNECT_CAP_S)

    async def _read(self, ws: WebSocketConnection) -> None:
        while True:
            message = await ws.get_message()
            frame = message.encode() if isinstance(message, str) else message
            self._deliver(frame)

    def _deliver(self, frame: bytes) -> None:
        key = _answer_key(frame)
        if key is not None and self._abandoned.pop(key, 1) is None:
            return  # the late answer to a request that timed out
        if key is None or key not in self._pending:
            if not self._pending:
                return
            key = next(iter(self._pending))  # the oldest pending request
        channel = self._pending.pop(key)
        channel.send_nowait(Reply(None, frame, None, trio.current_time()))

    def _fail_pending(self) -> None:
        self._abandoned.clear()  # a new connection cannot carry their answers
        pending, self._pending = self._pending, {}
        for channel in pending.values():
            channel.send_nowait(None)


@asynccontextmanager
async def open_ws(url: str) -> AsyncIterator[WsClient]:
    client = WsClient(url)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        yield client
        nursery.cancel_scope.cancel()
