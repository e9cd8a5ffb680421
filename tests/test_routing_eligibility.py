"""Eligibility through the real planner and dispatcher, on fake nodes and virtual time.

Chain state is fed as head tracking would (``ChainRuntime.observe_head``); each fake
node counts the calls it received, so "never reaches that provider" is a count.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from lasso.chain import ChainRuntime
from lasso.chaos.faults import Fault
from lasso.config import ProviderConfig, Settings, parse_settings
from lasso.core.breaker import CircuitState
from lasso.core.jsonrpc import Call
from lasso.core.router import RoutePlan, Strategy
from lasso.core.routes import RouteSpec
from lasso.daemon import open_gateway
from lasso.dispatch import Outcome, dispatch
from lasso.errors import NoProviderAvailable
from lasso.gateway import Gateway
from lasso.subscriptions.targets import candidates, subscribe_first
from tests.core.test_lessons import NO_STATE_MESSAGES
from tests.support.fakes import FakeHttpTransport, FakeNode, _error

ADDRESS = "0x0000000000000000000000000000000000000001"
HEAD = 100
TTL_S = 60.0

SETTINGS = f"""
[routing]
capability_ttl_ms = {int(TTL_S * 1000)}

[chains.testnet]
chain_id = 31337
block_time_ms = 1000
archival_threshold = 8
providers = [
  {{ id = "p1", url = "http://p1.invalid", priority = 1, unsupported_methods = ["eth_gasPrice"] }},
  {{ id = "p2", url = "http://p2.invalid", priority = 2 }},
  {{ id = "p3", url = "http://p3.invalid", priority = 3 }},
]

[chains.testnet.methods]
deny = ["debug_*"]
providers = {{ "web3_clientVersion" = ["p3"] }}
"""


class PrunedNode(FakeNode):
    """Keeps state for its last ``keep`` blocks only, and says so as anvil does."""

    keep = 4

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        params = request.get("params") or []
        if request.get("method") == "eth_getBalance" and len(params) > 1:
            number = int(params[1], 16) if params[1].startswith("0x") else self.head
            if number < self.head - self.keep:
                message = (
                    f"BlockOutOfRangeError: block height is {self.head} but requested was {number}"
                )
                return _error(request.get("id"), -32602, message)
        return super()._answer(request)


class Fleet:
    def __init__(self) -> None:
        self.nodes: dict[str, FakeNode] = {"p1": PrunedNode(), "p2": FakeNode(), "p3": FakeNode()}

    def transport(self, _chain: str, provider: ProviderConfig) -> FakeHttpTransport:
        return FakeHttpTransport(self.nodes[provider.id], provider.id)

    def calls(self, pid: str, method: str) -> int:
        return self.nodes[pid].calls.count(method)


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


@pytest.fixture
def settings() -> Settings:
    return parse_settings(SETTINGS, env={})


@pytest.fixture
async def gateway(settings: Settings, fleet: Fleet) -> AsyncIterator[Gateway]:
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        yield gw


def chain_of(gateway: Gateway) -> ChainRuntime:
    return gateway.profiles["default"]["testnet"]


async def observe(chain: ChainRuntime, fleet: Fleet, heights: dict[str, int]) -> None:
    """Move the fake nodes' heads and report them, as head tracking would (and does,
    where it runs: the nodes answer its polls with the same heads and hashes). At a new
    instant: reports of one instant count at their highest (ChainState)."""
    await trio.sleep(0.01)
    now = trio.current_time()
    for pid, height in heights.items():
        node = fleet.nodes[pid]
        node.head = height
        chain.observe_head(pid, height, node.block_hash(height), node.block_hash(height - 1), now)


def plan_now(chain: ChainRuntime, method: str, params: bytes = b"[]") -> RoutePlan:
    """The ``priority`` plan for one call, at the current (virtual) time."""
    return chain.plan(
        method, trio.current_time(), strategy=Strategy.PRIORITY, provider=None, params=params
    )


async def call(chain: ChainRuntime, method: str, params: bytes = b"[]") -> tuple[bytes, Outcome]:
    request = Call(method, params, b"1")
    outcome = Outcome()
    return await dispatch(chain, request, plan_now(chain, method, params), outcome), outcome


def balance_at(block: int | str) -> bytes:
    tag = block if isinstance(block, str) else hex(block)
    return msgspec.json.encode([ADDRESS, tag])


async def test_a_lagging_provider_gets_no_head_sensitive_traffic(
    gateway: Gateway, fleet: Fleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    await observe(chain, fleet, {"p1": HEAD - 10, "p2": HEAD, "p3": HEAD})
    for _ in range(5):
        _, outcome = await call(chain, "eth_blockNumber")
        assert outcome.provider == "p2"
        _, outcome = await call(chain, "eth_getBalance", balance_at("latest"))
        assert outcome.provider == "p2"
    assert fleet.calls("p1", "eth_blockNumber") == 0
    assert fleet.calls("p1", "eth_getBalance") == 0
    # a block it has is not head-sensitive: the strategy's first choice serves it
    _, outcome = await call(chain, "eth_getBlockByNumber", b'["0x50", false]')
    assert outcome.provider == "p1"
    # it catches up: back in
    await observe(chain, fleet, {"p1": HEAD})
    _, outcome = await call(chain, "eth_blockNumber")  # p1 is first in priority
    assert outcome.provider == "p1"


async def test_everyone_lagging_fails_open(
    gateway: Gateway, fleet: Fleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    # no consensus head yet (head tracking off): nobody is left out
    _, outcome = await call(chain, "eth_blockNumber")
    assert outcome.provider == "p1"
    await observe(chain, fleet, {"p1": HEAD - 10, "p2": HEAD, "p3": HEAD - 10})
    # p2 is the only one in line and its breaker is open: the lagging p1 still answers
    chain.providers["p2"].channel("http").breaker.force_open(trio.current_time(), 60_000)
    _, outcome = await call(chain, "eth_blockNumber")
    assert outcome.provider == "p1"


async def test_providers_known_to_have_the_block_go_first(
    gateway: Gateway, fleet: Fleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    await observe(chain, fleet, {"p1": HEAD - 2, "p2": HEAD - 1, "p3": HEAD})
    plan = plan_now(chain, "eth_getBlockByNumber", b'["0x64", false]')  # block 100: only p3
    assert plan.candidate_names() == ["p3:http", "p1:http", "p2:http"]
    plan = plan_now(chain, "eth_getBlockByNumber", b'["0x63", false]')  # 99: p2, p3 in order
    assert plan.candidate_names() == ["p2:http", "p3:http", "p1:http"]


async def test_configured_unsupported_methods_never_reach_the_provider(
    gateway: Gateway, fleet: Fleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    for _ in range(10):
        result, outcome = await call(chain, "eth_gasPrice")
        assert result == b'"0x3b9aca00"' and outcome.provider == "p2"
    assert fleet.calls("p1", "eth_gasPrice") == 0


async def test_a_learned_unsupported_method_is_retried_after_its_ttl(
    gateway: Gateway, fleet: Fleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    fleet.nodes["p1"].fault = Fault.METHOD_NOT_FOUND  # -32601 "Method not found: ..."
    _, outcome = await call(chain, "eth_chainId")
    assert outcome.provider == "p2"
    assert [(a.provider, a.category) for a in outcome.attempts] == [("p1", "capability")]
    stats = chain.providers["p1"].capabilities.statistics(trio.current_time())
    assert stats.learned_unsupported == {"eth_chainId": TTL_S}
    for _ in range(5):
        await trio.sleep(TTL_S / 10)
        _, outcome = await call(chain, "eth_chainId")
        assert outcome.provider == "p2" and outcome.attempts == []
    assert fleet.calls("p1", "eth_chainId") == 1
    await trio.sleep(TTL_S / 2)  # the TTL has passed: asked again
    fleet.nodes["p1"].fault = None
    _, outcome = await call(chain, "eth_chainId")
    assert outcome.provider == "p1"
    breaker = chain.providers["p1"].channel("http").breaker.statistics(trio.current_time())
    assert breaker.consecutive_failures == 0


async def test_pruned_answers_are_learned_and_never_penalised(
    gateway: Gateway, fleet: Fleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    await observe(chain, fleet, {"p1": HEAD, "p2": HEAD, "p3": HEAD})
    result, outcome = await call(chain, "eth_getBalance", balance_at(1))
    assert result == b'"0x56bc75e2d63100000"' and outcome.provider == "p2"
    assert [(a.provider, a.category) for a in outcome.attempts] == [("p1", "capability")]
    now = trio.current_time()
    assert chain.providers["p1"].capabilities.statistics(now).pruned_depth == HEAD - 1
    for block in (1, 0, "earliest", 1):
        _, outcome = await call(chain, "eth_getBalance", balance_at(block))
        assert outcome.provider == "p2" and outcome.attempts == []
    assert fleet.calls("p1", "eth_getBalance") == 1
    # recent state is still its to serve
    _, outcome = await call(chain, "eth_getBalance", balance_at(HEAD - 2))
    assert outcome.provider == "p1"
    stats = chain.providers["p1"].channel("http").breaker.statistics(now)
    assert stats.consecutive_failures == 0 and stats.state is CircuitState.CLOSED


async def test_method_rule_preferences(
    gateway: Gateway, fleet: Fleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    for _ in range(3):
        _, outcome = await call(chain, "web3_clientVersion")
        assert outcome.provider == "p3"
    assert fleet.calls("p1", "web3_clientVersion") == fleet.calls("p2", "web3_clientVersion") == 0


async def test_denied_methods_are_refused_locally_single_and_batch(
    gateway: Gateway, fleet: Fleet, autojump_clock: trio.testing.MockClock
) -> None:
    target = gateway.resolve(RouteSpec(chain="testnet"), "/rpc/testnet")
    single = await gateway.answer_body(
        target, b'{"jsonrpc":"2.0","id":4,"method":"debug_traceCall","params":[{},"latest"]}'
    )
    assert single.body() == (
        b'{"jsonrpc":"2.0","id":4,"error":{"code":-32601,'
        b'"message":"the method debug_traceCall does not exist/is not available"}}'
    )
    batch = await gateway.answer_body(
        target,
        b'[{"jsonrpc":"2.0","id":1,"method":"debug_getRawBlock","params":["0x1"]},'
        b'{"jsonrpc":"2.0","id":2,"method":"eth_chainId","params":[]}]',
    )
    answers = msgspec.json.decode(batch.body())
    assert answers[0]["error"]["code"] == -32601
    assert answers[1]["result"] == "0x7a69"
    # pinned to a provider: refused all the same
    pinned = gateway.resolve(RouteSpec(chain="testnet", provider="p2"), "/rpc/provider/p2/testnet")
    answer = await gateway.answer_body(
        pinned, b'{"jsonrpc":"2.0","id":5,"method":"debug_traceTransaction","params":[]}'
    )
    assert msgspec.json.decode(answer.body())["error"]["code"] == -32601
    assert all(not any(m.startswith("debug_") for m in n.calls) for n in fleet.nodes.values())


def test_subscriptions_false_is_never_a_subscription_target() -> None:
    settings = parse_settings(
        """
[chains.testnet]
chain_id = 31337
providers = [
  { id = "a", url = "http://a.invalid", ws_url = "ws://a.invalid", priority = 1, subscriptions = false },
  { id = "b", url = "http://b.invalid", ws_url = "ws://b.invalid", priority = 2 },
]
""",
        env={},
    )

    class Connected:
        connected = True

        async def run(self) -> None:  # never started here
            raise AssertionError

    chain = ChainRuntime(
        "testnet",
        settings.default_profile.chains["testnet"],
        routing=settings.routing,
        rng=random.Random(1),
        websockets=lambda _chain, _provider: Connected(),  # type: ignore[arg-type,return-value]
    )
    assert [p.id for p in candidates(chain, None, set(), 0.0)] == ["b"]
    assert [p.id for p in candidates(chain, None, {"b"}, 0.0)] == ["b"]
    assert candidates(chain, "a", set(), 0.0) == []
    # With no other provider, the client is told why (its WebSocket is connected).
    alone = ChainRuntime(
        "testnet",
        settings.default_profile.chains["testnet"],
        routing=settings.routing,
        rng=random.Random(1),
        websockets=lambda _chain, _provider: Connected(),  # type: ignore[arg-type,return-value]
    )
    alone.providers.pop("b")
    with pytest.raises(NoProviderAvailable, match="WebSocket that allows subscriptions"):
        trio.run(partial(subscribe_first, alone, b'["newHeads"]', set(), pinned=None, spawn=None))


class NoStateNode(FakeNode):
    """Answers every eth_getBalance with one scripted no-state error."""

    answer: tuple[int, str] = (-32000, "missing trie node")

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("method") == "eth_getBalance":
            return _error(request.get("id"), *self.answer)
        return super()._answer(request)


@pytest.mark.parametrize("code", [-32000, -32602, -32603])
@pytest.mark.parametrize("message", NO_STATE_MESSAGES)
async def test_no_state_answers_never_count_against_the_breaker(
    settings: Settings, code: int, message: str, autojump_clock: trio.testing.MockClock
) -> None:
    fleet = Fleet()
    node = fleet.nodes["p1"] = NoStateNode()
    node.answer = (code, message)
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        chain = chain_of(gw)
        await observe(chain, fleet, {"p1": HEAD, "p2": HEAD, "p3": HEAD})
        for block in (1, HEAD - 1, "latest", 2, 3, 4, 5, 6, 7, 8):
            _, outcome = await call(chain, "eth_getBalance", balance_at(block))
            assert outcome.provider in {"p2", "p3"}
        stats = chain.providers["p1"].channel("http").breaker.statistics(trio.current_time())
        assert stats.consecutive_failures == 0 and stats.total_opens == 0


async def test_eth_getlogs_is_routed_on_its_range_like_every_other_call(
    gateway: Gateway, fleet: Fleet, autojump_clock: trio.testing.MockClock
) -> None:
    # eth_getLogs takes its own path (lasso.logs); it must plan on its params too: a
    # range to the head is head-sensitive, so the lagging p1 (first by priority) is skipped.
    chain = chain_of(gateway)
    await observe(chain, fleet, {"p1": HEAD - 10, "p2": HEAD, "p3": HEAD})
    target = gateway.resolve(RouteSpec(chain="testnet", strategy=Strategy.PRIORITY), "/rpc/testnet")
    for _ in range(5):
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"fromBlock":"0x60"}]}'
        answer = await gateway.answer_body(target, body)
        assert b'"result"' in answer.body()
    assert fleet.calls("p1", "eth_getLogs") == 0
    assert fleet.calls("p2", "eth_getLogs") == 5
