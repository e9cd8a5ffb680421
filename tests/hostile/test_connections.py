"""Too many connections: the one over ``max_connections`` gets 503 -32005, then is closed.

Before the fix there was no limit: every connection was accepted until the
process ran out of file descriptors, and then ``accept()`` failed for everyone.
"""

from __future__ import annotations

import json

import pytest
import trio

from tests.hostile.conftest import open_front
from tests.support.hostile import HttpResponse, read_http_response

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIMIT = 20
EXTRA = 12


async def test_connections_over_the_limit_get_503_and_the_rest_are_served() -> None:
    async with open_front(max_connections=LIMIT) as front:
        idle = [await trio.open_tcp_stream("127.0.0.1", front.port) for _ in range(LIMIT + EXTRA)]
        refused: list[HttpResponse] = []

        async def listen(stream: trio.SocketStream) -> None:
            with trio.move_on_after(0.5):  # a served idle connection says nothing
                refused.append(await read_http_response(stream))

        async with trio.open_nursery() as nursery:
            for stream in idle:
                nursery.start_soon(listen, stream)
        # The canary holds a WebSocket and an HTTP keep-alive connection.
        assert len(refused) == EXTRA + 2
        for answer in refused:
            assert answer.status == 503
            assert answer.headers["retry-after"] == "1"
            assert answer.headers["connection"] == "close"
            assert json.loads(answer.body) == {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32005, "message": "Server busy: too many connections"},
            }
        for stream in idle:
            await stream.aclose()
        # Slots come back: a new connection is served.
        with trio.fail_after(5):
            while True:
                stream = await trio.open_tcp_stream("127.0.0.1", front.port)
                body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
                await stream.send_all(
                    b"POST /rpc/devnet HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                answer = await read_http_response(stream)
                await stream.aclose()
                if answer.status == 200:
                    break
        await front.check_canary()
