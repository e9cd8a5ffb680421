"""Eligibility on the lockstep devnet: a pruned node, a lagging node, a forked node.

The gateway runs on real HTTP transports to real anvil nodes; each transport counts
the methods it sends, so "never goes to that node" is a count. Chain state is fed
from the nodes' own latest blocks (as head tracking does) after every change.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest
import trio
from trio_websocket import open_websocket_url

from lasso.chain import ChainRuntime
from lasso.config import ProviderConfig, Settings, parse_settings
from lasso.core.breaker import CircuitState
from lasso.core.routes import RouteSpec
from lasso.daemon import open_gateway
from lasso.devnet import DEV_ACCOUNTS, Devnet, open_devnet
from lasso.gateway import Gateway
from lasso.upstream.http import HttpResponse, HttpTransport
from tests.support.fakes import WrappedTransport
from tests.support.front import open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACCOUNT = DEV_ACCOUNTS[0]
ARCHIVAL_THRESHOLD = 4


class CountingTransport(WrappedTransport):
    """A real HTTP transport that counts the methods it sends."""

    def __init__(self, inner: HttpTransport, counts: Counter[str]) -> None:
        super().__init__(inner)
        self.counts = counts

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        self.counts[msgspec.json.decode(body)["method"]] += 1
        return await self.inner.post(body, replay_safe=replay_safe)


class Rig:
    def __init__(self, devnet: Devnet, gateway: Gateway, counts: dict[str, Counter[str]]) -> None:
        self.devnet = devnet
        self.gateway = gateway
        self.counts = counts
        self.chain: ChainRuntime = gateway.profiles["default"]["devnet"]
        self.route = gateway.resolve(RouteSpec(chain="devnet"), "/rpc/devnet")

    async def feed_heads(self) -> None:
        """Each node's latest block into the chain state, as head tracking reports it."""
        now = trio.current_time()
        for node in self.devnet.nodes:
            block = await self.devnet.request(node.index, "eth_getBlockByNumber", ["latest", False])
            self.chain.observe_head(
                f"n{node.index}", int(block["number"], 16), block["hash"], block["parentHash"], now
            )

    async def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            await self.devnet.mine()
        await self.feed_heads()

    async def rpc(self, method: str, params: list[Any]) -> dict[str, Any]:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        answer = await self.gateway.answer_body(self.route, body.encode())
        decoded: dict[str, Any] = msgspec.json.decode(answer.body())
        return decoded


def settings_text(devnet: Devnet, provider_extra: dict[int, str], priorities: list[int]) -> str:
    providers = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", priority = {priorities[n.index]}'
        f"{provider_extra.get(n.index, '')} }}"
        for n in devnet.nodes
    )
    return (
        f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\ndefault_strategy = "
        f'"priority"\nmax_lag_blocks = 2\narchival_threshold = {ARCHIVAL_THRESHOLD}\n'
        f"providers = [\n{providers}\n]\n"
    )


@asynccontextmanager
async def open_rig(devnet: Devnet, settings: Settings) -> AsyncIterator[Rig]:
    counts: dict[str, Counter[str]] = {f"n{n.index}": Counter() for n in devnet.nodes}

    def transport(_chain: str, provider: ProviderConfig) -> CountingTransport:
        inner = HttpTransport(provider.url, {}, provider_id=provider.id)
        return CountingTransport(inner, counts[provider.id])

    async with open_gateway(settings, rng=random.Random(3), transports=transport) as gateway:
        rig = Rig(devnet, gateway, counts)
        await rig.feed_heads()
        yield rig


@pytest.fixture
async def pruned_rig() -> AsyncIterator[Rig]:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0, prune_history={2: 4}) as net:
        # the pruned node first in line, so every archival request would reach it first
        text = settings_text(net, {}, priorities=[1, 2, 0])
        async with open_rig(net, parse_settings(text, env={})) as rig:
            yield rig


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as net:
        text = settings_text(net, {0: ', unsupported_methods = ["eth_gasPrice"]'}, [0, 1, 2])
        async with open_rig(net, parse_settings(text, env={})) as rig:
            yield rig


async def test_archival_requests_never_fail_and_leave_the_pruned_node_once_learned(
    pruned_rig: Rig,
) -> None:
    rig = pruned_rig
    with trio.fail_after(60):
        await rig.mine(ARCHIVAL_THRESHOLD + 8)
        expected = await rig.devnet.request(0, "eth_getBalance", [ACCOUNT, "0x1"])
        for _ in range(3):
            answer = await rig.rpc("eth_getBalance", [ACCOUNT, "0x1"])
            assert answer.get("result") == expected, answer
            for tag in ("earliest", "0x0"):
                answer = await rig.rpc("eth_getBalance", [ACCOUNT, tag])
                assert "result" in answer, answer
            await rig.mine(1)
        # the pruned node was asked once, learned, and never again for that depth or deeper
        assert rig.counts["n2"]["eth_getBalance"] == 1
        now = trio.current_time()
        pruned = rig.chain.providers["n2"]
        assert pruned.capabilities.statistics(now).pruned_depth is not None
        breaker = pruned.channel("http").breaker.statistics(now)
        assert breaker.state is CircuitState.CLOSED and breaker.consecutive_failures == 0
        # recent state is still its to serve (it is first in line)
        before = rig.counts["n2"]["eth_getBalance"]
        answer = await rig.rpc("eth_getBalance", [ACCOUNT, "latest"])
        assert "result" in answer and rig.counts["n2"]["eth_getBalance"] == before + 1


async def test_a_lagging_node_gets_no_head_sensitive_traffic(rig: Rig) -> None:
    with trio.fail_after(60):
        await rig.mine(2)
        rig.devnet.pause(1)
        await rig.mine(4)  # node 1 is now 4 blocks behind (max_lag_blocks = 2)
        tip = await rig.devnet.request(0, "eth_blockNumber")
        rig.counts["n1"].clear()
        # node 0 lists eth_gasPrice as unsupported: node 1 would be next, the lagging one
        for _ in range(10):
            assert (await rig.rpc("eth_blockNumber", []))["result"] == tip
            assert "result" in await rig.rpc("eth_getBalance", [ACCOUNT, "latest"])
            assert "result" in await rig.rpc("eth_gasPrice", [])
        assert rig.counts["n0"]["eth_gasPrice"] == 0  # configured unsupported: never asked
        assert rig.counts["n1"]["eth_blockNumber"] == 0
        assert rig.counts["n1"]["eth_getBalance"] == 0
        # eth_gasPrice has no block target: the lagging node may serve it
        assert rig.counts["n1"]["eth_gasPrice"] == 10
        await rig.devnet.resume(1)
        await rig.feed_heads()
        await rig.rpc("eth_blockNumber", [])
        assert rig.counts["n1"]["eth_blockNumber"] == 0  # node 0 is first and in line again


async def test_a_forked_node_is_kept_out_of_head_sensitive_routing(rig: Rig) -> None:
    devnet = rig.devnet
    with trio.fail_after(60):
        await rig.mine(2)
        devnet.pause(0)  # node 0, first in line, will mine its own block N
        number = await devnet.mine()
        canonical = await devnet.request(1, "eth_getBlockByNumber", [hex(number), False])
        raw = await devnet.request(
            0,
            "eth_signTransaction",
            [{"from": ACCOUNT, "to": DEV_ACCOUNTS[1], "value": "0x1", "gas": "0x5208"}],
        )
        await devnet.request(0, "eth_sendRawTransaction", [raw])
        await devnet.request(0, "evm_mine", [int(canonical["timestamp"], 16)])
        own = await devnet.request(0, "eth_getBlockByNumber", [hex(number), False])
        assert own["number"] == canonical["number"] and own["hash"] != canonical["hash"]
        await rig.feed_heads()
        assert rig.chain.state.is_forked("n0", trio.current_time())
        rig.counts["n0"].clear()
        tip = hex(number)
        for _ in range(5):
            latest = await rig.rpc("eth_getBlockByNumber", ["latest", False])
            assert latest["result"]["hash"] == canonical["hash"]
            assert (await rig.rpc("eth_blockNumber", []))["result"] == tip
            assert "result" in await rig.rpc("eth_getBalance", [ACCOUNT, "latest"])
        # (eth_getBlockByNumber is not counted: head tracking polls it where it runs)
        assert rig.counts["n0"]["eth_blockNumber"] == rig.counts["n0"]["eth_getBalance"] == 0


DENY = """
[methods]
deny = ["debug_*"]
"""


async def test_denied_methods_get_minus_32601_locally_over_http_ws_and_batch() -> None:
    expected = {
        "jsonrpc": "2.0",
        "id": 9,
        "error": {
            "code": -32601,
            "message": "the method debug_traceCall does not exist/is not available",
        },
    }
    call = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "debug_traceCall",
        "params": [{"to": DEV_ACCOUNTS[1]}, "latest", {}],
    }
    async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
        providers = ",\n".join(
            f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}" }}'
            for n in devnet.nodes
        )
        text = f"{DENY}\n[chains.devnet]\nchain_id = 31337\nproviders = [\n{providers}\n]\n"
        async with open_lasso(parse_settings(text, env={})) as base, httpx.AsyncClient() as client:
            with trio.fail_after(30):
                # anvil itself serves debug_traceCall: the node would answer with a trace
                direct = await client.post(devnet.nodes[0].http_url, json=call)
                assert "result" in direct.json()
                single = await client.post(f"{base}/rpc/devnet", json=call)
                assert single.json() == expected
                batch = await client.post(
                    f"{base}/rpc/devnet",
                    json=[call, {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId"}],
                )
                assert batch.json()[0] == expected
                assert batch.json()[1]["result"] == "0x7a69"
                ws_url = base.replace("http://", "ws://") + "/ws/rpc/devnet"
                async with open_websocket_url(ws_url) as ws:
                    await ws.send_message(json.dumps(call))
                    assert json.loads(await ws.get_message()) == expected
