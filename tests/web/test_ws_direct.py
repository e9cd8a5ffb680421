"""The WebSocket fan-out's direct writes (lasso.web.ws.DirectWire), on a real front-end
``Connection`` over a socket pair: frames written straight to the socket, a partly
written frame finished before any other byte, queue overflow, closed sockets."""

from __future__ import annotations

import json
import socket as stdlib_socket
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import RawData
from hypercorn.trio.worker_context import WorkerContext
from wsproto import ConnectionType
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionState
from wsproto.events import Ping, TextMessage

from lasso.core.routes import parse_rpc_path
from lasso.web.asgi import LassoASGI
from lasso.web.server import Connection, FrontLimits
from lasso.web.ws import ClientSocket, DirectWire
from tests.support.hostile import FrameReader

SUBSCRIBE = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
PING = WsConnection(ConnectionType.SERVER).send(Ping())


def front_connection(sock: trio.socket.SocketType) -> Connection:
    limits = FrontLimits(max_connections=10, header_timeout_s=5, send_timeout_s=5, grace_s=1)
    return Connection(
        None,  # type: ignore[arg-type]  # the app: not reached by these writes
        HypercornConfig(),
        WorkerContext(None),
        {},  # type: ignore[arg-type]
        trio.SocketStream(sock),
        limits,
    )


def ws_stream(state: ConnectionState = ConnectionState.OPEN) -> Any:
    """What DirectWire reads of hypercorn's WSStream: closed, and wsproto's state."""
    return SimpleNamespace(closed=False, connection=SimpleNamespace(state=state))


def socket_on(app: LassoASGI, wire: DirectWire | None) -> ClientSocket:
    gateway = app.gateway
    target = gateway.resolve(parse_rpc_path("/rpc/testnet"), "/rpc/testnet")
    return ClientSocket(gateway, target, gateway.settings.server, wire=wire)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[trio.socket.SocketType, trio.socket.SocketType]]:
    """A TCP loopback pair (ours: the server's end) whose buffers fill after a few KB."""
    with trio.socket.socket() as listener:
        await listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        theirs = trio.socket.socket()
        theirs.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 4096)
        await theirs.connect(listener.getsockname())
        ours, _ = await listener.accept()
    ours.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, 4096)
    with ours, theirs:
        yield ours, theirs


def wsproto_frame(message: bytes) -> bytes:
    return WsConnection(ConnectionType.SERVER).send(TextMessage(message.decode()))


async def never() -> dict[str, object]:
    await trio.sleep_forever()
    raise AssertionError


async def no_asgi_send(message: dict[str, object]) -> None:
    raise AssertionError(f"a direct socket sent {message} through ASGI")


async def test_a_part_written_frame_is_finished_before_any_other_byte(
    app: LassoASGI, pair: tuple[trio.socket.SocketType, trio.socket.SocketType]
) -> None:
    ours, theirs = pair
    connection = front_connection(ours)
    socket = socket_on(app, DirectWire(connection, ws_stream()))
    messages = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * 3000) for i in range(60)]
    for message in messages:  # no await: the first frames go straight out, then the rest
        socket.notify(message)
    assert connection._owed  # the kernel took part of a frame: the rest is owed
    reader = FrameReader(trio.SocketStream(theirs))
    got: list[tuple[int, bytes]] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(socket.serve, never, no_asgi_send)
            # hypercorn's own send (a ping) while a frame is owed: it must not land in it
            nursery.start_soon(connection.protocol_send, RawData(PING))
            while len([op for op, _ in got if op == 0x1]) < len(messages):
                got.append(await reader.frame())
            nursery.cancel_scope.cancel()
    assert [payload for op, payload in got if op == 0x1] == messages  # whole, in order
    assert [op for op, _ in got].count(0x9) == 1  # the ping, whole, between two frames


async def test_direct_frames_are_the_bytes_wsproto_writes(
    app: LassoASGI, pair: tuple[trio.socket.SocketType, trio.socket.SocketType]
) -> None:
    ours, theirs = pair
    socket = socket_on(app, DirectWire(front_connection(ours), ws_stream()))
    messages = [b'{"a":"\xc3\xa9"}', b"x" * 200, b"y" * 70_000]
    for message in messages:
        socket.notify(message)
    expected = b"".join(wsproto_frame(m) for m in messages)
    received = b""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(socket.serve, never, no_asgi_send)
            while len(received) < len(expected):
                received += await theirs.recv(1 << 20)
            nursery.cancel_scope.cancel()
    assert received == expected


async def test_a_direct_client_that_stops_reading_is_closed_1013(
    app: LassoASGI, pair: tuple[trio.socket.SocketType, trio.socket.SocketType]
) -> None:
    ours, _ = pair
    socket = socket_on(app, DirectWire(front_connection(ours), ws_stream()))
    limit = app.gateway.settings.server.ws_send_queue
    for i in range(limit + 100):  # nobody reads: the socket fills, then the queue
        socket.notify(b'{"n":%d}' % i)
    assert socket._closing == (
        1013,
        f"client too slow for its subscriptions: {limit} messages unsent",
    )


@pytest.mark.parametrize(
    "state", [ConnectionState.LOCAL_CLOSING, ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED]
)
async def test_nothing_is_written_after_a_close_frame(
    app: LassoASGI,
    state: ConnectionState,
    pair: tuple[trio.socket.SocketType, trio.socket.SocketType],
) -> None:
    ours, theirs = pair
    connection = front_connection(ours)
    socket = socket_on(app, DirectWire(connection, ws_stream(state)))
    socket.notify(b'{"late":true}')
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(socket.serve, never, no_asgi_send)
            await trio.testing.wait_all_tasks_blocked()
            await connection.send_raw(b"end")  # the only bytes on the wire
            assert await theirs.recv(100) == b"end"
            nursery.cancel_scope.cancel()


async def test_an_answer_finished_after_the_client_left_is_dropped(app: LassoASGI) -> None:
    """Once the socket's nursery body is left it takes no new task: an answer (or a
    fan-out) reaching the socket then must not start a writer (RuntimeError: "Nursery
    is closed to new arrivals", into the answer's task, or into every client's fan-out)."""
    socket = socket_on(app, None)
    entered = trio.Event()
    release = trio.Event()
    seen: list[object] = []

    class Session:
        def open_frame(self) -> None:
            return None

        def answered(self, frame: object) -> None:
            pass

        def active(self) -> int:
            return 0

        async def aclose(self) -> None:
            pass

        async def handle(self, call: object) -> bytes:
            entered.set()
            with trio.CancelScope(shield=True):  # as a send to the client would be
                await release.wait()
            # The nursery closes once its last child (this one) ends, and the socket's
            # task resumes only later: no new writer may be started in between.
            seen.append(socket._tasks)
            return b'"0x1"'

    frames = [{"type": "websocket.receive", "text": json.dumps(SUBSCRIBE)}]

    async def receive() -> dict[str, object]:
        if frames:
            return frames.pop()
        await entered.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    socket.session = Session()  # type: ignore[assignment]
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(socket.serve, receive, no_asgi_send)
            await entered.wait()
            await trio.testing.wait_all_tasks_blocked()  # the client has left
            release.set()  # the answer is queued while the socket winds down
    assert seen == [None]


async def test_an_idle_socket_keeps_no_task_of_its_own(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    """Its writer runs only while something waits to be sent; the idle timeout and the
    drain are one shared task's (lasso.web.ws_watch): no sleeping tasks per socket."""
    gateway = app.gateway
    target = gateway.resolve(parse_rpc_path("/rpc/testnet"), "/rpc/testnet")
    draining = trio.Event()
    sockets = [ClientSocket(gateway, target, gateway.settings.server, draining) for _ in range(3)]
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async with trio.open_nursery() as nursery:
        for socket in sockets:
            nursery.start_soon(socket.serve, never, send)
        await trio.testing.wait_all_tasks_blocked()
        assert [s._tasks.child_tasks for s in sockets if s._tasks] == [frozenset()] * 3
        sockets[0].notify(b'{"n":1}')  # a writer while there is something to write
        await trio.testing.wait_all_tasks_blocked()
        assert sockets[0]._tasks is not None and not sockets[0]._tasks.child_tasks
        assert sent == [{"type": "websocket.send", "text": '{"n":1}'}]
        draining.set()  # the shared watcher closes them all (1001)
    assert [s._closing for s in sockets] == [(1001, "server shutting down")] * 3
