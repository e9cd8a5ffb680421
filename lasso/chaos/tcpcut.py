"""A TCP relay that can be cut: a real network failure between Lasso and a node.

``async with open_tcp_relay(port) as relay:`` listens on 127.0.0.1 (``relay.port``)
and relays every connection to ``127.0.0.1:port``. Two kinds of failure:

* ``relay.cut()`` resets every relayed connection (RST, as when a peer dies) and
  refuses new ones: the client notices at once;
* ``relay.blackhole()`` silently drops every byte in both directions and refuses
  new connections, as a dead route does: only a heartbeat or a deadline notices.

``relay.restore()`` ends either.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio


class TcpRelay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.cut_active = False
        self.blackholed = False
        self.connections = 0
        self._scopes: set[trio.CancelScope] = set()
        self._streams: set[trio.SocketStream] = set()

    def cut(self) -> None:
        self.cut_active = True
        for stream in list(self._streams):
            _reset(stream)
        for scope in list(self._scopes):
            scope.cancel()

    def blackhole(self) -> None:
        self.blackholed = True
        self.cut_active = True

    def restore(self) -> None:
        self.cut_active = False
        self.blackholed = False

    async def _handle(self, client: trio.SocketStream) -> None:
        if self.cut_active:
            _reset(client)
            await client.aclose()
            return
        self.connections += 1
        try:
            upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            _reset(client)
            await client.aclose()
            return
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            self._streams.update((client, upstream))
            try:
                async with client, upstream, trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope)
                    nursery.start_soon(self._pump, upstream, client, nursery.cancel_scope)
            finally:
                self._scopes.discard(scope)
                self._streams.difference_update((client, upstream))

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        try:
            while data := await source.receive_some(65536):
                if not self.blackholed:
                    await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        scope.cancel()


def _reset(stream: trio.SocketStream) -> None:
    """Abort with RST: SO_LINGER with a zero timeout, then close."""
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.socket.close()
    except OSError:
        pass


@asynccontextmanager
async def open_tcp_relay(target_port: int) -> AsyncIterator[TcpRelay]:
    relay = TcpRelay(target_port)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, relay._handle, 0, host="127.0.0.1"))
        relay.port = listeners[0].socket.getsockname()[1]
        yield relay
        nursery.cancel_scope.cancel()
