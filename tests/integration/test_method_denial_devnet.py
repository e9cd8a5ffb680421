"""Node-admin methods through the real front end never reach a real anvil node."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from lasso.config import parse_settings
from lasso.devnet import DEV_ACCOUNTS, Devnet, open_devnet
from tests.support.front import open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VICTIM = DEV_ACCOUNTS[3]
NEW_BALANCE = "0x1"
SET_BALANCE = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "anvil_setBalance",
    "params": [VICTIM, NEW_BALANCE],
}


def settings_text(devnet: Devnet, extra_server: str = "") -> str:
    providers = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", priority = {n.index} }}' for n in devnet.nodes
    )
    return (
        f"[server]\n{extra_server}\n"
        f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n{providers}\n]\n"
    )


@pytest.fixture
async def devnet() -> AsyncIterator[Devnet]:
    async with open_devnet(nodes=2, block_time_s=None, port_base=0) as net:
        yield net


async def post(client: httpx.AsyncClient, url: str, body: object) -> httpx.Response:
    return await client.post(
        url, content=json.dumps(body), headers={"content-type": "application/json"}
    )


async def balances(devnet: Devnet) -> list[str]:
    return [
        await devnet.request(n.index, "eth_getBalance", [VICTIM, "latest"]) for n in devnet.nodes
    ]


async def test_anvil_set_balance_and_reset_leave_every_node_unchanged(
    devnet: Devnet,
) -> None:
    before = await balances(devnet)
    async with (
        open_lasso(parse_settings(settings_text(devnet), env={})) as base,
        httpx.AsyncClient() as client,
    ):
        with trio.fail_after(20):
            single = await post(
                client,
                f"{base}/rpc/provider/n1/devnet",
                SET_BALANCE,
            )
            batch = await post(
                client,
                f"{base}/rpc/devnet",
                [
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "anvil_setBalance",
                        "params": [VICTIM, NEW_BALANCE],
                    },
                    {
                        "jsonrpc": "2.0",
                        "id": 2,
                        "method": "anvil_reset",
                        "params": [{"forking": {"jsonRpcUrl": "http://127.0.0.1:9/"}}],
                    },
                    {
                        "jsonrpc": "2.0",
                        "id": 3,
                        "method": "eth_getBalance",
                        "params": [VICTIM, "latest"],
                    },
                ],
            )
            after = await balances(devnet)
    assert single.status_code == 200
    assert single.json() == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {
            "code": -32601,
            "message": "the method anvil_setBalance does not exist/is not available",
        },
    }
    answers = batch.json()
    assert [a["error"]["code"] for a in answers[:2]] == [-32601, -32601]
    assert answers[2]["result"] == before[0]
    assert after == before  # no node was forked from the others, none was reset


async def test_the_allowlist_lets_an_operator_forward_them(
    devnet: Devnet,
) -> None:
    settings = parse_settings(settings_text(devnet, 'allow_methods = ["anvil_setBalance"]'), env={})
    async with open_lasso(settings) as base, httpx.AsyncClient() as client:
        with trio.fail_after(20):
            answer = await post(
                client,
                f"{base}/rpc/provider/n1/devnet",
                SET_BALANCE,
            )
            after = await balances(devnet)
    assert answer.json() == {"jsonrpc": "2.0", "id": 7, "result": None}
    assert after[1] == NEW_BALANCE and after[0] != NEW_BALANCE
