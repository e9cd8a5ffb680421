"""``/health/ready`` through the real front end, in front of real anvil nodes behind TCP
relays: every node cut (HTTP breakers open, WebSockets stuck reconnecting) is 503 naming
the chain while ``/health`` stays 200; one node back is 200 again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from battle.replay import serve_lasso
from lasso.chaos.tcpcut import TcpRelay, open_tcp_relay
from lasso.config import parse_settings
from lasso.devnet import open_devnet
from tests.support.front import relayed_providers

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def stack() -> AsyncIterator[tuple[str, list[TcpRelay]]]:
    async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
        await devnet.mine()
        ports = [int(n.http_url.rsplit(":", 1)[1]) for n in devnet.nodes]
        async with open_tcp_relay(ports[0]) as r0, open_tcp_relay(ports[1]) as r1:
            providers = relayed_providers([r.port for r in (r0, r1)])
            settings = parse_settings(
                f"[chains.devnet]\nchain_id = 31337\nproviders = [\n{providers}\n]\n", env={}
            )
            async with serve_lasso(settings) as base:
                yield base, [r0, r1]


async def test_every_node_cut_is_503_and_one_back_is_200(
    stack: tuple[str, list[TcpRelay]],
) -> None:
    base, relays = stack
    async with httpx.AsyncClient(timeout=10) as client:

        async def circuits() -> list[tuple[str, bool | None]]:
            report = (await client.get(f"{base}/health")).json()
            return [
                (p["http"]["circuit"], p["ws"].get("connected"))
                for p in report["chains"]["devnet"]["providers"]
            ]

        with trio.fail_after(10):
            assert (await client.get(f"{base}/health/ready")).status_code == 200
            for relay in relays:
                relay.cut()
            n = 0
            while await circuits() != [("open", False), ("open", False)]:
                n += 1  # distinct calls: the same one is refused after two lost connections
                call = {"jsonrpc": "2.0", "id": n, "method": "eth_getBalance"}
                call["params"] = [f"0x{n:040x}", "latest"]
                await client.post(f"{base}/rpc/devnet", content=json.dumps(call))

            assert (await client.get(f"{base}/health")).status_code == 200  # liveness
            ready = await client.get(f"{base}/health/ready")
            assert ready.status_code == 503
            (chain,) = ready.json()["unavailable"]
            assert chain["chain"] == "devnet"
            for reasons in chain["providers"].values():
                assert reasons[0].startswith("http: breaker open")
                assert reasons[1].startswith("ws: not connected (")

            relays[1].restore()
            while (await client.get(f"{base}/health/ready")).status_code != 200:  # noqa: ASYNC110
                await trio.sleep(0.05)
