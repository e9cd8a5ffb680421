"""Many clients uploading big bodies at once: memory stays bounded, small calls pass.

Before the fix, 100 connections each holding 7.99 MB of an 8 MB body raised the
daemon's RSS from 49 to 825 MB, and it stayed at 651 MB after they left.
"""

from __future__ import annotations

import json

import pytest
import trio

from tests.hostile.conftest import SUITE_SERVER, Front, rss_mb
from tests.support.hostile import read_http_response

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UPLOADERS = 60
BODY_BYTES = 4_000_000
CHUNK = b" " * 65536
BUDGET_MB = SUITE_SERVER["max_inflight_body_bytes"] / 1e6


async def upload(port: int, statuses: list[int]) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    head = (
        b"POST /rpc/devnet HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n[" % BODY_BYTES
    )
    sent = 1
    try:
        await stream.send_all(head)
        async with trio.open_nursery() as nursery:

            async def feed() -> None:
                nonlocal sent
                while sent < BODY_BYTES:
                    await stream.send_all(CHUNK[: min(len(CHUNK), BODY_BYTES - sent)])
                    sent += len(CHUNK)

            nursery.start_soon(feed)
            answer = await read_http_response(stream)
            nursery.cancel_scope.cancel()
        statuses.append(answer.status)
        if answer.status == 503:
            assert answer.headers["retry-after"] == "1"
            assert json.loads(answer.body)["error"]["code"] == -32005
    except (trio.BrokenResourceError, EOFError):
        statuses.append(0)  # cut while sending: the server answered and closed
    finally:
        await stream.aclose()


async def test_concurrent_uploads_are_bounded_and_refused_with_503(front: Front) -> None:
    before = rss_mb()
    statuses: list[int] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(UPLOADERS):
                nursery.start_soon(upload, front.port, statuses)
    grown = rss_mb() - before
    assert len(statuses) == UPLOADERS
    assert statuses.count(503) >= UPLOADERS // 2, statuses
    # 80 MB offered at once; what the gateway buffers is bounded by the budget
    # (plus per-connection read buffers), not by what the clients send.
    assert grown < BUDGET_MB * 2 + 30, f"RSS grew {grown:.0f} MB"
    await front.check_canary()
