"""Connection caps: one client address, and WebSockets as a whole, cannot take every slot.

Before: no per-address cap (one host could hold all ``max_connections`` slots and
every other client got 503) and no WebSocket cap (a WebSocket flood could take
every slot from HTTP clients).

The attacker connects from 127.0.0.2 and a bystander from 127.0.0.3 (both
loopback): the canary (127.0.0.1) and the bystander must be unaffected.
"""

from __future__ import annotations

import contextlib
import json

import pytest
import trio

from tests.hostile.conftest import SUITE_SERVER, Front, open_front
from tests.support.hostile import (
    HttpResponse,
    handshake_request,
    open_raw_websocket,
    read_head,
    read_http_response,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PER_IP = 256
ATTACK = 600
CALL = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
REQUEST = b"POST /rpc/devnet HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
    len(CALL),
    CALL,
)


async def call_from(address: str, port: int) -> tuple[trio.SocketStream, HttpResponse]:
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=address)
    await stream.send_all(REQUEST)
    return stream, await read_http_response(stream)


async def test_one_address_gets_at_most_its_cap_and_others_are_served() -> None:
    async with open_front(max_connections=1000, max_connections_per_ip=PER_IP) as front:
        held: list[trio.SocketStream] = []
        statuses: dict[int, int] = {}
        with trio.fail_after(60):
            for _ in range(ATTACK):
                stream, answer = await call_from("127.0.0.2", front.port)
                statuses[answer.status] = statuses.get(answer.status, 0) + 1
                if answer.status == 200:
                    held.append(stream)  # a served keep-alive connection stays open
                    continue
                assert answer.status == 503
                assert answer.headers["retry-after"] == "1"
                assert json.loads(answer.body)["error"] == {
                    "code": -32005,
                    "message": "Server busy: too many connections from this address",
                }
                await stream.aclose()
            assert statuses == {200: PER_IP, 503: ATTACK - PER_IP}

            # Another address is unaffected while the first holds its whole share.
            others = [await call_from("127.0.0.3", front.port) for _ in range(20)]
            assert [answer.status for _, answer in others] == [200] * 20
            for stream, _ in others:
                await stream.aclose()

            # The slots come back when the attacker lets go.
            for stream in held:
                await stream.aclose()
            while True:
                stream, answer = await call_from("127.0.0.2", front.port)
                await stream.aclose()
                if answer.status == 200:
                    break
                await trio.sleep(0.01)  # polling: the server closes its side first
        await front.check_canary()


async def test_websockets_over_the_cap_get_a_503_handshake_refusal() -> None:
    cap = 5  # the canary holds one
    async with open_front(max_ws_connections=cap) as front:
        sockets = [
            await open_raw_websocket("127.0.0.1", front.port, "/ws/rpc/devnet")
            for _ in range(cap - 1)
        ]
        stream = await trio.open_tcp_stream("127.0.0.1", front.port)
        await stream.send_all(handshake_request(f"127.0.0.1:{front.port}", "/ws/rpc/devnet"))
        answer = await read_http_response(stream)
        await stream.aclose()
        assert answer.status == 503
        assert answer.headers["retry-after"] == "1"
        assert json.loads(answer.body)["error"] == {
            "code": -32005,
            "message": "Server busy: too many WebSocket connections",
        }
        # Plain HTTP is not a WebSocket: still served.
        http, reply = await call_from("127.0.0.1", front.port)
        await http.aclose()
        assert reply.status == 200
        # A slot comes back when a session ends.
        await sockets.pop().aclose()
        with trio.fail_after(10):
            while True:
                stream = await trio.open_tcp_stream("127.0.0.1", front.port)
                await stream.send_all(
                    handshake_request(f"127.0.0.1:{front.port}", "/ws/rpc/devnet")
                )
                head, _ = await read_head(stream)
                await stream.aclose()
                if head.startswith(b"HTTP/1.1 101"):
                    break
                await trio.sleep(0.01)  # polling: the session ends in the server's task
        for ws in sockets:
            await ws.aclose()
        await front.check_canary()


async def test_half_a_request_head_is_dropped_after_header_timeout(front: Front) -> None:
    """A client that sends part of a head and then nothing is cut at header_timeout_ms."""
    timeout_s = SUITE_SERVER["header_timeout_ms"] / 1000
    stalled = [await trio.open_tcp_stream("127.0.0.1", front.port) for _ in range(20)]
    start = trio.current_time()
    for stream in stalled:
        await stream.send_all(b"POST /rpc/devnet HTTP/1.1\r\nHost: x\r\nContent-Le")
    with trio.fail_after(timeout_s * 6):
        for stream in stalled:
            with contextlib.suppress(trio.BrokenResourceError):  # dropped with RST
                assert await stream.receive_some(4096) == b""  # or with FIN, no answer
    elapsed = trio.current_time() - start
    assert timeout_s * 0.9 <= elapsed <= timeout_s * 6
    for stream in stalled:
        await stream.aclose()
    await front.check_canary()
