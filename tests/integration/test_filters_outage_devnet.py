"""Block filters across an outage of every provider, through the real front end with real
anvil: each provider's HTTP and WebSocket behind their own TCP relay, all cut while
blocks are mined, then back one by one (HTTP then WebSocket, or the other way round).

A client that keeps polling the same filter id (as geth's clients do) must get every
block hash once, in order: from a filter fed by the hub's newHeads stream (backfilled
over HTTP when it resubscribes) and from a polled filter (installed while no WebSocket
was up, so it reads blocks over HTTP at each poll).
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
from lasso.devnet import Devnet, open_devnet
from tests.support.front import open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETTINGS = """
[websocket]
reconnect_base_ms = 200
reconnect_cap_ms = 400
[chains.devnet]
chain_id = 31337
block_time_ms = 1000
providers = [
{providers}
]
"""
POLL_S = 0.1


class Rig:
    def __init__(self, devnet: Devnet, http: list[TcpRelay], ws: list[TcpRelay], url: str):
        self.devnet, self.http, self.ws, self.url = devnet, http, ws, url


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with (
        open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet,
        AsyncExitStack() as stack,
    ):
        await devnet.mine()
        http = [await stack.enter_async_context(open_tcp_relay(n.port)) for n in devnet.nodes]
        ws = [await stack.enter_async_context(open_tcp_relay(n.port)) for n in devnet.nodes]
        providers = ",\n".join(
            f'{{ id = "n{i}", url = "http://127.0.0.1:{h.port}", '
            f'ws_url = "ws://127.0.0.1:{w.port}", priority = {i} }}'
            for i, (h, w) in enumerate(zip(http, ws, strict=True))
        )
        for relay in ws:  # no WebSocket at first: the first filter is a polled one
            relay.cut()
        settings = parse_settings(SETTINGS.format(providers=providers), env={})
        async with open_lasso(settings) as base:
            yield Rig(devnet, http, ws, f"{base}/rpc/devnet")


async def call(client: httpx.AsyncClient, url: str, method: str, params: list[Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return (await client.post(url, content=json.dumps(body))).json()


async def poll(
    client: httpx.AsyncClient, url: str, fid: str, into: list[str], stop: trio.Event
) -> None:
    """Poll ``fid`` until ``stop``, keeping every hash; an error (the outage) is retried."""
    while not stop.is_set():
        answer = await call(client, url, "eth_getFilterChanges", [fid])
        if "result" in answer:
            into.extend(answer["result"])
        else:
            assert "not found" not in answer["error"]["message"], answer  # never silently
        await trio.sleep(POLL_S)


@pytest.mark.parametrize("ws_first", [False, True])
async def test_block_filters_lose_nothing_across_an_outage_of_every_provider(
    rig: Rig, ws_first: bool
) -> None:
    devnet, url = rig.devnet, rig.url
    streamed: list[str] = []
    polled: list[str] = []
    async with httpx.AsyncClient(timeout=10) as client:
        with trio.fail_after(60):
            polled_id = (await call(client, url, "eth_newBlockFilter", []))["result"]
            for relay in rig.ws:
                relay.restore()
            while True:  # the stream-fed filter: installed once a WebSocket is up
                health = (await client.get(url.replace("/rpc/devnet", "/health"))).json()
                if _any_ws_up(health):
                    break
                await trio.sleep(POLL_S)  # a client knocking, not a wait for a condition
            answer = await call(client, url, "eth_newBlockFilter", [])
            streamed_id = answer["result"]
            metrics = (await client.get(url.replace("/rpc/devnet", "/metrics"))).text
            assert _stream_fed_filters(metrics) == 1  # on the hub's newHeads stream, not polled
            first = int(await devnet.request(0, "eth_blockNumber"), 16) + 1
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll, client, url, streamed_id, streamed, stop)
                nursery.start_soon(poll, client, url, polled_id, polled, stop)
                for _ in range(2):
                    await devnet.mine()
                    await trio.sleep(0.3)
                for relay in [*rig.http, *rig.ws]:
                    relay.cut()
                for _ in range(4):  # blocks nobody can hear of
                    await devnet.mine()
                    await trio.sleep(0.5)
                for h, w in zip(rig.http, rig.ws, strict=True):
                    (w if ws_first else h).restore()
                    await devnet.mine()
                    await trio.sleep(0.3)
                    (h if ws_first else w).restore()
                    await trio.sleep(0.3)
                await devnet.mine()
                last = int(await devnet.request(0, "eth_blockNumber"), 16)
                expected = [
                    (await devnet.request(0, "eth_getBlockByNumber", [hex(n), False]))["hash"]
                    for n in range(first, last + 1)
                ]
                while True:  # both filters polled up to the last block
                    if expected[-1] in streamed and expected[-1] in polled:
                        break
                    await trio.sleep(POLL_S)
                stop.set()
    assert [h for h in streamed if h in expected] == expected
    assert [h for h in polled if h in expected] == expected
    assert len(set(streamed)) == len(streamed) and len(set(polled)) == len(polled)


def _any_ws_up(health: dict[str, Any]) -> bool:
    providers = health["chains"]["devnet"]["providers"]
    return any(
        p.get("ws", {}).get("transport", {}).get("state") in ("connected", "stable")
        for p in providers
    )


def _stream_fed_filters(metrics: str) -> int:
    """The hub's newHeads clients (the stream-fed filters' one feed subscriber)."""
    for line in metrics.splitlines():
        if line.startswith("lasso_client_subscriptions{") and 'kind="newHeads"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0
