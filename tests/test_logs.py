"""The eth_getLogs shell (lasso.logs) on fake nodes and trio's MockClock: the chunk
concurrency bound, learning a limit without a breaker penalty, failing whole."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import trio
import trio.testing

from lasso.chain import ChainRuntime
from lasso.config import ProviderConfig, parse_settings
from lasso.core.routes import RouteSpec
from lasso.daemon import open_gateway
from lasso.gateway import Gateway
from lasso.upstream.http import HttpResponse
from tests.support.fakes import FakeHttpTransport, FakeNode

SETTINGS = """
[routing]
default_strategy = "priority"
logs_chunk_concurrency = {concurrency}

[chains.testnet]
chain_id = 31337
head_poll_ms = 0  # these fakes count calls; head tracking has its own tests
block_time_ms = 1000
providers = [
  {{ id = "p1", url = "http://p1.invalid", priority = 1 {limit} }},
  {{ id = "p2", url = "http://p2.invalid", priority = 2 {limit} }},
]
"""
HEAD = 100
CHUNK_DELAY_S = 0.05


class Upstream:
    """Fake nodes that refuse ranges wider than ``limit`` as geth does, and count."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.nodes: dict[str, FakeNode] = {}
        self.inflight = 0
        self.max_inflight = 0
        self.ranges: list[tuple[str, int, int]] = []
        self.refused = 0
        self.broken_block: int | None = None
        self.null_block: int | None = None
        self.calls: list[str] = []

    def transport(self, chain: str, provider: ProviderConfig) -> FakeHttpTransport:
        node = self.nodes.setdefault(provider.id, FakeNode(head=HEAD))
        for number in range(0, HEAD + 1, 3):
            node.add_log(number, {"address": "0x01", "blockNumber": hex(number)})
        return LimitedTransport(self, node, provider.id)


class LimitedTransport(FakeHttpTransport):
    def __init__(self, upstream: Upstream, node: FakeNode, provider_id: str) -> None:
        super().__init__(node, provider_id)
        self.upstream = upstream

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        request: dict[str, Any] = msgspec.json.decode(body)
        self.upstream.calls.append(request["method"])
        if request["method"] != "eth_getLogs":
            return await super().post(body, replay_safe=replay_safe)
        up = self.upstream
        query = request["params"][0]
        low, high = (block(query.get(k, "latest")) for k in ("fromBlock", "toBlock"))
        up.inflight += 1
        up.max_inflight = max(up.max_inflight, up.inflight)
        try:
            await trio.sleep(CHUNK_DELAY_S)
        finally:
            up.inflight -= 1
        if up.limit is not None and high - low + 1 > up.limit:
            up.refused += 1
            error = {"code": -32000, "message": f"exceed maximum block range: {up.limit}"}
            answer = {"jsonrpc": "2.0", "id": request["id"], "error": error}
            return HttpResponse(200, msgspec.json.encode(answer), None)
        if up.broken_block is not None and low <= up.broken_block <= high:
            answer = {
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": {"code": -32603, "message": "internal error"},
            }
            return HttpResponse(200, msgspec.json.encode(answer), None)
        if up.null_block is not None and low <= up.null_block <= high:
            answer = {"jsonrpc": "2.0", "id": request["id"], "result": None}
            return HttpResponse(200, msgspec.json.encode(answer), None)
        up.ranges.append((self.provider_id, low, high))
        return await super().post(body, replay_safe=replay_safe)


def block(ref: str) -> int:
    tags = {"latest": HEAD, "pending": HEAD, "safe": HEAD - 5, "finalized": HEAD - 10}
    return tags[ref] if ref in tags else 0 if ref == "earliest" else int(ref, 16)


@asynccontextmanager
async def open_logs_gateway(
    upstream: Upstream, *, concurrency: int = 4, configured: int | None = None
) -> AsyncIterator[Gateway]:
    limit = "" if configured is None else f", max_logs_block_range = {configured}"
    text = SETTINGS.format(concurrency=concurrency, limit=limit)
    settings = parse_settings(text, env={})
    async with open_gateway(settings, rng=random.Random(7), transports=upstream.transport) as gw:
        yield gw


async def get_logs(gateway: Gateway, query: dict[str, Any]) -> dict[str, Any]:
    target = gateway.resolve(RouteSpec(chain="testnet"), "/rpc/testnet")
    body = msgspec.json.encode(
        {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [query]}
    )
    answer = await gateway.answer_body(target, body)
    assert answer.status == 200
    reply: dict[str, Any] = msgspec.json.decode(answer.body())
    return reply


def expected(low: int, high: int) -> list[dict[str, str]]:
    return [{"address": "0x01", "blockNumber": hex(n)} for n in range(low, high + 1) if n % 3 == 0]


def chain_of(gateway: Gateway) -> ChainRuntime:
    return gateway.profiles["default"]["testnet"]


async def test_chunks_are_fetched_at_most_logs_chunk_concurrency_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = Upstream(limit=10)
    async with open_logs_gateway(upstream, concurrency=3, configured=10) as gateway:
        started = trio.current_time()
        reply = await get_logs(gateway, {"fromBlock": "0x0", "toBlock": hex(99)})
        elapsed = trio.current_time() - started
    assert reply["result"] == expected(0, 99)
    assert upstream.max_inflight == 3
    assert upstream.refused == 0
    assert sorted((lo, hi) for _, lo, hi in upstream.ranges) == [
        (n, n + 9) for n in range(0, 100, 10)
    ]
    # 10 chunks, 3 at a time, each CHUNK_DELAY_S: 4 rounds.
    assert elapsed == CHUNK_DELAY_S * 4


async def test_a_refusal_teaches_the_limit_without_a_breaker_penalty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = Upstream(limit=25)
    async with open_logs_gateway(upstream) as gateway:
        chain = chain_of(gateway)
        reply = await get_logs(gateway, {"fromBlock": "0x0", "toBlock": "latest"})
        assert reply["result"] == expected(0, HEAD)
        assert upstream.refused == 2  # the whole range, once per provider
        for provider in chain.providers.values():
            assert provider.capabilities.logs_range_limit() == 25
            stats = provider.channel("http").breaker.statistics(trio.current_time())
            assert stats.consecutive_failures == 0
            assert stats.total_opens == 0
        upstream.refused = 0
        upstream.ranges.clear()
        reply = await get_logs(gateway, {"fromBlock": "0x5", "toBlock": "0x40"})
        assert reply["result"] == expected(5, 64)
        assert upstream.refused == 0  # learned: split before sending
        assert sorted((lo, hi) for _, lo, hi in upstream.ranges) == [(5, 29), (30, 54), (55, 64)]


async def test_a_chunk_that_fails_everywhere_fails_the_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = Upstream(limit=10)
    upstream.broken_block = 42
    async with open_logs_gateway(upstream, configured=10) as gateway:
        reply = await get_logs(gateway, {"fromBlock": "0x0", "toBlock": hex(99)})
    assert "result" not in reply
    # Both providers answered the chunk with the same node error: the client gets it as is.
    assert reply["error"] == {"code": -32603, "message": "internal error"}
    assert upstream.ranges  # other chunks were served, and dropped


async def test_what_cannot_be_split_goes_whole_to_the_node(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = Upstream(limit=10)
    async with open_logs_gateway(upstream, configured=10) as gateway:
        block_hash = "0x" + "ab" * 32
        reply = await get_logs(gateway, {"blockHash": block_hash})
        assert reply["result"] == expected(HEAD, HEAD)
        assert upstream.calls == ["eth_getLogs"]
        for query in [
            {"fromBlock": hex(HEAD + 5), "toBlock": hex(HEAD + 50)},  # past the head
            {"fromBlock": "0x0", "toBlock": "finalized"},  # a tag the gateway cannot place
        ]:
            upstream.calls.clear()
            reply = await get_logs(gateway, query)
            # The node's own answer (here: its range refusal), not a split.
            assert reply["error"]["message"] == "exceed maximum block range: 10", query
            assert upstream.calls.count("eth_getLogs") == 2  # once per provider, whole


async def test_a_chunk_answering_something_else_than_an_array_fails_the_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = Upstream(limit=10)
    upstream.null_block = 50
    async with open_logs_gateway(upstream, configured=10) as gateway:
        reply = await get_logs(gateway, {"fromBlock": "0x0", "toBlock": hex(99)})
    assert reply["error"]["code"] == -32002
    assert "not an array" in reply["error"]["message"]
