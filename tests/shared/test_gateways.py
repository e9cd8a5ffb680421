"""Two gateway instances on one real redis-server: one rate-limit bucket between them, a
value one writes the other reads; Redis killed mid-load costs no client an error, logs
one line, falls back to the local buckets, and is reconnected (one line) once back."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio

from lasso.config import parse_settings
from lasso.daemon import open_gateway
from lasso.shared.store import RedisStore
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.conftest import SETTINGS, FakeFleet
from tests.shared.redisserver import RedisServer
from tests.support.asgi import AsgiResponse, asgi_request
from tests.support.fakes import _block_hash


def body(rid: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": "eth_chainId", "params": []}).encode()


@asynccontextmanager
async def instances(
    redis: RedisServer, extra: str, count: int = 2
) -> AsyncIterator[list[LassoASGI]]:
    """``count`` gateways (each its own providers, gate and Redis store), one Redis."""
    shared = f'[shared]\nredis_url = "{redis.url}"\ntimeout_ms = 1000\nkey_prefix = "it:"\n'
    settings = parse_settings(shared + extra + SETTINGS, env={})
    async with AsyncExitStack() as stack:
        apps = []
        for index in range(count):
            gateway = await stack.enter_async_context(
                open_gateway(settings, rng=random.Random(index), transports=FakeFleet().transport)
            )
            apps.append(LassoASGI(gateway, create_app(gateway)))
        yield apps


async def post(app: LassoASGI, rid: Any) -> AsgiResponse:
    return await asgi_request(app, "POST", "/rpc/testnet", body(rid))


def store(app: LassoASGI) -> RedisStore:
    assert isinstance(app.gateway.shared, RedisStore)
    return app.gateway.shared


def lines(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "lasso.shared" and word in r.getMessage()
    ]


async def test_two_instances_share_one_bucket(redis_server: RedisServer) -> None:
    async with instances(redis_server, "[rate_limit]\nrps = 0.01\nburst = 6\n") as (a, b):
        answers = [await post(a if rid % 2 else b, rid) for rid in range(12)]
    statuses = [answer.status for answer in answers]
    assert statuses == [200] * 6 + [429] * 6  # 6 in all, not 6 each
    assert answers[6].json()["error"]["code"] == -32005
    # Counted by each gate, held in Redis: no local bucket was used.
    assert (a.gate.statistics().admitted, b.gate.statistics().admitted) == (3, 3)
    assert (len(a.gate.buckets), len(b.gate.buckets)) == (0, 0)


async def test_a_value_one_instance_writes_the_other_reads(redis_server: RedisServer) -> None:
    async with instances(redis_server, "") as (a, b):
        await store(a).set_bytes("cache:0xabc", b'{"number":"0x1"}')
        assert await store(b).get_bytes("cache:0xabc") == b'{"number":"0x1"}'
        await store(b).set_bytes("cache:0xabc", b"2", ttl_s=30)
        assert await store(a).get_bytes("cache:0xabc") == b"2"


@pytest.mark.slow
async def test_redis_killed_mid_load(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "lasso.shared")
    async with instances(redis_server, "[rate_limit]\nrps = 100000\nburst = 100000\n", 1) as (app,):
        statuses: list[int] = []
        errors: list[object] = []
        killed, restarted = trio.Event(), trio.Event()

        async def client(first: int) -> None:
            for rid in range(first, first + 150):
                answer = await post(app, rid)
                statuses.append(answer.status)
                if answer.status != 200 or "result" not in answer.json():
                    errors.append(answer.json())
                if len(statuses) == 300:
                    redis_server.kill()
                    killed.set()
                if len(statuses) == 600:
                    redis_server.start()
                    restarted.set()

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for worker in range(8):
                    nursery.start_soon(client, worker * 1000)
            assert killed.is_set() and restarted.is_set()
            while True:  # the reconnect loop finds it again (backoff at most 5 s)
                if store(app).available:
                    break
                await trio.sleep(0.01)
        local = app.gate.buckets.statistics().admitted
        assert local > 0  # the local bucket took over while Redis was down
        shared = app.gate.shared_admitted
        after = [await post(app, 5000 + rid) for rid in range(20)]
        assert {answer.status for answer in after} == {200}
        assert app.gate.buckets.statistics().admitted == local  # shared again
        assert app.gate.shared_admitted == shared + 20
    assert len(statuses) == 1200 and errors == []
    assert len(lines(caplog, "unreachable")) == 1
    assert len(lines(caplog, "reachable again")) == 1


async def test_two_instances_share_a_cached_answer(redis_server: RedisServer) -> None:
    """Instance A fetches a final block once; instance B, with its own providers, answers it
    from Redis (``x-lasso-cache: hit``) without calling any of them."""
    shared = f'[shared]\nredis_url = "{redis_server.url}"\ntimeout_ms = 1000\nkey_prefix = "c:"\n'
    settings = parse_settings(shared + SETTINGS + "\n[cache]\nfinality_depth_blocks = 64\n", env={})
    fleets = [FakeFleet(), FakeFleet()]
    call = b'{"jsonrpc":"2.0","id":%d,"method":"eth_getBlockByNumber","params":["0x10",false]}'
    async with AsyncExitStack() as stack:
        apps = []
        for index, fleet in enumerate(fleets):
            gateway = await stack.enter_async_context(
                open_gateway(settings, rng=random.Random(index), transports=fleet.transport)
            )
            chain = gateway.profiles["default"]["testnet"]
            for pid in ("p1", "p2", "p3"):  # head 100: blocks up to 36 are final
                chain.observe_head(pid, 100, _block_hash(100), _block_hash(99), trio.current_time())
            apps.append(LassoASGI(gateway, create_app(gateway)))
        first = await asgi_request(apps[0], "POST", "/rpc/testnet", call % 1)
        with trio.fail_after(5):  # the write to Redis follows the answer
            while True:
                if await store(apps[0])._call("KEYS", "c:*"):
                    break
                await trio.sleep(0.01)
        second = await asgi_request(apps[1], "POST", "/rpc/testnet", call % 2)
    assert first.headers["x-lasso-cache"] == "miss"
    assert second.headers["x-lasso-cache"] == "hit"
    assert second.json()["result"] == first.json()["result"]
    assert second.json()["id"] == 2
    calls = [sum(n.calls.count("eth_getBlockByNumber") for n in f.nodes.values()) for f in fleets]
    assert calls == [1, 0]
