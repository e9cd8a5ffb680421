"""Hostile and malformed requests through the real front end, against real anvil nodes.

Differential where a node is the reference: the same bytes go to a devnet node
directly and through Lasso, and the answers must agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import msgspec
import pytest
import trio

from lasso.config import parse_settings
from lasso.daemon import serve
from lasso.devnet import Devnet, open_devnet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JSON = {"content-type": "application/json"}


def settings_toml(devnet: Devnet, server: str = "") -> str:
    providers = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", priority = {n.index} }}'
        for n in devnet.nodes
    )
    return (
        f"[server]\nshutdown_grace_ms = 200\n{server}\n"
        f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n{providers}\n]\n"
    )


@dataclass
class Stack:
    devnet: Devnet
    client: httpx.AsyncClient

    @property
    def node_url(self) -> str:
        return self.devnet.nodes[0].http_url

    async def health(self) -> dict[str, Any]:
        response = await self.client.get("/health")
        return msgspec.json.decode(response.content)  # type: ignore[no-any-return]

    async def circuits(self) -> list[str]:
        chain = (await self.health())["chains"]["devnet"]
        return [
            provider[t]["circuit"]
            for provider in chain["providers"]
            for t in ("http", "ws")
            if provider.get(t)
        ]

    async def wait_ws_connected(self) -> None:
        with trio.fail_after(10):
            while True:
                chain = (await self.health())["chains"]["devnet"]
                if all(p["ws"] and p["ws"]["connected"] for p in chain["providers"]):
                    return
                await trio.sleep(0.02)


@asynccontextmanager
async def open_stack(devnet: Devnet, server: str = "") -> AsyncIterator[Stack]:
    settings = parse_settings(settings_toml(devnet, server), env={})
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            partial(serve, settings, host="127.0.0.1", port=0, shutdown=shutdown)
        )
        try:
            async with httpx.AsyncClient(base_url=urls[0], trust_env=False, timeout=None) as client:
                stack = Stack(devnet, client)
                await stack.wait_ws_connected()
                yield stack
        finally:
            shutdown.set()


@pytest.fixture
async def devnet() -> AsyncIterator[Devnet]:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as net:
        for _ in range(3):
            await net.mine()
        yield net


def nested(depth: int, rid: int) -> bytes:
    """A small eth_blockNumber whose params nest ``depth`` arrays deep."""
    params = b"[" * depth + b"]" * depth
    return b'{"jsonrpc":"2.0","id":%d,"method":"eth_blockNumber","params":%b}' % (rid, params)


# --- item 2: a client cannot open the breakers ------------------------------------


@pytest.mark.parametrize("max_json_depth", [None, 512])
async def test_a_burst_of_deep_requests_opens_no_breaker(
    devnet: Devnet, max_json_depth: int | None
) -> None:
    server = "" if max_json_depth is None else f"max_json_depth = {max_json_depth}"
    async with open_stack(devnet, server) as stack:
        answers: dict[int, httpx.Response] = {}

        async def send(rid: int) -> None:
            answers[rid] = await stack.client.post("/rpc/devnet", content=nested(200, rid))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for rid in range(30):
                    nursery.start_soon(send, rid)
            node = await stack.client.post(stack.node_url, content=nested(200, 99), headers=JSON)
            circuits = await stack.circuits()
            after = await stack.client.post(
                "/rpc/devnet",
                content=b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}',
            )
        assert circuits == ["closed"] * 6
        assert after.json() == {"jsonrpc": "2.0", "id": 1, "result": "0x3"}
        node_error = node.json()["error"]
        for rid, response in answers.items():
            answer = response.json()
            assert answer["id"] == rid
            assert answer["error"]["code"] == -32600
            if max_json_depth == 512:  # forwarded: the node's own answer comes back
                assert answer["error"] == node_error
            else:  # refused here, before it leaves Lasso
                assert "nested" in answer["error"]["message"]
