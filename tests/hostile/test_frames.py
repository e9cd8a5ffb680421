"""Malformed WebSocket frames and resets: no connection can end the daemon.

Before the fix one unmasked frame (or a masked one with a non-minimal 126/127
length) followed by a close ended ``lasso serve`` with rc=1 within 1 to 20
connections: hypercorn's ping task raised ``trio.BusyResourceError`` while the
connection closed, and hypercorn's accept loop let it end the server.
"""

from __future__ import annotations

import json

import pytest
import trio

from tests.hostile.conftest import Front
from tests.support.hostile import (
    OP_CLOSE,
    OP_PING,
    open_raw_websocket,
    reset,
    ws_frame,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONNECTIONS = 2_000
AT_ONCE = 40
PAYLOAD = b"x" * 64
CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()

#: One hostile connection each: what it sends after the handshake, and how it leaves.
KINDS: list[tuple[str, bytes, bool]] = [
    ("unmasked", ws_frame(PAYLOAD, masked=False), False),
    ("16-bit length for 64 bytes", ws_frame(PAYLOAD, length_form="16"), False),
    ("64-bit length for 64 bytes", ws_frame(PAYLOAD, length_form="64"), False),
    ("unmasked, then reset", ws_frame(PAYLOAD, masked=False), True),
    ("half a frame, then reset", ws_frame(CALL)[:5], True),
    ("call, then reset", ws_frame(CALL), True),
    ("reserved opcode", ws_frame(PAYLOAD, opcode=0x3), False),
    ("fragmented ping", ws_frame(b"p", opcode=OP_PING, fin=False), False),
    ("close with a bad code", ws_frame(b"\x00\x01", opcode=OP_CLOSE), False),
    ("reset at once", b"", True),
]


async def hostile(front: Front, index: int) -> None:
    _, frame, rst = KINDS[index % len(KINDS)]
    stream = await open_raw_websocket("127.0.0.1", front.port, "/ws/rpc/devnet")
    try:
        if frame:
            await stream.send_all(frame)
    except trio.BrokenResourceError:
        pass
    if rst:
        reset(stream.stream)
    else:
        await stream.aclose()


async def test_thousands_of_malformed_frames_and_resets_leave_the_daemon_serving(
    front: Front,
) -> None:
    limiter = trio.CapacityLimiter(AT_ONCE)

    async def one(index: int) -> None:
        async with limiter:
            await hostile(front, index)

    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            for index in range(CONNECTIONS):
                nursery.start_soon(one, index)
        # Still accepting: a fresh WebSocket gets an answer.
        stream = await open_raw_websocket("127.0.0.1", front.port, "/ws/rpc/devnet")
        await stream.send_all(ws_frame(CALL))
        _, reply = await stream.message()
        assert b'"result"' in reply
        await stream.aclose()
    await front.check_canary()
