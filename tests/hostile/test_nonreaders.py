"""WebSocket clients that stop reading: dropped by the send deadline; shutdown bounded.

Before the fix such a client sat forever with a full send queue (the promised
1013 never came: hypercorn's shielded ``send_all`` cannot be cancelled), and
SIGTERM then hung: the daemon had not exited 30 s later. And once any client
WebSocket had been used, even one closed cleanly, every shutdown took the full
``shutdown_grace_ms`` (10 s by default) instead of 0.02 s: hypercorn's ping
task outlived its connection, asleep for ``websocket_ping_interval``.
"""

from __future__ import annotations

import contextlib
import json
import re

import httpx
import pytest
import trio

from tests.hostile.conftest import Front, open_front
from tests.support.hostile import (
    OP_CLOSE,
    RawWebSocket,
    open_raw_websocket,
    shrink_receive_buffer,
    ws_frame,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NON_READERS = 10
FRAMES_EACH = 100


async def non_reader(front: Front) -> RawWebSocket:
    """Subscribes to newHeads, asks for megabytes of answers, and never reads a byte.

    The answers are Lasso's own (-32600 for each item of a batch of invalid
    requests): they fill the socket buffers without loading the nodes.
    """
    ws = await open_raw_websocket("127.0.0.1", front.port, "/ws/rpc/devnet")
    shrink_receive_buffer(ws.stream)
    subscribe = {"jsonrpc": "2.0", "id": 0, "method": "eth_subscribe", "params": ["newHeads"]}
    invalid_batch = json.dumps([{"jsonrpc": "2.0", "id": i} for i in range(50)]).encode()
    frames = [ws_frame(json.dumps(subscribe).encode())] + [ws_frame(invalid_batch)] * FRAMES_EACH
    with trio.move_on_after(1), contextlib.suppress(trio.BrokenResourceError):
        await ws.send_all(b"".join(frames))  # the server may stop reading us first
    return ws


async def non_readers(front: Front) -> list[RawWebSocket]:
    sockets: list[RawWebSocket] = []

    async def one() -> None:
        sockets.append(await non_reader(front))

    async with trio.open_nursery() as nursery:
        for _ in range(NON_READERS):
            nursery.start_soon(one)
    return sockets


async def client_head_subscriptions(base: str) -> int:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{base}/metrics")).text
    found = re.findall(r'lasso_client_subscriptions\{[^}]*kind="newHeads"[^}]*\} (\d+)', text)
    return sum(int(n) for n in found)


async def test_clients_that_stop_reading_are_dropped(front: Front) -> None:
    readers = await non_readers(front)
    with trio.fail_after(10):
        # Dropped by the send deadline (500 ms here): their subscriptions are released,
        # the canary's stays.
        while await client_head_subscriptions(front.base) != 1:  # noqa: ASYNC110
            await trio.sleep(0.05)  # polling /metrics, bounded by fail_after
    for ws in readers:
        await ws.aclose()
    await front.check_canary()


async def test_shutdown_is_bounded_by_the_grace_period_whatever_the_peers_do() -> None:
    # A send deadline far beyond the grace period: only the shutdown bound can save us.
    async with open_front(ws_send_timeout_ms=60_000, shutdown_grace_ms=1_000) as front:
        readers = await non_readers(front)
        try:
            took = await front.stop()
        finally:
            for ws in readers:
                await ws.aclose()
        assert took < 1.0 + 1.5, f"shutdown took {took:.2f} s"


async def test_shutdown_after_a_websocket_was_used_is_immediate() -> None:
    async with open_front(shutdown_grace_ms=10_000, ws_ping_interval_ms=30_000) as front:
        ws = await open_raw_websocket("127.0.0.1", front.port, "/ws/rpc/devnet")
        await ws.send_text(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}))
        assert b"0x7a69" in (await ws.message())[1]
        await ws.send_all(ws_frame(b"\x03\xe8", opcode=OP_CLOSE))
        assert (await ws.message())[0] == OP_CLOSE
        await ws.aclose()
        took = await front.stop()
        assert took < 1.0, f"shutdown took {took:.2f} s"
