"""Subscriptions over the real front end against the real lockstep devnet.

The serving node is cut at the TCP level mid-stream; the client must see every
block exactly once, in order, shaped exactly like live heads.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from lasso.chaos.tcpcut import TcpRelay, open_tcp_relay
from lasso.daemon import serve
from lasso.devnet import Devnet, open_devnet
from tests.support.emitter import TOPIC, deploy_emitter, emit
from tests.support.proxied import relayed_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Rig:
    def __init__(self, devnet: Devnet, relay: TcpRelay, base: str) -> None:
        self.devnet, self.relay, self.base = devnet, relay, base


@pytest.fixture
async def rig(nursery: trio.Nursery) -> AsyncIterator[Rig]:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        await devnet.mine()
        async with open_tcp_relay(devnet.nodes[0].port) as relay:
            shutdown = trio.Event()
            binds = await nursery.start(
                partial(
                    serve,
                    relayed_settings(devnet, relay),
                    host="127.0.0.1",
                    port=0,
                    shutdown=shutdown,
                )
            )
            yield Rig(devnet, relay, binds[0].replace("http://", "ws://"))
            shutdown.set()


async def subscribe(ws: WebSocketConnection, params: list[Any]) -> str:
    await ws.send_message(
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": params})
    )
    answer = json.loads(await ws.get_message())
    assert "result" in answer, answer
    return str(answer["result"])


async def heads(ws: WebSocketConnection, count: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < count:
        message = json.loads(await ws.get_message())
        assert message.get("method") == "eth_subscription", message
        assert "result" in message["params"], message
        out.append(message["params"]["result"])
    return out


def cut(relay: TcpRelay, how: str) -> None:
    """Kill the serving node's path: a reset (noticed at once) or a silent blackhole
    (noticed by the heartbeat, while blocks keep coming: the gap must be backfilled)."""
    relay.cut() if how == "reset" else relay.blackhole()


@pytest.mark.parametrize("how", ["reset", "blackhole"])
async def test_failover_after_a_tcp_cut_has_no_gaps_and_no_duplicates(rig: Rig, how: str) -> None:
    with trio.fail_after(30):
        async with (
            open_websocket_url(f"{rig.base}/ws/rpc/devnet") as client,
            open_websocket_url(rig.devnet.nodes[1].ws_url) as reference,
        ):
            await subscribe(client, ["newHeads"])
            await subscribe(reference, ["newHeads"])
            received: list[dict[str, Any]] = []
            for _ in range(3):
                await rig.devnet.mine()
            received += await heads(client, 3)
            cut(rig.relay, how)  # the serving node's TCP path dies mid-stream
            for _ in range(3):
                await rig.devnet.mine()
            received += await heads(client, 3)
            for _ in range(2):
                await rig.devnet.mine()
            received += await heads(client, 2)
            expected = await heads(reference, 8)
    numbers = [int(h["number"], 16) for h in received]
    assert numbers == list(range(2, 10))  # 0 gaps
    assert len({h["hash"] for h in received}) == 8  # 0 duplicates
    assert received == expected  # backfilled heads are exactly the live ones, field for field


async def test_resume_after_a_disconnect_loses_nothing(rig: Rig) -> None:
    with trio.fail_after(30):
        async with open_websocket_url(f"{rig.base}/ws/rpc/devnet") as client:
            await subscribe(client, ["newHeads"])
            await rig.devnet.mine()
            before = await heads(client, 1)
        last = int(before[-1]["number"], 16)
        for _ in range(3):  # blocks mined while the client is away
            await rig.devnet.mine()
        async with open_websocket_url(f"{rig.base}/ws/rpc/devnet") as client:
            await subscribe(client, ["newHeads", {"lasso_resume_from": hex(last + 1)}])
            replayed = await heads(client, 3)
            await rig.devnet.mine()
            live = await heads(client, 1)
    numbers = [int(h["number"], 16) for h in [*before, *replayed, *live]]
    assert numbers == list(range(last, last + 5))
    assert replayed[0]["parentHash"] == before[-1]["hash"]


@pytest.mark.parametrize("how", ["reset", "blackhole"])
async def test_logs_fail_over_with_backfill(rig: Rig, how: str) -> None:
    contract = await deploy_emitter(rig.devnet)
    log_filter = {"address": contract.upper().replace("0X", "0x"), "topics": [[TOPIC]]}
    with trio.fail_after(30):
        async with (
            open_websocket_url(f"{rig.base}/ws/rpc/devnet") as client,
            open_websocket_url(rig.devnet.nodes[1].ws_url) as reference,
        ):
            await subscribe(client, ["logs", log_filter])
            await subscribe(reference, ["logs", {"address": contract}])
            received: list[dict[str, Any]] = []
            for _ in range(2):
                await emit(rig.devnet, contract)
            received += await heads(client, 2)
            cut(rig.relay, how)
            for _ in range(3):  # logs while the serving node is unreachable
                await emit(rig.devnet, contract)
            await rig.devnet.mine()  # an empty block: the new subscription has caught up
            received += await heads(client, 3)
            await emit(rig.devnet, contract)
            received += await heads(client, 1)
            expected = await heads(reference, 6)
    assert [(log["blockNumber"], log["logIndex"]) for log in received] == [
        (log["blockNumber"], log["logIndex"]) for log in expected
    ]
    assert len({(log["blockHash"], log["logIndex"]) for log in received}) == 6
    assert received == expected


async def test_pending_transactions_where_the_upstream_offers_them(rig: Rig) -> None:
    from lasso.devnet import DEV_ACCOUNTS

    with trio.fail_after(30):
        async with open_websocket_url(f"{rig.base}/ws/rpc/devnet") as client:
            await subscribe(client, ["newPendingTransactions"])
            raw = await rig.devnet.sign_transfer(to=DEV_ACCOUNTS[2], value_wei=1)
            tx_hash = await rig.devnet.send_raw_transaction(raw)
            (seen,) = await heads(client, 1)
    assert seen == tx_hash
