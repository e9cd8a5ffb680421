"""Opening one client WebSocket, and the seam that lets tests open a fake one.

A :class:`Connector` gets the nursery that owns the connection's background
reader (trio-websocket runs one per connection) and returns the connection
with the byte stream under it. Returning the stream lets the owner close the
transport itself: trio-websocket's ``aclose()`` waits for a close handshake a
dead peer never completes, and after a peer-initiated close it does not close
the stream at all.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
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
    try:
        ws = await wrap_client_stream(
            nursery,
            stream,
            host_header,
            resource,
            extra_headers=headers,
            max_message_size=max_message_bytes,
        )
    except BaseException:
        await close_quietly(stream)
        raise
    return Dialed(ws, stream)


async def close_quietly(resource: trio.abc.AsyncResource) -> None:
    """Close a transport, bounded and shielded: it is cleanup, even during cancellation."""
    quiet = contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError)
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE_S), quiet:
        await resource.aclose()
