"""Slowloris: request heads sent a line at a time are cut at header_timeout_ms.

Before the fix, 100 such connections were all still held after 60 s (only
hypercorn's keep_alive_timeout, 75 s, ever ended them).
"""

from __future__ import annotations

import json

import pytest
import trio

from tests.hostile.conftest import SUITE_SERVER, Front
from tests.support.hostile import read_http_response

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LORISES = 100
HEADER_TIMEOUT_S = SUITE_SERVER["header_timeout_ms"] / 1000
CALL = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "eth_chainId", "params": []}).encode()


def post(body: bytes) -> bytes:
    return (
        b"POST /rpc/devnet HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


async def loris(port: int, dropped: list[float], start: float) -> None:
    """Send a header line every 50 ms until the server hangs up."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        await stream.send_all(b"POST /rpc/devnet HTTP/1.1\r\n")
        line = 0
        while True:
            await stream.send_all(b"X-Slow-%d: y\r\n" % line)
            line += 1
            with trio.move_on_after(0.05):  # the drip rate, and a read for the hang-up
                if await stream.receive_some(4096) == b"":
                    break
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    dropped.append(trio.current_time() - start)
    await stream.aclose()


async def test_slow_request_heads_are_cut_but_idle_keep_alive_is_not(front: Front) -> None:
    # A keep-alive connection, idle between two requests for longer than the head deadline.
    keeper = await trio.open_tcp_stream("127.0.0.1", front.port)
    await keeper.send_all(post(CALL))
    assert (await read_http_response(keeper)).status == 200

    dropped: list[float] = []
    start = trio.current_time()
    with trio.fail_after(HEADER_TIMEOUT_S * 6):
        async with trio.open_nursery() as nursery:
            for _ in range(LORISES):
                nursery.start_soon(loris, front.port, dropped, start)
    assert len(dropped) == LORISES
    assert min(dropped) >= HEADER_TIMEOUT_S and max(dropped) <= HEADER_TIMEOUT_S * 4

    # Idle for the whole attack, longer than the head deadline: still served.
    await keeper.send_all(post(CALL))
    answer = await read_http_response(keeper)
    assert json.loads(answer.body) == {"jsonrpc": "2.0", "id": 3, "result": "0x7a69"}
    await keeper.aclose()
    await front.check_canary()


async def test_a_slow_body_gets_408(front: Front) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", front.port)
    whole = post(CALL)
    await stream.send_all(whole[:-5])  # the head and most of the body, never the rest
    with trio.fail_after(5):
        answer = await read_http_response(stream)
    assert answer.status == 408
    assert json.loads(answer.body)["error"] == {
        "code": -32600,
        "message": "Invalid Request: request body not received within 1000 ms",
    }
    await stream.aclose()
    await front.check_canary()
