"""The response cache, differentially: through the real front end (hypercorn on a loopback
socket) in front of real anvil nodes, every answer equals the node's, byte for byte,
before and after a real reorg (``Devnet.fork`` / ``Devnet.heal``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import httpx
import pytest
import trio

from lasso.config import Settings, parse_settings
from lasso.devnet import DEV_ACCOUNTS, Devnet, open_devnet
from tests.support.front import open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def cached_settings(devnet: Devnet, nodes: Sequence[int], cache: str) -> Settings:
    providers = ",\n".join(
        f'{{ id = "n{i}", url = "{devnet.nodes[i].http_url}", '
        f'ws_url = "{devnet.nodes[i].ws_url}", priority = {i} }}'
        for i in nodes
    )
    return parse_settings(
        "[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nhead_poll_ms = 100\n"
        f"providers = [\n{providers}\n]\n\n[cache]\n{cache}\n",
        env={},
    )


async def post(
    client: httpx.AsyncClient, url: str, method: str, params: list[object], rid: object = 1
) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    headers = {"content-type": "application/json"}
    return await client.post(url, content=json.dumps(body), headers=headers)


def result_bytes(response: httpx.Response) -> bytes:
    """The raw ``result`` member of a node's answer (anvil puts it last)."""
    content = response.content
    return content[content.index(b'"result":') + len(b'"result":') : content.rindex(b"}")]


async def test_hits_equal_the_node_byte_for_byte_and_null_is_never_kept() -> None:
    with trio.fail_after(60):
        async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
            for _ in range(3):
                await devnet.mine()
            settings = cached_settings(devnet, [0, 1], "finality_depth_blocks = 1")
            async with open_lasso(settings) as base, httpx.AsyncClient() as client:
                url, node = f"{base}/rpc/devnet", devnet.nodes[0].http_url
                await wait_for_head(client, url, 3)
                block = (await post(client, node, "eth_getBlockByNumber", ["0x2", True])).json()
                for method, params in [
                    ("eth_getBlockByHash", [block["result"]["hash"], True]),
                    ("eth_getBlockByNumber", ["0x2", False]),
                    ("net_version", []),
                    ("eth_getBalance", [DEV_ACCOUNTS[0], "0x1"]),
                ]:
                    direct = await post(client, node, method, params, rid="d")
                    seen = []
                    for rid in ("x", 7, 12345678901234567890):
                        reply = await post(client, url, method, params, rid=rid)
                        seen.append(reply.headers.get("x-lasso-cache"))
                        rid_bytes = json.dumps(rid).encode()
                        assert reply.content == (
                            b'{"jsonrpc":"2.0","id":%b,"result":%b}'
                            % (rid_bytes, result_bytes(direct))
                        ), method
                    assert seen == ["miss", "hit", "hit"], method

                # a transaction sent, not mined (the devnet mines only when told)
                raw = await devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=10**15)
                tx_hash = await devnet.send_raw_transaction(raw)
                for _ in range(2):
                    reply = await post(client, url, "eth_getTransactionReceipt", [tx_hash])
                    assert reply.json()["result"] is None
                    assert reply.headers["x-lasso-cache"] == "miss"
                    pending = await post(client, url, "eth_getTransactionByHash", [tx_hash])
                    assert pending.json()["result"]["blockHash"] is None
                    assert pending.headers["x-lasso-cache"] == "miss"
                await devnet.mine()
                await wait_for_head(client, url, 4)
                direct = await post(client, node, "eth_getTransactionReceipt", [tx_hash])
                assert direct.json()["result"]["blockNumber"] == "0x4"
                for expected in ("miss", "hit"):
                    reply = await post(client, url, "eth_getTransactionReceipt", [tx_hash])
                    assert reply.content == direct.content
                    assert reply.headers["x-lasso-cache"] == expected


async def test_a_reorg_evicts_and_the_next_answer_is_the_nodes() -> None:
    with trio.fail_after(90):
        async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
            for _ in range(3):
                await devnet.mine()
            # Lasso follows node 2 alone: it forks off, then heals onto the others' chain
            settings = cached_settings(devnet, [2], "finality_depth_blocks = 0")
            async with open_lasso(settings) as base, httpx.AsyncClient() as client:
                url, node = f"{base}/rpc/devnet", devnet.nodes[2].http_url
                await wait_for_head(client, url, 3)
                forked_hash = await devnet.fork(2)  # node 2's own block 4
                await wait_for_head(client, url, 4)
                own = await post(client, url, "eth_getBlockByNumber", ["0x4", True])
                assert own.json()["result"]["hash"] == forked_hash
                fork_tx = own.json()["result"]["transactions"][0]["hash"]
                receipt = await post(client, url, "eth_getTransactionReceipt", [fork_tx])
                assert receipt.json()["result"]["blockHash"] == forked_hash
                for method, params in [
                    ("eth_getBlockByNumber", ["0x4", True]),
                    ("eth_getTransactionReceipt", [fork_tx]),
                ]:
                    again = await post(client, url, method, params)
                    assert again.headers["x-lasso-cache"] == "hit"

                # the others go on; node 2 heals onto their chain: a real reorg of block 4
                await devnet.mine()
                await devnet.mine()
                await devnet.heal(2)
                common = (await post(client, node, "eth_getBlockByNumber", ["0x4", True])).json()
                assert common["result"]["hash"] != forked_hash
                await wait_for_head(client, url, 5)
                with trio.fail_after(10):  # until Lasso's head tracker saw the new branch
                    while True:
                        reply = await post(client, url, "eth_getBlockByNumber", ["0x4", True])
                        if reply.json()["result"]["hash"] != forked_hash:
                            break
                        await trio.sleep(0.05)
                for method, params in [
                    ("eth_getBlockByNumber", ["0x4", True]),
                    ("eth_getTransactionReceipt", [fork_tx]),  # gone with its block: null
                ]:
                    direct = await post(client, node, method, params)
                    for _ in range(2):
                        reply = await post(client, url, method, params)
                        assert reply.content == direct.content, method


async def wait_for_head(client: httpx.AsyncClient, url: str, number: int) -> None:
    """Until Lasso's consensus head (``/health``) reaches ``number``: the cache judges
    finality against it."""
    base = url.rsplit("/rpc/", 1)[0]
    with trio.fail_after(10):
        while True:
            health = (await client.get(f"{base}/health")).json()
            head = health["chains"]["devnet"]["consensus_head"]
            if head is not None and head >= number:
                return
            await trio.sleep(0.02)
