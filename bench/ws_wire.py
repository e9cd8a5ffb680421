"""The client side of RFC 6455, hand-rolled on raw trio sockets, for the load generators.

The WebSocket load generator (``bench/ws_load.py``) and the fan-out client
workers (``bench/ws_clients.py``) must cost far less than the gateway they
measure, and 5,000 clients must fit in one process; trio-websocket spends a
background task, a memory channel and wsproto's event machinery on every
connection. This is only what the benchmark needs:

* the opening handshake, checked (status 101 and ``Sec-WebSocket-Accept``);
  no extension is offered, so nothing is compressed;
* masked text frames out (one random key per connection);
* frames in: text and binary messages (continuations reassembled), pings
  answered with pongs, a close frame raised as :class:`WsClosed`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import resource
import signal
import socket
import struct
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import trio

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _BINARY, _CONTINUATION = 0x1, 0x2, 0x0
_CLOSE, _PING, _PONG = 0x8, 0x9, 0xA
_MAX_HEADER = 16_384
T = TypeVar("T")


class WsClosed(Exception):
    """The server closed the connection (a close frame, or TCP end of stream)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code} {reason}".strip())
        self.code = code
        self.reason = reason


class HandshakeError(Exception):
    pass


def split_url(url: str) -> tuple[str, int, str]:
    """``ws://host:port/path?query`` -> (host, port, request target)."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname or parts.port is None:
        raise ValueError(f"need ws://host:port/...: {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port, target


def _xor(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    mask = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        n, "little"
    )


class WsClient:
    """One open client WebSocket. Not safe for concurrent senders (the callers never are)."""

    def __init__(self, sock: trio.socket.SocketType, leftover: bytes) -> None:
        self.sock = sock
        self._buf = bytearray(leftover)
        self._key = os.urandom(4)
        self._fragments: list[bytes] | None = None

    @classmethod
    async def connect(cls, host: str, port: int, target: str) -> WsClient:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await sock.connect((host, port))
            key = base64.b64encode(os.urandom(16))
            request = (
                b"GET %b HTTP/1.1\r\nHost: %b:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ) % (target.encode(), host.encode(), port, key)
            await _send_all(sock, request)
            buf = bytearray()
            while (end := buf.find(b"\r\n\r\n")) < 0:
                if len(buf) > _MAX_HEADER:
                    raise HandshakeError("handshake answer too long")
                chunk = await sock.recv(65536)
                if not chunk:
                    raise HandshakeError(f"closed during the handshake: {bytes(buf[:200])!r}")
                buf += chunk
            head = bytes(buf[:end]).decode("latin-1")
            if not head.startswith("HTTP/1.1 101"):
                raise HandshakeError(f"handshake refused: {head.splitlines()[0]!r}")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head.split("\r\n")[1:])
            }
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
            if headers.get("sec-websocket-accept") != accept:
                raise HandshakeError("bad Sec-WebSocket-Accept")
            return cls(sock, bytes(buf[end + 4 :]))
        except BaseException:
            sock.close()
            raise

    def __enter__(self) -> WsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Drop the TCP connection (no close handshake: the benchmark is over)."""
        self.sock.close()

    def frame(self, payload: bytes, opcode: int = _TEXT) -> bytes:
        """One masked frame; several may be joined and sent with :meth:`send_raw`."""
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        return header + self._key + _xor(payload, self._key)

    async def send_raw(self, frames: bytes) -> None:
        await _send_all(self.sock, frames)

    async def send_text(self, payload: bytes) -> None:
        await _send_all(self.sock, self.frame(payload))

    async def receive(self) -> list[bytes]:
        """Wait for at least one whole message; return every whole message buffered."""
        while True:
            messages, control = self._parse()
            for opcode, payload in control:
                if opcode == _PING:
                    await self.send_raw(self.frame(payload, _PONG))
                elif opcode == _CLOSE:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    raise WsClosed(code, payload[2:].decode(errors="replace"))
            if messages:
                return messages
            chunk = await self._recv(262_144)
            if not chunk:
                raise WsClosed(1006, "connection closed without a close frame")
            self._buf += chunk

    async def _recv(self, size: int) -> bytes:
        """One read (a subclass may note more about it: bench/ws_clients.py's stamps)."""
        return await self.sock.recv(size)

    def _parse(self) -> tuple[list[bytes], list[tuple[int, bytes]]]:
        buf, pos, size = self._buf, 0, len(self._buf)
        messages: list[bytes] = []
        control: list[tuple[int, bytes]] = []
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, start = b1 & 0x7F, pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            key = b""
            if b1 & 0x80:  # servers must not mask, but tolerate it
                key, start = bytes(buf[start : start + 4]), start + 4
            end = start + length
            if size < end:
                break
            payload = bytes(buf[start:end])
            if key:
                payload = _xor(payload, key)
            pos = end
            opcode, fin = b0 & 0x0F, b0 & 0x80
            if opcode in (_TEXT, _BINARY):
                if fin:
                    messages.append(payload)
                else:
                    self._fragments = [payload]
            elif opcode == _CONTINUATION and self._fragments is not None:
                self._fragments.append(payload)
                if fin:
                    messages.append(b"".join(self._fragments))
                    self._fragments = None
            else:
                control.append((opcode, payload))
        if pos:
            del buf[:pos]
        return messages, control


async def _send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[await sock.send(view) :]


async def connect(url: str) -> WsClient:
    return await WsClient.connect(*split_url(url))


async def call(ws: WsClient, method: str, params: list[object], rid: int = 1) -> Any:
    """One JSON-RPC call on ``ws``; skips other messages; returns the result (raises on error)."""
    await ws.send_text(
        json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()
    )
    while True:
        for message in await ws.receive():
            answer = json.loads(message)
            if isinstance(answer, dict) and answer.get("id") == rid:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result")


def raise_nofile() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (one descriptor per socket).

    Returns (soft, hard) afterwards.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard_value = max(soft, 1048576) if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < hard_value:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard_value, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def run_trio(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``trio.run(fn, *args)`` for the harness, with SIGTERM handled inside trio.

    ``python -m bench`` turns SIGTERM into ``SystemExit`` so every ``launched()``
    block stops its child. Raised from a signal handler in the middle of
    ``trio.run`` that leaves trio's loop half torn down; here trio receives the
    signal, cancels ``fn``, returns, and only then ``SystemExit`` is raised.
    """
    signals: list[int] = []
    results: list[T] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                with trio.open_signal_receiver(signal.SIGTERM) as received:
                    async for signum in received:
                        signals.append(signum)
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(watch)
            results.append(await fn(*args))
            nursery.cancel_scope.cancel()

    trio.run(main)
    if signals:
        raise SystemExit(128 + signals[0])
    return results[0]
