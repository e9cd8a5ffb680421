"""All providers down, then back: through the real front end, with real anvil nodes.

Every node sits behind a TCP relay that can be cut (connections reset, new ones
refused, as when a node is down) and restored. After all of them come back, the
first client success must follow within 2 s; before recovery mode it took a
breaker's whole recovery timeout (about a minute).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import trio

from lasso.chaos.tcpcut import TcpRelay, open_tcp_relay
from lasso.config import parse_settings
from lasso.devnet import open_devnet
from tests.support.front import open_lasso, relayed_providers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLL_S = 0.05


@pytest.fixture
async def relayed() -> AsyncIterator[tuple[list[TcpRelay], str]]:
    async with (
        open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet,
        AsyncExitStack() as stack,
    ):
        await devnet.mine()
        relays = [await stack.enter_async_context(open_tcp_relay(n.port)) for n in devnet.nodes]
        providers = relayed_providers([r.port for r in relays])
        settings = parse_settings(
            f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n{providers}\n]\n",
            env={},
        )
        async with open_lasso(settings) as base:
            yield relays, base


async def block_number(client: httpx.AsyncClient, base: str) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    response = await client.post(
        f"{base}/rpc/devnet", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    answer: dict[str, Any] = response.json()
    return answer


async def test_first_success_within_2_s_of_the_nodes_return(
    relayed: tuple[list[TcpRelay], str],
) -> None:
    relays, base = relayed
    async with httpx.AsyncClient(timeout=10) as client:
        with trio.fail_after(10):
            assert "result" in await block_number(client, base)
            assert (await client.get(f"{base}/health")).json()["status"] == "healthy"

        for relay in relays:
            relay.cut()
        with trio.fail_after(20):  # fire requests until every breaker is open
            while True:
                answer = await block_number(client, base)
                if "retry_after_ms" in answer.get("error", {}).get("data", {}):
                    break
                await trio.sleep(POLL_S)  # a client knocking, not a wait for a condition
        assert answer["error"]["code"] == -32000
        assert answer["error"]["data"]["retry_after_ms"] <= 500
        report = (await client.get(f"{base}/health")).json()
        assert report["status"] == "degraded"
        assert report["chains"]["devnet"]["status"] == "unavailable"
        assert report["chains"]["devnet"]["available_providers"] == 0
        await trio.sleep(1.0)  # an outage of a second or so, clients still knocking

        for relay in relays:
            relay.restore()
        back_at = trio.current_time()
        with trio.fail_after(90):
            while True:
                if "result" in await block_number(client, base):
                    break
                await trio.sleep(POLL_S)
        took_s = trio.current_time() - back_at
        print(f"first success {took_s:.3f} s after the nodes returned")
        assert took_s < 2.0
        assert (await client.get(f"{base}/health")).json()["chains"]["devnet"]["status"] != (
            "unavailable"
        )
