"""The pipelined connection against a scripted peer: a caller that gives up leaves its
place in the queue, and the next caller still gets its own reply on the same connection."""

from __future__ import annotations

import trio
import trio.testing

from lasso.shared.client import RedisConnection
from lasso.shared.resp import encode


async def test_an_abandoned_call_does_not_shift_the_replies() -> None:
    client, peer = trio.testing.memory_stream_pair()
    connection = RedisConnection(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.read_replies)
        first = trio.CancelScope()
        got: list[object] = []

        async def abandoned() -> None:
            with first:
                got.append(await connection.call("GET", "a"))

        nursery.start_soon(abandoned)
        await trio.testing.wait_all_tasks_blocked()
        assert await peer.receive_some() == encode("GET", "a")
        first.cancel()  # gives up after its command went out
        await trio.testing.wait_all_tasks_blocked()
        assert got == [] and not connection.is_broken()

        async def second() -> None:
            got.append(await connection.call("GET", "b"))

        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert await peer.receive_some() == encode("GET", "b")
        await peer.send_all(b"$5\r\nfirst\r\n$6\r\nsecond\r\n")
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b"second"] and not connection.is_broken()
        nursery.cancel_scope.cancel()


async def test_a_closed_peer_wakes_every_waiter_with_the_reason() -> None:
    client, peer = trio.testing.memory_stream_pair()
    connection = RedisConnection(client)
    errors: list[str] = []

    async def waiting() -> None:
        try:
            await connection.call("PING")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting)
        nursery.start_soon(waiting)
        await trio.testing.wait_all_tasks_blocked()
        await peer.aclose()
        try:
            await connection.read_replies()
        except Exception as exc:
            errors.append(f"reader {type(exc).__name__}: {exc}")
    assert sorted(errors) == [
        "RedisUnavailable: connection closed by the server",
        "RedisUnavailable: connection closed by the server",
        "reader RedisUnavailable: connection closed by the server",
    ]
    assert connection.is_broken()
