"""Two real front ends (``lasso.daemon.serve`` on loopback ports, one trio run) before a
loopback node, sharing one redis-server: a client's HTTP requests and WebSocket frames to
either instance take from one bucket. ``rps = 0.001``: no token comes back during the test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from lasso.config import parse_settings
from tests.shared.redisserver import RedisServer
from tests.support.auth_node import open_auth_node
from tests.support.front import open_lasso

pytestmark = pytest.mark.slow


@asynccontextmanager
async def two_instances(redis: RedisServer) -> AsyncIterator[tuple[str, str]]:
    async with open_auth_node("Bearer node-secret") as node:
        text = (
            f'[shared]\nredis_url = "{redis.url}"\ntimeout_ms = 1000\n'
            "[rate_limit]\nrps = 0.001\nburst = 6\n[server]\nshutdown_grace_ms = 200\n"
            "[chains.fake]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [ "
            f'{{ id = "f1", url = "http://127.0.0.1:{node.http_port}", api_key = "node-secret" }}'
            " ]\n"
        )
        settings = parse_settings(text, env={})
        async with open_lasso(settings) as a, open_lasso(settings) as b:
            yield a, b


def call(rid: object) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": "eth_chainId", "params": []})


async def test_http_and_ws_on_two_instances_take_from_one_bucket(redis_server: RedisServer) -> None:
    with trio.fail_after(30):
        async with two_instances(redis_server) as (a, b), httpx.AsyncClient() as http:
            statuses = [
                (await http.post(f"{a}/rpc/fake", content=call(i))).status_code for i in range(3)
            ]
            statuses += [
                (await http.post(f"{b}/rpc/fake", content=call(i))).status_code for i in range(4)
            ]
            assert statuses == [200] * 6 + [429]  # 6 in all across both
            refused = (await http.post(f"{a}/rpc/fake", content=call(9))).json()
            assert refused["error"]["code"] == -32005
            assert 990_000 < refused["error"]["data"]["retry_after_ms"] <= 1_000_000
            async with open_websocket_url(b.replace("http://", "ws://") + "/ws/rpc/fake") as ws:
                await ws.send_message(call("w"))
                answer = json.loads(await ws.get_message())
            assert answer["id"] == "w" and answer["error"]["code"] == -32005
