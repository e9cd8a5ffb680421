"""The feed through the real front end (hypercorn's protocol under Lasso's server, on a
loopback socket): each snapshot reaches the client as it is sent, not buffered; a client
hang-up frees its slot; and an open feed does not hold the daemon's shutdown for its
grace period (10 s here): the drain ends it at once."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
import trio

from lasso.config import parse_settings
from lasso.daemon import serve

pytestmark = pytest.mark.slow

#: One chain whose only provider refuses connections: the dashboard works regardless.
SETTINGS = """
[server]
shutdown_grace_ms = 10000
[chains.devnet]
chain_id = 31337
providers = [ { id = "n0", url = "http://127.0.0.1:1" } ]
"""


async def open_streams(client: httpx.AsyncClient, base: str) -> int:
    snapshot = (await client.get(f"{base}/dashboard/snapshot.json")).json()
    return int(snapshot["streams"]["open"])


async def open_feed(base: str) -> trio.SocketStream:
    """A raw HTTP/1.1 client of the feed: full control of reading and hanging up."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    sock = await trio.open_tcp_stream(host, int(port))
    await sock.send_all(b"GET /dashboard/events HTTP/1.1\r\nHost: lasso\r\n\r\n")
    return sock


async def read_until(sock: trio.SocketStream, received: bytes, count: int) -> bytes:
    while received.count(b"event: snapshot") < count:
        chunk = await sock.receive_some(65536)
        assert chunk, "the feed ended"
        received += chunk
    return received


async def test_snapshots_arrive_live_and_a_hang_up_frees_the_slot() -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        settings = parse_settings(SETTINGS, env={})
        binds = await nursery.start(
            partial(serve, settings, host="127.0.0.1", port=0, shutdown=shutdown)
        )
        base = binds[0]
        with trio.fail_after(20):
            async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
                sock = await open_feed(base)
                received = await read_until(sock, b"", 1)  # the first one at once
                head = received.split(b"\r\n\r\n", 1)[0].lower()
                assert head.startswith(b"http/1.1 200")
                assert b"content-type: text/event-stream" in head
                assert b'"key":"devnet"' in received and b'"id":"n0"' in received
                assert b"127.0.0.1:1" not in received  # providers by id, never by URL
                assert await open_streams(client, base) == 1
                received = await read_until(sock, received, 2)  # one more, a second later
                await sock.aclose()  # hang up
                while True:  # the slot comes back
                    if await open_streams(client, base) == 0:
                        break
                    await trio.sleep(0.05)
        shutdown.set()


async def test_an_open_feed_does_not_hold_the_shutdown() -> None:
    shutdown = trio.Event()
    rest = b""

    async def read_to_the_end(sock: trio.SocketStream) -> None:
        nonlocal rest
        while chunk := await sock.receive_some(65536):
            rest += chunk
        await sock.aclose()  # the server closed: so do we

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            settings = parse_settings(SETTINGS, env={})
            binds = await nursery.start(
                partial(serve, settings, host="127.0.0.1", port=0, shutdown=shutdown)
            )
            sock = await open_feed(binds[0])
            rest = await read_until(sock, b"", 1)
            nursery.start_soon(read_to_the_end, sock)
            started = trio.current_time()
            shutdown.set()
        stopped_after = trio.current_time() - started
    assert stopped_after < 2.0  # not the 10 s grace period
    assert b"\r\nconnection: close\r\n" in rest.lower()
    assert rest.endswith(b"0\r\n\r\n")  # the chunked body's clean end
