"""Every provider cut at once is an outage, not a query of death: real anvil behind relays.

The battle scenario ``all-down-then-recovery`` flaked (``backfill_incomplete = 4``, about one
run in ten): every node sits behind a TCP relay; the relays are cut at once (HTTP and WS
connections reset, new ones accepted then reset). A request reaching the nodes then loses the
connection mid-request on each: it used to count as losing two providers (lasso.core.poison),
so it was quarantined and refused for ten minutes after the nodes came back. The battle's web3
filter client, looking up the hash of a block mined just before the cut
(``eth_getBlockByHash``), could then never record that block. Now the providers whose
WebSockets dropped are known to be failing before the request reaches them: it gets the
outage's error and, once the relays are restored, its answer.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio

from lasso.chaos.tcpcut import open_tcp_relay
from lasso.config import parse_settings
from lasso.devnet import open_devnet
from tests.support.front import open_lasso, relayed_providers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLL_S = 0.05
JSON = {"content-type": "application/json"}


async def rpc(client: httpx.AsyncClient, base: str, method: str, params: list[Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    response = await client.post(f"{base}/rpc/devnet", content=json.dumps(body), headers=JSON)
    assert response.status_code == 200, response.text
    return response.json()


async def ws_connected(client: httpx.AsyncClient, base: str) -> list[bool]:
    health = (await client.get(f"{base}/health")).json()
    return [p["ws"]["connected"] for p in health["chains"]["devnet"]["providers"]]


async def until_ws(client: httpx.AsyncClient, base: str, connected: bool) -> None:
    """Poll /health until every provider's upstream WebSocket is (dis)connected."""
    while True:
        if all(c is connected for c in await ws_connected(client, base)):
            return
        await trio.sleep(POLL_S)


async def test_a_fresh_request_during_an_outage_is_answered_after_it() -> None:
    async with (
        open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet,
        open_tcp_relay(devnet.nodes[0].port) as r0,
        open_tcp_relay(devnet.nodes[1].port) as r1,
        open_tcp_relay(devnet.nodes[2].port) as r2,
    ):
        relays = [r0, r1, r2]
        await devnet.mine()
        await devnet.mine()
        providers = relayed_providers([r.port for r in relays])
        settings = parse_settings(
            f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\n"
            f"providers = [\n{providers}\n]\n",
            env={},
        )
        # A block the gateway was never asked about (the fresh block of the battle).
        fresh = await devnet.request(0, "eth_getBlockByNumber", ["latest", False])
        async with (
            open_lasso(settings) as base,
            httpx.AsyncClient(timeout=10, trust_env=False) as client,
        ):
            with trio.fail_after(20):
                await until_ws(client, base, True)
                assert "result" in await rpc(client, base, "eth_blockNumber", [])

            for relay in relays:
                relay.cut()
            with trio.fail_after(20):
                await until_ws(client, base, False)  # the gateway has seen the outage
                during = await rpc(client, base, "eth_getBlockByHash", [fresh["hash"], False])
            assert during["error"]["code"] == -32000, during
            assert "mid-request (it may crash nodes)" not in during["error"]["message"], during
            health = (await client.get(f"{base}/health")).json()
            assert health["chains"]["devnet"]["poisoned_requests"]["stopped"] == 0, health

            for relay in relays:
                relay.restore()
            with trio.fail_after(30):  # the breakers close again (recovery mode)
                while True:
                    after = await rpc(client, base, "eth_getBlockByHash", [fresh["hash"], False])
                    if "result" in after:
                        break
                    assert "quarantined_ms" not in after["error"].get("data", {}), after
                    await trio.sleep(POLL_S)  # a client knocking, not a wait for a condition
            assert after["result"]["hash"] == fresh["hash"]
