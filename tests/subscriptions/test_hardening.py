"""Issue 7 (hardening): upstream subscription churn, late confirmations, chain resets,
failover to a provider behind the delivered head, and filter size bounds.

Fake HTTP + fake WS nodes on virtual time; the upstream subscriptions are counted on the
fake upstream itself (``FakeWsNode.subscriptions``), not on Lasso's own bookkeeping.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from tests.subscriptions.test_hub import Stack, mine_heads, next_head, stack, subscribe
from tests.support.asgi import AsgiWebSocket, open_asgi_websocket
from tests.support.fake_ws import FakeWsNode

__all__ = ["stack"]  # the fixture, imported for pytest


def address(n: int) -> str:
    return "0x" + format(n, "040x")


def upstream(stack: Stack) -> int:
    """Live upstream subscriptions, as the fake nodes count them."""
    return sum(fake.subscriptions for fake in stack.ws.values())


async def call(ws: AsgiWebSocket, method: str, params: list[Any], rid: int = 7) -> Any:
    await ws.send_text(
        json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    )
    return await ws.receive_json()


async def settle(stack: Stack, at_most: int) -> None:
    """Wait for in-flight upstream unsubscribes to land: one virtual second, well within
    the 5 s teardown grace, so only a torn-down-at-once subscription counts as gone."""
    await trio.sleep(1)
    assert upstream(stack) <= at_most, f"{upstream(stack)} upstream subscriptions left"


# -- item 6: churn ----------------------------------------------------------------------


@pytest.mark.slow
async def test_churning_2000_distinct_logs_filters_on_one_socket_leaves_a_bound(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    per_client = stack.app.gateway.settings.subscriptions.max_idle_upstream_per_client
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        await subscribe(ws, ["newHeads"], rid=0)  # one subscription the client keeps
        for n in range(2000):
            sub_id = await subscribe(ws, ["logs", {"address": address(n)}], rid=n + 1)
            assert (await call(ws, "eth_unsubscribe", [sub_id]))["result"] is True
        await settle(stack, 1 + per_client)
        assert upstream(stack) == 1 + per_client  # before the budget: 2,001
        # The idle ones kept are the newest: a client coming back to them reuses them.
        await subscribe(ws, ["logs", {"address": address(1999)}], rid=9999)
        assert upstream(stack) == 1 + per_client


@pytest.mark.parametrize(
    "stack",
    [("teardown_grace_ms = 5000", "teardown_grace_ms = 5000\nmax_idle_upstream_per_chain = 6")],
    indirect=True,
)
async def test_many_churning_clients_leave_at_most_the_chain_idle_bound(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async def churn(first: int) -> None:
        async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
            for n in range(first, first + 3):
                sub_id = await subscribe(ws, ["logs", {"address": address(n)}])
                await call(ws, "eth_unsubscribe", [sub_id])

    async with trio.open_nursery() as nursery:
        for client in range(20):
            nursery.start_soon(churn, client * 100)
    await settle(stack, 6)
    assert upstream(stack) == 6  # 60 idle filters before the bound
    assert stack.hub.statistics().budgets["testnet"].idle == 6


@pytest.mark.parametrize(
    "stack",
    [("teardown_grace_ms = 5000", "teardown_grace_ms = 5000\nmax_upstream_per_chain = 3")],
    indirect=True,
)
async def test_past_the_chain_bound_an_idle_stream_makes_room_else_32008(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        open_asgi_websocket(stack.app, "/ws/rpc/testnet") as holder,
        open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws,
    ):
        ids = [await subscribe(holder, ["logs", {"address": address(n)}], rid=n) for n in range(3)]
        refused = await call(ws, "eth_subscribe", ["logs", {"address": address(3)}], rid=3)
        assert refused["error"] == {"code": -32008, "message": "Subscription capacity unavailable"}
        shared = await call(ws, "eth_subscribe", ["logs", {"address": address(0)}], rid=4)
        assert "result" in shared  # an existing key needs no new upstream subscription
        await call(holder, "eth_unsubscribe", [ids[1]])
        await subscribe(ws, ["logs", {"address": address(3)}], rid=5)  # the idle one goes
        await settle(stack, 3)
        assert upstream(stack) == 3


# -- item 6: a confirmation after the stream gave up ------------------------------------


def delay_subscribes(fake: FakeWsNode, seconds: float) -> None:
    """The fake node answers eth_subscribe only after ``seconds`` (and still accepts it)."""
    answer: Callable[[Any, bytes], Awaitable[None]] = fake._answer

    async def slow(peer: Any, body: bytes) -> None:
        if b'"eth_subscribe"' in body:
            await trio.sleep(seconds)
        await answer(peer, body)

    fake._answer = slow  # type: ignore[method-assign]


async def test_a_subscribe_confirmed_after_its_timeout_is_unsubscribed(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    delay_subscribes(stack.ws["p1"], 15)  # past the 10 s subscribe timeout
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        start = trio.current_time()
        sub_id = await subscribe(ws, ["newHeads"])
        assert trio.current_time() - start == pytest.approx(10, abs=0.1)  # then p2
        await trio.sleep(6)  # p1 has confirmed the abandoned subscribe by now
        assert stack.ws["p1"].subscriptions == 0  # before: 1, leaked for the link's life
        assert stack.nodes["p1"].calls.count("eth_unsubscribe") == 1
        assert stack.ws["p2"].subscriptions == 1
        stack.mine()
        assert (await next_head(ws, sub_id))["number"] == hex(11)


async def test_a_subscribe_whose_client_left_is_unsubscribed_when_confirmed(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    delay_subscribes(stack.ws["p1"], 5)
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        await ws.send_text(
            json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
            )
        )
        await trio.sleep(1)  # the client hangs up while the subscribe is in flight
    await trio.sleep(10)
    assert stack.nodes["p1"].calls.count("eth_subscribe") == 1
    assert stack.ws["p1"].subscriptions == 0  # before: 1
    assert stack.nodes["p1"].calls.count("eth_unsubscribe") == 1


# -- item 7: a chain reset --------------------------------------------------------------


def reset_chain(stack: Stack, head: int = 0) -> None:
    """Every node restarted empty: new blocks (new hashes) from genesis, links dropped."""
    for fake in stack.ws.values():
        fake.node.forks.append(0)
        fake.node.head = head
        fake.drop()


async def mine_every_second(
    stack: Stack, per_second: int = 1, *, task_status: trio.TaskStatus[None]
) -> None:
    task_status.started()
    for _ in range(600 * per_second):
        await trio.sleep(1 / per_second)
        stack.mine()


async def test_after_a_chain_reset_subscribers_get_an_error_and_new_ones_live_heads(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    for node in stack.nodes.values():
        node.head = 100  # far enough that the restarted chain stays below it meanwhile
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws, trio.open_nursery() as n:
        sub_id = await subscribe(ws, ["newHeads"])
        for _ in range(3):
            stack.mine()
        delivered = [int((await next_head(ws, sub_id))["number"], 16) for _ in range(3)]
        assert delivered == [101, 102, 103]
        last_delivered = trio.current_time()
        reset_chain(stack)
        await n.start(mine_every_second, stack)
        with trio.fail_after(60):  # before: no notification at all for 600+ s
            message = await ws.receive_json()
        silence = trio.current_time() - last_delivered
        assert message["params"]["subscription"] == sub_id
        assert message["params"]["error"]["code"] == -32000
        assert "behind the last delivered head 103" in message["params"]["error"]["message"]
        # stale window max(3 block times, min_stale_ms 15 s); the first 1 s tick past it
        assert silence == pytest.approx(16.0, abs=0.01), silence
        # The ended subscription is gone: nothing more on it, and it no longer counts
        # against ws_max_subscriptions (3 here).
        others = [await subscribe(ws, ["logs", {"address": address(n)}], 3 + n) for n in range(2)]
        new_id = await subscribe(ws, ["newHeads"], rid=2)
        assert (await call(ws, "eth_unsubscribe", [sub_id]))["result"] is False
        for other in others:
            await call(ws, "eth_unsubscribe", [other])
        first = await next_head(ws, new_id)
        second = await next_head(ws, new_id)
        n.cancel_scope.cancel()
    number = int(first["number"], 16)
    assert number < 30  # the new chain's own heads, live
    assert first["hash"] == stack.nodes["p1"].block_hash(number)
    assert second["parentHash"] == first["hash"]


async def test_a_reset_without_a_disconnect_is_noticed_by_delivery_not_arrival(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    for node in stack.nodes.values():
        node.head = 100
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws, trio.open_nursery() as n:
        sub_id = await subscribe(ws, ["newHeads"])
        stack.mine()
        await next_head(ws, sub_id)
        last_delivered = trio.current_time()
        for fake in stack.ws.values():  # reset in place (anvil_reset): the links stay up
            fake.node.forks.append(0)
            fake.node.head = 0
        await n.start(mine_every_second, stack, 4)  # heads keep arriving, far below 101
        with trio.fail_after(60):
            message = await ws.receive_json()
        n.cancel_scope.cancel()
    assert "error" in message["params"], message
    assert trio.current_time() - last_delivered == pytest.approx(16.0, abs=0.01)


# -- item 8: never back to a provider behind the delivered head -------------------------


async def test_failover_never_moves_to_a_provider_behind_the_delivered_head(
    stack: Stack, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        got = await mine_heads(stack, ws, sub_id, 10)  # 11..20
        p2 = stack.nodes["p2"]
        p2.forks.append(0)  # p2 was restarted empty and is at block 12 of its own chain
        p2.head = 12
        stack.ws["p1"].refuse = True
        stack.ws["p1"].drop()  # the serving node dies
        for _ in range(3):
            await trio.sleep(1)
            stack.ws["p2"].emit_head()  # p2 pushes heads 13, 14, 15 of its own chain
            stack.nodes["p1"].head += 1  # p1 goes on (21, 22, 23) while unreachable
        stack.ws["p1"].refuse = False  # back within the stale window
        with trio.fail_after(30):
            while len(got) < 13:
                got.append(await next_head(ws, sub_id))
            stack.mine(skip=("p2",))
            got.append(await next_head(ws, sub_id))
    numbers = [int(h["number"], 16) for h in got]
    assert numbers == list(range(11, 25)), str(numbers)  # before: 11..20, then p2 10, 11, 12, 13
    assert stack.hub.statistics().upstream == {("testnet", "p1", "newHeads"): 1}


# -- item 11: filter size -----------------------------------------------------------------


TOPICS = ["0x" + format(n, "064x") for n in range(10_000)]


@pytest.mark.parametrize(
    ("field", "value", "small", "what"),
    [
        ("address", [address(n) for n in range(10_000)], [address(1)], "10000 addresses"),
        ("topics", [TOPICS], [TOPICS[:256]], "10000 topic values"),
    ],
)
async def test_a_huge_logs_filter_is_refused_before_it_goes_upstream(
    stack: Stack,
    autojump_clock: trio.testing.MockClock,
    field: str,
    value: Any,
    small: Any,
    what: str,
) -> None:
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        answer = await call(ws, "eth_subscribe", ["logs", {field: value}])
        assert answer["error"]["code"] == -32602
        assert what in answer["error"]["message"]
        for method in ("eth_getLogs", "eth_newFilter"):  # unary calls on the socket too
            answer = await call(ws, method, [{field: value}])
            assert answer["error"]["code"] == -32602, answer
            assert what in answer["error"]["message"]
        assert upstream(stack) == 0
        assert "eth_subscribe" not in stack.nodes["p1"].calls
        ok = await call(ws, "eth_subscribe", ["logs", {field: small}])  # at the bound
        assert "result" in ok
