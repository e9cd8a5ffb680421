"""A fake anvil-like JSON-RPC WebSocket node over Trio memory streams.

The real WebSocket protocol runs (trio-websocket's ``wrap_server_stream`` /
``wrap_client_stream`` over ``trio.testing.memory_stream_pair``) with no
sockets, so it works on ``MockClock``. Plug it in with
``WsConnection(..., connect=fake.connect)``.

Answers come from a :class:`~tests.support.fakes.FakeNode`, so its scripted
faults (``node.fault`` / ``node.queued``) apply here too: ``HANG`` never
answers, ``WRONG_ID`` answers with another id, ``RESET`` drops the connection,
``METHOD_NOT_FOUND`` / ``REVERT`` answer errors. Like anvil 1.7.1 over
WebSocket, an unknown method is answered with -32602 "data did not match any
variant of untagged enum EthRpcCall" (over HTTP anvil says -32601); pass
``anvil_ws_errors=False`` for the -32601 other nodes send.

``eth_subscribe`` supports ``newHeads`` and ``logs`` (no filtering: every
``emit_log`` reaches every logs subscription); :meth:`FakeWsNode.emit_head`
mines a block on the node and pushes it, with the same fields as
``eth_getBlockByNumber(n, false)``, exactly as anvil does.

Connection faults: :meth:`drop` (TCP gone: the client sees 1006),
:meth:`close` (a close handshake with a code), :meth:`silence` (stop reading,
hold the client's writes: no pongs, no replies, like a dead path), ``refuse`` (the dial
raises ``ConnectionRefusedError``), ``reject_status`` (the handshake is
answered with that HTTP status) and ``connect_delay_s``.
"""

from __future__ import annotations

import contextlib
import errno
import random
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import msgspec
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    wrap_client_stream,
    wrap_server_stream,
)

from lasso.config import ProviderConfig
from lasso.errors import UpstreamNetworkError
from lasso.pubsub import EventBus
from lasso.upstream.provider import Provider
from lasso.upstream.ws import WsConnection, WsPolicy
from lasso.upstream.ws.dial import Connector, Dialed, close_quietly
from tests.support.fakes import FakeNode

__all__ = ["ANVIL_WS_BAD_CALL", "FakeWsNode", "open_fake_ws_node"]

ANVIL_WS_BAD_CALL = {
    "code": -32602,
    "message": "data did not match any variant of untagged enum EthRpcCall",
}
_INVALID_REQUEST = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}}'
)
_KINDS = ("newHeads", "logs")
_encode = msgspec.json.encode
_decode = msgspec.json.decode

_Stream = trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream]


class _Close(msgspec.Struct, frozen=True):
    code: int
    reason: str


class _Peer:
    """One client connection as the server sees it; registered before the handshake completes."""

    ws: WebSocketConnection

    def __init__(self, raw: _Stream, scope: trio.CancelScope) -> None:
        self.raw = raw
        self.scope = scope
        self.outbox, self.outbox_out = trio.open_memory_channel[str | _Close](float("inf"))
        self.subscriptions: dict[str, str] = {}  # id -> kind

    def send(self, item: str | _Close) -> None:
        with contextlib.suppress(trio.ClosedResourceError):  # else the connection is gone
            self.outbox.send_nowait(item)

    def abort(self) -> None:
        self.raw.send_stream.close()
        self.raw.receive_stream.close()
        self.scope.cancel()


class _Gate(trio.abc.Stream):
    """One end of the memory stream; while the node is silent it holds reads or writes.

    The server's end holds what it reads (no pongs, no replies); the client's
    end holds writes, as a full TCP window would.
    """

    def __init__(self, inner: _Stream, node: FakeWsNode, *, hold_writes: bool) -> None:
        self._inner = inner
        self._node = node
        self._hold_writes = hold_writes

    async def _hold(self) -> None:
        while self._node.silent:
            await self._node._resumed.wait()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self._inner.receive_some(max_bytes)
        if not self._hold_writes:
            await self._hold()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._hold_writes:
            await self._hold()
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._inner.aclose()


class FakeWsNode:
    """Serves WebSocket clients in ``nursery``; see the module docstring."""

    def __init__(
        self, nursery: trio.Nursery, node: FakeNode | None = None, *, anvil_ws_errors: bool = True
    ) -> None:
        self.node = node or FakeNode()
        self.anvil_ws_errors = anvil_ws_errors
        self.refuse = False
        self.reject_status: int | None = None
        self.connect_delay_s = 0.0
        self.silent = False
        self.dials = 0
        self.handshake_headers: list[dict[bytes, bytes]] = []
        self._resumed = trio.Event()
        self._nursery = nursery
        self._peers: list[_Peer] = []
        self._next_sub = 0

    @property
    def connections(self) -> int:
        return len(self._peers)

    @property
    def subscriptions(self) -> int:
        return sum(len(peer.subscriptions) for peer in self._peers)

    # --- the connector ---------------------------------------------------------

    async def connect(
        self,
        nursery: trio.Nursery,
        url: str,
        headers: list[tuple[bytes, bytes]],
        max_message_bytes: int,
    ) -> Dialed:
        """A :class:`~lasso.upstream.ws.dial.Connector` reaching this node."""
        self.dials += 1
        if self.connect_delay_s:
            await trio.sleep(self.connect_delay_s)
        if self.refuse:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        raw_client, server = trio.testing.memory_stream_pair()
        client = _Gate(raw_client, self, hold_writes=True)
        self._nursery.start_soon(self._serve, server)
        try:
            ws = await wrap_client_stream(
                nursery,
                client,  # type: ignore[arg-type]  # any trio Stream works
                "fake-node",
                "/",
                extra_headers=headers,
                max_message_size=max_message_bytes,
            )
        except BaseException:
            await close_quietly(client)
            raise
        return Dialed(ws, client)

    # --- faults and pushes -------------------------------------------------------

    def drop(self) -> None:
        """Cut every connection without a close frame."""
        for peer in list(self._peers):
            peer.abort()

    def close(self, code: int = 1001, reason: str = "going away") -> None:
        """Close every connection with a close handshake."""
        for peer in self._peers:
            peer.send(_Close(code, reason))

    def silence(self) -> None:
        """Stop reading from clients (no pongs, no replies) and block their writes,
        like a peer behind a dead path, until :meth:`resume`."""
        self.silent = True

    def resume(self) -> None:
        self.silent = False
        self._resumed.set()
        self._resumed = trio.Event()

    def emit_head(self) -> dict[str, Any]:
        """Mine the next block on the node and push its header to newHeads subscribers."""
        self.node.head += 1
        params = [hex(self.node.head), False]
        request = {"id": 0, "method": "eth_getBlockByNumber", "params": params}
        head: dict[str, Any] = self.node._answer(request)["result"]  # FakeNode's own block
        self._push("newHeads", head)
        return head

    def emit_log(self, log: dict[str, Any]) -> None:
        self._push("logs", log)

    def _push(self, kind: str, result: dict[str, Any]) -> None:
        for peer in self._peers:
            for sub_id, sub_kind in peer.subscriptions.items():
                if sub_kind == kind:
                    params = {"subscription": sub_id, "result": result}
                    frame = {"jsonrpc": "2.0", "method": "eth_subscription", "params": params}
                    peer.send(_encode(frame).decode())

    # --- the server side ---------------------------------------------------------

    async def _serve(self, raw: _Stream) -> None:
        try:
            async with trio.open_nursery() as nursery:
                request = await wrap_server_stream(nursery, _Gate(raw, self, hold_writes=False))
                self.handshake_headers.append(dict(request.headers))
                if self.reject_status is not None:
                    await request.reject(self.reject_status)
                else:
                    peer = _Peer(raw, nursery.cancel_scope)
                    self._peers.append(peer)
                    try:
                        peer.ws = await request.accept()
                        nursery.start_soon(self._send_loop, peer)
                        await self._receive_loop(peer, nursery)
                    finally:
                        self._peers.remove(peer)
                nursery.cancel_scope.cancel()
        finally:
            await close_quietly(raw)

    async def _receive_loop(self, peer: _Peer, nursery: trio.Nursery) -> None:
        while True:
            try:
                message = await peer.ws.get_message()
            except ConnectionClosed:
                return
            body = message.encode() if isinstance(message, str) else message
            nursery.start_soon(self._answer, peer, body)

    async def _send_loop(self, peer: _Peer) -> None:
        async for item in peer.outbox_out:
            try:
                if isinstance(item, _Close):
                    await peer.ws.aclose(item.code, item.reason)
                    return
                await peer.ws.send_message(item)
            except ConnectionClosed:
                return

    async def _answer(self, peer: _Peer, body: bytes) -> None:
        try:
            request = _decode(body)
            method = request["method"]
        except (msgspec.DecodeError, TypeError, KeyError):
            peer.send(_INVALID_REQUEST.decode())
            return
        if method in ("eth_subscribe", "eth_unsubscribe"):
            self.node.calls.append(method)
            answer = self._subscription_call(peer, method, request)
            peer.send(_encode(answer).decode())
            return
        scripted = bool(self.node.queued) or self.node.fault is not None
        try:
            response = await self.node.handle(body)
        except UpstreamNetworkError:  # Fault.RESET / Fault.REFUSED
            peer.abort()
            return
        if not scripted and self.anvil_ws_errors and _is_method_not_found(bytes(response.body)):
            answer = {"jsonrpc": "2.0", "id": request.get("id"), "error": ANVIL_WS_BAD_CALL}
            peer.send(_encode(answer).decode())
            return
        peer.send(response.body.decode(errors="replace"))

    def _subscription_call(self, peer: _Peer, method: str, request: Any) -> dict[str, Any]:
        rid, params = request.get("id"), request.get("params") or []
        if method == "eth_unsubscribe":
            found = bool(params) and peer.subscriptions.pop(params[0], None) is not None
            return {"jsonrpc": "2.0", "id": rid, "result": found}
        if not params or params[0] not in _KINDS:
            return {"jsonrpc": "2.0", "id": rid, "error": ANVIL_WS_BAD_CALL}
        self._next_sub += 1
        sub_id = f"0x{self._next_sub:032x}"
        peer.subscriptions[sub_id] = params[0]
        return {"jsonrpc": "2.0", "id": rid, "result": sub_id}


def _is_method_not_found(body: bytes) -> bool:
    try:
        reply = _decode(body)
    except msgspec.DecodeError:
        return False
    error = reply.get("error") if isinstance(reply, dict) else None
    return isinstance(error, dict) and error.get("code") == -32601


@asynccontextmanager
async def open_fake_ws_node(
    node: FakeNode | None = None, *, anvil_ws_errors: bool = True
) -> AsyncIterator[FakeWsNode]:
    """A :class:`FakeWsNode` whose server tasks end when the block exits."""
    async with trio.open_nursery() as nursery:
        yield FakeWsNode(nursery, node, anvil_ws_errors=anvil_ws_errors)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_fake_ws_nodes(
    nodes: dict[str, FakeNode],
) -> AsyncIterator[tuple[dict[str, FakeWsNode], Connector]]:
    """A :class:`FakeWsNode` per provider id, and a connector that dials the one a URL
    names by its first host label (``ws://p1.invalid`` dials ``p1``)."""
    async with AsyncExitStack() as stack:
        fakes = {
            pid: await stack.enter_async_context(open_fake_ws_node(n)) for pid, n in nodes.items()
        }

        async def connect(
            nursery: trio.Nursery,
            url: str,
            headers: list[tuple[bytes, bytes]],
            max_message_bytes: int,
        ) -> Dialed:
            fake = fakes[url.split("//")[1].split(".")[0]]
            return await fake.connect(nursery, url, headers, max_message_bytes)

        yield fakes, connect


async def wait_ws_connected(providers: Iterable[Provider]) -> None:
    """Return once every provider's WebSocket is connected (each must have one)."""
    for provider in providers:
        assert provider.ws is not None
        await provider.ws.wait_connected()


def websockets_for(
    chain: str, connect: Connector | None = None
) -> Callable[[str, ProviderConfig], WsConnection]:
    """A ``ChainRuntime(websockets=...)`` factory: each provider's :class:`WsConnection`
    with the default policy, its own bus and a seeded rng, dialing through ``connect``."""

    def websocket(_chain: str, p: ProviderConfig) -> WsConnection:
        return WsConnection(
            p.ws_url or "",
            {},
            provider_id=p.id,
            chain=chain,
            bus=EventBus(),
            policy=WsPolicy(),
            rng=random.Random(1),
            connect=connect,
        )

    return websocket
