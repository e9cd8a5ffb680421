"""A reorg seen through a polled filter, in-process: fake HTTP + fake WS nodes, the real
ASGI front end, virtual time. Like geth, a log filter's next poll re-sends the orphaned
blocks' logs with ``removed: true`` and then the new branch's; a block filter returns the
replacement blocks' hashes. Each once."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from lasso.config import ProviderConfig, parse_settings
from lasso.daemon import open_gateway
from lasso.filters.service import open_filters
from lasso.subscriptions.hub import open_subscription_hub
from lasso.subscriptions.session import ClientSession
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.support.asgi import asgi_request
from tests.support.fake_ws import FakeWsNode, open_fake_ws_nodes, wait_ws_connected
from tests.support.fakes import FakeHttpTransport, FakeNode

SETTINGS = """
[chains.testnet]
chain_id = 31337
block_time_ms = 1000
providers = [
  { id = "p1", url = "http://p1.invalid", ws_url = "ws://p1.invalid", priority = 1 },
  { id = "p2", url = "http://p2.invalid", ws_url = "ws://p2.invalid", priority = 2 },
]
"""
ADDRESS = "0x" + "aa" * 20


class Stack:
    def __init__(self, app: LassoASGI, nodes: dict[str, FakeNode], ws: dict[str, FakeWsNode]):
        self.app, self.nodes, self.ws = app, nodes, ws

    async def result(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        response = await asgi_request(self.app, "POST", "/rpc/testnet", body.encode())
        answer = response.json()
        assert "result" in answer, answer
        return answer["result"]

    def mine(self, logs: int = 0) -> None:
        """A block on every node with ``logs`` logs, pushed live to subscribers."""
        for fake in self.ws.values():
            number = fake.node.head + 1
            made = [log_of(fake.node, number, i) for i in range(logs)]
            fake.node.logs[number] = made
            fake.emit_head()
            for log in made:
                fake.emit_log(log)


def log_of(node: FakeNode, number: int, index: int) -> dict[str, Any]:
    return {
        "address": ADDRESS,
        "topics": [],
        "data": "0x",
        "blockNumber": hex(number),
        "blockHash": node.block_hash(number),
        "transactionHash": "0x" + format(number * 100 + index, "064x"),
        "transactionIndex": hex(index),
        "logIndex": hex(index),
        "removed": False,
    }


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    settings = parse_settings(SETTINGS, env={})
    nodes = {p: FakeNode(head=10) for p in ("p1", "p2")}
    async with open_fake_ws_nodes(nodes) as (fakes, connect):

        def http(chain: str, provider: ProviderConfig) -> FakeHttpTransport:
            return FakeHttpTransport(nodes[provider.id], provider.id)

        async with open_gateway(
            settings, rng=random.Random(3), transports=http, connector=connect
        ) as gateway:
            await wait_ws_connected(gateway.profiles["default"]["testnet"].providers.values())
            async with open_subscription_hub(gateway) as hub, open_filters(gateway, hub):
                app = LassoASGI(gateway, create_app(gateway, hub), partial(ClientSession, hub))
                yield Stack(app, nodes, fakes)


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()
    await trio.sleep(0.01)  # virtual: the streams' reads are done
    await trio.testing.wait_all_tasks_blocked()


async def test_a_reorg_reaches_a_polled_filter_as_geth_reports_it(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    logs_id = await stack.result("eth_newFilter", [{"address": ADDRESS}])
    blocks_id = await stack.result("eth_newBlockFilter", [])
    for _ in range(3):  # 11, 12, 13, one log each
        stack.mine(logs=1)
        await settle()
    before = await stack.result("eth_getFilterChanges", [logs_id])
    old_hashes = await stack.result("eth_getFilterChanges", [blocks_id])
    assert [int(log["blockNumber"], 16) for log in before] == [11, 12, 13]
    assert len(old_hashes) == 3
    for node in stack.nodes.values():
        node.reorg(2)  # 12 and 13 are replaced: 12' has two logs, 13' none
        node.logs[12] = [log_of(node, 12, 0), log_of(node, 12, 1)]
        node.logs[13] = []
    stack.mine()  # 14 on the new branch
    await settle()
    with trio.fail_after(10):
        after: list[dict[str, Any]] = []
        hashes: list[str] = []
        while len(after) < 4 or len(hashes) < 3:
            after += await stack.result("eth_getFilterChanges", [logs_id])
            hashes += await stack.result("eth_getFilterChanges", [blocks_id])
            await settle()
    removed = [log for log in after if log["removed"]]
    assert removed == [{**log, "removed": True} for log in before[1:]]  # 12 and 13, once
    assert after[len(removed) :] == stack.nodes["p1"].logs[12]  # the new branch's 12'
    node = stack.nodes["p1"]
    assert hashes == [node.block_hash(n) for n in (12, 13, 14)]
    assert await stack.result("eth_getFilterChanges", [logs_id]) == []
