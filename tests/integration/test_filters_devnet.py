"""Gateway-served filters through the real front end, against the real lockstep devnet.

A client polls the way viem's ``watchContractEvent`` and ethers' ``contract.on`` do over
HTTP: ``eth_newFilter`` once, then ``eth_getFilterChanges`` every interval. The node
serving the filter's stream is cut at the TCP level while logs keep coming; the logs
the client collects must be exactly what a direct ``eth_getLogs`` over the whole range
returns: none lost, none repeated. Without the gateway's filters the polls land on
nodes that never heard of the filter ("filter not found").
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from lasso.chaos.tcpcut import TcpRelay, open_tcp_relay
from lasso.daemon import serve
from lasso.devnet import Devnet, open_devnet
from tests.support.emitter import TOPIC, deploy_emitter, emit
from tests.support.proxied import relayed_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Rig:
    def __init__(self, devnet: Devnet, relay: TcpRelay, url: str, http: httpx.AsyncClient):
        self.devnet, self.relay, self.url, self.http = devnet, relay, url, http
        self._ids = 0

    async def call(self, method: str, params: list[Any], url: str | None = None) -> Any:
        """The whole JSON-RPC answer (result or error)."""
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        response = await self.http.post(url or self.url, content=json.dumps(body))
        assert response.status_code == 200, response.text
        return response.json()

    async def result(self, method: str, params: list[Any]) -> Any:
        answer = await self.call(method, params)
        assert "result" in answer, answer
        return answer["result"]


@pytest.fixture
async def rig(nursery: trio.Nursery, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    extra = getattr(request, "param", "")
    async with (
        open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet,
        open_tcp_relay(devnet.nodes[0].port) as relay,
        httpx.AsyncClient(headers={"content-type": "application/json"}) as http,
    ):
        await devnet.mine()
        shutdown = trio.Event()
        binds = await nursery.start(
            partial(
                serve,
                relayed_settings(devnet, relay, extra),
                host="127.0.0.1",
                port=0,
                shutdown=shutdown,
            )
        )
        yield Rig(devnet, relay, f"{binds[0]}/rpc/devnet", http)
        shutdown.set()


def log_key(log: dict[str, Any]) -> tuple[str, str]:
    return (log["blockHash"], log["logIndex"])


@pytest.mark.parametrize("rig", ["", "http-only"], indirect=True)
async def test_a_polled_log_filter_survives_a_provider_cut_without_loss_or_repeat(
    rig: Rig,
) -> None:
    """Over HTTP only (no ws_url anywhere), the filter is read over HTTP at each poll."""
    contract = await deploy_emitter(rig.devnet)
    with trio.fail_after(60):
        first = int(await rig.result("eth_blockNumber", []), 16) + 1
        fid = await rig.result("eth_newFilter", [{"address": contract, "topics": [TOPIC]}])
        assert fid.startswith("0x") and len(fid) <= 34
        received: list[dict[str, Any]] = []
        polls = 0
        for round_ in range(12):
            await emit(rig.devnet, contract, count=1 + round_ % 3)
            if round_ == 4:
                rig.relay.cut()  # the node serving the filter's stream dies mid-stream
            if round_ % 2 == 1:  # sometimes two blocks between polls
                received += await rig.result("eth_getFilterChanges", [fid])
                polls += 1
        await rig.devnet.mine()  # an empty block: the stream has caught up to here
        last = int(await rig.devnet.request(1, "eth_blockNumber", []), 16)
        while len(received) < 24:  # what is still in flight arrives within the deadline
            received += await rig.result("eth_getFilterChanges", [fid])
            polls += 1
            if len(received) < 24:
                await rig.devnet.mine()
        expected = await rig.devnet.request(
            1, "eth_getLogs", [{"address": contract, "fromBlock": hex(first), "toBlock": hex(last)}]
        )
    emitted = sum(1 + r % 3 for r in range(12))
    assert emitted == 24 == len(expected)
    assert len({log_key(log) for log in received}) == len(received)  # 0 repeated
    assert received == expected  # 0 lost, in order, field for field
    assert await rig.result("eth_getFilterChanges", [fid]) == []
    # eth_getFilterLogs runs the criteria as eth_getLogs (latest..latest here)
    logs = await rig.result("eth_getFilterLogs", [fid])
    assert logs == await rig.devnet.request(1, "eth_getLogs", [{"address": contract}])


@pytest.mark.parametrize("rig", ["", "http-only"], indirect=True)
async def test_a_block_filter_returns_each_new_block_hash_once_across_a_cut(rig: Rig) -> None:
    with trio.fail_after(60):
        first = int(await rig.result("eth_blockNumber", []), 16) + 1
        fid = await rig.result("eth_newBlockFilter", [])
        hashes: list[str] = []
        for round_ in range(8):
            await rig.devnet.mine()
            if round_ == 3:
                rig.relay.cut()
            if round_ % 2 == 1:
                hashes += await rig.result("eth_getFilterChanges", [fid])
        while len(hashes) < 8:
            hashes += await rig.result("eth_getFilterChanges", [fid])
            if len(hashes) < 8:
                await trio.sleep(0.05)  # bounded by fail_after: the stream is catching up
        expected = [
            (await rig.devnet.request(1, "eth_getBlockByNumber", [hex(n), False]))["hash"]
            for n in range(first, first + 8)
        ]
    assert hashes == expected


async def test_uninstall_and_unknown_ids_answer_as_geth(rig: Rig) -> None:
    with trio.fail_after(30):
        fid = await rig.result("eth_newBlockFilter", [])
        assert await rig.result("eth_uninstallFilter", [fid]) is True
        assert await rig.result("eth_uninstallFilter", [fid]) is False
        gone = await rig.call("eth_getFilterChanges", [fid])
        unknown = await rig.call("eth_getFilterLogs", ["0x" + "12" * 16])
        block_logs = await rig.call(
            "eth_getFilterLogs", [await rig.result("eth_newBlockFilter", [])]
        )
        pending = await rig.call("eth_newFilter", [{"fromBlock": "pending", "toBlock": "pending"}])
    not_found = {"code": -32000, "message": "filter not found"}
    assert gone["error"] == unknown["error"] == block_logs["error"] == not_found
    assert pending["error"] == {"code": -32000, "message": "pending logs are not supported"}


@pytest.mark.parametrize("rig", ["[filters]\nmax_per_client = 3\n"], indirect=True)
async def test_filters_per_client_are_bounded_and_released(rig: Rig) -> None:
    with trio.fail_after(30):
        ids = [await rig.result("eth_newBlockFilter", []) for _ in range(3)]
        over = await rig.call("eth_newBlockFilter", [])
        assert over["error"]["code"] == -32005
        assert "filter limit reached" in over["error"]["message"]
        assert await rig.result("eth_uninstallFilter", [ids[0]]) is True
        assert (await rig.result("eth_newBlockFilter", [])).startswith("0x")


@pytest.mark.parametrize("rig", ["[filters]\nmax_buffered_changes = 5\n"], indirect=True)
async def test_a_filter_never_polled_is_dropped_at_its_buffer_bound_not_truncated(
    rig: Rig,
) -> None:
    with trio.fail_after(30):
        idle = await rig.result("eth_newBlockFilter", [])
        canary = await rig.result("eth_newBlockFilter", [])
        seen: list[str] = []
        for round_ in range(6):
            await rig.devnet.mine()
            while len(seen) <= round_:  # polled every block: never more than 1 buffered
                seen += await rig.result("eth_getFilterChanges", [canary])
                if len(seen) <= round_:
                    await trio.sleep(0.02)  # bounded by fail_after: the head is on its way
        dropped = await rig.call("eth_getFilterChanges", [idle])
    assert dropped["error"] == {"code": -32000, "message": "filter not found"}
    assert len(set(seen)) == 6


@pytest.mark.parametrize("rig", ["http-only"], indirect=True)
async def test_pending_filters_need_a_websocket_provider(rig: Rig) -> None:
    with trio.fail_after(30):
        answer = await rig.call("eth_newPendingTransactionFilter", [])
    assert answer["error"]["code"] == -32000
    assert "WebSocket (ws_url)" in answer["error"]["message"]


def gauge(metrics: str, name: str) -> int:
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in metrics.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


HOSTILE = "[filters]\nmax_per_client = 8\n[subscriptions]\nmax_idle_upstream_per_client = 2\n"


@pytest.mark.parametrize("rig", [HOSTILE], indirect=True)
async def test_a_hostile_filter_client_cannot_hurt_a_polling_client(rig: Rig) -> None:
    """One client churns 300 distinct log filters (each a distinct upstream subscription),
    holds its 8 never polled, polls 300 made-up ids; the upstream work stays bounded and
    a canary's block filter still sees every block exactly once."""
    metrics_url = rig.url.replace("/rpc/devnet", "/metrics")
    with trio.fail_after(60):
        canary = await rig.result("eth_newBlockFilter", [])
        first = int(await rig.result("eth_blockNumber", []), 16) + 1
        refused = 0
        for n in range(300):
            topic = "0x" + format(n, "064x")
            answer = await rig.call("eth_newFilter", [{"topics": [topic]}])
            if "error" in answer:
                assert answer["error"]["code"] == -32005, answer
                refused += 1
            elif n % 40:  # keeps a few; the rest are uninstalled at once
                assert await rig.result("eth_uninstallFilter", [answer["result"]]) is True
            made_up = await rig.call("eth_getFilterChanges", ["0x" + format(n, "032x")])
            assert made_up["error"]["message"] == "filter not found"
            if n % 50 == 0:
                await rig.devnet.mine()
        upstream = gauge((await rig.http.get(metrics_url)).text, "lasso_upstream_subscriptions")
        filters = gauge((await rig.http.get(metrics_url)).text, "lasso_filters ")
        hashes: list[str] = []
        while len(hashes) < 6:
            hashes += await rig.result("eth_getFilterChanges", [canary])
            if len(hashes) < 6:
                await trio.sleep(0.02)  # bounded by fail_after
        expected = [
            (await rig.devnet.request(1, "eth_getBlockByNumber", [hex(n), False]))["hash"]
            for n in range(first, first + 6)
        ]
    assert refused > 0  # the canary's filter counts too: 7 held + the canary = 8
    assert filters == 8
    assert upstream <= 8 + 2  # live (the held ones and the canary's) + this client's idle bound
    assert hashes == expected
