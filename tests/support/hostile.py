"""Hostile clients: the exact bytes a misbehaving peer sends, on a plain TCP stream.

No client library would send these (an unmasked client frame, a non-minimal
length, a request head a byte at a time, a socket that never reads), so each
is written by hand on ``trio.open_tcp_stream``:

* :func:`open_raw_websocket` does a hand-written WebSocket handshake and
  returns a :class:`RawWebSocket`, ready for :func:`ws_frame` bytes, that reads
  the server's frames;
* :func:`ws_frame` builds one frame: masked or not, with the minimal length
  form or a forced 16- or 64-bit one;
* :func:`reset` closes a socket with RST (SO_LINGER 0) instead of FIN;
* :func:`read_http_response` reads one HTTP/1.1 response (head and a
  Content-Length body) off a raw stream.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from typing import Literal

import trio

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9

LengthForm = Literal["minimal", "16", "64"]


def ws_frame(
    payload: bytes,
    *,
    opcode: int = OP_TEXT,
    fin: bool = True,
    masked: bool = True,
    length_form: LengthForm = "minimal",
    mask_key: bytes = b"\x11\x22\x33\x44",
) -> bytes:
    """One WebSocket frame. A client must mask and use the minimal length form."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    size = len(payload)
    if length_form == "64" or (length_form == "minimal" and size > 0xFFFF):
        head = struct.pack("!BBQ", first, mask_bit | 127, size)
    elif length_form == "16" or (length_form == "minimal" and size > 125):
        head = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        head = struct.pack("!BB", first, mask_bit | size)
    if not masked:
        return head + payload
    body = bytes(b ^ mask_key[i % 4] for i, b in enumerate(payload))
    return head + mask_key + body


def handshake_request(host: str, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def read_head(stream: trio.abc.ReceiveStream, limit: int = 65536) -> tuple[bytes, bytes]:
    """Read up to the end of an HTTP head; returns (head, bytes already read past it)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise EOFError(f"connection closed after {len(buffer)} bytes of head")
        buffer += chunk
        if len(buffer) > limit:
            raise ValueError("response head too large")
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


class RawWebSocket:
    """A client WebSocket as raw bytes: send any frame, read the server's frames."""

    def __init__(self, stream: trio.SocketStream, buffered: bytes) -> None:
        self.stream = stream
        self.reader = FrameReader(stream, buffered)

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_text(self, text: str | bytes) -> None:
        await self.stream.send_all(ws_frame(text.encode() if isinstance(text, str) else text))

    async def message(self) -> tuple[int, bytes]:
        return await self.reader.message()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def open_raw_websocket(host: str, port: int, path: str) -> RawWebSocket:
    """A WebSocket to ``path`` after a hand-written handshake (101 checked)."""
    stream = await trio.open_tcp_stream(host, port)
    try:
        await stream.send_all(handshake_request(f"{host}:{port}", path))
        head, rest = await read_head(stream)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head[:200]!r}")
    except BaseException:
        await stream.aclose()
        raise
    return RawWebSocket(stream, rest)


class HttpResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


async def read_http_response(stream: trio.abc.ReceiveStream) -> HttpResponse:
    """One response with a Content-Length body (what Lasso sends)."""
    head, body = await read_head(stream)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        body += chunk
    return HttpResponse(status, headers, body[:length])


def reset(stream: trio.SocketStream) -> None:
    """Close with RST rather than FIN, as a crashed or hostile peer does."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


def shrink_receive_buffer(stream: trio.SocketStream, size: int = 4096) -> None:
    """Make a non-reading client's socket fill up after a few KB, not megabytes."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class FrameReader:
    """Reads the server's (unmasked) frames off a raw stream."""

    def __init__(self, stream: trio.abc.ReceiveStream, buffered: bytes = b"") -> None:
        self.stream = stream
        self.buffer = bytearray(buffered)

    async def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buffer += chunk

    async def frame(self) -> tuple[int, bytes]:
        """The next frame: (opcode, payload)."""
        await self._fill(2)
        opcode, size = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
        head = 2
        if size == 126:
            await self._fill(4)
            size, head = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif size == 127:
            await self._fill(10)
            size, head = struct.unpack("!Q", self.buffer[2:10])[0], 10
        await self._fill(head + size)
        payload = bytes(self.buffer[head : head + size])
        del self.buffer[: head + size]
        return opcode, payload

    async def message(self) -> tuple[int, bytes]:
        """The next data or close frame, skipping pings and pongs."""
        while True:
            opcode, payload = await self.frame()
            if opcode not in (OP_PING, 0xA):
                return opcode, payload


def close_reason(payload: bytes) -> tuple[int, str]:
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return code, payload[2:].decode("utf-8", "replace")
