"""Opening one client WebSocket, and the seam that lets tests open a fake one.

A :class:`Connector` gets the nursery that owns the connection's background
reader (trio-websocket runs one per connection) and returns the connection
with the byte stream under it. Returning the stream lets the owner close the
transport itself: trio-websocket's ``aclose()`` waits for a close handshake a
dead peer never completes, and after a peer-initiated close it does not close
the stream at all.

The handshake is watched for the end of the stream: trio-websocket 0.12's
reader task, when the stream is reset or closed before the server's upgrade
reply, ends without waking the handshake wait (it only records an abnormal
close), so ``wrap_client_stream`` would hang until the caller's connect
deadline, 10 s for a node that answered with a RST in a millisecond. We work
around it here: :class:`_HandshakeWatch` sees the reader's failed read (or
EOF, or failed send) and cancels the wait, and the dial fails with a
``ConnectionError`` at once.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import Callable
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from lasso.config.secrets import mask_url

__all__ = ["CLOSE_GRACE_S", "Connector", "Dialed", "close_quietly", "dial"]

CLOSE_GRACE_S = 1.0
_DEFAULT_PORTS = {"ws": 80, "wss": 443}


class Dialed(NamedTuple):
    ws: WebSocketConnection
    stream: trio.abc.AsyncResource


class Connector(Protocol):
    async def __call__(
        self,
        nursery: trio.Nursery,
        url: str,
        headers: list[tuple[bytes, bytes]],
        max_message_bytes: int,
    ) -> Dialed: ...


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


async def dial(
    nursery: trio.Nursery, url: str, headers: list[tuple[bytes, bytes]], max_message_bytes: int
) -> Dialed:
    """Open a TCP (or TLS) stream to ``url`` and run the WebSocket handshake over it.

    Raises ``OSError`` when the connection fails and ``ValueError`` for a URL
    that is not ``ws://`` or ``wss://``. A rejected handshake surfaces as
    ``trio_websocket.ConnectionRejected`` from the reader task in ``nursery``.
    """
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not a ws(s) URL: {mask_url(url)!r}")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rpartition("@")[2]
    stream: trio.abc.Stream
    if parts.scheme == "wss":
        stream = await trio.open_ssl_over_tcp_stream(
            parts.hostname, port, ssl_context=_tls_context(), https_compatible=True
        )
    else:
        stream = await trio.open_tcp_stream(parts.hostname, port)
    watched = _HandshakeWatch(stream)
    try:
        with trio.CancelScope() as handshake:
            watched.on_end = handshake.cancel
            ws = await wrap_client_stream(
                nursery,
                watched,  # type: ignore[arg-type]  # any trio Stream works; the hint is narrow
                host_header,
                resource,
                extra_headers=headers,
                max_message_size=max_message_bytes,
            )
        watched.on_end = None
        if handshake.cancelled_caught:
            raise ConnectionError(
                f"connection closed during the WebSocket handshake ({watched.ended_by})"
            )
    except BaseException:
        await close_quietly(stream)
        raise
    return Dialed(ws, stream)


class _HandshakeWatch(trio.abc.Stream):
    """The dialled stream, telling ``on_end`` when a read or write finds it ended.

    Only the handshake listens (``on_end`` is cleared after it); afterwards the
    connection's own reader notices a dead stream as before.
    """

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.on_end: Callable[[], None] | None = None
        self.ended_by = ""

    def _ended(self, how: str) -> None:
        if self.on_end is not None:
            self.ended_by = how
            self.on_end()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self.inner.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._ended(_reason(exc, "reset"))
            raise
        if not data:
            self._ended("EOF")
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.inner.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._ended(_reason(exc, "send failed"))
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


def _reason(exc: BaseException, default: str) -> str:
    cause = exc.__cause__
    return str(cause) if isinstance(cause, OSError) and str(cause) else default


async def close_quietly(resource: trio.abc.AsyncResource) -> None:
    """Close a transport, bounded and shielded: it is cleanup, even during cancellation."""
    quiet = contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError)
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE_S), quiet:
        await resource.aclose()
