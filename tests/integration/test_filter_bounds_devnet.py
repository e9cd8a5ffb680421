"""Client-controlled upstream work through the real front end, before a real devnet.

A log filter naming 10,000 addresses or OR-topics gets -32602 over HTTP and over a
WebSocket (``eth_getLogs``, ``eth_newFilter``, ``eth_subscribe`` ``logs``) without
reaching a node; a filter within the bound, and a malformed one (the node's business),
are answered exactly as the node answers them. Churning 2,000 distinct logs filters on
one socket leaves at most the per-client idle bound of upstream subscriptions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from lasso.config import parse_settings
from lasso.daemon import serve
from lasso.devnet import Devnet, open_devnet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADDRESSES = ["0x" + format(n, "040x") for n in range(10_000)]
TOPICS = ["0x" + format(n, "064x") for n in range(10_000)]


@pytest.fixture
async def rig(nursery: trio.Nursery) -> AsyncIterator[tuple[Devnet, str]]:
    async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
        await devnet.mine()
        rows = ",\n".join(
            f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", '
            f"priority = {n.index} }}"
            for n in devnet.nodes
        )
        text = (
            f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n{rows}\n]\n"
        )
        shutdown = trio.Event()
        binds = await nursery.start(
            partial(
                serve, parse_settings(text, env={}), host="127.0.0.1", port=0, shutdown=shutdown
            )
        )
        yield devnet, binds[0]
        shutdown.set()


def body(method: str, params: list[Any], rid: int = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})


async def ws_call(ws: WebSocketConnection, method: str, params: list[Any], rid: int = 1) -> Any:
    await ws.send_message(body(method, params, rid))
    return json.loads(await ws.get_message())


HUGE = [
    ("eth_getLogs", [{"address": ADDRESSES}], "10000 addresses"),
    ("eth_newFilter", [{"topics": [TOPICS]}], "10000 topic values"),
]


@pytest.mark.parametrize(("method", "params", "what"), HUGE)
async def test_a_huge_filter_gets_32602_over_http_and_websocket(
    rig: tuple[Devnet, str], method: str, params: list[Any], what: str
) -> None:
    devnet, base = rig
    headers = {"content-type": "application/json"}
    with trio.fail_after(30):
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{base}/rpc/devnet", content=body(method, params), headers=headers
            )
            direct = await client.post(
                devnet.nodes[0].http_url, content=body(method, params), headers=headers
            )
        async with open_websocket_url(f"{base.replace('http', 'ws')}/ws/rpc/devnet") as ws:
            over_ws = await ws_call(ws, method, params)
            subscribe = await ws_call(ws, "eth_subscribe", ["logs", params[0]], rid=2)
    assert "result" in direct.json()  # before: Lasso sent it upstream and answered this
    assert response.status_code == 200
    for answer in (response.json(), over_ws, subscribe):
        assert answer["error"]["code"] == -32602, answer
        assert what in answer["error"]["message"]
    assert subscribe["id"] == 2


async def test_within_the_bound_and_malformed_filters_are_the_nodes_business(
    rig: tuple[Devnet, str],
) -> None:
    devnet, base = rig
    headers = {"content-type": "application/json"}
    requests = [
        body("eth_getLogs", [{"address": ADDRESSES[:1000], "topics": [TOPICS[:256]]}]),
        body("eth_getLogs", [{"address": 12345}]),  # malformed: the node's own error
        body("eth_getLogs", [{"address": [12345] * 2000}]),  # too many counts first
    ]
    with trio.fail_after(30):
        async with httpx.AsyncClient() as client:
            for request in requests[:2]:
                via = await client.post(f"{base}/rpc/devnet", content=request, headers=headers)
                direct = await client.post(
                    devnet.nodes[0].http_url, content=request, headers=headers
                )
                assert via.json() == direct.json()
            too_many = await client.post(f"{base}/rpc/devnet", content=requests[2], headers=headers)
    assert too_many.json()["error"]["code"] == -32602


async def subscribe(ws: WebSocketConnection, params: list[Any], rid: int) -> str:
    answer = await ws_call(ws, "eth_subscribe", params, rid)
    assert "result" in answer, answer
    return str(answer["result"])


async def test_churning_2000_distinct_filters_on_one_socket(rig: tuple[Devnet, str]) -> None:
    _, base = rig
    ws_base = base.replace("http", "ws")
    with trio.fail_after(120):
        async with (
            httpx.AsyncClient() as http,
            open_websocket_url(f"{ws_base}/ws/rpc/devnet") as ws,
        ):
            await subscribe(ws, ["newHeads"], 0)
            for n in range(2000):
                sub_id = await subscribe(ws, ["logs", {"address": ADDRESSES[n]}], n + 1)
                assert (await ws_call(ws, "eth_unsubscribe", [sub_id], n + 1))["result"] is True
            metrics = (await http.get(f"{base}/metrics")).text
    upstream = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("lasso_upstream_subscriptions{")
    )
    print(f"upstream subscriptions after the churn: {upstream:.0f}")
    assert upstream <= 1 + 4  # the kept newHeads + max_idle_upstream_per_client (before: 2,001)
