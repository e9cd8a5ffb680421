"""A WebSocket client that floods frames faster than it reads its answers.

It is closed with 1013 and a reason saying what happened. Before the fix the
reason was "client too slow for its subscriptions", for a client with none.
"""

from __future__ import annotations

import contextlib
import json

import pytest
import trio

from tests.hostile.conftest import SUITE_SERVER, Front
from tests.support.hostile import OP_CLOSE, close_reason, open_raw_websocket, ws_frame

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FRAMES = 4_000


async def test_a_frame_flood_is_closed_with_a_reason_that_says_so(front: Front) -> None:
    ws = await open_raw_websocket("127.0.0.1", front.port, "/ws/rpc/devnet")
    flood = b"".join(
        ws_frame(json.dumps({"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}).encode())
        for i in range(FRAMES)
    )
    answers = 0
    with trio.fail_after(10):
        # All at once, reading nothing meanwhile; if the server closes first,
        # the reason is in what we read next.
        with contextlib.suppress(trio.BrokenResourceError):
            await ws.send_all(flood)
        while True:
            opcode, payload = await ws.message()
            if opcode == OP_CLOSE:
                break
            answers += 1
    limit = SUITE_SERVER["ws_send_queue"]
    assert close_reason(payload) == (
        1013,
        f"client sends faster than it reads: {limit} messages unsent",
    )
    assert 0 < answers < FRAMES
    await ws.aclose()
    await front.check_canary()
