"""``/metrics`` through the real front end, after real traffic, read by prometheus-client's
own parser: Lasso (``lasso.daemon.serve`` on port 0) in front of two real anvil nodes and
one provider whose port refuses connections."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from lasso.config import parse_settings
from lasso.devnet import Devnet, open_devnet
from tests.metrics.scrape import Scrape, parse
from tests.support.front import open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTILE_METHOD = 'evil"\\\nmethod{le="x"} 1'
CALLS = 12
PINNED = 4


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(devnet: Devnet, dead_port: int) -> str:
    nodes = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", '
        f"priority = {n.index + 1} }}"
        for n in devnet.nodes
    )
    return (
        "[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nhead_poll_ms = 100\n"
        f'providers = [\n{{ id = "dead", url = "http://127.0.0.1:{dead_port}", priority = 0 }},\n'
        f"{nodes}\n]\n"
    )


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
        for _ in range(3):
            await devnet.mine()
        settings = parse_settings(settings_for(devnet, refused_port()), env={})
        async with open_lasso(settings) as url:
            yield url


def body(method: str, rid: int = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": []})


async def scrape(client: httpx.AsyncClient, base: str) -> Scrape:
    response = await client.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)


async def test_metrics_after_real_http_and_websocket_traffic(base: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        with trio.fail_after(60):
            for n in range(CALLS):
                answer = await client.post(
                    f"{base}/rpc/priority/devnet", content=body("eth_blockNumber", n)
                )
                assert answer.json()["result"] == "0x3"
            for n in range(PINNED):  # a provider without a head is never routed to: pin it
                refused = await client.post(
                    f"{base}/rpc/provider/dead/devnet", content=body("eth_blockNumber", n)
                )
                assert "error" in refused.json()
            hostile = await client.post(f"{base}/rpc/devnet", content=body(HOSTILE_METHOD))
            assert "error" in hostile.json()
            async with open_websocket_url(f"{base.replace('http', 'ws', 1)}/ws/rpc/devnet") as ws:
                await ws.send_message(body("eth_chainId", 1))
                assert json.loads(await ws.get_message())["result"] == "0x7a69"
                await ws.send_message(
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": 2,
                            "method": "eth_subscribe",
                            "params": ["newHeads"],
                        }
                    )
                )
                assert "result" in json.loads(await ws.get_message())
                during = await scrape(client, base)
            # The close reaches the server's task, and the head poll has a first round.
            after = await scrape_until(client, base, settled)

    # Every call counted once: the HTTP ones, the hostile one, two over the WebSocket.
    assert after.total("lasso_requests_total") == CALLS + PINNED + 1 + 2
    assert after.total("lasso_requests_total", provider="none", result="error") == PINNED
    assert after.total("lasso_requests_total", client_transport="ws") == 2
    served = after.samples("lasso_requests_total", method="eth_blockNumber", result="ok")
    assert {(labels["provider"], labels["strategy"]) for labels, _ in served} == {
        ("n0", "priority")
    }
    assert after.total("lasso_request_duration_seconds_count") == CALLS + PINNED + 3
    assert after.total("lasso_upstream_duration_seconds_count", provider="n0") >= CALLS

    # The hostile method name is one "other", and none of it reaches the exposition.
    assert after.label_values("lasso_requests_total", "method") == {
        "eth_blockNumber",
        "eth_chainId",
        "eth_subscribe",
        "other",
    }
    assert "evil" not in after.text

    # The refusing provider: failed attempts counted, its breaker open (2) and counted.
    assert after.total("lasso_upstream_failed_attempts_total", provider="dead") == 3
    assert (
        after.value("lasso_circuit_state", chain="devnet", provider="dead", transport="http") == 2
    )
    assert (
        after.value("lasso_breaker_opens_total", chain="devnet", provider="dead", transport="http")
        == 1
    )
    assert after.value("lasso_provider_available", chain="devnet", provider="dead") == 0

    # While the WebSocket was open: the connection and its subscription, upstream and client.
    assert during.value("lasso_client_websockets") == 1
    assert during.value("lasso_client_subscriptions", chain="devnet", kind="newHeads") == 1
    assert during.total("lasso_upstream_subscriptions", chain="devnet", kind="newHeads") == 1
    assert after.value("lasso_client_websockets") == 0

    # Heads, lag, process metrics.
    assert after.value("lasso_consensus_head", chain="devnet") == 3
    assert after.value("lasso_provider_lag_blocks", chain="devnet", provider="n1") == 0
    assert after.value("process_resident_memory_bytes") > 0
    assert after.value("lasso_inflight_requests") == 0


def settled(scrape: Scrape) -> bool:
    return scrape.total("lasso_client_websockets") == 0 and bool(
        scrape.samples("lasso_consensus_head")
    )


async def scrape_until(
    client: httpx.AsyncClient, base: str, done: Callable[[Scrape], bool]
) -> Scrape:
    """Scrape until ``done`` holds (polled; the caller's ``fail_after`` bounds it)."""
    while True:
        scraped = await scrape(client, base)
        if done(scraped):
            return scraped
        await trio.sleep(0.02)
