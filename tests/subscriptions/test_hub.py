"""Shared subscriptions end to end in-process: fake HTTP + fake WS nodes, virtual time."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from lasso.chaos.faults import Fault
from lasso.config import ProviderConfig, parse_settings
from lasso.daemon import open_gateway
from lasso.errors import UpstreamNetworkError
from lasso.metrics import Metrics
from lasso.subscriptions.hub import SubscriptionHub, open_subscription_hub
from lasso.subscriptions.session import ClientSession
from lasso.upstream.http import HttpResponse
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.support.asgi import AsgiWebSocket, open_asgi_websocket
from tests.support.fake_ws import (
    FakeWsNode,
    open_fake_ws_nodes,
    wait_ws_connected,
)
from tests.support.fakes import FakeHttpTransport, FakeNode

SETTINGS = """
[server]
ws_max_subscriptions = 3

[subscriptions]
teardown_grace_ms = 5000

[chains.testnet]
chain_id = 31337
block_time_ms = 1000
head_poll_ms = 0  # these tests count upstream subscriptions; head tracking is tested apart
providers = [
  { id = "p1", url = "http://p1.invalid", ws_url = "ws://p1.invalid", priority = 1 },
  { id = "p2", url = "http://p2.invalid", ws_url = "ws://p2.invalid", priority = 2 },
]
"""


class Stack:
    def __init__(
        self,
        app: LassoASGI,
        hub: SubscriptionHub,
        nodes: dict[str, FakeNode],
        ws: dict[str, FakeWsNode],
    ) -> None:
        self.app, self.hub, self.nodes, self.ws = app, hub, nodes, ws
        self.http_down: set[str] = set()  # providers whose HTTP endpoint refuses everything

    def mine(self, *, skip: tuple[str, ...] = ()) -> None:
        """One block on every node; a skipped node's subscribers miss its push."""
        for provider_id, fake in self.ws.items():
            if provider_id in skip:
                fake.node.head += 1
            else:
                fake.emit_head()


class SwitchableHttp(FakeHttpTransport):
    def __init__(self, node: FakeNode, provider_id: str, down: set[str]) -> None:
        super().__init__(node, provider_id)
        self.down = down

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        if self.provider_id in self.down:
            raise UpstreamNetworkError(
                "connection refused", provider_id=self.provider_id, never_sent=True
            )
        return await super().post(body, replay_safe=replay_safe)


@pytest.fixture
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """The stack; ``@pytest.mark.parametrize("stack", [(old, new)], indirect=True)`` edits
    the settings text."""
    old, new = getattr(request, "param", ("", ""))
    settings = parse_settings(SETTINGS.replace(old, new, 1) if old else SETTINGS, env={})
    nodes = {p: FakeNode(head=10) for p in ("p1", "p2")}
    async with open_fake_ws_nodes(nodes) as (fakes, connect):
        down: set[str] = set()

        def http(chain: str, provider: ProviderConfig) -> FakeHttpTransport:
            return SwitchableHttp(nodes[provider.id], provider.id, down)

        async with open_gateway(
            settings, rng=random.Random(3), transports=http, connector=connect
        ) as gateway:
            await wait_ws_connected(gateway.profiles["default"]["testnet"].providers.values())
            async with open_subscription_hub(gateway) as hub:
                app = LassoASGI(gateway, create_app(gateway, hub), partial(ClientSession, hub))
                stack = Stack(app, hub, nodes, fakes)
                stack.http_down = down
                yield stack


async def subscribe(ws: AsgiWebSocket, params: list[Any], rid: int = 1) -> str:
    await ws.send_text(
        json.dumps({"jsonrpc": "2.0", "id": rid, "method": "eth_subscribe", "params": params})
    )
    answer = await ws.receive_json()
    assert "result" in answer, answer
    return str(answer["result"])


async def next_head(ws: AsgiWebSocket, sub_id: str) -> dict[str, Any]:
    message = await ws.receive_json()
    assert message["method"] == "eth_subscription"
    assert message["params"]["subscription"] == sub_id
    return dict(message["params"]["result"])


async def mine_heads(
    stack: Stack, ws: AsgiWebSocket, sub_id: str, count: int
) -> list[dict[str, Any]]:
    """Mine ``count`` heads, each one received before the next is mined."""
    heads: list[dict[str, Any]] = []
    for _ in range(count):
        stack.mine()
        heads.append(await next_head(ws, sub_id))
    return heads


async def test_new_heads_are_delivered_with_gateway_ids(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        assert sub_id.startswith("0x") and len(sub_id) == 34
        stack.mine()
        head = await next_head(ws, sub_id)
        assert head["number"] == hex(11)
        upstream_ids = {s for peer in stack.ws["p1"]._peers for s in peer.subscriptions}
        assert sub_id not in upstream_ids  # upstream ids never leak


async def test_a_hundred_clients_share_one_upstream_subscription(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        sockets: list[tuple[AsgiWebSocket, str]] = []
        all_subscribed, done = trio.Event(), trio.Event()

        async def client() -> None:
            async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
                sockets.append((ws, await subscribe(ws, ["newHeads"])))
                if len(sockets) == 100:
                    all_subscribed.set()
                await done.wait()

        for _ in range(100):
            nursery.start_soon(client)
        await all_subscribed.wait()
        assert stack.ws["p1"].subscriptions + stack.ws["p2"].subscriptions == 1
        metrics = Metrics(stack.app.gateway, stack.hub).render().decode()
        assert (
            'lasso_upstream_subscriptions{chain="testnet",kind="newHeads",provider="p1"} 1'
            in metrics
        )
        assert 'lasso_client_subscriptions{chain="testnet",kind="newHeads"} 100' in metrics
        stack.mine()
        heads = [await next_head(ws, sub_id) for ws, sub_id in sockets]
        assert {h["number"] for h in heads} == {hex(11)}
        done.set()
    # Every client left: after the grace period the upstream subscription goes.
    await trio.sleep(6)
    assert stack.ws["p1"].subscriptions == 0
    assert (
        "lasso_client_subscriptions{" not in Metrics(stack.app.gateway, stack.hub).render().decode()
    )


async def test_failover_backfills_without_gaps_or_duplicates(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        received = await mine_heads(stack, ws, sub_id, 3)
        stack.ws["p1"].drop()  # the serving provider's connection dies mid-stream
        stack.mine(skip=("p1",))
        stack.mine(skip=("p1",))
        for _ in range(2):
            received.append(await next_head(ws, sub_id))
        stack.mine(skip=("p1",))
        received.append(await next_head(ws, sub_id))
        stats = stack.hub.statistics()
        assert stats.failovers == 1
        assert stats.upstream == {("testnet", "p2", "newHeads"): 1}
        assert stats.backfilled == {("testnet", "newHeads"): 2}  # 14 and 15, from p2
        metrics = Metrics(stack.app.gateway, stack.hub).render().decode()
        assert 'lasso_backfilled_blocks_total{chain="testnet",kind="newHeads"} 2.0' in metrics
    numbers = [int(h["number"], 16) for h in received]
    assert numbers == list(range(11, 17))
    assert len({h["hash"] for h in received}) == 6
    for previous, head in itertools.pairwise(received):
        assert head["parentHash"] == previous["hash"]
    live_keys = set(received[0])
    assert all(set(h) == live_keys for h in received)  # backfilled heads shaped like live ones


async def test_unsubscribe_and_errors(stack: Stack, autojump_clock: trio.testing.MockClock) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        for params, expected in (([sub_id], True), ([sub_id], False), (["0xdead"], False)):
            await ws.send_text(
                json.dumps(
                    {"jsonrpc": "2.0", "id": 2, "method": "eth_unsubscribe", "params": params}
                )
            )
            assert (await ws.receive_json())["result"] is expected
        await ws.send_text(
            json.dumps({"jsonrpc": "2.0", "id": 3, "method": "eth_subscribe", "params": ["bogus"]})
        )
        error = (await ws.receive_json())["error"]
        assert error["code"] == -32602
        assert "unsupported subscription type 'bogus'" in error["message"]


async def test_resume_replays_then_continues_live(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    for _ in range(5):
        stack.mine()  # heads 11..15 exist before the client (re)connects
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads", {"lasso_resume_from": hex(12)}])
        replayed = [await next_head(ws, sub_id) for _ in range(4)]
        stack.mine()
        live = await next_head(ws, sub_id)
    numbers = [int(h["number"], 16) for h in [*replayed, live]]
    assert numbers == [12, 13, 14, 15, 16]
    assert live["parentHash"] == replayed[-1]["hash"]
    assert msgspec.json.encode(replayed[0])  # real block objects, JSON-serialisable


async def test_a_stale_provider_is_failed_over(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        stack.mine()
        first = await next_head(ws, sub_id)
        start = trio.current_time()
        stack.mine(skip=("p1",))  # p1 stays connected and answers pings, but goes quiet
        with trio.fail_after(60):
            second = await next_head(ws, sub_id)
        # stale = max(3 block times, min_stale 15 s), checked once a second
        assert 15.0 < trio.current_time() - start <= 17.0
        assert second["parentHash"] == first["hash"]
        assert stack.hub.statistics().upstream == {("testnet", "p2", "newHeads"): 1}


async def test_an_open_breaker_moves_the_subscription(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        provider = stack.app.gateway.profiles["default"]["testnet"].providers["p1"]
        provider.channel("ws").breaker.force_open(trio.current_time(), 60_000)
        start = trio.current_time()
        stack.mine(skip=("p1",))
        with trio.fail_after(60):
            await next_head(ws, sub_id)
        assert trio.current_time() - start <= 1.01  # the next health tick notices
        assert stack.hub.statistics().upstream == {("testnet", "p2", "newHeads"): 1}


async def test_a_gap_past_max_backfill_is_an_error_notification_not_silence(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        stack.mine()
        await next_head(ws, sub_id)
        for _ in range(130):  # more than max_backfill_blocks (128) while p1 is silent...
            stack.mine(skip=("p1",))
        stack.ws["p1"].drop()  # ...then it dies: the gap cannot be filled
        error = await ws.receive_json()
        assert error["method"] == "eth_subscription"
        assert error["params"]["subscription"] == sub_id
        assert error["params"]["error"]["code"] == -32000
        assert "130" in error["params"]["error"]["message"]
        stack.mine(skip=("p1",))
        head = await next_head(ws, sub_id)  # and the stream goes on from the new tip
        assert int(head["number"], 16) == 10 + 1 + 130 + 1


async def test_a_failed_catch_up_is_retried_not_fatal(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        stack.mine()
        await next_head(ws, sub_id)
        stack.http_down.update({"p1", "p2"})  # no provider can answer a backfill read:
        for node in stack.nodes.values():  # not over HTTP, and not over WebSocket either
            node.fault = Fault.METHOD_NOT_FOUND
        stack.mine(skip=("p1",))
        stack.mine(skip=("p1",))
        stack.ws["p1"].drop()
        with trio.move_on_after(3):
            unexpected = await ws.receive_json()
            raise AssertionError(f"nothing can be delivered before the gap is filled: {unexpected}")
        stack.http_down.clear()  # reads work again: the next tick catches up
        for node in stack.nodes.values():
            node.fault = None
        with trio.fail_after(5):
            heads = [await next_head(ws, sub_id) for _ in range(2)]
        assert [int(h["number"], 16) for h in heads] == [12, 13]


async def test_a_reorg_delivers_the_replacement_heads(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        old = await mine_heads(stack, ws, sub_id, 3)  # 11, 12, 13
        for node in stack.nodes.values():
            node.reorg(2)  # 12 and 13 are replaced by another branch
        stack.mine()  # 14 on the new branch: its parent is the new 13
        with trio.fail_after(5):
            replacements = [await next_head(ws, sub_id) for _ in range(3)]
    assert [int(h["number"], 16) for h in replacements] == [12, 13, 14]
    assert replacements[0]["parentHash"] == old[0]["hash"]  # the fork point is 11
    assert {h["hash"] for h in replacements}.isdisjoint(h["hash"] for h in old)
    for parent, child in itertools.pairwise(replacements):
        assert child["parentHash"] == parent["hash"]


async def test_the_subscription_limit_answers_local_capacity(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        ids = [await subscribe(ws, ["newHeads"]) for _ in range(3)]
        request = {"jsonrpc": "2.0", "id": 9, "method": "eth_subscribe", "params": ["newHeads"]}
        await ws.send_text(json.dumps(request))
        answer = await ws.receive_json()
        assert answer == {
            "jsonrpc": "2.0",
            "id": 9,
            "error": {"code": -32008, "message": "Subscription capacity unavailable"},
        }
        unsubscribe = {"jsonrpc": "2.0", "id": 10, "method": "eth_unsubscribe", "params": [ids[0]]}
        await ws.send_text(json.dumps(unsubscribe))
        assert (await ws.receive_json())["result"] is True
        await subscribe(ws, ["newHeads"])  # room again


async def test_a_stream_whose_provider_leaves_the_chain_fails_over_without_a_gap(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    """What a reload removing the serving provider does: the stream holds its Serving
    record (objects, not ids), finds at its next health tick that the provider left the
    chain, and moves to the next one with backfill: no KeyError, no gap, no duplicate."""
    chain = stack.app.gateway.profiles["default"]["testnet"]
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        heads = await mine_heads(stack, ws, sub_id, 1)
        assert stack.hub.statistics().upstream == {("testnet", "p1", "newHeads"): 1}
        del chain.providers["p1"]  # it stays connected and keeps pushing heads
        stack.mine(skip=("p1",))  # head 12: the stream, still on p1, misses it (backfilled)
        with trio.fail_after(5):  # the next health tick fails over and backfills 12
            heads.append(await next_head(ws, sub_id))
        assert stack.hub.statistics().upstream == {("testnet", "p2", "newHeads"): 1}
        (stream,) = stack.hub._streams.values()
        assert stream.serving is not None and stream.serving.provider is chain.providers["p2"]
        assert list(stack.hub._routes.values()) == [stream.serving]  # an index of the record
        stack.mine()
        stack.mine()
        with trio.fail_after(5):
            while int(heads[-1]["number"], 16) < 14:
                heads.append(await next_head(ws, sub_id))
        assert [int(h["number"], 16) for h in heads] == [11, 12, 13, 14]  # no gap, no dup
        assert stack.ws["p1"].subscriptions == 0  # unsubscribed from the removed provider
