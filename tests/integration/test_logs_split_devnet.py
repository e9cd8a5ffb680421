"""eth_getLogs beyond provider limits, on real anvil nodes behind limiting proxies.

A lockstep devnet of three anvil nodes holds blocks whose transactions emit
logs (contract creations whose init code runs ``LOG2``). Each node sits behind a
FaultProxy that enforces an eth_getLogs limit with a real provider's wording
(geth, Alchemy, QuickNode, Ankr, Infura, "range too large"). Through a real
gateway, every answer must equal, byte for byte, the answer of an unlimited
anvil (a node asked directly) for the same request: numeric ranges, tags,
omitted bounds, address and topic filters, ranges past the head, inverted ranges.

Run with ``-s`` to see the figures (ranges compared, chunks, time).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from lasso.chaos import FaultProxy, LogsLimit, logs_limit
from lasso.config import parse_settings
from lasso.devnet import DEV_ACCOUNTS, Devnet, open_devnet
from tests.support.front import open_lasso
from tests.support.proxied import open_fault_proxies

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BLOCKS = 30
PUSH1, PUSH32, MSTORE, LOG2, STOP = b"\x60", b"\x7f", b"\x52", b"\xa2", b"\x00"

SETTINGS = """
[server]
shutdown_grace_ms = 200

[routing]
default_strategy = "{strategy}"
{routing}

[chains.devnet]
chain_id = 31337
block_time_ms = 1000
providers = [
  {{ id = "proxy0", url = "{0}", priority = 1 {limit} }},
  {{ id = "proxy1", url = "{1}", priority = 2 {limit} }},
  {{ id = "proxy2", url = "{2}", priority = 3 {limit} }},
]
"""


def topic(value: int) -> str:
    return "0x" + f"{value:064x}"


def init_code(seed: int, logs: int) -> str:
    """Init code that stores ``seed`` in memory and emits ``logs`` LOG2s, then stops.

    Topic 0 is ``seed % 3`` (so topic filters pick a subset), topic 1 the log's index.
    """
    code = PUSH32 + seed.to_bytes(32) + PUSH1 + b"\x00" + MSTORE
    for index in range(logs):
        code += PUSH1 + bytes([index]) + PUSH32 + (seed % 3).to_bytes(32)
        code += PUSH1 + b"\x20" + PUSH1 + b"\x00" + LOG2
    return "0x" + (code + STOP).hex()


async def emit_logs(devnet: Devnet) -> list[str]:
    """Mine BLOCKS blocks holding 0-3 log-emitting creations each; the contracts' addresses."""
    seed = 0
    hashes = []
    for number in range(1, BLOCKS + 1):
        for _ in range((number * 7) % 4):
            seed += 1
            request = {
                "from": DEV_ACCOUNTS[0],
                "data": init_code(seed, 1 + seed % 3),
                "gas": hex(300_000),
            }
            raw = await devnet.request(0, "eth_signTransaction", [request])
            hashes.append(await devnet.send_raw_transaction(raw))
        await devnet.mine()
    addresses = []
    for tx in hashes[:: max(1, len(hashes) // 4)]:
        receipt = await devnet.request(0, "eth_getTransactionReceipt", [tx])
        addresses.append(receipt["contractAddress"])
    return addresses


@dataclass
class Rig:
    devnet: Devnet
    proxies: list[FaultProxy]
    addresses: list[str]
    unlimited: httpx.AsyncClient

    def calls(self, method: str) -> int:
        return sum(p.calls[method] for p in self.proxies)

    def reset(self, limits: list[LogsLimit | None]) -> None:
        for proxy, limit in zip(self.proxies, limits, strict=True):
            proxy.logs_limit = limit
            proxy.calls.clear()
            proxy.logs_served.clear()


@asynccontextmanager
async def open_rig() -> AsyncIterator[Rig]:
    async with open_devnet(nodes=3, block_time_s=None) as devnet:
        addresses = await emit_logs(devnet)
        async with (
            open_fault_proxies(devnet) as proxies,
            httpx.AsyncClient(
                base_url=devnet.nodes[1].http_url, trust_env=False, timeout=10
            ) as unlimited,
        ):
            yield Rig(devnet, proxies, addresses, unlimited)


@asynccontextmanager
async def open_client(
    rig: Rig, *, strategy: str = "round-robin", routing: str = "", limit: str = ""
) -> AsyncIterator[httpx.AsyncClient]:
    text = SETTINGS.format(
        *(p.url for p in rig.proxies), strategy=strategy, routing=routing, limit=limit
    )
    settings = parse_settings(text, env={})
    async with (
        open_lasso(settings) as base,
        httpx.AsyncClient(base_url=base + "/rpc/devnet", trust_env=False, timeout=30) as client,
    ):
        yield client


def body(params: list[Any], rid: int = 7) -> bytes:
    return msgspec.json.encode(
        {"jsonrpc": "2.0", "id": rid, "method": "eth_getLogs", "params": params}
    )


class Reply(msgspec.Struct):
    id: msgspec.Raw
    result: msgspec.Raw = msgspec.Raw(b"")  # empty: absent
    error: msgspec.Raw = msgspec.Raw(b"")


async def post(client: httpx.AsyncClient, content: bytes) -> Reply:
    response = await client.post("", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=Reply)


def filters(rig: Rig, count: int) -> list[dict[str, Any]]:
    """Ranges of every kind over the devnet's BLOCKS blocks, seeded."""
    rng = random.Random(9)
    head = BLOCKS
    out: list[dict[str, Any]] = [
        {"fromBlock": "earliest", "toBlock": "latest"},
        {"fromBlock": "0x0"},  # toBlock omitted: latest
        {"fromBlock": "0x3", "toBlock": "latest"},
        {"toBlock": "latest"},  # fromBlock omitted: latest
        {},
        {"fromBlock": "0x2", "toBlock": hex(head + 5)},  # past the head: clamped, as anvil does
        {"fromBlock": "0x14", "toBlock": "0xa"},  # inverted
        {"fromBlock": "earliest", "toBlock": hex(head)},
        {"fromBlock": "0x01", "toBlock": "0x001c"},  # leading zeros
    ]
    while len(out) < count:
        low = rng.randint(0, head)
        high = rng.randint(low, head)
        query: dict[str, Any] = {"fromBlock": hex(low), "toBlock": hex(high)}
        shape = rng.randrange(4)
        if shape == 1:
            query["address"] = rng.choice(rig.addresses)
        elif shape == 2:
            query["topics"] = [topic(rng.randrange(3))]
        elif shape == 3:
            query["topics"] = [None, [topic(0), topic(2)]]
            query = {"topics": query.pop("topics"), **query}  # block members not first
        out.append(query)
    return out


@dataclass
class Figures:
    ranges: int = 0
    logs: int = 0
    seconds: float = 0.0


async def compare_all(
    rig: Rig, client: httpx.AsyncClient, queries: list[dict[str, Any]]
) -> Figures:
    figures = Figures()
    started = time.perf_counter()
    for rid, query in enumerate(queries):
        content = body([query], rid)
        through = await post(client, content)
        direct = await post(rig.unlimited, content)
        assert not through.error, (query, bytes(through.error))
        assert direct.result, (query, bytes(direct.error))
        assert bytes(through.result) == bytes(direct.result), query
        assert bytes(through.id) == str(rid).encode()
        figures.ranges += 1
        figures.logs += len(msgspec.json.decode(direct.result))
    figures.seconds = time.perf_counter() - started
    return figures


def report(name: str, rig: Rig, figures: Figures) -> None:
    served = [hi - lo + 1 for p in rig.proxies for lo, hi in p.logs_served]
    refused = sum(
        n for p in rig.proxies for k, n in p.statistics().injected.items() if "refused" in k
    )
    print(
        f"\n[{name}] ranges compared={figures.ranges} logs={figures.logs} "
        f"upstream eth_getLogs={rig.calls('eth_getLogs')} chunks served={len(served)} "
        f"widest chunk={max(served, default=0)} refusals={refused} "
        f"eth_blockNumber={rig.calls('eth_blockNumber')} time={figures.seconds:.2f}s"
    )


async def test_learned_limits_split_and_merge_byte_for_byte() -> None:
    """No limit configured: each proxy refuses with a real wording and a stated limit;
    Lasso learns them, splits, and answers exactly what an unlimited anvil does."""
    async with open_rig() as rig:
        cases = [
            (
                "stated limits",
                [logs_limit("geth", 5), logs_limit("alchemy", 8), logs_limit("quicknode", 6)],
            ),
            (
                "unstated limits",
                [
                    logs_limit("ankr", 4),
                    logs_limit("range-too-large-bare", 7),
                    logs_limit("range-too-large", 3),
                ],
            ),
            (
                "result count",
                [logs_limit("infura", 6), logs_limit("infura", 6), logs_limit("infura", 6)],
            ),
        ]
        for name, limits in cases:
            rig.reset(limits)
            async with open_client(rig) as client:
                figures = await compare_all(rig, client, filters(rig, 40))
            report(name, rig, figures)
            assert figures.ranges == 40
            # Every served chunk was within every limit that applies to blocks.
            for proxy, limit in zip(rig.proxies, limits, strict=True):
                if limit.max_blocks is not None:
                    assert all(hi - lo + 1 <= limit.max_blocks for lo, hi in proxy.logs_served)
            assert sum(len(p.logs_served) for p in rig.proxies) > 40  # it did split


async def test_a_request_within_every_limit_takes_todays_path() -> None:
    """Configured limits wider than the request: one upstream call, same bytes, no head
    lookup, no split (numeric ranges, a one-block tag range, and no limit at all)."""
    async with open_rig() as rig:
        rig.reset([logs_limit("geth", 40)] * 3)
        queries = [
            {"fromBlock": "0x0", "toBlock": hex(BLOCKS)},
            {"fromBlock": "0x3", "toBlock": "0x9", "topics": [topic(1)]},
            {"fromBlock": "latest", "toBlock": "latest"},
            {},
        ]
        async with open_client(rig, limit=", max_logs_block_range = 40") as client:
            figures = await compare_all(rig, client, queries)
        assert rig.calls("eth_getLogs") == len(queries)
        assert rig.calls("eth_blockNumber") == 0
        rig.reset([None] * 3)
        async with open_client(rig) as client:
            figures = await compare_all(rig, client, [*queries, {"fromBlock": "earliest"}])
        assert rig.calls("eth_getLogs") == figures.ranges
        assert rig.calls("eth_blockNumber") == 0


async def test_a_chunk_whose_provider_drops_the_connection_fails_over() -> None:
    """Configured limit 5; the first-choice provider resets any range holding block 12:
    that chunk alone fails over, and the answer is still complete and exact."""
    async with open_rig() as rig:
        limits = [logs_limit("geth", 5, reset_block=12), logs_limit("geth", 5)]
        rig.reset([*limits, logs_limit("geth", 5)])
        async with open_client(
            rig, strategy="priority", limit=", max_logs_block_range = 5"
        ) as client:
            figures = await compare_all(rig, client, filters(rig, 40))
        report("failover", rig, figures)
        assert rig.proxies[0].statistics().injected.get("logs_reset", 0) > 0
        assert rig.proxies[1].logs_served  # the dropped chunks went elsewhere
        assert all(not (lo <= 12 <= hi) for lo, hi in rig.proxies[0].logs_served)
        assert all(hi - lo + 1 <= 5 for p in rig.proxies for lo, hi in p.logs_served)


async def test_a_chunk_that_finally_fails_fails_the_whole_request() -> None:
    """Every provider drops a range holding block 12: the client gets an error, never
    the other chunks' logs as if complete."""
    async with open_rig() as rig:
        rig.reset([logs_limit("geth", 5, reset_block=12)] * 3)
        async with open_client(rig, limit=", max_logs_block_range = 5") as client:
            reply = await post(client, body([{"fromBlock": "0x0", "toBlock": hex(BLOCKS)}]))
            assert not reply.result
            error = msgspec.json.decode(reply.error)
            assert error["code"] == -32000, error
            # Each provider resets the connection after reading that chunk's request: a
            # connection lost mid-request, so the chunk stops at the second provider, as
            # a query of death would (lasso.core.poison), instead of "All providers failed".
            assert "lost the connection to 2 providers mid-request" in error["message"]
            assert sum(len(p.logs_served) for p in rig.proxies) > 0  # other chunks were served
            # A range clear of block 12 is still served, exactly.
            await compare_all(rig, client, [{"fromBlock": "0xd", "toBlock": hex(BLOCKS)}])


async def test_the_global_cap_answers_invalid_params_without_a_provider() -> None:
    async with open_rig() as rig:
        rig.reset([None] * 3)
        async with open_client(rig, routing="max_logs_block_range = 10") as client:
            for query, low, high in [
                ({"fromBlock": "0x0", "toBlock": "0xa"}, 0, 10),
                ({"fromBlock": "earliest", "toBlock": "latest"}, 0, BLOCKS),
                ({"fromBlock": "0x5"}, 5, BLOCKS),
                ({"fromBlock": "0x0", "toBlock": "safe"}, 0, BLOCKS),  # no widening by tag
            ]:
                span = high - low + 1
                reply = await post(client, body([query], 3))
                assert not reply.result
                assert msgspec.json.decode(reply.error) == {
                    "code": -32602,
                    "message": f"eth_getLogs block range too large: {span} blocks requested, "
                    "the maximum is 10 (max_logs_block_range)",
                    "data": {"from_block": hex(low), "to_block": hex(high), "max": 10},
                }
            assert rig.calls("eth_getLogs") == 0
            await compare_all(rig, client, [{"fromBlock": "0x0", "toBlock": "0x9"}, {}])
            assert rig.calls("eth_getLogs") == 2
