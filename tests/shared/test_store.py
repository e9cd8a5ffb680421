"""RedisStore against a real redis-server: values, expiry, the shared token bucket,
AUTH, and every way Redis can be missing (refused, hung, killed) answering None fast."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from lasso.shared.client import connect, parse_redis_url
from lasso.shared.store import RedisStore
from tests.shared.conftest import start_redis
from tests.shared.redisserver import RedisServer, free_port


@asynccontextmanager
async def open_store(
    url: str, timeout_ms: int = 1000, prefix: str = "t:"
) -> AsyncIterator[RedisStore]:
    store = RedisStore(parse_redis_url(url), timeout_s=timeout_ms / 1000, key_prefix=prefix)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        yield store
        nursery.cancel_scope.cancel()


def shared_lines(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "lasso.shared" and word in r.getMessage()
    ]


async def test_values_round_trip_under_the_prefix(redis_server: RedisServer) -> None:
    async with open_store(redis_server.url) as store:
        assert store.available
        assert await store.get_bytes("a") is None
        await store.set_bytes("a", b'\x00{"x":1}\r\n')
        assert await store.get_bytes("a") == b'\x00{"x":1}\r\n'
        raw = await connect(parse_redis_url(redis_server.url))
        assert await raw.call_alone("GET", "t:a") == b'\x00{"x":1}\r\n'  # the prefix is ours
        await raw.aclose()


async def test_values_expire(redis_server: RedisServer) -> None:
    async with open_store(redis_server.url) as store:
        await store.set_bytes("long", b"1", ttl_s=10)
        await store.set_bytes("short", b"1", ttl_s=0.02)
        raw = await connect(parse_redis_url(redis_server.url))
        pttl = await raw.call_alone("PTTL", "t:long")
        assert isinstance(pttl, int) and 9_000 < pttl <= 10_000
        assert await raw.call_alone("PTTL", "t:forever") == -2
        await raw.aclose()
        with trio.fail_after(2):  # Redis's own clock expires it
            while True:
                if await store.get_bytes("short") is None:
                    break
                await trio.sleep(0.005)
        assert await store.get_bytes("long") == b"1"


async def test_the_bucket_takes_burst_then_refuses_with_the_wait(redis_server: RedisServer) -> None:
    async with open_store(redis_server.url) as store:
        takes = [await store.take_tokens("b", rate=0.5, burst=3, cost=1) for _ in range(3)]
        assert takes == [0.0, 0.0, 0.0]
        wait = await store.take_tokens("b", rate=0.5, burst=3, cost=1)
        assert wait is not None and 1.9 < wait <= 2.0  # one token at 0.5/s
        # A batch larger than the burst costs the burst; another key is its own bucket.
        assert await store.take_tokens("c", rate=0.5, burst=3, cost=50) == 0.0
        assert await store.take_tokens("c", rate=0.5, burst=3, cost=1) > 0  # type: ignore[operator]


async def test_the_script_is_loaded_again_after_a_flush(redis_server: RedisServer) -> None:
    async with open_store(redis_server.url) as store:
        assert await store.take_tokens("b", rate=10, burst=1, cost=1) == 0.0
        raw = await connect(parse_redis_url(redis_server.url))
        assert await raw.call_alone("SCRIPT", "FLUSH") == "OK"
        await raw.aclose()
        assert await store.take_tokens("b2", rate=10, burst=1, cost=1) == 0.0  # NOSCRIPT, EVAL
        assert store.statistics().error_replies == 0


async def test_password_and_database_from_the_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_redis(tmp_path, password="s3cr3t-pw")
    try:
        async with open_store(server.url.replace("/0", "/3")) as store:
            assert store.available
            await store.set_bytes("k", b"v")
        raw = await connect(parse_redis_url(server.url.replace("/0", "/3")))
        assert await raw.call_alone("GET", "t:k") == b"v"
        await raw.aclose()
        wrong = server.url.replace("s3cr3t-pw", "wrong-pw")
        async with open_store(wrong) as store:
            assert not store.available
            assert await store.get_bytes("k") is None
    finally:
        server.stop()
    assert "s3cr3t-pw" not in caplog.text and "wrong-pw" not in caplog.text
    assert shared_lines(caplog, "unreachable (AUTH refused: WRONGPASS)")


async def test_nothing_listening_answers_none_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "lasso.shared")
    async with open_store(f"redis://127.0.0.1:{free_port()}/0") as store:
        assert not store.available
        for _ in range(20):
            assert await store.get_bytes("a") is None
            await store.set_bytes("a", b"x")
            assert await store.take_tokens("a", rate=1, burst=1, cost=1) is None
        assert store.statistics().fallbacks == 60
    assert len(shared_lines(caplog, "unreachable")) == 1


async def test_a_hung_redis_costs_at_most_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """A peer that accepts, says PONG to the connect, then never answers again."""
    caplog.set_level(logging.INFO, "lasso.shared")
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def hang(stream: trio.SocketStream) -> None:
        await stream.receive_some()  # the PING
        await stream.send_all(b"+PONG\r\n")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, hang, listeners)
        async with open_store(f"redis://127.0.0.1:{port}/0", timeout_ms=30) as store:
            assert store.available
            start = trio.current_time()
            assert await store.get_bytes("a") is None
            assert trio.current_time() - start < 0.5
            assert not store.available  # the connection was dropped: out of step
            for _ in range(10):
                assert await store.take_tokens("a", rate=1, burst=1, cost=1) is None
        nursery.cancel_scope.cancel()
    assert len(shared_lines(caplog, "unreachable (no reply within 30 ms)")) == 1
