"""The consistency guarantees through the real front end, on the real lockstep devnet.

Clients do what applications do: poll ``eth_blockNumber`` and the ``latest`` block
while providers pause, resume, freeze and thaw; subscribe to ``newHeads`` and read
each new block, its receipts and its logs over HTTP at once while a provider lags.
Reads go through the round-robin route, so every provider, lagging or not, takes
its share.

Head reports come from the daemon's own head tracker (``lasso.upstream.heads``: each
node's WebSocket ``newHeads``); the test only reads ``chain.state`` to wait for it.

``LASSO_CONSISTENCY_OFF=1`` turns the floor and the empty-answer check off, to
measure what a client would see without them (the tests then fail, printing counts).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

import lasso.daemon
from lasso.chain import ChainRuntime
from lasso.devnet import DEV_ACCOUNTS, Devnet, open_devnet
from lasso.devnet.health import NodeHealth
from lasso.gateway import Gateway
from tests.support.front import devnet_settings, open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OFF = os.environ.get("LASSO_CONSISTENCY_OFF") == "1"
#: Init code of a contract whose every call emits one LOG0 (runtime 0x6000 6000 a0 00).
EMITTER_INIT = "0x6560006000a0006000526006601af3"


@pytest.fixture
def switch(monkeypatch: pytest.MonkeyPatch) -> None:
    if OFF:

        class NoCheck:
            def __init__(self, *_: object) -> None:
                self.held = None

            def accepts(self, *_: object) -> bool:
                return True

            def defers(self, *_: object) -> bool:
                return False

        async def as_is(_chain: object, _call: object, result: bytes, **_: object) -> bytes:
            return result

        monkeypatch.setattr("lasso.dispatch.EmptyCheck", NoCheck)
        monkeypatch.setattr("lasso.gateway.keep_head", as_is)


@asynccontextmanager
async def open_stack(
    monkeypatch: pytest.MonkeyPatch, devnet: Devnet
) -> AsyncIterator[tuple[str, ChainRuntime]]:
    """Lasso in front of ``devnet``; yields its base URL and the devnet chain's runtime."""
    gateways: list[Gateway] = []
    real = lasso.daemon.open_gateway

    @asynccontextmanager
    async def capturing(*args: Any, **kwargs: Any) -> AsyncIterator[Gateway]:
        async with real(*args, **kwargs) as gateway:
            gateways.append(gateway)
            yield gateway

    monkeypatch.setattr(lasso.daemon, "open_gateway", capturing)
    async with open_lasso(devnet_settings(devnet)) as base:
        yield base, gateways[0].profiles["default"]["devnet"]


async def rpc_answer(
    client: httpx.AsyncClient, url: str, method: str, params: list[Any]
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return dict((await client.post(url, content=json.dumps(body))).json())


async def rpc(client: httpx.AsyncClient, url: str, method: str, params: list[Any]) -> Any:
    answer = await rpc_answer(client, url, method, params)
    assert "error" not in answer, answer
    return answer["result"]


# -- 1. monotonic head ------------------------------------------------------------------------


async def test_block_number_and_latest_never_go_backwards(
    monkeypatch: pytest.MonkeyPatch, switch: None
) -> None:
    polls = backwards = errors = 0
    head = -1
    async with (
        open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet,
        open_stack(monkeypatch, devnet) as (base, _chain),
        httpx.AsyncClient(timeout=10) as client,
    ):
        url = f"{base}/rpc/round-robin/devnet"
        for _ in range(3):
            await devnet.mine()

        async def poll(times: int) -> None:
            # One head sequence: eth_blockNumber answers and latest blocks' numbers alike.
            nonlocal polls, backwards, errors, head
            for _ in range(times):
                for method, params in (
                    ("eth_blockNumber", []),
                    ("eth_getBlockByNumber", ["latest", False]),
                ):
                    answer = await rpc_answer(client, url, method, params)
                    if "error" in answer:  # a hung provider's timeout: no head either way
                        errors += 1
                        continue
                    result = answer["result"]
                    value = int(result if isinstance(result, str) else result["number"], 16)
                    polls += 1
                    backwards += value < head
                    head = max(head, value)

        async def mine(blocks: int) -> None:
            for _ in range(blocks):
                await devnet.mine()
                await poll(3)

        with trio.fail_after(90):
            await poll(3)
            for lagging in (1, 2):  # a lagging provider: mining paused, then resumed
                devnet.pause(lagging)
                await mine(4)
                await devnet.resume(lagging)
                await poll(3)
            devnet.pause(1)
            devnet.pause(2)  # two of three behind: the majority lags
            await mine(3)
            await devnet.resume(1)
            await devnet.resume(2)
            devnet.freeze(0)  # a hung provider
            await mine(2)
            devnet.thaw(0)
            await devnet.wait_for_health(0, NodeHealth.UP)
            await mine(2)
    print(
        f"\nmonotonic head: {polls} polls, {backwards} went backwards, {errors} errors "
        f"(consistency off: {OFF})"
    )
    assert backwards == 0


# -- 2. read-your-head, 3. empty is not an answer -------------------------------------------


async def test_a_new_head_its_receipts_and_logs_are_readable_at_once(
    monkeypatch: pytest.MonkeyPatch, switch: None
) -> None:
    reads = empties = 0
    async with (
        open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet,
        open_stack(monkeypatch, devnet) as (base, chain),
        httpx.AsyncClient(timeout=10) as client,
    ):
        url = f"{base}/rpc/round-robin/devnet"
        await devnet.mine()
        emitter = await deploy_emitter(devnet)
        ws_url = base.replace("http://", "ws://") + "/ws/rpc/devnet"
        async with open_websocket_url(ws_url) as socket:
            await socket.send_message(json.dumps(_SUBSCRIBE))
            assert "result" in json.loads(await socket.get_message())
            with trio.fail_after(120):
                for round_ in range(16):
                    if round_ in (0, 8):  # one provider lags, then another
                        if round_:
                            await devnet.resume(2)
                        devnet.pause(2 if round_ == 0 else 1)
                    tx = await call_emitter(devnet, emitter)
                    number = await devnet.mine()
                    head = await next_head(socket, number)
                    assert (chain.floor.value or 0) >= number  # newHeads sent raise the floor
                    # The application reads the new block at once, over HTTP.
                    answers = [
                        await rpc(client, url, "eth_getBlockByNumber", [hex(number), False]),
                        await rpc(client, url, "eth_getBlockByHash", [head["hash"], False]),
                        await rpc(client, url, "eth_getBlockReceipts", [hex(number)]),
                        await rpc(client, url, "eth_getTransactionReceipt", [tx]),
                        await rpc(client, url, "eth_getTransactionByHash", [tx]),
                        await rpc(
                            client,
                            url,
                            "eth_getLogs",
                            [
                                {
                                    "fromBlock": hex(number),
                                    "toBlock": hex(number),
                                    "address": emitter,
                                }
                            ],
                        ),
                    ]
                    reads += len(answers)
                    empties += sum(a in (None, []) for a in answers)
    print(
        f"\nread-your-head: {reads} reads of just-announced blocks, {empties} null or [] "
        f"(consistency off: {OFF})"
    )
    assert empties == 0


_SUBSCRIBE = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}


async def next_head(socket: Any, number: int) -> dict[str, Any]:
    """Read notifications until the head ``number`` arrives."""
    while True:
        message = json.loads(await socket.get_message())
        head = message.get("params", {}).get("result", {})
        if int(head.get("number", "0x0"), 16) >= number:
            return dict(head)


async def deploy_emitter(devnet: Devnet) -> str:
    tx = await sign_and_send(devnet, {"data": EMITTER_INIT, "gas": hex(100_000)})
    await devnet.mine()
    receipt = await devnet.request(in_sync(devnet), "eth_getTransactionReceipt", [tx])
    return str(receipt["contractAddress"])


def in_sync(devnet: Devnet) -> int:
    """A node that is mined (not paused): it knows the pending nonce and every receipt."""
    paused = devnet.statistics().paused
    return next(node.index for node in devnet.nodes if node.index not in paused)


async def call_emitter(devnet: Devnet, emitter: str) -> str:
    return await sign_and_send(devnet, {"to": emitter, "gas": hex(50_000)})


async def sign_and_send(devnet: Devnet, fields: dict[str, str]) -> str:
    sender = DEV_ACCOUNTS[0]
    via = in_sync(devnet)
    nonce = await devnet.request(via, "eth_getTransactionCount", [sender, "pending"])
    request = {"from": sender, "nonce": nonce, "maxFeePerGas": hex(10**10), **fields}
    request["maxPriorityFeePerGas"] = hex(10**9)
    raw = await devnet.request(via, "eth_signTransaction", [request])
    return await devnet.send_raw_transaction(str(raw))


async def test_a_lagging_providers_null_is_retried_and_a_genuine_null_passes_unchanged(
    monkeypatch: pytest.MonkeyPatch, switch: None
) -> None:
    async with (
        open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet,
        open_stack(monkeypatch, devnet) as (base, chain),
        httpx.AsyncClient(timeout=10) as client,
    ):
        url = f"{base}/rpc/priority/devnet"  # n0 first
        wrong: list[tuple[str, bytes]] = []
        await devnet.mine()
        with trio.fail_after(30):
            devnet.pause(0)  # the first provider lags
            tx = await call_emitter(devnet, await deploy_emitter(devnet))
            number = await devnet.mine()
            await reported(chain, n0=number - 2, n1=number, n2=number)
            for method, params in (
                ("eth_getTransactionReceipt", [tx]),
                ("eth_getBlockByNumber", [hex(number), True]),
                ("eth_getBlockReceipts", [hex(number)]),
            ):
                via_lasso = await post(client, url, method, params)
                direct = await post(client, devnet.nodes[1].http_url, method, params)
                if via_lasso != direct:  # not the answer of a node at the block, byte for byte
                    wrong.append((method, via_lasso[:60]))
            print(
                f"\nlagging provider first: {len(wrong)} of 3 reads not a node's answer at the block"
            )
            assert wrong == []
            await devnet.resume(0)
            await reported(chain, n0=number, n1=number, n2=number)
            unknown = ["0x" + "42" * 32]
            via_lasso = await post(client, url, "eth_getTransactionReceipt", unknown)
            direct = await post(
                client, devnet.nodes[0].http_url, "eth_getTransactionReceipt", unknown
            )
    assert via_lasso == direct == b'{"jsonrpc":"2.0","id":7,"result":null}'


async def post(client: httpx.AsyncClient, url: str, method: str, params: list[Any]) -> bytes:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    headers = {"content-type": "application/json"}
    return (await client.post(url, content=json.dumps(body), headers=headers)).content


async def reported(chain: ChainRuntime, **heights: int) -> None:
    """Wait until the chain state has each provider at (at least) its height."""
    while any((chain.state.height(pid) or -1) < h for pid, h in heights.items()):
        await chain.head_changed()
