"""The real front end (hypercorn, real sockets) in front of a real lockstep devnet."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from lasso.config import parse_settings
from lasso.devnet import DEV_ACCOUNTS, Devnet, open_devnet
from tests.support.front import devnet_settings, open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def stack() -> AsyncIterator[tuple[Devnet, str]]:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        for _ in range(3):
            await devnet.mine()
        async with open_lasso(devnet_settings(devnet)) as base:
            yield devnet, base


async def rpc(
    client: httpx.AsyncClient, url: str, method: str, params: list[object], rid: object = 1
) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    return await client.post(
        url, content=json.dumps(body), headers={"content-type": "application/json"}
    )


async def test_answers_match_a_node_byte_for_byte(stack: tuple[Devnet, str]) -> None:
    devnet, base = stack
    async with httpx.AsyncClient() as client:
        with trio.fail_after(10):
            via_lasso = await rpc(
                client, f"{base}/rpc/devnet", "eth_getBlockByNumber", ["0x2", True], rid="x"
            )
            direct = await rpc(
                client, devnet.nodes[1].http_url, "eth_getBlockByNumber", ["0x2", True], rid="x"
            )
    assert via_lasso.status_code == 200
    assert via_lasso.json() == direct.json()
    # The result is the provider's bytes: its serialisation survives untouched.
    result_bytes = direct.content[direct.content.index(b'"result":') + len(b'"result":') : -1]
    assert via_lasso.content == b'{"jsonrpc":"2.0","id":"x","result":' + result_bytes + b"}"


async def test_block_number_chain_id_and_batches(stack: tuple[Devnet, str]) -> None:
    _, base = stack
    async with httpx.AsyncClient() as client:
        with trio.fail_after(10):
            number = (await rpc(client, f"{base}/rpc/devnet", "eth_blockNumber", [])).json()
            chain_id = (await rpc(client, f"{base}/rpc/31337", "eth_chainId", [])).json()
            batch = await client.post(
                f"{base}/rpc/round-robin/devnet",
                content=json.dumps(
                    [
                        {
                            "jsonrpc": "2.0",
                            "id": i,
                            "method": "eth_getBalance",
                            "params": [DEV_ACCOUNTS[0], "latest"],
                        }
                        for i in range(6)
                    ]
                ),
            )
    assert number == {"jsonrpc": "2.0", "id": 1, "result": "0x3"}
    assert chain_id["result"] == "0x7a69"
    answers = batch.json()
    assert [a["id"] for a in answers] == list(range(6))
    assert len({a["result"] for a in answers}) == 1


async def test_a_transfer_through_lasso_lands_on_every_node(stack: tuple[Devnet, str]) -> None:
    devnet, base = stack
    raw = await devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=10**18)
    async with httpx.AsyncClient() as client:
        with trio.fail_after(10):
            # Each node gets it once through Lasso, pinned, so the lockstep blocks match.
            hashes = {
                (
                    await rpc(
                        client, f"{base}/rpc/provider/n{i}/devnet", "eth_sendRawTransaction", [raw]
                    )
                ).json()["result"]
                for i in range(3)
            }
            assert len(hashes) == 1
            tx_hash = hashes.pop()
            await devnet.mine()
            receipts = [
                (
                    await rpc(
                        client,
                        f"{base}/rpc/provider/n{i}/devnet",
                        "eth_getTransactionReceipt",
                        [tx_hash],
                    )
                ).json()
                for i in range(3)
            ]
    assert len({json.dumps(r["result"], sort_keys=True) for r in receipts}) == 1
    assert receipts[0]["result"]["status"] == "0x1"


async def test_a_dead_provider_is_hidden(stack: tuple[Devnet, str]) -> None:
    devnet, base = stack
    settings_base = base
    async with httpx.AsyncClient() as client:
        # Pin to prove n0 works, then point a fresh gateway at a dead port first.
        ok = await rpc(client, f"{settings_base}/rpc/provider/n0/devnet", "eth_blockNumber", [])
        assert ok.json()["result"] == "0x3"
    dead = parse_settings(
        "[chains.devnet]\nchain_id = 31337\nproviders = [\n"
        '{ id = "dead", url = "http://127.0.0.1:9", priority = 0 },\n'
        f'{{ id = "n1", url = "{devnet.nodes[1].http_url}", priority = 1 }}\n]\n',
        env={},
    )
    async with open_lasso(dead) as base, httpx.AsyncClient() as client:
        with trio.fail_after(10):
            answers = [
                (
                    await rpc(client, f"{base}/rpc/priority/devnet", "eth_blockNumber", [], rid=i)
                ).json()
                for i in range(5)
            ]
    assert [a.get("result") for a in answers] == ["0x3"] * 5


async def test_unary_calls_route_over_websocket_when_asked() -> None:
    from lasso.daemon import open_gateway
    from lasso.web.app import create_app
    from lasso.web.asgi import LassoASGI
    from tests.support.asgi import asgi_request

    async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
        await devnet.mine()
        async with open_gateway(devnet_settings(devnet)) as gateway:
            chain = gateway.profiles["default"]["devnet"]
            with trio.fail_after(10):
                for provider in chain.providers.values():
                    assert provider.ws is not None
                    await provider.ws.wait_connected()
                while any(chain.state.height(p) is None for p in chain.providers):
                    await chain.head_changed()  # every provider's head known: all may serve
            app = LassoASGI(gateway, create_app(gateway))
            body = json.dumps(
                {"jsonrpc": "2.0", "id": 5, "method": "eth_blockNumber", "params": []}
            ).encode()
            with trio.fail_after(10):
                via_ws = await asgi_request(
                    app, "POST", "/rpc/devnet", body, query="transport=ws&include_meta=body"
                )
                via_http = await asgi_request(
                    app,
                    "POST",
                    "/rpc/devnet",
                    body,
                    headers=[("X-Lasso-Transport", "http"), ("X-Lasso-Include-Meta", "body")],
                )
                bad = await asgi_request(
                    app, "POST", "/rpc/devnet", body, query="transport=carrier-pigeon"
                )
            health = (await asgi_request(app, "GET", "/health")).json()
    assert via_ws.json()["result"] == via_http.json()["result"] == "0x1"
    assert via_ws.json()["lasso_meta"]["transport"] == "ws"
    assert via_http.json()["lasso_meta"]["transport"] == "http"
    assert set(via_ws.json()["lasso_meta"]["candidate_providers"]) == {
        "n0:http",
        "n0:ws",
        "n1:http",
        "n1:ws",
    }
    assert bad.status == 400
    assert bad.json()["error"]["message"] == "Unknown transport 'carrier-pigeon': use http or ws"
    ws_report = health["chains"]["devnet"]["providers"][0]["ws"]
    assert ws_report["connected"] is True
    assert ws_report["circuit"] == "closed"
    assert ws_report["breaker"]["state"] == "closed"
