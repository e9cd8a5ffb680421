"""The fan-out's two write paths give a client the same notifications, byte for byte.

A client that negotiates no extension gets frames Lasso builds and writes straight to
its socket (lasso.web.ws.DirectWire); one that negotiates permessage-deflate keeps
hypercorn's wsproto path. Both subscribe to newHeads on the real front end before a
real devnet (and the suite's canary runs beside them): the same heads, the same JSON
text (only the subscription id differs), and the direct frames are exactly the bytes
wsproto would have written for that text.
"""

from __future__ import annotations

import json
import struct

import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection as WsConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from tests.hostile.conftest import Front
from tests.support.hostile import handshake_request, read_head, ws_frame

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUBSCRIBE = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
).encode()
HEADS = 3


class RawFrames:
    """A client offering no extension: each server frame as the bytes on the wire."""

    def __init__(self, stream: trio.SocketStream, buffered: bytes) -> None:
        self.stream = stream
        self.buffer = bytearray(buffered)

    async def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            chunk = await self.stream.receive_some(65536)
            assert chunk, "closed"
            self.buffer += chunk

    async def text(self) -> tuple[bytes, bytes]:
        """The next text frame: (frame bytes, payload); pings and pongs skipped."""
        while True:
            await self._fill(2)
            size, head = self.buffer[1] & 0x7F, 2
            if size == 126:
                await self._fill(4)
                size, head = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif size == 127:
                await self._fill(10)
                size, head = struct.unpack("!Q", self.buffer[2:10])[0], 10
            await self._fill(head + size)
            frame = bytes(self.buffer[: head + size])
            del self.buffer[: head + size]
            if frame[0] & 0x0F == 0x1:
                return frame, frame[head:]


async def open_raw(port: int) -> RawFrames:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(handshake_request(f"127.0.0.1:{port}", "/ws/rpc/devnet"))
    head, rest = await read_head(stream)
    assert head.startswith(b"HTTP/1.1 101") and b"sec-websocket-extensions" not in head.lower()
    return RawFrames(stream, rest)


class DeflateClient:
    """A standard client (wsproto) that negotiates permessage-deflate."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.compressed = 0  # data frames seen with RSV1 (compressed) set

    async def text(self) -> str:
        parts: list[str] = []
        while True:
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        return "".join(parts)
            data = await self.stream.receive_some(65536)
            assert data, "closed"
            if data[0] & 0x40:
                self.compressed += 1
            self.ws.receive_data(data)

    async def send(self, text: str) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(data=text)))


async def open_deflate(port: int) -> DeflateClient:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    ws = WSConnection(ConnectionType.CLIENT)
    request = Request(
        host=f"127.0.0.1:{port}", target="/ws/rpc/devnet", extensions=[PerMessageDeflate()]
    )
    await stream.send_all(ws.send(request))
    client = DeflateClient(stream, ws)
    while True:
        data = await stream.receive_some(65536)
        assert data, "closed during the handshake"
        ws.receive_data(data)
        accepted = [e for e in ws.events() if isinstance(e, AcceptConnection)]
        if accepted:
            assert [type(x) for x in accepted[0].extensions] == [PerMessageDeflate]
            return client


def by_number(texts: list[str], sub_id: str) -> dict[int, str]:
    out = {}
    for text in texts:
        number = int(json.loads(text)["params"]["result"]["number"], 16)
        out[number] = text.replace(sub_id, "SUB")
    return out


async def test_direct_and_deflate_clients_get_the_same_notifications(front: Front) -> None:
    with trio.fail_after(20):
        raw = await open_raw(front.port)
        deflate = await open_deflate(front.port)
        await raw.stream.send_all(ws_frame(SUBSCRIBE))
        await deflate.send(SUBSCRIBE.decode())
        raw_answer = (await raw.text())[1].decode()
        deflate_answer = await deflate.text()
        raw_id, deflate_id = json.loads(raw_answer)["result"], json.loads(deflate_answer)["result"]
        assert raw_answer.replace(raw_id, "SUB") == deflate_answer.replace(deflate_id, "SUB")

        raw_frames = [await raw.text() for _ in range(HEADS + 2)]
        deflate_texts = [await deflate.text() for _ in range(HEADS + 2)]
    raw_texts = [payload.decode() for _, payload in raw_frames]
    head = f'{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"{raw_id}",'
    for text in raw_texts:  # the envelope Lasso always wrote, around the node's head as is
        assert text.startswith(head + '"result":{') and text.endswith("}}}")
    for frame, payload in raw_frames:  # the direct frames: exactly what wsproto writes
        assert frame == WsConnection(ConnectionType.SERVER).send(TextMessage(payload.decode()))
    assert deflate.compressed > 0  # the deflate client really took hypercorn's path
    fast, slow = by_number(raw_texts, raw_id), by_number(deflate_texts, deflate_id)
    common = sorted(set(fast) & set(slow))
    assert len(common) >= HEADS
    assert [fast[n] for n in common] == [slow[n] for n in common]
    await raw.stream.aclose()
    await deflate.stream.aclose()
    await front.check_canary()
