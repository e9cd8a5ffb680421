"""Regressions found by review: each of these once lost data silently or broke a client."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from lasso.chaos.faults import Fault
from lasso.core.subs import Delivery
from lasso.subscriptions.fanout import Subscriber, payload_tail
from tests.subscriptions.test_hub import Stack, next_head, stack, subscribe
from tests.support.asgi import open_asgi_websocket
from tests.support.fakes import FakeNode

__all__ = ["stack"]  # the fixture, imported for pytest

ADDRESS = "0x" + "ab" * 20
TOPIC = "0x" + "dd" * 32


def make_log(node: FakeNode, number: int, index: int) -> dict[str, Any]:
    return {
        "address": ADDRESS,
        "topics": [TOPIC],
        "data": "0x",
        "blockNumber": hex(number),
        "blockHash": node.block_hash(number),
        "logIndex": hex(index),
        "transactionIndex": "0x0",
        "transactionHash": "0x" + f"{number:04x}{index:04x}" * 8,
        "removed": False,
    }


def add_log(stack: Stack, number: int, index: int) -> dict[str, Any]:
    log = make_log(stack.nodes["p1"], number, index)
    for node in stack.nodes.values():
        node.add_log(number, log)
    return log


async def drain(ws: Any, seconds: float) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    with trio.move_on_after(seconds):
        while True:
            got.append(await ws.receive_json())
    return got


@pytest.mark.parametrize(
    "stack", [("teardown_grace_ms = 5000", "teardown_grace_ms = 0")], indirect=True
)
async def test_a_new_stream_survives_a_zero_grace_period(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        await trio.sleep(1)
        stack.mine()
        assert int((await next_head(ws, sub_id))["number"], 16) == 11


async def test_a_batch_subscription_waits_for_its_own_answer(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as keeper:
        await subscribe(keeper, ["newHeads"])  # the stream exists
        for node in stack.nodes.values():
            node.delay_s = 5  # slow reads from now on
        async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
            batch = [
                {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]},
                {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
            ]
            await ws.send_text(json.dumps(batch))
            await trio.sleep(0.1)
            await ws.send_text(
                json.dumps({"jsonrpc": "2.0", "id": 3, "method": "eth_chainId", "params": []})
            )
            assert (await ws.receive_json())["id"] == 3
            stack.mine()
            answer = await ws.receive_json()
            assert isinstance(answer, list), (
                f"a notification came before the batch answer: {answer}"
            )
            notification = await ws.receive_json()
            assert notification["params"]["subscription"] == answer[0]["result"]


async def test_a_failed_logs_catch_up_holds_live_logs_back(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        await subscribe(ws, ["logs", {"address": ADDRESS}])
        stack.mine()
        stack.ws["p1"].emit_log(add_log(stack, 11, 0))
        got = [await ws.receive_json()]
        stack.http_down.update({"p1", "p2"})
        for node in stack.nodes.values():
            node.fault = Fault.METHOD_NOT_FOUND  # no read works, over HTTP or WS
        stack.ws["p1"].drop()
        stack.mine(skip=("p1",))
        add_log(stack, 12, 0)  # nobody pushes this one: only a backfill finds it
        stack.mine(skip=("p1",))
        await trio.sleep(0.5)  # the failover's catch-up fails
        stack.http_down.clear()
        for node in stack.nodes.values():
            node.fault = None
        stack.mine(skip=("p1",))
        stack.ws["p2"].emit_log(add_log(stack, 14, 0))
        got += await drain(ws, 10)
    blocks = [int(m["params"]["result"]["blockNumber"], 16) for m in got if "result" in m["params"]]
    assert blocks == [11, 12, 14]


async def test_a_quiet_logs_filter_reports_no_false_gap(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        await subscribe(ws, ["logs", {"address": ADDRESS}])
        for _ in range(130):  # live the whole time, nothing matches
            stack.mine()
        await trio.sleep(1.5)  # a health tick records how far the live subscription got
        stack.ws["p1"].drop()
        assert await drain(ws, 5) == []


async def test_a_logs_resume_replays_a_half_delivered_block(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as live:
        await subscribe(live, ["logs", {"address": ADDRESS}])
        stack.mine()
        logs = [add_log(stack, 11, i) for i in range(3)]
        stack.ws["p1"].emit_log(logs[0])
        await live.receive_json()
        async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
            await subscribe(ws, ["logs", {"address": ADDRESS, "lasso_resume_from": hex(11)}])
            stack.ws["p1"].emit_log(logs[1])
            stack.ws["p1"].emit_log(logs[2])
            got = await drain(ws, 3)
    assert [int(m["params"]["result"]["logIndex"], 16) for m in got] == [0, 1, 2]


async def test_a_head_that_hits_too_far_starts_the_stream_afresh(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        stack.mine()
        await next_head(ws, sub_id)
        for _ in range(130):
            stack.mine(skip=("p1",))  # 12..141 never pushed, no time passes
        stack.mine()  # p1 pushes 142: too far to fill
        error = await ws.receive_json()
        assert error["params"]["error"]["code"] == -32000
        head = await next_head(ws, sub_id)
        assert int(head["number"], 16) == 142  # not dropped: delivered after the error


def test_an_error_notification_waits_behind_the_answer() -> None:
    sent: list[bytes] = []

    class Client:
        def notify(self, message: bytes) -> None:
            sent.append(message)

    subscriber = Subscriber("0x1", Client(), "newHeads", None)
    head = Delivery({"number": "0x1"})
    subscriber.deliver(head, payload_tail(head))
    subscriber.error(-32000, "gap")
    assert sent == []  # held until the eth_subscribe answer is out
    subscriber.release()
    assert [b'"result":{"number":"0x1"}' in sent[0], b'"error":' in sent[1]] == [True, True]
